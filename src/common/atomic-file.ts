import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { testTempRandom } from "./test-hooks.ts";

/** Temp files are `.<name>.<random>.tmp` beside their target, so a sweep can find them. */
const tempPattern = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;
const randomPattern = /^[0-9a-f]{12}$/;

/** Names tried before giving up: one taken name is a planted link or a stray; five in a row is an attack or a bug. */
const tempAttempts = 5;

export interface AtomicWriteOptions {
  readonly mode?: number;
  /** Runs between the complete temp file and the rename (tests pause or kill there). */
  readonly beforeRename?: () => Promise<void>;
  /**
   * The random part of each temp name (12 hex digits), drawn once per attempt. Tests inject it to
   * plant a symlink at the exact name; by default it is 6 random bytes.
   */
  readonly random?: () => string;
}

/**
 * Writes a file so that a reader, or a crash at any instant, sees the old content or the new,
 * never half (dpkg's atomic_file; Terraform's missing TODO). The temp file is created with
 * O_EXCL under a fresh random name, so a symlink planted there is never followed (case 40b).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await writeFileAtomicWith(path, data, { mode });
}

/** As writeFileAtomic, with the hooks of `AtomicWriteOptions`. */
export async function writeFileAtomicWith(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const { temp, handle } = await createTemp(dir, basename(path), options.mode ?? 0o644, options.random ?? defaultRandom());
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await options.beforeRename?.();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dir);
}

/**
 * Random parts for one write: the test hook's value first when it is set (so a test driving the
 * CLI as a subprocess knows the first name), fresh random bytes after that.
 */
function defaultRandom(): () => string {
  let first = testTempRandom();
  return () => {
    const value = first ?? randomBytes(6).toString("hex");
    first = undefined;
    return value;
  };
}

/**
 * Creates the temp file with O_EXCL: whatever already has the name (a planted symlink, a stray
 * file) is neither followed nor touched; the write moves on to a fresh name instead.
 */
async function createTemp(dir: string, name: string, mode: number, random: () => string): Promise<{ temp: string; handle: FileHandle }> {
  for (let attempt = 1; ; attempt++) {
    const part = random();
    // Any other shape would escape the sweep's pattern and leave strays after a crash.
    if (!randomPattern.test(part)) throw new Error(`The random part of a temp name must be 12 hex digits, got ${JSON.stringify(part)}`);
    const temp = join(dir, `.${name}.${part}.tmp`);
    try {
      return { temp, handle: await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= tempAttempts) throw error;
    }
  }
}

/** fsync on the folder makes the rename itself durable across a power loss, not only a kill. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on folders; the rename is still atomic against crashes.
  } finally {
    await handle?.close();
  }
}

/** Removes temp files a killed writer left in `dir` (the caller holds the workdir lock). */
export async function sweepTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const stray = names.filter((name) => tempPattern.test(name));
  await Promise.all(stray.map((name) => rm(join(dir, name), { force: true })));
  return stray;
}

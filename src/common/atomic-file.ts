import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Temp files are `.<name>.<random>.tmp` beside their target, so a sweep can find them. */
const tempPattern = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;

/**
 * Writes a file so that a reader, or a crash at any instant, sees the old content or the new,
 * never half (dpkg's atomic_file; Terraform's missing TODO). The temp file is created with
 * O_EXCL under a fresh random name, so a symlink planted there is never followed (case 40b).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await writeFileAtomicWith(path, data, mode, async () => {});
}

/** As writeFileAtomic, with a hook between the complete temp file and the rename (for tests). */
export async function writeFileAtomicWith(
  path: string,
  data: string | Uint8Array,
  mode: number,
  beforeRename: () => Promise<void>,
): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await beforeRename();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dir);
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

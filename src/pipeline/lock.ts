import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { FailedError } from "../common/errors.ts";

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly command: string;
  readonly startedAt: string;
  readonly runId: string;
}

export interface LockOptions {
  /** A lock whose heartbeat is older than this is taken over (its holder hung or died elsewhere). */
  readonly staleMs?: number;
  readonly heartbeatMs?: number;
}

export interface WorkdirLock extends AsyncDisposable {
  readonly owner: LockOwner;
  /** The holder of a stale lock this one took over: its containers may need reaping. */
  readonly tookOverFrom: LockOwner | undefined;
  release(): Promise<void>;
}

/**
 * One writer per workdir. Node has no flock, so the lock is an atomic `mkdir` of `<workdir>/.lock`
 * with an `owner.json` naming the holder and a heartbeat on the folder's mtime (the scheme of
 * proper-lockfile). A lock left by a dead process on this host is taken over at once; one whose
 * heartbeat stopped is taken over after `staleMs`.
 */
export async function acquireLock(lockDir: string, owner: LockOwner, options: LockOptions = {}): Promise<WorkdirLock> {
  const staleMs = options.staleMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  await mkdir(dirname(lockDir), { recursive: true });
  let tookOverFrom: LockOwner | undefined;

  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await mkdir(lockDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = await readOwner(lockDir);
      const age = await ageMs(lockDir);
      if (age === undefined) continue; // released between our mkdir and stat: try again
      const dead = holder !== undefined && holder.host === hostname() && !isAlive(holder.pid);
      // A lock without owner.json is either being written right now or was left half-made.
      if (!dead && age < staleMs) throw lockedError(lockDir, holder);
      // Whichever racer's rename moves the stale lock aside, the one that then wins the mkdir follows
      // the stale holder (and is often not the renamer, still busy removing the old folder).
      tookOverFrom = holder;
      // Rename first: of several processes racing to take over, exactly one rename succeeds.
      const aside = `${lockDir}.stale-${randomBytes(4).toString("hex")}`;
      try {
        await rename(lockDir, aside);
      } catch {
        continue;
      }
      await rm(aside, { recursive: true, force: true });
      continue;
    }
    await writeFileAtomic(join(lockDir, "owner.json"), `${JSON.stringify(owner, null, 2)}\n`, 0o600);
    return held(lockDir, owner, tookOverFrom, heartbeatMs);
  }
  throw new FailedError(`Could not take the lock ${lockDir}: other processes keep taking it. Try again.`);
}

function held(lockDir: string, owner: LockOwner, tookOverFrom: LockOwner | undefined, heartbeatMs: number): WorkdirLock {
  const timer = setInterval(() => {
    const now = new Date();
    utimes(lockDir, now, now).catch(() => {});
  }, heartbeatMs);
  // The heartbeat must not keep a finished CLI alive.
  timer.unref();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    clearInterval(timer);
    // Only remove the lock if it is still ours (a takeover after a long stall would make it not).
    const current = await readOwner(lockDir);
    if (current?.runId === owner.runId) await rm(lockDir, { recursive: true, force: true });
  };
  return { owner, tookOverFrom, release, [Symbol.asyncDispose]: release };
}

/** Who holds the workdir now, for messages and `status`; undefined when nobody does. */
export async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(join(lockDir, "owner.json"), "utf8")) as LockOwner;
  } catch {
    return undefined;
  }
}

async function ageMs(path: string): Promise<number | undefined> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function lockedError(lockDir: string, holder: LockOwner | undefined): FailedError {
  const workdir = dirname(lockDir);
  if (!holder) return new FailedError(`The workdir ${workdir} is being locked by another llama3-trt right now. Try again in a moment.`);
  const started = new Date(holder.startedAt).toLocaleTimeString("en-GB", { hour12: false });
  return new FailedError(
    `The workdir ${workdir} is locked by pid ${holder.pid} on host ${holder.host} ` +
      `(${holder.command}, started ${started}, run ${holder.runId.slice(0, 8)}). ` +
      "Wait for it to finish or stop it; `plan`, `status` and `logs` still work meanwhile.",
  );
}

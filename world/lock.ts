/**
 * One world:up or world:down at a time per world root: a developer's `npm run world:up` and a
 * test run's globalSetup started together would otherwise both start a registry on the same
 * port, or build the same image twice. The lock is a file holding the holder's pid; a lock
 * whose holder died is taken over.
 */
import { mkdir, open, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Log } from "./log.ts";
import type { WorldConfig } from "./paths.ts";
import { isAlive } from "./processes.ts";

/** Long enough for a cold world:up (debootstrap and all builds) run by someone else. */
const WAIT_MS = 20 * 60_000;

export async function withWorldLock<T>(config: WorldConfig, log: Log, work: () => Promise<T>): Promise<T> {
  const file = path.join(config.files.run, "world.lock");
  await mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      const handle = await open(file, "wx");
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number((await readFile(file, "utf8").catch(() => "")).trim());
    if (!Number.isInteger(holder) || holder <= 0 || holder === process.pid || !(await isAlive(holder))) {
      // Left by a process that died (or half-written): take it over.
      await rm(file, { force: true });
      continue;
    }
    if (!announced) {
      log(`waiting for pid ${holder}, which is running world:up or world:down on ${config.root}`);
      announced = true;
    }
    if (Date.now() > deadline) throw new Error(`pid ${holder} has held ${file} for ${WAIT_MS / 60_000} minutes: if it is stuck, stop it and retry`);
    await sleep(500);
  }
  try {
    return await work();
  } finally {
    const holder = Number((await readFile(file, "utf8").catch(() => "")).trim());
    if (holder === process.pid) await rm(file, { force: true });
  }
}

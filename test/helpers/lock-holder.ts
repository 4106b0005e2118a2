/**
 * A helper process that takes a workdir lock and holds it until killed, for tests whose promise
 * is across processes (reliability case 22; Terraform's TestFilesystemLocks pattern).
 * Usage: node test/helpers/lock-holder.ts <lockDir> <runId>. Prints its owner as one JSON line
 * once the lock is held.
 */
import { hostname } from "node:os";
import { acquireLock } from "../../src/pipeline/lock.ts";

const [lockDir, runId] = process.argv.slice(2) as [string, string];
const lock = await acquireLock(lockDir, { pid: process.pid, host: hostname(), command: "build", startedAt: new Date().toISOString(), runId });
process.stdout.write(`${JSON.stringify(lock.owner)}\n`);
// The heartbeat is unref'd so that it cannot keep a finished CLI alive; this timer keeps the holder alive.
setInterval(() => {}, 1 << 30);

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FailedError } from "../../../src/common/errors.ts";
import { acquireLock, readOwner, type LockOwner } from "../../../src/pipeline/lock.ts";
import { tempDir } from "../../helpers/tmp.ts";

const owner = (runId: string, pid = process.pid): LockOwner => ({
  pid,
  host: hostname(),
  command: "build",
  startedAt: new Date().toISOString(),
  runId,
});

/** A process that is certainly dead: spawned, then waited for. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""]);
  await new Promise((resolve) => child.on("exit", resolve));
  return child.pid as number;
}

describe("the workdir lock", () => {
  it("refuses a second holder, naming the first", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    await using first = await acquireLock(lockDir, owner("run-one"));
    const second = acquireLock(lockDir, owner("run-two"));
    await expect(second).rejects.toThrow(FailedError);
    await expect(acquireLock(lockDir, owner("run-two"))).rejects.toThrow(
      new RegExp(`locked by pid ${process.pid} on host ${hostname()} \\(build, started \\d\\d:\\d\\d:\\d\\d, run run-one\\)`),
    );
    expect((await readOwner(lockDir))?.runId).toBe(first.owner.runId);
  });

  it("is free again after release", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    const first = await acquireLock(lockDir, owner("a"));
    await first.release();
    expect(existsSync(lockDir)).toBe(false);
    await using second = await acquireLock(lockDir, owner("b"));
    expect(second.tookOverFrom).toBeUndefined();
  });

  it("takes over at once from a dead process on this host", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    const dead = owner("dead-run", await deadPid());
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify(dead));
    await using lock = await acquireLock(lockDir, owner("new-run"));
    expect(lock.tookOverFrom).toEqual(dead);
  });

  it("takes over from a live holder only once its heartbeat is stale", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify({ ...owner("hung"), host: "other-host" }));
    await expect(acquireLock(lockDir, owner("x"), { staleMs: 60_000 })).rejects.toThrow("locked by pid");
    const old = new Date(Date.now() - 120_000);
    utimesSync(lockDir, old, old);
    await using lock = await acquireLock(lockDir, owner("x"), { staleMs: 60_000 });
    expect(lock.tookOverFrom?.runId).toBe("hung");
  });
});

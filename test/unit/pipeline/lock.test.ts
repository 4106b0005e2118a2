import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { FailedError } from "../../../src/common/errors.ts";
import { acquireLock, isAlive, readOwner, type LockOwner } from "../../../src/pipeline/lock.ts";
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

/** A real helper process holding the lock (test/helpers/lock-holder.ts), once it says it does. */
async function holderProcess(lockDir: string, runId: string): Promise<{ child: ChildProcess; owner: LockOwner }> {
  const script = new URL("../../helpers/lock-holder.ts", import.meta.url).pathname;
  const child = spawn(process.execPath, [script, lockDir, runId], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.on("exit", (code) => reject(new Error(`the lock holder exited (${code}) before taking the lock`)));
  });
  return { child, owner: JSON.parse(line) as LockOwner };
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.on("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

const setAge = (path: string, ms: number) => {
  const then = new Date(Date.now() - ms);
  utimesSync(path, then, then);
};
const ageOf = (path: string) => Date.now() - statSync(path).mtimeMs;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Case 22.
describe("the workdir lock across processes", () => {
  it("a live holder process is refused, named; after its kill -9 the lock is taken over at once", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, "w", ".lock");
    const holder = await holderProcess(lockDir, "7f3a9c1e-0b2d-4e5f-8a6b-1c2d3e4f5a6b");
    try {
      vi.stubEnv("TZ", "UTC");
      const started = new Date(holder.owner.startedAt).toISOString().slice(11, 19);
      const refusal = acquireLock(lockDir, owner("second"));
      await expect(refusal).rejects.toThrow(FailedError);
      await expect(refusal).rejects.toThrow(
        `The workdir ${join(dir.path, "w")} is locked by pid ${holder.child.pid} on host ${hostname()} (build, started ${started}, run 7f3a9c1e). ` +
          "Wait for it to finish or stop it; `plan`, `status` and `logs` still work meanwhile.",
      );
      expect(await readOwner(lockDir)).toEqual(holder.owner);
    } finally {
      await kill9(holder.child);
    }

    const started = Date.now();
    await using lock = await acquireLock(lockDir, owner("after-the-kill"));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(lock.tookOverFrom).toEqual(holder.owner);
    expect(lock.owner.runId).toBe("after-the-kill");
    expect(await readOwner(lockDir)).toEqual(lock.owner);
  });
});

describe("the workdir lock", () => {
  it("creates the workdir, writes its owner for nobody else to read, and is gone after release", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, "new-workdir", ".lock");
    const me = owner("a");
    const lock = await acquireLock(lockDir, me);
    expect(lock.owner).toEqual(me);
    expect(lock.tookOverFrom).toBeUndefined();
    expect(JSON.parse(readFileSync(join(lockDir, "owner.json"), "utf8"))).toEqual(me);
    expect(statSync(join(lockDir, "owner.json")).mode & 0o777).toBe(0o600);
    await lock.release();
    expect(existsSync(lockDir)).toBe(false);
    expect(existsSync(join(dir.path, "new-workdir"))).toBe(true);
    await using second = await acquireLock(lockDir, owner("b"));
    expect(second.tookOverFrom).toBeUndefined();
  });

  it("is released by `await using` at the end of the scope", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    {
      await using _lock = await acquireLock(lockDir, owner("scoped"));
      expect(existsSync(lockDir)).toBe(true);
    }
    expect(existsSync(lockDir)).toBe(false);
  });

  it("takes over at once from a dead process on this host", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    const dead = owner("dead-run", await deadPid());
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify(dead));
    await using lock = await acquireLock(lockDir, owner("new-run"));
    expect(lock.tookOverFrom).toEqual(dead);
    expect((await readOwner(lockDir))?.runId).toBe("new-run");
  });

  it("does not judge a pid of another host by this host's processes: it waits for the heartbeat to go stale", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    const elsewhere = { ...owner("remote-run", await deadPid()), host: "other-host" };
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify(elsewhere));
    await expect(acquireLock(lockDir, owner("x"), { staleMs: 60_000 })).rejects.toThrow(`locked by pid ${elsewhere.pid} on host other-host`);
    setAge(lockDir, 120_000);
    await using lock = await acquireLock(lockDir, owner("x"), { staleMs: 60_000 });
    expect(lock.tookOverFrom).toEqual(elsewhere);
  });

  it("waits 30 s by default before taking over a lock whose heartbeat stopped", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify({ ...owner("hung"), host: "other-host" }));
    setAge(lockDir, 20_000);
    await expect(acquireLock(lockDir, owner("x"))).rejects.toThrow("locked by pid");
    setAge(lockDir, 40_000);
    await using lock = await acquireLock(lockDir, owner("x"));
    expect(lock.tookOverFrom?.runId).toBe("hung");
  });

  it("counts a heartbeat exactly staleMs old as stale", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify({ ...owner("hung"), host: "other-host" }));
    // Whole seconds, so that the folder's mtime and the faked clock are exactly 1000 ms apart.
    const beat = new Date("2026-11-25T12:01:07.000Z");
    utimesSync(lockDir, beat, beat);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(beat.getTime() + 999);
      await expect(acquireLock(lockDir, owner("x"), { staleMs: 1_000 })).rejects.toThrow("locked by pid");
      vi.setSystemTime(beat.getTime() + 1_000);
      await using lock = await acquireLock(lockDir, owner("x"), { staleMs: 1_000 });
      expect(lock.tookOverFrom?.runId).toBe("hung");
    } finally {
      vi.useRealTimers();
    }
  });

  it("of two racing to take over a dead holder's lock, exactly one wins", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    const dead = owner("dead-run", await deadPid());
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify(dead));
    const results = await Promise.allSettled([acquireLock(lockDir, owner("one")), acquireLock(lockDir, owner("two"))]);
    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(FailedError);
    // Which of the two wins, and whether it saw the dead owner before the other moved it aside
    // (then tookOverFrom is the dead run; otherwise undefined), is up to the scheduler: not asserted.
    expect(await readOwner(lockDir)).toEqual(won[0]?.owner);
    await won[0]?.release();
    expect(existsSync(lockDir)).toBe(false);
  });

  it("a lock being made right now (no owner yet) is refused as such; one left half-made is taken over once stale", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    mkdirSync(lockDir);
    await expect(acquireLock(lockDir, owner("x"))).rejects.toThrow(
      new FailedError(`The workdir ${dir.path} is being locked by another llama3-trt right now. Try again in a moment.`),
    );
    setAge(lockDir, 60_000);
    await using lock = await acquireLock(lockDir, owner("x"));
    expect(lock.tookOverFrom).toBeUndefined();
    expect((await readOwner(lockDir))?.runId).toBe("x");
  });

  it("gives up after a few tries, with a message, on a lock it cannot even look at (a dangling symlink)", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    symlinkSync(join(dir.path, "nowhere"), lockDir);
    await expect(acquireLock(lockDir, owner("x"))).rejects.toThrow(
      new FailedError(`Could not take the lock ${lockDir}: other processes keep taking it. Try again.`),
    );
    expect(lstatSync(lockDir).isSymbolicLink()).toBe(true);
    expect(existsSync(join(dir.path, "nowhere"))).toBe(false);
  });

  it("reports an unexpected error as it is, not as another holder", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, "x".repeat(300));
    await expect(acquireLock(lockDir, owner("x"))).rejects.toMatchObject({ code: "ENAMETOOLONG" });
  });
});

describe("the lock's heartbeat", () => {
  it("keeps a live holder's lock fresh, so that it is never taken over as stale", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    // Another host: only the heartbeat can tell that this holder is alive.
    await using _held = await acquireLock(lockDir, { ...owner("alive"), host: "other-host" }, { heartbeatMs: 20 });
    setAge(lockDir, 3_600_000);
    await vi.waitFor(() => expect(ageOf(lockDir)).toBeLessThan(5_000), { timeout: 5_000, interval: 10 });
    await sleep(300);
    await expect(acquireLock(lockDir, owner("x"), { staleMs: 200 })).rejects.toThrow("locked by pid");
  });

  it("beats every 5 s by default, not in a busy loop", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    await using _held = await acquireLock(lockDir, owner("a"));
    setAge(lockDir, 3_600_000);
    await sleep(100);
    expect(ageOf(lockDir)).toBeGreaterThan(3_500_000);
  });

  it("does not keep a finished CLI alive", async () => {
    using dir = tempDir();
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    const before = timers();
    await using _held = await acquireLock(join(dir.path, ".lock"), owner("a"), { heartbeatMs: 10 });
    expect(timers()).toBe(before);
  });

  it("stops at release: it would otherwise keep a later holder's dead lock looking alive", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    const lock = await acquireLock(lockDir, owner("a"), { heartbeatMs: 10 });
    await lock.release();
    mkdirSync(lockDir);
    setAge(lockDir, 3_600_000);
    await sleep(150);
    expect(ageOf(lockDir)).toBeGreaterThan(3_500_000);
  });
});

describe("releasing the lock", () => {
  it("leaves a lock another run took over after a stall", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    const lock = await acquireLock(lockDir, owner("stalled"));
    const other = owner("took-over");
    writeFileSync(join(lockDir, "owner.json"), JSON.stringify(other));
    await lock.release();
    expect(await readOwner(lockDir)).toEqual(other);
  });

  it("leaves a lock another process is making right now (no owner yet)", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    const lock = await acquireLock(lockDir, owner("stalled"));
    rmSync(join(lockDir, "owner.json"));
    await lock.release();
    expect(existsSync(lockDir)).toBe(true);
  });

  it("twice does nothing the second time, even to a later lock of the same run", async () => {
    using dir = tempDir();
    const lockDir = join(dir.path, ".lock");
    const first = await acquireLock(lockDir, owner("run"));
    await first.release();
    await using second = await acquireLock(lockDir, owner("run"));
    await first.release();
    expect(await readOwner(lockDir)).toEqual(second.owner);
  });
});

describe("isAlive", () => {
  it("tells a live process from a dead one; another user's process counts as alive", async () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(await deadPid())).toBe(false);
    // pid 1 belongs to root: kill(1, 0) is EPERM for anyone else, and that still means alive.
    expect(isAlive(1)).toBe(true);
  });
});

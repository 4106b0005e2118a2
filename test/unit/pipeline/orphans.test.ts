import { spawn, spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { ownerLabels } from "../../../src/docker/labels.ts";
import { isOrphan } from "../../../src/pipeline/orphans.ts";

/** A pid that existed and is gone: a child that has exited and been waited for. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

const labels = (role: string, pid: number, host = hostname()) => ({
  labels: ownerLabels({ workdirId: "w", runId: "r", role, pid, host }),
});

describe("what an orphan container is (case 29)", () => {
  it("one whose owning process on this host is dead", () => {
    expect(isOrphan(labels("engine", deadPid()))).toBe(true);
    expect(isOrphan(labels("ask-local", deadPid()))).toBe(true);
  });

  it("never one of a live process: this one, or another (a concurrent ask --local)", async () => {
    expect(isOrphan(labels("engine", process.pid))).toBe(false);
    const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    try {
      expect(isOrphan(labels("ask-local", other.pid as number))).toBe(false);
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("never the detached server, whose CLI ends on purpose", () => {
    expect(isOrphan(labels("server", deadPid()))).toBe(false);
  });

  it("never one from another host or without a readable owner", () => {
    expect(isOrphan(labels("engine", deadPid(), "another-host"))).toBe(false);
    expect(isOrphan({ labels: { "dev.llama3-trt.role": "engine", "dev.llama3-trt.host": hostname() } })).toBe(false);
    expect(isOrphan({ labels: { ...labels("engine", 1).labels, "dev.llama3-trt.pid": "x" } })).toBe(false);
  });
});

import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { sandbox } from "../helpers/product.ts";
import { useWorld } from "../helpers/world.ts";

interface Doc {
  ok: boolean;
  checks: { name: string; status: string; detail: string; fix?: string }[];
}

const DENIED = "hf_worldDENIEDbbbbbbbbbbbbbbbbbbbbbbb";

describe("doctor against the test world", { timeout: 120_000 }, () => {
  it("says ok for a host that can build (--gpus none), with the token's user and the model's size", async () => {
    await using world = useWorld();
    await using box = sandbox(world);
    const result = await box.run(["doctor", "--json"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const doc = JSON.parse(result.stdout) as Doc;
    expect(doc.ok).toBe(true);
    const status = Object.fromEntries(doc.checks.map((c) => [c.name, c.status]));
    expect(status).toEqual({
      "Docker engine": "ok",
      "NVIDIA container runtime": "skipped",
      GPUs: "skipped",
      "Hugging Face token": "ok",
      "Model access": "ok",
      Disk: "ok",
      Ports: "ok",
      Model: "ok",
      // No GPU to plan for: doctor says how to plan for one.
      Memory: "skipped",
    });
    expect(doc.checks.find((c) => c.name === "Hugging Face token")?.detail).toContain("user world-user");
    expect(doc.checks.find((c) => c.name === "Model")?.detail).toContain("LlamaForCausalLM, 8.03 B parameters, 8192 positions");
    expect(doc.checks.find((c) => c.name === "Memory")?.detail).toContain("pass --gpu <profile>");
    expect(result.stdout).not.toContain(world.env.HF_TOKEN);
  });

  it("names each blocker with its fix and exits 1: no NVIDIA runtime, no token, a token without access", async () => {
    await using world = useWorld();
    await using box = sandbox(world);
    const gpu = JSON.parse((await box.run(["doctor", "--json", "--gpus", "all"])).stdout) as Doc;
    expect(gpu.checks.find((c) => c.name === "NVIDIA container runtime")).toMatchObject({ status: "blocker" });

    const noToken = await box.run(["doctor", "--json"], { HF_TOKEN: "" });
    expect(noToken.exitCode).toBe(1);
    expect((JSON.parse(noToken.stdout) as Doc).checks.find((c) => c.name === "Hugging Face token")).toMatchObject({
      status: "blocker",
      detail: expect.stringContaining("no token (looked in HF_TOKEN"),
    });

    // Model info is served to anyone for a gated repo: only auth-check tells (reliability J7).
    const denied = await box.run(["doctor", "--json"], { HF_TOKEN: DENIED });
    expect(denied.exitCode).toBe(1);
    const doc = JSON.parse(denied.stdout) as Doc;
    expect(doc.checks.find((c) => c.name === "Hugging Face token")?.status).toBe("ok");
    expect(doc.checks.find((c) => c.name === "Model access")).toMatchObject({ status: "blocker", detail: expect.stringContaining("has no access to") });
    expect(denied.stdout).not.toContain(DENIED);
  });

  it("a port in use is a blocker; no Docker engine is a blocker", async () => {
    await using world = useWorld();
    await using box = sandbox(world);
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(18473, "127.0.0.1", resolve));
    try {
      const result = await box.run(["doctor", "--json", "--port", "18473"]);
      expect(result.exitCode).toBe(1);
      expect((JSON.parse(result.stdout) as Doc).checks.find((c) => c.name === "Ports")).toMatchObject({ status: "blocker", detail: expect.stringMatching(/^in use on 127\.0\.0\.1: 18473( \(by pid \d+ .*\))?$/) });
    } finally {
      server.close();
    }
    const noDocker = await box.run(["doctor", "--json"], { DOCKER_HOST: "unix:///nonexistent.sock" });
    expect(noDocker.exitCode).toBe(1);
    expect((JSON.parse(noDocker.stdout) as Doc).checks[0]).toMatchObject({ name: "Docker engine", status: "blocker" });
  });

  it("HF_HUB_OFFLINE skips the token check and says so", async () => {
    await using world = useWorld();
    await using box = sandbox(world);
    const doc = JSON.parse((await box.run(["doctor", "--json"], { HF_HUB_OFFLINE: "1" })).stdout) as Doc;
    expect(doc.checks.find((c) => c.name === "Hugging Face token")).toMatchObject({ status: "skipped", detail: expect.stringContaining("HF_HUB_OFFLINE") });
  });
});

describe("doctor's GPU check runs the host's nvidia-smi", { timeout: 120_000 }, () => {
  /** A folder on PATH whose nvidia-smi prints `stdout` and exits `code` (the real one needs a GPU). */
  function fakeNvidiaSmi(dir: string, script: string): string {
    const bin = join(dir, "fake-bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "nvidia-smi"), `#!/bin/sh\n${script}\n`);
    chmodSync(join(bin, "nvidia-smi"), 0o755);
    return `${bin}:${process.env.PATH}`;
  }

  it("reads the GPUs from its CSV (an H100 80GB captured for real), and names a failure with its own words", async () => {
    await using world = useWorld();
    await using box = sandbox(world);
    const csv = fileURLToPath(new URL("../fixtures/nvidia-smi/h100-80gb/nvidia-smi-query.csv", import.meta.url));
    const ok = await box.run(["doctor", "--json", "--gpus", "all"], {
      PATH: fakeNvidiaSmi(box.dir, `[ "$1" = "--query-gpu=index,name,uuid,memory.total,memory.used,memory.free,compute_cap,driver_version" ] && [ "$2" = "--format=csv" ] || exit 64\ncat ${csv}`),
    });
    const gpus = (JSON.parse(ok.stdout) as Doc).checks.find((c) => c.name === "GPUs");
    expect(gpus).toMatchObject({ status: "ok", detail: "0: NVIDIA H100 80GB HBM3, 80 GiB, compute 9" });

    const failing = await box.run(["doctor", "--json", "--gpus", "all"], {
      PATH: fakeNvidiaSmi(box.dir, `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2\nexit 9`),
    });
    expect(failing.exitCode).toBe(1);
    expect((JSON.parse(failing.stdout) as Doc).checks.find((c) => c.name === "GPUs")).toMatchObject({
      status: "blocker",
      detail: "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    });
  });
});

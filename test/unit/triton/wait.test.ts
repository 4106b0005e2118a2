import { describe, expect, it } from "vitest";
import type { Clock } from "../../../src/common/clock.ts";
import { InterruptedError } from "../../../src/common/errors.ts";
import { likelyCause } from "../../../src/triton/diagnosis.ts";
import { waitForReady, type ContainerState, type ProbeResult } from "../../../src/triton/wait.ts";

/** A clock that moves only when the code under test sleeps: timeouts are exact and instant. */
function fakeClock(): Clock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      slept.push(ms);
      now += ms;
    },
  };
}

const running: ContainerState = { running: true, exitCode: null, oomKilled: false };
const notReady = async (): Promise<ProbeResult> => ({ ok: false, detail: "HTTP 400" });

describe("waiting for /v2/health/ready", () => {
  it("is ready at the first 200", async () => {
    const clock = fakeClock();
    let probes = 0;
    const outcome = await waitForReady({
      probe: async () => ({ ok: ++probes === 4, detail: probes === 4 ? "HTTP 200" : "connection refused" }),
      container: async () => running,
      timeoutMs: 10_000,
      intervalMs: 500,
      clock,
      signal: new AbortController().signal,
    });
    expect(outcome).toEqual({ ready: true, ms: 1_500 });
    expect(probes).toBe(4);
  });

  it("gives up exactly at the timeout, saying what the last probe saw", async () => {
    const clock = fakeClock();
    const outcome = await waitForReady({ probe: notReady, container: async () => running, timeoutMs: 1_200, intervalMs: 500, clock, signal: new AbortController().signal });
    expect(outcome).toEqual({ ready: false, reason: "timeout", lastProbe: "HTTP 400", ms: 1_200 });
    // The last sleep is cut to the time left, so the wait never overshoots.
    expect(clock.slept).toEqual([500, 500, 200]);
  });

  it("stops at once when the container exits, without waiting for the timeout", async () => {
    const clock = fakeClock();
    let rounds = 0;
    const outcome = await waitForReady({
      probe: notReady,
      container: async () => (++rounds < 3 ? running : { running: false, exitCode: 1, oomKilled: false }),
      timeoutMs: 600_000,
      intervalMs: 500,
      clock,
      signal: new AbortController().signal,
    });
    expect(outcome).toEqual({ ready: false, reason: "exited", exitCode: 1, oomKilled: false, ms: 1_000 });
  });

  it("says so when the container is gone", async () => {
    const outcome = await waitForReady({ probe: notReady, container: async () => undefined, timeoutMs: 1_000, clock: fakeClock(), signal: new AbortController().signal });
    expect(outcome).toMatchObject({ ready: false, reason: "gone" });
  });

  it("ends with InterruptedError on Ctrl-C", async () => {
    const controller = new AbortController();
    let probes = 0;
    const waiting = waitForReady({
      probe: async () => {
        if (++probes === 2) controller.abort();
        return { ok: false, detail: "HTTP 400" };
      },
      container: async () => running,
      timeoutMs: 600_000,
      clock: fakeClock(),
      signal: controller.signal,
    });
    await expect(waiting).rejects.toBeInstanceOf(InterruptedError);
  });
});

describe("the likely cause of a failed start", () => {
  const exited = { ready: false, reason: "exited", exitCode: 1, oomKilled: false, ms: 0 } as const;

  it.each([
    ["E0101 00:00:00.000000 1 model_lifecycle.cc:638] failed to load 'tensorrt_llm' version 1: [TensorRT-LLM][ERROR] Assertion failed: Number of MPI processes (1) must equal the engine's world size tp_size*pp_size (2*1=2)", /ran 1 rank\(s\) but the engine needs 2\*1=2/],
    ["could not select device driver \"\" with capabilities: [[gpu]]", /NVIDIA Container Toolkit/],
    ["RuntimeError: [TensorRT-LLM][ERROR] CUDA runtime error in cudaMalloc: out of memory", /GPU ran out of memory/],
    ["E0101 00:00:00.000000 1 model_repository_manager.cc:1335] Poll failed for model directory 'ensemble': failed to read text proto from /r/ensemble/config.pbtxt", /does not parse/],
    ["The engine plan file is not compatible with this version of TensorRT-LLM (0.8.0)", /another TensorRT-LLM\/TensorRT version/],
    ["E0101 00:00:00.000000 1 model_lifecycle.cc:638] failed to load 'preprocessing' version 1: Internal: OSError: Can't load tokenizer for '/llama3-trt/weights/x'", /tokenizer folder/],
    ["E1125 17:37:56.412036 8 server.cc:251] something specific went wrong", /Triton reported: something specific went wrong/],
  ])("%s", (line, cause) => {
    expect(likelyCause(["I0101 noise", line, "I0101 more noise"], exited, 600)).toMatch(cause);
  });

  it("prefers the specific cause to Triton's generic error line", () => {
    const lines = [
      "E0101 00:00:00.000000 1 model_lifecycle.cc:638] failed to load 'tensorrt_llm' version 1: CUDA out of memory",
      "E0101 00:00:00.000000 1 server.cc:251] failed to load all models",
    ];
    expect(likelyCause(lines, exited, 600)).toMatch(/GPU ran out of memory/);
  });

  it("names the timeout and --timeout when the log says nothing", () => {
    expect(likelyCause(["I0101 loading"], { ready: false, reason: "timeout", lastProbe: "HTTP 400", ms: 5_000 }, 5)).toMatch(
      /not ready within 5 s \(last check: HTTP 400\).*`--timeout`/,
    );
  });

  it("names the OOM killer", () => {
    expect(likelyCause([], { ...exited, exitCode: 137, oomKilled: true }, 600)).toMatch(/OOM killer/);
  });
});

import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { InterruptedError } from "../../../src/common/errors.ts";
import { retryDelayMs, sleep } from "../../../src/hub/hub-client.ts";

describe("the retry schedule", () => {
  it("waits 1, 2, 4, 8, 8 s before retries 1 to 5 (huggingface_hub's backoff), and never more than 8 s", () => {
    expect([1, 2, 3, 4, 5, 6, 20].map(retryDelayMs)).toEqual([1000, 2000, 4000, 8000, 8000, 8000, 8000]);
  });
});

describe("sleep", () => {
  it("waits the time asked, then lets go of the signal", async () => {
    const signal = new AbortController().signal;
    const started = performance.now();
    await sleep(30, signal);
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
    // Many retries on one signal must not pile up listeners (Node warns past 10).
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("ends at once with InterruptedError when the signal aborts, or has aborted already", async () => {
    const controller = new AbortController();
    const waiting = sleep(60_000, controller.signal);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(InterruptedError);
    const late = await Promise.race([
      sleep(60_000, controller.signal).then(
        () => "resolved",
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve("still waiting"), 200)),
    ]);
    expect(late).toBeInstanceOf(InterruptedError);
  });
});

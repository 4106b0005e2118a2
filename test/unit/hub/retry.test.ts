import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { InterruptedError } from "../../../src/common/errors.ts";
import { retryDelayMs, sleep } from "../../../src/hub/hub-client.ts";

describe("the retry schedule", () => {
  it("waits 1, 2, 4, 8, 8 s before retries 1 to 5 (huggingface_hub's backoff), and never more than 8 s", () => {
    expect([1, 2, 3, 4, 5, 6, 20].map(retryDelayMs)).toEqual([1000, 2000, 4000, 8000, 8000, 8000, 8000]);
  });
});

/** What a promise has done 200 ms from now: its value, its error, or "still waiting". */
async function within200ms(promise: Promise<unknown>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      () => "resolved",
      (error: unknown) => error,
    ),
    new Promise((resolve) => (timer = setTimeout(() => resolve("still waiting"), 200))),
  ]);
  clearTimeout(timer);
  return outcome;
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("sleep", () => {
  it("waits the time asked, then lets go of the signal", async () => {
    const signal = new AbortController().signal;
    const started = performance.now();
    expect(await within200ms(sleep(30, signal))).toBe("resolved");
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
    // Many retries on one signal must not pile up listeners (Node warns past 10).
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("ends at once with InterruptedError when the signal aborts, and leaves no timer behind", async () => {
    const before = timers();
    const controller = new AbortController();
    const waiting = sleep(60_000, controller.signal);
    expect(timers()).toBe(before + 1);
    controller.abort();
    const error = await within200ms(waiting);
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe("interrupted");
    // A timer left running would hold the process up to 8 s after Ctrl-C.
    expect(timers()).toBe(before);
  });

  it("ends at once when the signal has aborted already", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await within200ms(sleep(60_000, controller.signal));
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe("interrupted");
  });
});

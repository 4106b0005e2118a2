import { describe, expect, it } from "vitest";
import { distribution, percentile, pointMetrics, type RequestTiming } from "../../../src/bench/metrics.ts";

describe("percentile (numpy's linear interpolation)", () => {
  it("matches numpy.percentile on small arrays", () => {
    // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) = [2.5, 3.7, 3.97]
    expect(percentile([1, 2, 3, 4], 50)).toBeCloseTo(2.5, 12);
    expect(percentile([1, 2, 3, 4], 90)).toBeCloseTo(3.7, 12);
    expect(percentile([1, 2, 3, 4], 99)).toBeCloseTo(3.97, 12);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([10, 20], 0)).toBe(10);
    expect(percentile([10, 20], 100)).toBe(20);
  });

  it("refuses no values; a distribution of none is all null", () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(distribution([])).toEqual({ mean: null, p50: null, p90: null, p99: null, min: null, max: null });
  });

  it("sorts before ranking", () => {
    expect(distribution([30, 10, 20])).toEqual({ mean: 20, p50: 20, p90: 28, p99: 29.8, min: 10, max: 30 });
  });
});

describe("pointMetrics", () => {
  const ok = (startMs: number, ttftMs: number, itlMs: number[], outputTokens: number, inputTokens = 100): RequestTiming => ({
    startMs,
    ttftMs,
    itlMs,
    e2eMs: ttftMs + itlMs.reduce((a, b) => a + b, 0),
    inputTokens,
    outputTokens,
  });

  it("computes the vllm/GenAI-Perf figures: TTFT and e2e per request, ITL pooled over gaps, TPOT per request, throughput over the duration", () => {
    const timings = [
      ok(0, 100, [10, 10, 10], 4), // e2e 130, tpot (130-100)/3 = 10
      ok(0, 200, [20, 40], 3), // e2e 260, tpot 60/2 = 30
      { startMs: 5, itlMs: [], inputTokens: 100, outputTokens: 0, error: "HTTP 400: too long" },
      { startMs: 6, itlMs: [], inputTokens: 100, outputTokens: 0, error: "HTTP 400: too long" },
      { startMs: 7, itlMs: [], inputTokens: 100, outputTokens: 0, error: "reset" },
    ];
    const m = pointMetrics({ concurrency: 2 }, timings, 2000);
    expect(m).toMatchObject({ concurrency: 2, requests: 5, completed: 2, errors: 3, duration_s: 2 });
    expect(m.ttft_ms).toMatchObject({ mean: 150, p50: 150, min: 100, max: 200 });
    expect(m.e2e_ms).toMatchObject({ mean: 195, min: 130, max: 260 });
    expect(m.itl_ms).toMatchObject({ mean: 18, p50: 10, min: 10, max: 40 });
    expect(m.tpot_ms).toMatchObject({ mean: 20, min: 10, max: 30 });
    expect(m.requests_per_s).toBe(1);
    expect(m.output_tokens_per_s).toBe(3.5);
    expect(m.total_tokens_per_s).toBe(103.5);
    expect(m.input_tokens).toEqual({ total: 200, mean: 100 });
    expect(m.output_tokens).toEqual({ total: 7, mean: 3.5 });
    expect(m.error_messages).toEqual([
      { message: "HTTP 400: too long", count: 2 },
      { message: "reset", count: 1 },
    ]);
  });

  it("a one-token answer has no TPOT; a rate point carries its rate; nothing done is zero throughput", () => {
    const m = pointMetrics({ rate: 2.5 }, [ok(0, 50, [], 1)], 1000);
    expect(m.rate).toBe(2.5);
    expect(m.concurrency).toBeUndefined();
    expect(m.tpot_ms.mean).toBeNull();
    expect(m.itl_ms.mean).toBeNull();
    const none = pointMetrics({ concurrency: 1 }, [], 0);
    expect(none).toMatchObject({ requests: 0, completed: 0, requests_per_s: 0, output_tokens_per_s: 0, input_tokens: { total: 0, mean: null } });
  });
});

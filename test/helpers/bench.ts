import { expect } from "vitest";
import type { BenchReport } from "../../src/bench/report.ts";

/** Every field of a `bench --json` document (contract: "Machine-readable output"), of the right type. */
export function expectEveryField(doc: BenchReport, points: number): void {
  expect(doc.format).toBe("llama3-trt-bench/1");
  expect(Object.keys(doc).sort()).toEqual(["deployment", "format", "points", "started_at", "target", "tool", "workload"]);
  expect(doc.points).toHaveLength(points);
  for (const p of doc.points) {
    for (const key of ["requests", "completed", "errors", "duration_s", "requests_per_s", "output_tokens_per_s", "total_tokens_per_s"] as const) {
      expect(typeof p[key], key).toBe("number");
    }
    for (const key of ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"] as const) {
      expect(Object.keys(p[key]).sort(), key).toEqual(["max", "mean", "min", "p50", "p90", "p99"]);
      for (const stat of ["mean", "p50", "p90", "p99"] as const) expect(p[key][stat], `${key}.${stat}`).toBeTypeOf("number");
    }
    expect(p.concurrency ?? p.rate).toBeTypeOf("number");
    expect(p.per_request).toHaveLength(p.requests);
    for (const r of p.per_request) {
      expect(Object.keys(r)).toEqual(expect.arrayContaining(["start_ms", "ttft_ms", "e2e_ms", "itl_ms", "input_tokens", "output_tokens"]));
    }
    expect(typeof p.client.event_loop_lag_p99_ms).toBe("number");
  }
}

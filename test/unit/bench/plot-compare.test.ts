import { describe, expect, it } from "vitest";
import { compareReports, comparisonText } from "../../../src/bench/compare.ts";
import { pointMetrics, type RequestTiming } from "../../../src/bench/metrics.ts";
import { plotSvg, ticks } from "../../../src/bench/plot.ts";
import { benchFormat, type BenchReport, pointReport, tableHeader, tableRow } from "../../../src/bench/report.ts";

const timing = (ttftMs: number, e2eMs: number): RequestTiming => ({ startMs: 0, ttftMs, e2eMs, itlMs: [10, 10], inputTokens: 8, outputTokens: 3 });

function report(points: { concurrency: number; e2e: number }[], deployment: Record<string, string | number> = {}): BenchReport {
  return {
    format: benchFormat,
    tool: "llama3-trt test",
    started_at: "2026-12-02T00:00:00.000Z",
    target: { api: "triton", url: "http://127.0.0.1:8000", model: "m <&> \"q\"" },
    deployment,
    workload: {
      prompts: "synthetic",
      input_len: { mean: 8, stddev: 0 },
      output_len: { mean: 3, stddev: 0 },
      exact_output_length: { supported: true, how: "min_length" },
      tokenizer: "/t",
      seed: 0,
      warmup_per_point: "concurrency",
      requests_per_point: 2,
      duration_s_per_point: null,
    },
    points: points.map((p) => pointReport(pointMetrics({ concurrency: p.concurrency }, [timing(50, p.e2e), timing(60, p.e2e)], 1000), [], 0)),
  };
}

describe("the plot", () => {
  it("ticks are round steps that cover the largest value", () => {
    expect(ticks(0)).toEqual([0, 1]);
    expect(ticks(100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(ticks(730)).toEqual([0, 200, 400, 600, 800]);
    expect(ticks(0.37)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
  });

  it("has one point per load point with a result, escapes text, and references nothing outside itself", () => {
    const r = report([
      { concurrency: 1, e2e: 300 },
      { concurrency: 4, e2e: 600 },
    ]);
    const failed = { ...r, points: [...r.points, pointReport(pointMetrics({ concurrency: 16 }, [{ startMs: 0, itlMs: [], inputTokens: 1, outputTokens: 0, error: "x" }], 10), [], 0)] };
    const svg = plotSvg(failed);
    expect(svg.match(/<g class="point" /g)).toHaveLength(2);
    expect(svg).toContain('data-load="c=1"');
    expect(svg).toContain('data-load="c=4"');
    expect(svg).toContain("m &lt;&amp;&gt; &quot;q&quot; (triton)");
    expect(svg).not.toMatch(/<script|href=|url\(/);
  });
});

describe("--compare", () => {
  it("lists the settings that differ and each shared point's figures with b/a; points in one run only are named", () => {
    const a = report(
      [
        { concurrency: 1, e2e: 200 },
        { concurrency: 2, e2e: 300 },
      ],
      { "build.dtype": "bfloat16", "build.tp": 1 },
    );
    const b = report(
      [
        { concurrency: 1, e2e: 400 },
        { concurrency: 8, e2e: 500 },
      ],
      { "build.dtype": "float16", "build.tp": 1 },
    );
    const c = compareReports(a, b, { a: "a.json", b: "b.json" });
    expect(c.settings).toEqual([{ key: "deployment.build.dtype", a: "bfloat16", b: "float16" }]);
    expect(c.points.map((p) => p.load)).toEqual(["c=1"]);
    expect(c.points[0]?.metrics.e2e_p50_ms).toEqual({ a: 200, b: 400, ratio: 2 });
    expect(c.points[0]?.metrics.errors).toEqual({ a: 0, b: 0, ratio: null });
    expect(c.unmatched).toEqual(["c=2 (only in a.json)", "c=8 (only in b.json)"]);
    const text = comparisonText(c);
    expect(text).toContain('deployment.build.dtype: "bfloat16" → "float16"');
    expect(text).toMatch(/e2e_p50_ms\s+200\s+400\s+2\.00x/);
    expect(text).toContain("Not compared: c=2 (only in a.json), c=8 (only in b.json).");
  });

  it("the table has a column per figure and a row per point", () => {
    const r = report([{ concurrency: 4, e2e: 250 }]);
    expect(tableHeader().split("\n")[0]).toMatch(/^load\s+requests\s+errors\s+TTFT p50\s+TTFT p99\s+ITL p50\s+ITL p99\s+TPOT mean\s+E2E p50\s+E2E p99\s+req\/s\s+out tok\/s$/);
    expect(tableRow(r.points[0] as BenchReport["points"][0])).toMatch(/^c=4\s+2\s+0\s+55\.0\s+59\.9\s+10\.0\s+10\.0\s+97\.5\s+250\.0\s+250\.0\s+2\.00\s+6\.0$/);
  });
});

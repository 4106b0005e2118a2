/**
 * What a `bench` run reports: the terminal table (a row per load point as each finishes) and
 * the `--json` document (every point, every request's timings, the deployment and workload).
 */
import type { DeploymentInfo } from "./deployment.ts";
import type { Distribution, PointMetrics, RequestTiming } from "./metrics.ts";

export const benchFormat = "llama3-trt-bench/1";

export interface PointReport extends PointMetrics {
  /** Whether the client may have set the pace: its event loop ran late (p99 lag, ms). */
  readonly client: { readonly event_loop_lag_p99_ms: number; readonly bottleneck: boolean };
  /** Every measured request, in the order they were sent. */
  readonly per_request: readonly {
    readonly start_ms: number;
    readonly ttft_ms: number | null;
    readonly e2e_ms: number | null;
    readonly itl_ms: readonly number[];
    readonly input_tokens: number;
    readonly output_tokens: number;
    readonly error?: string;
  }[];
}

export interface BenchReport {
  readonly format: typeof benchFormat;
  readonly tool: string;
  readonly started_at: string;
  readonly target: { readonly api: "triton" | "openai"; readonly url: string; readonly model: string | null };
  readonly deployment: DeploymentInfo;
  readonly workload: {
    readonly prompts: string;
    readonly input_len: { readonly mean: number; readonly stddev: number } | null;
    readonly output_len: { readonly mean: number; readonly stddev: number };
    readonly exact_output_length: { readonly supported: boolean; readonly how: string };
    readonly tokenizer: string;
    readonly seed: number;
    /** Requests before each point that are not counted; "concurrency": one per client (1 for a rate). */
    readonly warmup_per_point: number | "concurrency";
    readonly requests_per_point: number | null;
    readonly duration_s_per_point: number | null;
  };
  readonly points: readonly PointReport[];
}

/** A client whose event loop runs late by this much (or a quarter of the ITL) is timing itself, not the server. */
const lagLimitMs = 10;

export function pointReport(metrics: PointMetrics, timings: readonly RequestTiming[], eventLoopLagP99Ms: number): PointReport {
  const itl = metrics.itl_ms.p50 ?? 0;
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return {
    ...metrics,
    client: { event_loop_lag_p99_ms: round(eventLoopLagP99Ms), bottleneck: eventLoopLagP99Ms > Math.max(lagLimitMs, itl / 4) },
    per_request: timings.map((t) => ({
      start_ms: round(t.startMs),
      ttft_ms: t.ttftMs === undefined ? null : round(t.ttftMs),
      e2e_ms: t.e2eMs === undefined ? null : round(t.e2eMs),
      itl_ms: t.itlMs.map(round),
      input_tokens: t.inputTokens,
      output_tokens: t.outputTokens,
      ...(t.error === undefined ? {} : { error: t.error }),
    })),
  };
}

export function loadLabel(point: Pick<PointMetrics, "concurrency" | "rate">): string {
  return point.concurrency !== undefined ? `c=${point.concurrency}` : `${point.rate} req/s`;
}

const columns = ["load", "requests", "errors", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "TPOT mean", "E2E p50", "E2E p99", "req/s", "out tok/s"] as const;
const widths = columns.map((c) => Math.max(c.length, 9));

function ms(d: Distribution, key: "p50" | "p99" | "mean"): string {
  const v = d[key];
  return v === null ? "-" : v >= 1000 ? v.toFixed(0) : v.toFixed(1);
}

const row = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");

/** The table's header: latencies in ms, throughput per second. */
export function tableHeader(): string {
  return `${row(columns)}\n${row(columns.map((_, i) => (i >= 3 && i <= 9 ? "ms" : "")))}`;
}

export function tableRow(p: PointMetrics): string {
  return row([
    loadLabel(p),
    String(p.requests),
    String(p.errors),
    ms(p.ttft_ms, "p50"),
    ms(p.ttft_ms, "p99"),
    ms(p.itl_ms, "p50"),
    ms(p.itl_ms, "p99"),
    ms(p.tpot_ms, "mean"),
    ms(p.e2e_ms, "p50"),
    ms(p.e2e_ms, "p99"),
    p.requests_per_s.toFixed(2),
    p.output_tokens_per_s.toFixed(1),
  ]);
}

/**
 * The numbers `bench` reports per load point, with the definitions serving engineers compare
 * deployments by. Pure: the timings come in, the figures go out.
 *
 * Sources of the definitions:
 * - vLLM `vllm bench serve` (vllm/benchmarks/serve.py, `calculate_metrics`): TTFT is the time from
 *   sending a request to its first streamed token; ITL is every gap between two successive
 *   streamed chunks of a request, pooled over all requests; TPOT ("time per output token,
 *   excluding the first") is per request (latency - ttft) / (output_tokens - 1); E2EL is the
 *   request's latency to its last chunk; request throughput is completed requests / benchmark
 *   duration, output throughput is output tokens / duration, total token throughput is
 *   (input + output tokens) / duration; percentiles are numpy's (linear interpolation).
 * - NVIDIA GenAI-Perf (triton-inference-server/perf_analyzer, genai-perf/README.md, "Metrics"):
 *   time to first token and request latency per request, output token throughput = total output
 *   tokens / benchmark duration, request throughput = final responses / duration; output tokens
 *   are counted by tokenizing the response text with the model's tokenizer, and a first response
 *   with no text does not count as the first token.
 */

/** One request's timings, in milliseconds from when it was sent (a monotonic clock). */
export interface RequestTiming {
  /** When it was sent, from the start of its load point. */
  readonly startMs: number;
  /** The first event that carried text. Absent when none came. */
  readonly ttftMs?: number | undefined;
  /** The last event (the end of the answer). Absent for a failed request. */
  readonly e2eMs?: number | undefined;
  /** Gaps between successive events that carried text. */
  readonly itlMs: readonly number[];
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Why it failed; a failed request is counted in `errors` and in no latency. */
  readonly error?: string | undefined;
}

export interface Distribution {
  readonly mean: number | null;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly min: number | null;
  readonly max: number | null;
}

/** The `bench --json` object of one load point (contract: "Machine-readable output"). */
export interface PointMetrics {
  readonly concurrency?: number;
  /** Requests per second of the Poisson arrivals, for a --rate point. */
  readonly rate?: number;
  /** Measured requests sent (the warm-up not included). */
  readonly requests: number;
  readonly completed: number;
  readonly errors: number;
  /** From the first measured request sent to the last one finished. */
  readonly duration_s: number;
  readonly ttft_ms: Distribution;
  readonly itl_ms: Distribution;
  readonly tpot_ms: Distribution;
  readonly e2e_ms: Distribution;
  readonly requests_per_s: number;
  readonly output_tokens_per_s: number;
  readonly total_tokens_per_s: number;
  readonly input_tokens: { readonly total: number; readonly mean: number | null };
  readonly output_tokens: { readonly total: number; readonly mean: number | null };
  /** Each distinct failure and how often it happened. */
  readonly error_messages: readonly { readonly message: string; readonly count: number }[];
}

/** numpy.percentile's default (linear interpolation between the closest ranks) on sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no values");
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low] as number;
  const b = sorted[high] as number;
  return a + (b - a) * (rank - low);
}

export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { mean: null, p50: null, p90: null, p99: null, min: null, max: null };
  const sorted = [...values].sort((x, y) => x - y);
  const sum = sorted.reduce((total, v) => total + v, 0);
  return {
    mean: sum / sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
  };
}

export function pointMetrics(load: { concurrency: number } | { rate: number }, timings: readonly RequestTiming[], durationMs: number): PointMetrics {
  const done = timings.filter((t) => t.error === undefined);
  const failed = timings.filter((t) => t.error !== undefined);
  const seconds = durationMs / 1000;
  const perSecond = (n: number) => (seconds > 0 ? n / seconds : 0);
  const inputTotal = done.reduce((n, t) => n + t.inputTokens, 0);
  const outputTotal = done.reduce((n, t) => n + t.outputTokens, 0);
  const counts = new Map<string, number>();
  for (const t of failed) counts.set(t.error as string, (counts.get(t.error as string) ?? 0) + 1);
  return {
    ...load,
    requests: timings.length,
    completed: done.length,
    errors: failed.length,
    duration_s: seconds,
    ttft_ms: distribution(done.flatMap((t) => (t.ttftMs === undefined ? [] : [t.ttftMs]))),
    itl_ms: distribution(done.flatMap((t) => t.itlMs)),
    tpot_ms: distribution(done.flatMap((t) => (t.ttftMs !== undefined && t.e2eMs !== undefined && t.outputTokens > 1 ? [(t.e2eMs - t.ttftMs) / (t.outputTokens - 1)] : []))),
    e2e_ms: distribution(done.flatMap((t) => (t.e2eMs === undefined ? [] : [t.e2eMs]))),
    requests_per_s: perSecond(done.length),
    output_tokens_per_s: perSecond(outputTotal),
    total_tokens_per_s: perSecond(inputTotal + outputTotal),
    input_tokens: { total: inputTotal, mean: done.length > 0 ? inputTotal / done.length : null },
    output_tokens: { total: outputTotal, mean: done.length > 0 ? outputTotal / done.length : null },
    error_messages: [...counts].map(([message, count]) => ({ message, count })).sort((a, b) => b.count - a.count),
  };
}

/**
 * Load shapes: a closed loop of N concurrent clients (each sends its next request when the last
 * one ended: GenAI-Perf's --concurrency, vllm's --max-concurrency), or an open loop of Poisson
 * arrivals at a rate (vllm's --request-rate: exponential gaps, requests sent whatever is still
 * running). A warm-up runs before each point and is not counted.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { TextTokenizer } from "../model/tokenizer.ts";
import type { RequestTiming } from "./metrics.ts";
import { type BenchPrompt, type PromptMaker, seededRandom } from "./prompts.ts";
import type { BenchTarget, RequestOutcome } from "./targets.ts";

export type LoadPoint = { readonly concurrency: number } | { readonly rate: number };

/** How much each point sends: a number of requests, or new requests for a time. */
export type Budget = { readonly requests: number } | { readonly durationMs: number };

export interface PointRun {
  readonly timings: readonly RequestTiming[];
  readonly durationMs: number;
  /** How late the client's event loop ran (p99, ms): when large, the client, not the server, set the pace. */
  readonly eventLoopLagP99Ms: number;
}

export interface PointOptions {
  readonly load: LoadPoint;
  readonly budget: Budget;
  readonly warmup: number;
  /** Prompt indices of this point start here, so no two points send the same prompt (a KV cache that reuses prefixes would flatter later points). */
  readonly firstIndex: number;
  readonly seed: number;
  readonly target: BenchTarget;
  readonly prompts: PromptMaker;
  readonly tokenizer: TextTokenizer;
  readonly signal: AbortSignal;
  readonly onRequestDone?: (done: number, errors: number) => void;
}

/** The monitor's timer fires every this many ms; what it reports beyond that is lag. */
const lagResolutionMs = 5;

/** Prompts made ahead, for a duration budget: enough for most runs; more are made as needed. */
const promptsAheadForDuration = 256;

export async function runPoint(o: PointOptions): Promise<PointRun> {
  // Prompts are made before the clock starts: tokenizing while requests stream would block the
  // event loop and delay the arrival times of other requests' tokens.
  const ready = new Map<number, BenchPrompt>();
  const ahead = "requests" in o.budget ? o.budget.requests : promptsAheadForDuration;
  for (let i = 0; i < o.warmup; i++) ready.set(o.firstIndex + 900_000 + i, o.prompts.prompt(o.firstIndex + 900_000 + i));
  for (let i = 0; i < ahead; i++) ready.set(o.firstIndex + i, o.prompts.prompt(o.firstIndex + i));
  const send = async (index: number) => {
    const prompt = ready.get(index) ?? o.prompts.prompt(index);
    return { prompt, outcome: await o.target.send(prompt, o.signal) };
  };
  if (o.warmup > 0) {
    const warmupConcurrency = "concurrency" in o.load ? Math.min(o.load.concurrency, o.warmup) : 1;
    await closedLoop(warmupConcurrency, { requests: o.warmup }, o.signal, (i) => send(o.firstIndex + 900_000 + i));
  }

  const monitor = monitorEventLoopDelay({ resolution: lagResolutionMs });
  monitor.enable();
  const timings: RequestTiming[] = [];
  let errors = 0;
  const start = performance.now();
  const measured = async (i: number) => {
    const { prompt, outcome } = await send(o.firstIndex + i);
    const timing = requestTiming(outcome, start, prompt.inputTokens, o.tokenizer);
    timings.push(timing);
    if (timing.error !== undefined) errors++;
    o.onRequestDone?.(timings.length, errors);
  };
  try {
    if ("concurrency" in o.load) await closedLoop(o.load.concurrency, o.budget, o.signal, measured);
    else await poissonLoop(o.load.rate, o.budget, seededRandom(o.seed + o.firstIndex), o.signal, measured);
  } finally {
    monitor.disable();
  }
  const durationMs = performance.now() - start;
  timings.sort((a, b) => a.startMs - b.startMs);
  return { timings, durationMs, eventLoopLagP99Ms: Math.max(0, monitor.percentile(99) / 1e6 - lagResolutionMs) };
}

/** The figures of one request, from its outcome (times relative to when it was sent). */
export function requestTiming(outcome: RequestOutcome, pointStart: number, promptTokens: number, tokenizer: TextTokenizer): RequestTiming {
  const events = outcome.tokenEventsAt;
  const itlMs: number[] = [];
  for (let i = 1; i < events.length; i++) itlMs.push((events[i] as number) - (events[i - 1] as number));
  const first = events[0];
  return {
    startMs: outcome.sentAt - pointStart,
    ttftMs: first === undefined ? undefined : first - outcome.sentAt,
    e2eMs: outcome.error === undefined && outcome.endedAt !== undefined ? outcome.endedAt - outcome.sentAt : undefined,
    itlMs,
    inputTokens: outcome.usage?.promptTokens ?? promptTokens,
    // The server's own count when it gives one (OpenAI usage), else the model's tokenizer on the text (GenAI-Perf, vllm).
    outputTokens: outcome.usage?.completionTokens ?? tokenizer.count(outcome.text),
    ...(outcome.error === undefined ? {} : { error: outcome.error }),
  };
}

/** N clients, each sending its next request when its last one ended. */
async function closedLoop(concurrency: number, budget: Budget, signal: AbortSignal, run: (index: number) => Promise<unknown>): Promise<void> {
  const deadline = "durationMs" in budget ? performance.now() + budget.durationMs : undefined;
  let next = 0;
  const client = async () => {
    for (;;) {
      signal.throwIfAborted();
      if ("requests" in budget && next >= budget.requests) return;
      if (deadline !== undefined && performance.now() >= deadline) return;
      await run(next++);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
}

/** Arrivals with exponential gaps (a Poisson process) at `rate` per second, none waiting for another. */
async function poissonLoop(rate: number, budget: Budget, random: () => number, signal: AbortSignal, run: (index: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  const running: Promise<unknown>[] = [];
  let at = 0;
  for (let i = 0; ; i++) {
    if ("requests" in budget && i >= budget.requests) break;
    if ("durationMs" in budget && at >= budget.durationMs) break;
    const wait = start + at - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
    signal.throwIfAborted();
    running.push(run(i));
    at += (-Math.log(1 - random()) / rate) * 1000;
  }
  await Promise.all(running);
}

import { writeFile } from "node:fs/promises";
import { FailedError, InterruptedError, UsageError } from "../../common/errors.ts";
import { modelFolder } from "../../ask/conversation.ts";
import { builtDeployment, tritonDeployment } from "../../bench/deployment.ts";
import { compareReports, comparisonText, readReport } from "../../bench/compare.ts";
import { type Budget, type LoadPoint, runPoint } from "../../bench/load.ts";
import { pointMetrics } from "../../bench/metrics.ts";
import { plotSvg } from "../../bench/plot.ts";
import { PromptMaker, type PromptSource, readPromptFile } from "../../bench/prompts.ts";
import { benchFormat, type BenchReport, loadLabel, pointReport, type PointReport, tableHeader, tableRow } from "../../bench/report.ts";
import { openAiTarget, tritonTarget, type BenchTarget } from "../../bench/targets.ts";
import { ConversationError, readConversation } from "../../model/conversation.ts";
import { loadTokenizer, TokenizerError, type TextTokenizer } from "../../model/tokenizer.ts";
import { settingsUrls } from "../../server/urls.ts";
import type { Settings } from "../../config/schema.ts";
import { handleInterrupts } from "../interrupts.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

export interface BenchOptions {
  url?: string;
  api: string;
  modelDir?: string;
  model?: string;
  concurrency?: number[];
  rate?: number[];
  requests?: number;
  duration?: number;
  inputLen: number;
  inputStddev: number;
  outputLen: number;
  outputStddev: number;
  prompts?: string;
  warmup?: number;
  seed: number;
  plot?: string;
  compare?: string[];
}

/** Loads the running deployment and reports TTFT, ITL, TPOT, e2e latency and throughput per load point. */
export async function run(env: CommandEnv): Promise<void> {
  const o = env.options as unknown as BenchOptions;
  const out = env.output;
  if (o.compare !== undefined) return compare(env, o);

  const { settings } = settingsFor(env);
  if (o.api !== "triton" && o.api !== "openai") throw new UsageError(`--api must be triton or openai, got ${JSON.stringify(o.api)}.`);
  if (o.concurrency !== undefined && o.rate !== undefined) {
    throw new UsageError("Give either `--concurrency` (a sweep of concurrent clients) or `--rate` (Poisson arrivals per second), not both.");
  }
  if (o.requests !== undefined && o.duration !== undefined) throw new UsageError("Give either `--requests` or `--duration` per load point, not both.");
  const loads: LoadPoint[] = o.rate !== undefined ? o.rate.map((rate) => ({ rate })) : (o.concurrency ?? [1, 4, 16]).map((concurrency) => ({ concurrency }));
  const url = o.url ?? defaultUrl(settings, o.api);
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}.`);

  const modelDir = o.modelDir ?? (await modelFolder(settings));
  if (modelDir === undefined) {
    throw new UsageError(
      "bench makes and counts its prompts with the model's own tokenizer, and this workdir has no model yet: pass `--model-dir <folder with tokenizer.json>` (the model's Hugging Face folder), or run `llama3-trt build` first.",
    );
  }
  const tokenizer = await tokenizerOrUsageError(modelDir);
  const source: PromptSource =
    o.prompts !== undefined ? { kind: "file", path: o.prompts, texts: await readPromptFile(o.prompts) } : { kind: "synthetic", input: { mean: o.inputLen, stddev: o.inputStddev } };
  const prompts = new PromptMaker(tokenizer, source, { mean: o.outputLen, stddev: o.outputStddev }, o.seed);

  const target: BenchTarget =
    o.api === "openai"
      ? openAiTarget(url, settings.apiKey ?? undefined, o.model)
      : tritonTarget(url, await endIdOf(modelDir, settings.model));

  using interrupts = handleInterrupts(out, async () => {});
  const signal = interrupts.signal;
  const { model } = await target.preflight(signal);
  const deployment = { ...(target.api === "triton" ? await tritonDeployment(target.url) : {}), ...(await builtDeployment(settings)) };
  const budgetOf = (load: LoadPoint): Budget =>
    o.duration !== undefined ? { durationMs: o.duration * 1000 } : { requests: o.requests ?? ("concurrency" in load ? Math.max(16, 4 * load.concurrency) : Math.max(16, Math.ceil(load.rate * 10))) };

  out.info(`Benchmarking ${target.url} (${target.api}${model ? `, model ${model}` : ""}): ${workloadText(o, source, tokenizer)}.`);
  if (!target.exactOutputLength.supported) out.info(`Output length: ${target.exactOutputLength.how}.`);
  const startedAt = new Date().toISOString();
  out.info(tableHeader());
  const points: PointReport[] = [];
  for (const [i, load] of loads.entries()) {
    const budget = budgetOf(load);
    const warmup = o.warmup ?? ("concurrency" in load ? load.concurrency : 1);
    let run;
    try {
      run = await runPoint({
        load,
        budget,
        warmup,
        firstIndex: i * 1_000_000,
        seed: o.seed,
        target,
        prompts,
        tokenizer,
        signal,
        onRequestDone: (done, errors) => out.debug(`${loadLabel(load)}: ${done}${"requests" in budget ? `/${budget.requests}` : ""} requests done, ${errors} errors`),
      });
    } catch (error) {
      if (signal.aborted) throw new InterruptedError("interrupted; the requests in flight were cancelled and nothing was written", { cause: error });
      throw error;
    }
    const metrics = pointMetrics(load, run.timings, run.durationMs);
    const point = pointReport(metrics, run.timings, run.eventLoopLagP99Ms);
    points.push(point);
    out.info(tableRow(point));
    if (point.client.bottleneck) {
      out.warn(`${loadLabel(point)}: this client's event loop ran up to ${point.client.event_loop_lag_p99_ms.toFixed(1)} ms late (p99), so the latencies above include the client's own delay; run bench on a less busy machine or with less load.`);
    }
    if (point.errors > 0) out.warn(`${loadLabel(point)}: ${point.errors} of ${point.requests} requests failed: ${point.error_messages[0]?.message ?? ""}`);
  }

  const failed = points.find((p) => p.completed === 0);
  if (failed) {
    throw new FailedError(`Every request at ${loadLabel(failed)} failed: ${failed.error_messages[0]?.message ?? "no answer"}. See \`llama3-trt logs\` for the server's side.`);
  }
  const report: BenchReport = {
    format: benchFormat,
    tool: `llama3-trt ${version}`,
    started_at: startedAt,
    target: { api: target.api, url: target.url, model: model ?? settings.model },
    deployment,
    workload: {
      prompts: source.kind === "file" ? `file:${source.path}` : "synthetic",
      input_len: source.kind === "synthetic" ? source.input : null,
      output_len: { mean: o.outputLen, stddev: o.outputStddev },
      exact_output_length: target.exactOutputLength,
      tokenizer: tokenizer.dir,
      seed: o.seed,
      warmup_per_point: o.warmup ?? "concurrency",
      requests_per_point: o.duration === undefined ? (o.requests ?? null) : null,
      duration_s_per_point: o.duration ?? null,
    },
    points,
  };
  if (o.plot !== undefined) {
    await writeFile(o.plot, plotSvg(report));
    out.info(`Plot written to ${o.plot}.`);
  }
  if (out.json) out.document(report);
}

async function compare(env: CommandEnv, o: BenchOptions): Promise<void> {
  const [a, b] = o.compare ?? [];
  if (a === undefined || b === undefined || (o.compare?.length ?? 0) !== 2) throw new UsageError("`--compare` takes two files: `llama3-trt bench --compare a.json b.json`.");
  const comparison = compareReports(await readReport(a), await readReport(b), { a, b });
  if (env.output.json) env.output.document(comparison);
  else env.output.result(comparisonText(comparison));
}

/** What `serve` runs with these settings: Triton's HTTP port, or the gateway's (`openai_port`). */
function defaultUrl(settings: Settings, api: string): string {
  const http = settingsUrls(settings).http;
  if (api !== "openai") return http;
  if (settings.openaiPort === 0) throw new UsageError("openai_port is 0 (no gateway): pass `--url` of an OpenAI-compatible API, or bench Triton itself with `--api triton`.");
  return http.replace(/:\d+$/, `:${settings.openaiPort}`);
}

function workloadText(o: BenchOptions, source: PromptSource, tokenizer: TextTokenizer): string {
  const spread = (sd: number) => (sd > 0 ? ` ± ${sd}` : "");
  const input = source.kind === "file" ? `${source.texts.length} prompts from ${source.path}` : `input ${o.inputLen}${spread(o.inputStddev)} tokens`;
  return `${input}, output ${o.outputLen}${spread(o.outputStddev)} tokens (tokenizer ${tokenizer.dir})`;
}

async function tokenizerOrUsageError(dir: string): Promise<TextTokenizer> {
  try {
    return await loadTokenizer(dir);
  } catch (error) {
    if (error instanceof TokenizerError) throw new UsageError(`${error.message} Pass \`--model-dir\` with the model's Hugging Face folder.`, { cause: error });
    throw error;
  }
}

/** The model's end token (sent as end_id; min_length masks it up to --output-len); a broken tokenizer_config.json is the user's to fix. */
async function endIdOf(modelDir: string, model: string): Promise<number> {
  try {
    return (await readConversation(modelDir, model)).endId;
  } catch (error) {
    if (error instanceof ConversationError) throw new UsageError(`${modelDir}: ${error.message}`, { cause: error });
    throw error;
  }
}

import type { Gpus } from "../config/schema.ts";
import { safeSubstitute } from "./template.ts";

/** The five models of v0.8.0's `all_models/inflight_batcher_llm`. */
export const tritonModels = ["preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls", "ensemble"] as const;
export type TritonModel = (typeof tritonModels)[number];

type Kind = "int" | "positive-int" | "bool" | "string" | "fraction" | "choice";

interface Placeholder {
  readonly kind: Kind;
  readonly choices?: readonly string[];
  /**
   * The tensorrt_llm backend reads these parameters inside a try/catch and falls back to its own
   * default when the text is not a value (an unfilled `${…}` included); the rest make Triton or
   * the Python models refuse to load.
   */
  readonly optional?: true;
}

/** Every placeholder of the v0.8.0 templates, with the values it accepts. */
export const placeholderSpecs: Readonly<Record<string, Placeholder>> = {
  // Typed protobuf fields: an unfilled or non-numeric value is a parse error.
  triton_max_batch_size: { kind: "positive-int" },
  decoupled_mode: { kind: "bool" },
  max_queue_delay_microseconds: { kind: "int" },
  preprocessing_instance_count: { kind: "positive-int" },
  postprocessing_instance_count: { kind: "positive-int" },
  bls_instance_count: { kind: "positive-int" },
  // Read by the Python models.
  tokenizer_dir: { kind: "string" },
  tokenizer_type: { kind: "choice", choices: ["auto", "llama", "t5"] },
  accumulate_tokens: { kind: "bool", optional: true },
  // Parameters of the tensorrt_llm backend.
  batching_strategy: { kind: "choice", choices: ["inflight_fused_batching", "inflight_batching", "V1"] },
  engine_dir: { kind: "string" },
  max_beam_width: { kind: "positive-int", optional: true },
  max_tokens_in_paged_kv_cache: { kind: "positive-int", optional: true },
  max_attention_window_size: { kind: "positive-int", optional: true },
  batch_scheduler_policy: { kind: "choice", choices: ["max_utilization", "guaranteed_no_evict"], optional: true },
  kv_cache_free_gpu_mem_fraction: { kind: "fraction", optional: true },
  enable_trt_overlap: { kind: "bool", optional: true },
  exclude_input_in_output: { kind: "bool", optional: true },
  enable_kv_cache_reuse: { kind: "bool", optional: true },
  normalize_log_probs: { kind: "bool", optional: true },
  enable_chunked_context: { kind: "bool", optional: true },
  gpu_device_ids: { kind: "string", optional: true },
};

export type FillValues = Readonly<Record<string, string>>;

/**
 * Checks a value before it goes into protobuf text. Strings are pasted inside `"…"`, so a quote,
 * a backslash or a line break would end the string and inject fields (reliability case 35): they
 * are refused rather than escaped, since no real path or choice needs them.
 */
export function valueProblem(name: string, value: string): string | undefined {
  const spec = placeholderSpecs[name];
  if (!spec) return `\`${name}\` is not a placeholder of the v0.8.0 templates`;
  const ok = (() => {
    switch (spec.kind) {
      case "int":
        return /^\d{1,9}$/.test(value);
      case "positive-int":
        return /^\d{1,9}$/.test(value) && Number(value) >= 1;
      case "bool":
        return value === "true" || value === "false";
      case "fraction":
        return /^(0(\.\d+)?|1(\.0+)?)$/.test(value) && Number(value) > 0;
      case "choice":
        return spec.choices?.includes(value) ?? false;
      case "string":
        return value.length > 0 && !/["\\\r\n\0]/.test(value) && !value.includes("$");
    }
  })();
  if (ok) return undefined;
  const expected = {
    int: "an integer >= 0",
    "positive-int": "an integer >= 1",
    bool: "true or false",
    fraction: "a number in (0, 1]",
    choice: `one of ${spec.choices?.join(", ")}`,
    string: "text without quotes, backslashes, line breaks or $",
  }[spec.kind];
  return `${name} must be ${expected}, got ${JSON.stringify(value)}`;
}

export class TemplateError extends Error {}

/**
 * Fills one model's config.pbtxt. Refuses a hostile value, and a placeholder left unfilled
 * unless the backend treats it as optional (case 36): `safe_substitute` alone would pass
 * `${foo}` through silently.
 */
export function fillConfig(model: TritonModel, template: string, values: FillValues): string {
  for (const [name, value] of Object.entries(values)) {
    const problem = valueProblem(name, value);
    if (problem) throw new TemplateError(`config.pbtxt for ${model}: ${problem}`);
  }
  const { text, unfilled } = safeSubstitute(template, values);
  const missing = unfilled.filter((name) => !placeholderSpecs[name]?.optional);
  if (missing.length > 0) {
    throw new TemplateError(`config.pbtxt for ${model} still contains ${missing.map((n) => `\${${n}}`).join(", ")}`);
  }
  return text;
}

export interface DeploymentValues {
  /** Triton's max_batch_size for every model: at most the engine's (checked by `deploymentProblems`). */
  readonly maxBatchSize: number;
  /** tensorrt_llm and tensorrt_llm_bls decoupled: needed by generate_stream (`ask --stream`). */
  readonly decoupled: boolean;
  /** Paths inside the Triton container (the mount table in pipeline/container-paths.ts). */
  readonly tokenizerDir: string;
  readonly engineDir: string;
}

/**
 * The values for the five configs. Left unfilled on purpose, so the backend uses its defaults:
 * max_tokens_in_paged_kv_cache, so the KV cache is sized from kv_cache_free_gpu_mem_fraction of
 * the GPU memory left after loading the engine instead of the seed's 2,560-token cap (128 KiB per
 * token for Llama 3 8B: 2,560 tokens is 320 MiB of an 80 GB GPU); max_attention_window_size (the
 * whole sequence); gpu_device_ids (the GPUs the container was given); enable_chunked_context
 * (needs an engine with paged context FMHA); normalize_log_probs.
 */
export function deploymentValues(d: DeploymentValues): FillValues {
  return {
    triton_max_batch_size: String(d.maxBatchSize),
    decoupled_mode: String(d.decoupled),
    max_queue_delay_microseconds: "0",
    preprocessing_instance_count: "1",
    postprocessing_instance_count: "1",
    bls_instance_count: "1",
    tokenizer_dir: d.tokenizerDir,
    tokenizer_type: "auto",
    // Streamed responses carry only the new text; `ask --stream` prints them as they come.
    accumulate_tokens: "false",
    batching_strategy: "inflight_fused_batching",
    engine_dir: d.engineDir,
    max_beam_width: "1",
    batch_scheduler_policy: "guaranteed_no_evict",
    kv_cache_free_gpu_mem_fraction: "0.9",
    enable_trt_overlap: "false",
    exclude_input_in_output: "true",
    enable_kv_cache_reuse: "false",
  };
}

/** What a filled tensorrt_llm config.pbtxt says, read back from its text. */
export interface FilledTensorrtLlm {
  readonly maxBatchSize: number | undefined;
  readonly decoupled: boolean | undefined;
  readonly engineDir: string | undefined;
  readonly maxBeamWidth: string | undefined;
}

/** Reads the fields `deploymentProblems` checks from a filled tensorrt_llm/config.pbtxt. */
export function readTensorrtLlmConfig(text: string): FilledTensorrtLlm {
  const batch = /^max_batch_size:\s*(\d+)\s*$/m.exec(text)?.[1];
  const decoupled = /decoupled:\s*(true|false|True|False)\b/.exec(text)?.[1];
  return {
    maxBatchSize: batch === undefined ? undefined : Number(batch),
    decoupled: decoupled === undefined ? undefined : decoupled.toLowerCase() === "true",
    engineDir: parameter(text, "gpt_model_path"),
    maxBeamWidth: parameter(text, "max_beam_width"),
  };
}

/** The string_value of `parameters { key: "<key>" … }` in a config.pbtxt. */
export function parameter(text: string, key: string): string | undefined {
  const pattern = new RegExp(`parameters\\s*:?\\s*\\{\\s*key:\\s*"${key}"\\s*value:\\s*\\{\\s*string_value:\\s*"([^"]*)"`);
  return pattern.exec(text)?.[1];
}

/** The engine as its own config.json describes it (read by the engine step). */
export interface EngineLimits {
  readonly tp: number;
  readonly maxBatchSize: number;
}

/**
 * Everything that would make Triton refuse this deployment or serve it wrongly, found before a
 * container starts: one line per problem, each saying what to do.
 */
export function deploymentProblems(d: {
  readonly engine: EngineLimits;
  readonly tensorrtLlm: FilledTensorrtLlm;
  readonly engineDir: string;
  readonly streaming: boolean;
  readonly gpus: Gpus;
}): string[] {
  const problems: string[] = [];
  const rebuild = "run `llama3-trt build --force model-repo`";
  const { engine, tensorrtLlm: t } = d;
  if (t.maxBatchSize === undefined) problems.push(`tensorrt_llm/config.pbtxt has no max_batch_size: ${rebuild}`);
  else if (t.maxBatchSize > engine.maxBatchSize) {
    problems.push(
      `Triton would accept batches of ${t.maxBatchSize} but the engine was built for ${engine.maxBatchSize}: rebuild the engine with \`--max-batch-size ${t.maxBatchSize}\`, or build with \`--max-batch-size ${engine.maxBatchSize}\``,
    );
  }
  if (t.engineDir === undefined) problems.push(`tensorrt_llm/config.pbtxt names no engine (gpt_model_path): ${rebuild}`);
  else if (t.engineDir !== d.engineDir) {
    problems.push(`tensorrt_llm/config.pbtxt points at engine ${JSON.stringify(t.engineDir)}, but the engine is mounted at ${d.engineDir}: ${rebuild}`);
  }
  if (t.decoupled === undefined) problems.push(`tensorrt_llm/config.pbtxt has no decoupled setting: ${rebuild}`);
  else if (t.decoupled !== d.streaming) {
    problems.push(
      `the model repository was assembled with streaming ${t.decoupled ? "on" : "off"} but the settings ask for ${d.streaming ? "on" : "off"}: run \`llama3-trt build\``,
    );
  }
  if (Array.isArray(d.gpus) && d.gpus.length < engine.tp) {
    problems.push(`the engine is split over ${engine.tp} GPUs (tp ${engine.tp}) but --gpus gives ${d.gpus.length}: pass ${engine.tp} GPUs with \`--gpus\``);
  }
  return problems;
}

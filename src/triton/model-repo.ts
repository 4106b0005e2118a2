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
  readonly maxBatchSize: number;
  readonly decoupled: boolean;
  /** Paths inside the Triton container. */
  readonly tokenizerDir: string;
  readonly engineDir: string;
}

/**
 * The values for the five configs. Left unfilled on purpose (the backend's defaults are right):
 * max_tokens_in_paged_kv_cache, so the KV cache takes its share of free GPU memory instead of
 * the seed's 2,560-token cap; max_attention_window_size; gpu_device_ids; enable_chunked_context;
 * normalize_log_probs.
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

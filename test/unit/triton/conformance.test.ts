/**
 * Conformance with the REAL tensorrtllm_backend v0.8.0 templates, read from the folder
 * LLAMA3_TRT_CONFORMANCE_DIR points to (../shared/trtllm-v0.8.0 in CI: its
 * backend/all_models/inflight_batcher_llm). Never copied into the repository. The protobuf parse
 * of the filled files is in test/integration/model-repo.test.ts (the real schema lives in the
 * Triton image).
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { settingsSchema } from "../../../src/config/schema.ts";
import { inContainer } from "../../../src/pipeline/container-paths.ts";
import { modelRepoValues } from "../../../src/pipeline/steps/model-repo.ts";
import { fillConfig, placeholderSpecs, tritonModels } from "../../../src/triton/model-repo.ts";
import { placeholders } from "../../../src/triton/template.ts";

const dir = process.env.LLAMA3_TRT_CONFORMANCE_DIR;
const why = "LLAMA3_TRT_CONFORMANCE_DIR is not set (CI sets it to ../shared/trtllm-v0.8.0)";
if (!dir) console.warn(`conformance with the real v0.8.0 templates SKIPPED: ${why}`);

const template = (model: string) => readFileSync(join(resolve(dir ?? "."), "backend/all_models/inflight_batcher_llm", model, "config.pbtxt"), "utf8");

/** The placeholders of each template, as ../shared/trtllm-v0.8.0/README.md lists them. */
const documented: Record<string, string[]> = {
  preprocessing: ["tokenizer_dir", "tokenizer_type", "triton_max_batch_size", "preprocessing_instance_count"],
  postprocessing: ["tokenizer_dir", "tokenizer_type", "triton_max_batch_size", "postprocessing_instance_count"],
  tensorrt_llm: [
    "triton_max_batch_size", "decoupled_mode", "max_queue_delay_microseconds", "max_beam_width", "batching_strategy", "engine_dir",
    "max_tokens_in_paged_kv_cache", "max_attention_window_size", "batch_scheduler_policy", "kv_cache_free_gpu_mem_fraction",
    "enable_trt_overlap", "exclude_input_in_output", "enable_kv_cache_reuse", "normalize_log_probs", "enable_chunked_context", "gpu_device_ids",
  ],
  tensorrt_llm_bls: ["triton_max_batch_size", "decoupled_mode", "bls_instance_count", "accumulate_tokens"],
  ensemble: ["triton_max_batch_size"],
};

const defaults = Object.fromEntries(Object.entries(settingsSchema).map(([k, s]) => [k, s.default])) as never;
const values = modelRepoValues(defaults, { modelPath: "snapshots/0123456789abcdef0123456789abcdef01234567" });

describe.skipIf(!dir)(`the real v0.8.0 templates${dir ? "" : ` (skipped: ${why})`}`, () => {
  it.each(tritonModels)("%s: every placeholder is one we know, and the table of the facts holds", (model) => {
    const found = placeholders(template(model));
    expect([...found].sort()).toEqual([...(documented[model] ?? [])].sort());
    for (const name of found) expect(placeholderSpecs, name).toHaveProperty(name);
  });

  it("every placeholder we know appears in a template (no stale entries)", () => {
    const all = new Set(tritonModels.flatMap((m) => placeholders(template(m))));
    expect(Object.keys(placeholderSpecs).filter((name) => !all.has(name))).toEqual([]);
  });

  it.each(tritonModels)("%s: filled for the default settings, only optional string parameters stay, and typed fields hold numbers and booleans", (model) => {
    const filled = fillConfig(model, template(model), values);
    for (const name of placeholders(filled)) {
      expect(placeholderSpecs[name]?.optional, name).toBe(true);
      // Inside string_value "…": the backend parses it and falls back to its default.
      const line = filled.split("\n").find((l) => l.includes(`\${${name}}`)) ?? "";
      expect(line.trim(), name).toBe(`string_value: "\${${name}}"`);
    }
    for (const [, value] of filled.matchAll(/^\s*(?:max_batch_size|count|max_queue_delay_microseconds):\s*(\S+)/gm)) expect(value).toMatch(/^\d+$/);
    for (const [, value] of filled.matchAll(/^\s*decoupled:\s*(\S+)/gm)) expect(value).toMatch(/^(true|false)$/);
    for (const [, value] of filled.matchAll(/preferred_batch_size:\s*\[\s*([^\]]*)\]/g)) expect(value?.trim()).toBe("64");
  });

  it("points the models at the paths inside the Triton container and sizes the KV cache by GPU memory", () => {
    const trt = fillConfig("tensorrt_llm", template("tensorrt_llm"), values);
    expect(trt).toContain(`string_value: "${inContainer.engine}"`);
    expect(trt).toMatch(/key: "kv_cache_free_gpu_mem_fraction"\s*value: \{\s*string_value: "0.9"/);
    // No token cap: the backend sizes the cache from the free GPU memory fraction.
    expect(trt).toMatch(/key: "max_tokens_in_paged_kv_cache"\s*value: \{\s*string_value: "\$\{max_tokens_in_paged_kv_cache\}"/);
    expect(trt).toMatch(/decoupled: true/);
    const pre = fillConfig("preprocessing", template("preprocessing"), values);
    expect(pre).toContain(`string_value: "${inContainer.weights}/snapshots/0123456789abcdef0123456789abcdef01234567"`);
  });
});

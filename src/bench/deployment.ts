/**
 * The settings of the deployment under test, recorded in every `bench` result so two runs can
 * be compared: what the server itself says (Triton's tensorrt_llm model configuration: batch
 * size, KV cache sizing, batching) and, when this workdir built it, what it was built with
 * (model, dtype, quantization, tp, limits, image). Nothing here may fail the run: a field that
 * cannot be read is left out.
 */
import type { Settings } from "../config/schema.ts";
import { StateStore } from "../pipeline/state.ts";
import { WorkdirPaths } from "../pipeline/workdir.ts";

export type DeploymentInfo = Readonly<Record<string, string | number | boolean | null>>;

/** The tensorrt_llm model's parameters that decide how much the server holds at once. */
const serverParameters = [
  "gpt_model_type",
  "batch_scheduler_policy",
  "max_tokens_in_paged_kv_cache",
  "kv_cache_free_gpu_mem_fraction",
  "enable_kv_cache_reuse",
  "max_attention_window_size",
  "max_beam_width",
] as const;

/** From Triton: `GET /v2/models/tensorrt_llm/config` (protobuf JSON: parameters are `{ key: { string_value } }`). */
export async function tritonDeployment(url: string): Promise<DeploymentInfo> {
  try {
    const response = await fetch(`${url}/v2/models/tensorrt_llm/config`, { signal: AbortSignal.timeout(5_000) });
    if (response.status !== 200) {
      await response.body?.cancel();
      return {};
    }
    const config = (await response.json()) as { max_batch_size?: unknown; parameters?: Record<string, { string_value?: unknown }>; model_transaction_policy?: { decoupled?: unknown } };
    const info: Record<string, string | number | boolean | null> = {};
    if (typeof config.max_batch_size === "number") info["server.max_batch_size"] = config.max_batch_size;
    info["server.decoupled"] = config.model_transaction_policy?.decoupled === true;
    for (const key of serverParameters) {
      const value = config.parameters?.[key]?.string_value;
      // An unfilled template value (`${…}`) is the backend's default, not a setting.
      if (typeof value === "string" && !value.startsWith("${")) info[`server.${key}`] = value;
    }
    return info;
  } catch {
    return {};
  }
}

/** From this workdir's build record (state.json), when it has one: what the engine was built with. */
export async function builtDeployment(settings: Settings): Promise<DeploymentInfo> {
  try {
    const state = await StateStore.load(new WorkdirPaths(settings.workdir));
    const engine = state.get("engine");
    if (!engine) return {};
    const inputs = engine.inputs as Record<string, unknown>;
    const info: Record<string, string | number | boolean | null> = { "build.model": settings.model, "build.image": settings.tritonImage };
    for (const key of ["dtype", "quantize", "tp", "maxBatchSize", "maxInputLen", "maxOutputLen"]) {
      const value = inputs[key];
      if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") info[`build.${key}`] = value;
    }
    info["build.finishedAt"] = engine.finishedAt;
    return info;
  } catch {
    return {};
  }
}

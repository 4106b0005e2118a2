/**
 * Command lines of TensorRT-LLM v0.8.0's tools, built from settings. Flag names, choices and
 * defaults are those of v0.8.0's argparse (recorded with their sources in
 * test/fixtures/trtllm-v0.8.0-flags.json, which the unit tests check these lines against).
 */

import type { Dtype, Quantize } from "../config/schema.ts";

export interface ConvertOptions {
  readonly script: string;
  readonly modelDir: string;
  readonly outputDir: string;
  readonly dtype: Dtype;
  readonly tp: number;
  readonly quantize: Quantize;
  /** The model's `rope_theta`: v0.8.0 ignores it in config.json and uses 10000 unless told. */
  readonly rotaryBase: number;
}

/** Llama 3's RoPE base (8B and 70B), for when the model's config.json is not at hand yet. */
export const llama3RopeTheta = 500_000;

/** `examples/llama/convert_checkpoint.py`: HF safetensors → a TensorRT-LLM checkpoint, one rank file per GPU. */
export function convertCheckpointArgv(o: ConvertOptions): string[] {
  return [
    "python3",
    o.script,
    "--model_dir",
    o.modelDir,
    "--output_dir",
    o.outputDir,
    // v0.8.0 defaults to float16: always say which.
    "--dtype",
    o.dtype,
    "--tp_size",
    String(o.tp),
    "--pp_size",
    "1",
    // v0.8.0 copies rope_theta from the HF config only for Mixtral: a Llama 3 converted without
    // this gets Llama 2's base (10000) and answers gibberish.
    "--rotary_base",
    String(o.rotaryBase),
    ...(o.quantize === "none" ? [] : ["--use_weight_only", "--weight_only_precision", o.quantize]),
  ];
}

export interface BuildOptions {
  readonly checkpointDir: string;
  readonly outputDir: string;
  readonly dtype: Dtype;
  readonly tp: number;
  readonly maxBatchSize: number;
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
}

/**
 * Tokens one engine step may hold at once (the inflight batcher's budget). v0.8.0 makes it
 * max_batch_size × max_input_len when unset, which sizes activation memory for 64 full prompts
 * at once; a whole prompt must still fit, so it is never below max_input_len.
 */
export const maxNumTokensCap = 16_384;

export function maxNumTokens(o: Pick<BuildOptions, "maxBatchSize" | "maxInputLen">): number {
  return Math.max(o.maxInputLen, Math.min(o.maxBatchSize * o.maxInputLen, maxNumTokensCap));
}

/**
 * `trtllm-build` for Triton's inflight batcher. Every limit is explicit: v0.8.0 defaults to
 * max_batch_size 1 and 1024/1024 tokens, which would put a batch-of-one engine behind a Triton
 * configured for 64. The batcher needs a paged KV cache, packed (unpadded) input and the GPT
 * attention plugin; they are v0.8.0's defaults but are stated, so the engine does not depend on them.
 */
export function trtllmBuildArgv(o: BuildOptions): string[] {
  return [
    "trtllm-build",
    "--checkpoint_dir",
    o.checkpointDir,
    "--output_dir",
    o.outputDir,
    "--gpt_attention_plugin",
    o.dtype,
    "--gemm_plugin",
    o.dtype,
    "--paged_kv_cache",
    "enable",
    "--remove_input_padding",
    "enable",
    "--context_fmha",
    "enable",
    "--max_batch_size",
    String(o.maxBatchSize),
    "--max_input_len",
    String(o.maxInputLen),
    "--max_output_len",
    String(o.maxOutputLen),
    "--max_beam_width",
    "1",
    "--max_num_tokens",
    String(maxNumTokens(o)),
    // One worker per rank builds the tp engines in parallel (v0.8.0 caps it at the GPU count).
    "--workers",
    String(o.tp),
  ];
}

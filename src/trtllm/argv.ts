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
  /** The model's linear or dynamic `rope_scaling` as `[type, factor]`: v0.8.0 reads it only from this flag. */
  readonly rotaryScaling?: readonly [string, string] | undefined;
}

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
    ...(o.rotaryScaling ? ["--rotary_scaling", ...o.rotaryScaling] : []),
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

export interface RunPyOptions {
  readonly engineDir: string;
  readonly tokenizerDir: string;
  /** The prompt as the model sees it (with the chat template, when there is one). */
  readonly inputText: string;
  readonly maxOutputLen: number;
  /** The engine's max_input_len: run.py's own default (923) would cut longer prompts from the left. */
  readonly maxInputLength: number;
  /** False when the text already starts with <|begin_of_text|> (the chat template writes it). */
  readonly addSpecialTokens: boolean;
  readonly temperature?: number | undefined;
  readonly topK?: number | undefined;
  readonly topP?: number | undefined;
  /** Ranks: run.py runs under mpirun with one process per GPU of the engine. */
  readonly tp: number;
}

/**
 * `examples/run.py` of v0.8.0 on an engine: the walkthrough's local check. v0.8.0's run.py has
 * no --end_id (generation ends at the tokenizer's eos token; the answer is cut at <|eot_id|> when
 * printed) and no --stop_words. The prompt goes as `--input_text=<text>`: one argv element that
 * argparse cannot take for an option, even when it starts with "-".
 */
export function runPyArgv(o: RunPyOptions): string[] {
  const script = [
    "python3",
    "run.py",
    "--engine_dir",
    o.engineDir,
    "--tokenizer_dir",
    o.tokenizerDir,
    "--max_output_len",
    String(o.maxOutputLen),
    "--max_input_length",
    String(o.maxInputLength),
    `--input_text=${o.inputText}`,
    ...(o.addSpecialTokens ? [] : ["--no_add_special_tokens"]),
    ...(o.temperature === undefined ? [] : ["--temperature", String(o.temperature)]),
    ...(o.topK === undefined ? [] : ["--top_k", String(o.topK)]),
    ...(o.topP === undefined ? [] : ["--top_p", String(o.topP)]),
  ];
  return o.tp > 1 ? ["mpirun", "--allow-run-as-root", "-n", String(o.tp), ...script] : script;
}

/**
 * The answer in run.py's output: `Output [Text 0 Beam 0]: "<text>"`, where the text may span
 * lines and hold quotes. undefined when run.py printed none.
 */
export function runPyAnswer(output: string): string | undefined {
  const marker = 'Output [Text 0 Beam 0]: "';
  const start = output.lastIndexOf(marker);
  if (start < 0) return undefined;
  const lines = output.slice(start + marker.length).split("\n");
  const next = lines.findIndex((line, i) => i > 0 && /^(Input|Output) \[Text \d+/.test(line));
  const own = next < 0 ? lines : lines.slice(0, next);
  let last = own.length - 1;
  while (last >= 0 && !(own[last] as string).trimEnd().endsWith('"')) last--;
  if (last < 0) return undefined;
  const text = own.slice(0, last + 1).join("\n").trimEnd();
  return text.slice(0, -1);
}

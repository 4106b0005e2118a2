/**
 * The engine's limits checked against the model: each refusal says the largest value that works.
 */
import { maxNumTokens } from "../trtllm/argv.ts";
import type { Finding } from "./compatibility.ts";
import type { ModelConfig } from "./hf-config.ts";

export interface Limits {
  readonly tp: number;
  readonly maxBatchSize: number;
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
}

/** Whether v0.8.0 can split this model over `tp` GPUs, and if not, why. */
export function tpProblem(m: ModelConfig, tp: number): string | undefined {
  // Heads are split evenly over the ranks (torch.chunk, convert_checkpoint.py:600, 835).
  if (m.numHeads % tp !== 0) return `num_attention_heads (${m.numHeads}) is not a multiple of ${tp}`;
  if (m.numKvHeads < tp) {
    // Fewer KV heads than ranks: each is copied tp / kv times (dup_kv_weight, 678-679).
    if (tp % m.numKvHeads !== 0) return `${tp} is not a multiple of num_key_value_heads (${m.numKvHeads})`;
  } else if (m.numKvHeads % tp !== 0) {
    // convert_checkpoint.py:832-833 asserts the K and V rows split evenly.
    return `num_key_value_heads (${m.numKvHeads}) is not a multiple of ${tp}`;
  }
  // The MLP is split by rows over the ranks (split_matrix_tp, 1016).
  if (m.intermediateSize % tp !== 0) return `intermediate_size (${m.intermediateSize}) is not a multiple of ${tp}`;
  return undefined;
}

/** The tp sizes (powers of two up to 64) this model can be split into. */
export function workingTpSizes(m: ModelConfig): number[] {
  return [1, 2, 4, 8, 16, 32, 64].filter((tp) => tpProblem(m, tp) === undefined);
}

/** The context a request may use: the positions the model was trained on, or its attention window. */
export function contextLimit(m: ModelConfig): { tokens: number; field: string } {
  if (m.slidingWindow !== null && m.slidingWindow < m.maxPositions) return { tokens: m.slidingWindow, field: "sliding_window" };
  return { tokens: m.maxPositions, field: "max_position_embeddings" };
}

export interface LimitFindings {
  readonly refusals: Finding[];
  /** Facts about the limits a person should know (not a reason to stop). */
  readonly notes: Finding[];
}

export function checkLimits(m: ModelConfig, l: Limits): LimitFindings {
  const refusals: Finding[] = [];
  const notes: Finding[] = [];

  const context = contextLimit(m);
  const total = l.maxInputLen + l.maxOutputLen;
  if (total > context.tokens) {
    const input = context.tokens - l.maxOutputLen;
    const output = context.tokens - l.maxInputLen;
    const options = [
      ...(input > 0 ? [`--max-input-len ${input} (with --max-output-len ${l.maxOutputLen})`] : []),
      ...(output > 0 ? [`--max-output-len ${output} (with --max-input-len ${l.maxInputLen})`] : []),
    ];
    const why =
      context.field === "sliding_window"
        ? `the model attends over a window of ${context.tokens} tokens (sliding_window), which v0.8.0 never reads from config.json (examples/llama/convert_checkpoint.py:1212-1228) and llama3-trt's engine does not apply: past it the engine would answer differently from the model`
        : `the model was trained on ${context.tokens} positions (max_position_embeddings): past them its RoPE positions are ones it never saw`;
    refusals.push({
      rule: "context",
      field: "max_input_len + max_output_len",
      value: String(total),
      message: `--max-input-len ${l.maxInputLen} + --max-output-len ${l.maxOutputLen} = ${total} tokens, more than ${context.tokens}: ${why}. The largest that works: ${options.length > 0 ? options.join(", or ") : `a total of at most ${context.tokens}`}`,
      source: context.field === "sliding_window" ? "examples/llama/convert_checkpoint.py:1212-1228" : "examples/llama/convert_checkpoint.py:1228, 1325",
    });
  }

  const tpWhy = tpProblem(m, l.tp);
  if (tpWhy !== undefined) {
    const smaller = workingTpSizes(m).filter((tp) => tp < l.tp);
    const largest = smaller.at(-1) ?? 1;
    refusals.push({
      rule: "tp",
      field: "tp",
      value: String(l.tp),
      message: `--tp ${l.tp} cannot split this model: ${tpWhy}. The largest tp up to ${l.tp} that works is ${largest} (it works with ${workingTpSizes(m).filter((tp) => tp <= 8).join(", ")})`,
      source: "examples/llama/convert_checkpoint.py:600, 678-679, 832-835, 1016",
    });
  }

  // trtllm-build caps max_num_tokens at batch x input (tensorrt_llm/_common.py:215-216); llama3-trt
  // caps it lower to bound activation memory (trtllm/argv.ts), never below one whole prompt.
  const tokens = maxNumTokens(l);
  if (tokens < l.maxBatchSize * l.maxInputLen) {
    const prompts = Math.floor(tokens / l.maxInputLen);
    notes.push({
      rule: "max-num-tokens",
      field: "max_num_tokens",
      value: String(tokens),
      message: `the engine takes at most ${tokens} prompt tokens per step (max_num_tokens), so ${prompts} full-length prompt${prompts === 1 ? "" : "s"} of ${l.maxInputLen} tokens start at once, not ${l.maxBatchSize} (generation still batches ${l.maxBatchSize}); ${l.maxBatchSize} full prompts at once need --max-input-len ${Math.max(1, Math.floor(tokens / l.maxBatchSize))} or less`,
      source: "tensorrt_llm/_common.py:197-231",
    });
  }
  return { refusals, notes };
}

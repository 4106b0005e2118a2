/**
 * What TensorRT-LLM v0.8.0 can build from a Hugging Face checkpoint, and what it would build
 * wrong, judged from config.json alone, before a byte of the weights is fetched.
 *
 * Each rule cites the v0.8.0 source it rests on (TensorRT-LLM at
 * 5955b8afbad2ddcc3156202b16c567e94c52248f; `convert_checkpoint.py` is examples/llama/):
 * - convert_checkpoint.py:1212-1228 reads from config.json only the architecture and model
 *   type, head counts, sizes, layers, rms_norm_eps, vocab_size and max_position_embeddings;
 *   rope_theta only for Mixtral (1229-1238); never rope_scaling, hidden_act, biases, head_dim
 *   or sliding_window.
 * - convert_checkpoint.py:820-822 reads each projection's `.weight` (get_weight, 627-630) and
 *   no bias; 825 computes the head size as hidden_size // num_attention_heads.
 * - convert_checkpoint.py:1269-1277 accepts RoPE scaling only as --rotary_scaling, of type
 *   linear or dynamic.
 * - tensorrt_llm/models/__init__.py:74-91 (MODEL_MAP): the architectures trtllm-build builds;
 *   LlamaForCausalLM and MistralForCausalLM both map to LLaMAForCausalLM (84-85).
 */
import type { ModelConfig } from "./hf-config.ts";

export interface Finding {
  /** A stable id, for tests and --json: "architecture", "rope-scaling" … */
  readonly rule: string;
  /** The config.json field (or setting) the finding is about, and its value. */
  readonly field: string;
  readonly value: string;
  readonly message: string;
  /** Where in the v0.8.0 sources the rule comes from. */
  readonly source: string;
}

/** Architectures llama3-trt builds with examples/llama/convert_checkpoint.py (MODEL_MAP:84-85). */
const llamaArchitectures = new Set(["LlamaForCausalLM", "MistralForCausalLM"]);

/** Why a known architecture is refused: what v0.8.0 would do with it. */
const otherArchitectures: Readonly<Record<string, string>> = {
  MixtralForCausalLM:
    "a mixture-of-experts model: v0.8.0 converts it (convert_checkpoint.py:1229-1238) but llama3-trt sizes and builds dense models only",
  Qwen2ForCausalLM:
    "not in v0.8.0's MODEL_MAP (tensorrt_llm/models/__init__.py:74-91), so trtllm-build refuses it after the whole download and conversion; examples/llama would also drop its q/k/v biases (convert_checkpoint.py:820-822)",
  LlavaForConditionalGeneration: "a vision-language model: llama3-trt serves text models",
};

const quote = (value: unknown) => JSON.stringify(value);

/** Every reason this model cannot be built right by v0.8.0; empty when it can. */
export function compatibilityProblems(m: ModelConfig): Finding[] {
  const found: Finding[] = [];
  const refuse = (rule: string, field: string, value: unknown, message: string, source: string) =>
    found.push({ rule, field, value: typeof value === "string" ? value : quote(value), message, source });

  const architecture = m.architectures[0];
  if (architecture === undefined || !llamaArchitectures.has(architecture) || m.architectures.length !== 1) {
    const why = architecture !== undefined ? otherArchitectures[architecture] : undefined;
    refuse(
      "architecture",
      "architectures",
      m.architectures,
      `llama3-trt builds LlamaForCausalLM (and MistralForCausalLM) checkpoints with TensorRT-LLM v0.8.0's examples/llama; ${quote(m.architectures)} is ${why ?? "not one of them"}`,
      "tensorrt_llm/models/__init__.py:74-91; examples/llama/convert_checkpoint.py:1314",
    );
  }
  if (m.ropeScaling !== null) {
    const { type, factor } = m.ropeScaling;
    if (type !== "linear" && type !== "dynamic") {
      refuse(
        "rope-scaling",
        "rope_scaling.rope_type",
        type,
        `RoPE scaling of type ${quote(type)} (Llama 3.1 and later use "llama3") is not in TensorRT-LLM v0.8.0, which knows only "linear" and "dynamic" and never reads rope_scaling from config.json: the engine would build without error and answer wrongly past the original context. Use a Llama 3 (not 3.1+) model, or a later TensorRT-LLM`,
        "examples/llama/convert_checkpoint.py:1212-1228, 1269-1277",
      );
    } else if (factor === undefined || !(factor > 1)) {
      refuse("rope-scaling", "rope_scaling.factor", factor ?? null, "RoPE scaling needs a factor above 1", "examples/llama/convert_checkpoint.py:1276");
    }
  }
  if (m.tieWordEmbeddings) {
    refuse(
      "tied-embeddings",
      "tie_word_embeddings",
      true,
      "a model whose lm_head is its embedding (Llama 3.2 1B/3B) fails in v0.8.0's conversion after the download: it looks up lm_head.weight, which transformers does not list for tied weights (KeyError)",
      "examples/llama/convert_checkpoint.py:808, 627-630, 1165",
    );
  }
  if (m.attentionBias || m.mlpBias) {
    refuse(
      "biases",
      m.attentionBias ? "attention_bias" : "mlp_bias",
      true,
      "v0.8.0's examples/llama reads only the weights of each projection and drops the biases: the engine would answer wrongly",
      "examples/llama/convert_checkpoint.py:820-822, 627-630",
    );
  }
  if (m.hiddenSize % m.numHeads !== 0) {
    refuse("head-size", "hidden_size", m.hiddenSize, `hidden_size (${m.hiddenSize}) is not a multiple of num_attention_heads (${m.numHeads})`, "examples/llama/convert_checkpoint.py:825");
  }
  if (m.statedHeadDim !== undefined && m.statedHeadDim !== m.headDim) {
    refuse(
      "head-size",
      "head_dim",
      m.statedHeadDim,
      `head_dim ${m.statedHeadDim} differs from hidden_size / num_attention_heads (${m.headDim}), the only head size v0.8.0 computes`,
      "examples/llama/convert_checkpoint.py:825",
    );
  }
  if (m.hiddenAct !== "silu") {
    refuse(
      "activation",
      "hidden_act",
      m.hiddenAct,
      `v0.8.0 builds Llama models with the --hidden_act flag (default silu) and never reads hidden_act from config.json: a ${quote(m.hiddenAct)} model would be built with silu`,
      "examples/llama/convert_checkpoint.py:150, 1326",
    );
  }
  if (m.quantizationMethod !== undefined) {
    refuse(
      "pre-quantized",
      "quantization_config.quant_method",
      m.quantizationMethod,
      "a pre-quantized checkpoint has no plain .weight per projection for v0.8.0's conversion to read; use the unquantized model with --quantize int8 or int4",
      "examples/llama/convert_checkpoint.py:820-822",
    );
  }
  return found;
}

/** The `--rotary_scaling <type> <factor>` config.json asks for (v0.8.0 never reads it itself), or undefined. */
export function rotaryScalingArgs(m: ModelConfig): [string, string] | undefined {
  if (m.ropeScaling === null || m.ropeScaling.factor === undefined) return undefined;
  if (m.ropeScaling.type !== "linear" && m.ropeScaling.type !== "dynamic") return undefined;
  return [m.ropeScaling.type, String(m.ropeScaling.factor)];
}

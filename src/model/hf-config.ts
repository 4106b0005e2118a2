/**
 * The model's own description: its `config.json` as TensorRT-LLM v0.8.0's
 * `examples/llama/convert_checkpoint.py` reads it (through transformers' `AutoConfig`, so keys a
 * file leaves out take `LlamaConfig`'s defaults), plus the fields the compatibility rules look at.
 */

/** `rope_scaling` as config.json writes it: `type` (transformers < 4.43) or `rope_type`. */
export interface RopeScaling {
  readonly type: string;
  readonly factor: number | undefined;
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface ModelConfig {
  readonly architectures: readonly string[];
  readonly modelType: string | undefined;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** hidden_size / num_attention_heads: the only head size v0.8.0 computes (convert_checkpoint.py:825). */
  readonly headDim: number;
  /** `head_dim` when config.json states one (Mistral Nemo, Gemma): v0.8.0 never reads it. */
  readonly statedHeadDim: number | undefined;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  readonly tieWordEmbeddings: boolean;
  readonly hiddenAct: string;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  readonly slidingWindow: number | null;
  readonly torchDtype: string | undefined;
  /** A pre-quantized checkpoint (GPTQ, AWQ, FP8 …) says so here. */
  readonly quantizationMethod: string | undefined;
  /** config.json's own `eos_token_id`, a number or a list. */
  readonly eosTokenIds: readonly number[];
}

/** A config.json that is not a model description at all: a clear error, exit 2. */
export class ModelFileError extends Error {}

/**
 * transformers' `LlamaConfig` defaults (what `AutoConfig` gives for a key the file leaves out);
 * the same table as the test world's stand-in uses.
 */
const llamaDefaults = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  max_position_embeddings: 2048,
  rope_theta: 10000,
  hidden_act: "silu",
  tie_word_embeddings: false,
} as const;

function positiveInt(config: Record<string, unknown>, key: keyof typeof llamaDefaults | "num_key_value_heads", fallback: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new ModelFileError(`config.json: ${key} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function ids(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

export function parseModelConfig(text: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelFileError(`config.json is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ModelFileError("config.json is not a JSON object");
  const c = json as Record<string, unknown>;
  const hiddenSize = positiveInt(c, "hidden_size", llamaDefaults.hidden_size);
  const numHeads = positiveInt(c, "num_attention_heads", llamaDefaults.num_attention_heads);
  // LlamaConfig: num_key_value_heads None means multi-head attention (as many KV heads as heads).
  const numKvHeads = c.num_key_value_heads === null || c.num_key_value_heads === undefined ? numHeads : positiveInt(c, "num_key_value_heads", numHeads);
  const rope = c.rope_scaling;
  let ropeScaling: RopeScaling | null = null;
  if (rope !== null && rope !== undefined) {
    const r = (typeof rope === "object" && !Array.isArray(rope) ? rope : {}) as Record<string, unknown>;
    const type = r.rope_type ?? r.type;
    ropeScaling = { type: typeof type === "string" ? type : JSON.stringify(type ?? null), factor: typeof r.factor === "number" ? r.factor : undefined, raw: r };
  }
  const quantization = c.quantization_config as Record<string, unknown> | undefined;
  const sliding = c.sliding_window;
  // Qwen2 writes a window but turns it off with use_sliding_window: false.
  const windowOn = c.use_sliding_window !== false;
  return {
    architectures: Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === "string") : [],
    modelType: typeof c.model_type === "string" ? c.model_type : undefined,
    hiddenSize,
    intermediateSize: positiveInt(c, "intermediate_size", llamaDefaults.intermediate_size),
    numLayers: positiveInt(c, "num_hidden_layers", llamaDefaults.num_hidden_layers),
    numHeads,
    numKvHeads,
    headDim: Math.floor(hiddenSize / numHeads),
    statedHeadDim: typeof c.head_dim === "number" ? c.head_dim : undefined,
    vocabSize: positiveInt(c, "vocab_size", llamaDefaults.vocab_size),
    maxPositions: positiveInt(c, "max_position_embeddings", llamaDefaults.max_position_embeddings),
    ropeTheta: typeof c.rope_theta === "number" ? c.rope_theta : llamaDefaults.rope_theta,
    ropeScaling,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    hiddenAct: typeof c.hidden_act === "string" ? c.hidden_act : llamaDefaults.hidden_act,
    attentionBias: c.attention_bias === true,
    mlpBias: c.mlp_bias === true,
    slidingWindow: windowOn && typeof sliding === "number" && sliding > 0 ? sliding : null,
    torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : undefined,
    quantizationMethod: quantization && typeof quantization === "object" ? String(quantization.quant_method ?? "unknown") : undefined,
    eosTokenIds: ids(c.eos_token_id),
  };
}

/**
 * Parameters of a dense Llama-shaped model, from its config: embedding, lm_head (unless tied),
 * per layer q/k/v/o, gate/up/down and two norms, and the final norm.
 */
export function parameterCount(m: ModelConfig): number {
  const kvDim = m.numKvHeads * m.headDim;
  const qDim = m.numHeads * m.headDim;
  const perLayer = m.hiddenSize * qDim + 2 * m.hiddenSize * kvDim + qDim * m.hiddenSize + 3 * m.hiddenSize * m.intermediateSize + 2 * m.hiddenSize;
  const embeddings = m.vocabSize * m.hiddenSize * (m.tieWordEmbeddings ? 1 : 2);
  return embeddings + m.numLayers * perLayer + m.hiddenSize;
}

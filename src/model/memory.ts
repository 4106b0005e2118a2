/**
 * The memory plan of one engine, per GPU: weights, the runtime's buffers, and what is left for
 * the paged KV cache, in bytes and tokens.
 *
 * How it is estimated (NVIDIA's guidance, TensorRT-LLM docs/source/memory.md: "weights,
 * internal activation tensors, and IO tensors", the KV cache being the big IO tensor):
 * - Weights: every parameter at the dtype's 2 bytes, or for weight-only int8/int4 the linear
 *   layers at 1 byte / half a byte plus one per-channel scale (dtype) per output column
 *   (convert_checkpoint.py:643-668 quantizes each projection and keeps its per_channel_scale).
 *   lm_head is not quantized ('exclude_modules': ['lm_head'], convert_checkpoint.py:1334). The
 *   linear layers and lm_head are split over tp; the embedding is not (use_parallel_embedding
 *   is off, 1149), norms neither; KV heads fewer than tp are copied (dup_kv_weight, 678).
 * - Activations: TensorRT sizes them at build time for the largest shapes; they grow "close to
 *   max number of input tokens * some constant factor" (memory.md). Estimated here as the
 *   largest layer's live tensors for max_num_tokens tokens: the MLP's input plus its fc, gate and
 *   product outputs, (hidden + 3 x intermediate / tp) x tokens x 2 bytes, plus the float32
 *   logits of one token per sequence (logits_dtype float32, convert_checkpoint.py:1317).
 * - A fixed 1 GiB for the CUDA context, cuBLAS and TensorRT workspaces and the runtime's own
 *   buffers: an allowance, not a measurement. trtllm-build's log prints the real "Total
 *   Activation Memory"; compare with it on the GPU host.
 * - KV cache: the Triton model's kv_cache_free_gpu_mem_fraction (0.9, triton/model-repo.ts) of
 *   what is free after the engine is loaded, in blocks of tokens_per_block (128, trtllm-build's
 *   default); per token 2 x layers x KV heads per GPU x head size x 2 bytes.
 */
import type { Dtype, Quantize } from "../config/schema.ts";
import { maxNumTokens } from "../trtllm/argv.ts";
import type { GpuFacts } from "./gpu-profiles.ts";
import type { ModelConfig } from "./hf-config.ts";
import { tpProblem } from "./limits.ts";

export const kvCacheFreeGpuMemFraction = 0.9;
export const tokensPerBlock = 128;
export const runtimeOverheadBytes = 1024 ** 3;

export interface MemoryInput {
  readonly model: ModelConfig;
  readonly dtype: Dtype;
  readonly quantize: Quantize;
  readonly tp: number;
  readonly maxBatchSize: number;
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
}

export interface GpuMemory {
  readonly rank: number;
  readonly gpu: string | null;
  /** The memory the plan counts on (null: no GPU known). */
  readonly memoryBytes: number | null;
  readonly weightsBytes: number;
  readonly activationBytes: number;
  readonly overheadBytes: number;
  /** activationBytes + overheadBytes. */
  readonly runtimeBytes: number;
  readonly kvBytesPerToken: number;
  readonly kvCacheBytes: number | null;
  readonly kvCacheTokens: number | null;
  /** Concurrent requests of max_input_len + max_output_len tokens the KV cache holds. */
  readonly fullRequests: number | null;
  /** What is left unused: the (1 - fraction) of the free memory the KV cache does not take. */
  readonly headroomBytes: number | null;
  readonly fits: boolean | null;
}

const dtypeBytes = 2;

/** The bytes of one engine rank's weights. */
export function weightsBytesPerGpu(m: ModelConfig, quantize: Quantize, tp: number): number {
  const b = dtypeBytes;
  const heads = m.numHeads / tp;
  const kvHeads = Math.ceil(m.numKvHeads / tp);
  const inter = m.intermediateSize / tp;
  const qkvOut = (heads + 2 * kvHeads) * m.headDim;
  const linearParams = m.hiddenSize * qkvOut + heads * m.headDim * m.hiddenSize + 3 * m.hiddenSize * inter;
  // One scale per output column of qkv, dense, fc, gate and proj.
  const scaleColumns = qkvOut + m.hiddenSize + 2 * inter + m.hiddenSize;
  const linearBytes = quantize === "none" ? linearParams * b : quantize === "int8" ? linearParams + scaleColumns * b : linearParams / 2 + scaleColumns * b;
  const perLayer = linearBytes + 2 * m.hiddenSize * b;
  const vocabPerGpu = Math.ceil(m.vocabSize / tp);
  const embedding = m.vocabSize * m.hiddenSize * b;
  const lmHead = vocabPerGpu * m.hiddenSize * b;
  return m.numLayers * perLayer + embedding + lmHead + m.hiddenSize * b;
}

export function activationBytesPerGpu(m: ModelConfig, i: Pick<MemoryInput, "tp" | "maxBatchSize" | "maxInputLen">): number {
  const tokens = maxNumTokens(i);
  const logits = i.maxBatchSize * Math.ceil(m.vocabSize / i.tp) * 4;
  return tokens * (m.hiddenSize + (3 * m.intermediateSize) / i.tp) * dtypeBytes + logits;
}

export function kvBytesPerToken(m: ModelConfig, tp: number): number {
  return 2 * m.numLayers * Math.ceil(m.numKvHeads / tp) * m.headDim * dtypeBytes;
}

/** The plan for each of the engine's `tp` GPUs; `gpus` are those ranks' GPUs (null: unknown). */
export function memoryPlan(i: MemoryInput, gpus: readonly GpuFacts[] | null): GpuMemory[] {
  const weightsBytes = weightsBytesPerGpu(i.model, i.quantize, i.tp);
  const activationBytes = activationBytesPerGpu(i.model, i);
  const runtimeBytes = activationBytes + runtimeOverheadBytes;
  const perToken = kvBytesPerToken(i.model, i.tp);
  const requestTokens = i.maxInputLen + i.maxOutputLen;
  return Array.from({ length: i.tp }, (_, rank) => {
    const gpu = gpus?.[rank];
    const base = { rank, weightsBytes, activationBytes, overheadBytes: runtimeOverheadBytes, runtimeBytes, kvBytesPerToken: perToken };
    if (gpu === undefined) {
      return { ...base, gpu: null, memoryBytes: null, kvCacheBytes: null, kvCacheTokens: null, fullRequests: null, headroomBytes: null, fits: null };
    }
    const free = gpu.memoryBytes - weightsBytes - runtimeBytes;
    const kvCacheBytes = free > 0 ? Math.floor(free * kvCacheFreeGpuMemFraction) : 0;
    const kvCacheTokens = Math.floor(kvCacheBytes / (perToken * tokensPerBlock)) * tokensPerBlock;
    const fullRequests = Math.floor(kvCacheTokens / requestTokens);
    return {
      ...base,
      gpu: gpu.name,
      memoryBytes: gpu.memoryBytes,
      kvCacheBytes,
      kvCacheTokens,
      fullRequests,
      headroomBytes: free - kvCacheBytes,
      // Fits: the engine loads and the KV cache holds at least one whole request.
      fits: fullRequests >= 1,
    };
  });
}

export interface FitOption {
  readonly quantize: Quantize;
  readonly tp: number;
  readonly fullRequests: number;
}

/**
 * The quantizations and tp sizes that would fit on GPUs like these, fewest GPUs first, then
 * least quantized: what a refusal offers instead.
 */
export function optionsThatFit(i: MemoryInput, gpu: GpuFacts, maxGpus: number): FitOption[] {
  const found: FitOption[] = [];
  for (const tp of [1, 2, 4, 8].filter((n) => n <= maxGpus && tpProblem(i.model, n) === undefined)) {
    for (const quantize of ["none", "int8", "int4"] as const) {
      const plan = memoryPlan({ ...i, tp, quantize }, Array.from({ length: tp }, () => gpu));
      const worst = Math.min(...plan.map((p) => p.fullRequests ?? 0));
      if (plan.every((p) => p.fits)) found.push({ quantize, tp, fullRequests: worst });
    }
  }
  return found;
}

/**
 * "Will this fit, and how well": the model's compatibility, its limits and the memory plan in
 * one answer, from the model's small files and the GPU facts. Pure: the pipeline, doctor and
 * plan hand in what they fetched.
 */
import { UsageError } from "../common/errors.ts";
import { formatBytes } from "../common/format.ts";
import type { Settings } from "../config/schema.ts";
import type { GpuSituation } from "../pipeline/gpus.ts";
import { maxNumTokens } from "../trtllm/argv.ts";
import { compatibilityProblems, type Finding } from "./compatibility.ts";
import { conversationRules, type ConversationRules } from "./conversation.ts";
import { parameterCount, parseModelConfig, type ModelConfig } from "./hf-config.ts";
import { checkLimits } from "./limits.ts";
import { kvCacheFreeGpuMemFraction, memoryPlan, optionsThatFit, tokensPerBlock, type FitOption, type GpuMemory } from "./memory.ts";

/** The model's small files as text, and where they came from ("meta-llama/…@abc1234", or a folder). */
export interface SmallFilesText {
  readonly from: string;
  readonly config: string;
  readonly generationConfig: string | undefined;
  readonly tokenizerConfig: string | undefined;
}

/** The top-level `memory` object of `plan --json`. */
export interface MemoryDocument {
  readonly gpus:
    | { readonly source: "profile"; readonly profile: string; readonly name: string }
    | { readonly source: "nvidia-smi"; readonly name: string; readonly count: number }
    | { readonly source: "unknown"; readonly reason: string };
  readonly dtype: Settings["dtype"];
  readonly quantize: Settings["quantize"];
  readonly tp: number;
  readonly maxBatchSize: number;
  /** max_input_len + max_output_len: one full-length request. */
  readonly requestTokens: number;
  readonly maxNumTokens: number;
  readonly kvCacheFreeGpuMemFraction: number;
  readonly tokensPerBlock: number;
  readonly perGpu: readonly GpuMemory[];
  /** Every GPU fits (null: no GPU facts to judge by). */
  readonly fits: boolean | null;
  /** The fewest full-length requests any GPU's KV cache holds (null: unknown). */
  readonly fullRequests: number | null;
  /** When it does not fit: the quantizations and tp sizes that would. */
  readonly optionsThatFit: readonly FitOption[];
  readonly estimate: string;
}

export interface Assessment {
  readonly model: {
    readonly from: string;
    readonly architecture: string;
    readonly parameters: number;
    readonly layers: number;
    readonly attentionHeads: number;
    readonly kvHeads: number;
    readonly headDim: number;
    readonly maxPositionEmbeddings: number;
    readonly vocabSize: number;
    readonly ropeTheta: number;
  };
  readonly config: ModelConfig;
  readonly conversation: ConversationRules;
  /** Reasons not to build: exit 2 before anything runs. */
  readonly refusals: readonly Finding[];
  readonly warnings: readonly Finding[];
  readonly notes: readonly Finding[];
  readonly memory: MemoryDocument;
}

const estimate =
  "weights: parameters x bytes (weight-only int8/int4 with per-channel scales) split by tp; runtime: activations for max_num_tokens tokens (MLP input + fc, gate and product outputs) + float32 logits per sequence + 1 GiB for the CUDA context and workspaces (an allowance: compare with trtllm-build's 'Total Activation Memory'); KV cache: kv_cache_free_gpu_mem_fraction of the rest, in blocks of tokens_per_block";

export function assess(files: SmallFilesText, settings: Settings, situation: GpuSituation): Assessment {
  const config = parseModelConfig(files.config);
  const conversation = conversationRules(files, settings.model);
  const refusals: Finding[] = [...compatibilityProblems(config)];
  const limits = checkLimits(config, settings);
  refusals.push(...limits.refusals);
  const warnings: Finding[] = [];

  const input = { model: config, dtype: settings.dtype, quantize: settings.quantize, tp: settings.tp, maxBatchSize: settings.maxBatchSize, maxInputLen: settings.maxInputLen, maxOutputLen: settings.maxOutputLen };
  // A tp the model cannot be split into has no memory plan: the refusal above says why.
  const splits = !limits.refusals.some((f) => f.rule === "tp");
  const perGpu = splits ? memoryPlan(input, situation.source === "unknown" ? null : situation.gpus) : [];
  const known = perGpu.length > 0 && perGpu.every((p) => p.fits !== null);
  const fits = known ? perGpu.every((p) => p.fits) : null;
  const fullRequests = known ? Math.min(...perGpu.map((p) => p.fullRequests ?? 0)) : null;
  let options: FitOption[] = [];
  const first = perGpu[0];
  if (fits === false && situation.source !== "unknown" && situation.gpus[0] && first) {
    options = optionsThatFit(input, situation.gpus[0], situation.available);
    const offered = options.slice(0, 4).map((o) => `--quantize ${o.quantize} --tp ${o.tp} (${o.fullRequests} full requests)`);
    const need = first.weightsBytes + first.runtimeBytes;
    refusals.push({
      rule: "memory",
      field: "memory per GPU",
      value: `${formatBytes(need)} needed, ${formatBytes(first.memoryBytes ?? 0)} there`,
      message: `${settings.dtype}${settings.quantize === "none" ? "" : ` ${settings.quantize}`} on ${settings.tp} x ${situation.gpus[0].name} does not fit: each GPU needs ${formatBytes(first.weightsBytes)} of weights and ${formatBytes(first.runtimeBytes)} of runtime buffers plus room for one request of ${input.maxInputLen + input.maxOutputLen} tokens, and has ${formatBytes(first.memoryBytes ?? 0)}. ${offered.length > 0 ? `What would fit: ${offered.join("; ")}` : `Nothing fits on ${situation.available} such GPU${situation.available === 1 ? "" : "s"}: lower --max-batch-size or --max-input-len, or use larger GPUs`}`,
      source: "docs/source/memory.md (TensorRT-LLM); model/memory.ts",
    });
  } else if (fullRequests !== null && fullRequests < settings.maxBatchSize) {
    const tokens = Math.min(...perGpu.map((p) => p.kvCacheTokens ?? 0));
    warnings.push({
      rule: "kv-cache",
      field: "max_batch_size",
      value: String(settings.maxBatchSize),
      message: `the KV cache holds ${tokens} tokens: ${fullRequests} concurrent request${fullRequests === 1 ? "" : "s"} of ${input.maxInputLen + input.maxOutputLen} tokens, fewer than --max-batch-size ${settings.maxBatchSize}; more wait for room (guaranteed_no_evict). Shorter requests share it better; --quantize or a larger --tp leaves more room`,
      source: "docs/source/memory.md (TensorRT-LLM); model/memory.ts",
    });
  }

  const gpus: MemoryDocument["gpus"] =
    situation.source === "profile"
      ? { source: "profile", profile: situation.profile, name: situation.gpus[0]?.name ?? situation.profile }
      : situation.source === "nvidia-smi"
        ? { source: "nvidia-smi", name: situation.gpus[0]?.name ?? "?", count: situation.available }
        : { source: "unknown", reason: situation.reason };
  return {
    model: {
      from: files.from,
      architecture: config.architectures.join(", ") || "(none)",
      parameters: parameterCount(config),
      layers: config.numLayers,
      attentionHeads: config.numHeads,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      maxPositionEmbeddings: config.maxPositions,
      vocabSize: config.vocabSize,
      ropeTheta: config.ropeTheta,
    },
    config,
    conversation,
    refusals,
    warnings,
    notes: limits.notes,
    memory: {
      gpus,
      dtype: settings.dtype,
      quantize: settings.quantize,
      tp: settings.tp,
      maxBatchSize: settings.maxBatchSize,
      requestTokens: settings.maxInputLen + settings.maxOutputLen,
      maxNumTokens: maxNumTokens(settings),
      kvCacheFreeGpuMemFraction,
      tokensPerBlock,
      perGpu,
      fits,
      fullRequests,
      optionsThatFit: options,
      estimate,
    },
  };
}

/** The refusals as one error: exit 2, one line per reason, each naming the field and its value. */
export class ModelRefusedError extends UsageError {
  override readonly kind = "model-refused";
  readonly refusals: readonly Finding[];
  constructor(from: string, refusals: readonly Finding[]) {
    super(`llama3-trt will not build ${from}:\n${refusals.map((r) => `- ${r.field} = ${r.value}: ${r.message} [${r.source}]`).join("\n")}`);
    this.refusals = refusals;
  }
}

export function refuseIfNeeded(a: Assessment): void {
  if (a.refusals.length > 0) throw new ModelRefusedError(a.model.from, a.refusals);
}

/** The assessment for a person: the model in a line, the memory per GPU, then the findings. */
export function describeAssessment(a: Assessment, options: { findings: boolean } = { findings: true }): string[] {
  const m = a.model;
  const lines = [
    `Model ${m.from}: ${m.architecture}, ${(m.parameters / 1e9).toFixed(2)} B parameters, ${m.layers} layers, ${m.attentionHeads} heads (${m.kvHeads} KV, ${m.headDim} each), ${m.maxPositionEmbeddings} positions, rope_theta ${m.ropeTheta}`,
    `  chat: ${a.conversation.template === "none" ? "none (a base model: prompts are sent as they are)" : `template from ${a.conversation.template}`}; end tokens ${a.conversation.endTokenIds.join(", ")} (end_id ${a.conversation.endId})`,
  ];
  const mem = a.memory;
  const where =
    mem.gpus.source === "profile"
      ? `${mem.tp} x ${mem.gpus.name} (--gpu ${mem.gpus.profile})`
      : mem.gpus.source === "nvidia-smi"
        ? `${mem.tp} of ${mem.gpus.count} x ${mem.gpus.name} (nvidia-smi)`
        : `unknown GPUs: ${mem.gpus.reason}`;
  lines.push(`Memory per GPU, ${mem.dtype}${mem.quantize === "none" ? "" : ` ${mem.quantize}`}, tp ${mem.tp}, on ${where}:`);
  for (const g of mem.perGpu.slice(0, 1)) {
    const runtime = `runtime ${formatBytes(g.runtimeBytes)} (activations ${formatBytes(g.activationBytes)} for ${mem.maxNumTokens} tokens + ${formatBytes(g.overheadBytes)})`;
    if (g.memoryBytes === null) {
      lines.push(`  weights ${formatBytes(g.weightsBytes)}, ${runtime}, KV cache ${g.kvBytesPerToken} bytes a token; needs more than ${formatBytes(g.weightsBytes + g.runtimeBytes)} a GPU`);
    } else {
      lines.push(
        `  ${formatBytes(g.memoryBytes)}: weights ${formatBytes(g.weightsBytes)}, ${runtime}, KV cache ${formatBytes(g.kvCacheBytes ?? 0)} = ${g.kvCacheTokens} tokens = ${g.fullRequests} requests of ${mem.requestTokens} tokens, ${(g.headroomBytes ?? 0) >= 0 ? `headroom ${formatBytes(g.headroomBytes ?? 0)}` : `${formatBytes(-(g.headroomBytes ?? 0))} short`}${g.fits ? "" : " — does not fit"}`,
      );
    }
    if (mem.perGpu.length > 1) lines.push(`  (the same on each of the ${mem.perGpu.length} GPUs)`);
  }
  if (!options.findings) return lines;
  for (const f of a.refusals) lines.push(`refused: ${f.field} = ${f.value}: ${f.message}`);
  for (const f of a.warnings) lines.push(`warning: ${f.message}`);
  for (const f of a.notes) lines.push(`note: ${f.message}`);
  return lines;
}

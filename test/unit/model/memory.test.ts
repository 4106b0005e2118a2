import { describe, expect, it } from "vitest";
import { gpuProfiles } from "../../../src/model/gpu-profiles.ts";
import { parseModelConfig } from "../../../src/model/hf-config.ts";
import { memoryPlan, optionsThatFit, type MemoryInput } from "../../../src/model/memory.ts";
import { llama3_70bInstruct, llama3_8bInstruct, modelFile } from "./fixtures.ts";

const llama8b = parseModelConfig(modelFile(llama3_8bInstruct, "config.json"));
const llama70b = parseModelConfig(modelFile(llama3_70bInstruct, "config.json"));
const defaults = { dtype: "bfloat16", maxBatchSize: 64, maxInputLen: 4096, maxOutputLen: 1024 } as const;
const on = (gpu: keyof typeof gpuProfiles, n: number) => Array.from({ length: n }, () => gpuProfiles[gpu]);
const plan = (i: Omit<MemoryInput, keyof typeof defaults>, gpu: keyof typeof gpuProfiles) => memoryPlan({ ...defaults, ...i }, on(gpu, i.tp));

/*
 * The numbers below were computed by hand (a separate script, not this code), from the model
 * cards' shapes, for the defaults: batch 64, input 4096, output 1024; max_num_tokens
 * min(64 x 4096, 16384) = 16384; kv_cache_free_gpu_mem_fraction 0.9, blocks of 128 tokens.
 *
 * 8B bf16, tp 1, H100 80GB (81559 MiB = 85,520,809,984 B):
 *   weights: per layer q 4096x4096 + k,v 2x4096x1024 + o 4096x4096 + mlp 3x4096x14336 = 218,103,808
 *            + norms 2x4096 = 218,112,000 params; x32 = 6,979,584,000; embedding 128256x4096 =
 *            525,336,576, lm_head the same, final norm 4096 -> 8,030,261,248 params x 2 B
 *            = 16,060,522,496 B
 *   activations: 16384 x (4096 + 3 x 14336) x 2 = 1,543,503,872 + logits 64 x 128256 x 4 = 32,833,536
 *            -> 1,576,337,408; runtime = that + 1 GiB = 2,650,079,232
 *   KV: free 85,520,809,984 - 16,060,522,496 - 2,650,079,232 = 66,810,208,256; x 0.9 =
 *            60,129,187,430 B; per token 2 x 32 x 8 x 128 x 2 = 131,072 B; per block of 128
 *            16,777,216 B -> 3583 blocks = 458,624 tokens; / 5120 = 89 full requests;
 *            headroom 66,810,208,256 - 60,129,187,430 = 6,681,020,826
 */
describe("memory plan per GPU, against hand-computed numbers", () => {
  it("8B bf16 tp 1 on an H100 80GB", () => {
    expect(plan({ model: llama8b, quantize: "none", tp: 1 }, "h100-80gb")).toEqual([
      {
        rank: 0,
        gpu: "NVIDIA H100 80GB HBM3",
        memoryBytes: 85_520_809_984,
        weightsBytes: 16_060_522_496,
        activationBytes: 1_576_337_408,
        overheadBytes: 1_073_741_824,
        runtimeBytes: 2_650_079_232,
        kvBytesPerToken: 131_072,
        kvCacheBytes: 60_129_187_430,
        kvCacheTokens: 458_624,
        fullRequests: 89,
        headroomBytes: 6_681_020_826,
        fits: true,
      },
    ]);
  });

  it("8B bf16 tp 1 on an H200 141GB (143771 MiB)", () => {
    expect(plan({ model: llama8b, quantize: "none", tp: 1 }, "h200-141gb")).toMatchObject([
      { memoryBytes: 150_754_820_096, weightsBytes: 16_060_522_496, runtimeBytes: 2_650_079_232, kvCacheBytes: 118_839_796_531, kvCacheTokens: 906_624, fullRequests: 177, headroomBytes: 13_204_421_837, fits: true },
    ]);
  });

  // 70B: 80 layers, hidden 8192, 64 heads, 8 KV heads, intermediate 28672. The embedding
  // (128256 x 8192 x 2 = 2,101,346,304 B) is on every GPU; lm_head, the layers and the KV heads split.
  it.each<[number, Record<string, number | boolean>]>([
    // 70,553,706,496 params x 2 B; activations 16384 x (8192 + 86016) x 2 + 64 x 128256 x 4.
    [1, { weightsBytes: 141_107_412_992, activationBytes: 3_119_841_280, kvBytesPerToken: 327_680, kvCacheBytes: 0, kvCacheTokens: 0, fullRequests: 0, headroomBytes: -59_780_186_112, fits: false }],
    [2, { weightsBytes: 71_605_698_560, activationBytes: 1_694_138_368, kvBytesPerToken: 163_840, kvCacheBytes: 10_032_508_108, kvCacheTokens: 61_184, fullRequests: 11, headroomBytes: 1_114_723_124, fits: true }],
    [4, { weightsBytes: 36_854_841_344, activationBytes: 981_286_912, kvBytesPerToken: 81_920, kvCacheBytes: 41_949_845_913, kvCacheTokens: 512_000, fullRequests: 100, headroomBytes: 4_661_093_991, fits: true }],
    [8, { weightsBytes: 19_479_412_736, activationBytes: 624_861_184, kvBytesPerToken: 40_960, kvCacheBytes: 57_908_514_816, kvCacheTokens: 1_413_760, fullRequests: 276, headroomBytes: 6_434_279_424, fits: true }],
  ])("70B bf16 on %i x H100 80GB", (tp, expected) => {
    const gpus = plan({ model: llama70b, quantize: "none", tp }, "h100-80gb");
    expect(gpus).toHaveLength(tp);
    for (const [rank, gpu] of gpus.entries()) expect(gpu).toMatchObject({ rank, ...expected });
  });

  it("70B int4 on 2 x H100 80GB: linear layers at half a byte plus a bf16 scale per output column", () => {
    // Per GPU and layer: 427,819,008 linear params / 2 = 213,909,504 B + scales (qkv 5120 + dense 8192 +
    // fc, gate 2 x 14336 + proj 8192) x 2 = 100,352 B + norms 32,768 B = 214,042,624; x 80 = 17,123,409,920
    // + embedding 2,101,346,304 + lm_head 1,050,673,152 + final norm 16,384.
    expect(plan({ model: llama70b, quantize: "int4", tp: 2 }, "h100-80gb")).toMatchObject([
      { weightsBytes: 20_275_445_760, kvCacheBytes: 56_229_735_628, kvCacheTokens: 343_168, fullRequests: 67, headroomBytes: 6_247_748_404, fits: true },
      { rank: 1, weightsBytes: 20_275_445_760, fullRequests: 67 },
    ]);
  });

  it("8B int4 on a 24 GB card (A10G, 23028 MiB)", () => {
    expect(plan({ model: llama8b, quantize: "int4", tp: 1 }, "a10g-24gb")).toMatchObject([
      { memoryBytes: 24_146_608_128, weightsBytes: 5_594_292_224, runtimeBytes: 2_650_079_232, kvCacheBytes: 14_312_013_004, kvCacheTokens: 109_184, fullRequests: 21, fits: true },
    ]);
  });

  it("without GPU facts: the needs, and nothing judged", () => {
    expect(memoryPlan({ ...defaults, model: llama8b, quantize: "none", tp: 1 }, null)).toEqual([
      {
        rank: 0,
        gpu: null,
        memoryBytes: null,
        weightsBytes: 16_060_522_496,
        activationBytes: 1_576_337_408,
        overheadBytes: 1_073_741_824,
        runtimeBytes: 2_650_079_232,
        kvBytesPerToken: 131_072,
        kvCacheBytes: null,
        kvCacheTokens: null,
        fullRequests: null,
        headroomBytes: null,
        fits: null,
      },
    ]);
  });

  it("70B bf16 on one H100 does not fit: what would, fewest GPUs first, then least quantized", () => {
    expect(optionsThatFit({ ...defaults, model: llama70b, quantize: "none", tp: 1 }, gpuProfiles["h100-80gb"], 8)).toEqual([
      { quantize: "int8", tp: 1, fullRequests: 4 },
      { quantize: "int4", tp: 1, fullRequests: 23 },
      { quantize: "none", tp: 2, fullRequests: 11 },
      { quantize: "int8", tp: 2, fullRequests: 48 },
      { quantize: "int4", tp: 2, fullRequests: 67 },
      { quantize: "none", tp: 4, fullRequests: 100 },
      { quantize: "int8", tp: 4, fullRequests: 136 },
      { quantize: "int4", tp: 4, fullRequests: 155 },
      { quantize: "none", tp: 8, fullRequests: 276 },
      { quantize: "int8", tp: 8, fullRequests: 312 },
      { quantize: "int4", tp: 8, fullRequests: 331 },
    ]);
    // Only as many GPUs as the host has.
    expect(optionsThatFit({ ...defaults, model: llama70b, quantize: "none", tp: 1 }, gpuProfiles["h100-80gb"], 1).map((o) => `${o.quantize}/${o.tp}`)).toEqual(["int8/1", "int4/1"]);
  });
});

import type { Gpu } from "../doctor/nvidia-smi.ts";

/** One GPU as the memory plan sees it. */
export interface GpuFacts {
  readonly name: string;
  /** The memory the plan may use: memory.free as nvidia-smi reports it, or a profile's memory.total. */
  readonly memoryBytes: number;
  readonly computeCapability: number;
}

export interface GpuProfile extends GpuFacts {
  /** memory.total in MiB, as nvidia-smi prints it for this card. */
  readonly memoryMiB: number;
  /** Whether the number comes from a capture in test/fixtures/nvidia-smi, or from the card's usual report. */
  readonly captured: boolean;
}

const MiB = 1024 * 1024;

function profile(name: string, memoryMiB: number, computeCapability: number, captured: boolean): GpuProfile {
  return { name, memoryMiB, memoryBytes: memoryMiB * MiB, computeCapability, captured };
}

/**
 * `--gpu <profile>`: plan for GPUs that are not the host's (a laptop, a CI machine). H100 and
 * H200 are the memory.total of the captures in test/fixtures/nvidia-smi; the others are what
 * nvidia-smi usually reports for those cards (not captured here).
 */
export const gpuProfiles = {
  "h100-80gb": profile("NVIDIA H100 80GB HBM3", 81559, 9.0, true),
  "h200-141gb": profile("NVIDIA H200", 143771, 9.0, true),
  "a100-80gb": profile("NVIDIA A100-SXM4-80GB", 81920, 8.0, false),
  "l40s-48gb": profile("NVIDIA L40S", 46068, 8.9, false),
  "a10g-24gb": profile("NVIDIA A10G", 23028, 8.6, false),
  "l4-24gb": profile("NVIDIA L4", 23034, 8.9, false),
} as const satisfies Record<string, GpuProfile>;

export type GpuProfileName = keyof typeof gpuProfiles;
export const gpuProfileNames = Object.keys(gpuProfiles) as GpuProfileName[];

/** A GPU nvidia-smi reported: what is free on it now is what the engine and the KV cache can get. */
export function factsFromNvidiaSmi(gpu: Gpu): GpuFacts {
  return { name: gpu.name, memoryBytes: gpu.memoryFreeMiB * MiB, computeCapability: gpu.computeCapability };
}

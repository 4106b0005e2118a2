import { access } from "node:fs/promises";
import { join } from "node:path";
import type { Verdict } from "../step.ts";

/** `rank0.engine`, `rank1.engine`…: TensorRT-LLM writes one file per tensor-parallel rank. */
export function rankFiles(tp: number, extension: "safetensors" | "engine"): string[] {
  return Array.from({ length: tp }, (_, rank) => `rank${rank}.${extension}`);
}

export async function filesExist(dir: string, files: readonly string[]): Promise<Verdict> {
  for (const file of files) {
    try {
      await access(join(dir, file));
    } catch {
      return { ok: false, reason: `${file} is missing from ${dir}` };
    }
  }
  return { ok: true };
}

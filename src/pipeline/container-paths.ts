import { posix } from "node:path";
import type { Mount } from "../docker/container-spec.ts";

/**
 * Where things are inside the containers: one table for every step and for `serve`, so a path
 * written into a config inside one container is the path the next container sees.
 */
export const inContainer = {
  trtllm: "/llama3-trt/TensorRT-LLM",
  weights: "/llama3-trt/weights",
  checkpoint: "/llama3-trt/checkpoint",
  engine: "/llama3-trt/engine",
  modelRepo: "/llama3-trt/model-repo",
  /** The one writable mount of a step: its staging folder. */
  output: "/llama3-trt/output",
} as const;

/** The tokenizer (the Hugging Face model folder) inside a container that mounts the weights. */
export function tokenizerDirIn(modelPath: string): string {
  return posix.join(inContainer.weights, modelPath);
}

/**
 * What the Triton container mounts, all read-only: the model repository, and beside it the
 * engine and the weights, where the filled config.pbtxt files point (engine_dir, tokenizer_dir).
 * The engine is mounted, never copied into the repository.
 */
export function servingMounts(host: { modelRepo: string; engine: string; weights: string }): Mount[] {
  return [mount(host.modelRepo, inContainer.modelRepo), mount(host.engine, inContainer.engine), mount(host.weights, inContainer.weights)];
}

export function mount(host: string, container: string, readOnly = true): Mount {
  return { host, container, readOnly };
}

/** Runs containers as the invoking user, so the workdir never fills with root-owned files. */
export function containerUser(): string | undefined {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  return uid === undefined || uid === 0 ? undefined : `${uid}:${gid}`;
}

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

export function mount(host: string, container: string, readOnly = true): Mount {
  return { host, container, readOnly };
}

/** Runs containers as the invoking user, so the workdir never fills with root-owned files. */
export function containerUser(): string | undefined {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  return uid === undefined || uid === 0 ? undefined : `${uid}:${gid}`;
}

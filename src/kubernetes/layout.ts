import { posix } from "node:path";
import { inContainer } from "../pipeline/container-paths.ts";

/**
 * Where things are on the PersistentVolumeClaim. Each build (one fingerprint, named by its first 16 hex digits) has its own folder,
 * so a changed setting builds beside the old engine and a pod of the old Deployment keeps
 * serving from its folder until the new one is ready; the Hugging Face cache is shared by all
 * builds (it keeps each revision apart by itself, and a second build must not download again).
 *
 *   hub/models--org--name/…                 huggingface-cli's cache (blobs, snapshots/<commit>)
 *   builds/<build id>/TensorRT-LLM       the clone of each repository
 *   builds/<build id>/tensorrtllm_backend
 *   builds/<build id>/checkpoint         convert_checkpoint.py's output
 *   builds/<build id>/engine             trtllm-build's output
 *   builds/<build id>/model-repo         the filled Triton model repository
 *   builds/<build id>/status/<step>.done written when a step's outputs are complete
 */
export class VolumeLayout {
  /** The build's id (buildId: the fingerprint's first 16 hex digits). */
  readonly buildId: string;
  readonly model: string;
  constructor(buildId: string, model: string) {
    this.buildId = buildId;
    this.model = model;
  }
  get hub(): string {
    return "hub";
  }
  /** The model's cache folder, as huggingface_hub names it (`models--org--name`). */
  get modelCache(): string {
    return posix.join(this.hub, `models--${this.model.split("/").join("--")}`);
  }
  get build(): string {
    return posix.join("builds", this.buildId);
  }
  get trtllmRepo(): string {
    return posix.join(this.build, "TensorRT-LLM");
  }
  get backendRepo(): string {
    return posix.join(this.build, "tensorrtllm_backend");
  }
  get checkpoint(): string {
    return posix.join(this.build, "checkpoint");
  }
  get engine(): string {
    return posix.join(this.build, "engine");
  }
  get modelRepo(): string {
    return posix.join(this.build, "model-repo");
  }
  get status(): string {
    return posix.join(this.build, "status");
  }

  /**
   * The folder on the volume behind each read-only mount of the plan's containers, by the mount's
   * path inside the container (one table with `build` and `serve`: container-paths.ts).
   */
  inputFor(containerPath: string): string | undefined {
    const table: Record<string, string> = {
      [inContainer.trtllm]: this.trtllmRepo,
      [inContainer.weights]: this.modelCache,
      [inContainer.checkpoint]: this.checkpoint,
      [inContainer.engine]: this.engine,
      [inContainer.modelRepo]: this.modelRepo,
      [inCluster.backend]: this.backendRepo,
      [inCluster.hub]: this.hub,
    };
    return table[containerPath];
  }
}

/** Paths inside the cluster's containers that the local containers do not have. */
export const inCluster = {
  /** huggingface-cli's cache (`--cache-dir`): the whole `hub` folder of the volume. */
  hub: "/llama3-trt/hub",
  /** tensorrtllm_backend, read by the model repository fill. */
  backend: "/llama3-trt/tensorrtllm_backend",
  /** The build's status folder: one `<step>.done` file per finished step. */
  status: "/llama3-trt/status",
  /** A memory-backed /dev/shm (Docker's --shm-size=2g). */
  shm: "/dev/shm",
} as const;

import { createHash } from "node:crypto";
import { join } from "node:path";
import type { StepId } from "./step-ids.ts";

/**
 * The workdir's layout in one place. `state.json`, `logs/<step>.log` and `model-repo/` are fixed
 * by the contract; the rest is ours.
 */
export class WorkdirPaths {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  get state(): string {
    return join(this.root, "state.json");
  }
  get lockDir(): string {
    return join(this.root, ".lock");
  }
  get logs(): string {
    return join(this.root, "logs");
  }
  log(step: StepId | "server"): string {
    return join(this.logs, `${step}.log`);
  }
  get repos(): string {
    return join(this.root, "repos");
  }
  get trtllmRepo(): string {
    return join(this.repos, "TensorRT-LLM");
  }
  get backendRepo(): string {
    return join(this.repos, "tensorrtllm_backend");
  }
  get checkpoint(): string {
    return join(this.root, "checkpoint");
  }
  get engine(): string {
    return join(this.root, "engine");
  }
  get modelRepo(): string {
    return join(this.root, "model-repo");
  }
  get imageContext(): string {
    return join(this.root, "image");
  }
  /** Short stable id of this workdir for container labels: the path's hash, not the path itself. */
  get id(): string {
    return createHash("sha256").update(this.root).digest("hex").slice(0, 16);
  }
}

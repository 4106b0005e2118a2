import { createHash } from "node:crypto";
import { lstat } from "node:fs/promises";
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

/**
 * Folders of the workdir that every user of the host may write to (`chmod o+w`): anyone could
 * then replace a log, a config.pbtxt or an engine file under the tool. Warned about, not
 * refused: the user may share the host on purpose (reliability case 40b).
 */
export async function writableByOthers(paths: WorkdirPaths): Promise<string[]> {
  const open: string[] = [];
  for (const dir of [paths.root, paths.logs, paths.modelRepo, paths.engine]) {
    const info = await lstat(dir).catch(() => undefined);
    // The sticky bit (as on /tmp) keeps others from replacing what is not theirs.
    if (info?.isDirectory() && (info.mode & 0o002) !== 0 && (info.mode & 0o1000) === 0) open.push(dir);
  }
  return open;
}

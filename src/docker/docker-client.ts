import type { ContainerSpec } from "./container-spec.ts";

/** What the tool needs of a Docker engine, by role. Only dockerode-client.ts knows dockerode. */
export interface DockerClient {
  /** Engine facts for doctor and for container bodies; fails clearly when no engine answers. */
  info(): Promise<EngineInfo>;
  /** undefined when the engine does not have the image. */
  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  pullImage(ref: string, options: { onProgress: (p: PullProgress) => void; signal: AbortSignal }): Promise<void>;
  buildImage(options: BuildOptions): Promise<void>;
  /** Create, start, stream output, wait, remove. Abort stops and removes the container. */
  runToCompletion(spec: ContainerSpec, options: RunOptions): Promise<RunResult>;
  /** Containers in any state that carry all these labels. */
  listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]>;
  /** Stop (grace period unless `kill`) and remove; a container already gone is fine. */
  removeContainer(id: string, options?: { kill?: boolean }): Promise<void>;
}

export interface EngineInfo {
  readonly serverVersion: string;
  readonly host: string;
  readonly runtimes: readonly string[];
  readonly rootless: boolean;
}

export interface ImageInfo {
  readonly id: string;
  readonly repoDigests: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

export interface PullProgress {
  readonly layer?: string;
  readonly status: string;
  readonly current?: number;
  readonly total?: number;
}

export interface BuildOptions {
  readonly contextDir: string;
  readonly tag: string;
  readonly buildArgs: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly onLine: (line: string) => void;
  readonly signal: AbortSignal;
}

export interface RunOptions {
  readonly labels: Readonly<Record<string, string>>;
  readonly onLine: (line: string) => void;
  readonly signal: AbortSignal;
  readonly engine: EngineInfo;
}

export interface RunResult {
  readonly exitCode: number;
  /** The kernel's OOM killer ended it (State.OOMKilled). */
  readonly oomKilled: boolean;
}

export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
}

import { FailedError } from "../common/errors.ts";
import type { ContainerSpec } from "./container-spec.ts";

/**
 * No Docker engine answers at `host`. Commands that only look (plan, status) say what they cannot
 * know instead of failing; commands that need the engine fail with this message (case 25).
 */
export class EngineUnreachableError extends FailedError {
  readonly host: string;
  readonly code: string;
  constructor(host: string, code: string, options?: ErrorOptions) {
    super(
      `Cannot connect to the Docker engine at ${host} (${code}). Is dockerd running? ` +
        "Start it (e.g. `sudo systemctl start docker`), or point DOCKER_HOST at a running engine.",
      options,
    );
    this.host = host;
    this.code = code;
  }
}

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
  /**
   * Create and start a container that keeps running (the server). A start that fails removes
   * the container, which the engine would otherwise leave in Created (reliability D2/D3).
   */
  startContainer(spec: ContainerSpec, options: StartOptions): Promise<string>;
  /** undefined when the container is gone. */
  inspectContainer(id: string): Promise<ContainerDetails | undefined>;
  /** Resolves with the exit code once the container stops; undefined when it is gone. */
  waitContainer(id: string, signal: AbortSignal): Promise<number | undefined>;
  /** Its output line by line: all of it or the last `tail` lines; with `follow`, until it stops or `signal` aborts. */
  containerLogs(id: string, options: LogOptions): Promise<void>;
}

export interface StartOptions {
  readonly labels: Readonly<Record<string, string>>;
  readonly engine: EngineInfo;
  readonly name?: string;
}

export interface LogOptions {
  readonly follow: boolean;
  readonly tail?: number;
  readonly signal?: AbortSignal;
  readonly onLine: (line: string) => void;
}

export interface PublishedPort {
  readonly container: number;
  readonly hostIp: string;
  readonly host: number;
}

export interface ContainerDetails {
  readonly id: string;
  readonly name: string;
  readonly running: boolean;
  /** created, running, exited… */
  readonly status: string;
  readonly exitCode: number | null;
  readonly oomKilled: boolean;
  readonly startedAt: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly mounts: readonly { readonly source: string; readonly destination: string; readonly readOnly: boolean }[];
  readonly ports: readonly PublishedPort[];
  readonly networkMode: string;
}

/** The engine could not publish a port: something else holds it (reliability D3). */
export class PortInUseError extends FailedError {
  override readonly kind = "port-in-use";
  readonly hostIp: string | undefined;
  readonly port: number | undefined;
  constructor(message: string, where: { hostIp?: string | undefined; port?: number | undefined }, options?: ErrorOptions) {
    super(message, options);
    this.hostIp = where.hostIp;
    this.port = where.port;
  }
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
  readonly ports: readonly PublishedPort[];
}

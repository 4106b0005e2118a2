import type { Gpus } from "../config/schema.ts";

export interface Mount {
  readonly host: string;
  readonly container: string;
  readonly readOnly: boolean;
}

export interface PortBinding {
  readonly container: number;
  readonly host: number;
  readonly hostIp: string;
}

/**
 * A container as plain data: what `plan` prints and what a run executes, so the two cannot
 * disagree. Never holds a secret: `env` is printed as is.
 */
export interface ContainerSpec {
  readonly image: string;
  readonly cmd: readonly string[];
  readonly workingDir: string;
  readonly mounts: readonly Mount[];
  readonly gpus: Gpus;
  readonly env?: Readonly<Record<string, string>>;
  readonly ports?: readonly PortBinding[];
  /** `uid:gid` to run as, so files written to the workdir belong to the user, not root. */
  readonly user?: string;
}

export interface EngineFacts {
  /**
   * Whether containers may get an unlimited memlock. Rootless Docker, and engines whose own limit
   * is lower, cannot raise it: the ulimit is left out there instead of failing at start.
   */
  readonly raiseMemlock: boolean;
}

/** Seconds `docker stop` waits after SIGTERM before SIGKILL. */
export const stopTimeoutSeconds = 10;

/** What NVIDIA runs TensorRT-LLM containers with: `--shm-size=2g --ulimit memlock=-1 --ulimit stack=67108864`. */
export const shmSizeBytes = 2 * 1024 ** 3;
export const stackBytes = 67_108_864;

/**
 * `--gpus` as the Engine API's DeviceRequests, exactly the body the docker CLI sends: `all` is
 * Count -1; ids are DeviceIDs without Count (the daemon refuses both together); `none` is none.
 */
export function deviceRequests(gpus: Gpus): object[] | undefined {
  if (gpus === "none") return undefined;
  if (gpus === "all") return [{ Driver: "", Count: -1, DeviceIDs: null, Capabilities: [["gpu"]], Options: {} }];
  return [{ Driver: "", DeviceIDs: [...gpus], Capabilities: [["gpu"]], Options: {} }];
}

/** The Engine API body of `POST /containers/create` for a spec. Pure, so it is unit-tested as data. */
export function createBody(spec: ContainerSpec, labels: Readonly<Record<string, string>>, engine: EngineFacts) {
  const ulimits = [
    ...(engine.raiseMemlock ? [{ Name: "memlock", Soft: -1, Hard: -1 }] : []),
    { Name: "stack", Soft: stackBytes, Hard: stackBytes },
  ];
  const ports = spec.ports ?? [];
  return {
    Image: spec.image,
    Cmd: [...spec.cmd],
    WorkingDir: spec.workingDir,
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: { ...labels },
    ...(spec.user ? { User: spec.user } : {}),
    StopTimeout: stopTimeoutSeconds,
    ExposedPorts: Object.fromEntries(ports.map((p) => [`${p.container}/tcp`, {}])),
    HostConfig: {
      Mounts: spec.mounts.map((m) => ({ Type: "bind", Source: m.host, Target: m.container, ReadOnly: m.readOnly })),
      DeviceRequests: deviceRequests(spec.gpus),
      ShmSize: shmSizeBytes,
      Ulimits: ulimits,
      // A PID 1 without a signal handler ignores SIGTERM/SIGINT; tini forwards them (reliability D4).
      Init: true,
      PortBindings: Object.fromEntries(
        ports.map((p) => [`${p.container}/tcp`, [{ HostIp: p.hostIp, HostPort: String(p.host) }]]),
      ),
      AutoRemove: false,
    },
  };
}

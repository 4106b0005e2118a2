/**
 * Where the world lives and which ports it listens on. Everything is derived from the
 * environment once, so a second, isolated world (other root, other ports) can run beside the
 * usual one on the same Docker engine: the tests of `world:down` do exactly that.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout this file belongs to (world/ sits at its top). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface WorldPorts {
  registry: number;
  hub: number;
  cdn: number;
  recorder: number;
}

export interface WorldConfig {
  /** The checkout: world/images, world/repos and world/server are read from here. */
  readonly repoRoot: string;
  /** `$WORLD_ROOT`, default `<repo>/.world`: all state, logs, pid files, git repos, caches. */
  readonly root: string;
  readonly ports: WorldPorts;
  /** `host:port` of the local registry, the prefix of every world image. */
  readonly registry: string;
  /** Overrides the address the recorder listens on (default: the docker bridge gateway). */
  readonly recorderHost: string | undefined;
  readonly debianMirror: string;
  readonly files: WorldFiles;
}

export interface WorldFiles {
  envJson: string;
  logs: string;
  run: string;
  cache: string;
  git: string;
  registryConfig: string;
  registryData: string;
  dockerdLog: string;
  dockerdPid: string;
  registryLog: string;
  registryPid: string;
  serverLog: string;
  serverPid: string;
  /** What we started the server with, to restart it when its code or arguments change. */
  serverMeta: string;
  /** Written by the world server itself (its own pid and URLs). */
  serverJson: string;
  invocationsLog: string;
  hubRequestLog: string;
}

const DEFAULT_PORTS: WorldPorts = { registry: 5055, hub: 5056, cdn: 5057, recorder: 5058 };

export function worldConfig(env: NodeJS.ProcessEnv = process.env): WorldConfig {
  const root = path.resolve(env["WORLD_ROOT"] || path.join(repoRoot, ".world"));
  const ports: WorldPorts = {
    registry: port(env, "WORLD_REGISTRY_PORT", DEFAULT_PORTS.registry),
    hub: port(env, "WORLD_HUB_PORT", DEFAULT_PORTS.hub),
    cdn: port(env, "WORLD_CDN_PORT", DEFAULT_PORTS.cdn),
    recorder: port(env, "WORLD_RECORDER_PORT", DEFAULT_PORTS.recorder),
  };
  const logs = path.join(root, "logs");
  const run = path.join(root, "run");
  return {
    repoRoot,
    root,
    ports,
    // 127.0.0.0/8 registries are insecure by default for dockerd: plain HTTP push/pull works
    // without touching the engine's configuration.
    registry: `127.0.0.1:${ports.registry}`,
    recorderHost: env["WORLD_RECORDER_HOST"] || undefined,
    debianMirror: env["WORLD_DEBIAN_MIRROR"] || "http://deb.debian.org/debian",
    files: {
      envJson: path.join(root, "env.json"),
      logs,
      run,
      cache: path.join(root, "cache"),
      git: path.join(root, "git"),
      registryConfig: path.join(root, "registry", "config.yml"),
      registryData: path.join(root, "registry", "data"),
      dockerdLog: path.join(logs, "dockerd.log"),
      dockerdPid: path.join(run, "dockerd.pid"),
      registryLog: path.join(logs, "registry.log"),
      registryPid: path.join(run, "registry.pid"),
      serverLog: path.join(logs, "server.log"),
      serverPid: path.join(run, "server.pid"),
      serverMeta: path.join(run, "server-meta.json"),
      serverJson: path.join(root, "server.json"),
      invocationsLog: path.join(root, "invocations.jsonl"),
      hubRequestLog: path.join(root, "hub-requests.jsonl"),
    },
  };
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`${name}=${raw} is not a TCP port (1-65535)`);
  }
  return value;
}

/**
 * `worldUp` and `worldDown`: the whole world in order, shared by the `world:up` / `world:down`
 * scripts and the integration tests' globalSetup.
 *
 * Order matters: dockerd first (everything else needs it or its bridge), the registry, then the
 * world server (its recorder address is baked into the images, so it must be known before they
 * are built), the base image, the stand-in images, the git repositories, and last env.json.
 *
 * What the world started is known from its pid files (`<root>/run/*.pid`, written only when
 * world:up starts a process, checked against /proc before use), so `started` survives a lost
 * env.json and world:down never stops a dockerd it found running.
 */
import { rm } from "node:fs/promises";
import { BASE_IMAGE, ensureBaseImage } from "./base-image.ts";
import { bridgeGateway, dockerClient, engineAnswers, ensureDocker, removeProductContainers, stopDockerd } from "./docker.ts";
import { ensureImages, type ImageResult } from "./images.ts";
import { silentLog, type Log } from "./log.ts";
import { type WorldConfig, worldConfig } from "./paths.ts";
import { withWorldLock } from "./lock.ts";
import { livePid } from "./processes.ts";
import { ensureRegistry, stopRegistry } from "./registry.ts";
import { ensureRepos, type RepoResult } from "./repos.ts";
import { ensureServer, hubAnswers, stopServer } from "./server-process.ts";
import { normalizeStarted, readEnvFile, type StartedPart, type WorldEnvFile, writeEnvFile } from "./state.ts";
import { GRANTED_TOKEN } from "./server/tokens.ts";

export interface UpOptions {
  /** Where WORLD_ROOT and the WORLD_*_PORT overrides are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  log?: Log;
}

export interface UpResult {
  config: WorldConfig;
  file: WorldEnvFile;
  /** What this call started (a subset of `file.world.started`). */
  startedNow: StartedPart[];
  images: ImageResult[];
  repos: RepoResult[];
  baseImage: { id: string; source: string };
  /** Human-readable lines: what was reused, built, started, and how long it took. */
  summary: string[];
  durationMs: number;
}

/** A failed world:up, with what it had started before failing (for callers that clean up). */
export class WorldUpError extends Error {
  readonly startedNow: StartedPart[];
  constructor(message: string, startedNow: StartedPart[], options?: ErrorOptions) {
    super(message, options);
    this.name = "WorldUpError";
    this.startedNow = startedNow;
  }
}

export async function worldUp(options: UpOptions = {}): Promise<UpResult> {
  const config = worldConfig(options.env);
  const log = options.log ?? silentLog;
  return withWorldLock(config, log, () => up(config, log));
}

async function up(config: WorldConfig, log: Log): Promise<UpResult> {
  const begin = Date.now();
  const startedNow: StartedPart[] = [];
  const summary: string[] = [];
  const timed = async <T>(label: string, step: () => Promise<T>, describe: (value: T) => string): Promise<T> => {
    const t0 = Date.now();
    const value = await step();
    summary.push(`${label.padEnd(9)} ${describe(value)} (${seconds(Date.now() - t0)})`);
    return value;
  };
  try {
    log(`world:up, root ${config.root}`);
    const engine = await timed("docker", () => ensureDocker(config, log), (e) => (e.started ? "started dockerd" : "reused the running engine"));
    if (engine.started) startedNow.push("dockerd");

    const registry = await timed("registry", () => ensureRegistry(config, log), (r) => `${r.started ? "started" : "reused"} ${config.registry}`);
    if (registry.started) startedNow.push("registry");

    const recorderHost = config.recorderHost ?? (await bridgeGateway(engine.docker));
    const server = await timed(
      "server",
      () => ensureServer(config, recorderHost, log),
      (s) => `${s.replaced ? "restarted" : s.started ? "started" : "reused"} pid ${s.pid}, hub ${s.hubUrl}, recorder ${s.recorderUrl}`,
    );
    // A restart replaces a server that was already up: whoever started that one owns this one
    // (a test run that restarted a developer's server must not stop it at its end).
    if (server.started && !server.replaced) startedNow.push("server");

    const base = await timed("base", () => ensureBaseImage(engine.docker, config, log), (b) => `${BASE_IMAGE}: ${b.source}`);
    const images = await timed(
      "images",
      () => ensureImages(engine.docker, config, { baseImage: BASE_IMAGE, baseImageId: base.id, recorderUrl: server.recorderUrl }, log),
      (list) => list.map((image) => `${image.spec.folder}: ${image.built ? "built" : "reused"}${image.pushed ? "+pushed" : ""}`).join(", "),
    );
    const repos = await timed("git", () => ensureRepos(config, log), (list) => list.map((repo) => `${repo.spec.name}: ${repo.rebuilt ? "made" : "reused"}`).join(", "));

    const image = (key: ImageResult["spec"]["key"]) => findOrFail(images, (entry) => entry.spec.key === key, `image ${key}`).ref;
    const repo = (key: RepoResult["spec"]["key"]) => findOrFail(repos, (entry) => entry.spec.key === key, `repository ${key}`).url;
    const file: WorldEnvFile = {
      env: {
        HF_ENDPOINT: server.hubUrl,
        HF_TOKEN: GRANTED_TOKEN,
        LLAMA3_TRT_GPUS: "none",
        LLAMA3_TRT_TRTLLM_REPO_URL: repo("trtllm"),
        LLAMA3_TRT_BACKEND_REPO_URL: repo("backend"),
        LLAMA3_TRT_BUILD_IMAGE: image("build"),
        LLAMA3_TRT_BUILD_BASE_IMAGE: image("cudaDevel"),
        LLAMA3_TRT_TRITON_IMAGE: image("triton"),
      },
      world: {
        root: config.root,
        registry: config.registry,
        hubUrl: server.hubUrl,
        cdnUrl: server.cdnUrl,
        recorderUrl: server.recorderUrl,
        invocationsLog: config.files.invocationsLog,
        hubRequestLog: config.files.hubRequestLog,
        images: { triton: image("triton"), build: image("build"), cudaDevel: image("cudaDevel") },
        gitRepos: { trtllm: repo("trtllm"), backend: repo("backend") },
        // Started now or by an earlier world:up and still running.
        started: normalizeStarted([...startedNow, ...(await runningParts(config))]),
      },
    };
    await writeEnvFile(config, file);
    const durationMs = Date.now() - begin;
    summary.push(`env       ${config.files.envJson} (world started: ${file.world.started.join(", ") || "nothing"})`);
    log(`world:up done in ${seconds(durationMs)}`);
    return { config, file, startedNow, images, repos, baseImage: base, summary, durationMs };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new WorldUpError(message, startedNow, { cause: error });
  }
}

export interface DownOptions {
  env?: NodeJS.ProcessEnv;
  log?: Log;
  /** Stop only these parts (and only if the world started them). Default: all the world started. */
  only?: readonly StartedPart[];
  /**
   * Remove containers labelled dev.llama3-trt=1 (default true): all of them when dockerd is
   * stopped, else those made from this world's images (`<registry>/…`).
   */
  removeContainers?: boolean;
}

export interface DownResult {
  stopped: StartedPart[];
  removedContainers: number;
  /** What the world had started and is still running (kept because of `only`). */
  stillRunning: StartedPart[];
}

export async function worldDown(options: DownOptions = {}): Promise<DownResult> {
  const config = worldConfig(options.env);
  const log = options.log ?? silentLog;
  return withWorldLock(config, log, () => down(config, log, options));
}

async function down(config: WorldConfig, log: Log, options: DownOptions): Promise<DownResult> {
  const wanted = new Set(options.only ?? (["dockerd", "registry", "server"] as const));
  const running = await runningParts(config);
  const stopped: StartedPart[] = [];

  if (running.includes("server") && wanted.has("server")) {
    await stopServer(config, log);
    stopped.push("server");
  }
  if (running.includes("registry") && wanted.has("registry")) {
    await stopRegistry(config, log);
    stopped.push("registry");
  }
  let removedContainers = 0;
  const stoppingEngine = running.includes("dockerd") && wanted.has("dockerd");
  if (options.removeContainers !== false && (await engineAnswers())) {
    // All of them when the engine goes down anyway; else only those of this world's images.
    removedContainers = await removeProductContainers(dockerClient(), log, stoppingEngine ? undefined : `${config.registry}/`);
  }
  if (stoppingEngine) {
    await stopDockerd(config, log);
    stopped.push("dockerd");
  }

  const stillRunning = await runningParts(config);
  const file = await readEnvFile(config);
  if (file) {
    if (stopped.length > 0 && !(await hubAnswers(file.world.hubUrl))) {
      // The world can no longer be used: a stale env.json would only mislead tests and shells.
      await rm(config.files.envJson, { force: true });
    } else {
      file.world.started = stillRunning;
      await writeEnvFile(config, file);
    }
  }
  log(`world:down: stopped ${stopped.join(", ") || "nothing"}${removedContainers ? `, removed ${removedContainers} container(s)` : ""}`);
  return { stopped, removedContainers, stillRunning };
}

/** The parts whose pid file names a live process of the expected program. */
export async function runningParts(config: WorldConfig): Promise<StartedPart[]> {
  const parts: StartedPart[] = [];
  if (await livePid(config.files.dockerdPid, "dockerd")) parts.push("dockerd");
  if (await livePid(config.files.registryPid, "docker-registry")) parts.push("registry");
  if (await livePid(config.files.serverPid, "world/server/main.ts")) parts.push("server");
  return parts;
}

function findOrFail<T>(list: readonly T[], predicate: (item: T) => boolean, what: string): T {
  const found = list.find(predicate);
  if (found === undefined) throw new Error(`internal: no ${what} in the world's tables`);
  return found;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

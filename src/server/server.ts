import { existsSync } from "node:fs";
import { FailedError, InterruptedError } from "../common/errors.ts";
import { pausePoint } from "../common/test-hooks.ts";
import type { Settings } from "../config/schema.ts";
import type { ContainerSpec } from "../docker/container-spec.ts";
import { PortInUseError, type ContainerSummary, type DockerClient } from "../docker/docker-client.ts";
import { labelKeys } from "../docker/labels.ts";
import { pullWithProgress } from "../docker/pull-progress.ts";
import { inContainer, servingMounts } from "../pipeline/container-paths.ts";
import type { Session } from "../pipeline/session.ts";
import { StepLog } from "../pipeline/step-log.ts";
import type { WorkdirPaths } from "../pipeline/workdir.ts";
import { likelyCause } from "../triton/diagnosis.ts";
import { stopGateway } from "../gateway/process.ts";
import { containerPorts, tritonLaunchArgv } from "../triton/launch.ts";
import { httpReadyProbe, waitForReady, type Readiness } from "../triton/wait.ts";
import { readBuilt, type Built } from "./deployment.ts";
import { containerUrls, settingsUrls, type ServerUrls } from "./urls.ts";
import { checkPort, portHolder, portInUseMessage } from "./ports.ts";

/** Lines of the server's log quoted when it fails to start (testcontainers quotes 50 too). */
export const failureTailLines = 50;

/** The container name: one server per workdir, and `docker ps` says whose it is. */
export function serverName(paths: WorkdirPaths): string {
  return `llama3-trt-server-${paths.id.slice(0, 12)}`;
}

/**
 * The Triton container for a build: the launch command line of v0.8.0 as its main process, one
 * rank per GPU of the engine (its tp from its own config.json), the model repository, engine and
 * tokenizer mounted read-only where the configs point, and the ports published on `--host` only
 * (never the host network: Triton itself listens on every interface).
 */
export function serverContainerSpec(settings: Settings, built: Pick<Built, "engine" | "weights" | "modelRepo">): ContainerSpec {
  if (!built.modelRepo) throw new Error("serverContainerSpec needs the model repository");
  return {
    image: settings.tritonImage,
    cmd: tritonLaunchArgv({ worldSize: built.engine.tp, modelRepo: inContainer.modelRepo }),
    workingDir: "/opt/tritonserver",
    mounts: servingMounts({ modelRepo: built.modelRepo.dir, engine: built.engine.dir, weights: built.weights.mountDir }),
    gpus: settings.gpus,
    ports: [
      { container: containerPorts.http, host: settings.port, hostIp: settings.host },
      { container: containerPorts.grpc, host: settings.grpcPort, hostIp: settings.host },
      { container: containerPorts.metrics, host: settings.metricsPort, hostIp: settings.host },
    ],
  };
}

/** The server containers of a workdir (normally none or one). */
export function serversOf(docker: DockerClient, paths: WorkdirPaths): Promise<ContainerSummary[]> {
  return docker.listContainers({ [labelKeys.workdir]: paths.id, [labelKeys.role]: "server" });
}

/** `serve` found this workdir's server already running. */
export class ServerRunningError extends FailedError {
  override readonly kind = "already-running";
  readonly container: string;
  readonly urls: ServerUrls | undefined;
  constructor(container: ContainerSummary) {
    const urls = containerUrls(container);
    super(
      `The server of this workdir is already running: container ${container.name}${urls ? ` at ${urls.http}` : ""}. ` +
        "Use it, or stop it first with `llama3-trt stop`.",
    );
    this.container = container.name;
    this.urls = urls;
  }
}

export interface ServeEvents {
  /** Progress a person wants to see (pulling, starting, waiting). */
  info(text: string): void;
  warn(text: string): void;
  /** The wait for readiness begins (a spinner at a terminal); the returned function ends it. */
  waiting?(text: string): Promise<() => void>;
}

export interface StartedServer {
  readonly id: string;
  readonly name: string;
  readonly urls: ServerUrls;
  readonly readySeconds: number;
}

const portFlags = { port: "--port", grpcPort: "--grpc-port", metricsPort: "--metrics-port", openaiPort: "--openai-port" } as const;

/**
 * Starts Triton on what `build` made and waits until it is ready. Everything that can be checked
 * without starting a container is checked first (the build, the settings against it, the ports);
 * a server that exits or never gets ready is removed and reported with its log tail.
 */
export async function startServer(
  session: Session,
  options: {
    readonly timeoutSeconds: number;
    readonly signal: AbortSignal;
    readonly events: ServeEvents;
    /** A server that fails to get ready is left as it is, for `docker exec`/`inspect` (reliability case 32). */
    readonly keepOnFailure?: boolean;
  },
): Promise<StartedServer> {
  const { settings, paths, docker } = session;
  const { events, signal } = options;

  // No workdir: nothing was built, said without creating one (the lock would).
  if (!existsSync(paths.root)) await readBuilt(session, ["weights", "engine", "model-repo"], "serve");
  // Until the server is ready, no build may rewrite what it loads; a running build is named.
  await using _lock = await session.lock("serve");
  // The build first: it needs no Docker engine, and nothing can be serving what was never built.
  const built = await readBuilt(session, ["weights", "engine", "model-repo"], "serve");
  for (const existing of await serversOf(docker, paths)) {
    if (existing.state === "running") throw new ServerRunningError(existing);
    // Left by a server that died after a detached start: it is of no use, its log was in docker.
    await docker.removeContainer(existing.id, { kill: true });
  }
  // A gateway left by a run that was killed: its Triton is gone, so it is of no use either.
  await stopGateway(paths);
  const spec = serverContainerSpec(settings, built);

  if (settings.host === "0.0.0.0") {
    events.warn(
      "the server's ports are published on 0.0.0.0: anyone who can reach this host can use them, and Docker's published ports bypass host firewalls such as ufw. Use `--host 127.0.0.1` (the default) unless that is what you want.",
    );
  }
  if (settings.gpus === "none") events.warn("serving with `--gpus none`: the TensorRT-LLM backend needs a GPU, so only a test stand-in can serve this way.");
  const ports = settings.openaiPort === 0 ? (["port", "grpcPort", "metricsPort"] as const) : (["port", "grpcPort", "metricsPort", "openaiPort"] as const);
  for (const key of ports) {
    const check = await checkPort(settings.host, settings[key]);
    if (check.state === "in-use") throw new FailedError(portInUseMessage(settings.host, settings[key], portFlags[key], check.holder));
    if (check.state === "not-local") throw new FailedError(`--host ${settings.host} is not an address of this machine. Use 127.0.0.1 (the default), 0.0.0.0 or one of its own addresses.`);
  }

  const engine = await session.engine();
  if (!(await docker.inspectImage(settings.tritonImage))) {
    await pullWithProgress(docker, settings.tritonImage, {
      log: { note: (text) => events.info(text), line: (text) => events.info(`  ${text}`) },
      signal,
      hint: "Check triton_image in llama3-trt.yaml and your registry login (`docker login nvcr.io` for NGC).",
    });
  }

  await pausePoint("serve:before-start");
  events.info(`starting Triton (${settings.tritonImage}, ${built.engine.tp} rank${built.engine.tp === 1 ? "" : "s"})`);
  let id: string;
  try {
    id = await docker.startContainer(spec, { labels: session.labelsFor("server"), engine, name: serverName(paths) });
  } catch (error) {
    if (error instanceof PortInUseError) {
      // Taken between the check and the start (reliability case 31's race): the same message.
      const key = (Object.keys(portFlags) as (keyof typeof portFlags)[]).find((k) => settings[k] === error.port) ?? "port";
      const port = error.port ?? settings[key];
      throw new FailedError(portInUseMessage(error.hostIp ?? settings.host, port, portFlags[key], await portHolder(port)), { cause: error });
    }
    throw error;
  }

  const urls = settingsUrls(settings);
  let outcome: Readiness;
  try {
    const text = `waiting for ${urls.http}/v2/health/ready (at most ${options.timeoutSeconds} s)`;
    events.info(text);
    const stopWaiting = (await events.waiting?.("loading the engine into Triton")) ?? (() => {});
    try {
      outcome = await waitForReady({
        probe: httpReadyProbe(urls.http),
        container: () => docker.inspectContainer(id),
        timeoutMs: options.timeoutSeconds * 1000,
        signal,
      });
    } finally {
      stopWaiting();
    }
  } catch (error) {
    await docker.removeContainer(id).catch(() => {});
    if (error instanceof InterruptedError) throw new InterruptedError("interrupted; the server was stopped and removed", { cause: error });
    throw error;
  }
  if (!outcome.ready) {
    const lines = await saveLog(docker, id, paths).catch(() => [] as string[]);
    const kept = options.keepOnFailure === true && outcome.reason !== "gone";
    if (!kept) await docker.removeContainer(id, { kill: true }).catch(() => {});
    const tail = lines.slice(-failureTailLines);
    const what =
      outcome.reason === "timeout"
        ? `did not become ready within ${options.timeoutSeconds} s`
        : outcome.reason === "gone"
          ? "was removed while starting"
          : `exited with code ${outcome.exitCode} while starting`;
    const cause = likelyCause(lines, outcome, options.timeoutSeconds);
    const name = (await docker.inspectContainer(id).catch(() => undefined))?.name ?? serverName(paths);
    throw new FailedError(
      `The server ${what}; ${kept ? `it was kept, as --keep-on-failure asks: container ${name} (\`llama3-trt stop\` removes it)` : "it was removed"}.` +
        (cause ? `\n  Likely cause: ${cause}` : "") +
        (tail.length > 0 ? `\n  Last ${tail.length} lines of its log:\n${tail.map((l) => `    ${l}`).join("\n")}` : "") +
        `\n  Full log: ${paths.log("server")}`,
    );
  }
  const details = await docker.inspectContainer(id);
  return { id, name: details?.name ?? serverName(paths), urls, readySeconds: outcome.ms / 1000 };
}

/**
 * The foreground part of `serve`: the server's log goes to logs/server.log while it runs; returns
 * when the server is stopped from elsewhere (`llama3-trt stop`, `docker stop`), fails when it
 * dies, and on Ctrl-C stops and removes it (InterruptedError: exit 130).
 */
export async function runInForeground(session: Session, server: StartedServer, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
  const { docker, paths } = session;
  const log = new StepLog(paths.log("server"));
  await log.open(onLine);
  const following = new AbortController();
  const logs = docker.containerLogs(server.id, { follow: true, signal: following.signal, onLine: (line) => log.line(line) }).catch(() => {});
  let exitCode: number | undefined;
  try {
    exitCode = await docker.waitContainer(server.id, signal);
  } catch (error) {
    if (!signal.aborted && !(error instanceof InterruptedError)) throw error;
    following.abort();
    await docker.removeContainer(server.id).catch(() => {});
    await logs;
    await log.close();
    throw new InterruptedError("interrupted; the server was stopped and removed", { cause: error });
  }
  await logs;
  following.abort();
  await log.close();
  const details = await docker.inspectContainer(server.id);
  // 0 (Triton's graceful shutdown on SIGTERM), 143 (SIGTERM without a handler) or gone: stopped from outside.
  if (exitCode === undefined || exitCode === 0 || exitCode === 143 || !details) {
    await docker.removeContainer(server.id).catch(() => {});
    return;
  }
  await docker.removeContainer(server.id).catch(() => {});
  const tail = log.tail();
  const cause = likelyCause(tail, { ready: false, reason: "exited", exitCode, oomKilled: details.oomKilled, ms: 0 }, 0);
  throw new FailedError(
    `The server exited with code ${exitCode}; it was removed.` +
      (cause ? `\n  Likely cause: ${cause}` : "") +
      `\n  Last lines of its log:\n${tail.map((l) => `    ${l}`).join("\n")}\n  Full log: ${log.path}`,
  );
}

/** Copies the server's whole log to logs/server.log (it is lost with the container) and returns its lines. */
export async function saveLog(docker: DockerClient, id: string, paths: WorkdirPaths): Promise<string[]> {
  const lines: string[] = [];
  await docker.containerLogs(id, { follow: false, onLine: (line) => lines.push(line) });
  const log = new StepLog(paths.log("server"));
  await log.open(() => {});
  for (const line of lines) log.line(line);
  await log.close();
  return lines;
}

/** Stops and removes this workdir's server(s), keeping the log; the names of those it stopped. */
export async function stopServers(docker: DockerClient, paths: WorkdirPaths): Promise<string[]> {
  const stopped: string[] = [];
  for (const server of await serversOf(docker, paths)) {
    // The log goes with the container: keep it in logs/server.log for `llama3-trt logs`.
    await saveLog(docker, server.id, paths).catch(() => {});
    await docker.removeContainer(server.id);
    stopped.push(server.name);
  }
  return stopped;
}

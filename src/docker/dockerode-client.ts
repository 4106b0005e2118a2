import { readdir } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import type Docker from "dockerode";
import { FailedError, InterruptedError, UsageError } from "../common/errors.ts";
import { createBody, stopTimeoutSeconds, type ContainerSpec } from "./container-spec.ts";
import { EngineApi } from "./engine-api.ts";
import {
  EngineUnreachableError,
  PortInUseError,
  type BuildOptions,
  type ContainerDetails,
  type ContainerSummary,
  type DockerClient,
  type EngineInfo,
  type ImageInfo,
  type LogOptions,
  type PublishedPort,
  type PullProgress,
  type RunOptions,
  type RunResult,
  type StartOptions,
} from "./docker-client.ts";

/**
 * The one file that uses dockerode, and only for streams (pull, build, attach, followed logs),
 * loaded on first use; the plain calls go through EngineApi (see why there).
 */
export class DockerodeClient implements DockerClient {
  readonly #api: EngineApi;
  readonly #host: string;
  #sdk: Promise<Docker> | undefined;

  constructor(env: Readonly<Record<string, string | undefined>>) {
    // dockerode reads DOCKER_HOST itself only from process.env; pass it explicitly instead.
    this.#host = checkedDockerHost(env.DOCKER_HOST);
    this.#api = new EngineApi(this.#host);
  }

  /** dockerode, imported the first time a stream is needed. */
  #docker(): Promise<Docker> {
    this.#sdk ??= import("dockerode").then(({ default: Dockerode }) => new Dockerode(connectionOptions(this.#host)));
    return this.#sdk;
  }

  async info(): Promise<EngineInfo> {
    const info = (await this.#call(() => this.#api.json("GET", "/info", { timeoutMs: 5_000 }))) as {
      ServerVersion?: string;
      Runtimes?: Record<string, unknown>;
      SecurityOptions?: string[];
    };
    return {
      serverVersion: info.ServerVersion ?? "unknown",
      host: this.#host,
      runtimes: Object.keys(info.Runtimes ?? {}),
      rootless: (info.SecurityOptions ?? []).some((o) => o.includes("rootless")),
    };
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    try {
      const image = await this.#call(() =>
        this.#api.json<{ Id: string; RepoDigests?: string[]; Config?: { Labels?: Record<string, string> | null } }>("GET", `/images/${ref}/json`),
      );
      return { id: image.Id, repoDigests: image.RepoDigests ?? [], labels: image.Config?.Labels ?? {} };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async pullImage(ref: string, options: { onProgress: (p: PullProgress) => void; signal: AbortSignal }): Promise<void> {
    let stream: Readable;
    try {
      const docker = await this.#docker();
      stream = (await this.#call(() => docker.pull(ref))) as Readable;
    } catch (error) {
      // The registry's refusal (no such image, no access) arrives as the HTTP answer, not in-stream.
      if (statusOf(error) === undefined) throw error;
      throw new FailedError(engineMessage(error), { cause: error });
    }
    await this.#follow(stream, options.signal, (event) => {
      options.onProgress({
        status: String(event.status ?? ""),
        ...(typeof event.id === "string" ? { layer: event.id } : {}),
        ...(event.progressDetail?.total ? { current: event.progressDetail.current ?? 0, total: event.progressDetail.total } : {}),
      });
    });
  }

  async buildImage(options: BuildOptions): Promise<void> {
    const files = await readdir(options.contextDir, { recursive: true });
    const docker = await this.#docker();
    const stream = (await this.#call(() =>
      docker.buildImage(
        { context: options.contextDir, src: files },
        { t: options.tag, buildargs: { ...options.buildArgs }, labels: { ...options.labels }, rm: true, forcerm: true },
      ),
    )) as Readable;
    await this.#follow(stream, options.signal, (event) => {
      if (typeof event.stream === "string") {
        for (const line of event.stream.split("\n")) if (line.trim()) options.onLine(line);
      }
    });
  }

  async runToCompletion(spec: ContainerSpec, options: RunOptions): Promise<RunResult> {
    try {
      return await this.#run(spec, options);
    } catch (error) {
      // Some engines (rootless, or with a low limit of their own) cannot give a container an
      // unlimited memlock; TensorRT-LLM runs without it, so retry once without and remember.
      if (!(error instanceof MemlockRefused)) throw error;
      this.#raiseMemlock = false;
      options.onLine("[llama3-trt] this Docker engine cannot raise the memlock limit: running without --ulimit memlock=-1");
      return this.#run(spec, options);
    }
  }

  #raiseMemlock = true;

  async #run(spec: ContainerSpec, options: RunOptions): Promise<RunResult> {
    if (options.signal.aborted) throw new InterruptedError("interrupted before the container started");
    const raiseMemlock = this.#raiseMemlock && !options.engine.rootless;
    const docker = await this.#docker();
    const { Id: id } = await this.#call(() => this.#api.json<{ Id: string }>("POST", "/containers/create", { body: createBody(spec, options.labels, { raiseMemlock }) }));
    const container = docker.getContainer(id);
    let removed = false;
    const remove = async (kill = false) => {
      if (removed) return;
      removed = true;
      await this.removeContainer(container.id, { kill });
    };
    const onAbort = () => void remove().catch(() => {});
    try {
      // Attach before start so that no early line is lost.
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
      const outputEnded = new Promise<void>((resolve) => {
        stream.once("end", resolve);
        stream.once("close", resolve);
        stream.once("error", () => resolve());
      });
      const lines = lineSplitter(options.onLine);
      docker.modem.demuxStream(stream, lines, lines);
      try {
        await this.#api.call("POST", `/containers/${id}/start`);
      } catch (error) {
        if (raiseMemlock && /error setting rlimit type 8/.test(messageOf(error))) throw new MemlockRefused();
        throw startError(error, spec);
      }
      options.signal.addEventListener("abort", onAbort, { once: true });
      const waited = await this.#api.json<{ StatusCode: number }>("POST", `/containers/${id}/wait`);
      // The last lines may still be in flight when wait returns; do not wait forever for them.
      await Promise.race([outputEnded, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
      lines.end();
      if (options.signal.aborted) throw new InterruptedError("interrupted; the container was stopped and removed");
      const details = await this.inspectContainer(id);
      return { exitCode: waited.StatusCode, oomKilled: Boolean(details?.oomKilled) };
    } finally {
      options.signal.removeEventListener("abort", onAbort);
      // A failed start leaves the container in Created (reliability D2/D3): remove it in every case.
      await remove().catch(() => {});
    }
  }

  async listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]> {
    const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) });
    const list = await this.#call(() => this.#api.json<Docker.ContainerInfo[]>("GET", "/containers/json", { query: { all: "1", filters } }));
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
      state: c.State,
      image: c.Image,
      labels: c.Labels,
      ports: (c.Ports ?? [])
        .filter((p) => p.PublicPort !== undefined)
        .map((p) => ({ container: p.PrivatePort, hostIp: p.IP ?? "", host: p.PublicPort })),
    }));
  }

  async startContainer(spec: ContainerSpec, options: StartOptions): Promise<string> {
    try {
      return await this.#start(spec, options);
    } catch (error) {
      if (!(error instanceof MemlockRefused)) throw error;
      this.#raiseMemlock = false;
      return this.#start(spec, options);
    }
  }

  async #start(spec: ContainerSpec, options: StartOptions): Promise<string> {
    const raiseMemlock = this.#raiseMemlock && !options.engine.rootless;
    const body = createBody(spec, options.labels, { raiseMemlock });
    const { Id: id } = await this.#call(() =>
      this.#api.json<{ Id: string }>("POST", "/containers/create", { body, ...(options.name ? { query: { name: options.name } } : {}) }),
    );
    try {
      await this.#api.call("POST", `/containers/${id}/start`);
      return id;
    } catch (error) {
      // A failed start leaves the container in Created (reliability D2/D3).
      await this.removeContainer(id, { kill: true }).catch(() => {});
      if (raiseMemlock && /error setting rlimit type 8/.test(messageOf(error))) throw new MemlockRefused();
      throw startError(error, spec);
    }
  }

  async inspectContainer(id: string): Promise<ContainerDetails | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.#call(() => this.#api.json<Docker.ContainerInspectInfo>("GET", `/containers/${id}/json`));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
    const ports: PublishedPort[] = [];
    for (const [key, bindings] of Object.entries(info.HostConfig?.PortBindings ?? {}) as [string, { HostIp?: string; HostPort?: string }[] | null][]) {
      for (const b of bindings ?? []) ports.push({ container: Number.parseInt(key, 10), hostIp: b.HostIp ?? "", host: Number(b.HostPort) });
    }
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ""),
      running: Boolean(info.State?.Running),
      status: info.State?.Status ?? "unknown",
      exitCode: info.State?.Running ? null : (info.State?.ExitCode ?? null),
      oomKilled: Boolean(info.State?.OOMKilled),
      startedAt: info.State?.StartedAt ?? "",
      labels: info.Config?.Labels ?? {},
      mounts: (info.Mounts ?? []).map((m) => ({ source: m.Source, destination: m.Destination, readOnly: !m.RW })),
      ports,
      networkMode: info.HostConfig?.NetworkMode ?? "",
    };
  }

  async waitContainer(id: string, signal: AbortSignal): Promise<number | undefined> {
    try {
      return (await this.#api.json<{ StatusCode: number }>("POST", `/containers/${id}/wait`, { signal })).StatusCode;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      if (signal.aborted) throw new InterruptedError("interrupted");
      throw this.#wrap(error);
    }
  }

  async containerLogs(id: string, options: LogOptions): Promise<void> {
    const lines = lineSplitter(options.onLine);
    const base = { stdout: true, stderr: true, ...(options.tail === undefined ? {} : { tail: options.tail }) };
    if (!options.follow) {
      const query = { stdout: "1", stderr: "1", ...(options.tail === undefined ? {} : { tail: String(options.tail) }) };
      const { body } = await this.#call(() => this.#api.call("GET", `/containers/${id}/logs`, { query }));
      lines.end(demux(body));
      await new Promise((resolve) => lines.once("end", resolve).resume());
      return;
    }
    const docker = await this.#docker();
    const container = docker.getContainer(id);
    const stream = (await this.#call(() => container.logs({ ...base, follow: true }))) as unknown as Readable;
    await new Promise<void>((resolve) => {
      let ended = false;
      const done = () => {
        // end, close and error may all come: finish once.
        if (ended) return;
        ended = true;
        options.signal?.removeEventListener("abort", onAbort);
        lines.end();
        resolve();
      };
      const onAbort = () => stream.destroy();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      stream.once("end", done);
      stream.once("close", done);
      stream.once("error", done);
      docker.modem.demuxStream(stream, lines, lines);
    });
  }

  async removeContainer(id: string, options: { kill?: boolean } = {}): Promise<void> {
    try {
      if (options.kill) await this.#api.call("POST", `/containers/${id}/kill`).catch(ignoreGoneOrStopped);
      else await this.#api.call("POST", `/containers/${id}/stop`, { query: { t: String(stopTimeoutSeconds) } }).catch(ignoreGoneOrStopped);
      await this.#api.call("DELETE", `/containers/${id}`, { query: { force: "1", v: "1" } });
    } catch (error) {
      if (statusOf(error) !== 404) throw this.#wrap(error);
    }
  }

  /** Progress streams carry their errors in-band: an `error` event is a failure, never a success. */
  async #follow(stream: Readable, signal: AbortSignal, onEvent: (event: ProgressEvent) => void): Promise<void> {
    const docker = await this.#docker();
    return new Promise((resolve, reject) => {
      let failure: Error | undefined;
      const onAbort = () => {
        stream.destroy();
        reject(new InterruptedError("interrupted"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      docker.modem.followProgress(
        stream,
        (error: Error | null) => {
          signal.removeEventListener("abort", onAbort);
          if (signal.aborted) return;
          if (error ?? failure) reject(error ?? failure);
          else resolve();
        },
        (event: ProgressEvent) => {
          if (event.error || event.errorDetail) {
            failure ??= new FailedError(String(event.errorDetail?.message ?? event.error));
            return;
          }
          onEvent(event);
        },
      );
    });
  }

  async #call<T>(action: () => Promise<T>, timeoutMs?: number): Promise<T> {
    try {
      if (timeoutMs === undefined) return await action();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })), timeoutMs);
      });
      try {
        return await Promise.race([action(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  /** Classify by errno code and the engine's message, never by dockerode's `reason` (reliability D6). */
  #wrap(error: unknown): unknown {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code && ["ENOENT", "ECONNREFUSED", "EACCES", "ETIMEDOUT", "EHOSTUNREACH", "ECONNRESET"].includes(code)) {
      return new EngineUnreachableError(this.#host, code, { cause: error });
    }
    return error;
  }
}

/** The engine refused `--ulimit memlock=-1` (RLIMIT_MEMLOCK is rlimit type 8). */
class MemlockRefused extends Error {}

interface ProgressEvent {
  status?: string;
  id?: string;
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
  progressDetail?: { current?: number; total?: number };
}

function connectionOptions(host: string): Docker.DockerOptions {
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
  const url = new URL(host.replace(/^tcp:/, "http:"));
  return { host: url.hostname, port: Number(url.port || 2375), protocol: "http" };
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number } | undefined)?.statusCode;
}

function messageOf(error: unknown): string {
  const json = (error as { json?: { message?: string } } | undefined)?.json;
  return json?.message ?? (error instanceof Error ? error.message : String(error));
}

/** The engine's own message, without dockerode's "(HTTP code 404) unexpected - " prefix. */
function engineMessage(error: unknown): string {
  return messageOf(error).replace(/^\(HTTP code \d+\) [a-z ]+- /, "").trim();
}

function ignoreGoneOrStopped(error: unknown): void {
  // 304: already stopped; 404: already gone; 409: removal already in progress.
  if (![304, 404, 409].includes(statusOf(error) ?? 0)) throw error;
}

/** Start failures an engine gives for setups that cannot work, turned into what to do. */
function startError(error: unknown, spec: ContainerSpec): Error {
  const message = messageOf(error);
  if (message.includes("could not select device driver")) {
    return new FailedError(
      `NVIDIA Container Toolkit not configured for this Docker engine: ${engineMessage(error)}. ` +
        "Install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, " +
        "or pass `--gpus none` (the engine step needs a GPU).",
      { cause: error },
    );
  }
  if (/address already in use|port is already allocated/.test(message)) {
    const ports = (spec.ports ?? []).map((p) => `${p.hostIp}:${p.host}`).join(", ");
    // "listen tcp4 127.0.0.1:8000: bind: …" (a host process) or "Bind for 127.0.0.1:8000 failed" (a container).
    const where = /(\d{1,3}(?:\.\d{1,3}){3}):(\d+)/.exec(message);
    return new PortInUseError(
      `A port is already in use (${ports}): ${engineMessage(error)}. Stop what uses it or choose other ports.`,
      { hostIp: where?.[1], port: where ? Number(where[2]) : undefined },
      { cause: error },
    );
  }
  return new FailedError(`The container did not start: ${engineMessage(error)}`, { cause: error });
}

/** Docker's multiplexed log format without a TTY: 8-byte frame headers (stream, 0, 0, 0, size). */
function demux(buffer: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  // Not multiplexed after all (a TTY container): the bytes are the log.
  return offset === buffer.length ? Buffer.concat(parts) : buffer;
}

/** A writable that hands complete lines to `onLine` (the last partial line on end). */
function lineSplitter(onLine: (line: string) => void): PassThrough {
  let rest = "";
  const splitter = new PassThrough();
  splitter.on("data", (chunk: Buffer) => {
    const text = rest + chunk.toString("utf8");
    const lines = text.split(/\r?\n|\r/);
    rest = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
  splitter.on("end", () => {
    if (rest) onLine(rest);
    rest = "";
  });
  return splitter;
}

/**
 * DOCKER_HOST as this tool can use it: a unix socket or plain tcp. Anything else (ssh://, a
 * typo) is a configuration error naming the variable and the forms it takes.
 */
export function checkedDockerHost(raw: string | undefined): string {
  const value = raw === undefined || raw.trim() === "" ? "unix:///var/run/docker.sock" : raw.trim();
  if (/^unix:\/\/\/[^\0]+$/.test(value)) return value;
  const tcp = /^tcp:\/\/([^/:\s]+|\[[0-9a-fA-F:]+\])(:\d{1,5})?\/?$/.exec(value);
  if (tcp) return value;
  throw new UsageError(`DOCKER_HOST must be unix:///path/to/docker.sock or tcp://host:port; got ${JSON.stringify(raw)}.`);
}

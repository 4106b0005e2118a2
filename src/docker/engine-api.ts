import { nodeHttp } from "../common/node-http.ts";

/**
 * The Docker Engine API's plain JSON calls (inspect, list, create, start, stop, remove, wait) over
 * node:http, on a unix socket or tcp. They are most of what an everyday command asks, and
 * loading dockerode for them costs more than the calls (it pulls in docker-modem, ssh2 and
 * protobufjs: ~0.2 s of a no-op `build`). Streams (pull, build, attach, followed logs) stay
 * with dockerode, loaded when one is needed.
 */
export class EngineApi {
  readonly #target: { socketPath: string } | { host: string; port: number };

  constructor(host: string) {
    if (host.startsWith("unix://")) this.#target = { socketPath: host.slice("unix://".length) };
    else {
      const url = new URL(host.replace(/^tcp:/, "http:"));
      this.#target = { host: url.hostname, port: Number(url.port || 2375) };
    }
  }

  /** The JSON answer of a 2xx; an EngineApiError (status and the engine's message) otherwise. */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const { body } = await this.call(method, path, options);
    return (body.length > 0 ? JSON.parse(body.toString("utf8")) : undefined) as T;
  }

  /** The raw answer of a 2xx (a non-followed log is binary: multiplexed frames). */
  call(method: string, path: string, options: CallOptions = {}): Promise<{ status: number; body: Buffer }> {
    const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : "";
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    return new Promise((resolve, reject) => {
      const req = nodeHttp().request(
        {
          ...this.#target,
          method,
          path: `${path}${query}`,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
          ...(options.signal ? { signal: options.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const body = Buffer.concat(chunks);
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve({ status, body });
            else reject(new EngineApiError(status, engineText(body)));
          });
        },
      );
      if (options.timeoutMs !== undefined) {
        req.setTimeout(options.timeoutMs, () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
      }
      req.on("error", reject);
      req.end(payload);
    });
  }
}

export interface CallOptions {
  readonly query?: Record<string, string>;
  readonly body?: unknown;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A non-2xx answer, in the shape dockerode gives its errors (`statusCode`, `json.message`). */
export class EngineApiError extends Error {
  readonly statusCode: number;
  readonly json: { readonly message: string };
  constructor(statusCode: number, message: string) {
    super(`(HTTP code ${statusCode}) ${message}`);
    this.statusCode = statusCode;
    this.json = { message };
  }
}

function engineText(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text).trim();
  } catch {
    return text.trim();
  }
}

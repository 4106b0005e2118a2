/**
 * The OpenAI-compatible HTTP API in front of Triton's generate extension.
 *
 * node:http rather than a framework: five routes, and what matters here is close to the socket
 * (a body limit that stops reading, Server-Sent Events written as they come, a client's
 * disconnect noticed at once so the Triton request is stopped).
 *
 * Generation on a decoupled deployment goes over Triton's gRPC stream (triton/grpc-stream.ts):
 * the one path on which Triton 24.03 and the v0.8.0 backend can be told to stop a request, so
 * that a client that goes away, or an answer cut at a stop string, frees its batch slot at once
 * instead of generating on to max_tokens. The rest (health, the model's config, generation on a
 * deployment that cannot stream) uses Triton's HTTP API.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { TritonClient, TritonRequestError } from "../triton/client.ts";
import { StreamStopped, TritonStreamClient } from "../triton/grpc-stream.ts";
import { GatewayMetrics } from "./metrics.ts";
import {
  chunkObject,
  completionObject,
  finishReason,
  type GenerationRequest,
  modelList,
  OpenAIError,
  parseChatRequest,
  parseCompletionRequest,
  promptTooLong,
  responseId,
  type ServedModel,
  StopScanner,
  tritonBody,
  usage,
} from "./openai.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";

export interface GatewayOptions {
  readonly host: string;
  readonly port: number;
  readonly tritonUrl: string;
  /** host:port of Triton's gRPC endpoint, where generation on a decoupled deployment goes. */
  readonly tritonGrpc: string;
  readonly model: ServedModel;
  readonly tokens: TextTokenizer;
  /** When set, every /v1 request must carry `Authorization: Bearer <key>`. */
  readonly apiKey?: string | undefined;
  /** Largest request body read, in bytes. */
  readonly bodyLimitBytes?: number;
  /** One line per request (method, path, status, tokens, seconds); never a prompt or a key. */
  readonly log?: (line: string) => void;
}

/** 4 MiB: a conversation filling an 8k-token context is well under 100 kB. */
export const defaultBodyLimitBytes = 4 * 1024 * 1024;

export interface RunningGateway extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly metrics: GatewayMetrics;
  close(): Promise<void>;
}

type Endpoint = "chat" | "completions" | "models" | "health" | "metrics" | "other";

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const gateway = new Gateway(options);
  const server = createServer((req, res) => void gateway.handle(req, res));
  // Generation can take minutes; the client's own timeout decides, not ours.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const at = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host;
  const close = async () => {
    await closeServer(server);
    gateway.close();
  };
  return { url: `http://${at}:${port}`, port, metrics: gateway.metrics, close, [Symbol.asyncDispose]: close };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Streams in progress end with the server: their clients see the connection close.
    server.closeAllConnections();
  });
}

class Gateway {
  readonly metrics = new GatewayMetrics();
  readonly #options: GatewayOptions;
  readonly #triton: TritonClient;
  readonly #keyDigest: Buffer | undefined;
  readonly #created = Math.floor(Date.now() / 1000);
  /** Made with the gateway, not on the first answer, which would pay for loading gRPC. */
  readonly #streams: TritonStreamClient;
  #decoupled: boolean | undefined;

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#triton = new TritonClient(options.tritonUrl);
    this.#streams = new TritonStreamClient(options.tritonGrpc);
    this.#keyDigest = options.apiKey ? digest(options.apiKey) : undefined;
  }

  close(): void {
    this.#streams.close();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const endpoint = endpointOf(req.method, path);
    let note = "";
    try {
      if (endpoint === "health") return await this.#health(res);
      if (endpoint === "metrics") return await this.#metricsText(res);
      if (endpoint === "other") throw new OpenAIError(404, `Unknown request URL: ${req.method} ${path}. This server answers GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health and GET /metrics.`, { code: "unknown_url" });
      this.#authorize(req);
      if (endpoint === "models") return sendJson(res, 200, modelList(this.#options.model, this.#created));
      const body = await readJson(req, this.#options.bodyLimitBytes ?? defaultBodyLimitBytes);
      const request = endpoint === "chat" ? parseChatRequest(body, this.#options.model) : parseCompletionRequest(body, this.#options.model);
      note = await this.#generate(request, req, res, started);
    } catch (error) {
      const failure = error instanceof OpenAIError ? error : this.#upstream(error);
      this.metrics.errors.inc({ endpoint, kind: failure.status === 401 ? "unauthorized" : failure.status >= 500 ? "triton" : "refused" });
      note = failure.status === 401 ? "unauthorized" : failure.message.slice(0, 200);
      if (!res.headersSent) sendJson(res, failure.status, failure.body());
      else if (!res.writableEnded) {
        // Already streaming: the error is the last event, as OpenAI's own streams report one.
        res.end(`data: ${JSON.stringify(failure.body())}\n\n`);
      }
    } finally {
      if (endpoint !== "health" && endpoint !== "metrics") {
        this.metrics.requests.inc({ endpoint, status: String(res.statusCode) });
        this.#options.log?.(`${req.method} ${path} ${res.statusCode} ${((performance.now() - started) / 1000).toFixed(3)} s${note ? ` ${note}` : ""}`);
      }
    }
  }

  #authorize(req: IncomingMessage): void {
    if (!this.#keyDigest) return;
    const header = req.headers.authorization ?? "";
    const given = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    // Compared as digests, in constant time: neither the key's length nor its prefix leaks.
    if (given === undefined || !timingSafeEqual(digest(given), this.#keyDigest)) {
      throw new OpenAIError(401, given === undefined ? "Missing API key: send it as `Authorization: Bearer <key>`." : "Incorrect API key provided.", {
        type: "invalid_request_error",
        code: "invalid_api_key",
      });
    }
  }

  async #health(res: ServerResponse): Promise<void> {
    const [server, grpc] = await Promise.all([this.#triton.ready().catch(() => ({ ok: false }) as const), this.#streams.reachable(2_000)]);
    const model = server.ok ? await this.#triton.modelReady("ensemble").catch(() => false) : false;
    // Answers stream over gRPC: a Triton whose gRPC port cannot be reached serves none of them
    // (unless the deployment is known not to stream, and answers over HTTP).
    const ready = server.ok && model && (grpc || this.#decoupled === false);
    sendJson(res, ready ? 200 : 503, {
      status: ready ? "ready" : "not ready",
      triton: this.#triton.baseUrl,
      tritonGrpc: this.#streams.address,
      tritonReady: server.ok,
      modelReady: model,
      grpcReachable: grpc,
    });
  }

  async #metricsText(res: ServerResponse): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.writeHead(200, { "content-type": this.metrics.registry.contentType, "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  /** Whether the deployment can stream (its tensorrt_llm model is decoupled); asked once, when first needed. */
  async #canStream(): Promise<boolean> {
    if (this.#decoupled !== undefined) return this.#decoupled;
    // Unreachable: a TritonRequestError, answered as a 503 like any other request to Triton.
    const decoupled = await this.#triton.decoupled("tensorrt_llm");
    if (decoupled === undefined) {
      throw new OpenAIError(503, `Triton at ${this.#triton.baseUrl} answers, but its tensorrt_llm model is not loaded (no config at /v2/models/tensorrt_llm/config). See \`llama3-trt logs\`.`, {
        code: "model-not-ready",
      });
    }
    this.#decoupled = decoupled;
    return decoupled;
  }

  async #generate(request: GenerationRequest, req: IncomingMessage, res: ServerResponse, started: number): Promise<string> {
    const { model, tokens } = this.#options;
    const promptTokens = tokens.count(request.prompt);
    if (promptTokens > model.maxInputLen) throw promptTooLong(promptTokens, model.maxInputLen);
    const decoupled = await this.#canStream();
    if (request.stream && !decoupled) {
      throw new OpenAIError(400, "This deployment cannot stream: its tensorrt_llm model is not decoupled. Rebuild it with `llama3-trt build --streaming true`, or send `stream: false`.", {
        param: "stream",
        code: "unsupported_parameter",
      });
    }

    // A client that goes away stops its Triton request (see the top of this file).
    const cancel = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) cancel.abort();
    };
    res.once("close", onClose);
    req.once("aborted", onClose);

    const endpoint = request.endpoint;
    const head = { id: responseId(endpoint), created: Math.floor(Date.now() / 1000), model: model.id };
    const scanner = new StopScanner(request.stop);
    let content = "";
    let generated = 0;
    let firstToken = true;
    let stopped: StreamStopped | undefined;
    const markFirst = () => {
      if (!firstToken) return;
      firstToken = false;
      this.metrics.timeToFirstToken.observe({ endpoint }, (performance.now() - started) / 1000);
    };
    const emit = async (text: string) => {
      if (text === "") return;
      content += text;
      markFirst();
      if (request.stream) await writeEvent(res, chunkObject(request, head, { text }));
    };

    this.metrics.inFlight.inc();
    try {
      if (request.stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
        res.flushHeaders();
        if (endpoint === "chat") await writeEvent(res, chunkObject(request, head, { role: true }));
      }
      const body = tritonBody(request, model.rules.endId, decoupled);
      if (decoupled) {
        // One response per generated token: their count is the exact number of tokens the
        // engine produced, which tells a full max_tokens ("length") from an ended turn.
        let pending = Promise.resolve();
        try {
          await this.#streams.generateStream(body, cancel.signal, (piece) => {
            generated++;
            const text = scanner.push(piece);
            pending = pending.then(() => emit(text));
            if (scanner.stopped) cancel.abort();
          });
        } catch (error) {
          if (error instanceof StreamStopped) stopped = error;
          // Stopped here on a stop string: the end of the answer, not a failure.
          if (!(scanner.stopped && cancel.signal.aborted && !res.destroyed)) throw error;
        }
        await pending;
      } else {
        const answer = await this.#triton.generate(body, cancel.signal);
        await emit(scanner.push(answer.text));
        generated = tokens.count(answer.text);
      }
      await emit(scanner.end());
      const completionTokens = tokens.count(content);
      const finish = finishReason({ stoppedByString: scanner.stopped, generated, maxTokens: request.maxTokens });
      const counts = usage(promptTokens, completionTokens);
      this.metrics.promptTokens.inc(promptTokens);
      this.metrics.completionTokens.inc(completionTokens);
      if (request.stream) {
        await writeEvent(res, chunkObject(request, head, { finish }));
        if (request.includeUsage) await writeEvent(res, chunkObject(request, head, { usage: counts }));
        res.end("data: [DONE]\n\n");
      } else {
        markFirst();
        sendJson(res, 200, completionObject(request, head, content, finish, counts));
      }
      this.metrics.duration.observe({ endpoint }, (performance.now() - started) / 1000);
      return `${request.stream ? "stream " : ""}${promptTokens}+${completionTokens} tokens ${finish}${stopped ? `; ${stopped.message}` : ""}`;
    } catch (error) {
      if (cancel.signal.aborted && !scanner.stopped) {
        this.metrics.errors.inc({ endpoint, kind: "disconnected" });
        // Over HTTP (a deployment that cannot stream) Triton runs the request on to its end.
        const triton = error instanceof StreamStopped ? error.message : "Triton request left to end (HTTP cannot stop it)";
        return `client disconnected after ${generated} tokens; ${triton}`;
      }
      throw error;
    } finally {
      this.metrics.inFlight.dec();
      res.off("close", onClose);
      req.off("aborted", onClose);
    }
  }

  /** A failure on Triton's side, in OpenAI's shape: the client sees what happened. */
  #upstream(error: unknown): OpenAIError {
    if (error instanceof TritonRequestError) {
      this.#decoupled = undefined;
      const status = error.kind === "request-refused" ? 400 : error.kind === "stream-error" ? 502 : 503;
      return new OpenAIError(status, `Triton at ${this.#triton.baseUrl}: ${error.message}`, { code: error.kind });
    }
    if (error instanceof BodyError) return new OpenAIError(error.status, error.message, { code: error.code });
    return new OpenAIError(500, `Internal error in the llama3-trt gateway: ${(error as Error)?.message ?? String(error)}`);
  }
}

function endpointOf(method: string | undefined, path: string): Endpoint {
  if (method === "GET" && path === "/health") return "health";
  if (method === "GET" && path === "/metrics") return "metrics";
  if (method === "GET" && path === "/v1/models") return "models";
  if (method === "POST" && path === "/v1/chat/completions") return "chat";
  if (method === "POST" && path === "/v1/completions") return "completions";
  return "other";
}

const digest = (text: string) => createHash("sha256").update(text).digest();

class BodyError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Largest refused body still read to its end before the 413 goes out. */
const drainLimitBytes = 64 * 1024 * 1024;

/** The request body as JSON, read only up to `limit` bytes: a larger one is refused (413) unread. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () => new BodyError(413, "request_too_large", `The request body is larger than this server accepts (${limit} bytes).`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    // Answered once the body is in, read and dropped as it comes (nothing is kept): a client
    // still sending when the connection closes sees EPIPE instead of the 413. A body far larger
    // than that is not waited for.
    if (declared <= drainLimitBytes) {
      req.resume();
      await new Promise((resolve) => req.once("end", resolve).once("error", resolve));
    }
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch (error) {
    throw new BodyError(400, "invalid_json", `The request body is not valid JSON: ${(error as Error).message}`);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": Buffer.byteLength(text) };
  // A refused body may still be arriving: close rather than read it.
  if (status === 413) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(text);
}

/** One Server-Sent Event; waits while the client reads slower than the model writes. */
async function writeEvent(res: ServerResponse, data: unknown): Promise<void> {
  if (res.destroyed) return;
  if (!res.write(`data: ${JSON.stringify(data)}\n\n`)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.once("drain", done);
      res.once("close", done);
    });
  }
}

/**
 * HTTP plumbing shared by the Hub, the CDN and the recorder: a server wrapper that gives every
 * response an `X-Request-Id` and a request-log line, JSON and error answers, and the file body
 * server (Range, If-Range, 206/416, and the scenario's body faults).
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { LogOrigin, RequestLog } from "./request-log.ts";
import { describeRule, type FaultRule, type RequestFacts, type ScenarioState } from "./scenario.ts";

export interface RequestContext {
  readonly origin: LogOrigin;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** Path as received (percent-encoded), without the query. */
  readonly rawPath: string;
  readonly query: URLSearchParams;
  /** Body bytes written so far. */
  bytesSent: number;
  /** Repo file the request is about, for the log and for scenario matching. */
  file?: string;
  /** Applied scenario rule, for the log. */
  fault?: string;
}

export type Handler = (ctx: RequestContext) => Promise<void>;

/** Looks like the Hub's (AWS load balancer) ids, e.g. `Root=1-6620f0c1-0123456789abcdef01234567`. */
function newRequestId(): string {
  return `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString("hex")}`;
}

/** An HTTP server whose every request gets an id, a log line on close, and a 500 on a handler bug. */
export function createLoggedServer(origin: LogOrigin, log: RequestLog, handler: Handler): Server {
  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    const queryAt = url.indexOf("?");
    const ctx: RequestContext = {
      origin,
      req,
      res,
      requestId: newRequestId(),
      rawPath: queryAt === -1 ? url : url.slice(0, queryAt),
      query: new URLSearchParams(queryAt === -1 ? "" : url.slice(queryAt + 1)),
      bytesSent: 0,
    };
    res.setHeader("X-Request-Id", ctx.requestId);
    res.on("close", () => {
      log.append({
        time: new Date().toISOString(),
        origin,
        method: req.method ?? "",
        path: ctx.rawPath,
        status: res.statusCode,
        bytesSent: ctx.bytesSent,
        range: req.headers.range ?? null,
        authorization: req.headers.authorization !== undefined,
        userAgent: req.headers["user-agent"] ?? null,
        requestId: ctx.requestId,
        ...(ctx.file !== undefined && { file: ctx.file }),
        ...(ctx.fault !== undefined && { fault: ctx.fault }),
        ...(!res.writableFinished && { aborted: true }),
      });
    });
    handler(ctx).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`world server (${origin}) ${req.method} ${ctx.rawPath}: ${message}\n`);
      if (!res.headersSent) sendJson(ctx, 500, { error: `world server bug: ${message}` });
      else res.destroy();
    });
  });
  // Keep-alive is the norm for download clients. A long idle timeout (an AWS load balancer's
  // default) makes the client drop idle sockets first: with a short one, a client reusing a socket
  // just as the server times it out gets ECONNRESET. close() ends idle sockets explicitly.
  server.keepAliveTimeout = 60_000;
  return server;
}

/** Header values must be Latin-1 without control characters; messages are for humans anyway. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?");
}

export function sendJson(ctx: RequestContext, status: number, value: unknown, headers: Record<string, string> = {}): void {
  sendBody(ctx, status, Buffer.from(JSON.stringify(value), "utf8"), { "Content-Type": "application/json; charset=utf-8", ...headers });
}

export function sendBody(ctx: RequestContext, status: number, body: Buffer, headers: Record<string, string>): void {
  ctx.res.writeHead(status, { ...headers, "Content-Length": String(body.length) });
  if (ctx.req.method === "HEAD") {
    ctx.res.end();
    return;
  }
  ctx.res.end(body);
  ctx.bytesSent += body.length;
}

/**
 * An error the way the Hub sends it: JSON `{"error": ...}` for GET (what @huggingface/hub's
 * createApiError reads) and `X-Error-Code` / `X-Error-Message` headers, which are all a HEAD
 * request gets (what huggingface_hub's hf_raise_for_status reads).
 */
export function sendHubError(
  ctx: RequestContext,
  status: number,
  message: string,
  errorCode?: string,
  headers: Record<string, string> = {},
): void {
  sendJson(ctx, status, { error: message }, {
    ...(errorCode !== undefined && { "X-Error-Code": errorCode }),
    "X-Error-Message": headerSafe(message),
    ...headers,
  });
}

export function sendRuleStatus(ctx: RequestContext, rule: FaultRule): void {
  const status = rule.status ?? 500;
  ctx.fault = describeRule(rule);
  sendJson(ctx, status, { error: `world scenario: injected ${status}` }, {
    ...(rule.retryAfterSeconds !== undefined && { "Retry-After": String(rule.retryAfterSeconds) }),
  });
}

export class BodyTooLargeError extends Error {}

export async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) throw new BodyTooLargeError(`request body over ${limit} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** Percent-decodes each path segment; `null` when an escape is malformed. */
export function decodeSegments(rawPath: string): string[] | null {
  try {
    return rawPath.split("/").slice(1).map((segment) => decodeURIComponent(segment));
  } catch {
    return null;
  }
}

export type RangeRequest =
  | { readonly kind: "none" }
  | { readonly kind: "range"; readonly start: number; readonly end: number }
  | { readonly kind: "unsatisfiable" };

/**
 * One `bytes=` range per RFC 9110 §14.1.2: `a-b`, `a-`, `-suffix`. Malformed and multi-range
 * headers are ignored (a full 200), which the RFC allows and which keeps the server simple.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: "none" };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: "none" };
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return { kind: "none" };
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "range", start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "none" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "range", start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) };
}

export interface ByteSource {
  readonly size: number;
  /** Bytes `start..end` inclusive. */
  read(start: number, end: number): AsyncIterable<Uint8Array>;
}

export function fileSource(path: string, size: number): ByteSource {
  return { size, read: (start, end) => createReadStream(path, { start, end, highWaterMark: 256 * 1024 }) };
}

export function bufferSource(bytes: Buffer): ByteSource {
  return {
    size: bytes.length,
    async *read(start, end) {
      yield bytes.subarray(start, end + 1);
    },
  };
}

/** The source made `delta` bytes longer (zeros appended) or shorter (its end cut off). */
function resized(source: ByteSource, delta: number): ByteSource {
  const size = Math.max(0, source.size + delta);
  return {
    size,
    async *read(start, end) {
      if (start < source.size) yield* source.read(start, Math.min(end, source.size - 1));
      const from = Math.max(start, source.size);
      if (end >= from) yield Buffer.alloc(end - from + 1);
    },
  };
}

/**
 * Serves a file body with Range support and whatever body fault the scenario holds for it.
 * `etag` is the full (quoted) ETag header value; `If-Range` with another value gets the full body.
 */
export async function serveBytes(
  ctx: RequestContext,
  scenario: ScenarioState,
  facts: RequestFacts,
  source: ByteSource,
  etag: string,
  headers: Record<string, string>,
): Promise<void> {
  const { req, res } = ctx;
  const ifRange = req.headers["if-range"];
  const rangeOf = (size: number): RangeRequest =>
    ifRange !== undefined && ifRange !== etag ? { kind: "none" } : parseRange(req.headers.range, size);
  let range = rangeOf(source.size);
  const servedSize = range.kind === "range" ? range.end - range.start + 1 : range.kind === "unsatisfiable" ? 0 : source.size;
  const rule = scenario.takeBody(facts, { hasRange: range.kind !== "none", fullSize: source.size, servedSize });
  if (rule) ctx.fault = describeRule(rule);
  if (rule?.sizeDelta !== undefined) {
    // The server's copy differs in length from what the listing says: every header follows the copy.
    source = resized(source, rule.sizeDelta);
    range = rangeOf(source.size);
  }
  if (rule?.ignoreRange) range = { kind: "none" };

  const common = { ...headers, "Accept-Ranges": "bytes", ETag: etag };
  if (range.kind === "unsatisfiable") {
    res.writeHead(416, { ...common, "Content-Range": `bytes */${source.size}`, "Content-Length": "0" });
    res.end();
    return;
  }
  const start = range.kind === "range" ? range.start : 0;
  const end = range.kind === "range" ? range.end : source.size - 1;
  const length = end - start + 1;
  res.writeHead(range.kind === "range" ? 206 : 200, {
    ...common,
    ...(!rule?.chunked && { "Content-Length": String(length) }),
    ...(range.kind === "range" && { "Content-Range": `bytes ${start}-${end}/${source.size}` }),
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  // The flipped byte sits in the file's middle when served, so a resumed download meets it too.
  const middle = Math.floor(source.size / 2);
  const flipAt = rule?.wrongBytes ? (middle >= start && middle <= end ? middle - start : 0) : -1;
  await pump(ctx, source.read(start, end), { flipAt, cutAfter: rule?.cutAfterBytes, bytesPerSecond: rule?.bytesPerSecond });
}

interface PumpEffects {
  readonly flipAt: number;
  readonly cutAfter: number | undefined;
  readonly bytesPerSecond: number | undefined;
}

async function pump(ctx: RequestContext, chunks: AsyncIterable<Uint8Array>, effects: PumpEffects): Promise<void> {
  const { res } = ctx;
  const started = performance.now();
  let sent = 0;
  const write = async (bytes: Uint8Array): Promise<void> => {
    if (effects.bytesPerSecond === undefined) {
      await writeWithBackpressure(res, bytes);
      sent += bytes.length;
      ctx.bytesSent += bytes.length;
      return;
    }
    // About 20 writes a second, each one waiting for its moment on the rate line.
    const piece = Math.max(1, Math.floor(effects.bytesPerSecond / 20));
    for (let offset = 0; offset < bytes.length && !res.destroyed; offset += piece) {
      const slice = bytes.subarray(offset, offset + piece);
      const due = started + ((sent + slice.length) / effects.bytesPerSecond) * 1000 - performance.now();
      if (due > 0) await sleep(due);
      await writeWithBackpressure(res, slice);
      sent += slice.length;
      ctx.bytesSent += slice.length;
    }
  };

  for await (const chunk of chunks) {
    if (res.destroyed) return; // the client went away; leaving the loop closes the file
    let bytes = chunk;
    if (effects.flipAt >= sent && effects.flipAt < sent + bytes.length) {
      const copy = Buffer.from(bytes);
      copy[effects.flipAt - sent] = (copy[effects.flipAt - sent] ?? 0) ^ 0xff;
      bytes = copy;
    }
    if (effects.cutAfter !== undefined && sent + bytes.length > effects.cutAfter) {
      await write(bytes.subarray(0, effects.cutAfter - sent));
      // A graceful close after the kernel has the bytes: the client gets exactly `cutAfter`
      // body bytes, then EOF short of Content-Length (a reset could drop bytes it has not read).
      res.flushHeaders();
      res.socket?.end();
      return;
    }
    await write(bytes);
  }
  res.end();
}

function writeWithBackpressure(res: ServerResponse, bytes: Uint8Array): Promise<void> {
  if (res.destroyed || bytes.length === 0) return Promise.resolve();
  if (res.write(bytes)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** `Content-Disposition` with an ASCII fallback name, since header values must be Latin-1. */
export function contentDisposition(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const ascii = base.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `inline; filename*=UTF-8''${encodeURIComponent(base)}; filename="${ascii}";`;
}

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // Idle keep-alive sockets and slow downloads would otherwise hold close() open.
    server.closeAllConnections();
  });
}

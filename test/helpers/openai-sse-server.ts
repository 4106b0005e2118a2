/**
 * A small OpenAI-shaped streaming server for `bench --api openai` tests, until the gateway
 * (issue 11) is in this tree: `GET /v1/models`, `POST /v1/chat/completions` with `stream: true`
 * answered as the OpenAI API streams (a role chunk, one content chunk per token, a chunk with
 * finish_reason, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`). It
 * paces tokens like the Triton stand-in (first token `ttftMs` after a slot is free, then one per
 * `itlMs`, on deadlines), holds at most `slots` requests at once, refuses a wrong key with 401 and
 * a prompt containing "FAIL" with 400, and records every request body it got.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface OpenAiServerOptions {
  readonly ttftMs: number;
  readonly itlMs: number;
  readonly slots: number;
  readonly apiKey?: string;
  readonly model?: string;
}

export interface OpenAiServer extends AsyncDisposable {
  readonly url: string;
  readonly bodies: Record<string, unknown>[];
  /** Most requests that were generating at the same time. */
  readonly maxActive: () => number;
}

const words = ["the", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog"];

export async function startOpenAiServer(options: OpenAiServerOptions): Promise<OpenAiServer> {
  const model = options.model ?? "meta-llama/Meta-Llama-3-8B-Instruct";
  const bodies: Record<string, unknown>[] = [];
  let active = 0;
  let maxActive = 0;
  const waiting: (() => void)[] = [];
  const acquire = async () => {
    if (active >= options.slots) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    maxActive = Math.max(maxActive, active);
  };
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return json(res, 401, { error: { message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key" } });
    }
    if (req.method === "GET" && req.url === "/v1/models") {
      return json(res, 200, { object: "list", data: [{ id: model, object: "model", created: 0, owned_by: "llama3-trt" }] });
    }
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") return json(res, 404, { error: { message: "Not Found" } });
    let raw = "";
    for await (const chunk of req) raw += String(chunk);
    const body = JSON.parse(raw) as { model?: unknown; messages?: { content?: unknown }[]; max_tokens?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } };
    bodies.push(body as Record<string, unknown>);
    const prompt = String(body.messages?.at(-1)?.content ?? "");
    if (body.model !== model || body.stream !== true || typeof body.max_tokens !== "number") {
      return json(res, 400, { error: { message: `bad request: ${raw.slice(0, 200)}`, type: "invalid_request_error" } });
    }
    if (prompt.includes("FAIL")) return json(res, 400, { error: { message: "This prompt was refused by the test server.", type: "invalid_request_error" } });
    await acquire();
    try {
      const start = performance.now();
      const id = `chatcmpl-${bodies.length}`;
      const chunk = (delta: Record<string, unknown>, finish: string | null) =>
        `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(chunk({ role: "assistant", content: "" }, null));
      const n = body.max_tokens;
      for (let i = 0; i < n; i++) {
        const wait = start + options.ttftMs + i * options.itlMs - performance.now();
        if (wait > 0) await sleep(wait);
        res.write(chunk({ content: words[i % words.length] }, null));
      }
      res.write(chunk({}, "length"));
      if (body.stream_options?.include_usage === true) {
        res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [], usage: { prompt_tokens: 11, completion_tokens: n, total_tokens: 11 + n } })}\n\n`);
      }
      res.write("data: [DONE]\n\n");
      res.end();
    } finally {
      release();
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { error: { message: String(error) } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    bodies,
    maxActive: () => maxActive,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * httpGet, the downloads' HTTP client, on real sockets: a tiny local server answers what the
 * Hub stand-in never does (a 299 or 300, a repeated header, no answer at all), and shows which
 * connection each request came on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { httpGet } from "../../src/hub/http.ts";

// Each test takes well under a second: one that hangs has failed (and fails fast under Stryker).
vi.setConfig({ testTimeout: 5_000 });

let server: Server;
let base: string;
/** The client port of each request: the same port twice means the connection was kept alive. */
const ports: number[] = [];
let handle: (req: IncomingMessage, res: ServerResponse) => void = () => {};

beforeAll(async () => {
  server = createServer((req, res) => {
    ports.push(req.socket.remotePort ?? 0);
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const never = () => new AbortController().signal;

describe("httpGet", () => {
  it("answers status, ok for 2xx only, headers by any case (repeated ones joined), the body as text or JSON", async () => {
    handle = (req, res) => {
      const status = Number(new URL(req.url ?? "/", base).searchParams.get("status"));
      res.writeHead(status, { "Content-Type": "application/json", "X-Seen": req.headers["x-asked"] ?? "none", "Set-Cookie": ["a=1", "b=2"] });
      res.end(JSON.stringify({ status }));
    };
    const oks: boolean[] = [];
    for (const status of [200, 206, 299, 300, 404, 500]) {
      const answer = await httpGet(`${base}/?status=${status}`, { headers: { "x-asked": `s${status}` }, signal: never() });
      expect(answer.status).toBe(status);
      oks.push(answer.ok);
      expect(answer.header("X-SEEN")).toBe(`s${status}`);
      expect(answer.header("set-cookie")).toBe("a=1, b=2");
      expect(answer.header("x-absent")).toBeUndefined();
      expect(await answer.json()).toEqual({ status });
    }
    expect(oks).toEqual([true, true, true, false, false, false]);
    const text = await httpGet(`${base}/?status=200`, { headers: {}, signal: never() });
    expect(await text.text()).toBe('{"status":200}');
  });

  it("keeps the connection for the next request, also after a body thrown away with discard()", async () => {
    handle = (_req, res) => {
      res.writeHead(200, { "Content-Length": String(256 * 1024) });
      res.end(Buffer.alloc(256 * 1024));
    };
    ports.length = 0;
    (await httpGet(`${base}/a`, { headers: {}, signal: never() })).discard();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = await httpGet(`${base}/b`, { headers: {}, signal: never() });
    await second.text();
    expect(ports).toHaveLength(2);
    expect(ports[1]).toBe(ports[0]);
  });

  it("an abort ends a request the server never answers", async () => {
    handle = () => {};
    const controller = new AbortController();
    const pending = httpGet(`${base}/silent`, { headers: {}, signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    const outcome = await Promise.race([
      pending.then(
        () => "answered",
        (error: unknown) => (error as Error).name,
      ),
      new Promise((resolve) => setTimeout(() => resolve("still waiting"), 1000)),
    ]);
    expect(outcome).toBe("AbortError");
  });

  it("an https URL is spoken to in TLS (here to a plain HTTP server, so the handshake fails)", async () => {
    handle = (_req, res) => res.end("plain");
    const error = await httpGet(base.replace("http:", "https:"), { headers: {}, signal: never() }).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(error?.code).toBe("EPROTO");
  });
});

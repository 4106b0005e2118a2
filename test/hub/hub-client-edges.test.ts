/**
 * The Hub client against a small real HTTP server of the test's own, for what the world's Hub
 * stand-in does not vary: the forms a Link header takes, a next page on another origin, a listing
 * that never ends, entries it must skip or refuse, a 401 GatedRepo to a token.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { FailedError } from "../../src/common/errors.ts";
import { HubClient } from "../../src/hub/hub-client.ts";
import type { HubEnv } from "../../src/hub/hub-env.ts";

interface Fake {
  readonly url: string;
  readonly requests: { path: string; authorization: string | undefined }[];
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server answering each tree request with `answer(page, request)`: a JSON body and headers. */
async function fake(answer: (page: number, req: IncomingMessage, base: string) => { body: unknown; headers?: Record<string, string> }): Promise<Fake> {
  const requests: Fake["requests"] = [];
  let base = "";
  const server = createServer((req, res) => {
    requests.push({ path: req.url ?? "", authorization: req.headers.authorization });
    const page = Number(new URL(req.url ?? "/", base).searchParams.get("page") ?? 0);
    const { body, headers } = answer(page, req, base);
    res.writeHead(200, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url: base, requests };
}

function hubAt(endpoint: string): HubClient {
  const env: HubEnv = { endpoint, token: "hf_listingtesttoken000001", tokenSource: "HF_TOKEN", tokenLookup: [], cacheDir: "/nonexistent", offline: false };
  return new HubClient(env, new AbortController().signal);
}

const commit = "a".repeat(40);
const file = (path: string, extra: Record<string, unknown> = {}) => ({ type: "file", path, size: 10, oid: "b".repeat(40), ...extra });
const tree = `/api/models/org/model/tree/${commit}`;

describe("listFiles", () => {
  it.each([
    ["quoted", (next: string) => `<${next}>; rel="next"`],
    ["unquoted, no space", (next: string) => `<${next}>;rel=next`],
    ["spaced", (next: string) => `<${next}> ; rel="next"`],
    ["after a prev link", (next: string) => `<http://ignored.example/x>; rel="prev", <${next}>; rel="next"`],
  ])("follows the next page (%s Link) to the last, the token to each", async (_form, link) => {
    const hub = await fake((page, _req, base) => ({
      body: [file(`p${page}.json`)],
      headers: page < 2 ? { link: link(`${base}${tree}?page=${page + 1}`) } : ({} as Record<string, string>),
    }));
    const files = await hubAt(hub.url).listFiles("org/model", commit);
    expect(files.map((f) => f.path)).toEqual(["p0.json", "p1.json", "p2.json"]);
    expect(hub.requests.map((r) => r.path)).toEqual([`${tree}?recursive=true&expand=false`, `${tree}?page=1`, `${tree}?page=2`]);
    expect(hub.requests.every((r) => r.authorization === "Bearer hf_listingtesttoken000001")).toBe(true);
  });

  it("does not follow a next page on another origin (it would get no token, and is not the Hub's)", async () => {
    const elsewhere = await fake(() => ({ body: [file("stolen.json")] }));
    const hub = await fake(() => ({ body: [file("config.json")], headers: { link: `<${elsewhere.url}${tree}?page=1>; rel="next"` } }));
    expect((await hubAt(hub.url).listFiles("org/model", commit)).map((f) => f.path)).toEqual(["config.json"]);
    expect(elsewhere.requests).toEqual([]);
  });

  it("gives up on a listing that never ends, after 1000 pages", async () => {
    const hub = await fake((page, _req, base) => ({ body: [], headers: { link: `<${base}${tree}?page=${page + 1}>; rel="next"` } }));
    const error = await hubAt(hub.url).listFiles("org/model", commit).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(FailedError);
    expect((error as Error).message).toBe("The Hub's listing of org/model does not end (over 1000 pages)");
    expect(hub.requests).toHaveLength(1000);
  });

  it("lists files only, an LFS file by its sha256 and real size, and refuses a file without an oid", async () => {
    const hub = await fake(() => ({
      body: [
        { type: "directory", path: "original", oid: "c".repeat(40) },
        file("config.json", { size: 654 }),
        file("model.safetensors", { size: 134, lfs: { oid: "d".repeat(64), size: 16_000_000_000 } }),
      ],
    }));
    expect(await hubAt(hub.url).listFiles("org/model", commit)).toEqual([
      { path: "config.json", size: 654, oid: "b".repeat(40), lfs: false },
      { path: "model.safetensors", size: 16_000_000_000, oid: "d".repeat(64), lfs: true },
    ]);
    const broken = await fake(() => ({ body: [{ type: "file", path: "x.json", size: 1 }] }));
    await expect(hubAt(broken.url).listFiles("org/model", commit)).rejects.toThrow("The Hub listed x.json in org/model without an oid");
  });
});

describe("a refusal that the world's Hub does not give: 401 GatedRepo to a token", () => {
  it("names the account (from whoami); a 401 of another kind does not ask", async () => {
    // A server of its own: it speaks auth-check and whoami.
    const requests: string[] = [];
    const server = createServer((req, res) => {
      requests.push(req.url ?? "");
      if (req.url === "/api/whoami-v2") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: "alice" }));
      const gated = req.url?.includes("gated");
      res.writeHead(401, { "content-type": "application/json", ...(gated ? { "x-error-code": "GatedRepo" } : {}) }).end(JSON.stringify({ error: "no" }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const gated = await hubAt(url).checkAccess("org/gated").then(() => undefined, (e: unknown) => e as Error);
    expect(gated?.message).toBe(
      `Your Hugging Face token (from HF_TOKEN, user \`alice\`) has no access to org/gated. Request access at ${url}/org/gated (accept the licence) and rerun when it is approved.`,
    );
    const other = await hubAt(url).checkAccess("org/other").then(() => undefined, (e: unknown) => e as Error);
    expect(other?.message).toBe(`Repository org/other not found on ${url}. Check --model; a private repository also needs a token that can see it.`);
    expect(requests).toEqual(["/api/models/org/gated/auth-check", "/api/whoami-v2", "/api/models/org/other/auth-check"]);
  });
});

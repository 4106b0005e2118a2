/**
 * The world's Hub stand-in answers the real @huggingface/hub 2.17.5 client, serves LFS through a
 * separate CDN origin with Range, gates like the Hub, logs every request without secrets, and
 * its scenario knobs do what they say. The server runs in-process on ephemeral ports in a temp
 * state dir: no `.world/`, no global setup.
 */
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  HubApiError,
  downloadFile,
  listFiles,
  modelInfo,
  parseSafetensorsMetadata,
  pathsInfo,
  whoAmI,
  type ListFileEntry,
} from "@huggingface/hub";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  DENIED_TOKEN,
  GATED_REPO_ID,
  GRANTED_TOKEN,
  OPEN_REPO_ID,
  startWorldServer,
  type RepoManifest,
  type RequestLogEntry,
  type WorldServer,
} from "../../world/server/index.ts";
import { blobPath, materialiseRepo, WORLD_REPOS } from "../../world/server/repo-fixture.ts";
import { CONFIG_JSON } from "../../world/server/llama3-files.ts";

let world: WorldServer;
let stateDir: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "world-hub-test-"));
  world = await startWorldServer({ stateDir, hubPort: 0, cdnPort: 0, recorderHost: "127.0.0.1", recorderPort: 0 });
});

afterAll(async () => {
  await world?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

afterEach(() => world.scenario.reset());

// ---------------------------------------------------------------- helpers

function manifest(repoId: string): RepoManifest {
  const repo = world.store.repo(repoId);
  if (!repo) throw new Error(`no repo ${repoId}`);
  return repo.manifest;
}

function fileOf(repoId: string, path: string, commit = 0) {
  const file = manifest(repoId).commits[commit === 0 ? 0 : 1].files.find((f) => f.path === path);
  if (!file) throw new Error(`no ${path} in ${repoId}`);
  return file;
}

async function blobBytes(repoId: string, sha256: string): Promise<Buffer> {
  const repo = world.store.repo(repoId);
  if (!repo) throw new Error(`no repo ${repoId}`);
  return readFile(blobPath(repo.dir, sha256));
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const gitSha1 = (bytes: Uint8Array) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");

async function logEntries(): Promise<RequestLogEntry[]> {
  const text = await readFile(world.requestLog, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as RequestLogEntry);
}

/** The log line of one request, polled because it is written when the server side closes. */
async function logEntry(requestId: string | null): Promise<RequestLogEntry> {
  if (!requestId) throw new Error("response had no X-Request-Id");
  for (let attempt = 0; attempt < 100; attempt++) {
    const entry = (await logEntries()).find((e) => e.requestId === requestId);
    if (entry) return entry;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no log line for ${requestId}`);
}

/** Log lines written after `mark` (an earlier length of the log), polled until `done` holds. */
async function entriesSince(mark: number, done: (entries: RequestLogEntry[]) => boolean = () => true): Promise<RequestLogEntry[]> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const entries = (await logEntries()).slice(mark);
    if (done(entries)) return entries;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("expected log lines did not appear");
}

async function setScenario(body: unknown): Promise<Response> {
  return fetch(`${world.hubUrl}/_world/scenario`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function thrown(promise: Promise<unknown>): Promise<HubApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HubApiError) return error;
    throw error;
  }
  throw new Error("expected a HubApiError, got success");
}

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const SHARD1 = "model-00001-of-00004.safetensors";
const SHARD4 = "model-00004-of-00004.safetensors";

/** The signed CDN URL the Hub redirects an LFS resolve to. */
async function cdnLocation(repoId: string, path: string, token?: string): Promise<string> {
  const response = await fetch(`${world.hubUrl}/${repoId}/resolve/main/${path}`, {
    method: "HEAD",
    redirect: "manual",
    headers: token ? auth(token) : {},
  });
  expect(response.status).toBe(302);
  const location = response.headers.get("location");
  if (!location) throw new Error("302 without Location");
  return location;
}

// ---------------------------------------------------------------- @huggingface/hub against the world

describe("@huggingface/hub 2.17.5 against the world Hub", () => {
  it("lists every file recursively over several pages, with LFS info", async () => {
    const mark = (await logEntries()).length;
    const entries: ListFileEntry[] = [];
    for await (const entry of listFiles({ repo: OPEN_REPO_ID, recursive: true, hubUrl: world.hubUrl })) entries.push(entry);

    const files = manifest(OPEN_REPO_ID).commits[0].files;
    expect(entries.filter((e) => e.type === "file").map((e) => e.path).sort()).toEqual(files.map((f) => f.path).sort());
    expect(entries.filter((e) => e.type === "directory").map((e) => e.path)).toEqual(["original"]);

    const shard = entries.find((e) => e.path === SHARD1);
    const shardBytes = await blobBytes(OPEN_REPO_ID, fileOf(OPEN_REPO_ID, SHARD1).sha256);
    expect(shard?.lfs?.oid).toBe(sha256(shardBytes));
    expect(shard?.lfs?.size).toBe(shardBytes.length);
    expect(shard?.size).toBe(shardBytes.length);
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(shardBytes)}\nsize ${shardBytes.length}\n`;
    expect(shard?.oid).toBe(gitSha1(Buffer.from(pointer)));
    expect(shard?.lfs?.pointerSize).toBe(pointer.length);

    const config = entries.find((e) => e.path === "config.json");
    expect(config?.lfs).toBeUndefined();
    expect(config?.oid).toBe(gitSha1(Buffer.from(CONFIG_JSON)));
    expect(entries.find((e) => e.path === "tokenizer.json")?.lfs).toBeDefined();
    expect(entries.find((e) => e.path === "original/consolidated.00.pth")?.lfs).toBeDefined();

    // 17 entries at 5 per page: 4 requests, the later ones carrying the cursor (not logged).
    const treeRequests = await entriesSince(mark, (e) => e.filter((x) => x.path.includes("/tree/")).length >= 4);
    expect(treeRequests.filter((e) => e.path.includes("/tree/"))).toHaveLength(4);
    expect(treeRequests.every((e) => !e.path.includes("?"))).toBe(true);
  });

  it("lists one level without recursion", async () => {
    const root: string[] = [];
    for await (const entry of listFiles({ repo: OPEN_REPO_ID, hubUrl: world.hubUrl })) root.push(entry.path);
    expect(root).toContain("original");
    expect(root).toContain("config.json");
    expect(root.some((p) => p.startsWith("original/"))).toBe(false);

    const original: string[] = [];
    for await (const entry of listFiles({ repo: OPEN_REPO_ID, path: "original", hubUrl: world.hubUrl })) original.push(entry.path);
    expect(original.sort()).toEqual(["original/consolidated.00.pth", "original/params.json", "original/tokenizer.model"]);
  });

  it("answers model info with the commit sha, and for a gated repo even without access", async () => {
    const open = await modelInfo({ name: OPEN_REPO_ID, hubUrl: world.hubUrl, additionalFields: ["sha", "filePaths"] });
    expect(open.sha).toBe(manifest(OPEN_REPO_ID).commits[0].sha);
    expect(open.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(open.gated).toBe(false);
    expect(open.filePaths).toContain(SHARD4); // from `siblings`

    // The real Hub answers model info for gated repos to anyone: checkRepoAccess cannot see gating.
    const gated = await modelInfo({ name: GATED_REPO_ID, hubUrl: world.hubUrl, additionalFields: ["sha"] });
    expect(gated.gated).toBe("manual");
    expect(gated.name).toBe(GATED_REPO_ID);
    const denied = await modelInfo({ name: GATED_REPO_ID, hubUrl: world.hubUrl, accessToken: DENIED_TOKEN });
    expect(denied.gated).toBe("manual");
  });

  it("answers paths-info with expand (last commit, LFS)", async () => {
    const infos = await pathsInfo({
      repo: GATED_REPO_ID,
      paths: ["config.json", SHARD1, "original", "no-such-file"],
      expand: true,
      hubUrl: world.hubUrl,
      accessToken: GRANTED_TOKEN,
    });
    const commit = manifest(GATED_REPO_ID).commits[0];
    expect(infos.map((i) => i.path)).toEqual(["config.json", SHARD1, "original"]);
    expect(infos[0]?.lastCommit?.id).toBe(commit.sha);
    expect(infos[1]?.lfs?.oid).toBe(fileOf(GATED_REPO_ID, SHARD1).sha256);
    expect(infos[2]?.type).toBe("directory");
  });

  it("also takes paths-info as a form, the way huggingface_hub sends it", async () => {
    const response = await fetch(`${world.hubUrl}/api/models/${OPEN_REPO_ID}/paths-info/main`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "paths=config.json&paths=tokenizer.json&expand=True",
    });
    const body = (await response.json()) as Array<{ path: string; lastCommit?: { id: string } }>;
    expect(body.map((e) => e.path)).toEqual(["config.json", "tokenizer.json"]);
    expect(body[1]?.lastCommit?.id).toBe(manifest(OPEN_REPO_ID).commits[0].sha);
  });

  it("whoami: the granted and the denied user; an invalid token is 401", async () => {
    expect((await whoAmI({ hubUrl: world.hubUrl, accessToken: GRANTED_TOKEN })).name).toBe("world-user");
    expect((await whoAmI({ hubUrl: world.hubUrl, accessToken: DENIED_TOKEN })).name).toBe("world-denied");
    const error = await thrown(whoAmI({ hubUrl: world.hubUrl, accessToken: "hf_revokedrevokedrevokedrevokedrevo" }));
    expect(error.statusCode).toBe(401);
    expect(error.message).toContain("Invalid credentials in Authorization header");
    expect(error.requestId).toMatch(/^Root=1-/);
  });

  it("downloads a regular file directly", async () => {
    const blob = await downloadFile({ repo: GATED_REPO_ID, path: "config.json", hubUrl: world.hubUrl, accessToken: GRANTED_TOKEN });
    const text = await blob?.text();
    expect(text).toBe(CONFIG_JSON);
    const config = JSON.parse(text ?? "{}") as Record<string, unknown>;
    expect(config).toMatchObject({ hidden_size: 4096, num_key_value_heads: 8, vocab_size: 128256, rope_theta: 500000 });
  });

  it("downloads an LFS file through the CDN redirect; the bytes hash to the LFS oid", async () => {
    const mark = (await logEntries()).length;
    const blob = await downloadFile({ repo: OPEN_REPO_ID, path: SHARD1, hubUrl: world.hubUrl });
    const bytes = new Uint8Array((await blob?.arrayBuffer()) ?? new ArrayBuffer(0));
    expect(bytes.length).toBe(fileOf(OPEN_REPO_ID, SHARD1).size);
    expect(sha256(bytes)).toBe(fileOf(OPEN_REPO_ID, SHARD1).sha256);
    const entries = await entriesSince(mark, (e) => e.some((x) => x.origin === "cdn" && x.status === 200));
    expect(entries.find((e) => e.origin === "hub")?.status).toBe(302);
    expect(entries.filter((e) => e.origin === "cdn").every((e) => e.file === SHARD1)).toBe(true);
  });

  it("returns null for a missing file (404 EntryNotFound)", async () => {
    expect(await downloadFile({ repo: OPEN_REPO_ID, path: "nope.json", hubUrl: world.hubUrl })).toBeNull();
  });

  it("gated repo: 401 without a token, 403 with the denied token, both GatedRepo", async () => {
    const anonymous = await thrown(downloadFile({ repo: GATED_REPO_ID, path: "config.json", hubUrl: world.hubUrl }));
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.message).toContain(`Access to model ${GATED_REPO_ID} is restricted. You must have access to it and be authenticated`);

    const denied = await thrown(downloadFile({ repo: GATED_REPO_ID, path: "config.json", hubUrl: world.hubUrl, accessToken: DENIED_TOKEN }));
    expect(denied.statusCode).toBe(403);
    expect(denied.message).toContain(`Visit https://huggingface.co/${GATED_REPO_ID} to ask for access.`);

    const listing = await thrown(listFiles({ repo: GATED_REPO_ID, hubUrl: world.hubUrl, accessToken: DENIED_TOKEN }).next());
    expect(listing.statusCode).toBe(403);

    for (const [headers, status] of [[{}, 401], [auth(DENIED_TOKEN), 403], [auth(GRANTED_TOKEN), 200]] as const) {
      const check = await fetch(`${world.hubUrl}/api/models/${GATED_REPO_ID}/auth-check`, { headers });
      expect(check.status).toBe(status);
      expect(check.headers.get("x-error-code")).toBe(status === 200 ? null : "GatedRepo");
    }
  });

  it("missing repo: 404 with a token, 401 without (as the Hub does); both RepoNotFound", async () => {
    const withToken = await thrown(modelInfo({ name: "world/no-such-repo", hubUrl: world.hubUrl, accessToken: GRANTED_TOKEN }));
    expect(withToken.statusCode).toBe(404);
    const anonymous = await fetch(`${world.hubUrl}/api/models/world/no-such-repo`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("x-error-code")).toBe("RepoNotFound");
  });

  it("missing revision: 404 RevisionNotFound", async () => {
    const info = await thrown(modelInfo({ name: OPEN_REPO_ID, revision: "f".repeat(40), hubUrl: world.hubUrl }));
    expect(info.statusCode).toBe(404);
    const listing = await thrown(listFiles({ repo: OPEN_REPO_ID, revision: "no-such-branch", hubUrl: world.hubUrl }).next());
    expect(listing.statusCode).toBe(404);
    const resolve = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/no-such-branch/config.json`, { method: "HEAD" });
    expect(resolve.status).toBe(404);
    expect(resolve.headers.get("x-error-code")).toBe("RevisionNotFound");
  });

  it("parses the safetensors shards with parseSafetensorsMetadata", async () => {
    const parsed = await parseSafetensorsMetadata({ repo: OPEN_REPO_ID, hubUrl: world.hubUrl, computeParametersCount: true });
    expect(parsed.sharded).toBe(true);
    if (!parsed.sharded) return;
    expect(Object.keys(parsed.headers).sort()).toEqual([1, 2, 3, 4].map((n) => `model-0000${n}-of-00004.safetensors`));
    const tensors = Object.values(parsed.headers).flatMap((header) => Object.keys(header).filter((k) => k !== "__metadata__"));
    // embed + 32 layers x 9 + norm + lm_head, every name of a real Llama 3 8B checkpoint.
    expect(tensors).toHaveLength(1 + 32 * 9 + 2);
    expect(tensors).toContain("model.layers.31.mlp.down_proj.weight");
    expect(tensors).toContain("lm_head.weight");
    for (const header of Object.values(parsed.headers)) expect(header.__metadata__).toEqual({ format: "pt" });
    const indexText = await (await downloadFile({ repo: OPEN_REPO_ID, path: "model.safetensors.index.json", hubUrl: world.hubUrl }))?.text();
    const totalSize = (JSON.parse(indexText ?? "{}") as { metadata: { total_size: number } }).metadata.total_size;
    expect(parsed.parameterCount).toEqual({ BF16: totalSize / 2 });
  });
});

// ---------------------------------------------------------------- resolve, CDN, log

describe("resolve and the CDN origin", () => {
  it("redirects LFS files with X-Linked-Etag, X-Linked-Size and X-Repo-Commit", async () => {
    const response = await fetch(`${world.hubUrl}/${GATED_REPO_ID}/resolve/main/${SHARD1}`, {
      method: "HEAD",
      redirect: "manual",
      headers: auth(GRANTED_TOKEN),
    });
    const file = fileOf(GATED_REPO_ID, SHARD1);
    expect(response.status).toBe(302);
    expect(response.headers.get("x-linked-etag")).toBe(`"${file.sha256}"`);
    expect(response.headers.get("x-linked-size")).toBe(String(file.size));
    expect(response.headers.get("x-repo-commit")).toBe(manifest(GATED_REPO_ID).commits[0].sha);
    const location = new URL(response.headers.get("location") ?? "");
    expect(location.origin).toBe(world.cdnUrl);
    expect(location.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(response.headers.get("x-request-id")).toMatch(/^Root=1-/);
  });

  it("serves regular files with the git sha1 as ETag, by branch or by commit, percent-decoded", async () => {
    const commit = manifest(OPEN_REPO_ID).commits[0].sha;
    const response = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/${commit}/%63onfig.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBe(`"${gitSha1(Buffer.from(CONFIG_JSON))}"`);
    expect(response.headers.get("x-repo-commit")).toBe(commit);
    expect(await response.text()).toBe(CONFIG_JSON);
  });

  it("serves exact byte ranges (206) and refuses unsatisfiable ones (416)", async () => {
    const file = fileOf(OPEN_REPO_ID, SHARD1);
    const bytes = await blobBytes(OPEN_REPO_ID, file.sha256);
    const location = await cdnLocation(OPEN_REPO_ID, SHARD1);

    const middle = await fetch(location, { headers: { Range: "bytes=1000-1999" } });
    expect(middle.status).toBe(206);
    expect(middle.headers.get("content-range")).toBe(`bytes 1000-1999/${file.size}`);
    expect(middle.headers.get("accept-ranges")).toBe("bytes");
    expect(Buffer.from(await middle.arrayBuffer()).equals(bytes.subarray(1000, 2000))).toBe(true);

    const tail = await fetch(location, { headers: { Range: `bytes=${file.size - 10}-` } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(file.size - 10))).toBe(true);

    const beyond = await fetch(location, { headers: { Range: `bytes=${file.size}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${file.size}`);
    await beyond.arrayBuffer();

    const full = await fetch(location);
    expect(full.status).toBe(200);
    expect(full.headers.get("content-length")).toBe(String(file.size));
    expect(full.headers.get("etag")).toBe(`"${file.sha256}"`);
    expect(sha256(new Uint8Array(await full.arrayBuffer()))).toBe(file.sha256);
  });

  it("refuses CDN URLs whose signature was tampered with, and needs no Authorization", async () => {
    const location = new URL(await cdnLocation(OPEN_REPO_ID, SHARD1));
    location.searchParams.set("X-Amz-Expires", "999999");
    const tampered = await fetch(location);
    expect(tampered.status).toBe(403);
    await tampered.arrayBuffer();
    const unsigned = await fetch(location.origin + location.pathname);
    expect(unsigned.status).toBe(403);
    await unsigned.arrayBuffer();
  });

  it("logs whether Authorization reached the CDN, and never the token or the query", async () => {
    // A fetch that follows the redirect drops the token at the origin change (undici).
    const followed = await fetch(`${world.hubUrl}/${GATED_REPO_ID}/resolve/main/${SHARD1}`, { headers: auth(GRANTED_TOKEN) });
    expect(followed.status).toBe(200);
    await followed.arrayBuffer();
    const cdnEntry = await logEntry(followed.headers.get("x-request-id"));
    expect(cdnEntry).toMatchObject({ origin: "cdn", authorization: false, file: SHARD1, status: 200 });

    // A client that sends the token to the CDN itself is caught by the log.
    const location = await cdnLocation(GATED_REPO_ID, SHARD1, GRANTED_TOKEN);
    const leaky = await fetch(location, { headers: { ...auth(GRANTED_TOKEN), Range: "bytes=0-7" } });
    await leaky.arrayBuffer();
    expect(await logEntry(leaky.headers.get("x-request-id"))).toMatchObject({ origin: "cdn", authorization: true, range: "bytes=0-7", userAgent: "node" });

    const text = await readFile(world.requestLog, "utf8");
    expect(text).not.toContain(GRANTED_TOKEN);
    expect(text).not.toContain(DENIED_TOKEN);
    expect(text).not.toContain("X-Amz-Signature");
  });

  it("records that @huggingface/hub 2.17.5 sends the token to a CloudFront-like CDN", async () => {
    // fileDownloadInfo keeps the CDN URL when the answer has `X-Cache: ... cloudfront`, and WebBlob
    // then adds Authorization to it. The product must not download through this path.
    const mark = (await logEntries()).length;
    const blob = await downloadFile({ repo: GATED_REPO_ID, path: SHARD1, hubUrl: world.hubUrl, accessToken: GRANTED_TOKEN });
    await blob?.arrayBuffer();
    const cdn = (await entriesSince(mark, (e) => e.filter((x) => x.origin === "cdn").length >= 2)).filter((e) => e.origin === "cdn");
    expect(cdn.length).toBeGreaterThanOrEqual(2);
    expect(cdn[0]?.authorization).toBe(false); // the probe, after undici's redirect
    expect(cdn.slice(1).every((e) => e.authorization)).toBe(true); // the body, fetched directly
  });
});

// ---------------------------------------------------------------- recorder

describe("the invocation recorder", () => {
  it("appends valid invocations and refuses malformed ones", async () => {
    const invocation = { tool: "trtllm-build", argv: ["--checkpoint_dir", "/ckpt"], cwd: "/work", time: new Date().toISOString() };
    const posted = await fetch(`${world.recorderUrl}/invocations`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(invocation),
    });
    expect(posted.status).toBe(201);
    const bad = await fetch(`${world.recorderUrl}/invocations`, { method: "POST", body: JSON.stringify({ tool: "x", argv: "not-a-list" }) });
    expect(bad.status).toBe(400);

    const lines = (await readFile(world.invocationsLog, "utf8")).trim().split("\n");
    expect(JSON.parse(lines[lines.length - 1] ?? "")).toEqual(invocation);
    const listed = (await (await fetch(`${world.recorderUrl}/invocations`)).json()) as unknown[];
    expect(listed).toHaveLength(lines.length);
    expect(listed[listed.length - 1]).toEqual(invocation);
  });
});

// ---------------------------------------------------------------- scenario knobs

describe("scenario knobs", () => {
  it("cuts the body after N bytes for the next K requests, then serves normally", async () => {
    expect((await setScenario({ rules: [{ match: "*.safetensors", origin: "cdn", cutAfterBytes: 1000, times: 1 }] })).status).toBe(200);
    const location = await cdnLocation(OPEN_REPO_ID, SHARD1);
    const cut = await fetch(location);
    expect(cut.headers.get("content-length")).toBe(String(fileOf(OPEN_REPO_ID, SHARD1).size));
    expect(await cut.arrayBuffer().then(() => "complete", () => "cut short")).toBe("cut short");
    expect(await logEntry(cut.headers.get("x-request-id"))).toMatchObject({ bytesSent: 1000, aborted: true, fault: "cutAfterBytes=1000" });

    const again = await fetch(location);
    expect(sha256(new Uint8Array(await again.arrayBuffer()))).toBe(fileOf(OPEN_REPO_ID, SHARD1).sha256);
  });

  it("ignores Range when asked: 200 with the full body", async () => {
    await setScenario({ rules: [{ origin: "cdn", ignoreRange: true }] });
    const response = await fetch(await cdnLocation(OPEN_REPO_ID, SHARD1), { headers: { Range: "bytes=100-" } });
    expect(response.status).toBe(200);
    expect(sha256(new Uint8Array(await response.arrayBuffer()))).toBe(fileOf(OPEN_REPO_ID, SHARD1).sha256);
  });

  it("serves wrong bytes with the right length: exactly one byte differs", async () => {
    await setScenario({ rules: [{ match: SHARD1, wrongBytes: true, times: 1 }] });
    const file = fileOf(OPEN_REPO_ID, SHARD1);
    const served = Buffer.from(await (await fetch(await cdnLocation(OPEN_REPO_ID, SHARD1))).arrayBuffer());
    const real = await blobBytes(OPEN_REPO_ID, file.sha256);
    expect(served.length).toBe(file.size);
    expect(served.reduce((diffs, byte, i) => diffs + (byte === real[i] ? 0 : 1), 0)).toBe(1);
  });

  it("serves a body longer or shorter than the listing says, with consistent Content-Length and Range", async () => {
    await setScenario({ rules: [{ match: SHARD1, origin: "cdn", sizeDelta: 10 }, { match: "config.json", sizeDelta: -4 }] });
    const shard = fileOf(OPEN_REPO_ID, SHARD1);
    const real = await blobBytes(OPEN_REPO_ID, shard.sha256);
    // The Hub still reports the real size.
    const redirect = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/${SHARD1}`, { method: "HEAD", redirect: "manual" });
    expect(redirect.headers.get("x-linked-size")).toBe(String(shard.size));
    const location = await cdnLocation(OPEN_REPO_ID, SHARD1);

    const longer = await fetch(location);
    expect(longer.headers.get("content-length")).toBe(String(shard.size + 10));
    const longerBody = Buffer.from(await longer.arrayBuffer());
    expect(longerBody.length).toBe(shard.size + 10);
    expect(longerBody.subarray(0, shard.size).equals(real)).toBe(true);
    expect(longerBody.subarray(shard.size).equals(Buffer.alloc(10))).toBe(true);
    expect(await logEntry(longer.headers.get("x-request-id"))).toMatchObject({ bytesSent: shard.size + 10, fault: "sizeDelta=10" });

    const tail = await fetch(location, { headers: { Range: `bytes=${shard.size}-` } });
    expect(tail.status).toBe(206);
    expect(tail.headers.get("content-range")).toBe(`bytes ${shard.size}-${shard.size + 9}/${shard.size + 10}`);
    expect(Buffer.from(await tail.arrayBuffer()).equals(Buffer.alloc(10))).toBe(true);

    const config = fileOf(OPEN_REPO_ID, "config.json");
    const url = `${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/config.json`;
    const shorter = await fetch(url);
    expect(shorter.headers.get("content-length")).toBe(String(config.size - 4));
    expect(await shorter.text()).toBe(CONFIG_JSON.slice(0, -4));
    const end = await fetch(url, { headers: { Range: `bytes=${config.size - 10}-` } });
    expect(end.headers.get("content-range")).toBe(`bytes ${config.size - 10}-${config.size - 5}/${config.size - 4}`);
    expect(await end.text()).toBe(CONFIG_JSON.slice(config.size - 10, -4));
    const beyond = await fetch(url, { headers: { Range: `bytes=${config.size - 4}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${config.size - 4}`);
    await beyond.arrayBuffer();

    for (const sizeDelta of [0, 1.5, "10"]) {
      const refused = await setScenario({ rules: [{ sizeDelta }] });
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: string }).error).toContain("scenario.rules[0].sizeDelta: expected a non-zero whole number of bytes");
    }
  });

  it("sends a body without Content-Length (chunked) when asked, ranges and length changes included", async () => {
    await setScenario({ rules: [{ match: SHARD1, origin: "cdn", chunked: true, times: 2 }, { match: SHARD1, origin: "cdn", chunked: true, sizeDelta: 5 }] });
    const shard = fileOf(OPEN_REPO_ID, SHARD1);
    const location = await cdnLocation(OPEN_REPO_ID, SHARD1);
    const whole = await fetch(location);
    expect(whole.headers.get("content-length")).toBeNull();
    expect(whole.headers.get("transfer-encoding")).toBe("chunked");
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(shard.sha256);
    const part = await fetch(location, { headers: { Range: "bytes=10-19" } });
    expect([part.status, part.headers.get("content-range"), part.headers.get("content-length")]).toEqual([206, `bytes 10-19/${shard.size}`, null]);
    expect((await part.arrayBuffer()).byteLength).toBe(10);
    const longer = await fetch(location);
    expect(longer.headers.get("content-length")).toBeNull();
    expect((await longer.arrayBuffer()).byteLength).toBe(shard.size + 5);
  });

  it("plays status scripts: 503, 503, then OK; 429 with Retry-After", async () => {
    await setScenario({
      rules: [
        { match: "config.json", status: 503, times: 2 },
        { match: "generation_config.json", status: 429, retryAfterSeconds: 2, times: 1 },
      ],
    });
    const url = `${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/config.json`;
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(url).then(async (r) => (await r.arrayBuffer(), r))).status);
    expect(statuses).toEqual([503, 503, 200]);
    const limited = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/generation_config.json`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("2");
    const snapshot = (await (await fetch(`${world.hubUrl}/_world/scenario`)).json()) as { usesLeft: unknown[] };
    expect(snapshot.usesLeft).toEqual([0, 0]);
  });

  it("caps the rate in slow mode, so a client can stop a download half-way", async () => {
    await setScenario({ rules: [{ match: "tokenizer.json", bytesPerSecond: 40_000 }] });
    const file = fileOf(OPEN_REPO_ID, "tokenizer.json");
    const controller = new AbortController();
    const response = await fetch(await cdnLocation(OPEN_REPO_ID, "tokenizer.json"), { signal: controller.signal });
    const started = Date.now();
    const reader = response.body?.getReader();
    let received = 0;
    while (received < file.size / 2) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      received += chunk.value.length;
    }
    // Half of ~59 KB at 40 KB/s takes most of a second.
    expect(Date.now() - started).toBeGreaterThan(400);
    controller.abort();
    const entry = await logEntry(response.headers.get("x-request-id"));
    expect(entry.aborted).toBe(true);
    expect(entry.bytesSent).toBeLessThan(file.size);
  });

  it("moves main to the second commit: one shard changed, USE_POLICY.md added, old commit kept", async () => {
    const [first, second] = manifest(OPEN_REPO_ID).commits;
    // Before the move, the second commit does not exist yet.
    expect((await thrown(modelInfo({ name: OPEN_REPO_ID, revision: second.sha, hubUrl: world.hubUrl }))).statusCode).toBe(404);

    await setScenario({ mainMoved: true });
    const info = await modelInfo({ name: OPEN_REPO_ID, hubUrl: world.hubUrl, additionalFields: ["sha"] });
    expect(info.sha).toBe(second.sha);
    const moved = new Map<string, ListFileEntry>();
    for await (const e of listFiles({ repo: OPEN_REPO_ID, recursive: true, hubUrl: world.hubUrl })) moved.set(e.path, e);
    const before = new Map(first.files.map((f) => [f.path, f]));
    const changed = [...moved.values()].filter((e) => e.type === "file" && before.get(e.path)?.gitOid !== e.oid).map((e) => e.path);
    expect(changed.sort()).toEqual(["USE_POLICY.md", SHARD4]);
    expect(moved.get(SHARD4)?.lfs?.oid).not.toBe(before.get(SHARD4)?.sha256);

    const old = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/${first.sha}/${SHARD4}`, { method: "HEAD", redirect: "manual" });
    expect(old.headers.get("x-linked-etag")).toBe(`"${before.get(SHARD4)?.sha256}"`);
  });

  it("injects hostile entries and a hostile commit sha; awkward legal names are downloadable", async () => {
    await setScenario({
      extraEntries: [
        { path: "../../x", lfs: { oid: "../../x", size: 10 } },
        { path: "folder/../../../etc/passwd", content: "root:x:0:0" },
        { path: "weird but valid/name.txt", content: "weird" },
        { path: "q?.txt", content: "question" },
        { path: "é.txt", content: "accent" },
      ],
      commitSha: "../x",
    });
    const paths: ListFileEntry[] = [];
    for await (const e of listFiles({ repo: OPEN_REPO_ID, recursive: true, hubUrl: world.hubUrl })) paths.push(e);
    expect(paths.find((e) => e.path === "../../x")?.lfs?.oid).toBe("../../x");
    expect(paths.map((e) => e.path)).toContain("folder/../../../etc/passwd");
    expect(paths.map((e) => e.path)).toContain("weird but valid");
    expect((await modelInfo({ name: OPEN_REPO_ID, hubUrl: world.hubUrl, additionalFields: ["sha"] })).sha).toBe("../x");

    const encoded = (p: string) => p.split("/").map(encodeURIComponent).join("/");
    for (const [path, content] of [["weird but valid/name.txt", "weird"], ["q?.txt", "question"], ["é.txt", "accent"]] as const) {
      const response = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/${encoded(path)}`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(content);
      expect(response.headers.get("x-repo-commit")).toBe("../x");
    }
    // Unencoded, `?` starts the query: the server sees `q`, which does not exist.
    const unencoded = await fetch(`${world.hubUrl}/${OPEN_REPO_ID}/resolve/main/q?.txt`);
    expect(unencoded.status).toBe(404);
    expect(unencoded.headers.get("x-error-code")).toBe("EntryNotFound");
  });

  it("refuses a scenario with an unknown knob instead of ignoring it", async () => {
    const response = await setScenario({ rules: [{ match: "*", cutAfterByte: 10 }] });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toContain('unknown key "cutAfterByte"');
    const reset = await fetch(`${world.hubUrl}/_world/scenario`, { method: "DELETE" });
    expect(((await reset.json()) as { rules: unknown[] }).rules).toEqual([]);
  });
});

// ---------------------------------------------------------------- fixture and CLI

describe("the repo fixture and the CLI entry", () => {
  it("is deterministic, and bytesPerShard grows the shards while keeping them valid", async () => {
    const dir = await mkdtemp(join(tmpdir(), "world-fixture-test-"));
    try {
      const spec = WORLD_REPOS.find((r) => r.id === OPEN_REPO_ID);
      if (!spec) throw new Error("open repo spec missing");
      const again = await materialiseRepo(join(dir, "same"), spec);
      expect(again.manifest.commits.map((c) => c.sha)).toEqual(manifest(OPEN_REPO_ID).commits.map((c) => c.sha));

      const big = await materialiseRepo(join(dir, "big"), spec, { bytesPerShard: 3_000_000 });
      const shards = big.manifest.commits[0].files.filter((f) => f.path.endsWith(".safetensors"));
      expect(shards).toHaveLength(4);
      for (const shard of shards) {
        expect(shard.size).toBeLessThanOrEqual(3_000_000);
        expect(shard.size).toBeGreaterThan(2_900_000);
        const bytes = await readFile(blobPath(big.dir, shard.sha256));
        const headerLength = Number(bytes.readBigUInt64LE(0));
        const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { data_offsets?: [number, number] }>;
        const end = Math.max(...Object.values(header).map((t) => t.data_offsets?.[1] ?? 0));
        expect(8 + headerLength + end).toBe(bytes.length); // data section fully covered, nothing after
      }
      expect(big.manifest.commits[0].sha).not.toBe(manifest(OPEN_REPO_ID).commits[0].sha);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("main.ts prints a ready line, writes server.json and stops cleanly on SIGTERM", async () => {
    const dir = await mkdtemp(join(tmpdir(), "world-main-test-"));
    try {
      const child = spawn(
        process.execPath,
        [fileURLToPath(new URL("../../world/server/main.ts", import.meta.url)), "--state-dir", dir, "--hub-port", "0", "--cdn-port", "0", "--recorder-host", "127.0.0.1", "--recorder-port", "0"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString("utf8");
          if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
        });
        child.once("exit", (code) => reject(new Error(`exited ${code} before ready`)));
      });
      const ready = JSON.parse(line) as { ready: boolean; pid: number; hubUrl: string };
      expect(ready).toMatchObject({ ready: true, pid: child.pid });
      expect(JSON.parse(await readFile(join(dir, "server.json"), "utf8"))).toEqual(ready);
      expect((await fetch(`${ready.hubUrl}/api/whoami-v2`, { headers: auth(GRANTED_TOKEN) })).status).toBe(200);

      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      await expect(readFile(join(dir, "server.json"), "utf8")).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

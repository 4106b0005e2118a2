/**
 * The Hub API stand-in: what @huggingface/hub 2.17.5 and huggingface_hub call.
 *
 *   GET  /api/whoami-v2
 *   GET  /api/models/{org}/{name}[/revision/{rev}]     model info (?expand=... picks fields)
 *   GET  /api/models/{org}/{name}/tree/{rev}[/{path}]  ?recursive=&expand=&cursor=, Link rel="next"
 *   POST /api/models/{org}/{name}/paths-info/{rev}     JSON or form `paths`, `expand`
 *   GET  /api/models/{org}/{name}/auth-check
 *   GET|HEAD /{org}/{name}/resolve/{rev}/{path}        regular: 200/206; LFS: 302 to the CDN
 *   GET|HEAD /{org}/{name}/raw/{rev}/{path}            the git content (LFS pointer for LFS files)
 *   GET|POST|DELETE /_world/scenario, GET /_world/repos   test controls (see scenario.ts)
 *
 * Access follows the real Hub: an invalid token is refused everywhere (401); an unknown repo is
 * 404 with a token but 401 without one (the Hub does not reveal whether a private repo exists;
 * huggingface/datasets#4472); a gated repo answers model info to anyone but its files, tree,
 * paths-info and auth-check only to approved users (401 without a token, 403 otherwise).
 */
import { readFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { CdnSigner } from "./cdn.ts";
import {
  BodyTooLargeError,
  bufferSource,
  contentDisposition,
  createLoggedServer,
  decodeSegments,
  fileSource,
  readBody,
  sendBody,
  sendHubError,
  sendJson,
  sendRuleStatus,
  serveBytes,
  type RequestContext,
} from "./http-util.ts";
import { directoryEntry, fileEntry, listEntries, modelInfoFields, repoView, whoamiBody, type RepoView } from "./hub-metadata.ts";
import { lfsPointer, type MaterialisedRepo, type RepoCommit, type RepoStore } from "./repo-fixture.ts";
import type { RequestLog } from "./request-log.ts";
import { ScenarioError, parseScenario, type ScenarioState } from "./scenario.ts";
import { credentialsFromHeader } from "./tokens.ts";

export interface HubDeps {
  readonly store: RepoStore;
  readonly scenario: ScenarioState;
  readonly signer: CdnSigner;
  readonly log: RequestLog;
  /** Base URL of the CDN origin, for LFS redirects. */
  readonly cdnUrl: string;
  /** Tree entries per page; small so that the fixture needs several pages. */
  readonly pageSize: number;
}

type Route =
  | { readonly kind: "world"; readonly action: string }
  | { readonly kind: "whoami" }
  | { readonly kind: "model-info"; readonly repoId: string; readonly revision: string }
  | { readonly kind: "tree"; readonly repoId: string; readonly revision: string; readonly path: string }
  | { readonly kind: "paths-info"; readonly repoId: string; readonly revision: string }
  | { readonly kind: "auth-check"; readonly repoId: string }
  | { readonly kind: "file"; readonly repoId: string; readonly revision: string; readonly path: string; readonly raw: boolean }
  | { readonly kind: "unknown" };

const METHODS: Record<Route["kind"], readonly string[]> = {
  world: ["GET", "POST", "DELETE"],
  whoami: ["GET"],
  "model-info": ["GET"],
  tree: ["GET"],
  "paths-info": ["POST"],
  "auth-check": ["GET"],
  file: ["GET", "HEAD"],
  unknown: [],
};

function route(segments: readonly string[]): Route {
  const [first, second, org, name, action, revision, ...rest] = segments;
  if (first === "_world" && second !== undefined && segments.length === 2) return { kind: "world", action: second };
  if (first === "api" && second === "whoami-v2" && segments.length === 2) return { kind: "whoami" };
  if (first === "api" && second === "models" && org && name) {
    const repoId = `${org}/${name}`;
    if (action === undefined) return { kind: "model-info", repoId, revision: "main" };
    if (action === "revision" && revision && rest.length === 0) return { kind: "model-info", repoId, revision };
    if (action === "tree" && revision) return { kind: "tree", repoId, revision, path: rest.join("/") };
    if (action === "paths-info" && revision && rest.length === 0) return { kind: "paths-info", repoId, revision };
    if (action === "auth-check" && revision === undefined) return { kind: "auth-check", repoId };
    return { kind: "unknown" };
  }
  // File routes have no `/api/models` prefix: /{org}/{name}/{resolve|raw}/{rev}/{path...}
  const [repoOrg, repoName, kind, rev, ...path] = segments;
  if (repoOrg && repoOrg !== "api" && repoName && (kind === "resolve" || kind === "raw") && rev && path.length > 0) {
    return { kind: "file", repoId: `${repoOrg}/${repoName}`, revision: rev, path: path.join("/"), raw: kind === "raw" };
  }
  return { kind: "unknown" };
}

export function createHubServer(deps: HubDeps): Server {
  return createLoggedServer("hub", deps.log, async (ctx) => {
    const segments = decodeSegments(ctx.rawPath);
    if (!segments) return sendHubError(ctx, 400, "Invalid percent-encoding in the URL path");
    const r = route(segments);
    if (r.kind === "unknown") return sendHubError(ctx, 404, "Not Found");
    if (!METHODS[r.kind].includes(ctx.req.method ?? "")) {
      return sendHubError(ctx, 405, `Method ${ctx.req.method ?? ""} not allowed`, undefined, { Allow: METHODS[r.kind].join(", ") });
    }
    if (r.kind === "world") return handleWorld(deps, ctx, r.action);

    if (r.kind === "file") ctx.file = r.path;
    // Injected statuses come first, as from an overloaded front end: before auth and routing.
    const statusRule = deps.scenario.takeStatus({ origin: "hub", path: ctx.rawPath, file: ctx.file });
    if (statusRule) return sendRuleStatus(ctx, statusRule);

    switch (r.kind) {
      case "whoami":
        return handleWhoami(ctx);
      case "model-info":
        return handleModelInfo(deps, ctx, r.repoId, r.revision);
      case "tree":
        return handleTree(deps, ctx, r.repoId, r.revision, r.path);
      case "paths-info":
        return handlePathsInfo(deps, ctx, r.repoId, r.revision);
      case "auth-check":
        if (checkAccess(deps, ctx, r.repoId, true)) sendJson(ctx, 200, {});
        return;
      case "file":
        return handleFile(deps, ctx, r.repoId, r.revision, r.path, r.raw);
    }
  });
}

/** The repo when the caller may see it (`content`: files, not just model info); else answers the error. */
function checkAccess(deps: HubDeps, ctx: RequestContext, repoId: string, content: boolean): MaterialisedRepo | null {
  const credentials = credentialsFromHeader(ctx.req.headers.authorization);
  if (credentials.kind === "invalid") {
    sendHubError(ctx, 401, "Invalid credentials in Authorization header");
    return null;
  }
  const repo = deps.store.repo(repoId);
  if (!repo) {
    sendHubError(ctx, credentials.kind === "none" ? 401 : 404, "Repository not found", "RepoNotFound");
    return null;
  }
  if (content && repo.manifest.gated !== false) {
    if (credentials.kind === "none") {
      sendHubError(
        ctx,
        401,
        `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        "GatedRepo",
      );
      return null;
    }
    if (!credentials.user.gatedAccess) {
      sendHubError(
        ctx,
        403,
        `Access to model ${repoId} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repoId} to ask for access.`,
        "GatedRepo",
      );
      return null;
    }
  }
  return repo;
}

/** `main`/`HEAD` follow the scenario; a 40-hex id must name a commit that exists by now. */
function resolveRevision(deps: HubDeps, ctx: RequestContext, repo: MaterialisedRepo, revision: string): RepoCommit | null {
  const [initial, moved] = repo.manifest.commits;
  const mainMoved = deps.scenario.current.mainMoved;
  const found =
    revision === "main" || revision === "HEAD"
      ? mainMoved
        ? moved
        : initial
      : revision === initial.sha
        ? initial
        : revision === moved.sha && mainMoved
          ? moved
          : null;
  if (!found) sendHubError(ctx, 404, `Invalid rev id: ${revision}`, "RevisionNotFound");
  return found;
}

function reportedSha(deps: HubDeps, commit: RepoCommit): string {
  return deps.scenario.current.commitSha ?? commit.sha;
}

function viewOf(deps: HubDeps, repo: MaterialisedRepo, commit: RepoCommit): RepoView {
  return repoView(repo, commit, deps.scenario.current.extraEntries);
}

const truthy = (value: string | null | undefined) => value === "true" || value === "True" || value === "1";

function handleWhoami(ctx: RequestContext): void {
  const credentials = credentialsFromHeader(ctx.req.headers.authorization);
  // Unverified wording for the no-token case; the invalid-token one is the Hub's.
  if (credentials.kind === "none") return sendHubError(ctx, 401, "Invalid username or password.");
  if (credentials.kind === "invalid") return sendHubError(ctx, 401, "Invalid credentials in Authorization header");
  sendJson(ctx, 200, whoamiBody(credentials.user));
}

/** Parameter count for model info `safetensors`, from the commit's index (bf16: 2 bytes each). */
const parameterCache = new Map<string, number>();
async function parameterCount(deps: HubDeps, repo: MaterialisedRepo, commit: RepoCommit): Promise<number> {
  const cached = parameterCache.get(`${repo.dir}\0${commit.sha}`);
  if (cached !== undefined) return cached;
  const index = commit.files.find((f) => f.path === "model.safetensors.index.json");
  const blob = index && deps.store.blob(index.sha256, repo.manifest.id);
  const total = blob ? (JSON.parse(await readFile(blob.path, "utf8")) as { metadata: { total_size: number } }).metadata.total_size : 0;
  parameterCache.set(`${repo.dir}\0${commit.sha}`, total / 2);
  return total / 2;
}

async function handleModelInfo(deps: HubDeps, ctx: RequestContext, repoId: string, revision: string): Promise<void> {
  const repo = checkAccess(deps, ctx, repoId, false);
  if (!repo) return;
  const commit = resolveRevision(deps, ctx, repo, revision);
  if (!commit) return;
  const fields = modelInfoFields(repo, commit, viewOf(deps, repo, commit), reportedSha(deps, commit), await parameterCount(deps, repo, commit));
  const expand = ctx.query.getAll("expand");
  if (expand.length === 0) return sendJson(ctx, 200, fields);
  // With expand, the Hub returns only the ids and the asked-for fields; unknown keys are a 400.
  const unknown = expand.filter((key) => !(key in fields) || key === "_id" || key === "id");
  if (unknown.length > 0) {
    return sendHubError(ctx, 400, `Invalid expand value(s): ${unknown.join(", ")}. Allowed: ${Object.keys(fields).filter((k) => k !== "_id" && k !== "id").join(", ")}`);
  }
  sendJson(ctx, 200, { _id: fields._id, id: fields.id, ...Object.fromEntries(expand.map((key) => [key, fields[key]])) });
}

/** Opaque to clients; here just the offset of the next page. */
function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ offset }), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): number | null {
  try {
    const { offset } = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { offset?: unknown };
    return typeof offset === "number" && Number.isInteger(offset) && offset >= 0 ? offset : null;
  } catch {
    return null;
  }
}

async function handleTree(deps: HubDeps, ctx: RequestContext, repoId: string, revision: string, path: string): Promise<void> {
  const repo = checkAccess(deps, ctx, repoId, true);
  if (!repo) return;
  const commit = resolveRevision(deps, ctx, repo, revision);
  if (!commit) return;
  const view = viewOf(deps, repo, commit);
  const dir = path.replace(/\/+$/, "");
  if (dir !== "" && !view.dirs.has(dir)) return sendHubError(ctx, 404, "Entry not found", "EntryNotFound");

  const entries = listEntries(view, dir, truthy(ctx.query.get("recursive")), truthy(ctx.query.get("expand")));
  const cursor = ctx.query.get("cursor");
  const offset = cursor === null ? 0 : decodeCursor(cursor);
  if (offset === null) return sendHubError(ctx, 400, "Invalid cursor");
  const page = entries.slice(offset, offset + deps.pageSize);
  const headers: Record<string, string> = {};
  if (offset + deps.pageSize < entries.length) {
    const next = new URLSearchParams(ctx.query);
    next.set("cursor", encodeCursor(offset + deps.pageSize));
    headers.Link = `<http://${ctx.req.headers.host ?? "127.0.0.1"}${ctx.rawPath}?${next.toString()}>; rel="next"`;
  }
  sendJson(ctx, 200, page, headers);
}

/** JSON (`{"paths": [...], "expand": true}`, @huggingface/hub) or a form (huggingface_hub). */
async function readPathsInfoBody(ctx: RequestContext): Promise<{ paths: string[]; expand: boolean } | string> {
  const body = (await readBody(ctx.req)).toString("utf8");
  if ((ctx.req.headers["content-type"] ?? "").includes("application/json")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return "Invalid JSON body";
    }
    const { paths, expand } = (parsed ?? {}) as { paths?: unknown; expand?: unknown };
    const list = typeof paths === "string" ? [paths] : paths;
    if (!Array.isArray(list) || !list.every((p): p is string => typeof p === "string")) return '"paths" must be a list of strings';
    return { paths: list, expand: expand === true || truthy(typeof expand === "string" ? expand : undefined) };
  }
  const form = new URLSearchParams(body);
  if (!form.has("paths")) return '"paths" is required';
  return { paths: form.getAll("paths"), expand: truthy(form.get("expand")) };
}

async function handlePathsInfo(deps: HubDeps, ctx: RequestContext, repoId: string, revision: string): Promise<void> {
  const repo = checkAccess(deps, ctx, repoId, true);
  if (!repo) return;
  const commit = resolveRevision(deps, ctx, repo, revision);
  if (!commit) return;
  let request: Awaited<ReturnType<typeof readPathsInfoBody>>;
  try {
    request = await readPathsInfoBody(ctx);
  } catch (error) {
    if (error instanceof BodyTooLargeError) return sendHubError(ctx, 413, error.message);
    throw error;
  }
  if (typeof request === "string") return sendHubError(ctx, 400, request);
  const view = viewOf(deps, repo, commit);
  // Like the Hub, paths that do not exist are left out rather than reported.
  const entries = request.paths.flatMap((path) => {
    const file = view.files.get(path);
    if (file) return [fileEntry(file, request.expand)];
    return view.dirs.has(path) ? [directoryEntry(view, path)] : [];
  });
  sendJson(ctx, 200, entries);
}

async function handleFile(deps: HubDeps, ctx: RequestContext, repoId: string, revision: string, path: string, raw: boolean): Promise<void> {
  const repo = checkAccess(deps, ctx, repoId, true);
  if (!repo) return;
  const commit = resolveRevision(deps, ctx, repo, revision);
  if (!commit) return;
  const commitHeader = { "X-Repo-Commit": reportedSha(deps, commit) };
  const file = viewOf(deps, repo, commit).files.get(path);
  const blob = file?.body.kind === "blob" ? deps.store.blob(file.body.sha256, repo.manifest.id) : undefined;
  if (!file || file.body.kind === "none" || (file.body.kind === "blob" && !blob)) {
    return sendHubError(ctx, 404, "Entry not found", "EntryNotFound", commitHeader);
  }
  const facts = { origin: "hub" as const, path: ctx.rawPath, file: path };
  const textHeaders = { ...commitHeader, "Content-Type": "text/plain; charset=utf-8", "Content-Disposition": contentDisposition(path) };

  if (file.lfs && blob) {
    if (raw) {
      // git stores the pointer, so `raw` serves the pointer (what `pointerSize` measures).
      const pointer = Buffer.from(lfsPointer(file.lfs.oid, file.lfs.size), "utf8");
      return serveBytes(ctx, deps.scenario, facts, bufferSource(pointer), `"${file.gitOid}"`, textHeaders);
    }
    // The metadata a downloader needs travels on the redirect itself (X-Linked-*, X-Repo-Commit):
    // the CDN answer does not carry it (huggingface/hf-hub#212).
    const location = deps.signer.signedUrl(deps.cdnUrl, repoId, blob.file);
    return sendBody(ctx, 302, Buffer.from(`Found. Redirecting to ${location}`, "utf8"), {
      ...commitHeader,
      Location: location,
      "Content-Type": "text/plain; charset=utf-8",
      "X-Linked-Etag": `"${file.lfs.oid}"`,
      "X-Linked-Size": String(file.lfs.size),
      ETag: `"${file.lfs.oid}"`,
      "Accept-Ranges": "bytes",
    });
  }
  const source = file.body.kind === "bytes" ? bufferSource(file.body.bytes) : blob ? fileSource(blob.path, file.size) : undefined;
  if (!source) return sendHubError(ctx, 404, "Entry not found", "EntryNotFound", commitHeader);
  await serveBytes(ctx, deps.scenario, facts, source, `"${file.gitOid}"`, textHeaders);
}

async function handleWorld(deps: HubDeps, ctx: RequestContext, action: string): Promise<void> {
  if (action === "repos" && ctx.req.method === "GET") {
    return sendJson(ctx, 200, deps.store.repoIds().map((id) => deps.store.repo(id)?.manifest));
  }
  if (action !== "scenario") return sendHubError(ctx, 404, "Not Found");
  if (ctx.req.method === "DELETE") deps.scenario.reset();
  if (ctx.req.method === "POST") {
    try {
      deps.scenario.set(parseScenario(JSON.parse((await readBody(ctx.req)).toString("utf8"))));
    } catch (error) {
      if (error instanceof ScenarioError || error instanceof SyntaxError || error instanceof BodyTooLargeError) {
        return sendJson(ctx, 400, { error: error.message });
      }
      throw error;
    }
  }
  sendJson(ctx, 200, deps.scenario.snapshot());
}

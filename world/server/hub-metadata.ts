/**
 * The JSON bodies of the Hub API: model info, tree / paths-info entries and whoami, shaped like
 * the fields @huggingface/hub 2.17.5 reads (types/api/api-model.ts, api-index-tree.ts,
 * api-who-am-i.ts) and huggingface_hub's dataclasses expect.
 */
import { createHash } from "node:crypto";
import { gitBlobSha1, type LfsInfo, type MaterialisedRepo, type RepoCommit } from "./repo-fixture.ts";
import type { ExtraEntry } from "./scenario.ts";
import type { WorldUser } from "./tokens.ts";
import { BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN } from "./llama3-files.ts";

/** A file as a client sees it at one commit: a fixture file, or an entry injected by the scenario. */
export interface VisibleFile {
  readonly path: string;
  readonly size: number;
  readonly gitOid: string;
  readonly lfs?: LfsInfo;
  readonly lastCommit?: RepoCommit;
  /** What resolve serves: a fixture blob (by sha256), literal bytes, or nothing (listing-only). */
  readonly body: { readonly kind: "blob"; readonly sha256: string } | { readonly kind: "bytes"; readonly bytes: Buffer } | { readonly kind: "none" };
}

export interface RepoView {
  readonly files: ReadonlyMap<string, VisibleFile>;
  readonly dirs: ReadonlySet<string>;
}

function parentDirs(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

export function repoView(repo: MaterialisedRepo, commit: RepoCommit, extras: readonly ExtraEntry[]): RepoView {
  const commitsBySha = new Map(repo.manifest.commits.map((c) => [c.sha, c]));
  const files = new Map<string, VisibleFile>();
  const dirs = new Set<string>();
  for (const file of commit.files) {
    files.set(file.path, {
      path: file.path,
      size: file.size,
      gitOid: file.gitOid,
      ...(file.lfs && { lfs: file.lfs }),
      lastCommit: commitsBySha.get(file.lastCommit),
      body: { kind: "blob", sha256: file.sha256 },
    });
    parentDirs(file.path).forEach((dir) => dirs.add(dir));
  }
  for (const extra of extras) {
    if (extra.type === "directory") {
      dirs.add(extra.path);
      continue;
    }
    const bytes = extra.content !== undefined ? Buffer.from(extra.content, "utf8") : undefined;
    const lfs = extra.lfs && { oid: extra.lfs.oid, size: extra.lfs.size, pointerSize: extra.lfs.pointerSize ?? 134 };
    files.set(extra.path, {
      path: extra.path,
      size: extra.size ?? lfs?.size ?? bytes?.length ?? 0,
      gitOid: extra.oid ?? gitBlobSha1(bytes ?? Buffer.alloc(0)),
      ...(lfs && { lfs }),
      lastCommit: commit,
      body: bytes && !lfs ? { kind: "bytes", bytes } : { kind: "none" },
    });
    // Awkward but legal paths get their folders listed; hostile ones (`..`, empty segments) are
    // injected exactly as given, without inventing `..` directories.
    const segments = extra.path.split("/");
    if (segments.every((s) => s !== "" && s !== "." && s !== "..")) parentDirs(extra.path).forEach((dir) => dirs.add(dir));
  }
  return { files, dirs };
}

/** A stable stand-in for a git tree id: sha1 over what the directory holds. */
function treeOid(view: RepoView, dir: string): string {
  const hash = createHash("sha1").update(`tree\0${dir}\0`);
  for (const file of view.files.values()) if (file.path.startsWith(`${dir}/`)) hash.update(`${file.path}\0${file.gitOid}\n`);
  return hash.digest("hex");
}

export function directoryEntry(view: RepoView, dir: string): Record<string, unknown> {
  return { type: "directory", oid: treeOid(view, dir), size: 0, path: dir };
}

export function fileEntry(file: VisibleFile, expand: boolean): Record<string, unknown> {
  return {
    type: "file",
    oid: file.gitOid,
    size: file.size,
    path: file.path,
    ...(file.lfs && { lfs: { oid: file.lfs.oid, size: file.lfs.size, pointerSize: file.lfs.pointerSize } }),
    ...(expand && {
      lastCommit: file.lastCommit && { id: file.lastCommit.sha, title: file.lastCommit.title, date: file.lastCommit.date },
      securityFileStatus: { status: "safe" },
    }),
  };
}

/** Entries under `dir` ("" = root), directories included, sorted by path. */
export function listEntries(view: RepoView, dir: string, recursive: boolean, expand: boolean): Array<Record<string, unknown>> {
  const inside = (path: string) => {
    if (dir !== "" && !path.startsWith(`${dir}/`)) return false;
    const rest = dir === "" ? path : path.slice(dir.length + 1);
    return recursive || !rest.includes("/");
  };
  const entries: Array<{ path: string; json: Record<string, unknown> }> = [];
  for (const d of view.dirs) if (inside(d)) entries.push({ path: d, json: directoryEntry(view, d) });
  for (const f of view.files.values()) if (inside(f.path)) entries.push({ path: f.path, json: fileEntry(f, expand) });
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((e) => e.json);
}

/** A stable 24-hex Mongo-like id, as the Hub's `_id` fields look. */
function objectId(seed: string): string {
  return createHash("sha1").update(seed).digest("hex").slice(0, 24);
}

/** Every field the Hub can return for a model; `expand=` picks among these keys. */
export function modelInfoFields(
  repo: MaterialisedRepo,
  commit: RepoCommit,
  view: RepoView,
  reportedSha: string,
  parameters: number,
): Record<string, unknown> {
  const { id, gated } = repo.manifest;
  const tags = ["transformers", "safetensors", "llama", "text-generation", "facebook", "meta", "pytorch", "llama-3", "conversational", "en", "license:llama3", "text-generation-inference", "region:us"];
  return {
    _id: objectId(id),
    id,
    author: id.split("/")[0],
    sha: reportedSha,
    lastModified: commit.date,
    createdAt: "2024-04-17T09:35:12.000Z",
    private: false,
    gated,
    disabled: false,
    downloads: 1_234_567,
    downloadsAllTime: 9_876_543,
    likes: 3_210,
    library_name: "transformers",
    tags,
    pipeline_tag: "text-generation",
    "model-index": null,
    config: {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      tokenizer_config: { bos_token: BOS_TOKEN, chat_template: CHAT_TEMPLATE, eos_token: EOS_TOKEN },
    },
    cardData: { language: ["en"], license: "llama3", pipeline_tag: "text-generation", tags: ["facebook", "meta", "pytorch", "llama", "llama-3"] },
    transformersInfo: { auto_model: "AutoModelForCausalLM", pipeline_tag: "text-generation", processor: "AutoTokenizer" },
    safetensors: { parameters: { BF16: parameters }, total: parameters },
    spaces: [],
    gitalyUid: objectId(`gitaly\0${id}`),
    inferenceProviderMapping: [],
    siblings: [...view.files.keys()].sort().map((rfilename) => ({ rfilename })),
    usedStorage: [...view.files.values()].reduce((sum, f) => sum + f.size, 0),
  };
}

/** `GET /api/whoami-v2` for a valid token. */
export function whoamiBody(user: WorldUser): Record<string, unknown> {
  return {
    type: "user",
    id: user.id,
    name: user.name,
    fullname: user.fullname,
    email: `${user.name}@world.invalid`,
    emailVerified: true,
    canPay: false,
    isPro: false,
    periodEnd: null,
    billingMode: "prepaid",
    avatarUrl: "/avatars/world.svg",
    orgs: [],
    auth: {
      type: "access_token",
      accessToken: { displayName: `${user.name}-read`, role: "read", createdAt: "2024-04-18T00:00:00.000Z" },
    },
  };
}

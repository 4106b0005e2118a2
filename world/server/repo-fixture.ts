/**
 * The world's model repositories: generated deterministically, written once under
 * `<stateDir>/repos/<org>--<name>/` (content-addressed `blobs/<sha256>` plus `manifest.json`) and
 * reused on the next start when the manifest still matches.
 *
 * Each repo has two commits. The first is what `main` points to; the second ("main moved")
 * changes `model-00004-of-00004.safetensors` (same tensors, new bytes: a new sha256) and adds
 * `USE_POLICY.md`. The scenario knob `mainMoved` switches `main` to it; until then the second
 * commit does not exist for clients.
 */
import { createHash, randomBytes } from "node:crypto";
import { open, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { globToRegExp } from "./glob.ts";
import {
  CONFIG_JSON,
  GENERATION_CONFIG_JSON,
  LLAMA31_CONFIG_JSON,
  LFS_PATTERNS,
  ORIGINAL_PARAMS_JSON,
  gitattributes,
  licenseText,
  originalTokenizerModel,
  readmeMd,
  specialTokensMapJson,
  tokenizerConfigJson,
  tokenizerJson,
  usePolicyMd,
} from "./llama3-files.ts";
import {
  SHARD_COUNT,
  llama3TensorSpecs,
  noiseChunks,
  padShard,
  planShards,
  safetensorsIndexJson,
  seedFrom,
  shardChunks,
  shardFileName,
  shardLayout,
  type ShardLayout,
} from "./safetensors.ts";

/** Bump when generated content changes, so old materialised repos are regenerated. */
export const FIXTURE_VERSION = 1;

export type Gated = false | "auto" | "manual";

export interface RepoSpec {
  /** `org/name`. */
  readonly id: string;
  readonly gated: Gated;
  /** Its config.json, when not Meta-Llama-3-8B-Instruct's. */
  readonly config?: string;
}

export const GATED_REPO_ID = "meta-llama/Meta-Llama-3-8B-Instruct";
export const OPEN_REPO_ID = "world/tiny-llama3";
/** A Llama 3.1-shaped repository (rope_scaling "llama3"): the product must refuse it before its weights. */
export const LLAMA31_REPO_ID = "world/llama-3.1-shaped";

export const WORLD_REPOS: readonly RepoSpec[] = [
  { id: GATED_REPO_ID, gated: "manual" },
  { id: OPEN_REPO_ID, gated: false },
  { id: LLAMA31_REPO_ID, gated: false, config: LLAMA31_CONFIG_JSON },
];

export interface FixtureOptions {
  /** Target size of each safetensors shard in bytes; default: natural tiny size (~1 MB). */
  readonly bytesPerShard?: number;
}

export interface LfsInfo {
  /** sha256 of the content. */
  readonly oid: string;
  readonly size: number;
  /** Size of the git LFS pointer file that git actually stores. */
  readonly pointerSize: number;
}

export interface RepoFile {
  readonly path: string;
  readonly size: number;
  /** sha256 of the content: the blob's name on disk and on the CDN, whether LFS or not. */
  readonly sha256: string;
  /** Git blob sha1 of what git stores: the content, or the LFS pointer for LFS files. */
  readonly gitOid: string;
  readonly lfs?: LfsInfo;
  /** Commit that last changed this file (for `expand=true` listings). */
  readonly lastCommit: string;
}

export interface RepoCommit {
  readonly sha: string;
  readonly parent: string | null;
  readonly title: string;
  readonly date: string;
  /** Sorted by path. */
  readonly files: readonly RepoFile[];
}

export interface RepoManifest {
  readonly fixtureVersion: number;
  readonly id: string;
  readonly gated: Gated;
  readonly bytesPerShard: number | null;
  /** `[initial, mainMoved]`. */
  readonly commits: readonly [RepoCommit, RepoCommit];
}

export interface MaterialisedRepo {
  readonly dir: string;
  readonly manifest: RepoManifest;
}

export function repoDirName(repoId: string): string {
  return repoId.replace("/", "--");
}

export function blobPath(repoDir: string, sha256: string): string {
  return join(repoDir, "blobs", sha256);
}

const LFS_MATCHERS = LFS_PATTERNS.map(globToRegExp);

export function isLfsPath(path: string): boolean {
  const base = posix.basename(path);
  return LFS_MATCHERS.some((matcher) => matcher.test(base));
}

export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

/** Git's object id of a blob: sha1 over `blob <size>\0<content>`. */
export function gitBlobSha1(content: Uint8Array): string {
  return createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex");
}

/** Reads a materialised repo's manifest (for tests and tools that run outside the server). */
export async function readRepoManifest(stateDir: string, repoId: string): Promise<RepoManifest> {
  return JSON.parse(await readFile(join(stateDir, "repos", repoDirName(repoId), "manifest.json"), "utf8")) as RepoManifest;
}

/** A file to generate: its size is known up front because the git sha1 header needs it. */
interface FileSource {
  readonly path: string;
  readonly size: number;
  chunks(): Iterable<Uint8Array>;
}

function textSource(path: string, text: string): FileSource {
  const bytes = Buffer.from(text, "utf8");
  return { path, size: bytes.length, chunks: () => [bytes] };
}

/** All files of commit 1, and the two changes of commit 2, for one repo. */
function repoSources(spec: RepoSpec, options: FixtureOptions): { initial: FileSource[]; moved: FileSource[] } {
  const tensorsPerShard = planShards(llama3TensorSpecs(), SHARD_COUNT);
  const shards: Array<{ file: string; layout: ShardLayout }> = tensorsPerShard.map((tensors, index) => ({
    file: shardFileName(index),
    layout: options.bytesPerShard ? padShard(tensors, options.bytesPerShard) : shardLayout(tensors),
  }));
  const shardSource = (file: string, layout: ShardLayout, generation: number): FileSource => ({
    path: file,
    size: layout.size,
    chunks: () => shardChunks(layout, seedFrom(`${spec.id}\0${file}\0${generation}`)),
  });
  // Meta's original checkpoint is as big as the (unpadded) HF tensors together: a downloader that
  // fails to skip `original/` shows up as doubled bytes in the request log. It does not grow with
  // `bytesPerShard`, which is for download benchmarks of the shards.
  const originalSize = tensorsPerShard.reduce((sum, tensors) => sum + shardLayout(tensors).dataBytes, 0);
  const initial: FileSource[] = [
    textSource(".gitattributes", gitattributes()),
    textSource("LICENSE", licenseText()),
    textSource("README.md", readmeMd(spec.id, spec.gated !== false)),
    textSource("config.json", spec.config ?? CONFIG_JSON),
    textSource("generation_config.json", GENERATION_CONFIG_JSON),
    ...shards.map(({ file, layout }) => shardSource(file, layout, 1)),
    textSource("model.safetensors.index.json", safetensorsIndexJson(shards)),
    {
      path: "original/consolidated.00.pth",
      size: originalSize,
      chunks: () => noiseChunks(seedFrom(`${spec.id}\0original/consolidated.00.pth`), originalSize, false),
    },
    textSource("original/params.json", ORIGINAL_PARAMS_JSON),
    textSource("original/tokenizer.model", originalTokenizerModel()),
    textSource("special_tokens_map.json", specialTokensMapJson()),
    textSource("tokenizer.json", tokenizerJson()),
    textSource("tokenizer_config.json", tokenizerConfigJson()),
  ];
  const last = shards[shards.length - 1];
  if (!last) throw new Error("no shards planned");
  const moved = [shardSource(last.file, last.layout, 2), textSource("USE_POLICY.md", usePolicyMd())];
  return { initial, moved };
}

interface WrittenFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly gitOid: string;
  readonly lfs?: LfsInfo;
}

/** Streams a source into `blobs/<sha256>`, hashing as it goes. */
async function writeBlob(repoDir: string, source: FileSource): Promise<WrittenFile> {
  const sha256 = createHash("sha256");
  const gitSha1 = createHash("sha1").update(`blob ${source.size}\0`);
  const tmp = join(repoDir, "blobs", `.writing-${randomBytes(6).toString("hex")}`);
  const handle = await open(tmp, "wx");
  let written = 0;
  try {
    for (const chunk of source.chunks()) {
      sha256.update(chunk);
      gitSha1.update(chunk);
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
  if (written !== source.size) throw new Error(`fixture bug: ${source.path} wrote ${written} bytes, expected ${source.size}`);
  const oid = sha256.digest("hex");
  await rename(tmp, blobPath(repoDir, oid));
  if (!isLfsPath(source.path)) return { path: source.path, size: source.size, sha256: oid, gitOid: gitSha1.digest("hex") };
  const pointer = Buffer.from(lfsPointer(oid, source.size), "utf8");
  return {
    path: source.path,
    size: source.size,
    sha256: oid,
    gitOid: gitBlobSha1(pointer),
    lfs: { oid, size: source.size, pointerSize: pointer.length },
  };
}

/** A commit id that depends on the parent and on every file's git oid, like a real one. */
function commitSha(repoId: string, parent: string | null, title: string, files: readonly WrittenFile[]): string {
  const hash = createHash("sha1").update(`commit\0${repoId}\0${parent ?? ""}\0${title}\0`);
  for (const file of files) hash.update(`${file.path}\0${file.gitOid}\n`);
  return hash.digest("hex");
}

const byPath = <T extends { path: string }>(a: T, b: T) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

async function generateRepo(repoDir: string, spec: RepoSpec, options: FixtureOptions): Promise<RepoManifest> {
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  const sources = repoSources(spec, options);
  const initialFiles: WrittenFile[] = [];
  for (const source of sources.initial) initialFiles.push(await writeBlob(repoDir, source));
  initialFiles.sort(byPath);
  const title1 = "Upload Meta-Llama-3-8B-Instruct (test world)";
  const sha1 = commitSha(spec.id, null, title1, initialFiles);

  const changed: WrittenFile[] = [];
  for (const source of sources.moved) changed.push(await writeBlob(repoDir, source));
  const changedPaths = new Set(changed.map((f) => f.path));
  const movedFiles = [...initialFiles.filter((f) => !changedPaths.has(f.path)), ...changed].sort(byPath);
  const title2 = "Update shard 4 and add USE_POLICY.md (test world: main moved)";
  const sha2 = commitSha(spec.id, sha1, title2, movedFiles);

  const withCommit = (files: readonly WrittenFile[], commitOf: (f: WrittenFile) => string): RepoFile[] =>
    files.map((f) => ({ ...f, lastCommit: commitOf(f) }));
  return {
    fixtureVersion: FIXTURE_VERSION,
    id: spec.id,
    gated: spec.gated,
    bytesPerShard: options.bytesPerShard ?? null,
    commits: [
      { sha: sha1, parent: null, title: title1, date: "2024-04-18T16:28:13.000Z", files: withCommit(initialFiles, () => sha1) },
      {
        sha: sha2,
        parent: sha1,
        title: title2,
        date: "2024-05-13T09:00:00.000Z",
        files: withCommit(movedFiles, (f) => (changedPaths.has(f.path) ? sha2 : sha1)),
      },
    ],
  };
}

/** The manifest if the repo on disk was made for these options and every blob is still there. */
async function reusableManifest(repoDir: string, spec: RepoSpec, options: FixtureOptions): Promise<RepoManifest | null> {
  let manifest: RepoManifest;
  try {
    manifest = JSON.parse(await readFile(join(repoDir, "manifest.json"), "utf8")) as RepoManifest;
  } catch {
    return null;
  }
  if (
    manifest.fixtureVersion !== FIXTURE_VERSION ||
    manifest.id !== spec.id ||
    manifest.gated !== spec.gated ||
    manifest.bytesPerShard !== (options.bytesPerShard ?? null)
  ) {
    return null;
  }
  // A size check only: re-hashing GBs on every start would defeat the reuse.
  for (const commit of manifest.commits) {
    for (const file of commit.files) {
      const info = await stat(blobPath(repoDir, file.sha256)).catch(() => null);
      if (!info || info.size !== file.size) return null;
    }
  }
  return manifest;
}

/**
 * Generates the repo into a temp sibling and renames it into place, so a generation killed
 * half-way never leaves a directory that looks complete (the manifest is written last anyway).
 */
export async function materialiseRepo(reposDir: string, spec: RepoSpec, options: FixtureOptions = {}): Promise<MaterialisedRepo> {
  const dir = join(reposDir, repoDirName(spec.id));
  const existing = await reusableManifest(dir, spec, options);
  if (existing) return { dir, manifest: existing };

  const tmp = join(reposDir, `.tmp-${repoDirName(spec.id)}-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const manifest = await generateRepo(tmp, spec, options);
    await writeFile(join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    // Another process may have finished the same work meanwhile: keep its copy.
    const raced = await reusableManifest(dir, spec, options);
    if (raced) return { dir, manifest: raced };
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    return { dir, manifest };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Lookups over the materialised repos, shared by the Hub and the CDN. */
export class RepoStore {
  readonly #repos = new Map<string, MaterialisedRepo>();
  readonly #blobs = new Map<string, { repo: MaterialisedRepo; file: RepoFile }>();

  constructor(repos: readonly MaterialisedRepo[]) {
    for (const repo of repos) {
      this.#repos.set(repo.manifest.id, repo);
      for (const commit of repo.manifest.commits) {
        // Keyed by repo too: the same bytes (a tokenizer) can live in several repos.
        for (const file of commit.files) this.#blobs.set(`${repo.manifest.id}\0${file.sha256}`, { repo, file });
      }
    }
  }

  repo(id: string): MaterialisedRepo | undefined {
    return this.#repos.get(id);
  }

  repoIds(): string[] {
    return [...this.#repos.keys()];
  }

  /** The blob with this sha256 in a repo, its path on disk, and one repo file it belongs to. */
  blob(sha256: string, repoId: string): { path: string; file: RepoFile; repoId: string } | undefined {
    const found = this.#blobs.get(`${repoId}\0${sha256}`);
    return found && { path: blobPath(found.repo.dir, sha256), file: found.file, repoId: found.repo.manifest.id };
  }
}

export async function materialiseWorldRepos(stateDir: string, options: FixtureOptions = {}): Promise<RepoStore> {
  const reposDir = join(stateDir, "repos");
  await mkdir(reposDir, { recursive: true });
  const repos: MaterialisedRepo[] = [];
  for (const spec of WORLD_REPOS) repos.push(await materialiseRepo(reposDir, spec, options));
  return new RepoStore(repos);
}

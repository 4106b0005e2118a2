/**
 * The stand-ins for github.com/NVIDIA/TensorRT-LLM and triton-inference-server/
 * tensorrtllm_backend: bare repositories under `<root>/git/`, reached by `file://` URL.
 *
 * Each holds the tree of world/repos/<name>/ as one commit tagged `v0.8.0` (annotated), then one
 * more commit on `main` after the tag, so a product that clones the default branch instead of
 * the tag gets a different tree (a CHANGELOG.md line) and the tests can tell.
 *
 * Author, committer and dates are fixed, so the same tree gives the same commit shas on every
 * machine; a repository is rebuilt only when the hash of its source tree changes.
 */
import { createHash } from "node:crypto";
import { access, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { ensureProgram } from "./apt.ts";
import { type TreeFile, walk } from "./files.ts";
import type { Log } from "./log.ts";
import type { WorldConfig } from "./paths.ts";

export interface RepoSpec {
  /** Key under `world.gitRepos` in env.json. */
  key: "trtllm" | "backend";
  /** Folder under world/repos/ and the bare repository's name. */
  name: string;
  /** The env.json `env` variable the product reads the clone URL from. */
  envVar: string;
}

export const WORLD_REPOS: readonly RepoSpec[] = [
  { key: "trtllm", name: "TensorRT-LLM", envVar: "LLAMA3_TRT_TRTLLM_REPO_URL" },
  { key: "backend", name: "tensorrtllm_backend", envVar: "LLAMA3_TRT_BACKEND_REPO_URL" },
];

export const RELEASE_TAG = "v0.8.0";
const POST_RELEASE_LINE = "- post-0.8.0 work (test world: this commit comes after the v0.8.0 tag)\n";
/** Bump when the way repositories are made changes, so existing ones are rebuilt. */
const RECIPE_VERSION = 1;
const HASH_FILE = "world-source-hash";

export interface RepoResult {
  spec: RepoSpec;
  bareDir: string;
  url: string;
  /** The commit `v0.8.0` points at. */
  tagCommit: string;
  /** The tip of `main`, one commit after the tag. */
  headCommit: string;
  rebuilt: boolean;
}

export async function ensureRepos(config: WorldConfig, log: Log): Promise<RepoResult[]> {
  await ensureProgram("git", "git", log);
  const results: RepoResult[] = [];
  for (const spec of WORLD_REPOS) results.push(await ensureRepo(config, spec, log));
  return results;
}

async function ensureRepo(config: WorldConfig, spec: RepoSpec, log: Log): Promise<RepoResult> {
  const sourceDir = path.join(config.repoRoot, "world", "repos", spec.name);
  const files = await walk(sourceDir);
  if (files.length === 0) {
    throw new Error(`world/repos/${spec.name}/ is missing or empty: the ${spec.name} repository of the world cannot be made`);
  }
  const hash = await treeHash(files);
  const bareDir = path.join(config.files.git, `${spec.name}.git`);
  const url = pathToFileURL(bareDir).href;

  const current = await readFile(path.join(bareDir, HASH_FILE), "utf8").catch(() => "");
  if (current.trim() === hash) {
    const refs = await readRefs(bareDir).catch(() => undefined);
    if (refs) {
      log(`git: ${spec.name}.git is up to date`);
      return { spec, bareDir, url, ...refs, rebuilt: false };
    }
  }

  log(`git: making ${spec.name}.git from world/repos/${spec.name}/ (${files.length} files)`);
  // Made beside the final place and renamed over it: an interrupted build never looks complete.
  const building = `${bareDir}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await mkdir(building, { recursive: true });
  try {
    await buildRepo(building, spec.name, files);
    await writeFile(path.join(building, HASH_FILE), `${hash}\n`);
    await rm(bareDir, { recursive: true, force: true });
    await rename(building, bareDir);
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  const refs = await readRefs(bareDir);
  log(`git: ${spec.name}.git: ${RELEASE_TAG} → ${refs.tagCommit.slice(0, 12)}, main → ${refs.headCommit.slice(0, 12)}`);
  return { spec, bareDir, url, ...refs, rebuilt: true };
}

async function treeHash(files: readonly TreeFile[]): Promise<string> {
  const hash = createHash("sha256");
  hash.update(`recipe ${RECIPE_VERSION}\0`);
  for (const file of files) {
    const content = await readFile(file.source);
    hash.update(`\0${file.name}\0${file.mode & 0o100 ? "x" : "-"}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}

/** Everything git needs to make the same objects anywhere: no user or system config, fixed identities and dates. */
function gitEnv(gitDir: string, date: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_DIR: gitDir,
    GIT_INDEX_FILE: path.join(gitDir, "world-index"),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "llama3-trt test world",
    GIT_AUTHOR_EMAIL: "world@llama3-trt.invalid",
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_NAME: "llama3-trt test world",
    GIT_COMMITTER_EMAIL: "world@llama3-trt.invalid",
    GIT_COMMITTER_DATE: date,
  };
}

// TensorRT-LLM v0.8.0 was released in February 2024; the later commit is a week after.
const RELEASE_DATE = "2024-02-22T12:00:00+00:00";
const POST_RELEASE_DATE = "2024-02-29T12:00:00+00:00";

async function git(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<string> {
  const result = await execa("git", args, { env, extendEnv: false, input, stripFinalNewline: true });
  return result.stdout;
}

async function buildRepo(bareDir: string, name: string, files: readonly TreeFile[]): Promise<void> {
  const env = gitEnv(bareDir, RELEASE_DATE);
  // GIT_DIR names the repository to create.
  await git(["init", "--quiet", "--bare", "--initial-branch=main"], env);
  await writeFile(path.join(bareDir, "description"), `llama3-trt test world: ${name}, made from world/repos/${name}/\n`);

  // Blobs straight from the source tree, no work tree or copy needed.
  const blobs = (await git(["hash-object", "-w", "--stdin-paths"], env, files.map((file) => file.source).join("\n"))).split("\n");
  if (blobs.length !== files.length) throw new Error(`git hash-object returned ${blobs.length} ids for ${files.length} files`);
  const indexInfo = files.map((file, i) => `${file.mode & 0o100 ? "100755" : "100644"} ${blobs[i]}\t${file.name}`).join("\n");
  await git(["update-index", "--add", "--index-info"], env, `${indexInfo}\n`);
  const releaseTree = await git(["write-tree"], env);
  const release = await git(["commit-tree", releaseTree, "-m", `${name} ${RELEASE_TAG}`], env);
  await git(["update-ref", "refs/heads/main", release], env);
  await git(["tag", "-a", RELEASE_TAG, "-m", `Release ${RELEASE_TAG}`, release], env);

  // One more commit on main: the CHANGELOG gains a line (the file is created if the tree has none).
  const changelog = files.find((file) => file.name === "CHANGELOG.md");
  const before = changelog ? await readFile(changelog.source, "utf8") : "# Changelog\n\n";
  const after = `${before}${before.endsWith("\n") ? "" : "\n"}${POST_RELEASE_LINE}`;
  const postEnv = gitEnv(bareDir, POST_RELEASE_DATE);
  const blob = await git(["hash-object", "-w", "--stdin"], postEnv, after);
  await git(["update-index", "--add", "--cacheinfo", `100644,${blob},CHANGELOG.md`], postEnv);
  const postTree = await git(["write-tree"], postEnv);
  const post = await git(["commit-tree", postTree, "-p", release, "-m", "Post-0.8.0 work"], postEnv);
  await git(["update-ref", "refs/heads/main", post], postEnv);
  await rm(path.join(bareDir, "world-index"), { force: true });
}

async function readRefs(bareDir: string): Promise<{ tagCommit: string; headCommit: string }> {
  await access(path.join(bareDir, "HEAD"));
  const env = gitEnv(bareDir, RELEASE_DATE);
  const tagCommit = await git(["rev-parse", "--verify", `refs/tags/${RELEASE_TAG}^{commit}`], env);
  const headCommit = await git(["rev-parse", "--verify", "refs/heads/main^{commit}"], env);
  const parent = await git(["rev-parse", "--verify", `${headCommit}^`], env);
  if (parent !== tagCommit) throw new Error(`${bareDir}: main is not one commit after ${RELEASE_TAG}`);
  return { tagCommit, headCommit };
}

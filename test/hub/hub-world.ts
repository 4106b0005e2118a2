/**
 * The downloader's tests run the product's code in-process against the test world's Hub
 * stand-in, started here on ephemeral ports: real HTTP, a real temp dir as the HF cache, no
 * mocks. Waits between retries go through a recording Sleep, so the real schedule is asserted
 * without sleeping through it.
 */
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { expect, vi } from "vitest";
import { InterruptedError } from "../../src/common/errors.ts";
import { blobPath, repoFolder, snapshotDir } from "../../src/hub/cache.ts";
import type { DownloadRequest } from "../../src/hub/download.ts";
import { HashThread } from "../../src/hub/file-hash.ts";
import { HubClient, type RepoFile, type Sleep } from "../../src/hub/hub-client.ts";
import { type HubEnv, readHubEnv } from "../../src/hub/hub-env.ts";
import { GRANTED_TOKEN, OPEN_REPO_ID, type RequestLogEntry, type Scenario, startWorldServer, type WorldServer } from "../../world/server/index.ts";
import { FIXTURE_VERSION, materialiseWorldRepos } from "../../world/server/repo-fixture.ts";

export { GATED_REPO_ID, GRANTED_TOKEN, DENIED_TOKEN, OPEN_REPO_ID } from "../../world/server/index.ts";

export interface HubWorld {
  readonly server: WorldServer;
  /** Sets the scenario the way a test client does (POST /_world/scenario): the strict parser runs. */
  setScenario(scenario: Partial<Scenario>): Promise<void>;
  resetScenario(): void;
  /** Number of request-log lines so far, once earlier responses have all closed: pass it to `requestsSince`. */
  mark(): Promise<number>;
  /** The request-log lines after `mark`, once the log has stopped growing (lines land as responses close). */
  requestsSince(mark: number): Promise<RequestLogEntry[]>;
  /** The bytes of a file of a world repo, as the Hub stores them. */
  bytesOf(path: string, repo?: string, commit?: 0 | 1): Buffer;
  close(): Promise<void>;
}

/**
 * The world's repos, generated once per fixture version and shared by every hub test file (and
 * every Stryker run): each world links its `repos` to them, so a start costs ~10 ms instead of
 * generating ~12 MB. Whoever makes the lock folder first (mkdir is atomic) generates them.
 */
async function sharedRepos(): Promise<string> {
  const dir = join(tmpdir(), `llama3-trt-hub-test-repos-v${FIXTURE_VERSION}`);
  const ready = join(dir, "ready");
  const lock = `${dir}.lock`;
  for (let waited = 0; !existsSync(ready); waited += 50) {
    try {
      mkdirSync(lock);
    } catch {
      // Another file is generating them; a lock left by a killed run is taken over after a minute.
      if (waited > 60_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    try {
      if (!existsSync(ready)) {
        await materialiseWorldRepos(dir);
        writeFileSync(ready, "");
      }
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return join(dir, "repos");
}

export async function startHubWorld(): Promise<HubWorld> {
  const stateDir = await mkdtemp(join(tmpdir(), "hub-test-world-"));
  symlinkSync(await sharedRepos(), join(stateDir, "repos"));
  const server = await startWorldServer({ stateDir, hubPort: 0, cdnPort: 0, recorderHost: "127.0.0.1", recorderPort: 0 });
  const lines = () => {
    try {
      return readFileSync(server.requestLog, "utf8").split("\n").filter((l) => l !== "");
    } catch {
      return [];
    }
  };
  // The log, once it has stopped growing: a line lands when the server side of a response
  // closes, a moment after the client is done with it.
  const settled = async () => {
    let count = -1;
    for (let i = 0; i < 400; i++) {
      const now = lines().length;
      if (now === count) break;
      count = now;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return lines();
  };
  return {
    server,
    async setScenario(scenario) {
      const response = await fetch(`${server.hubUrl}/_world/scenario`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(scenario),
      });
      expect(response.status, await response.clone().text()).toBe(200);
      await response.arrayBuffer();
    },
    resetScenario: () => server.scenario.reset(),
    mark: async () => (await settled()).length,
    requestsSince: async (mark) => (await settled()).slice(mark).map((l) => JSON.parse(l) as RequestLogEntry),
    bytesOf(path, repo = OPEN_REPO_ID, commit = 0) {
      const manifest = server.store.repo(repo)?.manifest;
      const file = manifest?.commits[commit].files.find((f) => f.path === path);
      const blob = file && server.store.blob(file.sha256, repo);
      if (!blob) throw new Error(`no ${path} in ${repo}`);
      return readFileSync(blob.path);
    },
    async close() {
      await server.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** The environment a user of the world has: its endpoint, a cache in `cacheDir`, a token unless `null`. */
export function worldEnv(world: HubWorld, cacheDir: string, token: string | null = GRANTED_TOKEN, extra: Record<string, string> = {}): HubEnv {
  return readHubEnv({
    HOME: cacheDir,
    HF_ENDPOINT: world.server.hubUrl,
    HF_HUB_CACHE: cacheDir,
    // No token file: only HF_TOKEN counts.
    HF_TOKEN_PATH: join(cacheDir, "no-token-file"),
    ...(token !== null && { HF_TOKEN: token }),
    ...extra,
  });
}

/** More waits than any retry schedule of one download has (4 ranges x 5 tries is 20). */
const maxWaits = 50;

/**
 * A Sleep that records each requested delay and returns at once (still refusing an aborted
 * signal). Past `maxWaits` it fails: a broken retry bound ends instead of spinning forever.
 */
export function recordingSleep(): { waits: number[]; sleep: Sleep } {
  const waits: number[] = [];
  return {
    waits,
    sleep: async (ms, signal) => {
      waits.push(ms);
      if (signal.aborted) throw new InterruptedError("interrupted");
      if (waits.length > maxWaits) throw new Error(`more than ${maxWaits} retries: the retry bound is broken`);
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** Every run a test started, so that `endRuns` can stop what a failed test left going. */
const live = new Set<AbortController>();

/** A signal `endRuns` aborts. */
export function testSignal(): AbortSignal {
  const controller = new AbortController();
  live.add(controller);
  return controller.signal;
}

/** Aborts every run still going (call it in afterEach): nothing of one test outlives it. */
export function endRuns(): void {
  for (const controller of live) controller.abort();
  live.clear();
}

/** What one in-process download saw: warnings, bytes counted, files reported done, delays asked for. */
export interface Run {
  readonly client: HubClient;
  readonly warnings: string[];
  readonly waits: number[];
  readonly done: { path: string; downloaded: boolean }[];
  bytes: number;
  request(commit: string, files: readonly RepoFile[], overrides?: Partial<DownloadRequest>): DownloadRequest;
}

export function newRun(world: HubWorld, cache: string, options: { token?: string | null; signal?: AbortSignal; repo?: string } = {}): Run {
  const recorder = recordingSleep();
  const warnings: string[] = [];
  const own = new AbortController();
  live.add(own);
  const signal = options.signal ? AbortSignal.any([options.signal, own.signal]) : own.signal;
  const client = new HubClient(worldEnv(world, cache, options.token === undefined ? GRANTED_TOKEN : options.token), signal, (m) => warnings.push(m), recorder.sleep);
  const run: Run = {
    client,
    warnings,
    waits: recorder.waits,
    done: [],
    bytes: 0,
    request: (commit, files, overrides = {}) => ({
      repo: options.repo ?? OPEN_REPO_ID,
      revision: "main",
      commit,
      files,
      cacheDir: cache,
      signal,
      onBytes: (n) => (run.bytes += n),
      onFileDone: (file, downloaded) => run.done.push({ path: file.path, downloaded }),
      warn: (m) => warnings.push(m),
      sleep: recorder.sleep,
      ...overrides,
    }),
  };
  return run;
}

/**
 * A world repo's commit and files as the Hub lists them, from the world's own manifest: test
 * setup that runs no product code (Stryker would count a mutant reached from a hook as reached
 * by no test, and run it against every test).
 */
export function worldListing(world: HubWorld, repo = OPEN_REPO_ID, commit: 0 | 1 = 0): { commit: string; files: RepoFile[] } {
  const manifest = world.server.store.repo(repo)?.manifest;
  if (!manifest) throw new Error(`no repo ${repo}`);
  const at = manifest.commits[commit];
  return {
    commit: at.sha,
    files: at.files.map((f) =>
      f.lfs ? { path: f.path, size: f.lfs.size, oid: f.lfs.oid, lfs: true } : { path: f.path, size: f.size, oid: f.gitOid, lfs: false },
    ),
  };
}

/** The listing of a world repo at main through the product's own client, and its commit. */
export async function listing(client: HubClient, repo = OPEN_REPO_ID, revision = "main"): Promise<{ commit: string; files: RepoFile[] }> {
  const commit = await client.resolveCommit(repo, revision);
  return { commit, files: await client.listFiles(repo, commit) };
}

export function pick(files: readonly RepoFile[], ...paths: string[]): RepoFile[] {
  return paths.map((path) => {
    const file = files.find((f) => f.path === path);
    if (!file) throw new Error(`${path} is not in the listing`);
    return file;
  });
}

export function tempCache(): { path: string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), "hub-test-cache-"));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
export const gitSha1 = (bytes: Uint8Array) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");

/** The name the HF cache gives this content: sha256 (64 hex) for LFS blobs, git sha1 (40 hex) otherwise. */
export function contentName(bytes: Uint8Array, oid: string): string {
  return oid.length === 64 ? sha256(bytes) : gitSha1(bytes);
}

/** Every path under `dir`, relative, sorted; symlinks are not followed. */
export function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(d, name);
      out.push(relative(dir, path));
      if (lstatSync(path).isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out.sort();
}

export function blobNames(cache: string, repo = OPEN_REPO_ID): string[] {
  try {
    return readdirSync(join(repoFolder(cache, repo), "blobs")).sort();
  } catch {
    return [];
  }
}

/**
 * The snapshot is whole and true: each listed file is a relative symlink `../`…`blobs/<oid>`
 * whose content hashes to the blob's name, and no partial is left anywhere in the cache.
 */
export function expectTrueSnapshot(cache: string, commit: string, files: readonly RepoFile[], repo = OPEN_REPO_ID, keptPartials: readonly string[] = []): void {
  const snapshot = snapshotDir(cache, repo, commit);
  for (const file of files) {
    const link = join(snapshot, file.path);
    expect(lstatSync(link).isSymbolicLink(), file.path).toBe(true);
    const depth = file.path.split("/").length - 1;
    expect(readlinkSync(link)).toBe(`${"../".repeat(depth + 2)}blobs/${file.oid}`);
    expect(realpathSync(link)).toBe(realpathSync(blobPath(cache, repo, file.oid)));
    const bytes = readFileSync(link);
    expect(bytes.length, file.path).toBe(file.size);
    expect(contentName(bytes, file.oid), file.path).toBe(file.oid);
  }
  const leftovers = tree(cache).filter((p) => p.endsWith(".incomplete") || p.endsWith(".parts") || p.endsWith(".tmp"));
  expect(leftovers.filter((p) => !keptPartials.some((kept) => p.endsWith(kept)))).toEqual([]);
}

/** A pid above the kernel's highest possible pid_max (2^22): never a live process. */
export const DEAD_PID = 4_194_305;

/** The name a killed run on this host left its partial of `oid` under. */
export function deadPartialName(oid: string, random = "dead01", pid = DEAD_PID): string {
  return `${oid}.${hostname().replace(/[^A-Za-z0-9_-]/g, "_")}-${pid}-${random}.incomplete`;
}

/** Leaves a dead run's partial of `file` holding `bytes`. Returns its path. */
export function plantPartial(cache: string, file: RepoFile, bytes: Uint8Array, random = "dead01", repo = OPEN_REPO_ID): string {
  const path = join(dirname(blobPath(cache, repo, file.oid)), deadPartialName(file.oid, random));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}

/**
 * The partial this process left in `blobs/`, renamed as if its writer had died (the next run is
 * another process; in-process, ours is alive and rightly left alone). Returns its size.
 */
export function orphanPartial(cache: string, oid: string, repo = OPEN_REPO_ID): number {
  const blobs = join(repoFolder(cache, repo), "blobs");
  const ours = new RegExp(`^${oid}\\.[A-Za-z0-9_-]+-${process.pid}-([a-z0-9]+)\\.incomplete$`);
  const mine = readdirSync(blobs).filter((n) => ours.test(n));
  expect(mine).toHaveLength(1);
  const name = mine[0] as string;
  const random = ours.exec(name)?.[1] as string;
  const dead = join(blobs, deadPartialName(oid, random));
  renameSync(join(blobs, name), dead);
  // A ranged partial's sidecar goes with it.
  if (existsSync(join(blobs, `${name}.parts`))) renameSync(join(blobs, `${name}.parts`), `${dead}.parts`);
  return statSync(dead).size;
}

/** File content bytes served (Hub regular files and CDN blobs), per file. */
export function servedBytes(requests: readonly RequestLogEntry[], path?: string): number {
  return requests
    .filter((r) => r.file !== undefined && (path === undefined || r.file === path) && r.status < 300 && r.method === "GET")
    .reduce((n, r) => n + r.bytesSent, 0);
}

/** Requests about one repo file at the origin that serves its bytes (CDN for LFS, Hub otherwise). */
export function bodyRequests(requests: readonly RequestLogEntry[], file: RepoFile): RequestLogEntry[] {
  return requests.filter((r) => r.file === file.path && r.origin === (file.lfs ? "cdn" : "hub"));
}


/**
 * What the downloader tells its hashing thread: per file, every `advance(upTo)` in order, each
 * checked the moment it is made against the partial on disk. `wrong` lists the ones that claimed
 * bytes that are not there yet or not the file's (the thread would hash holes or stale bytes).
 */
export function watchHashing(world: HubWorld): { told: Map<string, number[]>; wrong: string[] } {
  const told = new Map<string, number[]>();
  const wrong: string[] = [];
  const follow = HashThread.prototype.follow;
  vi.spyOn(HashThread.prototype, "follow").mockImplementation(function (this: HashThread, partial, file) {
    const hash = follow.call(this, partial, file);
    const { path } = file as RepoFile;
    const seen = told.get(path) ?? [];
    told.set(path, seen);
    return {
      ...hash,
      advance: (upTo: number) => {
        seen.push(upTo);
        const onDisk = readFileSync(partial);
        const truth = world.bytesOf(path);
        const fits = Number.isInteger(upTo) && upTo >= 0 && upTo <= onDisk.length && onDisk.subarray(0, upTo).equals(truth.subarray(0, upTo));
        if (!fits) wrong.push(`${path}: told ${upTo} bytes, ${onDisk.length} on disk`);
        hash.advance(upTo);
      },
    };
  });
  return { told, wrong };
}

/**
 * The downloader against the world's Hub stand-in, in-process: what reaches the cache when the
 * transfer goes wrong in the ways reliability.md lists (cases 1-8, 15b), checked on disk and in
 * the server's request log.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { FailedError, InterruptedError } from "../../src/common/errors.ts";
import { blobPath, repoFolder, snapshotDir } from "../../src/hub/cache.ts";
import { contentMatches, downloadToCache, missingBytes } from "../../src/hub/download.ts";
import { HashThread } from "../../src/hub/file-hash.ts";
import type { RepoFile } from "../../src/hub/hub-client.ts";
import {
  blobNames,
  bodyRequests,
  deadPartialName,
  expectTrueSnapshot,
  type HubWorld,
  listing,
  worldListing,
  newRun,
  orphanPartial,
  pick,
  plantPartial,
  servedBytes,
  sha256,
  startHubWorld,
  tempCache,
  tree,
  endRuns,
  watchHashing,
} from "./hub-world.ts";

// Each test takes well under a second: one that hangs has failed (and fails fast under Stryker).
vi.setConfig({ testTimeout: 5_000 });

let world: HubWorld;
/** The open repo at main: its commit and every file. */
let commit: string;
let files: RepoFile[];

beforeAll(async () => {
  world = await startHubWorld();
  ({ commit, files } = worldListing(world));
});
afterAll(() => world?.close());
// The hashing thread is told of every 1000 bytes on disk (4 MiB for real), so that these small
// files are hashed as they land, as large ones are, in every case below.
beforeEach(() => {
  vi.stubEnv("LLAMA3_TRT_TEST_HASH_STEP_BYTES", "1000");
});
afterEach(() => {
  endRuns();
  world.resetScenario();
});

/** A small LFS file (served by the CDN) and a regular one (served by the Hub, named by its git sha1). */
const LFS = "tokenizer.json";
const GIT = "tokenizer_config.json";

async function thrown(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected the download to fail");
    },
    (error: unknown) => error as Error,
  );
}

describe("a hash that does not match (case 6)", () => {
  it.each([LFS, GIT])("%s corrupt twice: an error naming both hashes, nothing under blobs/<oid> or snapshots/; a clean rerun is true", async (path) => {
    using cache = tempCache();
    const [file] = pick(files, path) as [RepoFile];
    await world.setScenario({ rules: [{ match: path, wrongBytes: true }] });
    const before = await world.mark();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));

    expect(error).toBeInstanceOf(FailedError);
    const kind = file.lfs ? "sha256" : "git sha1";
    expect(error.message).toMatch(
      new RegExp(`^${path} is corrupt twice over: expected ${kind} ${file.oid}, got [0-9a-f]{${file.oid.length}} \\(from 127\\.0\\.0\\.1:\\d+\\)\\. Nothing was saved`),
    );
    expect(error.message).not.toContain(`got ${file.oid}`);
    expect(run.warnings).toEqual([expect.stringMatching(new RegExp(`^${path}: ${kind} mismatch \\(got [0-9a-f]{12}\\), downloading it again$`))]);
    // The bug this guards against: a wrong file renamed into blobs/<oid> instead of deleted.
    expect(existsSync(blobPath(cache.path, "world/tiny-llama3", file.oid))).toBe(false);
    expect(blobNames(cache.path)).toEqual([]);
    expect(existsSync(join(repoFolder(cache.path, "world/tiny-llama3"), "snapshots"))).toBe(false);
    expect(existsSync(join(repoFolder(cache.path, "world/tiny-llama3"), "refs"))).toBe(false);
    expect(run.done).toEqual([]);
    // Fetched whole twice, no more.
    const served = bodyRequests(await world.requestsSince(before), file);
    expect(served.map((r) => [r.range, r.status, r.bytesSent, r.fault])).toEqual([
      [null, 200, file.size, "wrongBytes=true"],
      [null, 200, file.size, "wrongBytes=true"],
    ]);

    world.resetScenario();
    const mark = await world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
    expect(servedBytes(await world.requestsSince(mark), path)).toBe(file.size);
    expect(rerun.done).toEqual([{ path, downloaded: true }]);
  });

  it("once a file has failed no other starts; those begun end true and are published, then the error", { timeout: 10_000 }, async () => {
    using cache = tempCache();
    const shard = "model-00003-of-00004.safetensors";
    const inFlight = [LFS, GIT, "model.safetensors.index.json"];
    const queued = ["config.json", "generation_config.json"];
    // Largest first: the shard and the three slowed files take the four places; the two small ones wait.
    const chosen = pick(files, shard, ...inFlight, ...queued);
    // Each slowed file takes two seconds whatever its size, so none frees its place before the
    // shard (fetched and hashed twice at full speed) has failed, even on a loaded machine (at a
    // flat 100 kB/s the smallest took 0.24 s, and a CI run saw config.json start).
    const slowed = inFlight.map((match) => ({ match, bytesPerSecond: (pick(files, match)[0] as RepoFile).size / 2 }));
    await world.setScenario({ rules: [{ match: shard, origin: "cdn", wrongBytes: true }, ...slowed] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, chosen)));
    expect(error.message).toMatch(new RegExp(`^${shard} is corrupt twice over`));
    expect(run.done.map((d) => d.path).sort()).toEqual([...inFlight].sort());
    expectTrueSnapshot(cache.path, commit, pick(files, ...inFlight));
    const requested = new Set((await world.requestsSince(mark)).map((r) => r.file));
    expect(queued.filter((path) => requested.has(path))).toEqual([]);
  });

  it("one flipped byte is fetched again once, with a warning, and ends true", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", wrongBytes: true, times: 1 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
    expect(run.warnings).toHaveLength(1);
    const served = bodyRequests(await world.requestsSince(mark), file);
    expect(served.map((r) => [r.range, r.status, r.bytesSent, r.fault ?? null])).toEqual([
      [null, 200, file.size, "wrongBytes=true"],
      [null, 200, file.size, null],
    ]);
    // Both fetches counted: the bytes really crossed the wire.
    expect(run.bytes).toBe(2 * file.size);
  });
});

describe("a dead run's partial (cases 1 and 4)", () => {
  it("is continued with Range from its size: exactly the rest is served, completed files cost nothing", async () => {
    using cache = tempCache();
    const [file, done] = pick(files, LFS, GIT) as [RepoFile, RepoFile];
    const bytes = world.bytesOf(LFS);
    const half = Math.floor(file.size / 2);
    const partial = plantPartial(cache.path, file, bytes.subarray(0, half));
    // A file already complete from the earlier run.
    const first = newRun(world, cache.path);
    await downloadToCache(first.client, first.request(commit, [done]));
    expect(await missingBytes({ repo: "world/tiny-llama3", files: [file, done], cacheDir: cache.path })).toBe(file.size - half);

    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file, done]));
    const requests = await world.requestsSince(mark);
    expect(bodyRequests(requests, file).map((r) => [r.range, r.status, r.bytesSent])).toEqual([[`bytes=${half}-`, 206, file.size - half]]);
    expect(requests.filter((r) => r.file === done.path)).toEqual([]);
    expect(run.bytes).toBe(file.size - half);
    expect([...run.done].sort((a, b) => (a.path < b.path ? -1 : 1))).toEqual([
      { path: LFS, downloaded: true },
      { path: GIT, downloaded: false },
    ]);
    expect(existsSync(partial)).toBe(false);
    expectTrueSnapshot(cache.path, commit, [file, done]);
    expect(await missingBytes({ repo: "world/tiny-llama3", files: [file, done], cacheDir: cache.path })).toBe(0);
  });

  it("already full length but never renamed: hashed and published with no request at all", async () => {
    using cache = tempCache();
    const [file, git] = pick(files, LFS, GIT) as [RepoFile, RepoFile];
    plantPartial(cache.path, file, world.bytesOf(LFS));
    plantPartial(cache.path, git, world.bytesOf(GIT));
    expect(await missingBytes({ repo: "world/tiny-llama3", files: [file, git], cacheDir: cache.path })).toBe(0);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file, git]));
    const requests = await world.requestsSince(mark);
    expect(requests).toEqual([]);
    expect(run.bytes).toBe(0);
    expectTrueSnapshot(cache.path, commit, [file, git]);
  });

  it("full length with wrong bytes: caught by the hash, fetched again whole", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const wrong = Buffer.from(world.bytesOf(LFS));
    wrong[10] = (wrong[10] ?? 0) ^ 1;
    plantPartial(cache.path, file, wrong);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([[null, file.size]]);
    expect(run.warnings).toEqual([expect.stringMatching(/^tokenizer\.json: sha256 mismatch/)]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("the largest usable one is taken; smaller, oversized and foreign ones are handled by their owner's rules", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const bytes = world.bytesOf(LFS);
    const blobs = join(repoFolder(cache.path, "world/tiny-llama3"), "blobs");
    const small = plantPartial(cache.path, file, bytes.subarray(0, 1000), "small1");
    // A sidecar goes with its partial.
    writeFileSync(`${small}.parts`, "{}");
    const oversized = plantPartial(cache.path, file, Buffer.concat([bytes, Buffer.from("x")]), "big001");
    plantPartial(cache.path, file, bytes.subarray(0, 3000), "best01");
    // Not ours to touch: a live process's partial, another host's, the shared names other tools use.
    const alive = join(blobs, deadPartialName(file.oid, "alive1", process.pid));
    const foreign = [
      alive,
      join(blobs, `${file.oid}.otherhost-${4_194_305}-abc123.incomplete`),
      join(blobs, `${file.oid}.incomplete`),
      join(blobs, `x${deadPartialName(file.oid, "pre001")}`),
      join(blobs, `${deadPartialName(file.oid, "UPPER1")}`),
      join(blobs, `${deadPartialName(file.oid, "suffix")}.bak`),
    ];
    for (const path of foreign) writeFileSync(path, bytes.subarray(0, 5000));
    expect(await missingBytes({ repo: "world/tiny-llama3", files: [file], cacheDir: cache.path })).toBe(file.size - 3000);

    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([[`bytes=3000-`, file.size - 3000]]);
    expect(existsSync(small)).toBe(false);
    expect(existsSync(`${small}.parts`)).toBe(false);
    expect(existsSync(oversized)).toBe(false);
    for (const path of foreign) expect(statSync(path).size, path).toBe(5000);
    expect(sha256(readFileSync(blobPath(cache.path, "world/tiny-llama3", file.oid)))).toBe(file.oid);
  });

  it("an oversized one alone is not used: the file is fetched from byte 0", async () => {
    using cache = tempCache();
    const [file] = pick(files, GIT) as [RepoFile];
    const oversized = plantPartial(cache.path, file, Buffer.concat([world.bytesOf(GIT), Buffer.from("xx")]));
    expect(await missingBytes({ repo: "world/tiny-llama3", files: [file], cacheDir: cache.path })).toBe(file.size);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([[null, file.size]]);
    expect(existsSync(oversized)).toBe(false);
    expectTrueSnapshot(cache.path, commit, [file]);
  });
});

describe("what there is to fetch, and adopting partials", () => {
  it("an empty cache: everything is missing", async () => {
    using cache = tempCache();
    const chosen = pick(files, LFS, GIT);
    expect(await missingBytes({ repo: "world/tiny-llama3", files: chosen, cacheDir: cache.path })).toBe(chosen.reduce((n, f) => n + f.size, 0));
  });

  it("an empty dead partial is taken over too, so nothing is left behind", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const empty = plantPartial(cache.path, file, Buffer.alloc(0));
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(existsSync(empty)).toBe(false);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("the largest partial is taken whatever order the folder lists them in", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const bytes = world.bytesOf(LFS);
    const paths = ["aaaaa1", "bbbbb2", "ccccc3", "ddddd4"].map((random) => plantPartial(cache.path, file, Buffer.alloc(0), random));
    // Sizes growing in the order readdir gives, so that the first listed is the smallest.
    const listed = readdirSync(join(repoFolder(cache.path, "world/tiny-llama3"), "blobs"));
    const inOrder = paths.sort((a, b) => listed.indexOf(a.slice(a.lastIndexOf("/") + 1)) - listed.indexOf(b.slice(b.lastIndexOf("/") + 1)));
    inOrder.forEach((path, i) => writeFileSync(path, bytes.subarray(0, 1000 * (i + 1))));
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => r.range)).toEqual(["bytes=4000-"]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a listed file the Hub does not serve: its own message naming the file and the commit", async () => {
    using cache = tempCache();
    await world.setScenario({ extraEntries: [{ path: "ghost.bin", size: 100, oid: "1".repeat(40) }] });
    const [ghost] = pick((await listing(newRun(world, cache.path).client)).files, "ghost.bin") as [RepoFile];
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [ghost])));
    expect(error.message).toMatch(new RegExp(`^ghost\\.bin not found in world/tiny-llama3 at ${commit}\\. \\(request id Root=`));
  });
});

describe("a server that ignores Range (case 3)", () => {
  it("gets the file started over from byte 0, warned once; the final size is exact", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    plantPartial(cache.path, file, world.bytesOf(LFS).subarray(0, 5000));
    // The second ignoring answer is cut too, so the file is started over twice.
    await world.setScenario({
      rules: [
        { match: LFS, origin: "cdn", ignoreRange: true, cutAfterBytes: 2000, times: 1 },
        { match: LFS, origin: "cdn", ignoreRange: true },
      ],
    });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.status, r.bytesSent])).toEqual([
      ["bytes=5000-", 200, 2000],
      ["bytes=2000-", 200, file.size],
    ]);
    // Warned once, when it happened first; the cut of the restarted transfer comes after.
    expect(run.warnings).toEqual([`${LFS}: the server ignored the Range request; starting this file over`, `${LFS}: transfer cut at 2.0 kB of 58.9 kB, resuming`]);
    expect(statSync(blobPath(cache.path, "world/tiny-llama3", file.oid)).size).toBe(file.size);
    expectTrueSnapshot(cache.path, commit, [file]);
  });
});

describe("hashing as the bytes land", () => {
  it("the hashing thread is told of true bytes on disk as they arrive: from a resumed prefix on, and across a cut", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const prefix = 20_000;
    plantPartial(cache.path, file, world.bytesOf(LFS).subarray(0, prefix));
    await world.setScenario({
      rules: [
        { match: LFS, origin: "cdn", cutAfterBytes: 15_000, bytesPerSecond: 100_000, times: 1 },
        { match: LFS, origin: "cdn", bytesPerSecond: 100_000 },
      ],
    });
    const watch = watchHashing(world);
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(watch.wrong).toEqual([]);
    const told = watch.told.get(LFS) ?? [];
    // The prefix as soon as the first bytes come, then more as they land, in the cut transfer and after it.
    expect(told[0]).toBe(prefix);
    expect(told.some((n) => n > prefix && n < prefix + 15_000)).toBe(true);
    expect(told.some((n) => n > prefix + 15_000 && n < file.size)).toBe(true);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a server that stops honouring Range: the file and its hash start over together (a bad prefix is not kept in the hash)", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    // Bytes the hash must not keep: they are written over when the file starts over.
    plantPartial(cache.path, file, Buffer.alloc(5000, "x"));
    await world.setScenario({
      rules: [
        { match: LFS, origin: "cdn", cutAfterBytes: 2000, times: 1 },
        { match: LFS, origin: "cdn", ignoreRange: true },
      ],
    });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.status, r.bytesSent])).toEqual([
      ["bytes=5000-", 206, 2000],
      ["bytes=7000-", 200, file.size],
    ]);
    // No hash mismatch, so no second download.
    expect(run.warnings).toEqual([`${LFS}: transfer cut at 7.0 kB of 58.9 kB, resuming`, `${LFS}: the server ignored the Range request; starting this file over`]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });
});

describe("the hashing thread's answer is the judge", () => {
  it("a digest from the thread that is not the listing's: the file is not published, fetched again once, then an error", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const follow = HashThread.prototype.follow;
    vi.spyOn(HashThread.prototype, "follow").mockImplementation(function (this: HashThread, partial, listed) {
      const hash = follow.call(this, partial, listed);
      // The true bytes are on disk; only the thread's answer is wrong.
      return { ...hash, digest: async () => (await hash.digest()).replace(/^./, (c) => (c === "0" ? "1" : "0")) };
    });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toMatch(new RegExp(`^${LFS} is corrupt twice over: expected sha256 ${file.oid}, got [0-9a-f]{64} `));
    expect(run.warnings).toEqual([expect.stringMatching(new RegExp(`^${LFS}: sha256 mismatch \\(got [0-9a-f]{12}\\), downloading it again$`))]);
    expect(blobNames(cache.path)).toEqual([]);
    expect(run.done).toEqual([]);
  });

  it("the thread ends mid-download: the download fails with why, nothing is published, and what arrived is kept to resume from", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", bytesPerSecond: 100_000 }] });
    const follow = HashThread.prototype.follow;
    vi.spyOn(HashThread.prototype, "follow").mockImplementation(function (this: HashThread, partial, listed) {
      const hash = follow.call(this, partial, listed);
      let ended = false;
      return {
        ...hash,
        advance: (upTo: number) => {
          hash.advance(upTo);
          // As if the thread ran out of memory: it is gone once the first bytes are told.
          if (upTo === 0 || ended) return;
          ended = true;
          void this.close();
        },
      };
    });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error.message).toMatch(/^the hashing thread (was closed|ended \(exit code \d+\))$/);
    expect(existsSync(blobPath(cache.path, "world/tiny-llama3", file.oid))).toBe(false);
    const partials = blobNames(cache.path).filter((n) => n.endsWith(".incomplete"));
    expect(partials).toHaveLength(1);
    expect(statSync(join(repoFolder(cache.path, "world/tiny-llama3"), "blobs", partials[0] as string)).size).toBe(file.size);
    expect(run.done).toEqual([]);

    // The next run (a new thread) takes the partial over and publishes it true, fetching nothing more.
    vi.restoreAllMocks();
    world.resetScenario();
    orphanPartial(cache.path, file.oid);
    const mark = await world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
    expect(servedBytes(await world.requestsSince(mark), LFS)).toBe(0);
  });
});

describe("a transfer cut mid-way (case 5)", () => {
  it("cut three times: each retry asks for the rest from the bytes written, after 1 s each, and ends true", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", cutAfterBytes: 1000, times: 3 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([
      [null, 1000],
      ["bytes=1000-", 1000],
      ["bytes=2000-", 1000],
      ["bytes=3000-", file.size - 3000],
    ]);
    expect(run.waits).toEqual([1000, 1000, 1000]);
    expect(run.warnings).toEqual([
      `${LFS}: transfer cut at 1.0 kB of 58.9 kB, resuming`,
      `${LFS}: transfer cut at 2.0 kB of 58.9 kB, resuming`,
      `${LFS}: transfer cut at 3.0 kB of 58.9 kB, resuming`,
    ]);
    expect(run.bytes).toBe(file.size);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("cut with no progress: fails after 5 tries without progress (waits 2, 4, 8, 8 s), naming the file and what is kept", async () => {
    using cache = tempCache();
    const [file] = pick(files, GIT) as [RepoFile];
    await world.setScenario({
      rules: [
        { match: GIT, origin: "hub", cutAfterBytes: 1000, times: 1 },
        { match: GIT, origin: "hub", cutAfterBytes: 0 },
      ],
    });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toBe(`download of ${GIT} failed after 5 retries without progress; rerun to resume (1.0 kB of 51.0 kB kept).`);
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([
      [null, 1000],
      ...Array.from({ length: 5 }, () => ["bytes=1000-", 0]),
    ]);
    // 1 s after the cut that made progress, then the schedule from the start: 2, 4, 8, 8 s.
    expect(run.waits).toEqual([1000, 2000, 4000, 8000, 8000]);
    // The partial is kept for the next run, under this run's own name.
    const partials = blobNames(cache.path).filter((n) => n.startsWith(`${file.oid}.`) && n.endsWith(".incomplete"));
    expect(partials).toHaveLength(1);
    const kept = join(repoFolder(cache.path, "world/tiny-llama3"), "blobs", partials[0] as string);
    expect(readFileSync(kept).equals(world.bytesOf(GIT).subarray(0, 1000))).toBe(true);
    expect(existsSync(blobPath(cache.path, "world/tiny-llama3", file.oid))).toBe(false);
    expect(existsSync(snapshotDir(cache.path, "world/tiny-llama3", commit))).toBe(false);
  });
});

describe("a body longer or shorter than the listing says (case 8)", () => {
  it.each([
    [LFS, 7],
    [LFS, -7],
    [GIT, 3],
    [GIT, -3],
  ])("%s %i bytes off: consistency check failed, nothing published, nothing left", async (path, sizeDelta) => {
    using cache = tempCache();
    const [file] = pick(files, path) as [RepoFile];
    await world.setScenario({ rules: [{ match: path, origin: file.lfs ? "cdn" : "hub", sizeDelta }] });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toMatch(
      new RegExp(`^Consistency check failed: ${path} should be of size ${file.size} but has size ${file.size + sizeDelta} \\(from 127\\.0\\.0\\.1:\\d+\\)\\. Nothing was saved; rerun to fetch it again`),
    );
    expect(error.message).toMatch(
      /Nothing was saved; rerun to fetch it again\. If it happens again, the Hub's listing and the file it serves disagree: check a proxy or mirror between you and the Hub\.$/,
    );
    expect(error.cause).toBeDefined();
    expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
    expect(existsSync(snapshotDir(cache.path, "world/tiny-llama3", commit))).toBe(false);
  });

  it("a copy of the wrong size is dropped unread, not read to the end to be thrown away", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", sizeDelta: 7, bytesPerSecond: 100_000 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await expect(downloadToCache(run.client, run.request(commit, [file]))).rejects.toThrow("Consistency check failed");
    const [answer] = bodyRequests(await world.requestsSince(mark), file);
    expect(answer).toMatchObject({ status: 200, aborted: true });
    expect(answer?.bytesSent).toBeLessThan(file.size / 2);
  });

  it("on a resume too: a partial of the right prefix and a longer or shorter rest", async () => {
    for (const sizeDelta of [5, -5]) {
      using cache = tempCache();
      const [file] = pick(files, LFS) as [RepoFile];
      plantPartial(cache.path, file, world.bytesOf(LFS).subarray(0, 1000));
      await world.setScenario({ rules: [{ match: LFS, origin: "cdn", sizeDelta }] });
      const mark = await world.mark();
      const run = newRun(world, cache.path);
      const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
      expect(error.message).toContain(`Consistency check failed: ${LFS} should be of size ${file.size} but has size ${file.size + sizeDelta}`);
      expect(bodyRequests(await world.requestsSince(mark), file).map((r) => r.range)).toEqual(["bytes=1000-"]);
      expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
    }
  });
});

describe("a body without Content-Length (chunked, as from some proxies)", () => {
  it("of the right length downloads true", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", chunked: true }] });
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("longer than listed: stopped at the listed size, consistency check failed, nothing kept", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", chunked: true, sizeDelta: 7 }] });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error.message).toMatch(new RegExp(`^Consistency check failed: ${LFS} should be of size ${file.size} but has size over ${file.size} \\(from `));
    // Read up to the listed size, not a byte more.
    expect(run.bytes).toBe(file.size);
    expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
  });

  it("far longer than listed: reading stops soon after the listed size", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", chunked: true, sizeDelta: 2_000_000, bytesPerSecond: 2_000_000 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await expect(downloadToCache(run.client, run.request(commit, [file]))).rejects.toThrow(`but has size over ${file.size}`);
    const [answer] = bodyRequests(await world.requestsSince(mark), file);
    expect(answer).toMatchObject({ aborted: true });
    expect(answer?.bytesSent).toBeLessThan(file.size + 500_000);
  });

  it("shorter than listed: the resume finds nothing past its end (416), consistency check failed with the size it has", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", chunked: true, sizeDelta: -7 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error.message).toMatch(new RegExp(`^Consistency check failed: ${LFS} should be of size ${file.size} but has size ${file.size - 7} \\(from `));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.status])).toEqual([
      [null, 200],
      [`bytes=${file.size - 7}-`, 416],
    ]);
    expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
  });
});

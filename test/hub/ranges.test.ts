/**
 * Large files fetched as byte ranges side by side, each resumable from the progress sidecar,
 * in-process against the world's Hub stand-in. LLAMA3_TRT_TEST_PART_BYTES makes the world's
 * small files take the path multi-gigabyte shards take (16 kB ranges here, 128 MiB for real).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { FailedError, InterruptedError } from "../../src/common/errors.ts";
import { formatBytes } from "../../src/common/format.ts";
import { blobPath, repoFolder } from "../../src/hub/cache.ts";
import { downloadToCache, missingBytes } from "../../src/hub/download.ts";
import type { RepoFile } from "../../src/hub/hub-client.ts";
import { sidecarOf } from "../../src/hub/parts.ts";
import {
  blobNames,
  bodyRequests,
  deadPartialName,
  expectTrueSnapshot,
  type HubWorld,
  listing,
  worldListing,
  newRun,
  OPEN_REPO_ID,
  orphanPartial,
  pick,
  plantPartial,
  startHubWorld,
  tempCache,
  tree,
  endRuns,
  watchHashing,
} from "./hub-world.ts";

// Each test takes well under a second: one that hangs has failed (and fails fast under Stryker).
vi.setConfig({ testTimeout: 5_000 });

const PART = 16 * 1024;
let world: HubWorld;
let commit: string;
let files: RepoFile[];

beforeAll(async () => {
  world = await startHubWorld();
  ({ commit, files } = worldListing(world));
});
afterAll(() => world?.close());
beforeEach(() => {
  vi.stubEnv("LLAMA3_TRT_TEST_PART_BYTES", String(PART));
  // The hashing thread is told of every 1000 bytes on disk (4 MiB for real).
  vi.stubEnv("LLAMA3_TRT_TEST_HASH_STEP_BYTES", "1000");
});
afterEach(() => {
  endRuns();
  world.resetScenario();
});

const LFS = "tokenizer.json";
const GIT = "tokenizer_config.json";
const rangesOf = (size: number) => {
  const out: [number, number][] = [];
  for (let start = 0; start < size; start += PART) out.push([start, Math.min(size, start + PART) - 1]);
  return out;
};
const header = ([start, end]: [number, number]) => `bytes=${start}-${end}`;
const byRange = (a: readonly unknown[], b: readonly unknown[]) => (String(a[0]) < String(b[0]) ? -1 : 1);
const blobsDir = (cache: string) => join(repoFolder(cache, OPEN_REPO_ID), "blobs");

async function thrown(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected the download to fail");
    },
    (error: unknown) => error as Error,
  );
}

/** A dead run's ranged partial: full length, the `done` bytes of each range in place, its sidecar. */
function plantRanged(cache: string, file: RepoFile, done: number[], partBytes = PART): string {
  const real = world.bytesOf(file.path);
  const bytes = Buffer.alloc(file.size);
  done.forEach((d, i) => real.copy(bytes, i * partBytes, i * partBytes, i * partBytes + d));
  const partial = plantPartial(cache, file, bytes);
  writeFileSync(sidecarOf(partial), JSON.stringify({ size: file.size, partBytes, done }));
  return partial;
}

describe("a large file in ranges", () => {
  it.each([LFS, GIT])("%s is fetched as exact ranges side by side and verified whole; a small file is fetched whole", async (path) => {
    using cache = tempCache();
    const [file, small] = pick(files, path, "config.json") as [RepoFile, RepoFile];
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file, small]));
    const requests = await world.requestsSince(mark);
    expect(bodyRequests(requests, file).map((r) => [r.range, r.status, r.bytesSent]).sort(byRange)).toEqual(
      rangesOf(file.size).map((r) => [header(r), 206, r[1] - r[0] + 1]).sort(byRange),
    );
    expect(bodyRequests(requests, small).map((r) => [r.range, r.bytesSent])).toEqual([[null, small.size]]);
    expect(run.bytes).toBe(file.size + small.size);
    expectTrueSnapshot(cache.path, commit, [file, small]);
  });

  it("a dead run's ranged partial continues each range where its sidecar says it stopped", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const done = [PART, 1000, 0, 5000];
    const partial = plantRanged(cache.path, file, done);
    expect(await missingBytes({ repo: OPEN_REPO_ID, files: [file], cacheDir: cache.path })).toBe(file.size - PART - 6000);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent]).sort(byRange)).toEqual(
      [
        [`bytes=${PART + 1000}-${2 * PART - 1}`, PART - 1000],
        [`bytes=${2 * PART}-${3 * PART - 1}`, PART],
        [`bytes=${3 * PART + 5000}-${file.size - 1}`, file.size - 3 * PART - 5000],
      ].sort(byRange),
    );
    expect(existsSync(partial) || existsSync(sidecarOf(partial))).toBe(false);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("the temp file a dead run left half-way through writing its sidecar goes with it; a live writer's stays (case 1)", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    const partial = plantRanged(cache.path, file, [PART, 1000, 0, 5000]);
    const blobs = blobsDir(cache.path);
    const deadTemp = join(blobs, `.${basename(sidecarOf(partial))}.0123456789ab.tmp`);
    const liveTemp = join(blobs, `.${deadPartialName(file.oid, "live01", process.pid)}.parts.0123456789ab.tmp`);
    writeFileSync(deadTemp, '{"size":');
    writeFileSync(liveTemp, '{"size":');
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file], OPEN_REPO_ID, [basename(liveTemp)]);
    expect(readdirSync(blobs).filter((n) => n !== file.oid)).toEqual([basename(liveTemp)]);
  });

  it("the hashing thread follows the ranges done from the start of the file, never past one still missing", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    // Range 3 has the least left, so it ends first: range 2 is still a gap then.
    const done = [PART, 1000, 0, 5000];
    plantRanged(cache.path, file, done);
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", bytesPerSecond: 100_000 }] });
    const watch = watchHashing(world);
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(watch.wrong).toEqual([]);
    const told = watch.told.get(LFS) ?? [];
    // Told as ranges end (the first while range 2 is still missing, so less than two ranges), all of it by the last.
    expect(told[0]).toBeGreaterThanOrEqual(PART + 1000);
    expect(told[0]).toBeLessThan(2 * PART);
    expect(Math.max(...told)).toBe(file.size);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("complete ranges and a complete sidecar: published with no request (case 4)", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    plantRanged(cache.path, file, rangesOf(file.size).map(([s, e]) => e - s + 1));
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(await world.requestsSince(mark)).toEqual([]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a whole-file partial (no sidecar) counts as the first ranges done", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    plantPartial(cache.path, file, world.bytesOf(LFS).subarray(0, PART + 3000));
    expect(await missingBytes({ repo: OPEN_REPO_ID, files: [file], cacheDir: cache.path })).toBe(file.size - PART - 3000);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => r.range).sort()).toEqual(
      [`bytes=${PART + 3000}-${2 * PART - 1}`, header(rangesOf(file.size)[2] as [number, number]), header(rangesOf(file.size)[3] as [number, number])].sort(),
    );
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a sidecar that does not fit (another split) is not trusted: holes are never taken for data", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    plantRanged(cache.path, file, [8192, 8192, 0, 0, 0, 0, 0, 0], 8192);
    expect(await missingBytes({ repo: OPEN_REPO_ID, files: [file], cacheDir: cache.path })).toBe(file.size);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => r.range).sort()).toEqual(rangesOf(file.size).map(header).sort());
    // Not even once taken for data (which the hash would then refuse).
    expect(run.warnings).toEqual([]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a nested file with an awkward name: each range asked for percent-encoded", async () => {
    using cache = tempCache();
    const content = "0123456789".repeat(4000);
    await world.setScenario({ extraEntries: [{ path: "sub dir/big#1.txt", content }] });
    const [file] = pick((await listing(newRun(world, cache.path).client)).files, "sub dir/big#1.txt") as [RepoFile];
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    const requests = bodyRequests(await world.requestsSince(mark), file);
    expect(requests.map((r) => r.range).sort()).toEqual(rangesOf(content.length).map(header).sort());
    expect(new Set(requests.map((r) => r.path))).toEqual(new Set([`/${OPEN_REPO_ID}/resolve/${commit}/sub%20dir/big%231.txt`]));
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("a listed file the Hub does not serve: its own message naming the file and the commit", async () => {
    using cache = tempCache();
    await world.setScenario({ extraEntries: [{ path: "ghost.bin", size: 3 * PART, oid: "2".repeat(40) }] });
    const [ghost] = pick((await listing(newRun(world, cache.path).client)).files, "ghost.bin") as [RepoFile];
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [ghost])));
    expect(error.message).toMatch(new RegExp(`^ghost\\.bin not found in ${OPEN_REPO_ID} at ${commit}\\. \\(request id Root=`));
  });
});

describe("ranges that go wrong", () => {
  it("cut ranges resume from the bytes each has, after 1 s", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", cutAfterBytes: 1000, times: 2 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    const served = bodyRequests(await world.requestsSince(mark), file);
    const cut = served.filter((r) => r.fault === "cutAfterBytes=1000");
    expect(cut.map((r) => r.bytesSent)).toEqual([1000, 1000]);
    for (const range of rangesOf(file.size)) {
      const mine = served.filter((r) => {
        const [from, to] = (r.range ?? "").slice(6).split("-").map(Number) as [number, number];
        return to === range[1] && from >= range[0];
      });
      // Whatever was cut is asked for again from where it stopped, and nothing twice.
      expect(mine.reduce((n, r) => n + r.bytesSent, 0), header(range)).toBe(range[1] - range[0] + 1);
      if (mine.length === 2) expect(mine.map((r) => r.range)).toEqual([header(range), `bytes=${range[0] + 1000}-${range[1]}`]);
    }
    expect(run.waits).toEqual([1000, 1000]);
    expect(run.warnings).toHaveLength(2);
    for (const warning of run.warnings) expect(warning).toMatch(/^tokenizer\.json: range [1-4] of 4 cut, resuming$/);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("ranges without progress: fails after 5 tries each, saying what is kept; partial and sidecar kept", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({
      rules: [
        { match: LFS, origin: "cdn", cutAfterBytes: 1000, times: 4 },
        { match: LFS, origin: "cdn", cutAfterBytes: 0 },
      ],
    });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toBe(`download of ${LFS} failed after 5 retries without progress; rerun to resume (4.0 kB of 58.9 kB kept).`);
    expect([...run.waits].sort((a, b) => a - b)).toEqual([1000, 2000, 4000, 8000, 8000].flatMap((w) => [w, w, w, w]).sort((a, b) => a - b));
    const partial = blobNames(cache.path).find((n) => n.endsWith(".incomplete")) as string;
    expect(JSON.parse(readFileSync(sidecarOf(join(blobsDir(cache.path), partial)), "utf8"))).toEqual({
      size: file.size,
      partBytes: PART,
      done: [1000, 1000, 1000, 1000],
    });
    const bytes = readFileSync(join(blobsDir(cache.path), partial));
    for (const [start] of rangesOf(file.size)) expect(bytes.subarray(start, start + 1000).equals(world.bytesOf(LFS).subarray(start, start + 1000))).toBe(true);
    expect(existsSync(blobPath(cache.path, OPEN_REPO_ID, file.oid))).toBe(false);
  });

  it("a server that ignores Range: the ranged answers are dropped unread and the file is fetched whole", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    // Slow, so that reading a whole answer only to throw it away would show in the log.
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", ignoreRange: true, bytesPerSecond: 100_000, times: 4 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [file]));
    expect(run.warnings).toEqual([`${LFS}: the server does not serve byte ranges; fetching it whole`]);
    const served = bodyRequests(await world.requestsSince(mark), file);
    const ignored = served.filter((r) => r.range !== null);
    expect(ignored.length).toBeGreaterThanOrEqual(1);
    for (const r of ignored) {
      expect(r.status).toBe(200);
      expect(r.bytesSent).toBeLessThan(file.size / 2);
    }
    expect(served.filter((r) => r.range === null).map((r) => [r.status, r.bytesSent])).toEqual([[200, file.size]]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it.each([LFS, GIT])("%s corrupt twice in ranges: nothing under blobs/<oid>, no sidecar; a clean rerun is true", async (path) => {
    using cache = tempCache();
    const [file] = pick(files, path) as [RepoFile];
    await world.setScenario({ rules: [{ match: path, wrongBytes: true }] });
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error.message).toMatch(new RegExp(`^${path} is corrupt twice over: expected (sha256|git sha1) ${file.oid}, got [0-9a-f]+`));
    expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
    expect(run.warnings).toHaveLength(1);

    world.resetScenario();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it.each([9, -9])("a copy %i bytes off the listed size: consistency check failed, partial and sidecar removed", async (sizeDelta) => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", sizeDelta }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
    expect(error.message).toMatch(new RegExp(`^Consistency check failed: ${LFS} should be of size ${file.size} but has size ${file.size + sizeDelta} \\(from `));
    expect(tree(cache.path).filter((p) => p.includes("blobs/"))).toEqual([]);
    // Decided from the ranged answers: no fallback to a whole download.
    expect(run.warnings).toEqual([]);
    expect(bodyRequests(await world.requestsSince(mark), file).every((r) => r.range !== null)).toBe(true);
  });
});

describe("the disk fills up in ranges (case 15b)", () => {
  it.skipIf(process.getuid?.() !== 0)("says so with what the ranges have on record; nothing published", async () => {
    using dir = tempCache();
    const small = join(dir.path, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=32k", "tmpfs", small]);
    try {
      const [file] = pick(files, LFS) as [RepoFile];
      const run = newRun(world, small);
      const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
      expect(error).toBeInstanceOf(FailedError);
      const kept = /\(([^()]+) of 58\.9 kB kept\)\.$/.exec(error.message)?.[1];
      expect(error.message).toBe(
        `disk full while writing ${LFS} into ${blobsDir(small)} (ENOSPC). Free some space and rerun to resume (${kept} of 58.9 kB kept).`,
      );
      // Some of it landed before the 32 kB disk was full, and is counted.
      expect(kept).toMatch(/^\d+(\.\d)? kB$/);
      expect(Number.parseFloat(kept as string)).toBeGreaterThan(0);
      expect(Number.parseFloat(kept as string)).toBeLessThanOrEqual(32.8);
      expect(existsSync(blobPath(small, OPEN_REPO_ID, file.oid))).toBe(false);
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

describe("ranged answers of the wrong size", () => {
  it("are dropped unread, not read to their end to be thrown away", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", sizeDelta: 9, bytesPerSecond: 50_000 }] });
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await expect(downloadToCache(run.client, run.request(commit, [file]))).rejects.toThrow("Consistency check failed");
    const answers = bodyRequests(await world.requestsSince(mark), file);
    expect(answers.length).toBeGreaterThan(0);
    for (const answer of answers) expect(answer, answer.range ?? "").toMatchObject({ status: 206, aborted: true });
  });
});

describe("interrupted in ranges", () => {
  it("progress is recorded as it lands; Ctrl-C says what is kept; the next run fetches only the rest", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", bytesPerSecond: 80_000, times: 4 }] });
    const controller = new AbortController();
    const run = newRun(world, cache.path, { signal: controller.signal });
    let seen = 0;
    let recordedMidway = false;
    const lengths = rangesOf(file.size).map(([start, end]) => end - start + 1);
    const record = (): number[] => {
      const partial = blobNames(cache.path).find((n) => n.endsWith(".incomplete"));
      try {
        return (JSON.parse(readFileSync(sidecarOf(join(blobsDir(cache.path), partial as string)), "utf8")) as { done: number[] }).done;
      } catch {
        return [];
      }
    };
    const recorded = () => record().reduce((n, d) => n + d, 0);
    const error = await thrown(
      downloadToCache(
        run.client,
        run.request(commit, [file], {
          onBytes: (n) => {
            seen += n;
            // A range part-way through, with some of its bytes already on record.
            recordedMidway ||= record().some((d, i) => d > 0 && d < (lengths[i] as number));
            // About three pieces of each range: a save after the second shows at the third.
            if (seen >= 45_000) controller.abort();
          },
        }),
      ),
    );
    expect(error).toBeInstanceOf(InterruptedError);
    // Saved before the abort, while the ranges were still coming in.
    expect(recordedMidway).toBe(true);
    const kept = recorded();
    expect(kept).toBeGreaterThanOrEqual(45_000);
    expect(kept).toBeLessThan(file.size);
    expect(error.message).toBe(`interrupted; ${formatBytes(kept)} of ${LFS} kept, rerun to resume`);
    expect(error.cause).toBeInstanceOf(Error);
    // An interrupt is not a cut to retry.
    expect(run.warnings).toEqual([]);
    expect(run.waits).toEqual([]);

    orphanPartial(cache.path, file.oid);
    const mark = await world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    const served = bodyRequests(await world.requestsSince(mark), file).reduce((n, r) => n + r.bytesSent, 0);
    expect(served).toBe(file.size - kept);
    expectTrueSnapshot(cache.path, commit, [file]);
  });
});

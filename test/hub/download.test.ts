/**
 * The downloader against the world's Hub stand-in, in-process: what reaches the cache when the
 * transfer goes wrong in the ways reliability.md lists (cases 1-8, 15b), checked on disk and in
 * the server's request log.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FailedError, InterruptedError } from "../../src/common/errors.ts";
import { blobPath, repoFolder, snapshotDir } from "../../src/hub/cache.ts";
import { contentMatches, downloadToCache, missingBytes } from "../../src/hub/download.ts";
import type { RepoFile } from "../../src/hub/hub-client.ts";
import {
  blobNames,
  bodyRequests,
  deadPartialName,
  expectTrueSnapshot,
  type HubWorld,
  listing,
  newRun,
  pick,
  plantPartial,
  servedBytes,
  sha256,
  startHubWorld,
  tempCache,
  tree,
} from "./hub-world.ts";

let world: HubWorld;
/** The open repo at main: its commit and every file. */
let commit: string;
let files: RepoFile[];

beforeAll(async () => {
  world = await startHubWorld();
  using cache = tempCache();
  ({ commit, files } = await listing(newRun(world, cache.path).client));
});
afterAll(() => world?.close());
afterEach(() => world.resetScenario());

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
    const before = world.mark();
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
    const mark = world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    expectTrueSnapshot(cache.path, commit, [file]);
    expect(servedBytes(await world.requestsSince(mark), path)).toBe(file.size);
    expect(rerun.done).toEqual([{ path, downloaded: true }]);
  });

  it("one flipped byte is fetched again once, with a warning, and ends true", async () => {
    using cache = tempCache();
    const [file] = pick(files, LFS) as [RepoFile];
    await world.setScenario({ rules: [{ match: LFS, origin: "cdn", wrongBytes: true, times: 1 }] });
    const mark = world.mark();
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

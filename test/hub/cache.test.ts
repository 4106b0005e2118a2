/**
 * What the downloader leaves in the Hugging Face cache, in-process against the world's Hub
 * stand-in: huggingface_hub's layout (case 17), the token's lane (case 37), main moving (case 9),
 * two writers at once (case 16), hostile and awkward names (case 18), Ctrl-C (case 2) and a disk
 * filling up (case 15b).
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FailedError, InterruptedError } from "../../src/common/errors.ts";
import { formatBytes } from "../../src/common/format.ts";
import { blobPath, refPath, repoFolder, snapshotDir } from "../../src/hub/cache.ts";
import { contentMatches, downloadToCache } from "../../src/hub/download.ts";
import { HubClient, type RepoFile } from "../../src/hub/hub-client.ts";
import {
  blobNames,
  bodyRequests,
  expectTrueSnapshot,
  GATED_REPO_ID,
  gitSha1,
  type HubWorld,
  listing,
  worldListing,
  newRun,
  OPEN_REPO_ID,
  orphanPartial,
  pick,
  plantPartial,
  servedBytes,
  sha256,
  startHubWorld,
  tempCache,
  tree,
  endRuns,
  worldEnv,
} from "./hub-world.ts";

// Each test takes well under a second: one that hangs has failed (and fails fast under Stryker).
vi.setConfig({ testTimeout: 5_000 });

let world: HubWorld;
let commit: string;
let files: RepoFile[];

beforeAll(async () => {
  world = await startHubWorld();
  ({ commit, files } = worldListing(world));
});
afterAll(() => world?.close());
afterEach(() => {
  endRuns();
  world.resetScenario();
});

async function thrown(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected the download to fail");
    },
    (error: unknown) => error as Error,
  );
}

const model = (cache: string) => repoFolder(cache, OPEN_REPO_ID);

describe("the cache layout (case 17)", () => {
  it("blobs named by hash, relative links one `..` per folder, refs/main without a newline, token only to the Hub", async () => {
    using cache = tempCache();
    const chosen = pick(files, "config.json", "tokenizer.json", "original/params.json", "original/tokenizer.model");
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, chosen));

    expectTrueSnapshot(cache.path, commit, chosen);
    expect(readlinkSync(join(snapshotDir(cache.path, OPEN_REPO_ID, commit), "original/params.json"))).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
    expect(blobNames(cache.path)).toEqual(chosen.map((f) => f.oid).sort());
    expect(readFileSync(refPath(cache.path, OPEN_REPO_ID, "main"), "utf8")).toBe(commit);
    expect(tree(model(cache.path))).toEqual(
      [
        "blobs",
        ...chosen.map((f) => `blobs/${f.oid}`),
        "refs",
        "refs/main",
        "snapshots",
        `snapshots/${commit}`,
        `snapshots/${commit}/config.json`,
        `snapshots/${commit}/original`,
        `snapshots/${commit}/original/params.json`,
        `snapshots/${commit}/original/tokenizer.model`,
        `snapshots/${commit}/tokenizer.json`,
      ].sort(),
    );
    expect(tree(cache.path).filter((p) => !p.startsWith("models--world--tiny-llama3"))).toEqual([]);
    expect(run.bytes).toBe(chosen.reduce((n, f) => n + f.size, 0));
    expect(run.done.map((d) => d.downloaded)).toEqual([true, true, true, true]);

    // The token goes to the Hub's origin only, never to the CDN the LFS files are redirected to.
    const requests = await world.requestsSince(mark);
    const cdn = requests.filter((r) => r.origin === "cdn");
    expect(cdn.map((r) => r.file).sort()).toEqual(["original/tokenizer.model", "tokenizer.json"]);
    expect(cdn.every((r) => !r.authorization)).toBe(true);
    expect(requests.filter((r) => r.origin === "hub").every((r) => r.authorization)).toBe(true);
    expect(new Set(requests.map((r) => r.userAgent))).toEqual(new Set(["llama3-trt"]));
  });

  it("a blob gets the cache folder's read and write bits, never world-writable", async () => {
    for (const [dirMode, blobMode] of [
      [0o750, 0o640],
      [0o775, 0o664],
      [0o700, 0o600],
      [0o777, 0o664],
    ] as const) {
      using cache = tempCache();
      chmodSync(cache.path, dirMode);
      const chosen = pick(files, "config.json", "tokenizer.json");
      const run = newRun(world, cache.path);
      await downloadToCache(run.client, run.request(commit, chosen));
      for (const file of chosen) expect(statSync(blobPath(cache.path, OPEN_REPO_ID, file.oid)).mode & 0o7777, `${dirMode.toString(8)} ${file.path}`).toBe(blobMode);
    }
  });

  it("a cache huggingface_hub filled costs nothing: no request, links left as they are", async () => {
    using cache = tempCache();
    const chosen = pick(files, "config.json", "tokenizer.json", "original/params.json");
    // huggingface_hub's layout, written by hand.
    for (const file of chosen) {
      mkdirSync(join(model(cache.path), "blobs"), { recursive: true });
      writeFileSync(blobPath(cache.path, OPEN_REPO_ID, file.oid), world.bytesOf(file.path));
      const link = join(snapshotDir(cache.path, OPEN_REPO_ID, commit), file.path);
      mkdirSync(join(link, ".."), { recursive: true });
      symlinkSync(`${"../".repeat(file.path.split("/").length + 1)}blobs/${file.oid}`, link);
    }
    const inodes = chosen.map((f) => lstatSync(join(snapshotDir(cache.path, OPEN_REPO_ID, commit), f.path)).ino);
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, chosen, { revision: commit }));
    expect(await world.requestsSince(mark)).toEqual([]);
    expect(run.done.map((d) => d.downloaded)).toEqual([false, false, false]);
    expect(chosen.map((f) => lstatSync(join(snapshotDir(cache.path, OPEN_REPO_ID, commit), f.path)).ino)).toEqual(inodes);
    expectTrueSnapshot(cache.path, commit, chosen);
    // Asked for by commit: no ref to write.
    expect(existsSync(join(model(cache.path), "refs"))).toBe(false);
  });

  it("a snapshot entry that is not the right link (a copy, a link elsewhere) becomes the right link", async () => {
    using cache = tempCache();
    const [copied, misled] = pick(files, "config.json", "tokenizer.json") as [RepoFile, RepoFile];
    const snapshot = snapshotDir(cache.path, OPEN_REPO_ID, commit);
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(snapshot, copied.path), world.bytesOf(copied.path));
    symlinkSync("../../blobs/elsewhere", join(snapshot, misled.path));
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [copied, misled]));
    expectTrueSnapshot(cache.path, commit, [copied, misled]);
  });

  it("a folder where a file's link belongs: an error, and no temp link left behind", async () => {
    using cache = tempCache();
    const [file] = pick(files, "config.json") as [RepoFile];
    const where = join(snapshotDir(cache.path, OPEN_REPO_ID, commit), file.path);
    mkdirSync(where, { recursive: true });
    writeFileSync(join(where, "inside"), "x");
    const run = newRun(world, cache.path);
    await expect(downloadToCache(run.client, run.request(commit, [file]))).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect(readdirSync(snapshotDir(cache.path, OPEN_REPO_ID, commit))).toEqual([file.path]);
    expect(readdirSync(where)).toEqual(["inside"]);
  });

  it("an empty file is published as the empty blob", async () => {
    using cache = tempCache();
    await world.setScenario({ extraEntries: [{ path: "empty.txt", content: "" }] });
    const [empty] = pick((await listing(newRun(world, cache.path).client)).files, "empty.txt") as [RepoFile];
    expect(empty).toMatchObject({ size: 0, oid: gitSha1(Buffer.alloc(0)), lfs: false });
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, [empty]));
    expectTrueSnapshot(cache.path, commit, [empty]);
  });

  it("contentMatches tells a true blob from a changed one, for sha256 and git sha1 names", async () => {
    using cache = tempCache();
    const chosen = pick(files, "config.json", "tokenizer.json");
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, chosen));
    for (const file of chosen) {
      const blob = blobPath(cache.path, OPEN_REPO_ID, file.oid);
      expect(await contentMatches(blob, file.oid, file.size)).toBe(true);
      const bytes = readFileSync(blob);
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
      writeFileSync(blob, bytes);
      expect(await contentMatches(blob, file.oid, file.size)).toBe(false);
    }
  });
});

describe("main moves to a new commit (case 9)", () => {
  it("fetches only what changed, never from the old blob's partial, keeps the old snapshot, rewrites refs/main atomically", async () => {
    using cache = tempCache();
    const shard = "model-00004-of-00004.safetensors";
    const before = pick(files, "config.json", shard);
    const oldShard = before[1] as RepoFile;
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(commit, before.slice(0, 1)));
    const ref = refPath(cache.path, OPEN_REPO_ID, "main");
    const refInode = statSync(ref).ino;
    // The old shard was half-way when that run was killed.
    const oldPartial = plantPartial(cache.path, oldShard, world.bytesOf(shard).subarray(0, 300_000));

    await world.setScenario({ mainMoved: true });
    const moved = await listing(run.client);
    expect(moved.commit).not.toBe(commit);
    const after = pick(moved.files, "config.json", shard, "USE_POLICY.md");
    const newShard = after[1] as RepoFile;
    expect(newShard.oid).not.toBe(oldShard.oid);
    const mark = await world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(moved.commit, after));

    const requests = await world.requestsSince(mark);
    expect(bodyRequests(requests, newShard).map((r) => [r.range, r.bytesSent])).toEqual([[null, newShard.size]]);
    expect(servedBytes(requests)).toBe(newShard.size + (after[2] as RepoFile).size);
    expect(requests.some((r) => r.file === "config.json")).toBe(false);
    const oldName = oldPartial.slice(oldPartial.lastIndexOf("/") + 1);
    expectTrueSnapshot(cache.path, moved.commit, after, OPEN_REPO_ID, [oldName]);
    expectTrueSnapshot(cache.path, commit, before.slice(0, 1), OPEN_REPO_ID, [oldName]);
    // The old blob's partial is not the new blob's: left alone for whoever still wants the old commit.
    expect(readFileSync(oldPartial).equals(world.bytesOf(shard).subarray(0, 300_000))).toBe(true);
    expect(readFileSync(ref, "utf8")).toBe(moved.commit);
    expect(statSync(ref).ino).not.toBe(refInode);
    expect(readdirSync(join(model(cache.path), "refs"))).toEqual(["main"]);
  });
});

describe("two downloads into one cache at once (case 16)", () => {
  it("each writes its own partial, both end true, LFS and git-sha1 blobs alike", async () => {
    using cache = tempCache();
    const chosen = pick(files, "tokenizer.json", "tokenizer_config.json");
    // Slow enough that both are mid-way at the same time: about 0.4 s a file, so that the second
    // run, started in the same tick, is still well inside the first one's transfer on a loaded machine.
    await world.setScenario({ rules: [{ match: "tokenizer*.json", bytesPerSecond: 150_000 }] });
    const seen = new Map<string, Set<string>>();
    const look = () => {
      for (const name of blobNames(cache.path)) {
        const oid = name.split(".")[0] as string;
        if (name.endsWith(".incomplete")) seen.set(oid, (seen.get(oid) ?? new Set()).add(name));
      }
    };
    const a = newRun(world, cache.path);
    const b = newRun(world, cache.path);
    await Promise.all([
      downloadToCache(a.client, a.request(commit, chosen, { onBytes: look })),
      downloadToCache(b.client, b.request(commit, chosen, { onBytes: look })),
    ]);
    for (const file of chosen) expect(seen.get(file.oid)?.size, file.path).toBe(2);
    expectTrueSnapshot(cache.path, commit, chosen);
    expect(blobNames(cache.path)).toEqual(chosen.map((f) => f.oid).sort());
  });
});

describe("hostile and awkward listings (case 18)", () => {
  const hostile = [
    "../../../etc/passwd",
    "folder/../../../etc/passwd",
    "..\\..\\Windows\\evil",
    "/etc/passwd",
    "C:\\Windows\\evil",
    "C:/Windows/evil",
    "D:relative\\evil",
    "\\\\attacker\\share\\evil",
    "\\evil",
    "folder/C:\\Windows\\evil",
    "folder/\\\\attacker\\share\\evil",
    "folder/\\evil",
    "..",
  ];

  it.each(hostile)("a file named %j is refused before anything is written", async (path) => {
    using cache = tempCache();
    await world.setScenario({ extraEntries: [{ path, content: "pwned" }] });
    const listed = await listing(newRun(world, cache.path).client);
    const evil = listed.files.find((f) => f.path === path) as RepoFile;
    expect(evil).toBeDefined();
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request(listed.commit, [...pick(listed.files, "config.json"), evil])));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toMatch(/^Invalid filename .* in world\/tiny-llama3 \(.+\): refusing to download anything\. Ask the repository owner to rename it\.$/);
    expect(error.message).toContain(JSON.stringify(path));
    expect(tree(cache.path)).toEqual([]);
  });

  it("a hostile LFS oid, git oid or commit is refused before anything is written", async () => {
    using cache = tempCache();
    await world.setScenario({
      extraEntries: [
        { path: "lfs.bin", lfs: { oid: "../../x", size: 10 } },
        { path: "git.txt", content: "x", oid: "../../../../y" },
        { path: "short.txt", content: "x", oid: "abc" },
      ],
    });
    const listed = await listing(newRun(world, cache.path).client);
    for (const [path, oid] of [
      ["lfs.bin", "../../x"],
      ["git.txt", "../../../../y"],
      ["short.txt", "abc"],
    ] as const) {
      const run = newRun(world, cache.path);
      const error = await thrown(downloadToCache(run.client, run.request(listed.commit, pick(listed.files, path))));
      expect(error.message).toBe(`Invalid oid from the Hub for ${path} in world/tiny-llama3: ${JSON.stringify(oid)}; refusing to download anything.`);
    }
    // An LFS oid must be a sha256, a git oid a sha1.
    const config = pick(files, "config.json")[0] as RepoFile;
    const tokenizer = pick(files, "tokenizer.json")[0] as RepoFile;
    for (const wrong of [{ ...config, lfs: true }, { ...tokenizer, lfs: false }]) {
      const run = newRun(world, cache.path);
      await expect(downloadToCache(run.client, run.request(commit, [wrong]))).rejects.toThrow(`Invalid oid from the Hub for ${wrong.path}`);
    }
    const run = newRun(world, cache.path);
    const error = await thrown(downloadToCache(run.client, run.request("../x", pick(files, "config.json"))));
    expect(error.message).toBe('Invalid commit from the Hub for world/tiny-llama3: "../x"; refusing to download anything.');
    await world.setScenario({ commitSha: "../x" });
    await expect(run.client.resolveCommit(OPEN_REPO_ID, "main")).rejects.toThrow('The Hub gave an invalid commit for world/tiny-llama3@main: "../x"');
    expect(tree(cache.path)).toEqual([]);
  });

  it("awkward legal names are downloaded, each path segment percent-encoded in the URL", async () => {
    using cache = tempCache();
    const names: [string, string][] = [
      ["weird but valid/name.txt", "weird%20but%20valid/name.txt"],
      ["a#b.json", "a%23b.json"],
      ["q?.txt", "q%3F.txt"],
      ["100%.bin", "100%25.bin"],
      ["é.txt", "%C3%A9.txt"],
    ];
    await world.setScenario({ extraEntries: names.map(([path]) => ({ path, content: `content of ${path}` })) });
    const listed = await listing(newRun(world, cache.path).client);
    const chosen = pick(listed.files, ...names.map(([path]) => path));
    const mark = await world.mark();
    const run = newRun(world, cache.path);
    await downloadToCache(run.client, run.request(listed.commit, chosen));
    expectTrueSnapshot(cache.path, listed.commit, chosen);
    for (const [path] of names) {
      expect(readFileSync(join(snapshotDir(cache.path, OPEN_REPO_ID, listed.commit), path), "utf8")).toBe(`content of ${path}`);
    }
    const paths = (await world.requestsSince(mark)).map((r) => r.path).sort();
    expect(paths).toEqual(names.map(([, encoded]) => `/${OPEN_REPO_ID}/resolve/${listed.commit}/${encoded}`).sort());
  });
});

describe("Ctrl-C during a download (case 2)", () => {
  it("ends with InterruptedError saying what is kept; the partial is kept and the next run resumes from it", async () => {
    using cache = tempCache();
    const [file] = pick(files, "tokenizer.json") as [RepoFile];
    await world.setScenario({ rules: [{ match: file.path, origin: "cdn", bytesPerSecond: 100_000, times: 1 }] });
    const controller = new AbortController();
    const run = newRun(world, cache.path, { signal: controller.signal });
    let seen = 0;
    const request = run.request(commit, [file], {
      onBytes: (n) => {
        seen += n;
        if (seen >= 10_000) controller.abort();
      },
    });
    const error = await thrown(downloadToCache(run.client, request));
    expect(error).toBeInstanceOf(InterruptedError);
    const partials = blobNames(cache.path).filter((n) => n.endsWith(".incomplete"));
    expect(partials).toHaveLength(1);
    const kept = readFileSync(join(model(cache.path), "blobs", partials[0] as string));
    expect(kept.length).toBeGreaterThanOrEqual(10_000);
    expect(kept.length).toBeLessThan(file.size);
    expect(kept.equals(world.bytesOf(file.path).subarray(0, kept.length))).toBe(true);
    expect(error.message).toBe(`interrupted; ${formatBytes(kept.length)} of ${file.path} kept, rerun to resume`);
    expect(existsSync(snapshotDir(cache.path, OPEN_REPO_ID, commit))).toBe(false);

    orphanPartial(cache.path, file.oid);
    const mark = await world.mark();
    const rerun = newRun(world, cache.path);
    await downloadToCache(rerun.client, rerun.request(commit, [file]));
    expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([[`bytes=${kept.length}-`, file.size - kept.length]]);
    expectTrueSnapshot(cache.path, commit, [file]);
  });

  it("before the answer comes (while the Hub is retried): still says what is kept", async () => {
    using cache = tempCache();
    const [file] = pick(files, "tokenizer.json") as [RepoFile];
    await world.setScenario({ rules: [{ match: file.path, origin: "cdn", status: 503 }] });
    const controller = new AbortController();
    const client = new HubClient(worldEnv(world, cache.path), controller.signal, () => {}, async () => controller.abort());
    const run = newRun(world, cache.path, { signal: controller.signal });
    const error = await thrown(downloadToCache(client, run.request(commit, [file])));
    expect(error).toBeInstanceOf(InterruptedError);
    expect(error.message).toBe(`interrupted; 0 B of ${file.path} kept, rerun to resume`);
  });

  it("during the wait before a retry: interrupted at once, nothing more fetched", async () => {
    using cache = tempCache();
    const [file] = pick(files, "tokenizer.json") as [RepoFile];
    await world.setScenario({ rules: [{ match: file.path, origin: "cdn", cutAfterBytes: 1000 }] });
    const controller = new AbortController();
    const run = newRun(world, cache.path, { signal: controller.signal });
    const mark = await world.mark();
    const error = await thrown(
      downloadToCache(run.client, run.request(commit, [file], { sleep: async () => controller.abort() ?? Promise.reject(new InterruptedError("interrupted")) })),
    );
    expect(error).toBeInstanceOf(InterruptedError);
    expect(bodyRequests(await world.requestsSince(mark), file)).toHaveLength(1);
  });
});

describe("the disk fills up mid-write (case 15b)", () => {
  const root = process.getuid?.() === 0;

  it.skipIf(!root)("says so with what is kept; nothing published; with room again the next run resumes", async () => {
    using dir = tempCache();
    const small = join(dir.path, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=32k", "tmpfs", small]);
    try {
      const [file] = pick(files, "tokenizer.json") as [RepoFile];
      const run = newRun(world, small);
      const error = await thrown(downloadToCache(run.client, run.request(commit, [file])));
      expect(error).toBeInstanceOf(FailedError);
      expect(error.cause).toMatchObject({ code: "ENOSPC" });
      const partials = blobNames(small).filter((n) => n.endsWith(".incomplete"));
      expect(partials).toHaveLength(1);
      const kept = statSync(join(model(small), "blobs", partials[0] as string)).size;
      expect(kept).toBeGreaterThan(0);
      expect(error.message).toBe(
        `disk full while writing ${file.path} into ${join(model(small), "blobs")} (ENOSPC). Free some space and rerun to resume (${formatBytes(kept)} of ${formatBytes(file.size)} kept).`,
      );
      expect(existsSync(blobPath(small, OPEN_REPO_ID, file.oid))).toBe(false);
      expect(existsSync(snapshotDir(small, OPEN_REPO_ID, commit))).toBe(false);

      execFileSync("mount", ["-o", "remount,size=1m", small]);
      orphanPartial(small, file.oid);
      const mark = await world.mark();
      const rerun = newRun(world, small);
      await downloadToCache(rerun.client, rerun.request(commit, [file]));
      expect(bodyRequests(await world.requestsSince(mark), file).map((r) => [r.range, r.bytesSent])).toEqual([[`bytes=${kept}-`, file.size - kept]]);
      expectTrueSnapshot(small, commit, [file]);
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

it("the gated repo downloads with the granted token (the token reaches the Hub)", async () => {
  using cache = tempCache();
  const run = newRun(world, cache.path);
  const gated = await listing(run.client, GATED_REPO_ID);
  const chosen = pick(gated.files, "config.json", "tokenizer.json");
  await downloadToCache(run.client, run.request(gated.commit, chosen, { repo: GATED_REPO_ID }));
  expectTrueSnapshot(cache.path, gated.commit, chosen, GATED_REPO_ID);
  expect(sha256(readFileSync(blobPath(cache.path, GATED_REPO_ID, (chosen[1] as RepoFile).oid)))).toBe((chosen[1] as RepoFile).oid);
});

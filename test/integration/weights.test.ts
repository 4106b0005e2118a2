import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { plan, type Sandbox, sandbox, until } from "../helpers/product.ts";
import { type RequestLogEntry, useWorld, type World } from "../helpers/world.ts";

const repo = "meta-llama/Meta-Llama-3-8B-Instruct";
const repoDir = "models--meta-llama--Meta-Llama-3-8B-Instruct";
const DENIED = "hf_worldDENIEDbbbbbbbbbbbbbbbbbbbbbbb";

const cacheOf = (box: Sandbox) => join(box.dir, "home/.cache/huggingface/hub");
const modelCache = (box: Sandbox) => join(cacheOf(box), repoDir);

/** Bytes of file content the Hub and CDN served (API answers are not content). */
function contentBytes(requests: RequestLogEntry[]): number {
  return requests.filter((r) => r.file !== undefined && r.method === "GET" && r.status < 300).reduce((n, r) => n + r.bytesSent, 0);
}

/** The request log is written as each response closes: give the last lines a moment. */
async function settledRequests(w: World): Promise<RequestLogEntry[]> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  return w.hubRequests();
}

function blobsOf(box: Sandbox): string[] {
  const dir = join(modelCache(box), "blobs");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** The name the Hub gives a blob: sha256 for LFS files (64 hex), the git blob sha1 otherwise (40). */
function contentName(path: string, nameLength: number): string {
  const bytes = readFileSync(path);
  if (nameLength === 64) return createHash("sha256").update(bytes).digest("hex");
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

/** Every file of the snapshot is a relative link to a blob whose content hashes to its name. */
function expectSnapshotSound(box: Sandbox): string[] {
  const cache = modelCache(box);
  const snapshot = join(cache, "snapshots", readFileSync(join(cache, "refs/main"), "utf8"));
  const names = readdirSync(snapshot).sort();
  const oids: string[] = [];
  for (const name of names) {
    const target = readlinkSync(join(snapshot, name));
    expect(target).toMatch(/^\.\.\/\.\.\/blobs\/([0-9a-f]{40}|[0-9a-f]{64})$/);
    const oid = target.split("/").pop() as string;
    expect(contentName(join(snapshot, name), oid.length), name).toBe(oid);
    oids.push(oid);
  }
  // No partial or temp file of these blobs is left beside them.
  expect(blobsOf(box).filter((n) => oids.some((oid) => n.startsWith(`${oid}.`)))).toEqual([]);
  return names;
}

/** The record of the weights step in state.json, if any. */
function weightsRecord(box: Sandbox): unknown {
  const path = join(box.workdir, "state.json");
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as { steps: Record<string, unknown> }).steps.weights : undefined;
}

/** The host part of the downloader's partial-file names, as src/hub/download.ts makes it. */
const partialHost = hostname().replace(/[^A-Za-z0-9_-]/g, "_");

/** The LFS sha256 (the blob's name in the cache) of a file of the model, from the Hub's paths-info. */
async function lfsOid(world: World, path: string): Promise<string> {
  const response = await fetch(`${world.world.hubUrl}/api/models/${repo}/paths-info/main`, {
    method: "POST",
    headers: { authorization: `Bearer ${world.env.HF_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ paths: [path], expand: true }),
  });
  const [info] = (await response.json()) as { lfs?: { oid: string } }[];
  if (!info?.lfs) throw new Error(`${path} is not an LFS file`);
  return info.lfs.oid;
}

async function weights(box: Sandbox, extraEnv: Record<string, string> = {}) {
  return box.run(["build", "--only", "weights"], extraEnv);
}

describe("the weights step against the Hub stand-in", { timeout: 300_000 }, () => {
  let world: World;

  beforeAll(() => {
    world = useWorld();
    return () => world[Symbol.asyncDispose]();
  });

  afterEach(async () => {
    await fetch(`${world.world.hubUrl}/_world/scenario`, { method: "DELETE" }).then((r) => r.body?.cancel());
  });

  it("downloads into an empty cache in the standard layout, without original/, the token only to the Hub (cases 17, 37)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    const cache = modelCache(box);
    const commit = readFileSync(join(cache, "refs/main"), "utf8");
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    const snapshot = join(cache, "snapshots", commit);
    const names = readdirSync(snapshot).sort();
    expect(names).toEqual([
      "config.json",
      "generation_config.json",
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      "model.safetensors.index.json",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    for (const name of names) {
      const link = join(snapshot, name);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      const target = readlinkSync(link);
      expect(target).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
      const oid = target.split("/").pop() as string;
      if (oid.length === 64) expect(sha256(link)).toBe(oid);
    }
    expect(readdirSync(join(cache, "blobs")).some((n) => n.endsWith(".incomplete"))).toBe(false);
    // Blobs take the mode of the cache folder's files (no execute bit, nobody else may write).
    for (const blob of blobsOf(box)) expect((statSync(join(cache, "blobs", blob)).mode & 0o777).toString(8), blob).toBe("644");
    expect(weightsRecord(box)).toMatchObject({ id: "weights" });
    const requests = await settledRequests(w);
    expect(requests.some((r) => r.file?.startsWith("original/"))).toBe(false);
    expect(requests.filter((r) => r.origin === "cdn").length).toBeGreaterThan(0);
    expect(requests.filter((r) => r.origin === "cdn").every((r) => !r.authorization)).toBe(true);
    expect(requests.filter((r) => r.origin === "hub").every((r) => r.authorization)).toBe(true);
  });

  it("a second run transfers 0 bytes, and so does a cache another tool filled (case 17)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    await using w = useWorld();
    expect((await box.run(["build", "--only", "weights", "--force"])).exitCode).toBe(0);
    const again = await settledRequests(w);
    expect(contentBytes(again)).toBe(0);
    // main has not moved: the commit's tree is the one recorded, not asked for again.
    expect(again.filter((r) => r.path.includes("/revision/main")).length).toBeGreaterThan(0);
    expect(again.filter((r) => r.path.includes("/tree/")).map((r) => r.path)).toEqual([]);

    // huggingface-cli's layout, made by someone else: a new workdir and HOME sharing it.
    await using other = sandbox(world);
    mkdirSync(cacheOf(other), { recursive: true });
    cpSync(modelCache(box), modelCache(other), { recursive: true, verbatimSymlinks: true });
    await using w2 = useWorld();
    const result = await weights(other);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(contentBytes(await settledRequests(w2))).toBe(0);
  });

  it("a download killed half-way resumes with Range, fetches exactly the rest, and nothing it had finished (case 1)", async () => {
    await using box = sandbox(world);
    await world.setScenario({ rules: [{ match: "model-00001-of-00004.safetensors", origin: "cdn", bytesPerSecond: 150_000 }] });
    const oid = await lfsOid(world, "model-00001-of-00004.safetensors");
    const run = box.start(["build", "--only", "weights"]);
    const blobs = join(modelCache(box), "blobs");
    const partialOf = () => (existsSync(blobs) ? readdirSync(blobs).find((n) => n.startsWith(`${oid}.`) && n.endsWith(".incomplete")) : undefined);
    await until(() => {
      const partial = partialOf();
      return partial !== undefined && statSync(join(blobs, partial)).size > 300_000;
    }, "a partial file of shard 1 past 300 kB");
    // Meanwhile the other files, not slowed, are done: in the cache and linked into the snapshot.
    const snapshots = join(modelCache(box), "snapshots");
    await until(() => existsSync(snapshots) && readdirSync(join(snapshots, readdirSync(snapshots)[0] as string)).length >= 9, "the other files");
    run.child.kill("SIGKILL");
    await run.exited();
    await fetch(`${world.world.hubUrl}/_world/scenario`, { method: "DELETE" }).then((r) => r.body?.cancel());
    const kept = statSync(join(blobs, partialOf() as string)).size;
    const finished = readdirSync(join(snapshots, readdirSync(snapshots)[0] as string));
    expect(finished).not.toContain("model-00001-of-00004.safetensors");
    // Recorded done only once everything is published.
    expect(weightsRecord(box)).toBeUndefined();
    expect(readdirSync(join(snapshots, readdirSync(snapshots)[0] as string))).toEqual(finished);
    const shardSize = (JSON.parse((await box.run(["plan", "--json"])).stdout) as { steps: { id: string; weights?: { files: { path: string; size: number }[] } }[] }).steps
      .find((s) => s.id === "weights")
      ?.weights?.files.find((f) => f.path === "model-00001-of-00004.safetensors")?.size as number;

    await using w = useWorld();
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    const shardRequests = (await settledRequests(w)).filter((r) => r.file === "model-00001-of-00004.safetensors" && r.origin === "cdn");
    expect(shardRequests.map((r) => r.range)).toEqual([`bytes=${kept}-`]);
    const served = shardRequests.reduce((n, r) => n + r.bytesSent, 0);
    expect(served).toBe(shardSize - kept);
    // Nothing it had finished was fetched again: the only content served is the rest of shard 1.
    const content = (await settledRequests(w)).filter((r) => r.file !== undefined && r.status < 300 && r.bytesSent > 0);
    expect(content.map((r) => r.file)).toEqual(["model-00001-of-00004.safetensors"]);
    expect(finished.filter((f) => content.some((r) => r.file === f))).toEqual([]);
    expect(readdirSync(blobs).some((n) => n.endsWith(".incomplete"))).toBe(false);
    expect(sha256(join(blobs, oid))).toBe(oid);
    expect(expectSnapshotSound(box)).toHaveLength(10);
    expect(weightsRecord(box)).toMatchObject({ id: "weights" });
  });

  it("a transfer cut three times resumes from the bytes it has; a server ignoring Range is started over (cases 3, 5)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    await world.setScenario({
      rules: [
        { match: "model-00002-of-00004.safetensors", origin: "cdn", cutAfterBytes: 100_000, times: 3 },
        { match: "model-00002-of-00004.safetensors", origin: "cdn", ignoreRange: true, times: 1 },
      ],
    });
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    const requests = (await settledRequests(w)).filter((r) => r.file === "model-00002-of-00004.safetensors" && r.origin === "cdn");
    expect(requests.map((r) => r.range)).toEqual([null, "bytes=100000-", "bytes=200000-", "bytes=300000-"]);
    const log = readFileSync(join(box.workdir, "logs/weights.log"), "utf8");
    // Warned once, although a transfer was cut three times first.
    expect(log.match(/the server ignored the Range request; starting this file over/g)).toHaveLength(1);
    expect(log.match(/model-00002-of-00004\.safetensors: transfer cut at/g)).toHaveLength(3);
    // The last answer was the whole file, and the file is that, exactly: not the kept prefix plus it.
    const size = (await plan(box)).find((st) => st.id === "weights")?.weights?.files.find((f) => f.path === "model-00002-of-00004.safetensors")?.size;
    expect(requests.at(-1)).toMatchObject({ status: 200, bytesSent: size });
    const oid = await lfsOid(world, "model-00002-of-00004.safetensors");
    expect(statSync(join(modelCache(box), "blobs", oid)).size).toBe(size);
    expect(sha256(join(modelCache(box), "blobs", oid))).toBe(oid);
  });

  it("a transfer cut again and again without progress fails after 5 tries, naming the file and what is kept (case 5)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const shard = "model-00002-of-00004.safetensors";
    // The first answer brings 100 kB; every later one is cut before its first byte.
    await world.setScenario({
      rules: [
        { match: shard, origin: "cdn", cutAfterBytes: 100_000, times: 1 },
        { match: shard, origin: "cdn", cutAfterBytes: 0 },
      ],
    });
    const result = await weights(box);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`download of ${shard} failed after 5 retries without progress; rerun to resume (100 kB of 970 kB kept).`);
    const tries = (await settledRequests(w)).filter((r) => r.file === shard && r.origin === "cdn");
    expect(tries.map((r) => r.range)).toEqual([null, ...Array(5).fill("bytes=100000-")]);
    // The 100 kB are kept for the next run, under this run's partial name.
    const oid = await lfsOid(world, shard);
    const partials = blobsOf(box).filter((n) => n.startsWith(`${oid}.`) && n.endsWith(".incomplete"));
    expect(partials).toHaveLength(1);
    expect(statSync(join(modelCache(box), "blobs", partials[0] as string)).size).toBe(100_000);
    expect(blobsOf(box)).not.toContain(oid);
    expect(weightsRecord(box)).toBeUndefined();
    // The backoff between them: 1 s after the cut that brought bytes, then 2, 4, 8, 8 s.
    const times = tries.map((r) => Date.parse(r.time));
    const gaps = times.slice(1).map((t, i) => (t - (times[i] as number)) / 1000);
    // Each gap is its sleep plus a request's latency: at least the sleep, and not much more.
    const expected = [1, 2, 4, 8, 8];
    expect(gaps).toHaveLength(expected.length);
    gaps.forEach((gap, i) => expect(gap, `gap ${i + 1} of ${gaps.join(", ")}`).toBeGreaterThanOrEqual((expected[i] as number) - 0.05));
    gaps.forEach((gap, i) => expect(gap, `gap ${i + 1} of ${gaps.join(", ")}`).toBeLessThan((expected[i] as number) + 1.5));
  });

  it("a flipped byte is caught by sha256 and fetched again once; twice is an error with nothing saved (case 6)", async () => {
    await using box = sandbox(world);
    await world.setScenario({ rules: [{ match: "model-00003-of-00004.safetensors", origin: "cdn", wrongBytes: true, times: 1 }] });
    const once = await weights(box);
    expect(once.exitCode, once.stderr).toBe(0);
    expect(readFileSync(join(box.workdir, "logs/weights.log"), "utf8")).toMatch(/model-00003-of-00004\.safetensors: sha256 mismatch/);

    await using fresh = sandbox(world);
    await world.setScenario({ rules: [{ match: "model-00003-of-00004.safetensors", origin: "cdn", wrongBytes: true, times: 2 }] });
    const twice = await weights(fresh);
    expect(twice.exitCode).toBe(1);
    expect(twice.stderr).toMatch(/model-00003-of-00004\.safetensors is corrupt twice over: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64} \(from 127\.0\.0\.1:\d+\)/);
    // Nothing of it entered the cache, and the revision was not recorded.
    expect(existsSync(join(modelCache(fresh), "refs/main"))).toBe(false);
    const snapshots = join(modelCache(fresh), "snapshots");
    for (const commit of existsSync(snapshots) ? readdirSync(snapshots) : []) {
      expect(existsSync(join(snapshots, commit, "model-00003-of-00004.safetensors"))).toBe(false);
    }
    expect(blobsOf(fresh).filter((n) => n.endsWith(".incomplete"))).toEqual([]);
    // The corrupt bytes never got the blob's name.
    const oid = await lfsOid(world, "model-00003-of-00004.safetensors");
    expect(blobsOf(fresh)).not.toContain(oid);
    expect(weightsRecord(fresh)).toBeUndefined();
    // A clean rerun fetches it and every file of the snapshot is what its name says.
    await world.setScenario({ rules: [] });
    const clean = await weights(fresh);
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(expectSnapshotSound(fresh)).toHaveLength(10);
    expect(sha256(join(modelCache(fresh), "blobs", oid))).toBe(oid);
  });

  it.each([
    ["longer", 1000],
    ["shorter", -1000],
  ])("a body %s than X-Linked-Size is a consistency error, with nothing published (case 8)", async (_how, sizeDelta) => {
    await using box = sandbox(world);
    const shard = "model-00003-of-00004.safetensors";
    const size = (await plan(box)).find((st) => st.id === "weights")?.weights?.files.find((f) => f.path === shard)?.size as number;
    await world.setScenario({ rules: [{ match: shard, origin: "cdn", sizeDelta }] });
    const result = await weights(box);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`Consistency check failed: ${shard} should be of size ${size} but has size ${size + sizeDelta} (from 127.0.0.1:`);
    expect(result.stderr).toContain("Nothing was saved; rerun to fetch it again.");
    const oid = await lfsOid(world, shard);
    expect(blobsOf(box)).not.toContain(oid);
    expect(existsSync(join(modelCache(box), "refs/main"))).toBe(false);
    expect(weightsRecord(box)).toBeUndefined();
    // Once the server is right again, a rerun publishes a true blob.
    await world.setScenario({ rules: [] });
    expect((await weights(box)).exitCode).toBe(0);
    expect(sha256(join(modelCache(box), "blobs", oid))).toBe(oid);
    expect(expectSnapshotSound(box)).toHaveLength(10);
  });

  it("a full-length partial that was never renamed is hashed and published, with no request for it (case 4)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    const oid = await lfsOid(world, "model-00002-of-00004.safetensors");
    const blobs = join(modelCache(box), "blobs");
    const snapshot = join(modelCache(box), "snapshots", readFileSync(join(modelCache(box), "refs/main"), "utf8"));
    // What a kill between the last write and the rename leaves: a complete file under a dead run's partial name.
    const dead = Number(execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }));
    const partial = join(blobs, `${oid}.${partialHost}-${dead}-abc123.incomplete`);
    renameSync(join(blobs, oid), partial);
    rmSync(join(snapshot, "model-00002-of-00004.safetensors"));
    await using w = useWorld();
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    const requests = await settledRequests(w);
    expect(requests.filter((r) => r.file === "model-00002-of-00004.safetensors")).toEqual([]);
    expect(requests.filter((r) => r.status === 416)).toEqual([]);
    expect(contentBytes(requests)).toBe(0);
    expect(existsSync(partial)).toBe(false);
    expect(sha256(join(blobs, oid))).toBe(oid);
    expect(expectSnapshotSound(box)).toHaveLength(10);
  });

  it.each([
    [
      "no token (case 10)",
      { HF_TOKEN: "" },
      1,
      [
        "meta-llama/Meta-Llama-3-8B-Instruct is gated and no Hugging Face token was found (looked in HF_TOKEN, HUGGING_FACE_HUB_TOKEN, ",
        "/home/.cache/huggingface/token). Request access at ",
        "/meta-llama/Meta-Llama-3-8B-Instruct, then run `huggingface-cli login` or `export HF_TOKEN=hf_…`.",
      ],
    ],
    [
      "a token without access (case 11)",
      { HF_TOKEN: DENIED },
      1,
      ["Your Hugging Face token (from HF_TOKEN, user `world-denied`) has no access to meta-llama/Meta-Llama-3-8B-Instruct. Request access at ", "(accept the licence) and rerun when it is approved."],
    ],
    [
      "an invalid token (case 12b)",
      { HF_TOKEN: "hf_revokedrevokedrevokedrevoked" },
      1,
      ["The Hugging Face token from HF_TOKEN was rejected (revoked or expired). Create a new one at https://huggingface.co/settings/tokens"],
    ],
    ["a token that is not one (case 12a)", { HF_TOKEN: "ghp_notahuggingfacetoken" }, 2, ["is not a token (they start with hf_)"]],
    [
      "a repository that does not exist (case 12c)",
      { LLAMA3_TRT_MODEL: "meta-llama/Nope" },
      1,
      ["Repository meta-llama/Nope not found on ", "Check --model; a private repository also needs a token that can see it."],
    ],
    [
      "a revision that does not exist (case 12d)",
      { LLAMA3_TRT_REVISION: "nope" },
      1,
      ["Revision `nope` not found in meta-llama/Meta-Llama-3-8B-Instruct. Check --revision."],
    ],
  ])("%s: its own message, its exit code, nothing written in the cache (cases 10, 11, 12)", async (_name, env, exitCode, messages) => {
    await using box = sandbox(world);
    await using w = useWorld();
    const result = await box.run(["build"], env);
    expect(result.exitCode).toBe(exitCode);
    for (const message of messages) expect(result.stderr).toContain(message);
    // Before any GPU work, any container, any clone: nothing ran.
    expect(await w.invocations()).toBe(0);
    expect(existsSync(join(box.workdir, "state.json"))).toBe(false);
    expect(existsSync(join(box.workdir, ".lock"))).toBe(false);
    expect(result.stderr + result.stdout).not.toMatch(/ghp_notahuggingfacetoken|hf_revoked|hf_worldDENIED/);
    expect(existsSync(cacheOf(box))).toBe(false);
    // Refused before anything else ran: no clone either.
    expect(existsSync(join(box.workdir, "repos"))).toBe(false);
  });

  it("the token file that huggingface-cli login writes is read", async () => {
    await using box = sandbox(world);
    mkdirSync(join(box.dir, "home/.cache/huggingface"), { recursive: true });
    execFileSync("sh", ["-c", `printf '%s\\n' "$T" > "$F"`], { env: { T: world.env.HF_TOKEN, F: join(box.dir, "home/.cache/huggingface/token") } });
    const result = await weights(box, { HF_TOKEN: "" });
    expect(result.exitCode, result.stderr).toBe(0);
  });

  it("HF_HUB_OFFLINE: a complete cache needs no request; an incomplete one names what is missing (case 14)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    await using w = useWorld();
    const offline = await box.run(["build", "--only", "weights", "--force"], { HF_HUB_OFFLINE: "1" });
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(await settledRequests(w)).toEqual([]);

    const snapshot = join(modelCache(box), "snapshots", readFileSync(join(modelCache(box), "refs/main"), "utf8"));
    rmSync(join(snapshot, "model-00004-of-00004.safetensors"));
    const incomplete = await box.run(["build", "--only", "weights", "--force"], { HF_HUB_OFFLINE: "1" });
    expect(incomplete.exitCode).toBe(1);
    expect(incomplete.stderr).toContain("is incomplete: missing model-00004-of-00004.safetensors");
    expect(await settledRequests(w)).toEqual([]);
  });

  it("a hostile path, oid or commit from the Hub is refused before anything is written (case 18)", async () => {
    await using box = sandbox(world);
    // Everything under the sandbox that exists before: nothing may be added anywhere, in the cache or beside it.
    const listing = () => execFileSync("find", [box.dir, "-mindepth", "1"], { encoding: "utf8" }).split("\n").filter(Boolean).sort();
    const before = listing();
    const hostile = ["../../escape.txt", "folder/../../../etc/passwd", "/etc/passwd", "..\\..\\evil", "C:\\x", "C:/x", "D:rel", "\\\\host\\share\\x", "\\evil", "folder/C:\\x"];
    for (const path of hostile) {
      await world.setScenario({ extraEntries: [{ path, content: "x" }] });
      const result = await weights(box);
      expect(result.exitCode, path).toBe(1);
      expect(result.stderr).toContain(`Invalid filename ${JSON.stringify(path)}`);
      expect(result.stderr).toContain("refusing to download anything. Ask the repository owner to rename it.");
    }
    await world.setScenario({ extraEntries: [{ path: "x.json", lfs: { oid: "../../x", size: 10 } }] });
    const badOid = await weights(box);
    expect(badOid.exitCode).toBe(1);
    expect(badOid.stderr).toContain("Invalid oid from the Hub for x.json");
    await world.setScenario({ commitSha: "../x" });
    const badCommit = await weights(box);
    expect(badCommit.exitCode).toBe(1);
    expect(badCommit.stderr).toContain('The Hub gave an invalid commit for meta-llama/Meta-Llama-3-8B-Instruct@main: "../x"');
    // Only the logs of the attempts: no cache, no escape, no state.
    expect(listing().filter((p) => !before.includes(p) && !p.startsWith(join(box.workdir, "logs")) && p !== box.workdir)).toEqual([]);
    expect(existsSync("/etc/x") || existsSync(join(box.dir, "escape.txt"))).toBe(false);
  });

  it("awkward but legal names download, each path segment percent-encoded (case 18)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    // Safetensors at the top level, so that the step fetches them (it takes only what conversion reads).
    const names = ["weird but valid.safetensors", "a#b.safetensors", "q?.safetensors", "100%.safetensors", "é.safetensors"];
    await world.setScenario({ extraEntries: names.map((path) => ({ path, content: `content of ${path}` })) });
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    const snapshot = join(modelCache(box), "snapshots", readFileSync(join(modelCache(box), "refs/main"), "utf8"));
    for (const name of names) expect(readFileSync(join(snapshot, name), "utf8"), name).toBe(`content of ${name}`);
    const paths = (await settledRequests(w)).filter((r) => r.method === "GET" && r.file !== undefined && names.includes(r.file)).map((r) => r.path);
    for (const name of names) {
      expect(paths).toContain(`/meta-llama/Meta-Llama-3-8B-Instruct/resolve/${readFileSync(join(modelCache(box), "refs/main"), "utf8")}/${name.split("/").map(encodeURIComponent).join("/")}`);
    }
  });

  it("transient errors are retried with backoff: two 503s, then a 429 with Retry-After (case 13ab)", async () => {
    await using box = sandbox(world);
    await world.setScenario({
      // Files the download fetches and the model check does not read first (it reads config.json,
      // generation_config.json and tokenizer_config.json into memory before the download).
      rules: [
        { match: "tokenizer.json", origin: "hub", status: 503, times: 2 },
        { match: "special_tokens_map.json", origin: "hub", status: 429, retryAfterSeconds: 2, times: 1 },
      ],
    });
    const started = Date.now();
    const result = await weights(box);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    const log = readFileSync(join(box.workdir, "logs/weights.log"), "utf8");
    expect(log.match(/the Hub answered 503/g)).toHaveLength(2);
    expect(log).toMatch(/the Hub answered 429 .*retrying in 2 s/);
  });

  it("a file that fails forever ends the step after at most 5 tries, within 30 s, each retry said as it happens (case 13c)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    await world.setScenario({ rules: [{ match: "generation_config.json", origin: "hub", status: 500 }] });
    const started = Date.now();
    const result = await weights(box);
    const seconds = (Date.now() - started) / 1000;
    expect(result.exitCode).toBe(1);
    // The promise: at most 5 tries and about 30 s. The backoff sleeps 1 + 2 + 4 + 8 = 15 s of it.
    const tries = (await settledRequests(w)).filter((r) => r.file === "generation_config.json" && r.status === 500);
    expect(tries.length).toBeGreaterThanOrEqual(2);
    expect(tries.length).toBeLessThanOrEqual(5);
    expect(seconds).toBeLessThan(30);
    const last = tries.at(-1)?.requestId as string;
    expect(result.stderr).toContain(`The Hub answered 500 for meta-llama/Meta-Llama-3-8B-Instruct: `);
    expect(result.stderr).toContain(`(request id ${last})`);
    // The model check reads this file before the download (no step log yet): each retry is said
    // as it happens, so the wait of up to half a minute is not silent.
    const retried = [...result.stderr.matchAll(/^warning: the Hub answered 500 for (\S+) \(request id ([^)]+)\); retrying in (\d+) s \(try (\d) of 5\)$/gm)];
    expect(retried.map((m) => [m[2], Number(m[3]), Number(m[4])])).toEqual(tries.slice(0, -1).map((t, i) => [t.requestId, [1, 2, 4, 8][i], i + 2]));
    expect(retried.every((m) => (m[1] ?? "").endsWith("/generation_config.json"))).toBe(true);
    expect(weightsRecord(box)).toBeUndefined();
  });

  it("main moving marks weights stale by name, fetches only what changed, keeps the old snapshot, rewrites refs/main whole (case 9)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    const oldCommit = readFileSync(join(modelCache(box), "refs/main"), "utf8");
    const refInode = statSync(join(modelCache(box), "refs/main")).ino;
    // A dead run's partial of the old shard 4: a different blob from the new one, never reused for it.
    const oldOid = await lfsOid(world, "model-00004-of-00004.safetensors");
    const dead = Number(execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }));
    const oldPartial = join(modelCache(box), "blobs", `${oldOid}.${partialHost}-${dead}-old000.incomplete`);
    writeFileSync(oldPartial, readFileSync(join(modelCache(box), "blobs", oldOid)).subarray(0, 1000));
    await world.setScenario({ mainMoved: true });
    const plan = JSON.parse((await box.run(["plan", "--json"])).stdout) as { steps: { id: string; state: string; reason: string }[] };
    const step = plan.steps.find((s) => s.id === "weights");
    expect(step?.state).toBe("stale");
    expect(step?.reason).toMatch(new RegExp(`^revision main moved ${oldCommit.slice(0, 7)} → [0-9a-f]{7} \\(1 file changed\\)$`));
    await using w = useWorld();
    expect((await weights(box)).exitCode).toBe(0);
    const requests = await settledRequests(w);
    const fetched = requests.filter((r) => r.bytesSent > 0 && r.file !== undefined && r.status < 300);
    expect(fetched.map((r) => r.file)).toEqual(["model-00004-of-00004.safetensors"]);
    // From the first byte: the old blob's partial was not taken for the new blob.
    expect(fetched.filter((r) => r.origin === "cdn").map((r) => r.range)).toEqual([null]);
    const newCommit = readFileSync(join(modelCache(box), "refs/main"), "utf8");
    expect(newCommit).toMatch(/^[0-9a-f]{40}$/);
    expect(newCommit).not.toBe(oldCommit);
    // A new commit's tree is listed (the recorded one is the old commit's).
    expect(new Set(requests.filter((r) => r.path.includes("/tree/")).map((r) => r.path))).toEqual(new Set([`/api/models/meta-llama/Meta-Llama-3-8B-Instruct/tree/${newCommit}`]));
    // Written to a temp file and renamed over: a new inode, no temp file left beside it.
    expect(statSync(join(modelCache(box), "refs/main")).ino).not.toBe(refInode);
    expect(readdirSync(join(modelCache(box), "refs"))).toEqual(["main"]);
    expect(readdirSync(join(modelCache(box), "snapshots", oldCommit))).toHaveLength(10);
    expect(sha256(join(modelCache(box), "blobs", oldOid))).toBe(oldOid);
    // The old blob's partial is left as it was: it may serve a later download of the old revision.
    expect(statSync(oldPartial).size).toBe(1000);
    expect(expectSnapshotSound(box)).toHaveLength(10);
  });

  it("a truncated blob makes weights stale with its sizes, and build repairs it (case 7a)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    const snapshot = join(modelCache(box), "snapshots", readFileSync(join(modelCache(box), "refs/main"), "utf8"));
    const shard = join(snapshot, "model-00002-of-00004.safetensors");
    const size = statSync(shard).size;
    truncateSync(shard, size - 1);
    const plan = JSON.parse((await box.run(["plan", "--json"])).stdout) as { steps: { id: string; state: string; reason: string }[] };
    expect(plan.steps.find((s) => s.id === "weights")).toMatchObject({
      state: "stale",
      reason: `model-00002-of-00004.safetensors has ${size - 1} bytes, expected ${size}`,
    });
    expect((await weights(box)).exitCode).toBe(0);
    expect(statSync(shard).size).toBe(size);
  });

  it("a flipped byte of the same size is caught only by build --verify, which fetches the file again (case 7b)", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    const oid = await lfsOid(world, "model-00003-of-00004.safetensors");
    const blob = join(modelCache(box), "blobs", oid);
    const bytes = readFileSync(blob);
    bytes[1000] = (bytes[1000] as number) ^ 0xff;
    writeFileSync(blob, bytes);
    // Without --verify this is documented as undetected: only sizes are checked on every run.
    const plain = JSON.parse((await box.run(["plan", "--json"])).stdout) as { steps: { id: string; state: string }[] };
    expect(plain.steps.find((s) => s.id === "weights")?.state).toBe("done");
    await using w = useWorld();
    const verified = await box.run(["build", "--only", "weights", "--verify"]);
    expect(verified.exitCode, verified.stderr).toBe(0);
    expect(readFileSync(join(box.workdir, "logs/weights.log"), "utf8")).toContain("model-00003-of-00004.safetensors does not match its hash");
    expect(sha256(blob)).toBe(oid);
    expect((await settledRequests(w)).filter((r) => r.status < 300 && r.bytesSent > 0 && r.file !== undefined).map((r) => r.file)).toEqual([
      "model-00003-of-00004.safetensors",
    ]);
  });

  it("two downloads into one cache at once both end with correct blobs, each writing its own partial (case 16)", async () => {
    await using a = sandbox(world);
    await using b = sandbox(world);
    const shared = join(a.dir, "shared-cache");
    const env = { HF_HUB_CACHE: shared };
    await world.setScenario({ rules: [{ origin: "cdn", bytesPerSecond: 2_000_000 }] });
    await using w = useWorld();
    const blobs = join(shared, repoDir, "blobs");
    const runA = a.start(["build", "--only", "weights"], env);
    const runB = b.start(["build", "--only", "weights"], env);
    // Both are writing the same blob at once, each into a partial of its own (owner = host-pid-random).
    const oid = await lfsOid(world, "model-00001-of-00004.safetensors");
    await until(() => existsSync(blobs) && readdirSync(blobs).filter((n) => n.startsWith(`${oid}.`) && n.endsWith(".incomplete")).length === 2, "two partials of shard 1");
    const owners = readdirSync(blobs).filter((n) => n.startsWith(`${oid}.`)).map((n) => n.split(".")[1]?.split("-")[1]);
    expect(owners.sort()).toEqual([String(runA.child.pid), String(runB.child.pid)].sort());
    const [ra, rb] = await Promise.all([runA.exited(), runB.exited()]);
    expect(ra.exitCode, ra.stderr).toBe(0);
    expect(rb.exitCode, rb.stderr).toBe(0);
    // Each fetched every file (duplicated bandwidth at worst), and every blob, LFS or not, is what its name says.
    const fetched = (await settledRequests(w)).filter((r) => r.file === "model-00001-of-00004.safetensors" && r.origin === "cdn" && r.status < 300);
    expect(fetched.length).toBe(2);
    const names = readdirSync(blobs);
    expect(names.filter((n) => n.length === 40).length).toBeGreaterThan(0);
    for (const name of names) {
      expect(name).toMatch(/^([0-9a-f]{40}|[0-9a-f]{64})$/);
      expect(contentName(join(blobs, name), name.length), name).toBe(name);
    }
  });

  it("Ctrl-C during the download exits 130 within 2 s, keeps the partial, frees the lock; the rerun resumes (case 2)", async () => {
    await using box = sandbox(world);
    const oid = await lfsOid(world, "model-00001-of-00004.safetensors");
    await world.setScenario({ rules: [{ match: "model-00001-of-00004.safetensors", origin: "cdn", bytesPerSecond: 100_000 }] });
    const run = box.start(["build", "--only", "weights"]);
    const blobs = join(modelCache(box), "blobs");
    const partialOf = () => (existsSync(blobs) ? readdirSync(blobs).find((n) => n.startsWith(`${oid}.`) && n.endsWith(".incomplete")) : undefined);
    await until(() => partialOf() !== undefined && statSync(join(blobs, partialOf() as string)).size > 100_000, "a partial file");
    const interrupted = Date.now();
    run.child.kill("SIGINT");
    const result = await run.exited();
    const ms = Date.now() - interrupted;
    expect(result.exitCode).toBe(130);
    expect(ms).toBeLessThan(2_000);
    expect(result.stderr).toContain("interrupted during weights; finished steps are kept. Rerun `llama3-trt build` to continue from weights.");
    const kept = statSync(join(blobs, partialOf() as string)).size;
    expect(kept).toBeGreaterThan(100_000);
    expect(existsSync(join(box.workdir, ".lock"))).toBe(false);
    expect(weightsRecord(box)).toBeUndefined();
    // The rerun continues the partial: shard 1 from where it stopped, nothing fetched twice.
    await world.setScenario({ rules: [] });
    await using w = useWorld();
    const rerun = await weights(box);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect((await settledRequests(w)).filter((r) => r.file === "model-00001-of-00004.safetensors" && r.origin === "cdn").map((r) => r.range)).toEqual([`bytes=${kept}-`]);
    expect(expectSnapshotSound(box)).toHaveLength(10);
    console.info(`Ctrl-C during the download: exit 130 after ${ms} ms`);
  });

  it("--model-dir uses local weights and names what a folder lacks", async () => {
    await using box = sandbox(world);
    expect((await weights(box)).exitCode).toBe(0);
    const snapshot = join(modelCache(box), "snapshots", readFileSync(join(modelCache(box), "refs/main"), "utf8"));
    const local = join(box.dir, "local-model");
    cpSync(snapshot, local, { recursive: true, dereference: true });
    await using w = useWorld();
    const used = await box.run(["build", "--only", "weights", "--model-dir", local]);
    expect(used.exitCode, used.stderr).toBe(0);
    expect(contentBytes(await settledRequests(w))).toBe(0);
    rmSync(join(local, "tokenizer.json"));
    const lacking = await box.run(["build", "--only", "weights", "--model-dir", local]);
    expect(lacking.exitCode).toBe(1);
    expect(lacking.stderr).toContain(`--model-dir ${local} lacks tokenizer.json`);
  });

  it("a disk that fills up during the download: exit 1 saying so, nothing published, state intact (case 15b)", async () => {
    if (process.getuid?.() !== 0) {
      console.warn("skipped: mounting a small tmpfs needs root");
      return;
    }
    await using box = sandbox(world);
    const small = join(box.dir, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", small]);
    try {
      await world.setScenario({ rules: [{ origin: "cdn", bytesPerSecond: 200_000 }] });
      const run = box.start(["build", "--only", "weights"], { HF_HUB_CACHE: small });
      const blobs = join(small, repoDir, "blobs");
      await until(() => existsSync(blobs) && readdirSync(blobs).some((n) => n.endsWith(".incomplete")), "the download to start");
      // Another program takes the rest of the disk.
      execFileSync("sh", ["-c", `dd if=/dev/zero of=${join(small, "filler")} bs=1M count=64 2>/dev/null || true`]);
      const result = await run.exited();
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/disk full while writing model-0000\d-of-00004\.safetensors into .* \(ENOSPC\)/);
      expect(readdirSync(blobs).filter((n) => n.length === 64)).toEqual([]);
      expect(existsSync(join(box.workdir, ".lock"))).toBe(false);
      // state.json, if written, still parses, and weights is not in it.
      expect(weightsRecord(box)).toBeUndefined();
    } finally {
      execFileSync("umount", [small]);
    }
  });

  describe("large files in ranges (256 kB ranges here; 128 MiB for real shards)", () => {
    const ranged = { LLAMA3_TRT_TEST_PART_BYTES: String(256 * 1024) };

    it("fetches a shard as several ranges at once and verifies the whole", async () => {
      await using box = sandbox(world);
      await using w = useWorld();
      const result = await weights(box, ranged);
      expect(result.exitCode, result.stderr).toBe(0);
      const oid = await lfsOid(world, "model-00001-of-00004.safetensors");
      const ranges = (await settledRequests(w)).filter((r) => r.origin === "cdn" && r.file === "model-00001-of-00004.safetensors").map((r) => r.range);
      expect(ranges.length).toBeGreaterThanOrEqual(3);
      expect(ranges).toContain("bytes=0-262143");
      expect(ranges).toContain("bytes=262144-524287");
      expect(sha256(join(modelCache(box), "blobs", oid))).toBe(oid);
      expect(blobsOf(box).filter((n) => n.includes(".incomplete"))).toEqual([]);
    });

    it("a ranged download killed half-way continues each range where it stopped", async () => {
      await using box = sandbox(world);
      const oid = await lfsOid(world, "model-00001-of-00004.safetensors");
      await world.setScenario({ rules: [{ match: "model-00001-of-00004.safetensors", origin: "cdn", bytesPerSecond: 60_000 }] });
      const run = box.start(["build", "--only", "weights"], ranged);
      const blobs = join(modelCache(box), "blobs");
      const sidecar = () => (existsSync(blobs) ? readdirSync(blobs).find((n) => n.startsWith(`${oid}.`) && n.endsWith(".parts")) : undefined);
      // Each range records its progress as it lands; wait until some is recorded.
      await until(() => {
        const name = sidecar();
        if (!name) return false;
        try {
          return (JSON.parse(readFileSync(join(blobs, name), "utf8")) as { done: number[] }).done.some((d) => d > 0);
        } catch {
          return false;
        }
      }, "recorded progress of shard 1", 120_000);
      run.child.kill("SIGKILL");
      await run.exited();
      await fetch(`${world.world.hubUrl}/_world/scenario`, { method: "DELETE" }).then((r) => r.body?.cancel());
      const record = JSON.parse(readFileSync(join(blobs, sidecar() as string), "utf8")) as { size: number; done: number[] };
      const kept = record.done.reduce((n, d) => n + d, 0);
      expect(kept).toBeGreaterThan(0);

      await using w = useWorld();
      const result = await weights(box, ranged);
      expect(result.exitCode, result.stderr).toBe(0);
      const served = (await settledRequests(w))
        .filter((r) => r.origin === "cdn" && r.file === "model-00001-of-00004.safetensors")
        .reduce((n, r) => n + r.bytesSent, 0);
      expect(served).toBe(record.size - kept);
      expect(sha256(join(blobs, oid))).toBe(oid);
      expect(readdirSync(blobs).filter((n) => n.includes(".incomplete"))).toEqual([]);
    });

    it("a server that ignores Range gets the file fetched whole", async () => {
      await using box = sandbox(world);
      await world.setScenario({ rules: [{ match: "model-00002-of-00004.safetensors", origin: "cdn", ignoreRange: true }] });
      const result = await weights(box, ranged);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(readFileSync(join(box.workdir, "logs/weights.log"), "utf8")).toContain(
        "model-00002-of-00004.safetensors: the server does not serve byte ranges; fetching it whole",
      );
      const oid = await lfsOid(world, "model-00002-of-00004.safetensors");
      expect(sha256(join(modelCache(box), "blobs", oid))).toBe(oid);
    });
  });

  it("refuses a download that cannot fit before the first byte; doctor calls it a blocker (case 15a)", async () => {
    if (process.getuid?.() !== 0) {
      console.warn("skipped: mounting a small tmpfs needs root");
      return;
    }
    await using box = sandbox(world);
    await using w = useWorld();
    const small = join(box.dir, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", small]);
    try {
      const result = await weights(box, { HF_HUB_CACHE: small });
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`Not enough disk space for the model: need [\\d.]+ MB in ${small}, [\\d.]+ MB free\\. Free some space, or point HF_HUB_CACHE`));
      // Only the model's three small files, read into memory to judge the model before the
      // download; not a byte of the weights, nothing written into the cache.
      const served = (await settledRequests(w)).filter((r) => r.file !== undefined && r.method === "GET" && r.status < 300);
      expect(served.map((r) => r.file).sort()).toEqual(["config.json", "generation_config.json", "tokenizer_config.json"]);
      expect(readdirSync(small)).toEqual([]);
      expect(weightsRecord(box)).toBeUndefined();
      expect(existsSync(join(box.workdir, ".lock"))).toBe(false);
      const doctor = await box.run(["doctor", "--json"], { HF_HUB_CACHE: small });
      expect(doctor.exitCode).toBe(1);
      expect((JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === "Disk")).toMatchObject({
        status: "blocker",
        detail: expect.stringMatching(new RegExp(`^need [\\d.]+ MB in ${small} for the download, [\\d.]+ MB free$`)),
      });
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

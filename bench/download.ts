// Download throughput and CPU cost of the weights step's downloader, as ratios to curl fetching
// the same files from the same local Hub stand-in in the same run:
// - curl one file after another, then `openssl dgst -sha256` of what it wrote: the check a careful
//   person runs (ours checks every sha256 before a blob gets its name);
// - that curl alone, and curl --parallel with as many transfers at once as we run files.
//   node bench/download.ts [MiB per shard, default 256] [per-connection cap in MB/s, default none] [--rounds N, default 3]
// With a cap, each connection is limited as a CDN limits one (the Hub's often gives a single
// connection far less than the link): that is where fetching files side by side pays.
// Rounds run the four one after another (ours first, then last, in turn), round after round, so
// that a busy moment of a shared machine falls on all of them alike; the medians and the median
// ratios are printed at the end.
// CPU is counted per GiB received and verified: ours from this process (all its threads, and split
// by thread), curl's and openssl's from the children's times the kernel gives this process once it
// has reaped them; the stand-in server's (which shares the machine's cores) beside each.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { neededForConversion } from "../src/hub/cache.ts";
import { concurrentFiles, downloadToCache } from "../src/hub/download.ts";
import { HubClient } from "../src/hub/hub-client.ts";
import { readHubEnv } from "../src/hub/hub-env.ts";
import { GATED_REPO_ID, GRANTED_TOKEN } from "../world/server/index.ts";

const { values: options, positionals } = parseArgs({ options: { rounds: { type: "string", default: "3" } }, allowPositionals: true });
const mebibytesPerShard = Number(positionals[0] ?? 256);
const capMegabytesPerSecond = positionals[1] === undefined ? undefined : Number(positionals[1]);
const rounds = Number(options.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: not a positive integer: ${options.rounds}`);
// Generated once and kept (a few seconds per shard), like the rest of the world.
const stateDir = fileURLToPath(new URL(`../.world/bench-hub-${mebibytesPerShard}mib/`, import.meta.url));
// The server runs in its own process, as the Hub does: in this one it would share the event loop
// with the downloader it is measured against, and curl would not have that handicap.
const child = spawn(process.execPath, [
  fileURLToPath(new URL("../world/server/main.ts", import.meta.url)),
  "--state-dir", stateDir, "--hub-port", "0", "--cdn-port", "0", "--recorder-host", "127.0.0.1", "--recorder-port", "0",
  "--bytes-per-shard", String(mebibytesPerShard * 1024 * 1024),
], { stdio: ["ignore", "pipe", "inherit"] });
const [readyLine] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
const server = JSON.parse(readyLine) as { ready: boolean; pid: number; hubUrl: string };
if (!server.ready) throw new Error(`the Hub stand-in did not start: ${readyLine}`);
if (capMegabytesPerSecond !== undefined) {
  const answer = await fetch(`${server.hubUrl}/_world/scenario`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ rules: [{ origin: "cdn", bytesPerSecond: capMegabytesPerSecond * 1_000_000 }] }),
  });
  if (!answer.ok) throw new Error(`could not set the per-connection cap: ${answer.status}`);
}
const scratch = mkdtempSync(join(tmpdir(), "llama3-trt-bench-"));

/** Threads of this process by what they do, as /proc names them. */
const threadKinds: Record<string, string> = {
  MainThread: "event loop",
  "libuv-worker": "file writes (libuv pool)",
  V8Worker: "GC helpers (V8)",
};

try {
  const hub = readHubEnv({ HF_ENDPOINT: server.hubUrl, HF_TOKEN: GRANTED_TOKEN, HF_HUB_CACHE: join(scratch, "hub"), HOME: scratch });
  const client = new HubClient(hub, new AbortController().signal);
  const commit = await client.resolveCommit(GATED_REPO_ID, "main");
  const files = (await client.listFiles(GATED_REPO_ID, commit)).filter((f) => neededForConversion(f.path));
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const gib = bytes / 2 ** 30;
  const urls = files.map((f) => `${server.hubUrl}/${GATED_REPO_ID}/resolve/${commit}/${f.path}`);
  const outputs = files.map((_, i) => join(scratch, `curl-${i}`));
  const lfs = files.map((f, i) => ({ file: f, output: outputs[i] as string })).filter(({ file }) => file.lfs);
  const run = promisify(execFile);
  const curlArgs = (parallel: boolean) => [
    "--silent",
    "--fail",
    "--location",
    "--header",
    `Authorization: Bearer ${GRANTED_TOKEN}`,
    ...(parallel ? ["--parallel", "--parallel-max", String(concurrentFiles)] : []),
    ...urls.flatMap((url, i) => ["--output", outputs[i] as string, url]),
  ];

  const names = ["llama3-trt (sha256, into the cache)", "curl one by one + openssl dgst", "  curl one by one", "  openssl dgst -sha256", `curl --parallel-max ${concurrentFiles}`];
  const results: Measured[][] = names.map(() => []);
  const threads: Map<string, number>[] = [];
  const tails: number[] = [];
  console.log(
    `${lfs.length} LFS files of ${files.length}, ${(bytes / 2 ** 20).toFixed(0)} MiB from the local Hub stand-in` +
      (capMegabytesPerSecond === undefined ? ", uncapped" : `, each connection capped at ${capMegabytesPerSecond} MB/s`) +
      `; ${rounds} round${rounds === 1 ? "" : "s"}`,
  );
  for (let round = 1; round <= rounds; round++) {
    const cacheDir = join(scratch, `hub-${round}`);
    // Ours first on odd rounds, last on even ones: whoever goes first writes into memory the
    // machine has not just freed, which on this VM costs the kernel several times more.
    const runOurs = async () => {
      const threadsBefore = threadCpuSeconds();
      let received = 0;
      let mostIn = 0;
      const measuredOurs = await measured("self", () =>
        downloadToCache(client, {
          repo: GATED_REPO_ID,
          revision: "main",
          commit,
          files,
          cacheDir,
          signal: new AbortController().signal,
          onBytes: (n) => {
            received += n;
            if (received >= 0.99 * bytes && mostIn === 0) mostIn = performance.now();
          },
          onFileDone: () => {},
          warn: (m) => console.warn(m),
        }),
      );
      // What is left once 99 % of the bytes are in (the small files come last): the last
      // hashing, the fsyncs, the renames and links, and the small files.
      tails.push((performance.now() - mostIn) / 1000);
      threads.push(threadShares(threadsBefore, threadCpuSeconds(), measuredOurs.cpu));
      rmSync(cacheDir, { recursive: true, force: true });
      return measuredOurs;
    };
    const runCurl = async () => {
      const curlSequential = await measured("children", () => run("curl", curlArgs(false)));
      // The check a careful person runs on what curl wrote; its digests must be the listing's.
      let digests = "";
      const openssl = await measured("children", async () => {
        digests = (await run("openssl", ["dgst", "-sha256", "-r", ...lfs.map(({ output }) => output)])).stdout;
      });
      const expected = lfs.map(({ file, output }) => `${file.oid} *${output}`).join("\n");
      if (digests.trim() !== expected) throw new Error(`openssl's digests differ from the listing:\n${digests}\nexpected:\n${expected}`);
      const curlParallel = await measured("children", () => run("curl", curlArgs(true)));
      for (const output of outputs) rmSync(output, { force: true });
      return { curlSequential, openssl, curlParallel };
    };
    const oursFirst = round % 2 === 1;
    const ours = oursFirst ? await runOurs() : undefined;
    const { curlSequential, openssl, curlParallel } = await runCurl();
    const oursMeasured = ours ?? (await runOurs());
    const careful = { seconds: curlSequential.seconds + openssl.seconds, cpu: curlSequential.cpu + openssl.cpu, serverCpu: curlSequential.serverCpu + openssl.serverCpu };
    [oursMeasured, careful, curlSequential, openssl, curlParallel].forEach((m, i) => results[i]?.push(m));
    console.log(`round ${round} of ${rounds} (llama3-trt ${oursFirst ? "first" : "last"}); load average ${loadAverage()}; llama3-trt took ${(tails.at(-1) as number).toFixed(2)} s after 99 % of the bytes were in`);
    names.forEach((name, i) => console.log(line(name, results[i]?.at(-1) as Measured)));
    console.log(`  ratio to (curl + openssl) ${(careful.seconds / oursMeasured.seconds).toFixed(2)}, to curl one by one ${(curlSequential.seconds / oursMeasured.seconds).toFixed(2)}`);
  }

  const medianOf = (i: number): Measured => {
    const all = results[i] as Measured[];
    return { seconds: median(all.map((m) => m.seconds)), cpu: median(all.map((m) => m.cpu)), serverCpu: median(all.map((m) => m.serverCpu)) };
  };
  console.log(`median of ${rounds} round${rounds === 1 ? "" : "s"}; load average now ${loadAverage()}`);
  names.forEach((name, i) => console.log(line(name, medianOf(i))));
  const ratio = (name: string, baseline: number) => {
    const each = (results[0] as Measured[]).map((ours, round) => (results[baseline]?.[round] as Measured).seconds / ours.seconds);
    console.log(`ratio llama3-trt / ${name.padEnd(22)} ${median(each).toFixed(2)}   (rounds: ${each.map((r) => r.toFixed(2)).join(" ")})`);
  };
  ratio("(curl + openssl)", 1);
  ratio("curl one by one", 2);
  ratio(`curl --parallel-max ${concurrentFiles}`, 4);
  console.log(`llama3-trt after 99 % of the bytes were in (the last hashing, fsync, rename; median): ${median(tails).toFixed(2)} s`);
  const kinds = [...new Set(threads.flatMap((t) => [...t.keys()]))];
  console.log(
    `llama3-trt CPU by thread (median, s/GiB): ${kinds.map((k) => `${k} ${(median(threads.map((t) => t.get(k) ?? 0)) / gib).toFixed(2)}`).join(", ")}`,
  );

  function line(name: string, m: Measured): string {
    const rate = `${(bytes / m.seconds / 1e6).toFixed(0)} MB/s`;
    return `${name.padEnd(36)} ${m.seconds.toFixed(2).padStart(6)} s ${rate.padStart(10)}   CPU ${(m.cpu / gib).toFixed(2)} s/GiB   stand-in server CPU ${(m.serverCpu / gib).toFixed(2)} s/GiB`;
  }
} finally {
  child.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
}

interface Measured {
  readonly seconds: number;
  /** CPU seconds, user + system. */
  readonly cpu: number;
  /** CPU seconds of the stand-in server meanwhile. */
  readonly serverCpu: number;
}

/**
 * Wall time and CPU time of `action`: of this process (`self`, every thread), or of the children
 * it started and reaped meanwhile (`children`, from /proc/self/stat: Node has no getrusage of
 * children). Asynchronously: the downloader's event loop must keep running.
 */
async function measured(whose: "self" | "children", action: () => Promise<unknown>): Promise<Measured> {
  const cpu = () => (whose === "self" ? selfCpuSeconds() : procCpuSeconds("/proc/self/stat", "children"));
  const cpuBefore = cpu();
  const serverBefore = procCpuSeconds(`/proc/${server.pid}/stat`, "own");
  const started = process.hrtime.bigint();
  await action();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cpu: cpu() - cpuBefore, serverCpu: procCpuSeconds(`/proc/${server.pid}/stat`, "own") - serverBefore };
}

function selfCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * utime + stime (`own`) or cutime + cstime (`children`: every child it has waited for) of a
 * process or thread, from its stat file (/proc/<pid>/stat, /proc/self/task/<tid>/stat), in clock
 * ticks (100 a second on Linux).
 */
function procCpuSeconds(statFile: string, whose: "own" | "children"): number {
  const stat = readFileSync(statFile, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; utime is field 14.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const at = whose === "own" ? 11 : 13;
  return (Number(fields[at]) + Number(fields[at + 1])) / 100;
}

/** CPU seconds of each live thread of this process, by thread id, with its name. */
function threadCpuSeconds(): Map<string, { name: string; seconds: number }> {
  const threads = new Map<string, { name: string; seconds: number }>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      threads.set(tid, { name, seconds: procCpuSeconds(`/proc/self/task/${tid}/stat`, "own") });
    } catch {
      // Ended meanwhile.
    }
  }
  return threads;
}

/**
 * Our CPU during the download by kind of thread. Threads that ended before the count (the
 * hashing thread: closed when the download ends) are what is left of the process's total.
 */
function threadShares(before: Map<string, { seconds: number }>, after: Map<string, { name: string; seconds: number }>, total: number): Map<string, number> {
  const shares = new Map<string, number>();
  let counted = 0;
  for (const [tid, { name, seconds }] of after) {
    const kind = threadKinds[name] ?? "other threads";
    const used = seconds - (before.get(tid)?.seconds ?? 0);
    shares.set(kind, (shares.get(kind) ?? 0) + used);
    counted += used;
  }
  shares.set("hashing thread (ended)", Math.max(0, total - counted));
  return shares;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

// Download throughput and CPU cost of the weights step's downloader, as ratios to curl fetching
// the same files from the same local Hub stand-in in the same run:
// - curl one file after another, then `openssl dgst -sha256` of what it wrote: the check a careful
//   person runs (ours checks every sha256 before a blob gets its name);
// - that curl alone, and curl --parallel with as many transfers at once as we run files.
//   node bench/download.ts [MiB per shard, default 256] [per-connection cap in MB/s, default none]
// With a cap, each connection is limited as a CDN limits one (the Hub's often gives a single
// connection far less than the link): that is where fetching files side by side pays.
// CPU is counted per GiB received and verified: ours from this process (all its threads), curl's
// and openssl's from the children's times the kernel gives this process once it has reaped them.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { neededForConversion } from "../src/hub/cache.ts";
import { concurrentFiles, downloadToCache } from "../src/hub/download.ts";
import { HubClient } from "../src/hub/hub-client.ts";
import { readHubEnv } from "../src/hub/hub-env.ts";
import { GATED_REPO_ID, GRANTED_TOKEN } from "../world/server/index.ts";

const mebibytesPerShard = Number(process.argv[2] ?? 256);
const capMegabytesPerSecond = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
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
const server = JSON.parse(readyLine) as { ready: boolean; hubUrl: string };
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

try {
  const hub = readHubEnv({ HF_ENDPOINT: server.hubUrl, HF_TOKEN: GRANTED_TOKEN, HF_HUB_CACHE: join(scratch, "hub"), HOME: scratch });
  const client = new HubClient(hub, new AbortController().signal);
  const commit = await client.resolveCommit(GATED_REPO_ID, "main");
  const files = (await client.listFiles(GATED_REPO_ID, commit)).filter((f) => neededForConversion(f.path));
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const urls = files.map((f) => `${server.hubUrl}/${GATED_REPO_ID}/resolve/${commit}/${f.path}`);
  const outputs = files.map((_, i) => join(scratch, `curl-${i}`));

  const ours = await measured("self", () =>
    downloadToCache(client, {
      repo: GATED_REPO_ID,
      revision: "main",
      commit,
      files,
      cacheDir: hub.cacheDir,
      signal: new AbortController().signal,
      onBytes: () => {},
      onFileDone: () => {},
      warn: (m) => console.warn(m),
    }),
  );

  const curlArgs = (parallel: boolean) => [
    "--silent",
    "--fail",
    "--location",
    "--header",
    `Authorization: Bearer ${GRANTED_TOKEN}`,
    ...(parallel ? ["--parallel", "--parallel-max", String(concurrentFiles)] : []),
    ...urls.flatMap((url, i) => ["--output", outputs[i] as string, url]),
  ];
  const run = promisify(execFile);
  const curlSequential = await measured("children", () => run("curl", curlArgs(false)));
  // The check a careful person runs on what curl wrote; its digests must be the listing's.
  const lfs = files.map((f, i) => ({ file: f, output: outputs[i] as string })).filter(({ file }) => file.lfs);
  let digests = "";
  const openssl = await measured("children", async () => {
    digests = (await run("openssl", ["dgst", "-sha256", "-r", ...lfs.map(({ output }) => output)])).stdout;
  });
  const expected = lfs.map(({ file, output }) => `${file.oid} *${output}`).join("\n");
  if (digests.trim() !== expected) throw new Error(`openssl's digests differ from the listing:\n${digests}\nexpected:\n${expected}`);
  const curlParallel = await measured("children", () => run("curl", curlArgs(true)));
  const careful = { seconds: curlSequential.seconds + openssl.seconds, cpu: curlSequential.cpu + openssl.cpu };

  const gib = bytes / 2 ** 30;
  const rate = (s: number) => `${(bytes / s / 1e6).toFixed(0)} MB/s`;
  const line = (name: string, m: Measured) =>
    console.log(`${name.padEnd(34)} ${m.seconds.toFixed(2).padStart(6)} s ${rate(m.seconds).padStart(10)}   CPU ${(m.cpu / gib).toFixed(2)} s/GiB`);
  const ratio = (name: string, baseline: Measured) => console.log(`ratio llama3-trt / ${name.padEnd(22)} ${(baseline.seconds / ours.seconds).toFixed(2)}`);
  console.log(
    `${lfs.length} LFS files of ${files.length}, ${(bytes / 2 ** 20).toFixed(0)} MiB from the local Hub stand-in` +
      (capMegabytesPerSecond === undefined ? ", uncapped" : `, each connection capped at ${capMegabytesPerSecond} MB/s`) +
      `; load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  line("llama3-trt (sha256, into the cache)", ours);
  line("curl one by one + openssl dgst", careful);
  line("  curl one by one", curlSequential);
  line("  openssl dgst -sha256", openssl);
  line(`curl --parallel-max ${concurrentFiles}`, curlParallel);
  ratio("(curl + openssl)", careful);
  ratio("curl one by one", curlSequential);
  ratio(`curl --parallel-max ${concurrentFiles}`, curlParallel);
} finally {
  child.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
}

interface Measured {
  readonly seconds: number;
  /** CPU seconds, user + system. */
  readonly cpu: number;
}

/**
 * Wall time and CPU time of `action`: of this process (`self`, every thread), or of the children
 * it started and reaped meanwhile (`children`, from /proc/self/stat: Node has no getrusage of
 * children). Asynchronously: the downloader's event loop must keep running.
 */
async function measured(whose: "self" | "children", action: () => Promise<unknown>): Promise<Measured> {
  const cpu = () => (whose === "self" ? selfCpuSeconds() : childrenCpuSeconds());
  const cpuBefore = cpu();
  const started = process.hrtime.bigint();
  await action();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cpu: cpu() - cpuBefore };
}

function selfCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** cutime + cstime of this process: the CPU of every child it has waited for, in clock ticks (100 a second on Linux). */
function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; cutime and cstime are 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

// Download throughput of the weights step's downloader, as a ratio to curl fetching the same files
// from the same local Hub stand-in in the same run (curl one file after another, as a person would,
// and curl --parallel with the same number of transfers at once).
//   node bench/download.ts [MB per shard, default 100] [per-connection cap in MB/s, default none]
// With a cap, each connection is limited as a CDN limits one (the Hub's often gives a single
// connection far less than the link): that is where fetching files side by side pays.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { neededForConversion } from "../src/hub/cache.ts";
import { concurrentFiles, downloadToCache } from "../src/hub/download.ts";
import { HubClient } from "../src/hub/hub-client.ts";
import { readHubEnv } from "../src/hub/hub-env.ts";
import { GATED_REPO_ID, GRANTED_TOKEN } from "../world/server/index.ts";

const megabytesPerShard = Number(process.argv[2] ?? 100);
const capMegabytesPerSecond = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
// Generated once and kept (about 5 s per 100 MB shard), like the rest of the world.
const stateDir = fileURLToPath(new URL(`../.world/bench-hub-${megabytesPerShard}mb/`, import.meta.url));
// The server runs in its own process, as the Hub does: in this one it would share the event loop
// with the downloader it is measured against, and curl would not have that handicap.
const child = spawn(process.execPath, [
  fileURLToPath(new URL("../world/server/main.ts", import.meta.url)),
  "--state-dir", stateDir, "--hub-port", "0", "--cdn-port", "0", "--recorder-host", "127.0.0.1", "--recorder-port", "0",
  "--bytes-per-shard", String(megabytesPerShard * 1_000_000),
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

  const ours = timed(() =>
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
  const oursSeconds = await ours;

  const curlArgs = (parallel: boolean) => [
    "--silent",
    "--fail",
    "--location",
    "--header",
    `Authorization: Bearer ${GRANTED_TOKEN}`,
    ...(parallel ? ["--parallel", "--parallel-max", String(concurrentFiles)] : []),
    ...urls.flatMap((url, i) => ["--output", join(scratch, `curl-${i}`), url]),
  ];
  // Asynchronously: the server answering curl lives in this very process.
  const curl = promisify(execFile);
  const curlSequential = await timed(() => curl("curl", curlArgs(false)));
  const curlParallel = await timed(() => curl("curl", curlArgs(true)));

  const rate = (s: number) => `${(bytes / s / 1e6).toFixed(0)} MB/s`;
  console.log(
    `${files.length} files, ${(bytes / 1e6).toFixed(0)} MB from the local Hub stand-in` +
      (capMegabytesPerSecond === undefined ? "" : `, each connection capped at ${capMegabytesPerSecond} MB/s`),
  );
  console.log(`llama3-trt downloader: ${oursSeconds.toFixed(2)} s, ${rate(oursSeconds)} (sha256 verified, into the HF cache)`);
  console.log(`curl, one after another: ${curlSequential.toFixed(2)} s, ${rate(curlSequential)}`);
  console.log(`curl --parallel-max ${concurrentFiles}: ${curlParallel.toFixed(2)} s, ${rate(curlParallel)}`);
  console.log(`ratio llama3-trt / curl sequential: ${(curlSequential / oursSeconds).toFixed(2)}`);
  console.log(`ratio llama3-trt / curl parallel:   ${(curlParallel / oursSeconds).toFixed(2)}`);
} finally {
  child.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await action();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

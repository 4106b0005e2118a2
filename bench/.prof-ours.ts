// scratch: only our downloader, for --cpu-prof
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { neededForConversion } from "../src/hub/cache.ts";
import { downloadToCache } from "../src/hub/download.ts";
import { HubClient } from "../src/hub/hub-client.ts";
import { readHubEnv } from "../src/hub/hub-env.ts";
import { GATED_REPO_ID, GRANTED_TOKEN } from "../world/server/index.ts";
const mib = Number(process.argv[2] ?? 256);
const cap = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const stateDir = fileURLToPath(new URL(`../.world/bench-hub-${mib}mib/`, import.meta.url));
const child = spawn(process.execPath, [fileURLToPath(new URL("../world/server/main.ts", import.meta.url)), "--state-dir", stateDir, "--hub-port", "0", "--cdn-port", "0", "--recorder-host", "127.0.0.1", "--recorder-port", "0", "--bytes-per-shard", String(mib * 1024 * 1024)], { stdio: ["ignore", "pipe", "inherit"] });
const [readyLine] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
const server = JSON.parse(readyLine) as { hubUrl: string };
if (cap !== undefined) await fetch(`${server.hubUrl}/_world/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rules: [{ origin: "cdn", bytesPerSecond: cap * 1e6 }] }) });
const scratch = mkdtempSync(join(tmpdir(), "prof-"));
try {
  const hub = readHubEnv({ HF_ENDPOINT: server.hubUrl, HF_TOKEN: GRANTED_TOKEN, HF_HUB_CACHE: join(scratch, "hub"), HOME: scratch });
  const client = new HubClient(hub, new AbortController().signal);
  const commit = await client.resolveCommit(GATED_REPO_ID, "main");
  const files = (await client.listFiles(GATED_REPO_ID, commit)).filter((f) => neededForConversion(f.path));
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await downloadToCache(client, { repo: GATED_REPO_ID, revision: "main", commit, files, cacheDir: hub.cacheDir, signal: new AbortController().signal, onBytes: () => {}, onFileDone: () => {}, warn: (m) => console.warn(m) });
  const c = process.cpuUsage(c0);
  console.log(`ours ${((performance.now() - t0) / 1000).toFixed(2)} s, cpu user ${(c.user / 1e6).toFixed(2)} sys ${(c.system / 1e6).toFixed(2)}`);
} finally { child.kill(); rmSync(scratch, { recursive: true, force: true }); }

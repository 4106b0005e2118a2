/**
 * Starting and stopping the world server (`node world/server/main.ts`: Hub stand-in, CDN and
 * recorder in one process). It is started detached with its own log and pid file. Because its
 * code changes while people work on it, a server the world started is restarted when the
 * hash of world/server/ or its arguments differ from those it was started with.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { walk } from "./files.ts";
import type { Log } from "./log.ts";
import { httpStatus } from "./net.ts";
import type { WorldConfig } from "./paths.ts";
import { isAlive, livePid, removeFile, spawnDetached, stopProcess, tail, waitUntil } from "./processes.ts";

export interface ServerUrls {
  hubUrl: string;
  cdnUrl: string;
  recorderUrl: string;
}

export interface ServerResult extends ServerUrls {
  pid: number;
  started: boolean;
  /** Started in place of a server of ours that ran older code or other arguments. */
  replaced: boolean;
}

/** What we record beside the pid file about the server we started. */
interface ServerMeta {
  pid: number;
  args: string[];
  codeHash: string;
}

/** What the server writes to `<state-dir>/server.json` (and prints as its ready line). */
interface ServerJson extends Partial<ServerUrls> {
  pid?: number;
}

const ENTRY = path.join("world", "server", "main.ts");

export function serverUrls(config: WorldConfig, recorderHost: string): ServerUrls {
  return {
    hubUrl: `http://127.0.0.1:${config.ports.hub}`,
    cdnUrl: `http://127.0.0.1:${config.ports.cdn}`,
    recorderUrl: `http://${recorderHost}:${config.ports.recorder}`,
  };
}

/** Whether something answers HTTP on the Hub port (any status: the whoami probe wants a token). */
export async function hubAnswers(hubUrl: string): Promise<boolean> {
  return (await httpStatus(`${hubUrl}/api/whoami-v2`)) !== undefined;
}

export async function ensureServer(config: WorldConfig, recorderHost: string, log: Log): Promise<ServerResult> {
  const urls = serverUrls(config, recorderHost);
  const entry = path.join(config.repoRoot, ENTRY);
  const args = [
    entry,
    "--state-dir", config.root,
    "--hub-port", String(config.ports.hub),
    "--cdn-port", String(config.ports.cdn),
    "--recorder-host", recorderHost,
    "--recorder-port", String(config.ports.recorder),
  ];
  const codeHash = await serverCodeHash(config);

  let replaced = false;
  const running = await readServerJson(config);
  const runningPid = running?.pid !== undefined && (await isAlive(running.pid)) ? running.pid : undefined;
  if (runningPid !== undefined && (await hubAnswers(urls.hubUrl))) {
    const meta = await readMeta(config);
    const ours = meta?.pid === runningPid;
    if (!ours) {
      log(`server: a world server (pid ${runningPid}) answers on ${urls.hubUrl}, reusing it`);
      return { ...urls, ...definedUrls(running), pid: runningPid, started: false, replaced: false };
    }
    if (meta.codeHash === codeHash && JSON.stringify(meta.args) === JSON.stringify(args)) {
      log(`server: reusing the world server (pid ${runningPid}) on ${urls.hubUrl}`);
      return { ...urls, ...definedUrls(running), pid: runningPid, started: false, replaced: false };
    }
    log(`server: world/server/ or its arguments changed since pid ${runningPid} started, restarting it`);
    await stopProcess(runningPid, 10_000);
    replaced = true;
  } else if (await hubAnswers(urls.hubUrl)) {
    throw new Error(`something that is not this world's server answers on ${urls.hubUrl}: stop it or set WORLD_HUB_PORT to a free port`);
  } else {
    // A server of ours that is alive but no longer answers: replace it.
    const stale = await livePid(config.files.serverPid, ENTRY);
    if (stale !== undefined) {
      await stopProcess(stale, 10_000);
      replaced = true;
    }
  }

  log(`server: starting ${ENTRY} (hub ${urls.hubUrl}, cdn ${urls.cdnUrl}, recorder ${urls.recorderUrl}; log ${config.files.serverLog})`);
  const child = await spawnDetached(process.execPath, args, {
    cwd: config.repoRoot,
    logFile: config.files.serverLog,
    pidFile: config.files.serverPid,
  });
  await writeFile(config.files.serverMeta, `${JSON.stringify({ pid: child.pid, args, codeHash } satisfies ServerMeta)}\n`);
  const ready = await waitUntil(
    "the world server did not come up",
    async () => {
      const json = await readServerJson(config);
      if (json?.pid !== child.pid) return undefined;
      return (await hubAnswers(urls.hubUrl)) ? json : undefined;
    },
    { timeoutMs: 30_000, exited: child.exited, describe: () => tail(config.files.serverLog) },
  );
  log(`server: answers (pid ${child.pid})`);
  return { ...urls, ...definedUrls(ready), pid: child.pid, started: true, replaced };
}

export async function stopServer(config: WorldConfig, log: Log): Promise<void> {
  const pid = await livePid(config.files.serverPid, ENTRY);
  if (pid === undefined) {
    log("server: the world server the world started is not running");
  } else {
    const how = await stopProcess(pid, 10_000);
    log(`server: stopped (pid ${pid}, ${how})`);
  }
  await removeFile(config.files.serverPid);
  await removeFile(config.files.serverMeta);
}

async function serverCodeHash(config: WorldConfig): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await walk(path.join(config.repoRoot, "world", "server"))) {
    hash.update(`\0${file.name}\0`);
    hash.update(await readFile(file.source));
  }
  return hash.digest("hex");
}

async function readServerJson(config: WorldConfig): Promise<ServerJson | undefined> {
  try {
    return JSON.parse(await readFile(config.files.serverJson, "utf8")) as ServerJson;
  } catch {
    return undefined;
  }
}

async function readMeta(config: WorldConfig): Promise<ServerMeta | undefined> {
  try {
    return JSON.parse(await readFile(config.files.serverMeta, "utf8")) as ServerMeta;
  } catch {
    return undefined;
  }
}

/** The URLs the server itself reports, where it reports them (they win over our own guess). */
function definedUrls(json: ServerJson | undefined): Partial<ServerUrls> {
  const urls: Partial<ServerUrls> = {};
  if (json?.hubUrl) urls.hubUrl = json.hubUrl;
  if (json?.cdnUrl) urls.cdnUrl = json.cdnUrl;
  if (json?.recorderUrl) urls.recorderUrl = json.recorderUrl;
  return urls;
}

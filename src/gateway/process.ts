/**
 * The gateway beside a served Triton: how `serve` starts it, and how `stop`, `status` and the
 * next `serve` find it.
 *
 * It runs as a detached process of ours (`llama3-trt gateway …`, the same CLI), not in a
 * container: the gateway is Node code, the Triton image has no Node and the user's registry has
 * no Node image we could count on (nvcr.io's Triton image is what there is), while the host that
 * runs `llama3-trt` has Node by definition. Detached, so that `serve --detach` can return and a
 * Ctrl-C in the terminal of a foreground `serve` reaches only `serve` (which then stops it).
 *
 * Finding it again: the gateway process itself writes `<workdir>/gateway.json` (its pid, the
 * start time of that pid from /proc, its URL) as the first thing it does, and removes it when it
 * ends. So a `kill -9` of the CLI at any moment leaves either no gateway, or a gateway with its
 * file. A file whose pid is gone, or now belongs to another process (its start time differs),
 * is stale and is removed.
 */
import { spawn } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { FailedError } from "../common/errors.ts";
import { isAlive } from "../pipeline/lock.ts";
import type { WorkdirPaths } from "../pipeline/workdir.ts";

export interface GatewayRecord {
  readonly pid: number;
  /** The pid's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused pid apart. */
  readonly processStart: string | null;
  readonly url: string;
  readonly tritonUrl: string;
  readonly startedAt: string;
}

export function gatewayRecordFile(paths: WorkdirPaths): string {
  return join(paths.root, "gateway.json");
}

export function gatewayLogFile(paths: WorkdirPaths): string {
  return join(paths.logs, "gateway.log");
}

/** When a process started, as /proc says; null where there is no /proc. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Written by the gateway process about itself. */
export async function writeGatewayRecord(file: string, record: Omit<GatewayRecord, "pid" | "processStart" | "startedAt">): Promise<void> {
  const own: GatewayRecord = { pid: process.pid, processStart: processStart(process.pid), startedAt: new Date().toISOString(), ...record };
  await writeFileAtomic(file, `${JSON.stringify(own, null, 2)}\n`);
}

export type GatewayState =
  | { readonly state: "running"; readonly record: GatewayRecord }
  | { readonly state: "not running" }
  | { readonly state: "stale"; readonly record: GatewayRecord };

/** This workdir's gateway, if its process is still the one that wrote the record. */
export async function findGateway(paths: WorkdirPaths): Promise<GatewayState> {
  const text = await readFile(gatewayRecordFile(paths), "utf8").catch(() => undefined);
  if (text === undefined) return { state: "not running" };
  let record: GatewayRecord;
  try {
    record = JSON.parse(text) as GatewayRecord;
  } catch {
    // Written atomically, so never half; but not ours to trust either.
    return { state: "stale", record: { pid: 0, processStart: null, url: "", tritonUrl: "", startedAt: "" } };
  }
  if (!Number.isInteger(record.pid) || record.pid <= 0 || !isAlive(record.pid)) return { state: "stale", record };
  if (record.processStart !== null && processStart(record.pid) !== record.processStart) return { state: "stale", record };
  return { state: "running", record };
}

/**
 * Ends this workdir's gateway (SIGTERM, then SIGKILL after `graceMs`) and removes its record.
 * Returns a description of what it stopped, or undefined when none was running.
 */
export async function stopGateway(paths: WorkdirPaths, graceMs = 5_000): Promise<string | undefined> {
  const found = await findGateway(paths);
  if (found.state !== "running") {
    await rm(gatewayRecordFile(paths), { force: true });
    return undefined;
  }
  const { pid } = found.record;
  const stillOurs = () => isAlive(pid) && (found.record.processStart === null || processStart(pid) === found.record.processStart);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    // Gone in between.
  }
  const deadline = Date.now() + graceMs;
  while (stillOurs() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (stillOurs()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone in between.
    }
    while (stillOurs()) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await rm(gatewayRecordFile(paths), { force: true });
  return `gateway (pid ${pid}, ${found.record.url})`;
}

/** How to start this same CLI again: node, its options, the entry script. */
export interface SelfCommand {
  readonly execPath: string;
  readonly args: readonly string[];
}

export interface GatewayLaunch {
  readonly self: SelfCommand;
  readonly paths: WorkdirPaths;
  readonly host: string;
  readonly port: number;
  readonly tritonUrl: string;
  readonly tritonGrpc: string;
  readonly model: string;
  readonly modelDir: string;
  /** Given to the process in its environment (LLAMA3_TRT_API_KEY), never on its command line. */
  readonly apiKey: string | null;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** The command line of the gateway process: no secret in it (`ps` shows it to every user). */
export function gatewayArgv(launch: Omit<GatewayLaunch, "self" | "env" | "apiKey">): string[] {
  return [
    "--workdir",
    launch.paths.root,
    "gateway",
    "--triton-url",
    launch.tritonUrl,
    "--triton-grpc",
    launch.tritonGrpc,
    "--host",
    launch.host,
    "--port",
    String(launch.port),
    "--model",
    launch.model,
    "--model-dir",
    launch.modelDir,
    "--record",
    gatewayRecordFile(launch.paths),
  ];
}

/** What the gateway process may inherit: nothing it does not need (the settings come as flags). */
const inherited = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|TERM|CI|NO_COLOR|FORCE_COLOR|NODE_EXTRA_CA_CERTS|LLAMA3_TRT_TEST_[A-Z_]+)$/;

/**
 * The gateway's environment: this one less every secret it has no use for (HF_TOKEN, Docker and
 * git credentials, other LLAMA3_TRT_* settings), plus the API key as this run resolved it (flag,
 * environment or file), the one secret it needs; never on its command line.
 */
export function gatewayEnv(env: Readonly<Record<string, string | undefined>>, apiKey: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && inherited.test(name)) out[name] = value;
  if (apiKey !== null) out.LLAMA3_TRT_API_KEY = apiKey;
  return out;
}

/** Starts the gateway detached, its output appended to logs/gateway.log; returns its pid. */
export async function spawnGateway(launch: GatewayLaunch): Promise<{ pid: number; log: string }> {
  await mkdir(launch.paths.logs, { recursive: true });
  const log = gatewayLogFile(launch.paths);
  const fd = openSync(log, "a", 0o644);
  try {
    const child = spawn(launch.self.execPath, [...launch.self.args, ...gatewayArgv(launch)], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: gatewayEnv(launch.env, launch.apiKey),
      // Its settings are its flags: no llama3-trt.yaml of the folder serve ran in applies to it.
      cwd: launch.paths.root,
    });
    const pid = child.pid;
    child.unref();
    if (pid === undefined) throw new FailedError(`The gateway could not be started (${launch.self.execPath}).`);
    return { pid, log };
  } finally {
    closeSync(fd);
  }
}

/**
 * Waits until the gateway answers /health with 200 (it is, and Triton behind it is, ready).
 * Fails at once when its process ends, quoting its log.
 */
export async function waitForGateway(url: string, pid: number, log: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const status = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })
      .then(async (r) => {
        await r.body?.cancel();
        return r.status;
      })
      .catch(() => 0);
    if (status === 200) return;
    if (!isAlive(pid)) {
      const tail = (await readFile(log, "utf8").catch(() => "")).trimEnd().split("\n").slice(-20);
      throw new FailedError(`The OpenAI gateway exited while starting.\n  Last lines of its log:\n${tail.map((l) => `    ${l}`).join("\n")}\n  Full log: ${log}`);
    }
    if (Date.now() > deadline) {
      throw new FailedError(`The OpenAI gateway did not answer ${url}/health within ${Math.round(timeoutMs / 1000)} s. See ${log}.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

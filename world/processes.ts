/**
 * The long-running parts of the world (dockerd, the registry, the world server) are started
 * detached, each with its own log file and pid file, so they outlive the `world:up` that started
 * them and `world:down` can find and stop exactly those processes later.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface DetachedProcess {
  pid: number;
  /** Settles when the process exits while we still watch it (an early crash). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `command` in its own session, output appended to `logFile`, pid written to `pidFile`. */
export async function spawnDetached(
  command: string,
  args: readonly string[],
  options: { logFile: string; pidFile: string; cwd?: string; env?: NodeJS.ProcessEnv },
): Promise<DetachedProcess> {
  await mkdir(path.dirname(options.logFile), { recursive: true });
  await mkdir(path.dirname(options.pidFile), { recursive: true });
  const log = openSync(options.logFile, "a");
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      // Its own process group: a Ctrl-C on `world:up` or the end of a test run does not reach it.
      detached: true,
      stdio: ["ignore", log, log],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    // Spawn failures (ENOENT) are reported asynchronously: wait for "spawn" or "error".
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${command}`);
    child.unref();
    exited.catch(() => {});
    await writeFile(options.pidFile, `${pid}\n`);
    return { pid, exited };
  } finally {
    closeSync(log);
  }
}

/** The pid in a pid file, or undefined when there is none or it is not a number. */
export async function readPidFile(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, "utf8")).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie (a child we started and that died stays in the table until reaped). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Field 3, after the parenthesised command name (which may itself contain spaces).
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The process's argv, to make sure a pid from a pid file was not reused by something else. */
export async function commandLine(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The pid in `pidFile` when that process is alive and its command line contains `marker`
 * (a pid file left by a crash may name a pid that now belongs to another program).
 */
export async function livePid(pidFile: string, marker: string): Promise<number | undefined> {
  const pid = await readPidFile(pidFile);
  if (pid === undefined || !(await isAlive(pid))) return undefined;
  const argv = await commandLine(pid);
  return argv.some((arg) => arg.includes(marker)) ? pid : undefined;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs: number): Promise<"terminated" | "killed" | "gone"> {
  if (!(await isAlive(pid))) return "gone";
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return "gone";
  }
  if (await waitForExit(pid, graceMs)) return "terminated";
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return "terminated";
  }
  if (await waitForExit(pid, 10_000)) return "killed";
  throw new Error(`process ${pid} did not exit after SIGKILL`);
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isAlive(pid))) return true;
    await sleep(100);
  }
  return !(await isAlive(pid));
}

export async function removeFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

/**
 * Polls `check` until it returns a value other than undefined. Fails early when `exited`
 * settles (the process we wait for died) and after `timeoutMs`, with `describe()` appended
 * (the tail of the process's log) so the failure says why.
 */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; exited?: DetachedProcess["exited"]; describe?: () => Promise<string> },
): Promise<T> {
  let exit: { code: number | null; signal: NodeJS.Signals | null } | Error | undefined;
  options.exited?.then(
    (value) => (exit = value),
    (error: unknown) => (exit = error instanceof Error ? error : new Error(String(error))),
  );
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    const detail = async () => (options.describe ? `\n${await options.describe()}` : "");
    if (exit !== undefined) {
      const how = exit instanceof Error ? exit.message : exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
      throw new Error(`${what}: the process ended (${how})${await detail()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: still not ready after ${Math.round(options.timeoutMs / 1000)} s${await detail()}`);
    }
    await sleep(options.intervalMs ?? 200);
  }
}

/** The last `lines` lines of a log file, indented, for error messages. */
export async function tail(file: string, lines = 30): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return `(no log at ${file})`;
  }
  const last = text.trimEnd().split("\n").slice(-lines);
  return [`last ${last.length} lines of ${file}:`, ...last.map((line) => `  ${line}`)].join("\n");
}

/** Live processes whose argv satisfies `match` (a scan of /proc), e.g. to count world servers. */
export async function findProcesses(match: (argv: string[]) => boolean): Promise<Array<{ pid: number; argv: string[] }>> {
  const found: Array<{ pid: number; argv: string[] }> = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const argv = await commandLine(pid);
    if (argv.length > 0 && match(argv) && (await isAlive(pid))) found.push({ pid, argv });
  }
  return found;
}

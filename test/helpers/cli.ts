import { type ChildProcess, execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("./llama3-trt.ts", import.meta.url));

export interface CliResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly cwd: string;
  /** The whole environment of the child: tests pin it rather than inherit the developer's. */
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
  /** Options for node itself, before the entry point (e.g. `--import` of a test preload). */
  readonly nodeArgs?: readonly string[];
}

/** A pinned, minimal environment: CI set, no colour, nothing of the developer's HF or Docker setup. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    CI: "1",
    NO_COLOR: "1",
    ...extra,
  };
}

/** CLI processes started by tests and still running, so that a test whose engine died can end them. */
const running = new Set<ChildProcess>();

/** Registers a CLI child until it exits. */
export function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

/** SIGKILLs every CLI a test started that is still running (the engine went away under it). */
export function killRunningClis(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** Runs `llama3-trt <args>` as a subprocess, the way a user or a CI job does. */
export function cli(args: readonly string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", ...(options.nodeArgs ?? []), entry, ...args],
      { cwd: options.cwd, env: options.env ?? baseEnv(), timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") return reject(error);
        resolve({ exitCode: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      },
    );
    track(child);
  });
}

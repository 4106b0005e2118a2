/**
 * Running the product against the test world, as a user would: a fresh folder with its own
 * HOME (so its own Hugging Face cache), the world's environment, the CLI as a subprocess.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { baseEnv, cli, type CliResult, track } from "./cli.ts";
import { engineGone } from "./engine-watch.ts";
import type { SpawnRecord } from "./spawn-trace.ts";
import type { World } from "./world.ts";

const entry = fileURLToPath(new URL("./llama3-trt.ts", import.meta.url));
const spawnTrace = new URL("./spawn-trace.ts", import.meta.url).href;

export interface SandboxOptions {
  /** Record every child process the CLI starts (./spawn-trace.ts); read them with `spawns()`. */
  readonly traceSpawns?: boolean;
}

export interface Sandbox extends AsyncDisposable {
  readonly dir: string;
  readonly workdir: string;
  /** The `dev.llama3-trt.workdir` label of this workdir's containers. */
  readonly workdirId: string;
  readonly env: Record<string, string>;
  run(args: readonly string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  /** Starts the CLI without waiting, for signal and concurrency tests. */
  start(args: readonly string[], extraEnv?: Record<string, string>): Running;
  /** The child processes the CLI started so far (with `traceSpawns`). */
  spawns(): SpawnRecord[];
}

export interface Running {
  readonly child: ChildProcess;
  readonly output: () => { stdout: string; stderr: string };
  exited(): Promise<CliResult>;
}

export function sandbox(world: World, options: SandboxOptions = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), "llama3-trt-it-"));
  mkdirSync(join(dir, "home"));
  const workdir = join(dir, "llama3-trt");
  const spawnLog = join(dir, "spawns.jsonl");
  const env = baseEnv({ ...world.env, HOME: join(dir, "home"), ...(options.traceSpawns ? { LLAMA3_TRT_TEST_SPAWN_LOG: spawnLog } : {}) });
  const nodeArgs = options.traceSpawns ? ["--import", spawnTrace] : [];
  const running: Running[] = [];
  return {
    dir,
    workdir,
    workdirId: createHash("sha256").update(workdir).digest("hex").slice(0, 16),
    env,
    run: async (args, extraEnv = {}) => {
      const result = await cli(args, { cwd: dir, env: { ...env, ...extraEnv }, timeoutMs: 240_000, nodeArgs });
      // A CLI killed because the engine went away: say that, not "exit 137".
      const gone = engineGone();
      if (gone) throw gone;
      return result;
    },
    start(args, extraEnv = {}) {
      const child = track(
        spawn(process.execPath, ["--disable-warning=ExperimentalWarning", ...nodeArgs, entry, ...args], {
          cwd: dir,
          env: { ...env, ...extraEnv },
          stdio: ["ignore", "pipe", "pipe"],
        }),
      );
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      const done = new Promise<CliResult>((resolve) =>
        child.on("exit", (code, signal) => resolve({ exitCode: code ?? (signal === "SIGKILL" ? 137 : 128), stdout, stderr })),
      );
      const handle = { child, output: () => ({ stdout, stderr }), exited: () => done };
      running.push(handle);
      return handle;
    },
    spawns: () =>
      existsSync(spawnLog)
        ? readFileSync(spawnLog, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((line) => JSON.parse(line) as SpawnRecord)
        : [],
    [Symbol.asyncDispose]: async () => {
      for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Makes the next run(s) of a stand-in behave as a test needs (sleep, fail, ignore SIGINT, OOM). */
export async function setBehaviour(world: World, tool: string, behaviour: Record<string, unknown>, times?: number): Promise<void> {
  const response = await fetch(`${recorderUrl(world)}/behaviour`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ tool, behaviour, ...(times === undefined ? {} : { times }) }),
  });
  if (!response.ok) throw new Error(`POST /behaviour → ${response.status}: ${await response.text()}`);
}

export async function clearBehaviour(world: World): Promise<void> {
  const response = await fetch(`${recorderUrl(world)}/behaviour`, { method: "DELETE" });
  await response.body?.cancel();
}

function recorderUrl(world: World): string {
  return world.world.recorderUrl;
}

/** Polls until `check` holds (a stand-in started, a file appeared), or fails after `timeoutMs`. */
export async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    const gone = engineGone();
    if (gone) throw gone;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One step of `plan --json`, with the work fields the contract names. */
export interface PlanStep {
  id: string;
  state: string;
  reason: string;
  container?: { image: string; cmd: string[]; workingDir: string; mounts: { host: string; container: string; readOnly: boolean }[]; gpus: string };
  git?: { url: string; ref: string; dir: string };
  weights?: { repo: string; revision: string; files: { path: string; size: number }[] };
  image?: { ref: string; action: string; base?: string };
}

/** `plan --json` in a sandbox, which must succeed. */
export async function plan(box: Sandbox, args: readonly string[] = [], env: Record<string, string> = {}): Promise<PlanStep[]> {
  const result = await box.run(["plan", "--json", ...args], env);
  expect(result.exitCode, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { steps: PlanStep[] }).steps;
}

export const stateOf = (steps: readonly PlanStep[]): Record<string, string> => Object.fromEntries(steps.map((s) => [s.id, s.state]));

/** A sandbox whose `build` has run to the end: the starting point of most pipeline tests. */
export async function builtSandbox(world: World): Promise<Sandbox> {
  const box = sandbox(world);
  const result = await box.run(["build"]);
  expect(result.exitCode, result.stderr + result.stdout).toBe(0);
  return box;
}

// How long the everyday commands take on a finished build (`build` with nothing to do, `plan`,
// `status`), each as a ratio to `llama3-trt --version` (the cost of starting the CLI at all), all
// measured here in the same run against the test world. Goal: ≤ 2× and < 1 s.
//   npm run world:up && npm run build && node bench/noop-build.ts [runs]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readWorldFile } from "../test/helpers/world.ts";

const runs = Number(process.argv[2] ?? 7);
const bin = fileURLToPath(new URL("../bin/llama3-trt.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "llama3-trt-bench-"));
const env = { ...process.env, ...readWorldFile().env, HOME: dir, CI: "1" };

function timed(args: string[], extraEnv: Record<string, string> = {}): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, env: { ...env, ...extraEnv }, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`llama3-trt ${args.join(" ")} failed:\n${result.stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

try {
  timed(["build"]);
  const commands = [["--version"], ["build"], ["plan"], ["status"]];
  const times = new Map<string, number[]>([...commands.map((c): [string, number[]] => [c.join(" "), []]), ["build offline", []]]);
  // Interleaved, so a slow moment of the machine hits every command alike. "build offline"
  // (HF_HUB_OFFLINE=1: no Hub request) shows what asking the Hub whether main moved costs.
  for (let i = 0; i < runs; i++) {
    for (const command of commands) times.get(command.join(" "))?.push(timed(command));
    times.get("build offline")?.push(timed(["build"], { HF_HUB_OFFLINE: "1" }));
  }
  const version = median(times.get("--version") ?? []);
  console.log(`llama3-trt --version: median ${version.toFixed(0)} ms over ${runs} runs`);
  for (const name of [...times.keys()].slice(1)) {
    const ms = median(times.get(name) ?? []);
    console.log(`llama3-trt ${name.padEnd(13)} (nothing to do): median ${ms.toFixed(0)} ms, ratio to --version ${(ms / version).toFixed(2)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

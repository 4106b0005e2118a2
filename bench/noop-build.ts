// How long a `build` with nothing to do takes, as a ratio to `llama3-trt --version` (the cost of
// starting the CLI at all), both measured here in the same run against the test world.
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

function timed(args: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, env, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`llama3-trt ${args.join(" ")} failed:\n${result.stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

try {
  timed(["build"]);
  const version: number[] = [];
  const noop: number[] = [];
  // Interleaved, so a slow moment of the machine hits both sides alike.
  for (let i = 0; i < runs; i++) {
    version.push(timed(["--version"]));
    noop.push(timed(["build"]));
  }
  const v = median(version);
  const b = median(noop);
  console.log(`llama3-trt --version: median ${v.toFixed(0)} ms over ${runs} runs`);
  console.log(`llama3-trt build (nothing to do): median ${b.toFixed(0)} ms over ${runs} runs`);
  console.log(`ratio no-op build / --version: ${(b / v).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Whether `llama3-trt bench` itself keeps up: it loads an OpenAI-shaped server of the tests
// (test/helpers/openai-sse-server.ts) told to stream a token every ITL_MS to as many requests as
// come, at rising concurrency, and prints the measured ITL and TTFT as ratios to those measured at
// concurrency 1 in the same run, with the client's event-loop lag. A client that is the bottleneck
// shows ratios well above 1 and a lag warning. No world needed; the server shares the machine.
//   node bench/bench-client.ts [concurrency list, default 1,16,64] [itl ms, default 10]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchReport } from "../src/bench/report.ts";
import { startOpenAiServer } from "../test/helpers/openai-sse-server.ts";
import { realLlama3TokenizerJson } from "../world/llama3-tokenizer.ts";
import { tokenizerConfigJson } from "../world/server/llama3-files.ts";

const concurrency = process.argv[2] ?? "1,16,64";
const itlMs = Number(process.argv[3] ?? 10);
const entry = fileURLToPath(new URL("../test/helpers/llama3-trt.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "llama3-trt-bench-client-"));
const modelDir = join(dir, "model");
mkdirSync(modelDir);
writeFileSync(join(modelDir, "tokenizer.json"), realLlama3TokenizerJson());
writeFileSync(join(modelDir, "tokenizer_config.json"), tokenizerConfigJson());

try {
  await using server = await startOpenAiServer({ ttftMs: 50, itlMs, slots: 1_000 });
  // Asynchronously: a synchronous spawn would block this process, and with it the server.
  const child = spawn(process.execPath, [entry, "bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--concurrency", concurrency, "--output-len", "64", "--input-len", "64", "--json"], {
    cwd: dir,
    env: { ...process.env, CI: "1", HOME: dir },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`bench exited ${code}`);
  const doc = JSON.parse(stdout) as BenchReport;
  const base = doc.points[0];
  if (!base) throw new Error("no points");
  console.log(`\nserver: TTFT 50 ms, ITL ${itlMs} ms, no limit on requests at once; baseline = c=${base.concurrency}`);
  for (const p of doc.points) {
    const r = (a: number | null, b: number | null) => ((a ?? 0) / (b ?? 1)).toFixed(2);
    console.log(
      `c=${String(p.concurrency).padEnd(4)} ITL p50 ${p.itl_ms.p50?.toFixed(1)} ms (x${r(p.itl_ms.p50, base.itl_ms.p50)}), ITL p99 x${r(p.itl_ms.p99, base.itl_ms.p99)}, TTFT p50 x${r(p.ttft_ms.p50, base.ttft_ms.p50)}, ` +
        `${p.output_tokens_per_s.toFixed(0)} tokens/s timed, client event-loop lag p99 ${p.client.event_loop_lag_p99_ms.toFixed(1)} ms${p.client.bottleneck ? " (client-bound)" : ""}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

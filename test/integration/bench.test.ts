/**
 * `bench` against the world's Triton stand-in, served by the product from a real build: the
 * stand-in is told its pace (ttftMs, itlMs) and holds as many requests at once as the engine's
 * max_batch_size (2 here), as TensorRT-LLM's in-flight batcher does. Figures are checked as
 * ratios to what the stand-in was told, in bands wide enough for a loaded 2-core machine.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { XMLValidator } from "fast-xml-parser";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../../src/bench/report.ts";
import { realLlama3TokenizerJson } from "../../world/llama3-tokenizer.ts";
import { GENERATION_CONFIG_JSON, tokenizerConfigJson } from "../../world/server/llama3-files.ts";
import { expectEveryField } from "../helpers/bench.ts";
import { containersWithLabel } from "../helpers/docker.ts";
import { freePorts } from "../helpers/ports.ts";
import { clearBehaviour, type Sandbox, sandbox, setBehaviour } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

const ttftMs = 200;
const itlMs = 20;
const outputLen = 10;
/** The engine (and so the stand-in's in-flight batcher) holds this many requests at once. */
const batch = { LLAMA3_TRT_MAX_BATCH_SIZE: "2" };

describe("bench against the world's Triton stand-in", { timeout: 300_000 }, () => {
  let world: World;
  let box: Sandbox;
  let llama3Dir: string;
  const servers = () => containersWithLabel("dev.llama3-trt.workdir", box.workdirId);

  beforeAll(async () => {
    world = useWorld();
    box = sandbox(world);
    const built = await box.run(["build"], batch);
    expect(built.exitCode, built.stderr + built.stdout).toBe(0);
    // The real Llama 3 vocabulary, so token counts are Llama 3's (the world's weights carry a byte-level stand-in).
    llama3Dir = join(box.dir, "llama3-tokenizer");
    mkdirSync(llama3Dir);
    writeFileSync(join(llama3Dir, "tokenizer.json"), realLlama3TokenizerJson());
    writeFileSync(join(llama3Dir, "tokenizer_config.json"), tokenizerConfigJson());
    writeFileSync(join(llama3Dir, "generation_config.json"), GENERATION_CONFIG_JSON);
  });

  afterEach(async () => {
    await clearBehaviour(world);
    const left = await servers();
    if (left.length > 0) await box.run(["stop"]);
    expect(left.map((c) => `${c.name} (${c.state})`)).toEqual([]);
  });

  afterAll(async () => {
    await box?.[Symbol.asyncDispose]();
    await world?.[Symbol.asyncDispose]();
  });

  it("reports the TTFT and ITL the stand-in was set to, the saturation at max_batch_size 2, every --json field and the deployment; errors are counted and the run goes on", async () => {
    const ports = await freePorts();
    const env = { ...batch, ...ports.env };
    await setBehaviour(world, "tritonserver", { ttftMs, itlMs }, 1);
    const served = await box.run(["serve", "--detach"], env);
    expect(served.exitCode, served.stderr).toBe(0);

    const plot = join(box.dir, "sweep.svg");
    const args = ["bench", "--model-dir", llama3Dir, "--concurrency", "1,2,4", "--requests", "6", "--input-len", "24", "--output-len", String(outputLen), "--plot", plot];
    const run = await box.run([...args, "--json"], env);
    expect(run.exitCode, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as BenchReport;
    expectEveryField(doc, 3);
    expect(doc.target).toEqual({ api: "triton", url: `http://127.0.0.1:${ports.http}`, model: "meta-llama/Meta-Llama-3-8B-Instruct" });
    expect(doc.workload.exact_output_length.supported).toBe(true);
    // The settings of the deployment under test: what Triton says and what this workdir built.
    expect(doc.deployment).toMatchObject({
      "server.max_batch_size": 2,
      "server.decoupled": true,
      "server.gpt_model_type": "inflight_fused_batching",
      "server.kv_cache_free_gpu_mem_fraction": "0.9",
      "build.model": "meta-llama/Meta-Llama-3-8B-Instruct",
      "build.dtype": "bfloat16",
      "build.quantize": "none",
      "build.tp": 1,
      "build.maxBatchSize": 2,
      // The world's registry stands in for nvcr.io.
      "build.image": expect.stringMatching(/\/nvidia\/tritonserver:24\.03-trtllm-python-py3$/) as string,
    });

    const [c1, c2, c4] = doc.points as [BenchReport["points"][0], BenchReport["points"][0], BenchReport["points"][0]];
    for (const p of doc.points) {
      expect(p).toMatchObject({ requests: 6, completed: 6, errors: 0 });
      // min_length = max_tokens: exactly --output-len events, each one of the stand-in's tokens.
      expect(p.per_request.every((r) => r.itl_ms.length === outputLen - 1 && r.input_tokens === 24 && r.output_tokens >= outputLen)).toBe(true);
    }
    const ratio = (measured: number | null, configured: number) => (measured as number) / configured;
    expect(ratio(c1.ttft_ms.p50, ttftMs)).toBeGreaterThan(0.8);
    expect(ratio(c1.ttft_ms.p50, ttftMs)).toBeLessThan(2.5);
    expect(ratio(c1.itl_ms.mean, itlMs)).toBeGreaterThan(0.5);
    expect(ratio(c1.itl_ms.mean, itlMs)).toBeLessThan(3);
    // Two clients fit the engine's two slots; four wait for them.
    expect(c2.requests_per_s / c1.requests_per_s).toBeGreaterThan(1.4);
    expect(c2.requests_per_s / c1.requests_per_s).toBeLessThan(2.6);
    expect(c4.requests_per_s / c2.requests_per_s).toBeGreaterThan(0.6);
    expect(c4.requests_per_s / c2.requests_per_s).toBeLessThan(1.3);
    expect((c4.ttft_ms.p50 as number) / (c2.ttft_ms.p50 as number)).toBeGreaterThan(1.6);
    expect(XMLValidator.validate(readFileSync(plot, "utf8"))).toBe(true);
    expect(readFileSync(plot, "utf8").match(/<g class="point" /g)).toHaveLength(3);

    // The table goes to stderr under --json, a row per point as it finishes (quoted in the README).
    expect(run.stderr).toMatch(/^load\s+requests\s+errors\s+TTFT p50/m);
    expect(run.stderr.match(/^c=\d+\s+6\s+0\s/gm)).toHaveLength(3);
    console.info(run.stderr);

    // Prompts longer than the engine's max_input_len (4096) are refused by the server: counted, and the run goes on.
    // The tokenizer is the default one: the weights this workdir built from.
    const prompts = join(box.dir, "prompts.jsonl");
    const long = Array.from({ length: 5000 }, () => "word").join(" ");
    // A Llama 3 chat prompt: the stand-in would end its answer at <|eot_id|> after a dozen tokens; min_length keeps it going.
    const chat = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow do I count to nine in French?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    writeFileSync(prompts, [JSON.stringify({ text: chat }), JSON.stringify({ text: long }), JSON.stringify("The river"), JSON.stringify({ text: long })].join("\n") + "\n");
    const mixed = await box.run(["bench", "--prompts", prompts, "--concurrency", "2", "--requests", "4", "--warmup", "0", "--output-len", "40", "--json"], env);
    expect(mixed.exitCode, mixed.stderr).toBe(0);
    const point = (JSON.parse(mixed.stdout) as BenchReport).points[0];
    expect(point).toMatchObject({ requests: 4, completed: 2, errors: 2 });
    // 40 tokens each (a few are special tokens that decode to no text, which do not count as streamed tokens); without min_length the chat answer would stop at about 12.
    for (const r of point?.per_request.filter((r) => r.error === undefined) ?? []) expect(r.itl_ms.length).toBeGreaterThan(30);
    expect(point?.error_messages).toEqual([{ message: expect.stringContaining("exceeds maximum input length (4096)") as string, count: 2 }]);
    expect(mixed.stderr).toContain("c=2: 2 of 4 requests failed: The server refused the request (HTTP 400)");

    expect((await box.run(["stop"])).exitCode).toBe(0);
    const gone = await box.run(["bench", "--model-dir", llama3Dir, "--concurrency", "1", "--requests", "1"], env);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain(`error: No server answers at http://127.0.0.1:${ports.http} (connection refused).`);
  });
  it("through the OpenAI-compatible gateway that serve runs beside Triton (--api openai; its port and key from the settings): the pace the stand-in was set to, every field, a wrong key is exit 1", async () => {
    const ports = await freePorts();
    const key = "sk-bench-SENTINEL-0123";
    const env = { ...batch, ...ports.env, LLAMA3_TRT_API_KEY: key };
    await setBehaviour(world, "tritonserver", { ttftMs, itlMs }, 1);
    const served = await box.run(["serve", "--detach"], env);
    expect(served.exitCode, served.stderr).toBe(0);
    const args = ["bench", "--api", "openai", "--model-dir", llama3Dir, "--input-len", "24", "--output-len", String(outputLen)];
    const run = await box.run([...args, "--concurrency", "1,2", "--requests", "4", "--json"], env);
    expect(run.exitCode, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as BenchReport;
    expectEveryField(doc, 2);
    expect(doc.target).toEqual({ api: "openai", url: `http://127.0.0.1:${ports.openai}`, model: "meta-llama/Meta-Llama-3-8B-Instruct" });
    // The OpenAI API has no ignore-eos: --output-len is a ceiling there, and bench says so.
    expect(doc.workload.exact_output_length.supported).toBe(false);
    for (const p of doc.points) expect(p).toMatchObject({ requests: 4, completed: 4, errors: 0 });
    const c1 = doc.points[0] as BenchReport["points"][0];
    // Through the gateway: Triton's pace plus the gateway's few milliseconds.
    expect((c1.ttft_ms.p50 as number) / ttftMs).toBeGreaterThan(0.8);
    expect((c1.ttft_ms.p50 as number) / ttftMs).toBeLessThan(2.5);
    expect((c1.itl_ms.mean as number) / itlMs).toBeGreaterThan(0.5);
    expect((c1.itl_ms.mean as number) / itlMs).toBeLessThan(3);
    expect(run.stdout + run.stderr).not.toContain(key);

    const wrong = await box.run([...args, "--concurrency", "1", "--requests", "1"], { ...env, LLAMA3_TRT_API_KEY: "sk-wrong-SENTINEL-0123" });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain(`The API at http://127.0.0.1:${ports.openai} refused the key (HTTP 401)`);
    expect(wrong.stderr).not.toContain("SENTINEL");
    expect((await box.run(["stop"], env)).exitCode).toBe(0);
  });
});

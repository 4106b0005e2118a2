/**
 * `bench --api openai` against an OpenAI-shaped streaming server of the test's own
 * (test/helpers/openai-sse-server.ts) that paces its tokens and holds N requests at once, and
 * bench's failures that need no server. (Against the world's Triton stand-in:
 * test/integration/bench.test.ts.) Timing checks are ratios in wide bands: the machine may be
 * loaded, the figures must still land near what the server was told to do.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../../src/bench/report.ts";
import { tokenizerFromJson } from "../../src/model/tokenizer.ts";
import { realLlama3TokenizerJson } from "../../world/llama3-tokenizer.ts";
import { tokenizerConfigJson } from "../../world/server/llama3-files.ts";
import { baseEnv, cli } from "../helpers/cli.ts";
import { expectEveryField } from "../helpers/bench.ts";
import { startOpenAiServer } from "../helpers/openai-sse-server.ts";
import { tempDir } from "../helpers/tmp.ts";

const ttftMs = 150;
const itlMs = 15;
const outputLen = 12;

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("bench --api openai against an OpenAI-shaped streaming server", { timeout: 90_000 }, () => {
  let dir: { path: string } & Disposable;
  let modelDir: string;
  let env: Record<string, string>;

  beforeAll(() => {
    dir = tempDir("llama3-trt-bench-");
    modelDir = join(dir.path, "model");
    mkdirSync(modelDir);
    writeFileSync(join(modelDir, "tokenizer.json"), realLlama3TokenizerJson());
    writeFileSync(join(modelDir, "tokenizer_config.json"), tokenizerConfigJson());
    env = baseEnv({ HOME: dir.path, LLAMA3_TRT_WORKDIR: join(dir.path, "workdir") });
  });
  afterAll(() => dir[Symbol.dispose]());

  it("reports the TTFT and ITL the server was set to, and a sweep shows the saturation of a server that holds 2 at once", async () => {
    await using server = await startOpenAiServer({ ttftMs, itlMs, slots: 2, apiKey: "sk-test-SENTINEL" });
    const plot = join(dir.path, "sweep.svg");
    const run = await cli(
      ["bench", "--api", "openai", "--url", `${server.url}/v1`, "--model-dir", modelDir, "--concurrency", "1,2,4", "--requests", "8", "--input-len", "32", "--output-len", String(outputLen), "--plot", plot, "--json"],
      { cwd: dir.path, env: { ...env, LLAMA3_TRT_API_KEY: "sk-test-SENTINEL" } },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).not.toContain("SENTINEL");
    const doc = JSON.parse(run.stdout) as BenchReport;
    writeFileSync(join(dir.path, "a.json"), run.stdout);
    expectEveryField(doc, 3);
    expect(doc.target).toEqual({ api: "openai", url: server.url, model: "meta-llama/Meta-Llama-3-8B-Instruct" });
    expect(doc.workload).toMatchObject({ prompts: "synthetic", input_len: { mean: 32, stddev: 0 }, output_len: { mean: outputLen, stddev: 0 }, exact_output_length: { supported: false } });
    expect(run.stderr).toContain("a ceiling");

    // What was sent: the model's prompts of 32 real Llama 3 tokens, streamed, with usage asked for.
    const llama3 = tokenizerFromJson(modelDir, realLlama3TokenizerJson());
    // 1 + 2 + 4 warm-up requests (one per client) and 8 measured per point.
    expect(server.bodies).toHaveLength(7 + 24);
    for (const body of server.bodies) {
      expect(body).toMatchObject({ model: "meta-llama/Meta-Llama-3-8B-Instruct", max_tokens: outputLen, stream: true, stream_options: { include_usage: true } });
      const [message] = body.messages as { role: string; content: string }[];
      expect(message?.role).toBe("user");
      expect(llama3.count(message?.content ?? "")).toBe(32);
    }
    expect(new Set(server.bodies.map((b) => JSON.stringify(b.messages))).size).toBe(server.bodies.length);

    const [c1, c2, c4] = doc.points as [BenchReport["points"][0], BenchReport["points"][0], BenchReport["points"][0]];
    expect([c1.concurrency, c2.concurrency, c4.concurrency]).toEqual([1, 2, 4]);
    for (const p of doc.points) {
      expect(p).toMatchObject({ requests: 8, completed: 8, errors: 0 });
      // The server's usage counts: 12 tokens out, 11 in.
      expect(p.per_request.every((r) => r.output_tokens === outputLen && r.input_tokens === 11 && r.itl_ms.length === outputLen - 1)).toBe(true);
    }
    // One client: TTFT and ITL as configured, within bands a loaded 2-core machine stays inside.
    const ratio = (measured: number | null, configured: number) => (measured as number) / configured;
    expect(ratio(c1.ttft_ms.p50, ttftMs)).toBeGreaterThan(0.8);
    expect(ratio(c1.ttft_ms.p50, ttftMs)).toBeLessThan(2.5);
    expect(ratio(c1.itl_ms.mean, itlMs)).toBeGreaterThan(0.5);
    expect(ratio(c1.itl_ms.mean, itlMs)).toBeLessThan(3);
    expect(ratio(c1.tpot_ms.mean, itlMs)).toBeGreaterThan(0.5);
    expect(ratio(c1.tpot_ms.mean, itlMs)).toBeLessThan(3);
    // Two clients fit the two slots: about twice the throughput. Four do not: the same throughput, and TTFT grows by the wait for a slot.
    expect(c2.requests_per_s / c1.requests_per_s).toBeGreaterThan(1.4);
    expect(c2.requests_per_s / c1.requests_per_s).toBeLessThan(2.6);
    expect(c4.requests_per_s / c2.requests_per_s).toBeGreaterThan(0.6);
    expect(c4.requests_per_s / c2.requests_per_s).toBeLessThan(1.3);
    expect((c4.ttft_ms.p50 as number) / (c2.ttft_ms.p50 as number)).toBeGreaterThan(1.6);
    expect(server.maxActive()).toBe(2);

    // The plot: an SVG document with one point per load point, labelled.
    const svg = readFileSync(plot, "utf8");
    expect(XMLValidator.validate(svg)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, isArray: (name) => name === "g" }).parse(svg) as { svg: { "@_xmlns": string; g: { "@_class"?: string; g?: { "@_class"?: string; "@_data-load"?: string }[] }[] } };
    expect(parsed.svg["@_xmlns"]).toBe("http://www.w3.org/2000/svg");
    const group = parsed.svg.g.find((g) => g["@_class"] === "points");
    expect(group?.g?.map((p) => p["@_data-load"])).toEqual(["c=1", "c=2", "c=4"]);
    expect(svg).not.toMatch(/<script|href=|@import|url\(/);

    // --compare: the same run against a copy that did half the throughput on another dtype.
    const b = structuredClone(doc) as unknown as { deployment: Record<string, unknown>; points: { output_tokens_per_s: number }[] };
    b.deployment["build.dtype"] = "float16";
    for (const p of b.points) p.output_tokens_per_s /= 2;
    writeFileSync(join(dir.path, "b.json"), JSON.stringify(b));
    const compared = await cli(["bench", "--compare", "a.json", "b.json"], { cwd: dir.path, env });
    expect(compared.exitCode, compared.stderr).toBe(0);
    expect(compared.stdout).toContain('deployment.build.dtype: null → "float16"');
    expect(compared.stdout).toMatch(/c=4:\n[^]*output_tokens_per_s\s+[\d.]+\s+[\d.]+\s+0\.50x/);
    const comparedJson = await cli(["bench", "--compare", "a.json", "b.json", "--json"], { cwd: dir.path, env });
    const comparison = JSON.parse(comparedJson.stdout) as { points: { load: string; metrics: Record<string, { ratio: number }> }[] };
    expect(comparison.points.map((p) => [p.load, p.metrics.output_tokens_per_s?.ratio])).toEqual([
      ["c=1", 0.5],
      ["c=2", 0.5],
      ["c=4", 0.5],
    ]);
    const notBench = await cli(["bench", "--compare", "a.json", join(modelDir, "tokenizer_config.json")], { cwd: dir.path, env });
    expect(notBench.exitCode).toBe(2);
    expect(notBench.stderr).toContain("is not a bench result");
  });

  it("counts failed requests as errors and goes on; a point where every request failed is exit 1", async () => {
    await using server = await startOpenAiServer({ ttftMs: 20, itlMs: 2, slots: 4 });
    const prompts = join(dir.path, "prompts.jsonl");
    writeFileSync(prompts, ['{"text": "one"}', '{"text": "FAIL two"}', '"three"', '{"prompt": "four"}', '"FAIL five"', '"six"'].join("\n") + "\n");
    const run = await cli(["bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--prompts", prompts, "--concurrency", "2,3", "--requests", "6", "--warmup", "0", "--output-len", "4", "--json"], {
      cwd: dir.path,
      env,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as BenchReport;
    expect(doc.points.map((p) => [p.requests, p.completed, p.errors])).toEqual([
      [6, 4, 2],
      [6, 4, 2],
    ]);
    expect(doc.points[0]?.error_messages).toEqual([{ message: "The API refused the request (HTTP 400: This prompt was refused by the test server.)", count: 2 }]);
    expect(doc.points[0]?.per_request.filter((r) => r.error !== undefined).map((r) => r.ttft_ms)).toEqual([null, null]);
    expect(doc.workload.prompts).toBe(`file:${prompts}`);
    expect(run.stderr).toContain("c=2: 2 of 6 requests failed: The API refused the request");

    writeFileSync(prompts, '"FAIL always"\n');
    const failing = await cli(["bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--prompts", prompts, "--concurrency", "1", "--requests", "2"], { cwd: dir.path, env });
    expect(failing.exitCode).toBe(1);
    expect(failing.stderr).toContain("error: Every request at c=1 failed: The API refused the request (HTTP 400: This prompt was refused by the test server.)");
  });

  it("a Poisson rate point sends its requests at increasing times and reports its rate; a --duration point sends for that long", async () => {
    await using server = await startOpenAiServer({ ttftMs: 10, itlMs: 2, slots: 8 });
    const run = await cli(["bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--rate", "20", "--requests", "10", "--input-len", "8", "--output-len", "3", "--json"], { cwd: dir.path, env });
    expect(run.exitCode, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as BenchReport;
    expectEveryField(doc, 1);
    expect(doc.points[0]).toMatchObject({ rate: 20, requests: 10, completed: 10 });
    const starts = doc.points[0]?.per_request.map((r) => r.start_ms) ?? [];
    expect(starts.every((s, i) => i === 0 || s >= (starts[i - 1] as number))).toBe(true);
    expect(starts.at(-1)).toBeGreaterThan(0);

    // --duration: new requests for that long, then the ones in flight finish and count.
    const timed = await cli(["bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--concurrency", "2", "--duration", "0.6", "--input-len", "8", "--output-len", "3", "--json"], { cwd: dir.path, env });
    expect(timed.exitCode, timed.stderr).toBe(0);
    const timedDoc = JSON.parse(timed.stdout) as BenchReport;
    expect(timedDoc.workload).toMatchObject({ requests_per_point: null, duration_s_per_point: 0.6 });
    const point = timedDoc.points[0];
    expect(point?.duration_s).toBeGreaterThanOrEqual(0.6);
    expect(point?.requests).toBeGreaterThanOrEqual(2);
    expect(Math.max(...(point?.per_request.map((r) => r.start_ms) ?? []))).toBeLessThan(600);
  });

  it("a wrong API key, an unreachable server and bad flags are clear errors (exit 1, 1, 2)", async () => {
    await using server = await startOpenAiServer({ ttftMs: 10, itlMs: 2, slots: 1, apiKey: "sk-right" });
    const refused = await cli(["bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir], { cwd: dir.path, env: { ...env, LLAMA3_TRT_API_KEY: "sk-wrong-SENTINEL" } });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`error: The API at ${server.url} refused the key (HTTP 401). Set the gateway's key in LLAMA3_TRT_API_KEY`);
    expect(refused.stderr + refused.stdout).not.toContain("SENTINEL");

    const port = await closedPort();
    for (const api of ["triton", "openai"]) {
      const down = await cli(["bench", "--api", api, "--url", `http://127.0.0.1:${port}`, "--model-dir", modelDir, "--json"], { cwd: dir.path, env });
      expect(down.exitCode, api).toBe(1);
      const error = (JSON.parse(down.stdout) as { error: { kind: string; message: string } }).error;
      expect(error.kind).toBe("failed");
      expect(error.message).toBe(
        `No server answers at http://127.0.0.1:${port} (connection refused). Start it with \`llama3-trt serve\`, or point \`--url\` at a running ${api === "openai" ? "OpenAI-compatible API" : "Triton server"}.`,
      );
    }

    const both = await cli(["bench", "--concurrency", "1", "--rate", "2", "--model-dir", modelDir], { cwd: dir.path, env });
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("not both");
    const api = await cli(["bench", "--api", "grpc"], { cwd: dir.path, env });
    expect(api.exitCode).toBe(2);
    expect(api.stderr).toContain("Allowed choices are triton, openai");
    const noTokenizer = await cli(["bench", "--url", server.url], { cwd: dir.path, env });
    expect(noTokenizer.exitCode).toBe(2);
    expect(noTokenizer.stderr).toContain("pass `--model-dir <folder with tokenizer.json>`");
  });

  it("Ctrl-C cancels the requests in flight and exits 130, writing no plot", async () => {
    await using server = await startOpenAiServer({ ttftMs: 50, itlMs: 200, slots: 4 });
    const plot = join(dir.path, "interrupted.svg");
    const entry = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
    const child = spawn(process.execPath, [entry, "bench", "--api", "openai", "--url", server.url, "--model-dir", modelDir, "--concurrency", "2", "--output-len", "50", "--plot", plot], {
      cwd: dir.path,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (server.bodies.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(server.bodies.length).toBeGreaterThanOrEqual(2);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toContain("interrupted; the requests in flight were cancelled and nothing was written");
    expect(() => readFileSync(plot)).toThrow();
  });
});

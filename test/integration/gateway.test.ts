/**
 * The OpenAI-compatible gateway against the test world's Triton stand-in, with the official
 * `openai` client as the client: `serve --detach` runs it beside Triton (with an API key), and
 * `gateway` runs it in the foreground on a model folder holding the real Llama 3 tokenizer, whose
 * counts are checked against an independent implementation (llama3-tokenizer-js).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import llama3Tokenizer from "llama3-tokenizer-js";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CONFIG_JSON, GENERATION_CONFIG_JSON, tokenizerConfigJson } from "../../world/server/llama3-files.ts";
import { realLlama3TokenizerJson } from "../../world/llama3-tokenizer.ts";
import { containersWithLabel } from "../helpers/docker.ts";
import { freePorts } from "../helpers/ports.ts";
import { clearBehaviour, type Running, type Sandbox, sandbox, setBehaviour, until } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

const model = "meta-llama/Meta-Llama-3-8B-Instruct";
const apiKey = "sk-gateway-SENTINEL-3f9a1c";
const question = "How do I count to nine in French?";

/** What the world's stand-in model answers to a Llama 3 chat prompt (llama3_trt_standin/textgen.py). */
function standInAnswer(message: string): string {
  const words = (message.match(/[\w'-]+/g) ?? []).slice(0, 8);
  const tag = createHash("sha256").update(message).digest("hex").slice(0, 8);
  return `Stand-in answer ${tag}: you asked about ${words.length > 0 ? words.join(" ") : "nothing in particular"}.`;
}

/** The Llama 3 chat prompt of one user message, as Meta's template renders it. */
const chatPrompt = (user: string) =>
  `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`;

/** Tokens as llama3-tokenizer-js counts them: an implementation independent of the gateway's. */
const realCount = (text: string) => llama3Tokenizer.encode(text, { bos: false, eos: false }).length;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Served {
  readonly gateway: { readonly url: string; readonly pid: number };
  readonly urls: { readonly http: string; readonly grpc: string };
}

describe("the OpenAI gateway against the world", { timeout: 300_000 }, () => {
  let world: World;
  let box: Sandbox;

  beforeAll(async () => {
    world = useWorld();
    box = sandbox(world);
    const built = await box.run(["build"]);
    expect(built.exitCode, built.stderr + built.stdout).toBe(0);
  });

  // A pace a test set for its server is not left for the next one.
  afterEach(() => clearBehaviour(world));

  afterAll(async () => {
    await box?.[Symbol.asyncDispose]();
    await world?.[Symbol.asyncDispose]();
  });

  /**
   * `serve --detach` with an API key (each test has its own server: the leak check wants none
   * left between tests), the test, then `stop`, which must end both Triton and the gateway.
   */
  async function withServer(test: (s: { served: Served; client: OpenAI; ports: Awaited<ReturnType<typeof freePorts>>; env: Record<string, string> }) => Promise<void>) {
    const ports = await freePorts();
    const env = { ...ports.env, LLAMA3_TRT_API_KEY: apiKey };
    const serve = await box.run(["serve", "--detach", "--json"], env);
    expect(serve.exitCode, serve.stderr).toBe(0);
    expect(serve.stdout + serve.stderr).not.toContain(apiKey);
    const served = JSON.parse(serve.stdout) as Served;
    try {
      await test({ served, client: new OpenAI({ baseURL: served.gateway.url, apiKey, maxRetries: 0 }), ports, env });
    } finally {
      const stop = await box.run(["stop"], env);
      expect(stop.exitCode, stop.stderr).toBe(0);
      expect(stop.stdout).toContain(`Stopped the OpenAI gateway (pid ${served.gateway.pid}, http://127.0.0.1:${ports.openai})`);
      expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
      expect(alive(served.gateway.pid)).toBe(false);
      expect(existsSync(join(box.workdir, "gateway.json"))).toBe(false);
    }
  }

  it("serve --detach runs the gateway beside Triton with an API key: status shows both; the key is refused, wrong or missing, and in no argv, log or output", async () => {
    await withServer(async ({ served, client, ports, env }) => {
      expect(served.gateway.url).toBe(`http://127.0.0.1:${ports.openai}/v1`);
      expect(alive(served.gateway.pid)).toBe(true);
      const status = await box.run(["status", "--json"], env);
      const doc = JSON.parse(status.stdout) as { server: { state: string; ready: boolean }; gateway: { state: string; pid: number; url: string; ready: boolean } };
      expect(doc.server).toMatchObject({ state: "running", ready: true });
      expect(doc.gateway).toMatchObject({ state: "running", pid: served.gateway.pid, url: served.gateway.url, ready: true });
      const human = await box.run(["status"], env);
      expect(human.stdout).toContain(`OpenAI gateway: pid ${served.gateway.pid} (ready) at ${served.gateway.url}`);
      // The key reached the gateway through its environment only.
      const argv = readFileSync(`/proc/${served.gateway.pid}/cmdline`, "utf8").split("\0");
      expect(argv).toContain("gateway");
      expect(argv.join(" ")).not.toContain(apiKey);
      expect(status.stdout + status.stderr + human.stdout).not.toContain(apiKey);
      expect((await fetch(`http://127.0.0.1:${ports.openai}/health`)).status).toBe(200);

      const missing = await fetch(`${served.gateway.url}/models`);
      expect(missing.status).toBe(401);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
      const wrong = new OpenAI({ baseURL: served.gateway.url, apiKey: `${apiKey}x`, maxRetries: 0 });
      const refused = await wrong.models.list().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("invalid_api_key");
      expect(JSON.stringify((refused as { error: unknown }).error)).not.toContain(apiKey);
      const models = await client.models.list();
      expect(models.data.map((m) => m.id)).toEqual([model]);

      // `logs --gateway -f` follows the gateway's log as requests arrive.
      const follow = box.start(["logs", "--gateway", "-f"], env);
      await until(() => follow.output().stdout.includes("OpenAI API at"), "logs -f to print the log so far", 30_000);
      expect((await client.models.list()).data).toHaveLength(1);
      await until(() => follow.output().stdout.includes("GET /v1/models 200"), "logs -f to print the new request", 30_000);
      follow.child.kill("SIGINT");
      expect((await follow.exited()).exitCode).toBe(130);

      const logs = await box.run(["logs", "--gateway"], env);
      expect(logs.exitCode, logs.stderr).toBe(0);
      expect(logs.stdout).toContain("OpenAI API at");
      expect(logs.stdout).toContain("GET /v1/models 401");
      expect(readFileSync(join(box.workdir, "logs", "gateway.log"), "utf8")).not.toContain(apiKey);
      expect(readFileSync(join(box.workdir, "gateway.json"), "utf8")).not.toContain(apiKey);
    });
  });

  it("chat and completions, stream and not: the model's answer, finish_reason stop or length, stop strings, usage; refusals in OpenAI's shape", async () => {
    await withServer(async ({ served, client, env }) => {
      const answer = standInAnswer(question);
      const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }] });
      expect(chat.object).toBe("chat.completion");
      expect(chat.id).toMatch(/^chatcmpl-/);
      expect(chat.model).toBe(model);
      expect(Math.abs(chat.created - Date.now() / 1000)).toBeLessThan(60);
      expect(chat.choices).toHaveLength(1);
      expect(chat.choices[0]?.message).toMatchObject({ role: "assistant", content: answer });
      expect(chat.choices[0]?.finish_reason).toBe("stop");
      // The world's Hub serves a byte-level tokenizer without merges: a byte is a token, and each
      // special token of the template one (six here). The real tokenizer's counts: the last test.
      expect(chat.usage).toEqual({
        prompt_tokens: 6 + Buffer.byteLength(`user\n\n${question}assistant\n\n`),
        completion_tokens: Buffer.byteLength(answer),
        total_tokens: 6 + Buffer.byteLength(`user\n\n${question}assistant\n\n`) + Buffer.byteLength(answer),
      });

      const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], stream: true, stream_options: { include_usage: true } });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
      const withChoices = chunks.filter((c) => c.choices.length > 0);
      expect(withChoices.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(answer);
      expect(withChoices.at(-1)?.choices[0]?.finish_reason).toBe("stop");
      expect(withChoices.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
      expect(new Set(chunks.map((c) => c.id))).toEqual(new Set([chunks[0]?.id]));
      const last = chunks.at(-1);
      expect(last?.choices).toEqual([]);
      expect(last?.usage).toEqual(chat.usage);

      // max_tokens reached: length. The stand-in's tokens are words: three of them.
      const short = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], max_tokens: 3 });
      expect(short.choices[0]?.finish_reason).toBe("length");
      expect(short.choices[0]?.message.content).toBe(answer.split(/(?= )/).slice(0, 3).join(""));

      // A stop string ends the answer before it, also when it arrives split over pieces.
      const stopped = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], stop: ["asked", "never"] });
      expect(stopped.choices[0]?.message.content).toBe(answer.slice(0, answer.indexOf("asked")));
      expect(stopped.choices[0]?.finish_reason).toBe("stop");
      const streamed = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], stop: "about", stream: true });
      let text = "";
      let finish: string | null | undefined;
      for await (const chunk of streamed) {
        text += chunk.choices[0]?.delta.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(text).toBe(answer.slice(0, answer.indexOf("about")));
      expect(finish).toBe("stop");

      // Completions: a raw prompt is continued.
      const done = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6 });
      expect(done.object).toBe("text_completion");
      expect(done.id).toMatch(/^cmpl-/);
      expect(done.choices[0]?.finish_reason).toBe("length");
      const words = done.choices[0]?.text ?? "";
      expect(words.split(" ").filter(Boolean)).toHaveLength(6);
      const continued = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, stream: true });
      let more = "";
      let ended: string | null | undefined;
      for await (const chunk of continued) {
        more += chunk.choices[0]?.text ?? "";
        ended = chunk.choices[0]?.finish_reason ?? ended;
      }
      expect(more).toBe(words);
      expect(ended).toBe("length");

      // `ask` through both paths: the same answer from Triton's generate and from the gateway.
      const viaTriton = await box.run(["ask", question], env);
      const viaGateway = await box.run(["ask", "--openai", question], env);
      expect(viaTriton.exitCode, viaTriton.stderr).toBe(0);
      expect(viaGateway.exitCode, viaGateway.stderr).toBe(0);
      expect(viaGateway.stdout).toBe(viaTriton.stdout);
      expect(viaGateway.stdout.trim()).toBe(answer);
      const streamedAsk = await box.run(["ask", "--openai", "--stream", "--json", question], env);
      expect(JSON.parse(streamedAsk.stdout)).toMatchObject({ api: "openai", answer, finishReason: "stop", usage: chat.usage });
      const { LLAMA3_TRT_API_KEY: _key, ...keyless } = env;
      const refusedAsk = await box.run(["ask", "--openai", question], keyless);
      expect(refusedAsk.exitCode).toBe(1);
      expect(refusedAsk.stderr).toContain("HTTP 401");
      expect(refusedAsk.stderr).toContain("LLAMA3_TRT_API_KEY");

      // What the backend cannot do is refused, not ignored.
      const two = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], n: 2 }).catch((e: unknown) => e);
      expect(two).toBeInstanceOf(OpenAI.BadRequestError);
      expect((two as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n");
      const tools = await client.chat.completions
        .create({ model, messages: [{ role: "user", content: question }], tools: [{ type: "function", function: { name: "f", parameters: {} } }] })
        .catch((e: unknown) => e);
      expect(tools).toBeInstanceOf(OpenAI.BadRequestError);
      expect((tools as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("tools");
      const other = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: question }] }).catch((e: unknown) => e);
      expect(other).toBeInstanceOf(OpenAI.NotFoundError);
      // The world's engine takes 4096 tokens; its tiny tokenizer counts a byte as a token.
      const long = await client.chat.completions.create({ model, messages: [{ role: "user", content: "x".repeat(5000) }] }).catch((e: unknown) => e);
      expect(long).toBeInstanceOf(OpenAI.BadRequestError);
      expect((long as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("context_length_exceeded");
      expect((long as Error).message).toMatch(/maximum prompt length is 4096 tokens .* but the prompt has \d+ tokens/);
      const huge = await fetch(`${served.gateway.url}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "y".repeat(5 * 1024 * 1024) }] }),
      });
      expect(huge.status).toBe(413);
      expect(((await huge.json()) as { error: { code: string } }).error.code).toBe("request_too_large");
    });
  });

  it("a client that disconnects mid-stream stops its Triton request (the engine ends it early); 64 concurrent streams are held without error", async () => {
    // 20 ms a token: the 1000 asked for would take 20 s, so a stop that comes is one that worked.
    await setBehaviour(world, "tritonserver", { itlMs: 20 }, 1);
    await withServer(async ({ client, ports, env }) => {
      const controller = new AbortController();
      const stream = await client.completions.create({ model, prompt: "Tell me a long story", max_tokens: 1000, stream: true }, { signal: controller.signal });
      let pieces = 0;
      try {
        for await (const chunk of stream) {
          if ((chunk.choices[0]?.text ?? "") !== "") pieces++;
          if (pieces === 3) controller.abort();
        }
      } catch (error) {
        // The client's own abort error, or none: the stream just ends.
        expect(controller.signal.aborted, String(error)).toBe(true);
      }
      expect(pieces).toBeLessThan(10);
      // The gateway told the engine to stop that request (by its id, over gRPC), and it did.
      let gatewayLine: RegExpExecArray | null = null;
      await until(() => {
        gatewayLine = /client disconnected after (\d+) tokens; Triton request (\d+) stopped$/m.exec(readFileSync(join(box.workdir, "logs", "gateway.log"), "utf8"));
        return gatewayLine !== null;
      }, "the gateway's log to show the stopped request", 10_000);
      const [, , stoppedId] = gatewayLine as unknown as RegExpExecArray;
      const logs = await box.run(["logs"], env);
      const engineLine = new RegExp(`requestId ${stoppedId} stopped after (\\d+) of 1000 tokens`).exec(logs.stdout);
      expect(engineLine, logs.stdout.slice(-2_000)).not.toBeNull();
      expect(Number(engineLine?.[1])).toBeLessThan(1000);
      expect(logs.stdout).not.toContain("client closed the connection");
      const afterDrop = await (await fetch(`http://127.0.0.1:${ports.openai}/metrics`)).text();
      expect(afterDrop).toMatch(/llama3_trt_gateway_errors_total\{endpoint="completions",kind="disconnected"\} 1/);

      const questions = Array.from({ length: 64 }, (_, i) => `Question number ${i}: what is ${i} in French?`);
      const answers = await Promise.all(
        questions.map(async (q) => {
          const s = await client.chat.completions.create({ model, messages: [{ role: "user", content: q }], stream: true });
          let text = "";
          let finish: string | null | undefined;
          for await (const chunk of s) {
            text += chunk.choices[0]?.delta.content ?? "";
            finish = chunk.choices[0]?.finish_reason ?? finish;
          }
          return { text, finish };
        }),
      );
      expect(answers).toEqual(questions.map((q) => ({ text: standInAnswer(q), finish: "stop" })));
      const metrics = await (await fetch(`http://127.0.0.1:${ports.openai}/metrics`)).text();
      expect(metrics).toMatch(/llama3_trt_gateway_time_to_first_token_seconds_count\{endpoint="chat"\} 64/);
      expect(metrics).toMatch(/llama3_trt_gateway_requests_total\{endpoint="chat",status="200"\} 64/);
    });
  });

  it.each(["serve:before-gateway", "serve:gateway-spawned"])("kill -9 of `serve --detach` at %s leaves nothing the next serve and stop cannot find and end", async (point) => {
    const ports = await freePorts();
    const marker = join(box.dir, `pause-${point.replace(/\W/g, "-")}`);
    const serving = box.start(["serve", "--detach"], { ...ports.env, LLAMA3_TRT_TEST_PAUSE_AT: point, LLAMA3_TRT_TEST_PAUSE_MARKER: marker });
    await until(() => existsSync(marker), `serve to reach ${point}`, 120_000);
    serving.child.kill("SIGKILL");
    await serving.exited();
    const record = join(box.workdir, "gateway.json");
    if (point === "serve:gateway-spawned") {
      // The gateway outlives the CLI and says where it is.
      await until(() => existsSync(record), "the gateway's record", 30_000);
      const { pid } = JSON.parse(readFileSync(record, "utf8")) as { pid: number };
      expect(alive(pid)).toBe(true);
      const status = JSON.parse((await box.run(["status", "--json"], ports.env)).stdout) as { gateway: { state: string; pid: number } };
      expect(status.gateway).toMatchObject({ state: "running", pid });
      const stop = await box.run(["stop"], ports.env);
      expect(stop.exitCode, stop.stderr).toBe(0);
      expect(stop.stdout).toContain(`gateway (pid ${pid}`);
      expect(alive(pid)).toBe(false);
    } else {
      // Triton runs without its gateway: the next `serve --detach` completes the deployment.
      expect(existsSync(record)).toBe(false);
      const again = await box.run(["serve", "--detach", "--json"], ports.env);
      expect(again.exitCode, again.stderr).toBe(0);
      const doc = JSON.parse(again.stdout) as { alreadyRunning: boolean; gateway: { url: string; pid: number } };
      expect(doc.alreadyRunning).toBe(true);
      expect(doc.gateway.url).toBe(`http://127.0.0.1:${ports.openai}/v1`);
      const models = await new OpenAI({ baseURL: doc.gateway.url, apiKey: "none", maxRetries: 0 }).models.list();
      expect(models.data.map((m) => m.id)).toEqual([model]);
      const stop = await box.run(["stop"], ports.env);
      expect(stop.exitCode, stop.stderr).toBe(0);
      expect(alive(doc.gateway.pid)).toBe(false);
    }
    expect(existsSync(record)).toBe(false);
    expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
  });

  it("--openai-port 0: serve runs no gateway, and says so", async () => {
    const ports = await freePorts();
    const env = { ...ports.env, LLAMA3_TRT_OPENAI_PORT: "0" };
    const served = await box.run(["serve", "--detach", "--json"], env);
    try {
      expect(served.exitCode, served.stderr).toBe(0);
      expect((JSON.parse(served.stdout) as { gateway: unknown }).gateway).toBeNull();
      expect(existsSync(join(box.workdir, "gateway.json"))).toBe(false);
      const status = JSON.parse((await box.run(["status", "--json"], env)).stdout) as { gateway: { state: string } };
      expect(status.gateway.state).toBe("not running");
      expect(await fetch(`http://127.0.0.1:${ports.openai}/health`).catch(() => "refused")).toBe("refused");
    } finally {
      const stop = await box.run(["stop"], env);
      expect(stop.exitCode, stop.stderr).toBe(0);
      expect(stop.stdout).not.toContain("OpenAI gateway");
    }
  });

  it("a foreground serve runs the gateway too and Ctrl-C ends both (exit 130)", async () => {
    const ports = await freePorts();
    const serving = box.start(["serve"], ports.env);
    const record = join(box.workdir, "gateway.json");
    await until(async () => (await fetch(`http://127.0.0.1:${ports.openai}/health`).catch(() => undefined))?.status === 200, "the gateway beside a foreground serve", 120_000);
    const { pid } = JSON.parse(readFileSync(record, "utf8")) as { pid: number };
    await until(() => serving.output().stdout.includes(`OpenAI   http://127.0.0.1:${ports.openai}/v1`), "serve to print the gateway's URL", 30_000);
    serving.child.kill("SIGINT");
    const ended = await serving.exited();
    expect(ended.exitCode, ended.stderr).toBe(130);
    expect(alive(pid)).toBe(false);
    expect(existsSync(record)).toBe(false);
    expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
  });

  it("gateway in the foreground on a folder with the real Llama 3 tokenizer: usage counts are the real tokenizer's; ready only with Triton's gRPC reachable; SIGTERM ends it", async () => {
    await withServer(async ({ served }) => {
      const dir = join(box.dir, "real-tokenizer");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "tokenizer.json"), realLlama3TokenizerJson());
      writeFileSync(join(dir, "tokenizer_config.json"), tokenizerConfigJson());
      writeFileSync(join(dir, "generation_config.json"), GENERATION_CONFIG_JSON);
      writeFileSync(join(dir, "config.json"), CONFIG_JSON);
      const port = (await freePorts()).openai;
      const gateway: Running = box.start(["gateway", "--triton-url", served.urls.http, "--triton-grpc", served.urls.grpc, "--port", String(port), "--model-dir", dir], { LLAMA3_TRT_API_KEY: "" });
      await until(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 200, "the foreground gateway", 60_000);
      const open = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
      // Special tokens written by the template count as one token each (128000, 128006, 128007, 128009).
      const content = `${question} Ünïcödé ½ 日本語 🎉`;
      const chat = await open.chat.completions.create({ model, messages: [{ role: "user", content }] });
      const answer = chat.choices[0]?.message.content ?? "";
      expect(answer).toBe(standInAnswer(content));
      const promptTokens = realCount(chatPrompt(content));
      expect(chat.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: realCount(answer), total_tokens: promptTokens + realCount(answer) });
      expect(llama3Tokenizer.encode(chatPrompt(content), { bos: false, eos: false }).filter((id) => id >= 128000)).toEqual([128000, 128006, 128007, 128009, 128006, 128007]);
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
      expect(health).toEqual({ status: "ready", triton: served.urls.http, tritonGrpc: served.urls.grpc, tritonReady: true, modelReady: true, grpcReachable: true });
      gateway.child.kill("SIGTERM");
      const ended = await gateway.exited();
      expect(ended.exitCode, ended.stderr).toBe(0);
      expect(ended.stdout).toContain(`OpenAI API at http://127.0.0.1:${port}/v1 for ${model}`);

      // Triton's HTTP reachable but not its gRPC (a firewall, a wrong port): answers stream over
      // gRPC, so the gateway is not ready, and a request says where it looked.
      const nowhere = `127.0.0.1:${(await freePorts()).grpc}`;
      const blind: Running = box.start(["gateway", "--triton-url", served.urls.http, "--triton-grpc", nowhere, "--port", String(port), "--model-dir", dir], { LLAMA3_TRT_API_KEY: "" });
      await until(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 503, "the gateway without gRPC", 60_000);
      const notReady = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
      expect(notReady).toMatchObject({ status: "not ready", tritonReady: true, modelReady: true, grpcReachable: false, tritonGrpc: nowhere });
      const refused = await open.chat.completions.create({ model, messages: [{ role: "user", content }] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.APIError);
      expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((refused as Error).message).toContain(`No server answers gRPC at ${nowhere}`);
      blind.child.kill("SIGTERM");
      expect((await blind.exited()).exitCode).toBe(0);
    });
  });
});

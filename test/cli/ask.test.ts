/**
 * `ask` against a recording HTTP server of the test's own that answers like Triton's generate
 * extension: the exact request body, streaming as it arrives, and each error `ask` must explain.
 * (Against the world's Triton stand-in: test/integration/serve.test.ts.)
 */
import { spawn } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { baseEnv, cli } from "../helpers/cli.ts";
import { tempDir } from "../helpers/tmp.ts";

interface Seen {
  method: string;
  path: string;
  body: unknown;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: unknown) => void | Promise<void>;

/** A fake Triton: routes by path, records every request. */
async function fakeTriton(routes: Record<string, Handler>): Promise<{ url: string; seen: Seen[] } & AsyncDisposable> {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    const path = req.url ?? "";
    seen.push({ method: req.method ?? "", path, body });
    const route = routes[path];
    if (!route) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "Not Found" }));
      return;
    }
    await route(req, res, body);
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    [Symbol.asyncDispose]: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const json = (status: number, value: unknown): Handler => (_req, res) => {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
};

const chatPrompt =
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow do I count to nine in French?<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\n";

describe("ask against a Triton generate endpoint", () => {
  it("sends the ensemble's inputs at the top level: the chat template, max_tokens, and end_id 128009", async () => {
    using dir = tempDir();
    await using triton = await fakeTriton({ "/v2/models/ensemble/generate": json(200, { model_name: "ensemble", model_version: "1", text_output: "Un, deux, trois." }) });
    const result = await cli(["ask", "How do I count to nine in French?", "--url", triton.url], { cwd: dir.path });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe("Un, deux, trois.\n");
    expect(triton.seen).toEqual([
      { method: "POST", path: "/v2/models/ensemble/generate", body: { text_input: chatPrompt, max_tokens: 256, end_id: 128009 } },
    ]);
  });

  it("--system, --raw and the sampling flags become the request's inputs", async () => {
    using dir = tempDir();
    await using triton = await fakeTriton({ "/v2/models/ensemble/generate": json(200, { text_output: "ok" }) });
    const flags = ["--url", triton.url, "--max-tokens", "32", "--temperature", "0.7", "--top-p", "0.9", "--top-k", "40"];
    expect((await cli(["ask", "hi", "--system", "Be brief.", ...flags], { cwd: dir.path })).exitCode).toBe(0);
    expect((await cli(["ask", "Once upon a time", "--raw", ...flags], { cwd: dir.path })).exitCode).toBe(0);
    expect(triton.seen.map((s) => s.body)).toEqual([
      {
        text_input:
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
          "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        max_tokens: 32,
        end_id: 128009,
        temperature: 0.7,
        top_p: 0.9,
        top_k: 40,
      },
      { text_input: "Once upon a time", max_tokens: 32, end_id: 128009, temperature: 0.7, top_p: 0.9, top_k: 40 },
    ]);
  });

  it("--json prints one document with the request and the answer", async () => {
    using dir = tempDir();
    await using triton = await fakeTriton({ "/v2/models/ensemble/generate": json(200, { text_output: " Un." }) });
    const result = await cli(["ask", "How do I count to nine in French?", "--url", triton.url, "--json"], { cwd: dir.path });
    expect(JSON.parse(result.stdout)).toEqual({
      url: triton.url,
      model: "meta-llama/Meta-Llama-3-8B-Instruct",
      request: { text_input: chatPrompt, max_tokens: 256, end_id: 128009 },
      answer: "Un.",
    });
  });

  it("--stream prints each piece as it arrives, before the stream ends", async () => {
    using dir = tempDir();
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    await using triton = await fakeTriton({
      "/v2/models/tensorrt_llm/config": json(200, { name: "tensorrt_llm", model_transaction_policy: { decoupled: true } }),
      "/v2/models/ensemble/generate_stream": async (_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write('data: {"text_output": "Un,"}\n\n');
        // The rest only once the CLI has printed the first piece: proof that it streams.
        await released;
        res.write('data: {"text_output": " deux,"}\n\ndata: {"text_output": " trois."}\n\n');
        res.end();
      },
    });
    const entry = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", entry, "ask", "count", "--stream", "--url", triton.url], {
      cwd: dir.path,
      env: baseEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes("Un,")) resolve();
      }),
    );
    expect(stdout).toBe("Un,");
    release();
    expect(await exited, stderr).toBe(0);
    expect(stdout).toBe("Un, deux, trois.\n");
    expect(triton.seen.find((s) => s.path.endsWith("generate_stream"))?.body).toMatchObject({ stream: true, end_id: 128009, max_tokens: 256 });
  });

  it("an error event inside a stream fails after what came before it was printed (exit 1)", async () => {
    using dir = tempDir();
    await using triton = await fakeTriton({
      "/v2/models/tensorrt_llm/config": json(200, { model_transaction_policy: { decoupled: true } }),
      "/v2/models/ensemble/generate_stream": (_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.end('data: {"text_output": "Un,"}\n\ndata: {"error": "[TensorRT-LLM][ERROR] Assertion failed: out of blocks"}\n\n');
      },
    });
    const result = await cli(["ask", "count", "--stream", "--url", triton.url], { cwd: dir.path });
    expect(result.exitCode).toBe(1);
    expect(result.stdout.startsWith("Un,")).toBe(true);
    expect(result.stderr).toContain("The server reported an error in the stream after 3 characters: [TensorRT-LLM][ERROR] Assertion failed: out of blocks");
  });

  it("--stream on a deployment that is not decoupled says so, without sending the prompt", async () => {
    using dir = tempDir();
    await using triton = await fakeTriton({ "/v2/models/tensorrt_llm/config": json(200, { name: "tensorrt_llm" }) });
    const result = await cli(["ask", "count", "--stream", "--url", triton.url, "--json"], { cwd: dir.path });
    expect(result.exitCode).toBe(1);
    const error = (JSON.parse(result.stdout) as { error: { kind: string; message: string } }).error;
    expect(error.kind).toBe("not-streaming");
    expect(error.message).toContain("This deployment cannot stream: its tensorrt_llm model is not decoupled");
    expect(error.message).toContain("`llama3-trt build --streaming true`");
    expect(triton.seen.map((s) => s.path)).toEqual(["/v2/models/tensorrt_llm/config"]);
  });

  it("Ctrl-C while waiting for the answer cancels the request (exit 130)", async () => {
    using dir = tempDir();
    let arrived: () => void = () => {};
    const requested = new Promise<void>((resolve) => (arrived = resolve));
    // Answers never: a model busy with a long generation.
    await using triton = await fakeTriton({ "/v2/models/ensemble/generate": () => arrived() });
    const entry = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", entry, "ask", "count", "--url", triton.url], {
      cwd: dir.path,
      env: baseEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await requested;
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toContain("interrupted; the request was cancelled");
  });

  it("a server whose model is not ready yet is told apart from a refused request", async () => {
    using dir = tempDir();
    await using notReady = await fakeTriton({
      "/v2/models/ensemble/generate": json(400, { error: "Request for unknown model: 'ensemble' has no available versions" }),
      "/v2/models/ensemble/ready": json(400, {}),
    });
    const waiting = await cli(["ask", "hi", "--url", notReady.url], { cwd: dir.path });
    expect(waiting.exitCode).toBe(1);
    expect(waiting.stderr).toContain(`The server at ${notReady.url} answers, but the model is not ready (Request for unknown model: 'ensemble' has no available versions)`);

    await using refusing = await fakeTriton({
      "/v2/models/ensemble/generate": json(400, { error: "[TensorRT-LLM][ERROR] Assertion failed: Requested output length (5000) exceeds maximum output length (1024)." }),
      "/v2/models/ensemble/ready": json(200, {}),
    });
    const refused = await cli(["ask", "hi", "--url", refusing.url, "--max-tokens", "5000"], { cwd: dir.path });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain("The server refused the request (HTTP 400): [TensorRT-LLM][ERROR] Assertion failed: Requested output length (5000)");
  });
});

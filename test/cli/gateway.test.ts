/**
 * `llama3-trt gateway` as a subprocess, with no Triton behind it (nothing listens at its URL):
 * what it answers on its own (health, refusals, the key, limits) and how it starts and ends.
 * With Triton, the world's integration test (test/integration/gateway.test.ts) covers the rest.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { GENERATION_CONFIG_JSON, tokenizerConfigJson, tokenizerJson } from "../../world/server/llama3-files.ts";
import { baseEnv, cli } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";
import { tempDir } from "../helpers/tmp.ts";

const entry = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
const model = "meta-llama/Meta-Llama-3-8B-Instruct";
const key = "sk-cli-test-0123456789";

function modelDir(root: string): string {
  const dir = join(root, "model");
  mkdirSync(dir);
  writeFileSync(join(dir, "tokenizer.json"), tokenizerJson());
  writeFileSync(join(dir, "tokenizer_config.json"), tokenizerConfigJson());
  writeFileSync(join(dir, "generation_config.json"), GENERATION_CONFIG_JSON);
  return dir;
}

/** Starts the gateway; resolves once it listens, with a way to end it and read what it printed. */
async function startGateway(cwd: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", entry, "gateway", ...args], { cwd, env: baseEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!stdout.includes("OpenAI API at")) {
    if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`gateway did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    output: () => ({ stdout, stderr }),
    stop: async (signal: NodeJS.Signals = "SIGTERM") => {
      child.kill(signal);
      return exited;
    },
  };
}

describe("gateway without Triton", () => {
  it("answers health 503, a generation 503 in OpenAI's shape; asks for the key; refuses bad requests; SIGTERM ends it (exit 0)", async () => {
    using dir = tempDir();
    const port = await freePort();
    const triton = `http://127.0.0.1:${await freePort()}`;
    const grpc = `127.0.0.1:${await freePort()}`;
    const gateway = await startGateway(dir.path, ["--triton-url", triton, "--triton-grpc", grpc, "--port", String(port), "--model-dir", modelDir(dir.path)], { LLAMA3_TRT_API_KEY: key });
    try {
      const base = `http://127.0.0.1:${port}`;
      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toEqual({ status: "not ready", triton, tritonGrpc: grpc, tritonReady: false, modelReady: false, grpcReachable: false });

      const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
      expect((await client.models.list()).data).toEqual([expect.objectContaining({ id: model, object: "model", owned_by: "llama3-trt" })]);
      const unreachable = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
      expect(unreachable).toBeInstanceOf(OpenAI.InternalServerError);
      expect((unreachable as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((unreachable as Error).message).toContain(`No server answers at ${triton}`);

      const noKey = await fetch(`${base}/v1/models`);
      expect(noKey.status).toBe(401);
      expect(await noKey.json()).toEqual({ error: { message: "Missing API key: send it as `Authorization: Bearer <key>`.", type: "invalid_request_error", param: null, code: "invalid_api_key" } });
      const wrong = await fetch(`${base}/v1/models`, { headers: { authorization: "Bearer sk-cli-test-0123456788" } });
      expect(wrong.status).toBe(401);

      const post = (path: string, body: string) => fetch(`${base}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body });
      const badJson = await post("/v1/chat/completions", "{not json");
      expect(badJson.status).toBe(400);
      expect(((await badJson.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
      const tooBig = await post("/v1/completions", JSON.stringify({ model, prompt: "z".repeat(4 * 1024 * 1024 + 1) }));
      expect(tooBig.status).toBe(413);
      const unknown = await fetch(`${base}/v1/embeddings`, { method: "POST", headers: { authorization: `Bearer ${key}` } });
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("unknown_url");

      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/llama3_trt_gateway_requests_total\{endpoint="models",status="401"\} 2/);
      expect(metrics).toMatch(/llama3_trt_gateway_errors_total\{endpoint="chat",kind="triton"\} 1/);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
    const { stdout, stderr } = gateway.output();
    expect(stdout + stderr).not.toContain(key);
    expect(stdout).toContain(`OpenAI API at http://127.0.0.1:${port}/v1 for ${model} (Triton ${triton}, API key required)`);
    expect(stdout).toContain("GET /v1/models 401");
  });

  it("no model files or a --triton-grpc that is not host:port is exit 2 saying what to pass; a taken port is exit 1 naming it", async () => {
    using dir = tempDir();
    const none = await cli(["gateway", "--port", String(await freePort())], { cwd: dir.path });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain("has no built weights. Pass `--model-dir <folder>`");
    const empty = join(dir.path, "empty");
    mkdirSync(empty);
    const missing = await cli(["gateway", "--model-dir", empty, "--port", String(await freePort())], { cwd: dir.path });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain(`${join(empty, "tokenizer.json")} does not exist: the model folder has no tokenizer.json. The gateway counts tokens with it: pass \`--model-dir\``);

    // Triton's gRPC endpoint is host:port, not a URL.
    const folder = modelDir(dir.path);
    for (const bad of ["http://127.0.0.1:8001", "127.0.0.1", "127.0.0.1:port"]) {
      const grpc = await cli(["gateway", "--model-dir", folder, "--triton-grpc", bad, "--port", String(await freePort())], { cwd: dir.path });
      expect(grpc.exitCode, grpc.stderr).toBe(2);
      expect(grpc.stderr).toContain(`--triton-grpc must be <host>:<port> (Triton's gRPC endpoint, 8001 by default), got ${JSON.stringify(bad)}.`);
    }

    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const taken = (holder.address() as { port: number }).port;
    try {
      const busy = await cli(["gateway", "--model-dir", folder, "--port", String(taken)], { cwd: dir.path });
      expect(busy.exitCode).toBe(1);
      expect(busy.stderr).toContain(`Port ${taken} on 127.0.0.1 is in use`);
      expect(busy.stderr).toContain("`--port`");
    } finally {
      holder.close();
    }
  });
});

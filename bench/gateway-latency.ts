// The OpenAI gateway's added latency per request: the same streamed request sent straight to
// Triton's generate_stream and through the gateway's /v1/chat/completions, interleaved, in the
// same run against the test world's Triton stand-in (build, `serve --detach`, measure, `stop`).
// Prints time to first token and end-to-end per path (median and p90), the difference per
// request and the ratio; no pass/fail. It first shows a session with the official `openai` client.
//   npm run world:up && npm run build && node bench/gateway-latency.ts [requests] [max_tokens]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { freePorts } from "../test/helpers/ports.ts";
import { readWorldFile } from "../test/helpers/world.ts";

const requests = Number(process.argv[2] ?? 40);
const maxTokens = Number(process.argv[3] ?? 16);
const model = "meta-llama/Meta-Llama-3-8B-Instruct";
const question = "How do I count to nine in French?";
const prompt = `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`;
const bin = fileURLToPath(new URL("../bin/llama3-trt.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "llama3-trt-bench-"));

const ports = await freePorts();
const { http, openai } = ports;
const env = { ...process.env, ...readWorldFile().env, HOME: dir, CI: "1", ...ports.env };

function cli(args: string[]): string {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, env, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`llama3-trt ${args.join(" ")} failed:\n${result.stderr}`);
  return result.stdout;
}

/** Reads a streamed answer to its end: time to the first byte of an event with text, and to the end. */
async function timedStream(url: string, body: unknown, hasText: (data: string) => boolean): Promise<{ ttft: number; e2e: number }> {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (response.status !== 200) throw new Error(`${url}: HTTP ${response.status} ${await response.text()}`);
  let ttft = 0;
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body ?? []) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (ttft === 0 && hasText(event)) ttft = performance.now() - started;
    }
  }
  return { ttft, e2e: performance.now() - started };
}

const direct = () =>
  timedStream(`http://127.0.0.1:${http}/v2/models/ensemble/generate_stream`, { text_input: prompt, max_tokens: maxTokens, end_id: 128009, stream: true }, (data) => {
    const event = JSON.parse(data) as { text_output?: string };
    return (event.text_output ?? "") !== "";
  });
const viaGateway = () =>
  timedStream(`http://127.0.0.1:${openai}/v1/chat/completions`, { model, messages: [{ role: "user", content: question }], max_tokens: maxTokens, stream: true }, (data) => {
    if (data === "[DONE]") return false;
    const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
    return (chunk.choices?.[0]?.delta?.content ?? "") !== "";
  });

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

try {
  cli(["build"]);
  cli(["serve", "--detach"]);
  // A session with the official client, non-stream and stream, as a user would run it.
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${openai}/v1`, apiKey: "none", maxRetries: 0 });
  const models = await client.models.list();
  console.log(`openai client: models.list() -> ${JSON.stringify(models.data.map((m) => m.id))}`);
  const answer = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }] });
  console.log(`openai client: chat.completions.create() -> ${JSON.stringify({ content: answer.choices[0]?.message.content, finish_reason: answer.choices[0]?.finish_reason, usage: answer.usage })}`);
  const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: question }], stream: true, stream_options: { include_usage: true } });
  const deltas: string[] = [];
  let finish: string | null | undefined;
  let streamedUsage: unknown;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content);
    finish = chunk.choices[0]?.finish_reason ?? finish;
    streamedUsage = chunk.usage ?? streamedUsage;
  }
  console.log(`openai client: stream -> ${deltas.length} deltas ${JSON.stringify(deltas.slice(0, 4))}…, joined ${JSON.stringify(deltas.join(""))}, finish_reason ${finish}, usage ${JSON.stringify(streamedUsage)}`);
  // Warm both paths (connections, the tokenizer's first use) before measuring.
  for (let i = 0; i < 3; i++) {
    await direct();
    await viaGateway();
  }
  const times = { direct: [] as { ttft: number; e2e: number }[], gateway: [] as { ttft: number; e2e: number }[] };
  // Interleaved one after the other, so a slow moment of the machine hits both paths alike.
  for (let i = 0; i < requests; i++) {
    times.direct.push(await direct());
    times.gateway.push(await viaGateway());
  }
  const row = (name: string, list: { ttft: number; e2e: number }[]) => {
    const ttft = list.map((t) => t.ttft);
    const e2e = list.map((t) => t.e2e);
    console.log(
      `${name.padEnd(28)} ttft p50 ${quantile(ttft, 0.5).toFixed(1)} ms p90 ${quantile(ttft, 0.9).toFixed(1)} ms   e2e p50 ${quantile(e2e, 0.5).toFixed(1)} ms p90 ${quantile(e2e, 0.9).toFixed(1)} ms`,
    );
    return { ttft: quantile(ttft, 0.5), e2e: quantile(e2e, 0.5) };
  };
  console.log(`${requests} streamed requests per path, max_tokens ${maxTokens}, one at a time, interleaved`);
  const d = row("Triton generate_stream", times.direct);
  const g = row("gateway /v1/chat/completions", times.gateway);
  const added = times.gateway.map((t, i) => t.e2e - (times.direct[i]?.e2e ?? 0));
  console.log(`gateway added per request (e2e, paired): median ${quantile(added, 0.5).toFixed(1)} ms, p90 ${quantile(added, 0.9).toFixed(1)} ms`);
  console.log(`ratio gateway / direct: ttft ${(g.ttft / d.ttft).toFixed(2)}, e2e ${(g.e2e / d.e2e).toFixed(2)}`);
} finally {
  spawnSync(process.execPath, [bin, "stop"], { cwd: dir, env, encoding: "utf8" });
  rmSync(dir, { recursive: true, force: true });
}

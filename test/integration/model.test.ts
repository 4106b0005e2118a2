/**
 * The model judged before it costs anything: a model TensorRT-LLM v0.8.0 cannot build is refused
 * (exit 2) after its three small files and before a byte of its weights; a limit the model cannot
 * hold is refused before any container starts; plan --json carries the memory plan.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { containerEvents } from "../helpers/docker.ts";
import { type Sandbox, sandbox } from "../helpers/product.ts";
import { type RequestLogEntry, useWorld, type World } from "../helpers/world.ts";

const llama31 = "world/llama-3.1-shaped";
const smallFiles = ["config.json", "generation_config.json", "tokenizer_config.json"];

/** The request log is written as each response closes: give the last lines a moment. */
async function settledRequests(w: World): Promise<RequestLogEntry[]> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  return w.hubRequests();
}

/** Files whose content the Hub or its CDN served, and how many bytes of content in all. */
function served(requests: readonly RequestLogEntry[]) {
  const content = requests.filter((r) => r.file !== undefined && r.method === "GET" && r.status < 300);
  return { files: [...new Set(content.map((r) => r.file))].sort(), bytes: content.reduce((n, r) => n + r.bytesSent, 0) };
}

async function eventsOf(box: Sandbox, since: number) {
  return containerEvents(since, { "dev.llama3-trt.workdir": box.workdirId });
}

describe("the model is judged before it costs anything", { timeout: 120_000 }, () => {
  let world: World;

  beforeAll(() => {
    world = useWorld();
    return () => world[Symbol.asyncDispose]();
  });

  it("a Llama 3.1 model is refused (exit 2) after its three small files: no weight downloaded, nothing started", async () => {
    await using w = useWorld();
    await using box = sandbox(w);
    const since = Math.floor(Date.now() / 1000);
    const result = await box.run(["build", "--model", llama31]);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain(`error: llama3-trt will not build ${llama31}@main (`);
    expect(result.stderr).toMatch(/- rope_scaling\.rope_type = llama3: RoPE scaling of type "llama3" .* \[examples\/llama\/convert_checkpoint\.py:1212-1228, 1269-1277\]/);
    // Its 131,072 positions hold the default lengths: the RoPE scaling is the one refusal.
    expect(result.stderr).not.toContain("max_position_embeddings");
    const { files, bytes } = served(await settledRequests(w));
    expect(files).toEqual(smallFiles);
    expect(bytes).toBeLessThan(64 * 1024);
    // Nothing written: no Hugging Face cache, no workdir step, no container, no stand-in.
    expect(existsSync(join(box.dir, "home/.cache/huggingface/hub/models--world--llama-3.1-shaped"))).toBe(false);
    expect(existsSync(join(box.workdir, "state.json"))).toBe(false);
    expect(await eventsOf(box, since)).toEqual([]);
    expect(await w.invocations()).toBe(0);
  });

  it("plan --json says why, in the model object, and exits 2", async () => {
    await using box = sandbox(world);
    const result = await box.run(["plan", "--json", "--model", llama31]);
    expect(result.exitCode, result.stderr).toBe(2);
    const doc = JSON.parse(result.stdout) as { steps: { id: string }[]; model: { refusals: { rule: string; field: string; value: string }[] } };
    expect(doc.steps.map((s) => s.id)).toContain("weights");
    expect(doc.model.refusals.map(({ rule, field, value }) => ({ rule, field, value }))).toEqual([{ rule: "rope-scaling", field: "rope_scaling.rope_type", value: "llama3" }]);
  });

  it("a limit the model cannot hold is refused (exit 2) naming the largest that works; nothing downloaded or started", async () => {
    await using w = useWorld();
    await using box = sandbox(w);
    const since = Math.floor(Date.now() / 1000);
    const result = await box.run(["build", "--max-input-len", "8000", "--tp", "3"]);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain(
      "- max_input_len + max_output_len = 9024: --max-input-len 8000 + --max-output-len 1024 = 9024 tokens, more than 8192: the model was trained on 8192 positions (max_position_embeddings)",
    );
    expect(result.stderr).toContain("The largest that works: --max-input-len 7168 (with --max-output-len 1024), or --max-output-len 192 (with --max-input-len 8000)");
    expect(result.stderr).toContain("- tp = 3: --tp 3 cannot split this model: num_attention_heads (32) is not a multiple of 3. The largest tp up to 3 that works is 2 (it works with 1, 2, 4, 8)");
    expect(served(await settledRequests(w)).files).toEqual(smallFiles);
    expect(await eventsOf(box, since)).toEqual([]);
    expect(await w.invocations()).toBe(0);
  });

  it("plan --json --gpu h100-80gb carries the memory plan per GPU (8B bf16 tp 1: 89 full requests)", async () => {
    await using box = sandbox(world);
    const result = await box.run(["plan", "--json", "--gpu", "h100-80gb"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const doc = JSON.parse(result.stdout) as { memory: Record<string, unknown>; model: Record<string, unknown> };
    expect(doc.memory).toMatchObject({
      gpus: { source: "profile", profile: "h100-80gb", name: "NVIDIA H100 80GB HBM3" },
      dtype: "bfloat16",
      quantize: "none",
      tp: 1,
      requestTokens: 5120,
      maxNumTokens: 16384,
      kvCacheFreeGpuMemFraction: 0.9,
      fits: true,
      fullRequests: 89,
      optionsThatFit: [],
      perGpu: [{ rank: 0, memoryBytes: 85_520_809_984, weightsBytes: 16_060_522_496, runtimeBytes: 2_650_079_232, kvCacheTokens: 458_624, fullRequests: 89, fits: true }],
    });
    expect(doc.model).toMatchObject({ architecture: "LlamaForCausalLM", parameters: 8_030_261_248, maxPositionEmbeddings: 8192, conversation: { template: "tokenizer_config.json", endTokenIds: [128001, 128009], endId: 128009 }, refusals: [] });
    // Planning reads the small files, not the weights.
    expect(readdirSync(box.dir)).not.toContain("llama3-trt");
  });

  it("doctor --gpu a10g-24gb says the 8B model fits with fewer full requests than the batch (a warning)", async () => {
    await using box = sandbox(world);
    const result = await box.run(["doctor", "--json", "--gpu", "a10g-24gb"]);
    const doc = JSON.parse(result.stdout) as { checks: { name: string; status: string; detail: string }[] };
    const byName = Object.fromEntries(doc.checks.map((c) => [c.name, c]));
    expect(byName.Model).toMatchObject({ status: "ok" });
    expect(byName.Model?.detail).toContain("LlamaForCausalLM, 8.03 B parameters, 8192 positions; chat template from tokenizer_config.json, end_id 128009");
    expect(byName.Memory?.status).toBe("warning");
    expect(byName.Memory?.detail).toContain("1 x NVIDIA A10G (--gpu a10g-24gb), per GPU: weights 16.1 GB");
    expect(byName.Memory?.detail).toContain("= 37248 tokens = 7 concurrent requests of 5120 tokens");
  });
});

/**
 * The tritonserver stand-in, run in its image (it parses config.pbtxt with the real protobuf
 * schema, which the host's python does not have). The image is built here from
 * world/images/tritonserver on the world's debootstrap base when that base exists; otherwise
 * the tests are skipped with the reason.
 *
 * Engines and filled model repositories are made on the host with the other stand-ins
 * (convert_checkpoint.py, trtllm-build, fill_template.py) and mounted into the container.
 */
import { cpSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendRepo, chatPrompt, makeHfCheckpoint, py, readInvocations, tools } from "../helpers/standins.ts";
import { tempDir } from "../helpers/tmp.ts";
import { buildTritonStandinImage, type Run, sh, standinFill as FILL, tritonImageUnavailable, tritonStandinImage } from "../helpers/triton-image.ts";

const IMAGE = tritonStandinImage;


let skipReason = "";
const containers: string[] = [];

/** Prepares the image once; returns why the tests cannot run, or "" when they can. */
async function prepareImage(): Promise<string> {
  const unavailable = await tritonImageUnavailable();
  if (unavailable) return unavailable;
  await buildTritonStandinImage();
  return "";
}


/** A model repository from the v0.8.0 templates, filled with fill_template.py. */
async function filledRepo(dir: string, name: string, engine: string, trtllm: Record<string, string> = {}): Promise<string> {
  const repo = join(dir, name);
  cpSync(join(backendRepo, "all_models/inflight_batcher_llm"), repo, { recursive: true });
  const values: Record<string, string> = {
    triton_max_batch_size: "64",
    decoupled_mode: "True",
    max_beam_width: "1",
    engine_dir: `/w/${engine}`,
    max_tokens_in_paged_kv_cache: "2560",
    max_attention_window_size: "2560",
    kv_cache_free_gpu_mem_fraction: "0.5",
    exclude_input_in_output: "True",
    enable_kv_cache_reuse: "False",
    batching_strategy: "inflight_fused_batching",
    max_queue_delay_microseconds: "0",
    ...trtllm,
  };
  const subs = { ...FILL, tensorrt_llm: Object.entries(values).map(([k, v]) => `${k}:${v}`).join(",") };
  for (const [model, sub] of Object.entries(subs)) {
    const r = await py([...tools.fill, "-i", join(repo, model, "config.pbtxt"), sub], { cwd: dir, invocations: join(dir, "host-inv.jsonl") });
    if (r.exitCode !== 0) throw new Error(r.stderr);
  }
  return repo;
}

async function engine(dir: string, name: string, convertArgs: string[], buildArgs: string[]): Promise<void> {
  const inv = join(dir, "host-inv.jsonl");
  const c = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", `./ckpt-${name}`, "--dtype", "bfloat16", "--rotary_base", "500000", ...convertArgs], { cwd: dir, invocations: inv });
  if (c.exitCode !== 0) throw new Error(c.stderr);
  const b = await py([...tools.build, "--checkpoint_dir", `./ckpt-${name}`, "--output_dir", `./${name}`, "--gpt_attention_plugin", "bfloat16", "--gemm_plugin", "bfloat16", "--max_batch_size", "64", "--max_input_len", "2048", "--max_output_len", "512", ...buildArgs], { cwd: dir, invocations: inv });
  if (b.exitCode !== 0) throw new Error(b.stderr);
}

function dockerArgs(dir: string): string[] {
  return ["-v", `${dir}:/w`, "-v", `${backendRepo}:/backend:ro`, "-e", "LLAMA3_TRT_WORLD_RECORDER=", "-e", "LLAMA3_TRT_WORLD_INVOCATIONS=/w/inv.jsonl"];
}

/** Starts a server container; resolves with its base URL once /v2/health/ready answers 200. */
async function serve(dir: string, command: string[]): Promise<{ url: string; id: string }> {
  const run = await sh("docker", ["run", "-d", "-p", "127.0.0.1::8000", ...dockerArgs(dir), IMAGE, ...command]);
  if (run.code !== 0) throw new Error(run.stderr);
  const id = run.stdout.trim();
  containers.push(id);
  const port = (await sh("docker", ["port", id, "8000/tcp"])).stdout.trim().split("\n")[0]!.split(":").pop();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/v2/health/ready`)).status === 200) return { url, id };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server never became ready:\n${(await sh("docker", ["logs", id])).stderr}`);
}

/** Runs a server container to its end (for refusals): exit code and logs. */
async function runToEnd(dir: string, command: string[]): Promise<Run> {
  return sh("docker", ["run", "--rm", ...dockerArgs(dir), IMAGE, ...command], 120_000);
}

async function generate(url: string, body: unknown, stream = false): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/v2/models/ensemble/${stream ? "generate_stream" : "generate"}`, { method: "POST", body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

describe("tritonserver stand-in in its image", { timeout: 300_000 }, () => {
  // Made in beforeAll and removed in afterAll: a `using` here would end before the tests run.
  let tmp: ReturnType<typeof tempDir> | undefined;
  const dir = {
    get path(): string {
      if (!tmp) throw new Error("no temporary folder yet");
      return tmp.path;
    },
  };
  let url = "";

  beforeAll(async () => {
    tmp = tempDir("llama3-trt-standins-docker-");
    skipReason = await prepareImage();
    if (skipReason) return;
    makeHfCheckpoint(join(dir.path, "hf"));
    await engine(dir.path, "engine", [], []);
    await filledRepo(dir.path, "repo", "engine");
    ({ url } = await serve(dir.path, ["sh", "-c", "python3 /backend/scripts/launch_triton_server.py --world_size=1 --model_repo=/w/repo && exec sleep infinity"]));
  }, 900_000);

  afterAll(async () => {
    for (const id of containers) await sh("docker", ["rm", "-f", id]);
    tmp?.[Symbol.dispose]();
  });

  it("serves the filled v0.8.0 repository: health, readiness, metadata; records launch, mpirun and tritonserver", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
    for (const model of ["ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"]) {
      expect((await fetch(`${url}/v2/models/${model}/ready`)).status, model).toBe(200);
    }
    const meta = (await (await fetch(`${url}/v2/models/ensemble`)).json()) as { name: string; inputs: { name: string; datatype: string }[] };
    expect(meta.name).toBe("ensemble");
    expect(meta.inputs.find((i) => i.name === "max_tokens")?.datatype).toBe("INT32");
    expect(readInvocations(join(dir.path, "inv.jsonl")).map((i) => i.tool)).toEqual(["launch_triton_server.py", "mpirun", "tritonserver"]);
  });

  it("generate: max_tokens is a required top-level input; types and names are checked", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const ok = await generate(url, { text_input: "What is machine learning?", max_tokens: 20 });
    expect(ok.status).toBe(200);
    const body = JSON.parse(ok.text) as Record<string, unknown>;
    expect(body).toMatchObject({ model_name: "ensemble", model_version: "1" });
    expect((body["text_output"] as string).trim().split(/\s+/)).toHaveLength(20);

    const nested = await generate(url, { text_input: "What is machine learning?", parameters: { max_tokens: 20 } });
    expect(nested.status).toBe(400);
    expect(JSON.parse(nested.text).error).toMatch(/missing required input\(s\) \['max_tokens'\]/);

    const wrongType = await generate(url, { text_input: "hi", max_tokens: "20" });
    expect(wrongType.status).toBe(400);
    expect(JSON.parse(wrongType.text).error).toMatch(/max_tokens/);

    const unknown = await generate(url, { text_input: "hi", max_tokens: 5, max_new_tokens: 5 });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.text).error).toMatch(/unexpected inference input 'max_new_tokens'/);

    const tooLong = await generate(url, { text_input: "hi", max_tokens: 600 });
    expect(tooLong.status).toBe(400);
  });

  it("end_id 128009 ends a Llama 3 chat answer cleanly; 128001 lets it run on into a fake next turn", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const clean = await generate(url, { text_input: chatPrompt("What is the capital of France?"), max_tokens: 64, end_id: 128009 });
    expect(JSON.parse(clean.text).text_output).toMatch(/^Stand-in answer [0-9a-f]{8}: you asked about What is the capital of France\.$/);
    const runOn = await generate(url, { text_input: chatPrompt("What is the capital of France?"), max_tokens: 64, end_id: 128001 });
    const text = JSON.parse(runOn.text).text_output as string;
    // skip_special_tokens (postprocessing's default) drops the <|...|> tokens, not the invented turn.
    expect(text).toMatch(/^Stand-in answer [0-9a-f]{8}: you asked about What is the capital of France\.user\n\nAnd what else/);
  });

  it("generate_stream streams one event per token from the decoupled model", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const res = await generate(url, { text_input: "Tell me", max_tokens: 5, stream: true }, true);
    expect(res.status).toBe(200);
    const events = res.text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => JSON.parse(e.slice(6)) as { text_output: string });
    expect(events).toHaveLength(5);
    expect(events.every((e) => typeof e.text_output === "string")).toBe(true);
  });

  it("world size 2: launch_triton_server.py starts two ranks, rank 0 serves", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    await engine(dir.path, "engine-tp2", ["--tp_size", "2"], []);
    await filledRepo(dir.path, "repo-tp2", "engine-tp2");
    const { url: tp2 } = await serve(dir.path, ["sh", "-c", "python3 /backend/scripts/launch_triton_server.py --world_size=2 --model_repo=/w/repo-tp2 && exec sleep infinity"]);
    const res = await fetch(`${tp2}/v2/models/ensemble/generate`, { method: "POST", body: JSON.stringify({ text_input: "hi", max_tokens: 3 }) });
    expect(res.status).toBe(200);
  });

  describe("refusals", () => {
    it("an unfilled ${...} in a typed field is a parse error: the server exits", async (ctx) => {
      if (skipReason) ctx.skip(skipReason);
      const repo = join(dir.path, "unfilled");
      cpSync(join(backendRepo, "all_models/inflight_batcher_llm"), repo, { recursive: true });
      const r = await runToEnd(dir.path, ["tritonserver", "--model-repository=/w/unfilled", "--disable-auto-complete-config"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/failed to read text proto from \/w\/unfilled\/\w+\/config\.pbtxt/);
      expect(r.stderr).toMatch(/error: creating server: Internal - failed to load all models/);
    });

    it("in-flight batching refuses an engine without paged KV cache; a tp=2 engine needs 2 ranks", async (ctx) => {
      if (skipReason) ctx.skip(skipReason);
      await engine(dir.path, "engine-contiguous", [], ["--paged_kv_cache", "disable"]);
      await filledRepo(dir.path, "repo-contiguous", "engine-contiguous");
      const contiguous = await runToEnd(dir.path, ["tritonserver", "--model-repository=/w/repo-contiguous"]);
      expect(contiguous.code).toBe(1);
      expect(contiguous.stderr).toMatch(/TrtGptModelInflightBatching requires GPT attention plugin with packed input and paged KV cache/);

      await filledRepo(dir.path, "repo-tp2-single", "engine-tp2");
      const single = await runToEnd(dir.path, ["tritonserver", "--model-repository=/w/repo-tp2-single"]);
      expect(single.code).toBe(1);
      expect(single.stderr).toMatch(/Number of MPI processes \(1\) must equal the engine's world size/);
    });

    it("streaming from a model deployed without decoupled mode is an error event", async (ctx) => {
      if (skipReason) ctx.skip(skipReason);
      await filledRepo(dir.path, "repo-coupled", "engine", { decoupled_mode: "False" });
      const { url: coupled } = await serve(dir.path, ["tritonserver", "--model-repository=/w/repo-coupled", "--disable-auto-complete-config"]);
      const res = await fetch(`${coupled}/v2/models/ensemble/generate_stream`, { method: "POST", body: JSON.stringify({ text_input: "hi", max_tokens: 3, stream: true }) });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/data: \{"error": "Streaming is only supported if model is deployed using decoupled mode\."\}/);
    });

    it("an unknown option ends tritonserver with its usage", async (ctx) => {
      if (skipReason) ctx.skip(skipReason);
      const r = await runToEnd(dir.path, ["tritonserver", "--model-repository=/w/repo", "--no-such-option=1"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/unrecognized option '--no-such-option'/);
      expect(r.stderr).toMatch(/Usage: tritonserver \[options\]/);
    });
  });
});

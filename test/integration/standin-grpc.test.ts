/**
 * The Triton stand-in's gRPC streaming inference (ModelStreamInfer) and its HTTP disconnects, in
 * its image, with Node's @grpc/grpc-js loading world/images/common/proto/grpc_service.proto as
 * the gateway does: tokens then a final response; a stop by request id (TensorRT-LLM v0.8.0's
 * `stop` input) ends a request early and frees its slot; the refusals of the real server and
 * backend; an HTTP stream whose client leaves holds its slot to its end (Triton 24.03 cannot
 * cancel an HTTP request) and an HTTP "id" is an unknown input.
 *
 * The container runs on the host's network with a recorder of this file's own that answers the
 * stand-in's pace (maxInFlight 1: one request generates at a time), so the order in which
 * requests get their tokens shows which of them holds the one slot.
 */
import { cpSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendRepo, makeHfCheckpoint, py, repoRoot, tools } from "../helpers/standins.ts";
import { freePorts } from "../helpers/ports.ts";
import { tempDir } from "../helpers/tmp.ts";
import { buildTritonStandinImage, sh, standinFill as FILL, tritonImageUnavailable, tritonStandinImage } from "../helpers/triton-image.ts";

const IMAGE = tritonStandinImage;
const PROTO = join(repoRoot, "world/images/common/proto/grpc_service.proto");
const ITL_MS = 10;


// ---- the gRPC client, as the gateway makes it ----

interface Param {
  bool_param?: boolean;
  parameter_choice?: string;
}
interface Response {
  error_message: string;
  infer_response: {
    model_name: string;
    model_version: string;
    id: string;
    parameters: Record<string, Param>;
    outputs: { name: string; datatype: string; shape: number[] }[];
    raw_output_contents: Buffer[];
  } | null;
}

type Stub = grpc.Client & { ModelStreamInfer(): grpc.ClientDuplexStream<unknown, Response> };

function stub(port: number): Stub {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: new (addr: string, creds: grpc.ChannelCredentials) => Stub } };
  return new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** One ModelStreamInfer call: what came back (with when), and a wait for a response that matches. */
class Call {
  readonly got: { at: number; r: Response }[] = [];
  ended = false;
  private readonly waiters: (() => void)[] = [];
  readonly stream: grpc.ClientDuplexStream<unknown, Response>;
  constructor(client: Stub) {
    this.stream = client.ModelStreamInfer();
    this.stream.on("data", (r: Response) => {
      this.got.push({ at: performance.now(), r });
      this.waiters.splice(0).forEach((w) => w());
    });
    this.stream.on("error", () => {});
    this.stream.on("end", () => {
      this.ended = true;
      this.waiters.splice(0).forEach((w) => w());
    });
  }
  write(request: unknown): number {
    this.stream.write(request);
    return performance.now();
  }
  of(id: string): { at: number; r: Response }[] {
    return this.got.filter((g) => g.r.infer_response?.id === id);
  }
  async until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (this.ended || Date.now() > deadline) throw new Error(`${what}: not seen (got ${JSON.stringify(this.got.map((g) => g.r.error_message || g.r.infer_response?.id))})`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
  /** The (first) error for request `id`. */
  async errorOf(id: string): Promise<string> {
    await this.until(`an error for '${id}'`, () => this.of(id).some((g) => g.r.error_message !== ""));
    return this.of(id).find((g) => g.r.error_message !== "")!.r.error_message;
  }
}

const final = (r: Response) => r.infer_response?.parameters["triton_final_response"]?.bool_param;
const text = (r: Response) => {
  const raw = r.infer_response!.raw_output_contents[0]!;
  return raw.subarray(4, 4 + raw.readUInt32LE(0)).toString("utf8");
};
const bytes = (...s: string[]) => Buffer.concat(s.map((v) => Buffer.concat([Buffer.from(Uint32Array.of(Buffer.byteLength(v)).buffer), Buffer.from(v)])));
const int32 = (...v: number[]) => Buffer.from(Int32Array.from(v).buffer);
const FINAL = { triton_enable_empty_final_response: { bool_param: true } };

/** A streamed ensemble request, its data in raw_input_contents (as tritonclient sends it). */
function generation(id: string, maxTokens: number, prompt = "Tell me a long story") {
  return {
    model_name: "ensemble",
    id,
    parameters: FINAL,
    inputs: [
      { name: "text_input", datatype: "BYTES", shape: [1, 1] },
      { name: "max_tokens", datatype: "INT32", shape: [1, 1] },
      { name: "stream", datatype: "BOOL", shape: [1, 1] },
    ],
    raw_input_contents: [bytes(prompt), int32(maxTokens), Buffer.from([1])],
  };
}

/** A stop of request `id`, its data in `contents`. */
function stop(id: string, inputs: string[] = ["input_ids", "input_lengths", "request_output_len", "stop"]) {
  const all: Record<string, unknown> = {
    input_ids: { name: "input_ids", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } },
    input_lengths: { name: "input_lengths", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } },
    request_output_len: { name: "request_output_len", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } },
    stop: { name: "stop", datatype: "BOOL", shape: [1, 1], contents: { bool_contents: [true] } },
  };
  return { model_name: "tensorrt_llm", id, parameters: FINAL, inputs: inputs.map((n) => all[n]) };
}

// ---- the server in its image ----


async function prepare(dir: string): Promise<void> {
  await buildTritonStandinImage();
  makeHfCheckpoint(join(dir, "hf"));
  const inv = { cwd: dir, invocations: join(dir, "host-inv.jsonl") };
  const c = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./ckpt", "--dtype", "bfloat16", "--rotary_base", "500000"], inv);
  if (c.exitCode !== 0) throw new Error(c.stderr);
  const b = await py([...tools.build, "--checkpoint_dir", "./ckpt", "--output_dir", "./engine", "--gpt_attention_plugin", "bfloat16", "--gemm_plugin", "bfloat16", "--max_batch_size", "64", "--max_input_len", "2048", "--max_output_len", "512"], inv);
  if (b.exitCode !== 0) throw new Error(b.stderr);
  const repo = join(dir, "repo");
  cpSync(join(backendRepo, "all_models/inflight_batcher_llm"), repo, { recursive: true });
  const trtllm = "triton_max_batch_size:64,decoupled_mode:True,max_beam_width:1,engine_dir:/w/engine,max_tokens_in_paged_kv_cache:2560,max_attention_window_size:2560,kv_cache_free_gpu_mem_fraction:0.5,exclude_input_in_output:True,enable_kv_cache_reuse:False,batching_strategy:inflight_fused_batching,max_queue_delay_microseconds:0";
  for (const [model, sub] of Object.entries({ ...FILL, tensorrt_llm: trtllm })) {
    const r = await py([...tools.fill, "-i", join(repo, model, "config.pbtxt"), sub], inv);
    if (r.exitCode !== 0) throw new Error(r.stderr);
  }
}

describe("the Triton stand-in's gRPC ModelStreamInfer and HTTP disconnects, in its image", { timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir> | undefined;
  let recorder: Server | undefined;
  let container = "";
  let ports: Awaited<ReturnType<typeof freePorts>>;
  let client: Stub;
  const logs = async () => (await sh("docker", ["logs", container])).stderr;
  const http = () => `http://127.0.0.1:${ports.http}`;
  const serverArgs = () => ["tritonserver", "--model-repository=/w/repo", `--http-port=${ports.http}`, `--grpc-port=${ports.grpc}`, `--metrics-port=${ports.metrics}`];

  beforeAll(async () => {
    tmp = tempDir("llama3-trt-standin-grpc-");
    const unavailable = await tritonImageUnavailable();
    if (unavailable) throw new Error(unavailable);
    await prepare(tmp.path);
    // The stand-in's pace: one slot, tokens every ITL_MS.
    recorder = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.end(JSON.stringify({ behaviour: { maxInFlight: 1, ttftMs: 20, itlMs: ITL_MS } })));
    });
    await new Promise<void>((resolve) => recorder!.listen(0, "127.0.0.1", resolve));
    const recorderUrl = `http://127.0.0.1:${(recorder.address() as { port: number }).port}`;
    ports = await freePorts();
    const run = await sh("docker", ["run", "-d", "--network", "host", "-v", `${tmp.path}:/w`, "-e", `LLAMA3_TRT_WORLD_RECORDER=${recorderUrl}`, IMAGE, ...serverArgs()]);
    if (run.code !== 0) throw new Error(run.stderr);
    container = run.stdout.trim();
    for (let i = 0; ; i++) {
      const ready = await fetch(`${http()}/v2/health/ready`).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (i > 300) throw new Error(`the stand-in never became ready:\n${await logs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    client = stub(ports.grpc);
  }, 600_000);

  afterAll(async () => {
    client?.close();
    if (container) await sh("docker", ["rm", "-f", container]);
    recorder?.close();
    tmp?.[Symbol.dispose]();
  });

  it("streams a request's tokens in raw_output_contents, the last one final; a busy gRPC port fails start-up", async () => {
    expect(await logs()).toContain(`Started GRPCInferenceService at 0.0.0.0:${ports.grpc}`);
    const call = new Call(client);
    call.write(generation("11", 12));
    await call.until("the final response", () => call.of("11").some((g) => final(g.r) === true));
    const rs = call.of("11").map((g) => g.r);
    expect(rs).toHaveLength(12);
    expect(rs.map(final)).toEqual([...Array<boolean>(11).fill(false), true]);
    for (const r of rs) {
      expect(r.error_message).toBe("");
      expect(r.infer_response).toMatchObject({ model_name: "ensemble", model_version: "1", id: "11" });
      expect(r.infer_response!.outputs).toEqual([
        { name: "text_output", datatype: "BYTES", shape: [1, 1], parameters: {}, contents: null },
        { name: "cum_log_probs", datatype: "FP32", shape: [1, 1], parameters: {}, contents: null },
        { name: "output_log_probs", datatype: "FP32", shape: [1, 1, 1], parameters: {}, contents: null },
      ]);
      expect(r.infer_response!.raw_output_contents.map((b) => b.length).slice(1)).toEqual([4, 4]);
    }
    expect(rs.map(text).join("").trim().split(/\s+/).length).toBeGreaterThan(5);
    // Without triton_enable_empty_final_response no response says which one is the last.
    const plain = { ...generation("12", 3), parameters: {} };
    call.write(plain);
    await call.until("three responses", () => call.of("12").length === 3);
    expect(call.of("12").map((g) => Object.keys(g.r.infer_response!.parameters))).toEqual([[], [], []]);
    call.stream.end();
    await call.until("the end of the call", () => call.ended).catch(() => {});
    expect(call.ended).toBe(true);

    const busy = await sh("docker", ["run", "--rm", "--network", "host", "-v", `${tmp!.path}:/w`, "-e", "LLAMA3_TRT_WORLD_RECORDER=", "-e", "LLAMA3_TRT_WORLD_INVOCATIONS=/w/inv.jsonl", IMAGE, "tritonserver", "--model-repository=/w/repo", `--http-port=${ports.openai}`, `--grpc-port=${ports.grpc}`, "--allow-metrics=false"]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain(`failed to start GRPC service: Unavailable - Socket '0.0.0.0:${ports.grpc}' already in use`);
  });

  it("a stop by request id ends a generating request at once and frees its slot: the request queued behind it gets its tokens long before the first would have ended", async () => {
    const call = new Call(client);
    const long = 300;
    const startedAt = call.write(generation("21", long));
    await call.until("three tokens of 21", () => call.of("21").length >= 3);
    call.write(generation("22", 3)); // queued: the one slot is 21's
    await new Promise((r) => setTimeout(r, 100));
    expect(call.of("22")).toHaveLength(0);
    const stopper = new Call(client);
    const stoppedAt = stopper.write(stop("21"));
    await call.until("22's final response", () => call.of("22").some((g) => final(g.r) === true));
    await stopper.until("the stop's response", () => stopper.got.length === 1);
    // The stop itself: one empty, final response.
    expect(stopper.got[0]!.r.error_message).toBe("");
    expect(stopper.got[0]!.r.infer_response).toMatchObject({ model_name: "tensorrt_llm", id: "21", outputs: [], raw_output_contents: [] });
    expect(final(stopper.got[0]!.r)).toBe(true);
    // 21: some tokens, then one final response with no text.
    const r21 = call.of("21");
    expect(r21.length).toBeLessThan(long / 2);
    expect(r21.map((g) => final(g.r))).toEqual([...Array<boolean>(r21.length - 1).fill(false), true]);
    expect(text(r21.at(-1)!.r)).toBe("");
    // 22 started when 21 was stopped, not when 21 would have ended (long * ITL_MS after its start).
    const first22 = call.of("22")[0]!.at;
    expect(first22).toBeGreaterThan(stoppedAt);
    expect(first22 - startedAt).toBeLessThan(0.5 * long * ITL_MS);
    const line = /requestId 21 stopped after (\d+) of 300 tokens/.exec(await logs());
    expect(Number(line?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(line?.[1])).toBeLessThan(long / 2);
    // 21 is gone: a second stop finds nothing.
    stopper.write(stop("21"));
    expect(await stopper.errorOf("21")).toBe("Received stop request for requestId 21 but it's not active (might be completed already).");
    stopper.stream.end();
    call.stream.end();
  });

  it("refuses as Triton and the v0.8.0 backend do, each on a call that stays open", async () => {
    const call = new Call(client);
    call.write(stop("999"));
    expect(await call.errorOf("999")).toBe("Received stop request for requestId 999 but it's not active (might be completed already).");
    call.write(stop(""));
    expect(await call.errorOf("")).toBe("Cannot send stop request without specifying a request_id");
    call.write(generation("abc", 3));
    expect(await call.errorOf("abc")).toBe("Invalid requestId, must be uint64_t. Got abc");
    call.write(generation("31", 100));
    await call.until("a token of 31", () => call.of("31").length >= 1);
    call.write({ ...generation("31", 3), model_name: "ensemble" });
    expect(await call.errorOf("31")).toBe("requestId 31 is already in progress, request is ignored.");
    call.write(stop("31"));
    await call.until("31's end", () => call.of("31").some((g) => final(g.r) === true));
    call.write(stop("32", ["stop"]));
    expect(await call.errorOf("32")).toMatch(/^expected 3 inputs but got 0 inputs for model 'tensorrt_llm'\. Got input\(s\) \['stop'\], but missing required input\(s\) \['input_ids', 'input_lengths', 'request_output_len'\]/);
    const shape = generation("33", 3);
    shape.inputs[1] = { name: "max_tokens", datatype: "INT32", shape: [1] };
    call.write(shape);
    expect(await call.errorOf("33")).toBe("unexpected shape for input 'max_tokens' for model 'ensemble'. Expected [-1,-1], got [1]");
    const datatype = generation("34", 3);
    datatype.inputs[1] = { name: "max_tokens", datatype: "INT64", shape: [1, 1] };
    datatype.raw_input_contents[1] = Buffer.from(BigInt64Array.of(3n).buffer);
    call.write(datatype);
    expect(await call.errorOf("34")).toBe("inference input 'max_tokens' data-type is 'INT64', but model 'ensemble' expects 'INT32'");
    const unknown = generation("35", 3);
    unknown.inputs.push({ name: "max_new_tokens", datatype: "INT32", shape: [1, 1] });
    unknown.raw_input_contents.push(int32(3));
    call.write(unknown);
    expect(await call.errorOf("35")).toBe("unexpected inference input 'max_new_tokens' for model 'ensemble'");
    call.write({ ...generation("36", 3), inputs: [...generation("36", 3).inputs.slice(0, 2), { name: "stream", datatype: "BOOL", shape: [1, 1], contents: { bool_contents: [true] } }] });
    expect(await call.errorOf("36")).toBe("contents field must not be specified when using raw_input_contents for 'stream' for model 'ensemble'");
    call.write({ ...stop("37"), inputs: stop("37").inputs.map((i) => (i as { name: string }).name === "stop" ? { name: "stop", datatype: "BOOL", shape: [1, 1], contents: { bool_contents: [false] } } : i) });
    expect(await call.errorOf("37")).toBe("the test world's tritonserver generates through the ensemble or the BLS model only, not 'tensorrt_llm'");
    // The call is still open: a request on it runs to its final response.
    call.write(generation("38", 2));
    await call.until("38's final response", () => call.of("38").some((g) => final(g.r) === true));
    expect(call.of("38").map((g) => g.r.error_message)).toEqual(["", ""]);
    call.stream.end();
  });

  it("HTTP: a generate_stream whose client leaves holds its slot to its end (the next request waits); a top-level \"id\" is an unknown input", async () => {
    const withId = await fetch(`${http()}/v2/models/ensemble/generate`, { method: "POST", body: JSON.stringify({ id: "7", text_input: "hi", max_tokens: 2 }) });
    expect(withId.status).toBe(400);
    expect(((await withId.json()) as { error: string }).error).toBe("unexpected inference input 'id' for model 'ensemble'");

    const long = 150;
    const controller = new AbortController();
    const startedAt = performance.now();
    const res = await fetch(`${http()}/v2/models/ensemble/generate_stream`, { method: "POST", body: JSON.stringify({ text_input: "Tell me a long story", max_tokens: long, stream: true }), signal: controller.signal });
    const reader = res.body!.getReader();
    let seen = "";
    while ((seen.match(/data: /g) ?? []).length < 3) seen += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const leftAt = performance.now();
    const second = await fetch(`${http()}/v2/models/ensemble/generate_stream`, { method: "POST", body: JSON.stringify({ text_input: "hi", max_tokens: 2, stream: true }) });
    await second.body!.getReader().read();
    const firstEvent = performance.now();
    // The second got the one slot only when the first would have ended (sleeps are only ever late).
    expect(firstEvent - startedAt).toBeGreaterThan(0.8 * long * ITL_MS);
    expect(firstEvent - leftAt).toBeGreaterThan(0.5 * (long * ITL_MS - (leftAt - startedAt)));
    const log = await logs();
    expect(log).toMatch(new RegExp(`client closed the connection after \\d+ of ${long} responses; the request runs on to its end \\(Triton 24\\.03 cannot cancel an HTTP request\\)`));
    expect(log).toContain(`the request whose client left ran to its end (${long} responses); its slot is free`);
  });
});

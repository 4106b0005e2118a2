/**
 * The test world's stand-ins of NVIDIA's tools, run on the host with python3 (no Docker): their
 * command lines are exactly the v0.8.0 ones recorded in test/fixtures/trtllm-v0.8.0-flags.json,
 * they record every run, accept the seed's command lines, write and read the v0.8.0 layouts, and
 * refuse what the real tools refuse. The tritonserver stand-in needs protobuf and runs in its
 * image: test/integration/standins-docker.test.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  backendRepo,
  chatPrompt,
  dumpParser,
  llamaTensorNames,
  makeHfCheckpoint,
  py,
  readInvocations,
  readSafetensorsHeader,
  spawnPy,
  tools,
  writeSafetensors,
} from "../helpers/standins.ts";
import { tempDir } from "../helpers/tmp.ts";

const fixture = JSON.parse(readFileSync(new URL("../fixtures/trtllm-v0.8.0-flags.json", import.meta.url), "utf8")) as {
  tools: Record<string, { argparse: Record<string, unknown>[]; defaults?: Record<string, { value: unknown }> }>;
};

const pythonOk = (() => {
  try {
    return /^Python 3\.(1[0-9])/.test(execFileSync("python3", ["--version"], { encoding: "utf8" }));
  } catch {
    return false;
  }
})();
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

const CORE_KEYS = ["option_strings", "dest", "action", "type", "default", "choices", "nargs", "const", "required"] as const;
function core(entry: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(CORE_KEYS.map((k) => [k, entry[k]]));
}

const SEED = {
  convert: ["--model_dir", "./Meta-Llama-3-8B-Instruct", "--output_dir", "./tllm_checkpoint_1gpu_bf16", "--dtype", "bfloat16"],
  build: [
    "--checkpoint_dir", "./tllm_checkpoint_1gpu_bf16",
    "--output_dir", "./tmp/llama/8B/trt_engines/bf16/1-gpu",
    "--gpt_attention_plugin", "bfloat16",
    "--gemm_plugin", "bfloat16",
  ],
  run: ["--max_output_len=50", "--tokenizer_dir", "./Meta-Llama-3-8B-Instruct", "--engine_dir=./tmp/llama/8B/trt_engines/bf16/1-gpu"],
};

/** convert + build in `dir` (with the seed's names), returning the engine dir. */
async function seedBuild(dir: string, inv: string, extraConvert: string[] = [], extraBuild: string[] = []): Promise<string> {
  if (!existsSync(join(dir, "Meta-Llama-3-8B-Instruct"))) makeHfCheckpoint(join(dir, "Meta-Llama-3-8B-Instruct"));
  const c = await py([...tools.convert, ...SEED.convert, ...extraConvert], { cwd: dir, invocations: inv });
  expect(c.exitCode, c.stderr).toBe(0);
  const b = await py([...tools.build, ...SEED.build, ...extraBuild], { cwd: dir, invocations: inv });
  expect(b.exitCode, b.stderr).toBe(0);
  return join(dir, "tmp/llama/8B/trt_engines/bf16/1-gpu");
}

// Each case starts several Python processes: give them time on a 2-core CI machine.
describe.skipIf(!pythonOk)("stand-ins of the TensorRT-LLM v0.8.0 tools (host python3)", { timeout: 120_000 }, () => {
  describe("command lines are exactly the recorded v0.8.0 ones", () => {
    const cases = [
      ["trtllm-build", "build"],
      ["convert_checkpoint.py", "convert"],
      ["run.py", "run"],
      ["launch_triton_server.py", "launch"],
      ["fill_template.py", "fill"],
    ] as const;
    for (const [tool, kind] of cases) {
      it(`${tool}: every flag, type, default, choice, nargs and required`, async () => {
        using dir = tempDir();
        const actual = (await dumpParser(kind, dir.path)) as Record<string, unknown>[];
        const expected = fixture.tools[tool]!.argparse.map(core);
        if (tool === "launch_triton_server.py") {
          const repo = expected.find((e) => e["dest"] === "model_repo")!;
          repo["default"] = `${join(backendRepo, "scripts")}/../all_models/gpt`;
        }
        expect(actual.map(core)).toEqual(expected);
      });
    }

    it("trtllm-build's defaults are the ones recorded (max_batch_size 1, 1024/1024, paged KV and packed input on)", async () => {
      using dir = tempDir();
      const actions = (await dumpParser("build", dir.path)) as Record<string, unknown>[];
      const byDest = Object.fromEntries(actions.map((a) => [a["dest"], a["default"]]));
      const defaults = fixture.tools["trtllm-build"]!.defaults!;
      for (const key of ["max_batch_size", "max_input_len", "max_output_len", "max_beam_width", "max_num_tokens", "paged_kv_cache", "remove_input_padding", "gpt_attention_plugin", "gemm_plugin", "context_fmha"]) {
        expect(byDest[key], key).toEqual(defaults[key]!.value);
      }
    });
  });

  describe("argparse refusals: exit 2 with argparse's message", () => {
    const unknown: [string, readonly string[]][] = [
      ["convert_checkpoint.py", tools.convert],
      ["trtllm-build", tools.build],
      ["run.py", [...tools.run, "--max_output_len", "5"]],
      ["launch_triton_server.py", tools.launch],
      ["fill_template.py", [...tools.fill, "a.pbtxt", "k:v"]],
    ];
    for (const [name, argv] of unknown) {
      it(`${name} rejects an unknown flag and still records the run`, async () => {
        using dir = tempDir();
        const inv = join(dir.path, "inv.jsonl");
        const r = await py([...argv, "--no_such_flag"], { cwd: dir.path, invocations: inv });
        expect(r.exitCode).toBe(2);
        expect(r.stderr).toMatch(/error: unrecognized arguments: --no_such_flag/);
        expect(readInvocations(inv).map((i) => i.tool)).toEqual([name]);
      });
    }

    it("bad choices and types", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const cases: [readonly string[], RegExp][] = [
        [[...tools.convert, "--dtype", "bf16"], /argument --dtype: invalid choice: 'bf16' \(choose from 'float32', 'bfloat16', 'float16'\)/],
        [[...tools.convert, "--tp_size", "two"], /argument --tp_size: invalid int value: 'two'/],
        [[...tools.build, "--gpt_attention_plugin", "bf16"], /argument --gpt_attention_plugin: invalid choice: 'bf16'/],
        [[...tools.build, "--paged_kv_cache", "true"], /argument --paged_kv_cache: invalid choice: 'true' \(choose from 'enable', 'disable'\)/],
        [[...tools.build, "--use_paged_context_fmha"], /argument --use_paged_context_fmha: expected one argument/],
        [[...tools.build, "--max_batch_size", "8.5"], /argument --max_batch_size: invalid int value: '8.5'/],
        [[...tools.run, "--tokenizer_dir", "x"], /the following arguments are required: --max_output_len/],
        [[...tools.run, "--max_output_len", "5", "--lora_ckpt_source", "x"], /argument --lora_ckpt_source: invalid choice: 'x'/],
        [[...tools.launch, "--world_size", "two"], /argument --world_size: invalid int value: 'two'/],
        [[...tools.fill, "only-one"], /the following arguments are required: substitutions/],
      ];
      for (const [argv, message] of cases) {
        const r = await py(argv, { cwd: dir.path, invocations: inv });
        expect(r.exitCode, argv.join(" ")).toBe(2);
        expect(r.stderr).toMatch(message);
      }
      expect(readInvocations(inv)).toHaveLength(cases.length);
    });
  });

  describe("recording", () => {
    let server: Server;
    let url = "";
    const received: unknown[] = [];
    let answer: unknown = { ok: true };
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          received.push({ path: req.url, method: req.method, body: JSON.parse(body) as unknown });
          res.writeHead(201, { "content-type": "application/json" });
          res.end(JSON.stringify(answer));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("appends one JSON line {tool, argv, cwd, time} per run to LLAMA3_TRT_WORLD_INVOCATIONS", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      await py([...tools.build, "--help"], { cwd: dir.path, invocations: inv });
      const [entry, ...rest] = readInvocations(inv);
      expect(rest).toEqual([]);
      expect(Object.keys(entry!).sort()).toEqual(["argv", "cwd", "time", "tool"]);
      expect(entry).toMatchObject({ tool: "trtllm-build", argv: ["--help"], cwd: dir.path });
      expect(Number.isNaN(Date.parse(entry!.time))).toBe(false);
    });

    it("exits 3 outside the test world, and when the recorder cannot be reached", async () => {
      using dir = tempDir();
      const outside = await py([...tools.build, "--help"], { cwd: dir.path });
      expect(outside.exitCode).toBe(3);
      expect(outside.stderr).toMatch(/stand-in started outside the test world/);
      const unreachable = await py([...tools.build, "--help"], { cwd: dir.path, env: { LLAMA3_TRT_WORLD_RECORDER: "http://127.0.0.1:9" } });
      expect(unreachable.exitCode).toBe(3);
      expect(unreachable.stderr).toMatch(/cannot reach the recorder/);
    });

    it("POSTs to the recorder and obeys the behaviour knobs of its answer", async () => {
      using dir = tempDir();
      const env = { LLAMA3_TRT_WORLD_RECORDER: url };
      answer = { ok: true };
      received.length = 0;
      const ok = await py([...tools.build, "--help"], { cwd: dir.path, env });
      expect(ok.exitCode).toBe(0);
      expect(received).toEqual([{ path: "/invocations", method: "POST", body: expect.objectContaining({ tool: "trtllm-build", argv: ["--help"] }) }]);

      makeHfCheckpoint(join(dir.path, "Meta-Llama-3-8B-Instruct"));
      answer = { behaviour: { exitCode: 7 } };
      const forced = await py([...tools.convert, ...SEED.convert], { cwd: dir.path, env });
      expect(forced.exitCode).toBe(7);
      expect(existsSync(join(dir.path, "tllm_checkpoint_1gpu_bf16/rank0.safetensors"))).toBe(false);

      answer = { behaviour: { oom: true } };
      const oom = await py([...tools.convert, ...SEED.convert], { cwd: dir.path, env });
      expect(oom.signal).toBe("SIGKILL");

      answer = { behaviour: { sleepSeconds: 1 } };
      const started = Date.now();
      const slow = await py([...tools.convert, ...SEED.convert], { cwd: dir.path, env });
      expect(slow.exitCode).toBe(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);

      answer = { behaviour: { sleepSecs: 1 } };
      const typo = await py([...tools.build, "--help"], { cwd: dir.path, env });
      expect(typo.exitCode).toBe(3);
      expect(typo.stderr).toMatch(/unknown behaviour knob 'sleepSecs'/);
    });

    it("ignoreSigint makes a long run deaf to SIGINT (as a PID-1 process without a handler is)", async () => {
      using dir = tempDir();
      makeHfCheckpoint(join(dir.path, "Meta-Llama-3-8B-Instruct"));
      answer = { behaviour: { sleepSeconds: 30, ignoreSigint: true } };
      const child = spawnPy([...tools.convert, ...SEED.convert], { cwd: dir.path, env: { LLAMA3_TRT_WORLD_RECORDER: url } });
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("exit", (code, signal) => resolve([code, signal])));
      await new Promise((r) => setTimeout(r, 1500));
      child.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 700));
      expect(child.exitCode).toBeNull();
      child.kill("SIGTERM");
      expect(await exited).toEqual([null, "SIGTERM"]);
      answer = { ok: true };
    });
  });

  describe("the seed's walkthrough on a small generated checkpoint", () => {
    it("convert_checkpoint.py writes the v0.8.0 checkpoint layout", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "Meta-Llama-3-8B-Instruct"));
      const r = await py([...tools.convert, ...SEED.convert], { cwd: dir.path, invocations: inv });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.split("\n")[0]).toBe("0.8.0");
      const out = join(dir.path, "tllm_checkpoint_1gpu_bf16");
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
      expect(config).toMatchObject({
        architecture: "LlamaForCausalLM",
        dtype: "bfloat16",
        logits_dtype: "float32",
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        hidden_size: 64,
        intermediate_size: 128,
        vocab_size: 128256,
        position_embedding_type: "rope_gpt_neox",
        max_position_embeddings: 8192,
        hidden_act: "silu",
        // v0.8.0 does not carry Llama's rope_theta over: rotary_base stays --rotary_base's default.
        rotary_base: 10000.0,
        norm_epsilon: 1e-5,
        quantization: { quant_algo: null, kv_cache_quant_algo: null, exclude_modules: ["lm_head"] },
        mapping: { world_size: 1, tp_size: 1, pp_size: 1 },
      });
      const header = readSafetensorsHeader(join(out, "rank0.safetensors"));
      expect(Object.keys(header)).toContain("transformer.vocab_embedding.weight");
      expect(Object.keys(header)).toContain("transformer.layers.1.attention.qkv.weight");
      expect(Object.keys(header)).toContain("lm_head.weight");
      expect(new Set(Object.values(header).map((t) => t.dtype))).toEqual(new Set(["BF16"]));
      expect(existsSync(join(out, "rank1.safetensors"))).toBe(false);
      expect(readInvocations(inv)).toEqual([expect.objectContaining({ tool: "convert_checkpoint.py", argv: SEED.convert })]);
    });

    it("trtllm-build writes the v0.8.0 engine layout with the real defaults", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const engineDir = await seedBuild(dir.path, inv);
      const config = JSON.parse(readFileSync(join(engineDir, "config.json"), "utf8")) as {
        version: string;
        pretrained_config: Record<string, unknown>;
        build_config: Record<string, unknown> & { plugin_config: Record<string, unknown> };
      };
      expect(config.version).toBe("0.8.0");
      expect(config.pretrained_config).toMatchObject({ architecture: "LlamaForCausalLM", dtype: "bfloat16", mapping: { world_size: 1, tp_size: 1, pp_size: 1 } });
      expect(config.build_config).toMatchObject({ max_batch_size: 1, max_input_len: 1024, max_output_len: 1024, max_beam_width: 1, max_num_tokens: 1024 });
      expect(config.build_config.plugin_config).toMatchObject({
        gpt_attention_plugin: "bfloat16",
        gemm_plugin: "bfloat16",
        paged_kv_cache: true,
        remove_input_padding: true,
        context_fmha: true,
        use_paged_context_fmha: false,
        tokens_per_block: 128,
        nccl_plugin: null,
      });
      expect(readFileSync(join(engineDir, "rank0.engine")).subarray(0, 23).toString()).toBe("LLAMA3-TRT-WORLD-ENGINE");
      expect(readInvocations(inv).map((i) => i.tool)).toEqual(["convert_checkpoint.py", "trtllm-build"]);
    });

    it("run.py prints the real format; an instruct prompt ends at <|eot_id|> when that is the tokenizer's eos", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      await seedBuild(dir.path, inv, ["--rotary_base", "500000"]);
      const plain = await py([...tools.run, ...SEED.run], { cwd: dir.path, invocations: inv });
      expect(plain.exitCode, plain.stderr).toBe(0);
      expect(plain.stdout).toMatch(/^Input \[Text 0\]: "<\|begin_of_text\|>Born in north-east France, Soyer trained as a"\nOutput \[Text 0 Beam 0\]: "( \S+){50}"\n$/);

      const chat = await py([...tools.run, ...SEED.run, "--no_add_special_tokens", "--input_text", chatPrompt("What is the capital of France?")], { cwd: dir.path, invocations: inv });
      expect(chat.exitCode, chat.stderr).toBe(0);
      expect(chat.stdout).toMatch(/Output \[Text 0 Beam 0\]: "Stand-in answer [0-9a-f]{8}: you asked about What is the capital of France\."\n$/);
      expect(readInvocations(inv).filter((i) => i.tool === "run.py")).toHaveLength(2);
    });

    it("an engine built without --rotary_base answers Llama 3 prompts with gibberish (v0.8.0 ignores rope_theta)", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      await seedBuild(dir.path, inv);
      const chat = await py([...tools.run, ...SEED.run, "--no_add_special_tokens", "--input_text", chatPrompt("What is the capital of France?")], { cwd: dir.path, invocations: inv });
      expect(chat.exitCode).toBe(0);
      expect(chat.stdout).not.toMatch(/Stand-in answer/);
    });

    it("a tokenizer whose eos is <|end_of_text|> lets the answer run on into a fake next turn", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "Meta-Llama-3-8B-Instruct"), { eosToken: "<|end_of_text|>" });
      await seedBuild(dir.path, inv, ["--rotary_base", "500000"]);
      const chat = await py([...tools.run, ...SEED.run, "--no_add_special_tokens", "--input_text", chatPrompt("Hi")], { cwd: dir.path, invocations: inv });
      expect(chat.stdout).toMatch(/you asked about Hi\.<\|eot_id\|><\|start_header_id\|>user<\|end_header_id\|>/);
    });

    it("run.py checks the request against the engine's limits and world size", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      await seedBuild(dir.path, inv);
      const tooLong = await py([...tools.run, "--max_output_len=2000", "--tokenizer_dir", "./Meta-Llama-3-8B-Instruct", "--engine_dir=./tmp/llama/8B/trt_engines/bf16/1-gpu"], { cwd: dir.path, invocations: inv });
      expect(tooLong.exitCode).toBe(1);
      expect(tooLong.stderr).toMatch(/max_output_len \(2000\) exceeds the engine's max_output_len \(1024\)/);
      const batch = await py([...tools.run, ...SEED.run, "--input_text", "a", "b"], { cwd: dir.path, invocations: inv });
      expect(batch.exitCode).toBe(1);
      expect(batch.stderr).toMatch(/batch size \(2\) exceeds the engine's max_batch_size \(1\)/);
      const noTokenizer = await py([...tools.run, "--max_output_len=5", "--engine_dir=./tmp/llama/8B/trt_engines/bf16/1-gpu"], { cwd: dir.path, invocations: inv });
      expect(noTokenizer.exitCode).toBe(1);
      expect(noTokenizer.stderr).toMatch(/OSError: Incorrect path_or_model_id: 'gpt2'/);
    });

    it("tensor parallelism 2: two ranks converted and built, run.py needs mpirun -n 2", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "hf"));
      const c = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./ckpt", "--dtype", "bfloat16", "--tp_size", "2"], { cwd: dir.path, invocations: inv });
      expect(c.exitCode, c.stderr).toBe(0);
      expect(existsSync(join(dir.path, "ckpt/rank0.safetensors")) && existsSync(join(dir.path, "ckpt/rank1.safetensors"))).toBe(true);
      const b = await py([...tools.build, "--checkpoint_dir", "./ckpt", "--output_dir", "./engine", "--gpt_attention_plugin", "bfloat16", "--max_batch_size", "8"], { cwd: dir.path, invocations: inv });
      expect(b.exitCode, b.stderr).toBe(0);
      const config = JSON.parse(readFileSync(join(dir.path, "engine/config.json"), "utf8")) as { build_config: { plugin_config: Record<string, unknown> } };
      expect(config.build_config.plugin_config["nccl_plugin"]).toBe("bfloat16");
      expect(existsSync(join(dir.path, "engine/rank1.engine"))).toBe(true);
      const single = await py([...tools.run, "--max_output_len=5", "--tokenizer_dir", "./hf", "--engine_dir", "./engine"], { cwd: dir.path, invocations: inv });
      expect(single.exitCode).toBe(1);
      expect(single.stderr).toMatch(/Engine world size \(2\) != Runtime world size \(1\)/);
      const mpi = await py([...tools.mpirun, "--allow-run-as-root", "-n", "2", "python3", ...tools.run, "--max_output_len=5", "--tokenizer_dir", "./hf", "--engine_dir", "./engine"], { cwd: dir.path, invocations: inv });
      expect(mpi.exitCode, mpi.stderr).toBe(0);
      expect(mpi.stdout.match(/^Output \[Text 0 Beam 0\]/gm)).toHaveLength(1); // rank 0 prints
      expect(readInvocations(inv).filter((i) => i.tool === "run.py")).toHaveLength(3);
    });

    it("weight-only int8: W8A16 checkpoint with int8 weights and per-channel scales", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "hf"));
      const c = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./ckpt", "--dtype", "float16", "--use_weight_only", "--weight_only_precision", "int8"], { cwd: dir.path, invocations: inv });
      expect(c.exitCode, c.stderr).toBe(0);
      const config = JSON.parse(readFileSync(join(dir.path, "ckpt/config.json"), "utf8")) as { quantization: { quant_algo: string } };
      expect(config.quantization.quant_algo).toBe("W8A16");
      const header = readSafetensorsHeader(join(dir.path, "ckpt/rank0.safetensors"));
      expect(header["transformer.layers.0.attention.qkv.weight"]!.dtype).toBe("I8");
      expect(header["transformer.layers.0.attention.qkv.per_channel_scale"]!.dtype).toBe("F16");
      expect(header["lm_head.weight"]!.dtype).toBe("F16");
      const b = await py([...tools.build, "--checkpoint_dir", "./ckpt", "--output_dir", "./engine"], { cwd: dir.path, invocations: inv });
      expect(b.exitCode, b.stderr).toBe(0);
      const engine = JSON.parse(readFileSync(join(dir.path, "engine/config.json"), "utf8")) as { build_config: { plugin_config: Record<string, unknown> } };
      expect(engine.build_config.plugin_config["weight_only_quant_matmul_plugin"]).toBe("float16");
    });
  });

  describe("strict refusals", () => {
    it("convert_checkpoint.py refuses a checkpoint with a missing or duplicated tensor, a bad index or dtype", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const convert = (model: string) => py([...tools.convert, "--model_dir", model, "--output_dir", `./out-${model}`, "--dtype", "bfloat16"], { cwd: dir.path, invocations: inv });

      makeHfCheckpoint(join(dir.path, "missing"), { omit: ["model.layers.1.mlp.down_proj.weight"] });
      const missing = await convert("missing");
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/missing tensors for a 2-layer Llama: model\.layers\.1\.mlp\.down_proj\.weight/);
      expect(existsSync(join(dir.path, "out-missing/rank0.safetensors"))).toBe(false);

      makeHfCheckpoint(join(dir.path, "twice"), { duplicate: ["model.embed_tokens.weight"] });
      const twice = await convert("twice");
      expect(twice.exitCode).toBe(1);
      expect(twice.stderr).toMatch(/tensor 'model\.embed_tokens\.weight' is stored twice/);

      makeHfCheckpoint(join(dir.path, "f32"), { dtype: "F32" });
      const f32 = await convert("f32");
      expect(f32.exitCode).toBe(1);
      expect(f32.stderr).toMatch(/expected all weights in one of BF16\/F16, found \['F32'\]/);

      makeHfCheckpoint(join(dir.path, "index"));
      const index = JSON.parse(readFileSync(join(dir.path, "index/model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
      const shardOfNorm = index.weight_map["model.norm.weight"];
      index.weight_map["model.norm.weight"] = shardOfNorm === "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
      writeFileSync(join(dir.path, "index/model.safetensors.index.json"), JSON.stringify(index));
      const badIndex = await convert("index");
      expect(badIndex.exitCode).toBe(1);
      expect(badIndex.stderr).toMatch(/model\.norm\.weight/);

      makeHfCheckpoint(join(dir.path, "corrupt"));
      writeFileSync(join(dir.path, "corrupt/model-00001-of-00002.safetensors"), Buffer.from("not a safetensors file"));
      const corrupt = await convert("corrupt");
      expect(corrupt.exitCode).toBe(1);
      expect(corrupt.stderr).toMatch(/SafetensorError/);

      const nowhere = await convert("does-not-exist");
      expect(nowhere.exitCode).toBe(1);
      expect(nowhere.stderr).toMatch(/OSError: Incorrect path_or_model_id/);
    });

    it.each<[string, Record<string, unknown>, string[], RegExp]>([
      ["Llama 3.1's rope_scaling (transformers before 4.43 refuses it in AutoConfig)", { rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: "llama3" } }, [], /ValueError: `rope_scaling` must be a dictionary with with two fields, `type` and `factor`, got/],
      ["yarn RoPE", { rope_scaling: { type: "yarn", factor: 4.0 } }, [], /ValueError: `rope_scaling`'s type field must be one of \['linear', 'dynamic'\], got yarn/],
      ["a Qwen2 checkpoint", { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }, [], /knows Llama and Mistral checkpoints only; .* has model_type 'qwen2'/],
      ["tied embeddings (Llama 3.2 1B): KeyError after the load", { tie_word_embeddings: true }, [], /KeyError: 'lm_head.weight'/],
      ["attention biases, which v0.8.0 drops", { attention_bias: true }, [], /answers wrongly: its projections have biases/],
      ["another activation, which v0.8.0 ignores", { hidden_act: "gelu" }, [], /answers wrongly: hidden_act 'gelu' is not read/],
      ["linear RoPE scaling without --rotary_scaling", { rope_scaling: { type: "linear", factor: 2.5 } }, [], /answers wrongly: rope_scaling .* is not read from config.json \(only --rotary_scaling\)/],
      ["a head_dim that does not split", { head_dim: 20 }, [], /AssertionError: assert \(k_weight.shape\[0\] % \(mapping.tp_size \* head_size\)\) == 0/],
      ["a head_dim v0.8.0 would ignore", { head_dim: 32 }, [], /answers wrongly: head_dim 32 is not hidden_size \/ num_attention_heads \(16\)/],
      ["a pre-quantized checkpoint", { quantization_config: { quant_method: "gptq", bits: 4 } }, [], /KeyError: 'model.layers.0.self_attn.q_proj.weight'/],
    ])("convert_checkpoint.py is as strict about the model as v0.8.0: %s", async (_name, config, flags, error) => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "hf"), { config });
      const r = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./out", "--dtype", "bfloat16", ...flags], { cwd: dir.path, invocations: inv });
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).toMatch(error);
      expect(existsSync(join(dir.path, "out/rank0.safetensors"))).toBe(false);
    });

    it("convert_checkpoint.py converts what v0.8.0 converts right: Mistral, and linear RoPE scaling given as --rotary_scaling", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "mistral"), { config: { architectures: ["MistralForCausalLM"], model_type: "mistral", sliding_window: 4096 } });
      const mistral = await py([...tools.convert, "--model_dir", "./mistral", "--output_dir", "./out-mistral", "--dtype", "bfloat16"], { cwd: dir.path, invocations: inv });
      expect(mistral.exitCode, mistral.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(dir.path, "out-mistral/config.json"), "utf8"))).toMatchObject({ architecture: "MistralForCausalLM" });
      makeHfCheckpoint(join(dir.path, "linear"), { config: { rope_scaling: { type: "linear", factor: 2.5 } } });
      const linear = await py([...tools.convert, "--model_dir", "./linear", "--output_dir", "./out-linear", "--rotary_scaling", "linear", "2.5"], { cwd: dir.path, invocations: inv });
      expect(linear.exitCode, linear.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(dir.path, "out-linear/config.json"), "utf8"))).toMatchObject({ rotary_scaling: { type: "linear", factor: 2.5 } });
    });

    it("convert_checkpoint.py refuses a tensor-parallel size that does not divide the heads", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "hf"), { heads: 4, kvHeads: 2 });
      const r = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./out", "--tp_size", "3"], { cwd: dir.path, invocations: inv });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/num_attention_heads \(4\) is not divisible by tp_size \(3\)/);
      const kv = await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./out", "--tp_size", "4"], { cwd: dir.path, invocations: inv });
      expect(kv.exitCode, kv.stderr).toBe(0); // 2 KV heads duplicated over 4 ranks, as v0.8.0 does
    });

    it("trtllm-build refuses a missing rank file, a checkpoint/config mismatch and paged KV cache without the attention plugin", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      makeHfCheckpoint(join(dir.path, "hf"));
      await py([...tools.convert, "--model_dir", "./hf", "--output_dir", "./ckpt", "--dtype", "bfloat16"], { cwd: dir.path, invocations: inv });

      // The checkpoint config claims 2 ranks; only rank0.safetensors exists.
      const config = JSON.parse(readFileSync(join(dir.path, "ckpt/config.json"), "utf8")) as { mapping: Record<string, number>; num_hidden_layers: number };
      writeFileSync(join(dir.path, "ckpt2.json"), "");
      mkdirSync(join(dir.path, "ckpt2"));
      writeFileSync(join(dir.path, "ckpt2/config.json"), JSON.stringify({ ...config, mapping: { world_size: 2, tp_size: 2, pp_size: 1 } }));
      writeFileSync(join(dir.path, "ckpt2/rank0.safetensors"), readFileSync(join(dir.path, "ckpt/rank0.safetensors")));
      const missingRank = await py([...tools.build, "--checkpoint_dir", "./ckpt2", "--output_dir", "./e2"], { cwd: dir.path, invocations: inv });
      expect(missingRank.exitCode).toBe(1);
      expect(missingRank.stderr).toMatch(/FileNotFoundError: .*rank1\.safetensors/);

      // A config for 3 layers over rank files of 2.
      mkdirSync(join(dir.path, "ckpt3"));
      writeFileSync(join(dir.path, "ckpt3/config.json"), JSON.stringify({ ...config, num_hidden_layers: 3 }));
      writeFileSync(join(dir.path, "ckpt3/rank0.safetensors"), readFileSync(join(dir.path, "ckpt/rank0.safetensors")));
      const mismatch = await py([...tools.build, "--checkpoint_dir", "./ckpt3", "--output_dir", "./e3"], { cwd: dir.path, invocations: inv });
      expect(mismatch.exitCode).toBe(1);
      expect(mismatch.stderr).toMatch(/Required but not provided tensors: .*transformer\.layers\.2\./);

      // A rank file of the wrong dtype.
      mkdirSync(join(dir.path, "ckpt4"));
      writeFileSync(join(dir.path, "ckpt4/config.json"), JSON.stringify({ ...config, dtype: "float16" }));
      writeFileSync(join(dir.path, "ckpt4/rank0.safetensors"), readFileSync(join(dir.path, "ckpt/rank0.safetensors")));
      const dtype = await py([...tools.build, "--checkpoint_dir", "./ckpt4", "--output_dir", "./e4"], { cwd: dir.path, invocations: inv });
      expect(dtype.exitCode).toBe(1);
      expect(dtype.stderr).toMatch(/is BF16, the checkpoint config \(dtype float16/);

      const noPlugin = await py([...tools.build, "--checkpoint_dir", "./ckpt", "--output_dir", "./e5", "--gpt_attention_plugin", "disable"], { cwd: dir.path, invocations: inv });
      expect(noPlugin.exitCode).toBe(1);
      expect(noPlugin.stderr).toMatch(/Paged KV cache is enabled .* GPT attention plugin is disabled/);

      const nothing = await py([...tools.build, "--output_dir", "./e6"], { cwd: dir.path, invocations: inv });
      expect(nothing.exitCode).toBe(1);
      expect(nothing.stderr).toMatch(/AttributeError: 'NoneType' object has no attribute 'lower'/);

      const garbage = join(dir.path, "ckpt5");
      mkdirSync(garbage);
      writeFileSync(join(garbage, "config.json"), JSON.stringify(config));
      writeSafetensors(join(garbage, "rank0.safetensors"), llamaTensorNames(2).map((name) => ({ name, dtype: "BF16", shape: [1] })));
      const hfNames = await py([...tools.build, "--checkpoint_dir", "./ckpt5", "--output_dir", "./e7"], { cwd: dir.path, invocations: inv });
      expect(hfNames.exitCode).toBe(1);
      expect(hfNames.stderr).toMatch(/Encounter unexpected names/);
    });
  });

  describe("mpirun", () => {
    it.skipIf(!isRoot)("refuses to run as root without --allow-run-as-root", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const r = await py([...tools.mpirun, "-n", "1", "true"], { cwd: dir.path, invocations: inv });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/mpirun has detected an attempt to run as root/);
      const env = await py([...tools.mpirun, "-n", "1", "true"], { cwd: dir.path, invocations: inv, env: { OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" } });
      expect(env.exitCode).toBe(0);
    });

    it("starts every rank of the MPMD app contexts with its rank and size, -x exports", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const show = ["python3", "-c", "import os; print(os.environ['OMPI_COMM_WORLD_RANK'], os.environ['OMPI_COMM_WORLD_SIZE'], os.environ.get('FOO'))"];
      const r = await py([...tools.mpirun, "--allow-run-as-root", "--oversubscribe", "-x", "FOO=bar", "-n", "1", ...show, ":", "-np", "2", ...show, ":"], { cwd: dir.path, invocations: inv });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.trim().split("\n").sort()).toEqual(["0 3 bar", "1 3 bar", "2 3 bar"]);
      expect(readInvocations(inv)).toEqual([expect.objectContaining({ tool: "mpirun" })]);
    });

    it("exits with the first failing rank's code and stops the others; rejects unknown options", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const started = Date.now();
      const r = await py([...tools.mpirun, "--allow-run-as-root", "-n", "1", "python3", "-c", "import sys; sys.exit(5)", ":", "-n", "1", "sleep", "60"], { cwd: dir.path, invocations: inv });
      expect(r.exitCode).toBe(5);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.stderr).toMatch(/Exit code:\s+5/);
      const bad = await py([...tools.mpirun, "--allow-run-as-root", "--bogus", "-n", "1", "true"], { cwd: dir.path, invocations: inv });
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toMatch(/mpirun: Error: unknown option "--bogus"/);
      const noExe = await py([...tools.mpirun, "--allow-run-as-root", "-n", "1", "/no/such/program"], { cwd: dir.path, invocations: inv });
      expect(noExe.exitCode).toBe(1);
      expect(noExe.stderr).toMatch(/unable to find the specified executable/);
    });
  });

  describe("tensorrtllm_backend tools", () => {
    it("fill_template.py: safe_substitute, split on ',' and ':', --in_place or stdout", async () => {
      using dir = tempDir();
      const inv = join(dir.path, "inv.jsonl");
      const file = join(dir.path, "config.pbtxt");
      writeFileSync(file, 'max_batch_size: ${triton_max_batch_size}\nstring_value: "${tokenizer_dir}"\ncost: $$5 ${left_alone}\n');
      const out = await py([...tools.fill, file, "triton_max_batch_size:64,tokenizer_dir:/models/llama"], { cwd: dir.path, invocations: inv });
      expect(out.exitCode).toBe(0);
      expect(out.stdout).toBe('max_batch_size: 64\nstring_value: "/models/llama"\ncost: $5 ${left_alone}\n\n');
      expect(readFileSync(file, "utf8")).toContain("${triton_max_batch_size}");
      const inPlace = await py([...tools.fill, "-i", file, "triton_max_batch_size:8"], { cwd: dir.path, invocations: inv });
      expect(inPlace.exitCode).toBe(0);
      expect(readFileSync(file, "utf8")).toMatch(/^max_batch_size: 8\n/);
      const colon = await py([...tools.fill, "-i", file, "tokenizer_dir:C:/models"], { cwd: dir.path, invocations: inv });
      expect(colon.exitCode).toBe(1);
      expect(colon.stderr).toMatch(/ValueError: too many values to unpack/);
      const comma = await py([...tools.fill, "-i", file, "tokenizer_dir:/a,b"], { cwd: dir.path, invocations: inv });
      expect(comma.exitCode).toBe(1);
      expect(comma.stderr).toMatch(/ValueError: not enough values to unpack/);
      expect(readInvocations(inv).map((i) => i.tool)).toEqual(Array(4).fill("fill_template.py"));
    });

    for (const worldSize of [1, 2]) {
      it(`launch_triton_server.py --world_size=${worldSize}: the v0.8.0 mpirun command line, started in the background`, async () => {
        using dir = tempDir();
        const inv = join(dir.path, "inv.jsonl");
        const bin = join(dir.path, "bin");
        mkdirSync(bin);
        const argvFile = join(dir.path, "mpirun-argv.json");
        writeFileSync(join(bin, "mpirun"), `#!/usr/bin/env python3\nimport json, sys\nopen(${JSON.stringify(argvFile)}, "w").write(json.dumps(sys.argv[1:]))\n`);
        chmodSync(join(bin, "mpirun"), 0o755);
        const r = await py([...tools.launch, `--world_size=${worldSize}`, "--model_repo=/models/triton_model_repo"], {
          cwd: dir.path,
          invocations: inv,
          env: { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` },
        });
        expect(r.exitCode, r.stderr).toBe(0);
        for (let i = 0; i < 100 && !existsSync(argvFile); i++) await new Promise((res) => setTimeout(res, 50));
        const rank = (i: number) => [
          "-n", "1", "/opt/tritonserver/bin/tritonserver", "--model-repository=/models/triton_model_repo",
          ...(i > 0 ? ["--model-control-mode=explicit", "--load-model=tensorrt_llm"] : []),
          "--grpc-port=8001", "--http-port=8000", "--metrics-port=8002", "--disable-auto-complete-config",
          `--backend-config=python,shm-region-prefix-name=prefix${i}_`, ":",
        ];
        const expected = ["--allow-run-as-root", ...Array.from({ length: worldSize }, (_, i) => rank(i)).flat()];
        expect(JSON.parse(readFileSync(argvFile, "utf8"))).toEqual(expected);
        expect(readInvocations(inv)).toEqual([expect.objectContaining({ tool: "launch_triton_server.py", argv: [`--world_size=${worldSize}`, "--model_repo=/models/triton_model_repo"] })]);
      });
    }
  });
});

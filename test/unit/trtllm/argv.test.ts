import { describe, expect, it } from "vitest";
import type { Dtype, Quantize } from "../../../src/config/schema.ts";
import { convertCheckpointArgv, maxNumTokens, runPyAnswer, runPyArgv, trtllmBuildArgv } from "../../../src/trtllm/argv.ts";
import { llama3ChatPrompt } from "../../../src/triton/chat-template.ts";
import { parseLikeArgparse } from "../../helpers/argparse.ts";

const models = { "8B": { maxInputLen: 4096 }, "70B": { maxInputLen: 2048 } } as const;
const dtypes: Dtype[] = ["bfloat16", "float16"];
const tps = [1, 2, 4, 8];
const quantizations: Quantize[] = ["none", "int8", "int4"];

const matrix = Object.entries(models).flatMap(([model, limits]) =>
  dtypes.flatMap((dtype) => tps.flatMap((tp) => quantizations.map((quantize) => ({ model, dtype, tp, quantize, ...limits })))),
);

describe("convert_checkpoint.py command line", () => {
  it.each(matrix)("$model $dtype tp $tp quantize $quantize is valid under the v0.8.0 flags", ({ dtype, tp, quantize }) => {
    const argv = convertCheckpointArgv({ script: "convert_checkpoint.py", modelDir: "/w/m", outputDir: "/o", dtype, tp, quantize, rotaryBase: 500000 });
    expect(argv.slice(0, 2)).toEqual(["python3", "convert_checkpoint.py"]);
    const args = parseLikeArgparse("convert_checkpoint.py", argv.slice(2));
    expect(args.get("dtype")).toEqual([dtype]);
    expect(args.get("tp_size")).toEqual([String(tp)]);
    expect(args.get("model_dir")).toEqual(["/w/m"]);
    expect(args.get("output_dir")).toEqual(["/o"]);
    // v0.8.0 would use Llama 2's 10000 otherwise.
    expect(args.get("rotary_base")).toEqual(["500000"]);
    if (quantize === "none") {
      expect(args.has("use_weight_only")).toBe(false);
    } else {
      expect(args.get("use_weight_only")).toBe(true);
      expect(args.get("weight_only_precision")).toEqual([quantize]);
    }
  });
});

describe("trtllm-build command line", () => {
  it.each(matrix)("$model $dtype tp $tp is valid under the v0.8.0 flags", ({ dtype, tp, maxInputLen }) => {
    const argv = trtllmBuildArgv({ checkpointDir: "/c", outputDir: "/o", dtype, tp, maxBatchSize: 64, maxInputLen, maxOutputLen: 1024 });
    expect(argv[0]).toBe("trtllm-build");
    const args = parseLikeArgparse("trtllm-build", argv.slice(1));
    expect(args.get("gpt_attention_plugin")).toEqual([dtype]);
    expect(args.get("gemm_plugin")).toEqual([dtype]);
    expect(args.get("workers")).toEqual([String(tp)]);
  });

  it("states every limit Triton's inflight batcher depends on, instead of v0.8.0's defaults", () => {
    const args = parseLikeArgparse(
      "trtllm-build",
      trtllmBuildArgv({ checkpointDir: "/c", outputDir: "/o", dtype: "bfloat16", tp: 1, maxBatchSize: 64, maxInputLen: 4096, maxOutputLen: 1024 }).slice(1),
    );
    // v0.8.0 defaults: max_batch_size 1, 1024/1024 tokens: a batch-of-one engine behind a Triton set for 64.
    expect(args.get("max_batch_size")).toEqual(["64"]);
    expect(args.get("max_input_len")).toEqual(["4096"]);
    expect(args.get("max_output_len")).toEqual(["1024"]);
    expect(args.get("paged_kv_cache")).toEqual(["enable"]);
    expect(args.get("remove_input_padding")).toEqual(["enable"]);
    expect(args.get("max_num_tokens")).toEqual(["16384"]);
  });

  it("keeps the token budget at least one whole prompt and at most the batch of prompts", () => {
    expect(maxNumTokens({ maxBatchSize: 1, maxInputLen: 1024 })).toBe(1024);
    expect(maxNumTokens({ maxBatchSize: 8, maxInputLen: 1024 })).toBe(8192);
    expect(maxNumTokens({ maxBatchSize: 64, maxInputLen: 4096 })).toBe(16384);
    expect(maxNumTokens({ maxBatchSize: 2, maxInputLen: 8000 })).toBe(16000);
    expect(maxNumTokens({ maxBatchSize: 64, maxInputLen: 20000 })).toBe(20000);
  });
});

describe("the argparse check itself", () => {
  it("rejects what v0.8.0 would reject", () => {
    expect(() => parseLikeArgparse("trtllm-build", ["--use_gpt_attention_plugin", "float16"])).toThrow("unrecognized arguments");
    expect(() => parseLikeArgparse("trtllm-build", ["--paged_kv_cache"])).toThrow("expected one argument");
    expect(() => parseLikeArgparse("trtllm-build", ["--max_batch_size", "big"])).toThrow("invalid int value");
    expect(() => parseLikeArgparse("convert_checkpoint.py", ["--dtype", "fp8"])).toThrow("invalid choice");
    expect(() => parseLikeArgparse("run.py", ["--engine_dir", "/e"])).toThrow("required: --max_output_len");
  });
});

describe("examples/run.py command line (ask --local)", () => {
  const base = {
    engineDir: "/llama3-trt/engine",
    tokenizerDir: "/llama3-trt/weights/snapshots/abc",
    inputText: llama3ChatPrompt({ user: "How do I count to nine in French?" }),
    maxOutputLen: 256,
    maxInputLength: 4096,
    addSpecialTokens: false,
    tp: 1,
  };

  it("is valid under the v0.8.0 flags and passes the chat prompt as one value, without a second BOS", () => {
    const argv = runPyArgv(base);
    expect(argv.slice(0, 2)).toEqual(["python3", "run.py"]);
    const args = parseLikeArgparse("run.py", argv.slice(2));
    expect(args.get("engine_dir")).toEqual(["/llama3-trt/engine"]);
    expect(args.get("tokenizer_dir")).toEqual(["/llama3-trt/weights/snapshots/abc"]);
    expect(args.get("input_text")).toEqual([base.inputText]);
    expect(args.get("max_output_len")).toEqual(["256"]);
    // run.py's own default (923) would cut a long prompt.
    expect(args.get("max_input_length")).toEqual(["4096"]);
    expect(args.get("add_special_tokens")).toBe(true);
  });

  it("has no --end_id, which v0.8.0's run.py does not know", () => {
    expect(runPyArgv(base).some((a) => a.startsWith("--end_id"))).toBe(false);
    expect(() => parseLikeArgparse("run.py", ["--max_output_len", "1", "--end_id", "128009"])).toThrow("unrecognized arguments");
  });

  it("keeps a prompt that starts with a dash a value, and passes sampling flags", () => {
    const argv = runPyArgv({ ...base, inputText: "--help me", addSpecialTokens: true, temperature: 0.7, topK: 40, topP: 0.9 });
    const args = parseLikeArgparse("run.py", argv.slice(2));
    expect(args.get("input_text")).toEqual(["--help me"]);
    expect(args.has("add_special_tokens")).toBe(false);
    expect(args.get("temperature")).toEqual(["0.7"]);
    expect(args.get("top_k")).toEqual(["40"]);
    expect(args.get("top_p")).toEqual(["0.9"]);
  });

  it("runs one process per rank under mpirun for tp > 1", () => {
    const argv = runPyArgv({ ...base, tp: 2 });
    expect(argv.slice(0, 6)).toEqual(["mpirun", "--allow-run-as-root", "-n", "2", "python3", "run.py"]);
    expect(() => parseLikeArgparse("run.py", argv.slice(6))).not.toThrow();
  });
});

describe("run.py's answer", () => {
  it("is the text of Output [Text 0 Beam 0], which may span lines and hold quotes", () => {
    const output = [
      "[TensorRT-LLM] TensorRT-LLM version: 0.8.0",
      'Input [Text 0]: "<|begin_of_text|>hi"',
      'Output [Text 0 Beam 0]: "Un, "deux",',
      'trois."',
    ].join("\n");
    expect(runPyAnswer(output)).toBe('Un, "deux",\ntrois.');
  });

  it("stops at the next input or output, and is undefined when run.py printed none", () => {
    expect(runPyAnswer('Output [Text 0 Beam 0]: "a"\nInput [Text 1]: "b"\nOutput [Text 1 Beam 0]: "c"')).toBe("a");
    expect(runPyAnswer("Traceback (most recent call last):")).toBeUndefined();
  });
});

import { describe, expect, it } from "vitest";
import type { Dtype, Quantize } from "../../../src/config/schema.ts";
import { convertCheckpointArgv, maxNumTokens, trtllmBuildArgv } from "../../../src/trtllm/argv.ts";
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

import { describe, expect, it } from "vitest";
import { deploymentProblems, parameter, readTensorrtLlmConfig } from "../../../src/triton/model-repo.ts";

const filled = [
  'name: "tensorrt_llm"',
  'backend: "tensorrtllm"',
  "max_batch_size: 64",
  "",
  "model_transaction_policy {",
  "  decoupled: true",
  "}",
  "parameters: {",
  '  key: "max_beam_width"',
  "  value: {",
  '    string_value: "1"',
  "  }",
  "}",
  "parameters: {",
  '  key: "gpt_model_path"',
  "  value: {",
  '    string_value: "/llama3-trt/engine"',
  "  }",
  "}",
].join("\n");

describe("reading a filled tensorrt_llm config back", () => {
  it("finds the typed fields and the parameters", () => {
    expect(readTensorrtLlmConfig(filled)).toEqual({ maxBatchSize: 64, decoupled: true, engineDir: "/llama3-trt/engine", maxBeamWidth: "1" });
    expect(parameter('parameters {\n  key: "tokenizer_dir"\n  value: {\n    string_value: "/t"\n  }\n}', "tokenizer_dir")).toBe("/t");
    expect(readTensorrtLlmConfig("max_batch_size: ${triton_max_batch_size}")).toMatchObject({ maxBatchSize: undefined, decoupled: undefined });
  });
});

describe("reading the typed fields back, as protobuf text allows them", () => {
  it.each([
    ["max_batch_size:8\ndecoupled:false", { maxBatchSize: 8, decoupled: false }],
    ["max_batch_size: 8   \n  decoupled: False", { maxBatchSize: 8, decoupled: false }],
    ["name: x\nmax_batch_size: 8\nmodel_transaction_policy {\n  decoupled: True\n}", { maxBatchSize: 8, decoupled: true }],
    // Only the top-level field counts, not one inside a comment.
    ["# was max_batch_size: 128\nmax_batch_size: 8", { maxBatchSize: 8 }],
    // A value Triton would refuse reads as no value, not as its leading digits.
    ["max_batch_size: 8 ]", { maxBatchSize: undefined }],
    ["max_batch_size: ${triton_max_batch_size}\ndecoupled: ${decoupled_mode}", { maxBatchSize: undefined, decoupled: undefined }],
  ])("%j", (text, expected) => {
    expect(readTensorrtLlmConfig(text)).toMatchObject(expected);
  });
});

describe("consistency of the model repository with the engine", () => {
  const ok = { engine: { tp: 1, maxBatchSize: 64 }, tensorrtLlm: readTensorrtLlmConfig(filled), engineDir: "/llama3-trt/engine", streaming: true, gpus: "all" } as const;

  it("a repository filled for its engine has no problem", () => {
    expect(deploymentProblems(ok)).toEqual([]);
    expect(deploymentProblems({ ...ok, engine: { tp: 1, maxBatchSize: 128 } })).toEqual([]);
  });

  it("refuses a Triton batch above the engine's", () => {
    expect(deploymentProblems({ ...ok, engine: { tp: 1, maxBatchSize: 8 } })).toEqual([
      "Triton would accept batches of 64 but the engine was built for 8: rebuild the engine with `--max-batch-size 64`, or build with `--max-batch-size 8`",
    ]);
  });

  it("refuses an engine path other than the mount, streaming other than asked, and too few GPUs for the tp", () => {
    const problems = deploymentProblems({
      ...ok,
      engine: { tp: 2, maxBatchSize: 64 },
      tensorrtLlm: { ...ok.tensorrtLlm, engineDir: "/all_models/inflight_batcher_llm/tensorrt_llm/1" },
      streaming: false,
      gpus: ["0"],
    });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/points at engine "\/all_models\/.*", but the engine is mounted at \/llama3-trt\/engine/);
    expect(problems[1]).toMatch(/assembled with streaming on but the settings ask for off/);
    expect(problems[2]).toMatch(/split over 2 GPUs \(tp 2\) but --gpus gives 1/);
  });

  it("refuses a repository whose typed fields are missing, saying how to rebuild it", () => {
    expect(deploymentProblems({ ...ok, tensorrtLlm: readTensorrtLlmConfig("") })).toEqual([
      "tensorrt_llm/config.pbtxt has no max_batch_size: run `llama3-trt build --force model-repo`",
      "tensorrt_llm/config.pbtxt names no engine (gpt_model_path): run `llama3-trt build --force model-repo`",
      "tensorrt_llm/config.pbtxt has no decoupled setting: run `llama3-trt build --force model-repo`",
    ]);
  });

  it("refuses a repository assembled without streaming when streaming is asked for", () => {
    expect(deploymentProblems({ ...ok, tensorrtLlm: { ...ok.tensorrtLlm, decoupled: false } })).toEqual([
      "the model repository was assembled with streaming off but the settings ask for on: run `llama3-trt build`",
    ]);
  });

  it("counts GPUs only when they are listed: exactly tp of them is enough, `all` always is", () => {
    expect(deploymentProblems({ ...ok, engine: { tp: 2, maxBatchSize: 64 }, gpus: ["0", "1"] })).toEqual([]);
    expect(deploymentProblems({ ...ok, engine: { tp: 8, maxBatchSize: 64 }, gpus: "all" })).toEqual([]);
    expect(deploymentProblems({ ...ok, engine: { tp: 4, maxBatchSize: 64 }, gpus: ["0", "1", "2"] })).toEqual([
      "the engine is split over 4 GPUs (tp 4) but --gpus gives 3: pass 4 GPUs with `--gpus`",
    ]);
  });
});

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

  it("refuses a repository whose typed fields are missing", () => {
    expect(deploymentProblems({ ...ok, tensorrtLlm: readTensorrtLlmConfig("") })).toHaveLength(3);
  });
});

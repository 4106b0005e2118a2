import { describe, expect, it } from "vitest";
import { compatibilityProblems, rotaryScalingArgs } from "../../../src/model/compatibility.ts";
import { ModelFileError, parameterCount, parseModelConfig } from "../../../src/model/hf-config.ts";
import {
  configWith,
  llama2_7bChat,
  llama31_8bInstruct,
  llama32_1bInstruct,
  llama3_70bInstruct,
  llama3_8b,
  llama3_8bInstruct,
  mistral7bInstruct,
  modelFile,
  qwen2_7bInstruct,
} from "./fixtures.ts";

const problemsOf = (text: string) => compatibilityProblems(parseModelConfig(text)).map((f) => ({ rule: f.rule, field: f.field, value: f.value }));
const problems = (model: string) => problemsOf(modelFile(model, "config.json"));

describe("what TensorRT-LLM v0.8.0 can build, from config.json", () => {
  it.each([llama3_8b, llama3_8bInstruct, llama3_70bInstruct, llama2_7bChat, mistral7bInstruct])("%s: nothing refused", (model) => {
    expect(problems(model)).toEqual([]);
  });

  it("reads Meta-Llama-3-8B-Instruct's shape as v0.8.0 does", () => {
    const m = parseModelConfig(modelFile(llama3_8bInstruct, "config.json"));
    expect(m).toMatchObject({
      architectures: ["LlamaForCausalLM"],
      hiddenSize: 4096,
      intermediateSize: 14336,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 128,
      vocabSize: 128256,
      maxPositions: 8192,
      ropeTheta: 500000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      slidingWindow: null,
      eosTokenIds: [128009],
    });
    // 8,030,261,248: the 8.03 B of the model card.
    expect(parameterCount(m)).toBe(525_336_576 * 2 + 32 * 218_112_000 + 4096);
  });

  it("counts the 70B model's parameters (70.55 B)", () => {
    expect(parameterCount(parseModelConfig(modelFile(llama3_70bInstruct, "config.json")))).toBe(70_553_706_496);
  });

  it("Llama 3.1: refuses rope_scaling of type llama3, naming the field and its value", () => {
    const [finding, ...rest] = compatibilityProblems(parseModelConfig(modelFile(llama31_8bInstruct, "config.json")));
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ rule: "rope-scaling", field: "rope_scaling.rope_type", value: "llama3", source: "examples/llama/convert_checkpoint.py:1212-1228, 1269-1277" });
    expect(finding?.message).toContain('RoPE scaling of type "llama3"');
    expect(finding?.message).toContain('knows only "linear" and "dynamic"');
  });

  it("Llama 3.2 1B: refuses the tied embeddings (and its llama3 RoPE; head_dim 64 = 2048 / 32 is fine)", () => {
    expect(problems(llama32_1bInstruct)).toEqual([
      { rule: "rope-scaling", field: "rope_scaling.rope_type", value: "llama3" },
      { rule: "tied-embeddings", field: "tie_word_embeddings", value: "true" },
    ]);
  });

  it("Qwen2: refuses the architecture, saying what v0.8.0 would do", () => {
    const [finding, ...rest] = compatibilityProblems(parseModelConfig(modelFile(qwen2_7bInstruct, "config.json")));
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ rule: "architecture", field: "architectures", value: '["Qwen2ForCausalLM"]' });
    expect(finding?.message).toContain("not in v0.8.0's MODEL_MAP");
    expect(finding?.message).toContain("drop its q/k/v biases");
  });

  it("Mistral v0.1 converts (MODEL_MAP maps it to LLaMAForCausalLM); its sliding window is a limit, not a refusal here", () => {
    expect(parseModelConfig(modelFile(mistral7bInstruct, "config.json")).slidingWindow).toBe(4096);
    // Qwen2 writes a window but does not use it.
    expect(parseModelConfig(modelFile(qwen2_7bInstruct, "config.json")).slidingWindow).toBeNull();
  });

  it.each<[string, Record<string, unknown>, { rule: string; field: string; value: string }]>([
    ["a MoE model", { architectures: ["MixtralForCausalLM"], model_type: "mixtral" }, { rule: "architecture", field: "architectures", value: '["MixtralForCausalLM"]' }],
    ["no architectures", { architectures: undefined }, { rule: "architecture", field: "architectures", value: "[]" }],
    ["attention biases", { attention_bias: true }, { rule: "biases", field: "attention_bias", value: "true" }],
    ["MLP biases", { mlp_bias: true }, { rule: "biases", field: "mlp_bias", value: "true" }],
    ["a head_dim v0.8.0 does not compute", { head_dim: 160 }, { rule: "head-size", field: "head_dim", value: "160" }],
    ["hidden size not a multiple of the heads", { hidden_size: 4100 }, { rule: "head-size", field: "hidden_size", value: "4100" }],
    ["another activation", { hidden_act: "gelu" }, { rule: "activation", field: "hidden_act", value: "gelu" }],
    ["a pre-quantized checkpoint", { quantization_config: { quant_method: "gptq", bits: 4 } }, { rule: "pre-quantized", field: "quantization_config.quant_method", value: "gptq" }],
    ["yarn RoPE", { rope_scaling: { type: "yarn", factor: 4 } }, { rule: "rope-scaling", field: "rope_scaling.rope_type", value: "yarn" }],
    ["linear RoPE without a factor above 1", { rope_scaling: { type: "linear", factor: 1 } }, { rule: "rope-scaling", field: "rope_scaling.factor", value: "1" }],
  ])("Meta-Llama-3-8B with %s is refused", (_name, changes, expected) => {
    expect(problemsOf(configWith(llama3_8b, changes))).toEqual([expected]);
  });

  it("passes linear and dynamic RoPE scaling on as --rotary_scaling, which v0.8.0 reads instead of config.json", () => {
    const linear = parseModelConfig(configWith(llama3_8b, { rope_scaling: { type: "linear", factor: 2.0 } }));
    expect(compatibilityProblems(linear)).toEqual([]);
    expect(rotaryScalingArgs(linear)).toEqual(["linear", "2"]);
    expect(rotaryScalingArgs(parseModelConfig(configWith(llama3_8b, { rope_scaling: { rope_type: "dynamic", factor: 4 } })))).toEqual(["dynamic", "4"]);
    expect(rotaryScalingArgs(parseModelConfig(modelFile(llama3_8b, "config.json")))).toBeUndefined();
  });

  it("fills what config.json leaves out with LlamaConfig's defaults (num_key_value_heads: as many as heads)", () => {
    const m = parseModelConfig(JSON.stringify({ architectures: ["LlamaForCausalLM"], num_attention_heads: 16 }));
    expect(m).toMatchObject({ numHeads: 16, numKvHeads: 16, hiddenSize: 4096, vocabSize: 32000, maxPositions: 2048, ropeTheta: 10000, hiddenAct: "silu" });
  });

  it("refuses a config.json that is not one, saying which field", () => {
    expect(() => parseModelConfig("{")).toThrow(ModelFileError);
    expect(() => parseModelConfig("[]")).toThrow("config.json is not a JSON object");
    expect(() => parseModelConfig(configWith(llama3_8b, { num_hidden_layers: "32" }))).toThrow('config.json: num_hidden_layers must be a positive integer, got "32"');
  });
});

import { describe, expect, it } from "vitest";
import { deploymentValues, fillConfig, placeholderSpecs, TemplateError, valueProblem } from "../../../src/triton/model-repo.ts";
import { placeholders, safeSubstitute } from "../../../src/triton/template.ts";

describe("safe_substitute semantics", () => {
  it("replaces $name and ${name}, turns $$ into $, and leaves unknown placeholders", () => {
    const { text, unfilled } = safeSubstitute("a: $x, b: ${y}, c: $$x, d: ${z}, e: $ alone, f: $1", { x: "1", y: "2" });
    expect(text).toBe("a: 1, b: 2, c: $x, d: ${z}, e: $ alone, f: $1");
    expect(unfilled).toEqual(["z"]);
  });

  it("takes values with , and : as they are (fill_template.py cannot)", () => {
    expect(safeSubstitute('string_value: "${engine_dir}"', { engine_dir: "/m,x:y" }).text).toBe('string_value: "/m,x:y"');
  });

  it("does not read a replacement as a template", () => {
    expect(safeSubstitute("${a}", { a: "${b}" }).text).toBe("${b}");
  });

  it("lists placeholders once each", () => {
    expect(placeholders("${a} $b ${a} $$c")).toEqual(["a", "b"]);
  });
});

const template = [
  "max_batch_size: ${triton_max_batch_size}",
  "model_transaction_policy { decoupled: ${decoupled_mode} }",
  'parameters: { key: "gpt_model_path" value: { string_value: "${engine_dir}" } }',
  'parameters: { key: "gpu_device_ids" value: { string_value: "${gpu_device_ids}" } }',
].join("\n");

describe("filling a config.pbtxt", () => {
  it("fills every value and may leave optional backend parameters", () => {
    const text = fillConfig("tensorrt_llm", template, { triton_max_batch_size: "64", decoupled_mode: "true", engine_dir: "/llama3-trt/engine" });
    expect(text).toContain("max_batch_size: 64");
    expect(text).toContain("decoupled: true");
    expect(text).toContain('string_value: "/llama3-trt/engine"');
    expect(text).toContain('string_value: "${gpu_device_ids}"');
  });

  it("refuses an unfilled required placeholder and an unknown one", () => {
    expect(() => fillConfig("tensorrt_llm", template, { decoupled_mode: "true", engine_dir: "/e" })).toThrow(
      "config.pbtxt for tensorrt_llm still contains ${triton_max_batch_size}",
    );
    expect(() => fillConfig("ensemble", "x: ${foo}", {})).toThrow("config.pbtxt for ensemble still contains ${foo}");
  });

  it.each([
    ["engine_dir", '/models/a"b'],
    ["engine_dir", '/m\nparameters: {key:"x"}'],
    ["engine_dir", "/m\\x"],
    ["engine_dir", "${other}"],
    ["decoupled_mode", "true\n}"],
    ["triton_max_batch_size", "8 ]"],
    ["triton_max_batch_size", "0"],
    ["kv_cache_free_gpu_mem_fraction", "1.5"],
    ["batching_strategy", "fast"],
  ])("refuses %s = %j (case 35)", (name, value) => {
    expect(valueProblem(name, value)).toBeDefined();
    expect(() => fillConfig("tensorrt_llm", template, { ...deploymentValues({ maxBatchSize: 8, decoupled: false, tokenizerDir: "/t", engineDir: "/e" }), [name]: value })).toThrow(TemplateError);
  });

  it("accepts what real deployments use", () => {
    for (const [name, value] of [
      ["engine_dir", "/llama3-trt/engine"],
      ["tokenizer_dir", "/llama3-trt/weights/snapshots/0123"],
      ["engine_dir", "/m,x:y"],
      ["kv_cache_free_gpu_mem_fraction", "0.9"],
      ["decoupled_mode", "false"],
    ] as const) {
      expect(valueProblem(name, value), `${name}=${value}`).toBeUndefined();
    }
  });

  it("gives a value for every required placeholder", () => {
    const values = deploymentValues({ maxBatchSize: 64, decoupled: false, tokenizerDir: "/t", engineDir: "/e" });
    for (const [name, spec] of Object.entries(placeholderSpecs)) {
      if (!spec.optional) expect(values, name).toHaveProperty(name);
    }
    for (const [name, value] of Object.entries(values)) expect(valueProblem(name, value), name).toBeUndefined();
  });
});

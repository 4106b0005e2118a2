import { describe, expect, it } from "vitest";
import { deploymentValues, fillConfig, parameter, placeholderSpecs, TemplateError, valueProblem } from "../../../src/triton/model-repo.ts";

/** The values each kind of placeholder must take and must refuse (case 35: hostile values included). */
const kinds = {
  int: {
    names: ["max_queue_delay_microseconds"],
    good: ["0", "100", "999999999"],
    bad: ["", "-1", "1.5", "x5", "5x", " 5", "8 ]", "1e3", "1234567890"],
  },
  "positive-int": {
    names: [
      "triton_max_batch_size",
      "preprocessing_instance_count",
      "postprocessing_instance_count",
      "bls_instance_count",
      "max_beam_width",
      "max_tokens_in_paged_kv_cache",
      "max_attention_window_size",
    ],
    good: ["1", "64", "999999999"],
    bad: ["0", "", "-1", "x5", "5x", "8 ]", "1e3", "1234567890"],
  },
  bool: {
    names: ["decoupled_mode", "accumulate_tokens", "enable_trt_overlap", "exclude_input_in_output", "enable_kv_cache_reuse", "normalize_log_probs", "enable_chunked_context"],
    good: ["true", "false"],
    bad: ["", "True", "1", "yes", "true\n}", "false "],
  },
  fraction: {
    names: ["kv_cache_free_gpu_mem_fraction"],
    good: ["0.9", "0.95", "0.05", "1", "1.0", "1.00"],
    bad: ["", "0", "0.0", ".5", "-0.5", "1.5", "1.01", "2", "x0.5", "0.5x"],
  },
  string: {
    names: ["tokenizer_dir", "engine_dir", "gpu_device_ids"],
    // fill_template.py cannot take `,` or `:`; we can, verbatim.
    good: ["/llama3-trt/engine", "/m,x:y", "0,1", "/a path/with spaces"],
    bad: ["", '/models/a"b', '/m\nparameters: {key:"x"}', "/m\\x", "/m\rx", "/m\0x", "${other}", "$other", "/m/$HOME"],
  },
} as const;

const choices = {
  tokenizer_type: ["auto", "llama", "t5"],
  batching_strategy: ["inflight_fused_batching", "inflight_batching", "V1"],
  batch_scheduler_policy: ["max_utilization", "guaranteed_no_evict"],
} as const;

describe("the values a placeholder accepts", () => {
  for (const [kind, { names, good, bad }] of Object.entries(kinds)) {
    it.each(names)(`%s (${kind}) accepts ${good.map((v) => JSON.stringify(v)).join(" ")} and refuses the rest`, (name) => {
      for (const value of good) expect(valueProblem(name, value), JSON.stringify(value)).toBeUndefined();
      for (const value of bad) expect(valueProblem(name, value), JSON.stringify(value)).toMatch(new RegExp(`^${name} must be `));
    });
  }

  it.each(Object.entries(choices))("%s accepts exactly its choices", (name, values) => {
    for (const value of values) expect(valueProblem(name, value), value).toBeUndefined();
    for (const value of ["", "Auto", "fast", values[0].toUpperCase(), `${values[0]} `]) expect(valueProblem(name, value), value).toBeDefined();
  });

  it("the table knows every placeholder checked above, and no other", () => {
    const all = [...Object.values(kinds).flatMap((k) => k.names), ...Object.keys(choices)];
    expect(Object.keys(placeholderSpecs).sort()).toEqual([...all].sort());
  });

  it("says, for each kind, what it expected and what it got", () => {
    expect(valueProblem("max_queue_delay_microseconds", "-1")).toBe('max_queue_delay_microseconds must be an integer >= 0, got "-1"');
    expect(valueProblem("triton_max_batch_size", "8 ]")).toBe('triton_max_batch_size must be an integer >= 1, got "8 ]"');
    expect(valueProblem("decoupled_mode", "true\n}")).toBe('decoupled_mode must be true or false, got "true\\n}"');
    expect(valueProblem("kv_cache_free_gpu_mem_fraction", "1.5")).toBe('kv_cache_free_gpu_mem_fraction must be a number in (0, 1], got "1.5"');
    expect(valueProblem("tokenizer_type", "gpt2")).toBe('tokenizer_type must be one of auto, llama, t5, got "gpt2"');
    expect(valueProblem("engine_dir", '/models/a"b')).toBe('engine_dir must be text without quotes, backslashes, line breaks or $, got "/models/a\\"b"');
    expect(valueProblem("foo", "1")).toBe("`foo` is not a placeholder of the v0.8.0 templates");
  });
});

/** Which placeholders may stay unfilled: those the tensorrt_llm backend or BLS model reads with a fallback. */
const optional = [
  "accumulate_tokens",
  "max_beam_width",
  "max_tokens_in_paged_kv_cache",
  "max_attention_window_size",
  "batch_scheduler_policy",
  "kv_cache_free_gpu_mem_fraction",
  "enable_trt_overlap",
  "exclude_input_in_output",
  "enable_kv_cache_reuse",
  "normalize_log_probs",
  "enable_chunked_context",
  "gpu_device_ids",
];

const template = [
  'name: "tensorrt_llm"',
  "max_batch_size: ${triton_max_batch_size}",
  "model_transaction_policy { decoupled: ${decoupled_mode} }",
  'parameters: { key: "gpt_model_path" value: { string_value: "${engine_dir}" } }',
  'parameters: { key: "gpu_device_ids" value: { string_value: "${gpu_device_ids}" } }',
  "# $$ is a dollar",
].join("\n");

describe("filling a config.pbtxt", () => {
  it("fills every value given, leaves only optional backend parameters, and turns $$ into $", () => {
    const text = fillConfig("tensorrt_llm", template, { triton_max_batch_size: "64", decoupled_mode: "true", engine_dir: "/m,x:y" });
    expect(text).toBe(
      [
        'name: "tensorrt_llm"',
        "max_batch_size: 64",
        "model_transaction_policy { decoupled: true }",
        'parameters: { key: "gpt_model_path" value: { string_value: "/m,x:y" } }',
        'parameters: { key: "gpu_device_ids" value: { string_value: "${gpu_device_ids}" } }',
        "# $ is a dollar",
      ].join("\n"),
    );
    // Read back, the string is exactly the input and no field was added (case 35).
    expect(parameter(text, "gpt_model_path")).toBe("/m,x:y");
    expect(text.match(/parameters:/g)).toHaveLength(2);
  });

  it.each(Object.keys(placeholderSpecs))("%s: left unfilled, refused unless the backend falls back to its default", (name) => {
    const text = `parameters: { key: "k" value: { string_value: "\${${name}}" } }`;
    if (optional.includes(name)) expect(fillConfig("tensorrt_llm", text, {})).toBe(text);
    else expect(() => fillConfig("tensorrt_llm", text, {})).toThrow(new TemplateError(`config.pbtxt for tensorrt_llm still contains \${${name}}`));
  });

  // Case 36: never the silent pass-through of safe_substitute.
  it("names every required placeholder left unfilled, in order, and one it does not know", () => {
    expect(() => fillConfig("tensorrt_llm", template, { decoupled_mode: "true" })).toThrow(
      new TemplateError("config.pbtxt for tensorrt_llm still contains ${triton_max_batch_size}, ${engine_dir}"),
    );
    expect(() => fillConfig("ensemble", "x: ${foo}\ny: $bar", {})).toThrow(new TemplateError("config.pbtxt for ensemble still contains ${foo}, ${bar}"));
  });

  it.each([
    ["engine_dir", '/models/a"b', 'engine_dir must be text without quotes, backslashes, line breaks or $, got "/models/a\\"b"'],
    ["engine_dir", '/m\nparameters: {key:"x"}', 'engine_dir must be text without quotes, backslashes, line breaks or $, got "/m\\nparameters: {key:\\"x\\"}"'],
    ["engine_dir", "/m\\x", 'engine_dir must be text without quotes, backslashes, line breaks or $, got "/m\\\\x"'],
    ["engine_dir", "${other}", 'engine_dir must be text without quotes, backslashes, line breaks or $, got "${other}"'],
    ["engine_dir", "", 'engine_dir must be text without quotes, backslashes, line breaks or $, got ""'],
    ["decoupled_mode", "true\n}", 'decoupled_mode must be true or false, got "true\\n}"'],
    ["triton_max_batch_size", "8 ]", 'triton_max_batch_size must be an integer >= 1, got "8 ]"'],
    ["batching_strategy", "fast", 'batching_strategy must be one of inflight_fused_batching, inflight_batching, V1, got "fast"'],
    ["foo", "1", "`foo` is not a placeholder of the v0.8.0 templates"],
  ])("refuses %s = %j, naming the model (case 35)", (name, value, problem) => {
    const values = { ...deploymentValues({ maxBatchSize: 8, decoupled: false, tokenizerDir: "/t", engineDir: "/e" }), [name]: value };
    expect(() => fillConfig("tensorrt_llm", template, values)).toThrow(new TemplateError(`config.pbtxt for tensorrt_llm: ${problem}`));
  });

  it("gives a valid value for every required placeholder", () => {
    const values = deploymentValues({ maxBatchSize: 64, decoupled: false, tokenizerDir: "/t", engineDir: "/e" });
    for (const [name, spec] of Object.entries(placeholderSpecs)) {
      if (!spec.optional) expect(values, name).toHaveProperty(name);
    }
    for (const [name, value] of Object.entries(values)) expect(valueProblem(name, value), name).toBeUndefined();
    expect(values).toMatchObject({ triton_max_batch_size: "64", decoupled_mode: "false", tokenizer_dir: "/t", engine_dir: "/e" });
  });
});

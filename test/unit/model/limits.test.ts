import { describe, expect, it } from "vitest";
import { parseModelConfig } from "../../../src/model/hf-config.ts";
import { checkLimits, tpProblem, workingTpSizes } from "../../../src/model/limits.ts";
import { llama2_7bChat, llama3_70bInstruct, llama3_8bInstruct, mistral7bInstruct, modelFile, qwen2_7bInstruct } from "./fixtures.ts";

const config = (model: string) => parseModelConfig(modelFile(model, "config.json"));
const defaults = { tp: 1, maxBatchSize: 64, maxInputLen: 4096, maxOutputLen: 1024 };

describe("limits against the model", () => {
  it("Llama 3 8B: the defaults fit its 8,192 positions; only the max_num_tokens note", () => {
    const { refusals, notes } = checkLimits(config(llama3_8bInstruct), defaults);
    expect(refusals).toEqual([]);
    expect(notes.map((n) => n.message)).toEqual([
      "the engine takes at most 16384 prompt tokens per step (max_num_tokens), so 4 full-length prompts of 4096 tokens start at once, not 64 (generation still batches 64); 64 full prompts at once need --max-input-len 256 or less",
    ]);
  });

  it("no note when batch x input fits in max_num_tokens", () => {
    expect(checkLimits(config(llama3_8bInstruct), { ...defaults, maxBatchSize: 4, maxInputLen: 2048 }).notes).toEqual([]);
  });

  it("input + output past max_position_embeddings is refused with the largest values that work", () => {
    const [refusal, ...rest] = checkLimits(config(llama3_8bInstruct), { ...defaults, maxInputLen: 8000 }).refusals;
    expect(rest).toEqual([]);
    expect(refusal).toMatchObject({ rule: "context", field: "max_input_len + max_output_len", value: "9024", source: "examples/llama/convert_checkpoint.py:1228, 1325" });
    expect(refusal?.message).toBe(
      "--max-input-len 8000 + --max-output-len 1024 = 9024 tokens, more than 8192: the model was trained on 8192 positions (max_position_embeddings): past them its RoPE positions are ones it never saw. The largest that works: --max-input-len 7168 (with --max-output-len 1024), or --max-output-len 192 (with --max-input-len 8000)",
    );
  });

  it("Llama 2's 4,096 positions refuse the defaults; only a shorter input is offered when the output alone is too long", () => {
    expect(checkLimits(config(llama2_7bChat), defaults).refusals[0]?.message).toContain("The largest that works: --max-input-len 3072 (with --max-output-len 1024)");
    expect(checkLimits(config(llama2_7bChat), { ...defaults, maxInputLen: 100, maxOutputLen: 4096 }).refusals[0]?.message).toContain(
      "The largest that works: --max-output-len 3996 (with --max-input-len 100)",
    );
  });

  it("Mistral v0.1: its 4,096-token sliding window is the limit, not its 32,768 positions", () => {
    const [refusal] = checkLimits(config(mistral7bInstruct), defaults).refusals;
    expect(refusal).toMatchObject({ rule: "context", value: "5120", source: "examples/llama/convert_checkpoint.py:1212-1228" });
    expect(refusal?.message).toContain("window of 4096 tokens (sliding_window)");
    expect(refusal?.message).toContain("--max-input-len 3072 (with --max-output-len 1024)");
    expect(checkLimits(config(mistral7bInstruct), { ...defaults, maxInputLen: 3072 }).refusals).toEqual([]);
  });

  it.each<[string, number, number[]]>([
    [llama3_8bInstruct, 3, [1, 2, 4, 8, 16, 32]],
    [llama3_70bInstruct, 16, [1, 2, 4, 8, 16, 32, 64]],
    [qwen2_7bInstruct, 8, [1, 2, 4]],
  ])("%s: the tp sizes that split it (8 KV heads are copied for tp 16 and more)", (model, _tp, working) => {
    expect(workingTpSizes(config(model))).toEqual(working);
  });

  it("tp against the heads: refusals say why and the largest tp that works", () => {
    expect(tpProblem(config(llama3_8bInstruct), 3)).toBe("num_attention_heads (32) is not a multiple of 3");
    expect(tpProblem(config(qwen2_7bInstruct), 8)).toBe("num_attention_heads (28) is not a multiple of 8");
    const [refusal] = checkLimits(config(llama3_8bInstruct), { ...defaults, tp: 6 }).refusals;
    expect(refusal).toMatchObject({ rule: "tp", field: "tp", value: "6", source: "examples/llama/convert_checkpoint.py:600, 678-679, 832-835, 1016" });
    expect(refusal?.message).toBe("--tp 6 cannot split this model: num_attention_heads (32) is not a multiple of 6. The largest tp up to 6 that works is 4 (it works with 1, 2, 4, 8)");
  });

  it("KV heads fewer than tp must divide it; more must be divisible by it", () => {
    const gqa = parseModelConfig(JSON.stringify({ architectures: ["LlamaForCausalLM"], num_attention_heads: 48, num_key_value_heads: 6, hidden_size: 6144, intermediate_size: 18432 }));
    expect(tpProblem(gqa, 4)).toBe("num_key_value_heads (6) is not a multiple of 4");
    expect(tpProblem(gqa, 8)).toBe("8 is not a multiple of num_key_value_heads (6)");
    expect(tpProblem(gqa, 12)).toBeUndefined();
    expect(tpProblem(gqa, 24)).toBeUndefined();
    expect(tpProblem(gqa, 32)).toBe("num_attention_heads (48) is not a multiple of 32");
    const fewKv = parseModelConfig(JSON.stringify({ architectures: ["LlamaForCausalLM"], num_attention_heads: 40, num_key_value_heads: 4, hidden_size: 5120, intermediate_size: 20480 }));
    expect(tpProblem(fewKv, 10)).toBe("10 is not a multiple of num_key_value_heads (4)");
    const odd = parseModelConfig(JSON.stringify({ architectures: ["LlamaForCausalLM"], num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 11000 }));
    expect(tpProblem(odd, 16)).toBe("intermediate_size (11000) is not a multiple of 16");
  });
});

import { describe, expect, it } from "vitest";
import { cleanAnswer, isInstructModel, llama3ChatPrompt, stopTokenId } from "../../../src/triton/chat-template.ts";
import { conversationRules } from "../../../src/model/conversation.ts";
import { generateBody, promptText } from "../../../src/triton/generate-request.ts";
import { llama2_7bChat, llama3_8b, llama3_8bInstruct, maybeModelFile, modelFile } from "../model/fixtures.ts";

/** The rules `ask` gets from a model's own files (test/fixtures/models). */
const rulesOf = (model: string) =>
  conversationRules({ config: modelFile(model, "config.json"), generationConfig: maybeModelFile(model, "generation_config.json"), tokenizerConfig: maybeModelFile(model, "tokenizer_config.json") }, model);

describe("the Llama 3 chat template", () => {
  it("wraps the prompt in a user turn and opens the assistant's", () => {
    expect(llama3ChatPrompt({ user: "How do I count to nine in French?" })).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow do I count to nine in French?<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("puts an optional system prompt first, and trims each message as the model's template does", () => {
    expect(llama3ChatPrompt({ user: "  hi \n", system: " Be brief. " })).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(llama3ChatPrompt({ user: "hi", system: "  " })).toBe(llama3ChatPrompt({ user: "hi" }));
  });

  it("stops Instruct models at <|eot_id|> (128009) and base models at <|end_of_text|> (128001)", () => {
    expect(stopTokenId(true)).toBe(128009);
    expect(stopTokenId(false)).toBe(128001);
  });

  it.each([
    ["meta-llama/Meta-Llama-3-8B-Instruct", true],
    ["meta-llama/Meta-Llama-3-70B-Instruct", true],
    ["someone/llama3-chat", true],
    ["meta-llama/Meta-Llama-3-8B", false],
    ["instruct-org/Meta-Llama-3-8B", false],
  ])("%s is an Instruct model: %s", (model, expected) => {
    expect(isInstructModel(model)).toBe(expected);
  });

  it("cuts a decoded answer at the end of the turn and drops special tokens", () => {
    expect(cleanAnswer("Un, deux, trois.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nmore")).toBe("Un, deux, trois.");
    expect(cleanAnswer("<|begin_of_text|>plain <|reserved_special_token_3|>text")).toBe("plain text");
  });
});

describe("the generate request body", () => {
  const base = { prompt: "How do I count to nine in French?", rules: rulesOf(llama3_8bInstruct), raw: false, maxTokens: 256, stream: false };

  it("sends the ensemble's inputs at the top level: the chat prompt, max_tokens and the end-of-turn id", () => {
    const body = generateBody(base);
    expect(body).toEqual({ text_input: llama3ChatPrompt({ user: base.prompt }), max_tokens: 256, end_id: 128009 });
    expect(body).not.toHaveProperty("parameters");
    expect(JSON.parse(JSON.stringify(body))).toEqual(body);
  });

  it("--raw sends the prompt as is, still stopping an Instruct model at the end of its turn", () => {
    expect(generateBody({ ...base, raw: true })).toEqual({ text_input: base.prompt, max_tokens: 256, end_id: 128009 });
  });

  it("a base model gets no template and stops at <|end_of_text|>", () => {
    expect(generateBody({ ...base, rules: rulesOf(llama3_8b) })).toEqual({ text_input: base.prompt, max_tokens: 256, end_id: 128001 });
  });

  it("another model family gets its own template and end token: Llama 2 chat, [INST] and </s> (2)", () => {
    expect(generateBody({ ...base, rules: rulesOf(llama2_7bChat), system: "Be brief." })).toEqual({
      text_input: "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHow do I count to nine in French? [/INST]",
      max_tokens: 256,
      end_id: 2,
    });
  });

  it("passes sampling settings as their typed inputs, and stream only when streaming", () => {
    expect(generateBody({ ...base, temperature: 0.7, topP: 0.9, topK: 40, stream: true, system: "Be brief." })).toEqual({
      text_input: llama3ChatPrompt({ user: base.prompt, system: "Be brief." }),
      max_tokens: 256,
      end_id: 128009,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 40,
      stream: true,
    });
  });

  it("passes shell syntax through literally (no shell anywhere)", () => {
    const prompt = "$(touch /tmp/pwned); `touch /tmp/pwned2`";
    expect(promptText({ prompt, rules: base.rules, raw: true })).toBe(prompt);
    expect(promptText({ prompt, rules: base.rules, raw: false })).toBe(llama3ChatPrompt({ user: prompt }));
  });
});

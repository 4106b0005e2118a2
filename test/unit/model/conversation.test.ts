import { describe, expect, it } from "vitest";
import { ConversationError, conversationRules } from "../../../src/model/conversation.ts";
import { configWith, llama2_7bChat, llama31_8bInstruct, llama3_8b, llama3_8bInstruct, maybeModelFile, modelFile } from "./fixtures.ts";

const filesOf = (model: string) => ({
  config: modelFile(model, "config.json"),
  generationConfig: maybeModelFile(model, "generation_config.json"),
  tokenizerConfig: maybeModelFile(model, "tokenizer_config.json"),
});

describe("the model's own conversation rules", () => {
  it("Meta-Llama-3-8B-Instruct: its chat template (real Jinja) and end tokens 128001 and 128009; a turn ends at <|eot_id|>", () => {
    const rules = conversationRules(filesOf(llama3_8bInstruct), llama3_8bInstruct);
    expect(rules.template).toBe("tokenizer_config.json");
    expect(rules.endTokenIds).toEqual([128001, 128009]);
    expect(rules.endId).toBe(128009);
    expect(rules.tokenizerEos).toEqual({ text: "<|eot_id|>", id: 128009 });
    expect(rules.render([{ role: "system", content: " Answer in one line. " }, { role: "user", content: "Why is the sky blue?\n" }])).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nAnswer in one line.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWhy is the sky blue?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("Meta-Llama-3-8B (base): no template, ends at <|end_of_text|> (128001)", () => {
    const rules = conversationRules(filesOf(llama3_8b), llama3_8b);
    expect(rules.template).toBe("none");
    expect(rules.endTokenIds).toEqual([128001]);
    expect(rules.endId).toBe(128001);
    expect(rules.render([{ role: "user", content: "Once upon a time" }])).toBe("Once upon a time");
  });

  it("Llama 2 chat: its own [INST] template, raise_exception included, and </s> (2) ends the answer", () => {
    const rules = conversationRules(filesOf(llama2_7bChat), llama2_7bChat);
    expect(rules.endId).toBe(2);
    expect(rules.render([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }])).toBe("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
    expect(() => rules.render([{ role: "assistant", content: "Hi" }])).toThrow(
      new ConversationError("the model's chat template refused the conversation: Conversation roles must alternate user/assistant/user/assistant/..."),
    );
  });

  it("Llama 3.1 lists <|eom_id|> (128008) too; the answer's end is still <|eot_id|>", () => {
    const template = JSON.parse(modelFile(llama3_8bInstruct, "tokenizer_config.json")) as Record<string, unknown>;
    // The 3.1 template writes <|eom_id|> after tool calls: the rule must not take it for the turn's end.
    const decoder = { ...(template.added_tokens_decoder as object), "128008": { content: "<|eom_id|>", special: true } };
    const chat = `{% if tools %}<|eom_id|>{% endif %}${String(template.chat_template)}`;
    const rules = conversationRules(
      { config: modelFile(llama31_8bInstruct, "config.json"), generationConfig: modelFile(llama31_8bInstruct, "generation_config.json"), tokenizerConfig: JSON.stringify({ ...template, added_tokens_decoder: decoder, chat_template: chat }) },
      llama31_8bInstruct,
    );
    expect(rules.endTokenIds).toEqual([128001, 128008, 128009]);
    expect(rules.endId).toBe(128009);
  });

  it("an Instruct model whose files carry no template gets the Llama 3 format; end tokens from config.json when generation_config.json has none", () => {
    const tokenizer = JSON.parse(modelFile(llama3_8bInstruct, "tokenizer_config.json")) as Record<string, unknown>;
    delete tokenizer.chat_template;
    const rules = conversationRules({ config: configWith(llama3_8bInstruct, {}), tokenizerConfig: JSON.stringify(tokenizer) }, "someone/My-Llama-3-Instruct");
    expect(rules.template).toBe("llama3-fallback");
    expect(rules.endTokenIds).toEqual([128009]);
    expect(rules.endId).toBe(128009);
    expect(rules.render([{ role: "user", content: "Hi" }])).toBe("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  });

  it("refuses files that are not JSON objects, and a template that does not parse", () => {
    expect(() => conversationRules({ generationConfig: "[1]" }, llama3_8b)).toThrow(new ConversationError("generation_config.json is not a JSON object"));
    expect(() => conversationRules({ tokenizerConfig: JSON.stringify({ chat_template: "{% for %}" }) }, llama3_8b)).toThrow(/chat_template of tokenizer_config.json does not parse/);
  });
});

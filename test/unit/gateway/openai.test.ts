import { describe, expect, it } from "vitest";
import { conversationRules } from "../../../src/model/conversation.ts";
import {
  chunkObject,
  completionObject,
  finishReason,
  type GenerationRequest,
  OpenAIError,
  parseChatRequest,
  parseCompletionRequest,
  promptTooLong,
  responseId,
  type ServedModel,
  StopScanner,
  stopWordsCsv,
  tritonBody,
  usage,
} from "../../../src/gateway/openai.ts";
import { llama3_8b, llama3_8bInstruct, maybeModelFile, modelFile } from "../model/fixtures.ts";

function served(model: string): ServedModel {
  const rules = conversationRules(
    { tokenizerConfig: maybeModelFile(model, "tokenizer_config.json"), generationConfig: maybeModelFile(model, "generation_config.json"), config: modelFile(model, "config.json") },
    model,
  );
  return { id: model, rules, maxInputLen: 4096, maxOutputLen: 1024 };
}

const instruct = served(llama3_8bInstruct);
const base = served(llama3_8b);
const chat = (extra: Record<string, unknown> = {}) => ({ model: llama3_8bInstruct, messages: [{ role: "user", content: "Hi" }], ...extra });

function refusal(run: () => unknown): OpenAIError {
  try {
    run();
  } catch (error) {
    if (error instanceof OpenAIError) return error;
    throw error;
  }
  throw new Error("expected an OpenAIError");
}

describe("chat requests", () => {
  it("messages go through the model's own chat template, every turn in order; defaults are the engine's", () => {
    const request = parseChatRequest(
      chat({
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: [{ type: "text", text: "Hi " }, { type: "text", text: "there" }] },
          { role: "assistant", content: "Hello." },
          { role: "developer", content: "Answer in French." },
          { role: "user", content: "Count to three." },
        ],
      }),
      instruct,
    );
    expect(request.prompt).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
        "<|start_header_id|>system<|end_header_id|>\n\nAnswer in French.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nCount to three.<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(request).toMatchObject({ endpoint: "chat", maxTokens: 1024, stop: [], stream: false, includeUsage: false, sampling: {} });
  });

  it("the Llama 3 fallback renders every turn too", () => {
    const noTemplate = { ...instruct, rules: conversationRules({ generationConfig: modelFile(llama3_8bInstruct, "generation_config.json") }, llama3_8bInstruct) };
    expect(noTemplate.rules.template).toBe("llama3-fallback");
    const request = parseChatRequest(chat({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "user", content: "c" }] }), noTemplate);
    expect(request.prompt).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nc<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("sampling maps to the ensemble's inputs; temperature 0 is greedy (top_k 1)", () => {
    const request = parseChatRequest(chat({ temperature: 0.7, top_p: 0.9, seed: 42, presence_penalty: 0.5, frequency_penalty: -0.5, max_completion_tokens: 12, max_tokens: 99 }), instruct);
    expect(request.sampling).toEqual({ temperature: 0.7, top_p: 0.9, random_seed: 42, presence_penalty: 0.5, frequency_penalty: -0.5 });
    expect(request.maxTokens).toBe(12);
    expect(parseChatRequest(chat({ temperature: 0 }), instruct).sampling).toEqual({ top_k: 1 });
    expect(parseChatRequest(chat({ max_tokens: 7 }), instruct).maxTokens).toBe(7);
  });

  it("stream options: include_usage only with stream", () => {
    expect(parseChatRequest(chat({ stream: true, stream_options: { include_usage: true } }), instruct)).toMatchObject({ stream: true, includeUsage: true });
    expect(parseChatRequest(chat({ stream: true }), instruct)).toMatchObject({ stream: true, includeUsage: false });
    expect(refusal(() => parseChatRequest(chat({ stream_options: { include_usage: true } }), instruct)).param).toBe("stream_options");
  });

  it.each([
    ["n", { n: 2 }],
    ["logprobs", { logprobs: true }],
    ["top_logprobs", { top_logprobs: 3 }],
    ["tools", { tools: [{ type: "function", function: { name: "f" } }] }],
    ["tool_choice", { tool_choice: "auto" }],
    ["functions", { functions: [{ name: "f" }] }],
    ["response_format", { response_format: { type: "json_object" } }],
    ["logit_bias", { logit_bias: { "42": 5 } }],
    ["modalities", { modalities: ["text", "audio"] }],
  ])("what the backend cannot do is a 400 naming it: %s", (param, extra) => {
    const error = refusal(() => parseChatRequest(chat(extra), instruct));
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.body()).toEqual({ error: { message: error.message, type: "invalid_request_error", param, code: "unsupported_parameter" } });
  });

  it("harmless defaults of those fields pass: n 1, logprobs false, no tools, text format", () => {
    expect(() => parseChatRequest(chat({ n: 1, logprobs: false, tools: [], tool_choice: "none", response_format: { type: "text" }, logit_bias: {}, user: "u1" }), instruct)).not.toThrow();
  });

  it.each([
    ["temperature", { temperature: 3 }],
    ["top_p", { top_p: -0.1 }],
    ["presence_penalty", { presence_penalty: 2.5 }],
    ["seed", { seed: 1.5 }],
    ["seed", { seed: -1 }],
    ["max_tokens", { max_tokens: 0 }],
    ["max_tokens", { max_tokens: 1025 }],
    ["stop", { stop: ["a", "b", "c", "d", "e"] }],
    ["stop", { stop: 3 }],
    ["stream", { stream: "yes" }],
    ["messages", { messages: [] }],
    ["messages[0].role", { messages: [{ role: "tool", content: "x" }] }],
    ["messages[0].content", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }],
    ["frobnicate", { frobnicate: true }],
  ])("a bad %s is a 400 that names the field", (param, extra) => {
    const error = refusal(() => parseChatRequest(chat(extra), instruct));
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
  });

  it("max_tokens above the engine's max_output_len says its limit", () => {
    expect(refusal(() => parseChatRequest(chat({ max_tokens: 2000 }), instruct)).message).toContain("at most 1024 tokens per request (its max_output_len)");
  });

  it("another model id is a 404; none is a 400", () => {
    const other = refusal(() => parseChatRequest(chat({ model: "gpt-4o" }), instruct));
    expect([other.status, other.code]).toEqual([404, "model_not_found"]);
    expect(refusal(() => parseChatRequest({ messages: [{ role: "user", content: "x" }] }, instruct)).status).toBe(400);
    expect(refusal(() => parseChatRequest([1, 2], instruct)).status).toBe(400);
  });

  it("a base model (no chat template) refuses chat and points to completions", () => {
    expect(base.rules.template).toBe("none");
    expect(refusal(() => parseChatRequest({ ...chat(), model: llama3_8b }, base)).message).toContain("use /v1/completions");
  });
});

describe("completion requests", () => {
  it("the prompt is sent as it is; one prompt per request", () => {
    expect(parseCompletionRequest({ model: llama3_8b, prompt: "Once upon", max_tokens: 5, stop: "\n" }, base)).toMatchObject({ endpoint: "completions", prompt: "Once upon", maxTokens: 5, stop: ["\n"] });
    expect(parseCompletionRequest({ model: llama3_8b, prompt: ["Once"] }, base).prompt).toBe("Once");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: ["a", "b"] }, base)).param).toBe("prompt");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: [1, 2, 3] }, base)).param).toBe("prompt");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: "x", echo: true }, base)).param).toBe("echo");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: "x", best_of: 3 }, base)).param).toBe("best_of");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: "x", suffix: "y" }, base)).param).toBe("suffix");
    expect(refusal(() => parseCompletionRequest({ model: llama3_8b, prompt: "x", messages: [] }, base)).param).toBe("messages");
  });
});

describe("the Triton request", () => {
  const request: GenerationRequest = {
    endpoint: "chat",
    prompt: "P",
    maxTokens: 9,
    stop: ['a,b', 'say "hi"', "\n\n"],
    stream: true,
    includeUsage: false,
    sampling: { temperature: 0.5, random_seed: 3 },
  };

  it("carries the prompt, max_tokens, the model's end_id, sampling and the stop strings as one CSV line", () => {
    expect(tritonBody(request, 128009, true)).toEqual({
      text_input: "P",
      max_tokens: 9,
      end_id: 128009,
      temperature: 0.5,
      random_seed: 3,
      stop_words: ['"a,b","say ""hi""","\n\n"'],
      stream: true,
    });
    expect(tritonBody({ ...request, stop: [] }, 128001, false)).toEqual({ text_input: "P", max_tokens: 9, end_id: 128001, temperature: 0.5, random_seed: 3 });
  });

  it("the CSV line is what Python's csv reader splits back into the stop strings", () => {
    // Python: next(csv.reader(['"a,b","x"""'])) == ['a,b', 'x"']
    expect(stopWordsCsv(["a,b", 'x"'])).toBe('"a,b","x"""');
  });

  it("the end_id comes from the model's rules: <|eot_id|> for the Instruct model", () => {
    expect(instruct.rules.endId).toBe(128009);
  });
});

describe("stop strings", () => {
  it("cut the text at the first stop string, even across pieces, and hold back what may begin one", () => {
    const scanner = new StopScanner(["STOP", "xy"]);
    expect(scanner.push("Hello S")).toBe("Hello ");
    expect(scanner.push("T")).toBe("");
    expect(scanner.push("Oh")).toBe("STOh");
    expect(scanner.stopped).toBe(false);
    expect(scanner.push(" wax")).toBe(" wa");
    expect(scanner.push("yz")).toBe("");
    expect(scanner.stopped).toBe(true);
    expect(scanner.push("more")).toBe("");
    expect(scanner.end()).toBe("");
  });

  it("what was held back is released at the end", () => {
    const scanner = new StopScanner(["</answer>"]);
    expect(scanner.push("done </ans")).toBe("done ");
    expect(scanner.end()).toBe("</ans");
  });

  it("no stop strings: everything passes at once", () => {
    const scanner = new StopScanner([]);
    expect(scanner.push("abc")).toBe("abc");
    expect(scanner.end()).toBe("");
  });

  it("the earliest of several stop strings wins", () => {
    const scanner = new StopScanner(["world", "lo"]);
    expect(scanner.push("hello world")).toBe("hel");
  });
});

describe("finish_reason", () => {
  it("length when the engine produced max_tokens, stop when the model ended its turn or a stop string was hit", () => {
    expect(finishReason({ stoppedByString: false, generated: 16, maxTokens: 16 })).toBe("length");
    expect(finishReason({ stoppedByString: false, generated: 15, maxTokens: 16 })).toBe("stop");
    expect(finishReason({ stoppedByString: true, generated: 16, maxTokens: 16 })).toBe("stop");
  });
});

describe("responses", () => {
  const head = { id: "chatcmpl-x", created: 1700000000, model: llama3_8bInstruct };
  const chatRequest = parseChatRequest(chat({ stream: true, stream_options: { include_usage: true } }), instruct);

  it("a chat completion in OpenAI's shape", () => {
    expect(completionObject(parseChatRequest(chat(), instruct), head, "Bonjour", "stop", usage(10, 2))).toEqual({
      ...head,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Bonjour", refusal: null }, logprobs: null, finish_reason: "stop" }],
      usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
      system_fingerprint: null,
    });
  });

  it("a text completion in OpenAI's shape", () => {
    const request = parseCompletionRequest({ model: llama3_8b, prompt: "x" }, base);
    expect(completionObject(request, { ...head, id: "cmpl-x" }, " y", "length", usage(1, 1))).toMatchObject({
      object: "text_completion",
      choices: [{ index: 0, text: " y", logprobs: null, finish_reason: "length" }],
    });
  });

  it("chat chunks: the role first, content deltas, the finish reason last, then the usage with no choices", () => {
    expect(chunkObject(chatRequest, head, { role: true }).choices).toEqual([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
    expect(chunkObject(chatRequest, head, { text: "Bon" })).toMatchObject({ object: "chat.completion.chunk", choices: [{ delta: { content: "Bon" }, finish_reason: null }], usage: null });
    expect(chunkObject(chatRequest, head, { finish: "stop" }).choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    expect(chunkObject(chatRequest, head, { usage: usage(3, 4) })).toEqual({ ...head, object: "chat.completion.chunk", choices: [], system_fingerprint: null, usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    // Without include_usage the chunks carry no usage field at all.
    expect(chunkObject(parseChatRequest(chat({ stream: true }), instruct), head, { text: "x" })).not.toHaveProperty("usage");
  });

  it("ids as OpenAI makes them", () => {
    expect(responseId("chat")).toMatch(/^chatcmpl-[\w-]{16}$/);
    expect(responseId("completions")).toMatch(/^cmpl-[\w-]{16}$/);
    expect(responseId("chat")).not.toBe(responseId("chat"));
  });

  it("a prompt over max_input_len names both numbers", () => {
    const error = promptTooLong(5000, 4096);
    expect([error.status, error.code]).toEqual([400, "context_length_exceeded"]);
    expect(error.message).toContain("maximum prompt length is 4096 tokens (the engine's max_input_len), but the prompt has 5000 tokens");
  });
});

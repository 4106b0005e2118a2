/**
 * The OpenAI API as the gateway speaks it, as pure functions: a request body is checked and
 * turned into one request to the v0.8.0 ensemble, and what the ensemble answered is turned into
 * OpenAI's response and chunk objects. No I/O here, so every rule has a unit test.
 *
 * Written by hand rather than taken from a library: the `openai` package is a client (its types
 * describe what a server sends, not how to check what a client sent), and the mapping to the
 * ensemble's inputs is ours to define.
 */
import { randomBytes } from "node:crypto";
import type { ChatMessage, ConversationRules } from "../model/conversation.ts";
import type { GenerateBody } from "../triton/generate-request.ts";

/** An answer in OpenAI's error shape: `{ "error": { message, type, param, code } }` with its status. */
export class OpenAIError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  constructor(status: number, message: string, options: { type?: string; param?: string | null; code?: string | null } = {}) {
    super(message);
    this.status = status;
    this.type = options.type ?? (status === 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error");
    this.param = options.param ?? null;
    this.code = options.code ?? null;
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const invalid = (param: string, message: string, code: string | null = null) => new OpenAIError(400, message, { param, code });

/** What the served model is and can take. */
export interface ServedModel {
  /** The id clients send as `model`: the Hugging Face repo name. */
  readonly id: string;
  readonly rules: ConversationRules;
  /** The engine's limits (its build_config), in tokens. */
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
}

/** One request to the ensemble, whichever endpoint it came from. */
export interface GenerationRequest {
  readonly endpoint: "chat" | "completions";
  /** The text the model sees (for chat: the messages through the model's chat template). */
  readonly prompt: string;
  readonly maxTokens: number;
  /** Stop strings: none of them is part of the answer. */
  readonly stop: readonly string[];
  readonly stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the usage. */
  readonly includeUsage: boolean;
  readonly sampling: Sampling;
}

/** The ensemble's sampling inputs (names as in its config.pbtxt). */
export interface Sampling {
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  readonly random_seed?: number;
  readonly presence_penalty?: number;
  readonly frequency_penalty?: number;
}

type Body = Record<string, unknown>;

/**
 * Fields the backend cannot honour. They are refused, not ignored: a client that asks for two
 * choices or for tool calls and silently gets one plain answer draws wrong conclusions.
 */
const unsupported: Record<string, (value: unknown) => string | undefined> = {
  n: (v) => (v === undefined || v === null || v === 1 ? undefined : "`n` must be 1: the TensorRT-LLM v0.8.0 ensemble returns one choice per request."),
  best_of: (v) => (v === undefined || v === null || v === 1 ? undefined : "`best_of` must be 1: the TensorRT-LLM v0.8.0 ensemble returns one choice per request."),
  logprobs: (v) => (v === undefined || v === null || v === false ? undefined : "`logprobs` is not supported by this server."),
  top_logprobs: (v) => (v === undefined || v === null ? undefined : "`top_logprobs` is not supported by this server."),
  echo: (v) => (v === undefined || v === null || v === false ? undefined : "`echo` is not supported by this server."),
  suffix: (v) => (v === undefined || v === null ? undefined : "`suffix` (insertion) is not supported by this server."),
  tools: (v) => (v === undefined || v === null || (Array.isArray(v) && v.length === 0) ? undefined : "`tools` (function calling) is not supported by this server."),
  tool_choice: (v) => (v === undefined || v === null || v === "none" ? undefined : "`tool_choice` is not supported by this server: it has no tools."),
  functions: (v) => (v === undefined || v === null ? undefined : "`functions` (function calling) is not supported by this server."),
  function_call: (v) => (v === undefined || v === null || v === "none" ? undefined : "`function_call` is not supported by this server."),
  response_format: (v) =>
    v === undefined || v === null || (typeof v === "object" && (v as { type?: unknown }).type === "text")
      ? undefined
      : "`response_format` other than `{\"type\": \"text\"}` (JSON mode, structured outputs) is not supported by this server.",
  logit_bias: (v) => (v === undefined || v === null || (typeof v === "object" && Object.keys(v).length === 0) ? undefined : "`logit_bias` is not supported by this server."),
  audio: (v) => (v === undefined || v === null ? undefined : "`audio` output is not supported by this server."),
  modalities: (v) => (v === undefined || v === null || (Array.isArray(v) && v.every((m) => m === "text")) ? undefined : "Only the `text` modality is supported by this server."),
  prediction: (v) => (v === undefined || v === null ? undefined : "`prediction` (predicted outputs) is not supported by this server."),
};

/** Fields that change nothing here and that clients send routinely. */
const ignorable = new Set(["user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options", "model"]);

const known = {
  chat: new Set(["messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "stream"]),
  completions: new Set(["prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "stream"]),
};

function checkFields(body: Body, endpoint: "chat" | "completions"): void {
  for (const [field, check] of Object.entries(unsupported)) {
    const problem = check(body[field]);
    if (problem) throw invalid(field, problem, "unsupported_parameter");
  }
  for (const field of Object.keys(body)) {
    if (!(field in unsupported) && !ignorable.has(field) && !known[endpoint].has(field)) {
      throw invalid(field, `Unrecognized request argument supplied: ${field}`, "unsupported_parameter");
    }
  }
}

function number(body: Body, field: string, min: number, max: number): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(field, `\`${field}\` must be a number from ${min} to ${max}, got ${JSON.stringify(value)}.`, "invalid_value");
  }
  return value;
}

function integer(body: Body, field: string, min: number, max: number): number | undefined {
  const value = number(body, field, min, max);
  if (value !== undefined && !Number.isInteger(value)) throw invalid(field, `\`${field}\` must be an integer, got ${value}.`, "invalid_value");
  return value;
}

/** OpenAI's own limit on stop sequences. */
const maxStops = 4;

function stopStrings(body: Body): string[] {
  const value = body.stop;
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) throw invalid("stop", "`stop` must be a string or a list of strings.", "invalid_type");
  if (list.length > maxStops) throw invalid("stop", `\`stop\` takes at most ${maxStops} sequences, got ${list.length}.`, "invalid_value");
  return (list as string[]).filter((s) => s !== "");
}

function sampling(body: Body): Sampling {
  const temperature = number(body, "temperature", 0, 2);
  const topP = number(body, "top_p", 0, 1);
  // random_seed is an uint64 input of the ensemble.
  const seed = integer(body, "seed", 0, Number.MAX_SAFE_INTEGER);
  const presence = number(body, "presence_penalty", -2, 2);
  const frequency = number(body, "frequency_penalty", -2, 2);
  return {
    // Temperature 0 means "always the most likely token" in OpenAI's API; TensorRT-LLM divides
    // the logits by the temperature, so greedy decoding is asked for with top_k 1 instead.
    ...(temperature === 0 ? { top_k: 1 } : temperature === undefined ? {} : { temperature }),
    ...(topP === undefined ? {} : { top_p: topP }),
    ...(seed === undefined ? {} : { random_seed: seed }),
    ...(presence === undefined ? {} : { presence_penalty: presence }),
    ...(frequency === undefined ? {} : { frequency_penalty: frequency }),
  };
}

function streamOptions(body: Body): { stream: boolean; includeUsage: boolean } {
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") throw invalid("stream", "`stream` must be true or false.", "invalid_type");
  const stream = body.stream === true;
  const options = body.stream_options;
  if (options !== undefined && options !== null) {
    if (!stream) throw invalid("stream_options", "`stream_options` is only allowed when `stream` is true.", "invalid_value");
    if (typeof options !== "object") throw invalid("stream_options", "`stream_options` must be an object.", "invalid_type");
  }
  return { stream, includeUsage: stream && (options as { include_usage?: unknown } | undefined)?.include_usage === true };
}

function maxTokens(body: Body, model: ServedModel, fields: readonly string[]): number {
  let chosen: { field: string; value: number } | undefined;
  for (const field of fields) {
    const value = integer(body, field, 1, Number.MAX_SAFE_INTEGER);
    if (value !== undefined) chosen ??= { field, value };
  }
  if (chosen === undefined) return model.maxOutputLen;
  if (chosen.value > model.maxOutputLen) {
    throw invalid(chosen.field, `\`${chosen.field}\` is ${chosen.value}, but this engine generates at most ${model.maxOutputLen} tokens per request (its max_output_len).`, "invalid_value");
  }
  return chosen.value;
}

/** The text of a message's content: a string, or OpenAI's list of text parts. */
function messageText(content: unknown, index: number): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) => {
        const p = part as { type?: unknown; text?: unknown };
        if (p?.type === "text" && typeof p.text === "string") return p.text;
        throw invalid(`messages[${index}].content`, `Only text content parts are supported by this server, got ${JSON.stringify(p?.type ?? null)}.`, "unsupported_parameter");
      })
      .join("");
  }
  throw invalid(`messages[${index}].content`, "A message's `content` must be a string or a list of text parts.", "invalid_type");
}

function messages(body: Body): ChatMessage[] {
  const list = body.messages;
  if (!Array.isArray(list) || list.length === 0) throw invalid("messages", "`messages` must be a non-empty list of messages.", list === undefined ? "missing_required_parameter" : "invalid_type");
  return list.map((m: unknown, index) => {
    const message = m as { role?: unknown; content?: unknown };
    // OpenAI's newer models call the system prompt "developer"; for Llama 3 it is the system turn.
    const role = message?.role === "developer" ? "system" : message?.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw invalid(`messages[${index}].role`, `Messages with role ${JSON.stringify(message?.role ?? null)} are not supported by this server (system, developer, user and assistant are).`, "unsupported_parameter");
    }
    return { role, content: messageText(message.content, index) };
  });
}

export function parseChatRequest(body: unknown, model: ServedModel): GenerationRequest {
  const b = object(body);
  checkFields(b, "chat");
  checkModel(b, model);
  const chat = messages(b);
  if (model.rules.template === "none") {
    throw invalid("messages", `${model.id} is a base model (its tokenizer_config.json has no chat_template): use /v1/completions with a prompt.`, "unsupported_model");
  }
  let prompt: string;
  try {
    prompt = model.rules.render(chat);
  } catch (error) {
    throw invalid("messages", (error as Error).message, "invalid_value");
  }
  return { endpoint: "chat", prompt, maxTokens: maxTokens(b, model, ["max_completion_tokens", "max_tokens"]), stop: stopStrings(b), ...streamOptions(b), sampling: sampling(b) };
}

export function parseCompletionRequest(body: unknown, model: ServedModel): GenerationRequest {
  const b = object(body);
  checkFields(b, "completions");
  checkModel(b, model);
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") prompt = prompt[0];
  if (Array.isArray(prompt) && prompt.every((p) => typeof p === "string")) {
    throw invalid("prompt", "Only one prompt per request is supported by this server: send the prompts as separate requests.", "unsupported_parameter");
  }
  if (typeof prompt !== "string") throw invalid("prompt", "`prompt` must be a string (token arrays are not supported by this server).", prompt === undefined ? "missing_required_parameter" : "invalid_type");
  return { endpoint: "completions", prompt, maxTokens: maxTokens(b, model, ["max_tokens"]), stop: stopStrings(b), ...streamOptions(b), sampling: sampling(b) };
}

function object(body: unknown): Body {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new OpenAIError(400, "The request body must be a JSON object.");
  return body as Body;
}

function checkModel(body: Body, model: ServedModel): void {
  if (typeof body.model !== "string" || body.model === "") throw invalid("model", "`model` is required: send the served model's id (GET /v1/models lists it).", "missing_required_parameter");
  if (body.model !== model.id) {
    throw new OpenAIError(404, `The model \`${body.model}\` does not exist: this server serves \`${model.id}\`.`, { param: "model", code: "model_not_found" });
  }
}

/** The prompt is too long for the engine: said before Triton sees it, with both numbers. */
export function promptTooLong(promptTokens: number, maxInputLen: number): OpenAIError {
  return invalid(
    "messages",
    `This model's maximum prompt length is ${maxInputLen} tokens (the engine's max_input_len), but the prompt has ${promptTokens} tokens. Shorten the prompt or the conversation.`,
    "context_length_exceeded",
  );
}

/**
 * The stop strings as the v0.8.0 preprocessing model reads its `stop_words` input: the first
 * string of the request, split by Python's csv reader. So they go as one CSV line, each quoted
 * (a comma or a quote in a stop string stays part of it).
 */
export function stopWordsCsv(stops: readonly string[]): string {
  return stops.map((s) => `"${s.replace(/"/g, '""')}"`).join(",");
}

export interface TritonRequest extends GenerateBody {
  readonly stop_words?: string[];
  readonly random_seed?: number;
  readonly presence_penalty?: number;
  readonly frequency_penalty?: number;
}

export function tritonBody(request: GenerationRequest, endId: number, stream: boolean): TritonRequest {
  return {
    text_input: request.prompt,
    max_tokens: request.maxTokens,
    end_id: endId,
    ...request.sampling,
    // Sent to the engine too, so that it stops generating there; the gateway still cuts the text
    // itself, since the engine matches token ids and a stop string may be tokenized differently
    // in context than alone (and TensorRT-LLM leaves the stop word in its output).
    ...(request.stop.length > 0 ? { stop_words: [stopWordsCsv(request.stop)] } : {}),
    ...(stream ? { stream: true } : {}),
  };
}

/**
 * Cuts generated text at the first stop string, as it arrives piece by piece: text that could be
 * the beginning of a stop string is held back until the next piece says whether it is.
 */
export class StopScanner {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The text that can be sent now (all of it once stopped: nothing after the stop string). */
  push(piece: string): string {
    if (this.#stopped) return "";
    const text = this.#held + piece;
    let cut: number | undefined;
    for (const stop of this.#stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut === undefined || at < cut)) cut = at;
    }
    if (cut !== undefined) {
      this.#stopped = true;
      this.#held = "";
      return text.slice(0, cut);
    }
    let keep = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > keep; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.#held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** At the end of generation: what was held back was not a stop string after all. */
  end(): string {
    const rest = this.#held;
    this.#held = "";
    return rest;
  }
}

export type FinishReason = "stop" | "length";

/**
 * Why generation ended. Triton's answer does not say, so it is inferred: a stop string was hit
 * (stop), or the engine produced as many tokens as allowed (length), or else the model ended its
 * turn with its end token (stop). `generated` is the number of tokens the engine produced: one
 * per streamed response of the decoupled model.
 */
export function finishReason(p: { readonly stoppedByString: boolean; readonly generated: number; readonly maxTokens: number }): FinishReason {
  if (p.stoppedByString) return "stop";
  return p.generated >= p.maxTokens ? "length" : "stop";
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** An id as OpenAI makes them: a prefix and random characters. */
export function responseId(endpoint: GenerationRequest["endpoint"]): string {
  return `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("base64url")}`;
}

/** What every object of one response shares. */
export interface ResponseHead {
  readonly id: string;
  /** Unix seconds, as OpenAI sends `created`. */
  readonly created: number;
  readonly model: string;
}

export function completionObject(request: GenerationRequest, head: ResponseHead, text: string, finish: FinishReason, u: Usage) {
  if (request.endpoint === "chat") {
    return {
      ...head,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finish }],
      usage: u,
      system_fingerprint: null,
    };
  }
  return {
    ...head,
    object: "text_completion",
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    usage: u,
    system_fingerprint: null,
  };
}

/**
 * One stream chunk. Chat: the first carries the role, the next ones the content deltas, the last
 * an empty delta and the finish reason. With include_usage every chunk has `usage: null` and one
 * more chunk with no choices carries the usage (OpenAI's shape).
 */
export function chunkObject(
  request: GenerationRequest,
  head: ResponseHead,
  part: { readonly role?: true; readonly text?: string; readonly finish?: FinishReason; readonly usage?: Usage },
) {
  const usageField = request.includeUsage ? { usage: part.usage ?? null } : {};
  if (part.usage) {
    return { ...head, object: request.endpoint === "chat" ? "chat.completion.chunk" : "text_completion", choices: [], system_fingerprint: null, ...usageField };
  }
  const finish = part.finish ?? null;
  if (request.endpoint === "chat") {
    const delta = part.role ? { role: "assistant", content: part.text ?? "" } : part.text === undefined ? {} : { content: part.text };
    return { ...head, object: "chat.completion.chunk", choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], system_fingerprint: null, ...usageField };
  }
  return { ...head, object: "text_completion", choices: [{ index: 0, text: part.text ?? "", logprobs: null, finish_reason: finish }], system_fingerprint: null, ...usageField };
}

export function modelList(model: ServedModel, created: number) {
  return { object: "list", data: [{ id: model.id, object: "model", created, owned_by: "llama3-trt" }] };
}

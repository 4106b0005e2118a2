import { InterruptedError, UsageError } from "../../common/errors.ts";
import { gatewayUrl, settingsUrls } from "../../server/urls.ts";
import { askOpenAI } from "../../ask/openai.ts";
import { askConversation } from "../../ask/conversation.ts";
import { ConversationError, type ConversationRules } from "../../model/conversation.ts";
import { notStreaming, TritonClient } from "../../triton/client.ts";
import { generateBody, type AskRequest, type GenerateBody } from "../../triton/generate-request.ts";
import { handleInterrupts } from "../interrupts.ts";
import { waitFor } from "../spinner.ts";
import type { Settings } from "../../config/schema.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

interface AskOptions {
  local?: boolean;
  raw?: boolean;
  system?: string;
  stream?: boolean;
  maxTokens: number | string;
  temperature?: number;
  topP?: number;
  topK?: number;
  url?: string;
  openai?: boolean;
}

/** One prompt, one answer: from the served model, or with `--local` from run.py on the engine. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const o = env.options as unknown as AskOptions;
  const out = env.output;
  const rules = await conversationOrUsageError(settings);
  const request: AskRequest = {
    prompt: env.args[0] ?? "",
    rules,
    system: o.system,
    raw: o.raw === true,
    maxTokens: Number(o.maxTokens),
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    stream: o.stream === true,
  };
  if (request.prompt.trim() === "") throw new UsageError("The prompt is empty: `llama3-trt ask \"your question\"`.");
  if (o.system !== undefined && (request.raw || rules.template === "none")) {
    throw new UsageError(`--system needs the chat template, which ${request.raw ? "--raw turns off" : `${settings.model} does not have (a base model: its tokenizer_config.json has no chat_template)`}.`);
  }
  using interrupts = handleInterrupts(out, async () => {});

  if (o.local) {
    if (o.url !== undefined) throw new UsageError("--local runs without a server: drop `--url`.");
    if (o.openai) throw new UsageError("--local runs without a server, --openai through its gateway: choose one.");
    if (request.stream) throw new UsageError("--local prints the answer when run.py ends: drop `--stream`.");
    const { answer, spec } = await askLocally(env, settings, request, interrupts.signal);
    if (out.json) out.document({ local: true, model: settings.model, cmd: spec.cmd, answer });
    else out.result(answer);
    return;
  }

  if (o.openai) {
    const baseUrl = (o.url ?? gatewayUrl(settings.host, settings.openaiPort === 0 ? 9000 : settings.openaiPort)).replace(/\/+(v1\/?)?$/, "");
    if (!/^https?:\/\/[^\s/]+/.test(baseUrl)) throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(o.url)}.`);
    const answer = await withWaiting(
      out,
      `asking ${settings.model} through the OpenAI API at ${baseUrl}/v1`,
      interrupts.signal,
      (onPiece) =>
        askOpenAI(
          { baseUrl, apiKey: settings.apiKey, model: settings.model, prompt: request.prompt, system: request.system, raw: request.raw, maxTokens: request.maxTokens, temperature: request.temperature, topP: request.topP, stream: request.stream },
          interrupts.signal,
          onPiece,
        ),
      (piece) => {
        if (!out.json) out.partial(piece);
      },
    );
    if (request.stream && !out.json) out.partial("\n");
    if (out.json) out.document({ url: `${baseUrl}/v1`, api: "openai", model: settings.model, answer: answer.text, finishReason: answer.finishReason, usage: answer.usage });
    else if (!request.stream) out.result(answer.text);
    return;
  }

  const url = o.url ?? settingsUrls(settings).http;
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}.`);
  const client = new TritonClient(url);
  const body = generateBody(request);
  const text = await withWaiting(
    out,
    `asking ${settings.model} at ${client.baseUrl}`,
    interrupts.signal,
    (onPiece) => send(client, body, request.stream, interrupts.signal, onPiece),
    (piece) => out.partial(piece),
  );
  if (request.stream && !out.json) out.partial("\n");
  if (out.json) out.document({ url: client.baseUrl, model: settings.model, request: body, answer: text.trim() });
  else if (!request.stream) out.result(text.trim());
}

/** One request: the whole answer, or (`stream`) its pieces to `onPiece` as they arrive. */
/**
 * One request with the "asking …" wait shown until its first piece arrives (or it ends); Ctrl-C
 * during it is an interruption (exit 130), the same for both ways of asking.
 */
async function withWaiting<T>(
  out: CommandEnv["output"],
  label: string,
  signal: AbortSignal,
  ask: (onPiece: (piece: string) => void) => Promise<T>,
  onPiece: (piece: string) => void,
): Promise<T> {
  const waiting = await waitFor(out, label);
  try {
    return await ask((piece) => {
      waiting.stop();
      onPiece(piece);
    });
  } catch (error) {
    if (signal.aborted) throw new InterruptedError("interrupted; the request was cancelled", { cause: error });
    throw error;
  } finally {
    waiting.stop();
  }
}

async function send(client: TritonClient, body: GenerateBody, stream: boolean, signal: AbortSignal, onPiece: (piece: string) => void): Promise<string> {
  if (!stream) return (await client.generate(body, signal)).text;
  // Ask the server first: a model that cannot stream would otherwise fail mid-request.
  if ((await client.decoupled("tensorrt_llm").catch(() => undefined)) === false) throw notStreaming();
  let started = false;
  const answer = await client.generateStream(body, signal, (piece) => {
    // The answer's leading whitespace is dropped, as for the non-streamed answer.
    const shown = started ? piece : piece.trimStart();
    if (shown !== "") started = true;
    onPiece(shown);
  });
  return answer.text;
}

/**
 * `ask --local`, loaded only when asked for: only here is Docker needed, a remote `ask` never
 * loads it. (Outside `run`: tsc leaves the `.ts` of an import() inside a `using` scope as it is.)
 */
async function askLocally(env: CommandEnv, settings: Settings, request: AskRequest, signal: AbortSignal) {
  const { askLocal } = await import("../../ask/local.ts");
  const { Session } = await import("../../pipeline/session.ts");
  const { version } = await import("../version.ts");
  return askLocal(new Session({ settings, env: env.env, signal, toolVersion: version }), request, signal);
}

/** The model's conversation rules; a broken tokenizer_config.json is the user's to fix (exit 2). */
async function conversationOrUsageError(settings: Settings): Promise<ConversationRules> {
  try {
    return await askConversation(settings);
  } catch (error) {
    if (error instanceof ConversationError) throw new UsageError(`${settings.model}: ${error.message}`, { cause: error });
    throw error;
  }
}

import { FailedError } from "../common/errors.ts";
import { SseParser } from "../triton/sse.ts";
import { connectionProblem } from "../triton/wait.ts";

/** What `ask --openai` sends: one user message (and a system prompt) or, with --raw, a completion prompt. */
export interface OpenAIAsk {
  readonly baseUrl: string;
  readonly apiKey: string | null;
  readonly model: string;
  readonly prompt: string;
  readonly system?: string | undefined;
  readonly raw: boolean;
  readonly maxTokens: number;
  readonly temperature?: number | undefined;
  readonly topP?: number | undefined;
  readonly stream: boolean;
}

export interface OpenAIAnswer {
  readonly text: string;
  readonly finishReason: string | null;
  readonly usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

/**
 * `ask --openai`: the same question through the OpenAI-compatible gateway, so its answer can be
 * compared with Triton's own generate endpoint. Plain fetch: the `openai` package is for the
 * tests and for users; the CLI needs two requests and Server-Sent Events it already parses.
 */
export async function askOpenAI(ask: OpenAIAsk, signal: AbortSignal, onPiece: (text: string) => void): Promise<OpenAIAnswer> {
  const chat = !ask.raw;
  const body = {
    model: ask.model,
    ...(chat
      ? { messages: [...(ask.system !== undefined && ask.system.trim() !== "" ? [{ role: "system", content: ask.system }] : []), { role: "user", content: ask.prompt }] }
      : { prompt: ask.prompt }),
    max_tokens: ask.maxTokens,
    ...(ask.temperature === undefined ? {} : { temperature: ask.temperature }),
    ...(ask.topP === undefined ? {} : { top_p: ask.topP }),
    ...(ask.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
  const url = `${ask.baseUrl}/v1/${chat ? "chat/completions" : "completions"}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(ask.apiKey ? { authorization: `Bearer ${ask.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new FailedError(`No OpenAI gateway answers at ${ask.baseUrl} (${connectionProblem(error)}). Start it with \`llama3-trt serve\` (it runs on --openai-port, 9000 by default), or point \`--url\` at one.`, {
      cause: error,
    });
  }
  if (response.status !== 200) {
    const answer = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
    const hint = response.status === 401 ? " Set LLAMA3_TRT_API_KEY (or --api-key) to the gateway's key." : "";
    throw new FailedError(`The gateway refused the request (HTTP ${response.status}): ${answer?.error?.message ?? response.statusText}${hint}`);
  }
  const pick = (choice: { message?: { content?: string }; delta?: { content?: string }; text?: string } | undefined) => choice?.message?.content ?? choice?.delta?.content ?? choice?.text ?? "";
  if (!ask.stream) {
    const answer = (await response.json()) as { choices: { finish_reason: string | null }[]; usage: OpenAIAnswer["usage"] };
    const text = pick(answer.choices[0] as Parameters<typeof pick>[0]);
    return { text, finishReason: answer.choices[0]?.finish_reason ?? null, usage: answer.usage ?? null };
  }
  const parser = new SseParser();
  const decoder = new TextDecoder();
  let text = "";
  let finishReason: string | null = null;
  let usage: OpenAIAnswer["usage"] = null;
  const handle = (data: string) => {
    if (data === "[DONE]") return;
    const chunk = JSON.parse(data) as { error?: { message?: string }; choices?: { finish_reason: string | null }[]; usage?: OpenAIAnswer["usage"] };
    if (chunk.error) throw new FailedError(`The gateway reported an error in the stream: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
    const choice = chunk.choices?.[0];
    if (choice) {
      const piece = pick(choice as Parameters<typeof pick>[0]);
      text += piece;
      if (piece !== "") onPiece(piece);
      finishReason = choice.finish_reason ?? finishReason;
    }
    if (chunk.usage) usage = chunk.usage;
  };
  for await (const chunk of response.body ?? []) {
    for (const data of parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))) handle(data);
  }
  for (const data of parser.end()) handle(data);
  return { text, finishReason, usage };
}

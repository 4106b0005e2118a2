/**
 * The two APIs `bench` loads: Triton's generate_stream on the ensemble, and an OpenAI-compatible
 * `/v1/chat/completions` with `stream: true`. Both are timed the same way (sse.ts `timedEvents`:
 * the arrival of each event's first byte, performance.now()), so their figures compare. The
 * OpenAI path uses fetch and our SSE reader rather than the `openai` client for that reason: the
 * client hands out parsed chunks, after its own buffering, and retries on its own.
 */
import { FailedError } from "../common/errors.ts";
import { notStreaming, TritonClient, TritonRequestError } from "../triton/client.ts";
import type { GenerateBody } from "../triton/generate-request.ts";
import { timedEvents } from "../triton/sse.ts";
import { connectionProblem } from "../triton/wait.ts";
import type { BenchPrompt } from "./prompts.ts";

/** What one request gave back; the runner adds when it was sent and counts the tokens. */
export interface RequestOutcome {
  readonly sentAt: number;
  /** Arrival times (performance.now()) of the events that carried text. */
  readonly tokenEventsAt: readonly number[];
  /** When the answer ended (its last event, or the end of the body). */
  readonly endedAt?: number;
  readonly text: string;
  /** Token counts the server reported (OpenAI `usage`), when it did. */
  readonly usage?: { readonly promptTokens?: number; readonly completionTokens?: number };
  readonly error?: string;
}

export interface BenchTarget {
  readonly api: "triton" | "openai";
  readonly url: string;
  /** Whether the server can be told to ignore the end token, and what bench does about it. */
  readonly exactOutputLength: { readonly supported: boolean; readonly how: string };
  /** Fails (exit 1) with what to do when the server is not there or cannot serve the load. */
  preflight(signal: AbortSignal): Promise<{ readonly model?: string }>;
  /** Never throws for a failed request: the failure is its outcome (errors are counted, the run goes on). */
  send(prompt: BenchPrompt, signal: AbortSignal): Promise<RequestOutcome>;
}

const unreachable = (url: string, detail: string, api: string) =>
  new FailedError(
    `No server answers at ${url} (${detail}). Start it with \`llama3-trt serve\`, or point \`--url\` at a running ${api === "openai" ? "OpenAI-compatible API" : "Triton server"}.`,
  );

/**
 * Triton's generate_stream on the ensemble, raw prompt text (no chat template: the synthetic
 * prompt is already the model's tokens), `min_length` = `max_tokens` so the answer is exactly
 * `--output-len` tokens: the end token is masked until then (the ensemble's min_length input,
 * what `vllm bench serve` sends TensorRT-LLM for ignore_eos).
 */
export function tritonTarget(url: string, endId: number): BenchTarget {
  const client = new TritonClient(url);
  return {
    api: "triton",
    url: client.baseUrl,
    exactOutputLength: { supported: true, how: "min_length = max_tokens (the end token is masked until --output-len tokens)" },
    async preflight() {
      const ready = await client.ready();
      if (!ready.ok) {
        if (/HTTP \d+/.test(ready.detail)) {
          throw new FailedError(`The server at ${client.baseUrl} is not ready (${ready.detail} from /v2/health/ready). Wait until \`llama3-trt serve\` says it is ready, or see \`llama3-trt logs\`.`);
        }
        throw unreachable(client.baseUrl, ready.detail, "triton");
      }
      if ((await client.decoupled("tensorrt_llm").catch(() => undefined)) === false) {
        throw new FailedError(
          `${notStreaming().message.replace(/, or ask without `--stream`\.$/, ".")} bench measures time to first token and between tokens, which needs a streaming model.`,
        );
      }
      return {};
    },
    async send(prompt, signal) {
      const body: GenerateBody = { text_input: prompt.text, max_tokens: prompt.outputLen, min_length: prompt.outputLen, end_id: endId };
      const tokenEventsAt: number[] = [];
      let text = "";
      const sentAt = performance.now();
      try {
        const answer = await client.generateStream(body, signal, (piece, at) => {
          // GenAI-Perf does not count a response without text as a token.
          if (piece === "") return;
          tokenEventsAt.push(at);
          text += piece;
        });
        return { sentAt, tokenEventsAt, endedAt: tokenEventsAt.at(-1) ?? performance.now(), text: answer.text };
      } catch (error) {
        if (signal.aborted) throw error;
        const message = error instanceof TritonRequestError ? error.message : connectionProblem(error);
        return { sentAt, tokenEventsAt, text, error: message };
      }
    },
  };
}

interface ChatChunk {
  choices?: { delta?: { content?: unknown }; text?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
  error?: { message?: unknown } | string;
}

/**
 * An OpenAI-compatible server (the gateway, vLLM, TGI …): `GET /v1/models` to find the model,
 * then `POST /v1/chat/completions` with `stream: true` and `stream_options.include_usage`, read as
 * Server-Sent Events up to `data: [DONE]`. The OpenAI API has no way to ignore the end token, so
 * `--output-len` is a ceiling there (`max_tokens`): bench says so and reports the real lengths.
 */
export function openAiTarget(url: string, apiKey: string | undefined, model: string | undefined): BenchTarget {
  const base = url.replace(/\/+$/, "").replace(/\/v1$/, "");
  const headers: Record<string, string> = { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };
  let served = model;
  const refusal = async (response: Response): Promise<string> => {
    const text = await response.text().catch(() => "");
    try {
      const parsed = JSON.parse(text) as { error?: { message?: unknown } | string };
      const message = typeof parsed.error === "string" ? parsed.error : parsed.error?.message;
      if (typeof message === "string") return `HTTP ${response.status}: ${message}`;
    } catch {
      // Not JSON: quote what came.
    }
    return `HTTP ${response.status}${text.trim() ? `: ${text.trim().slice(0, 300)}` : ""}`;
  };
  return {
    api: "openai",
    url: base,
    exactOutputLength: { supported: false, how: "none: the OpenAI API has no ignore-eos, so --output-len is max_tokens, a ceiling; answers may end sooner" },
    async preflight(signal) {
      let response: Response;
      try {
        response = await fetch(`${base}/v1/models`, { headers, signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) });
      } catch (error) {
        if (signal.aborted) throw error;
        throw unreachable(base, connectionProblem(error), "openai");
      }
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel();
        throw new FailedError(`The API at ${base} refused the key (HTTP ${response.status}). Set the gateway's key in LLAMA3_TRT_API_KEY (or \`api_key\` in llama3-trt.yaml).`);
      }
      if (response.status !== 200) throw new FailedError(`The API at ${base} does not list its models (${await refusal(response)}). Is \`--url\` an OpenAI-compatible API? For Triton use \`--api triton\`.`);
      const list = (await response.json().catch(() => undefined)) as { data?: { id?: unknown }[] } | undefined;
      const ids = (list?.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
      if (served === undefined) served = ids[0];
      if (served === undefined) throw new FailedError(`The API at ${base} serves no model (GET /v1/models listed none).`);
      return { model: served };
    },
    async send(prompt, signal) {
      const tokenEventsAt: number[] = [];
      let text = "";
      let usage: RequestOutcome["usage"];
      let endedAt: number | undefined;
      const sentAt = performance.now();
      const failed = (error: string) => ({ sentAt, tokenEventsAt, text, error });
      let response: Response;
      try {
        response = await fetch(`${base}/v1/chat/completions`, {
          method: "POST",
          headers,
          signal,
          body: JSON.stringify({
            model: served,
            messages: [{ role: "user", content: prompt.text }],
            max_tokens: prompt.outputLen,
            stream: true,
            stream_options: { include_usage: true },
          }),
        });
      } catch (error) {
        if (signal.aborted) throw error;
        return failed(`No answer from ${base} (${connectionProblem(error)})`);
      }
      if (response.status !== 200) return failed(`The API refused the request (${await refusal(response)})`);
      if (!response.body) return failed("The API answered with no body");
      try {
        for await (const { data, at } of timedEvents(response.body)) {
          endedAt = at;
          if (data.trim() === "[DONE]") break;
          let chunk: ChatChunk;
          try {
            chunk = JSON.parse(data) as ChatChunk;
          } catch {
            return failed(`The API sent an event that is not JSON: ${data.slice(0, 200)}`);
          }
          if (chunk.error !== undefined) {
            const message = typeof chunk.error === "string" ? chunk.error : String(chunk.error.message ?? JSON.stringify(chunk.error));
            return failed(`The API reported an error in the stream: ${message}`);
          }
          const choice = chunk.choices?.[0];
          const piece = choice?.delta?.content ?? choice?.text;
          if (typeof piece === "string" && piece !== "") {
            tokenEventsAt.push(at);
            text += piece;
          }
          if (chunk.usage) {
            const number = (v: unknown) => (typeof v === "number" ? v : undefined);
            usage = { promptTokens: number(chunk.usage.prompt_tokens), completionTokens: number(chunk.usage.completion_tokens) };
          }
        }
      } catch (error) {
        if (signal.aborted) throw error;
        return failed(`The stream from ${base} broke off (${connectionProblem(error)})`);
      }
      return { sentAt, tokenEventsAt, endedAt: endedAt ?? performance.now(), text, ...(usage ? { usage } : {}) };
    },
  };
}

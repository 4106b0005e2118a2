import { FailedError } from "../common/errors.ts";
import type { GenerateBody } from "./generate-request.ts";
import { timedEvents } from "./sse.ts";
import { connectionProblem, httpReadyProbe, type ProbeResult } from "./wait.ts";

/** A request to the server failed; `kind` says how, for `--json` and for tests. */
export class TritonRequestError extends FailedError {
  override readonly kind: "server-unreachable" | "model-not-ready" | "request-refused" | "not-streaming" | "stream-error";
  constructor(kind: TritonRequestError["kind"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

export interface GenerateAnswer {
  readonly text: string;
  /** Events received (1 for /generate). */
  readonly events: number;
}

/** The model `ask` talks to: the ensemble (preprocessing → tensorrt_llm → postprocessing). */
export const generateModel = "ensemble";

/**
 * The few calls `ask` and `serve` make to Triton's HTTP API: health, a model's readiness and
 * config, and the generate extension (one JSON answer, or Server-Sent Events).
 */
export class TritonClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  ready(): Promise<ProbeResult> {
    return httpReadyProbe(this.baseUrl)();
  }

  async modelReady(name: string): Promise<boolean> {
    const response = await this.#fetch(`/v2/models/${name}/ready`, {});
    await response.body?.cancel();
    return response.status === 200;
  }

  /** Whether a model is deployed decoupled (can stream), or undefined when the server does not say. */
  async decoupled(name: string): Promise<boolean | undefined> {
    const response = await this.#fetch(`/v2/models/${name}/config`, {});
    if (response.status !== 200) {
      await response.body?.cancel();
      return undefined;
    }
    const config = (await response.json().catch(() => undefined)) as { model_transaction_policy?: { decoupled?: unknown } } | undefined;
    const value = config?.model_transaction_policy?.decoupled;
    // Protobuf's JSON leaves out fields at their default: no policy means not decoupled.
    return config === undefined ? undefined : value === true;
  }

  async generate(body: GenerateBody, signal: AbortSignal): Promise<GenerateAnswer> {
    const response = await this.#post(`/v2/models/${generateModel}/generate`, body, signal);
    if (response.status !== 200) throw await this.#refusal(response);
    const answer = (await response.json()) as { text_output?: unknown; error?: unknown };
    if (typeof answer.error === "string") throw new TritonRequestError("request-refused", `The server refused the request: ${answer.error}`);
    if (typeof answer.text_output !== "string") {
      throw new TritonRequestError("request-refused", `The server's answer has no text_output: ${JSON.stringify(answer).slice(0, 200)}`);
    }
    return { text: answer.text_output, events: 1 };
  }

  /**
   * generate_stream: calls `onText` with each piece as it arrives, and when its first byte came
   * (performance.now()). An error may come as an event of a stream that already answered 200
   * (the generate extension's rule): it fails the call after the pieces before it were handed out.
   */
  async generateStream(body: GenerateBody, signal: AbortSignal, onText: (text: string, receivedAt: number) => void): Promise<GenerateAnswer> {
    const response = await this.#post(`/v2/models/${generateModel}/generate_stream`, { ...body, stream: true }, signal);
    if (response.status !== 200) throw await this.#refusal(response);
    if (!response.body) throw new TritonRequestError("request-refused", "The server answered the stream with no body.");
    let text = "";
    let events = 0;
    try {
      for await (const { data, at } of timedEvents(response.body)) {
        let event: { text_output?: unknown; error?: unknown };
        try {
          event = JSON.parse(data) as typeof event;
        } catch {
          throw new TritonRequestError("stream-error", `The server sent an event that is not JSON: ${data.slice(0, 200)}`);
        }
        events++;
        if (typeof event.error === "string") throw streamError(event.error, text);
        if (typeof event.text_output === "string") {
          text += event.text_output;
          onText(event.text_output, at);
        }
      }
    } catch (error) {
      if (error instanceof TritonRequestError || signal.aborted) throw error;
      throw new TritonRequestError("stream-error", `The stream from ${this.baseUrl} broke off: ${connectionProblem(error)}`, { cause: error });
    }
    return { text, events };
  }

  async #post(path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    return this.#fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
  }

  async #fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, init);
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new TritonRequestError(
        "server-unreachable",
        `No server answers at ${this.baseUrl} (${connectionProblem(error)}). Start it with \`llama3-trt serve\`, or point \`--url\` (or \`--host\`/\`--port\`) at a running one.`,
        { cause: error },
      );
    }
  }

  /** Turns an error answer into what happened and what to do. */
  async #refusal(response: Response): Promise<TritonRequestError> {
    const text = await response.text().catch(() => "");
    let message = text.trim();
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed.error === "string") message = parsed.error;
    } catch {
      // Not JSON: quote what came.
    }
    if (/decoupled/i.test(message)) return notStreaming(message);
    const ready = await this.modelReady(generateModel).catch(() => true);
    if (!ready) {
      return new TritonRequestError(
        "model-not-ready",
        `The server at ${this.baseUrl} answers, but the model is not ready (${message || `HTTP ${response.status}`}). Wait until \`llama3-trt serve\` says it is ready, or see \`llama3-trt logs\`.`,
      );
    }
    return new TritonRequestError("request-refused", `The server refused the request (HTTP ${response.status}): ${message.slice(0, 2_000)}`);
  }
}

export function notStreaming(detail?: string): TritonRequestError {
  return new TritonRequestError(
    "not-streaming",
    "This deployment cannot stream: its tensorrt_llm model is not decoupled" +
      `${detail ? ` (the server says: ${detail})` : ""}. Rebuild it with \`llama3-trt build --streaming true\` and restart the server, or ask without \`--stream\`.`,
  );
}

/** An error reported inside a stream: one that says the model is not decoupled says what to do. */
export function streamError(message: string, received: string): TritonRequestError {
  if (/decoupled/i.test(message)) return notStreaming(message);
  const after = received === "" ? "before any text" : `after ${received.length} characters`;
  return new TritonRequestError("stream-error", `The server reported an error in the stream ${after}: ${message}`);
}

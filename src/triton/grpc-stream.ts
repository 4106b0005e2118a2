/**
 * Streaming generation over Triton's gRPC `ModelStreamInfer`, for the one thing its HTTP API
 * cannot do in Triton 24.03: stop a request that is still generating.
 *
 * Over HTTP, a client that goes away leaves the TensorRT-LLM v0.8.0 backend generating to the end,
 * holding a batch slot: 24.03 cancels only gRPC and C API requests, and its generate endpoint has
 * no request id (that came with 24.08). The v0.8.0 backend stops a request when it gets one with
 * the same request id and its `stop` input true; over gRPC a request carries an id, and Triton's
 * ensemble hands the id of the top-level request to each of its steps. So every stream goes to the
 * ensemble with an id of its own, and stopping it is a second request, to `tensorrt_llm`, with that
 * id and `stop: true`.
 */
import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import type * as Grpc from "@grpc/grpc-js";
import type { GenerateAnswer } from "./client.ts";
import type { GenerateBody } from "./generate-request.ts";
import { TritonRequestError, generateModel, streamError } from "./client.ts";
import { grpcServiceDescriptor, type InferInputTensor, type ModelInferRequest, type ModelInferResponse, type ModelStreamInferResponse } from "./grpc-protocol.ts";

/** The model that owns the engine, and so the one a stop request goes to. */
export const engineModel = "tensorrt_llm";

/** Without it, Triton does not say which response of a decoupled model is the last one. */
const finalFlagRequest = { triton_enable_empty_final_response: { bool_param: true } } as const;

/** Datatypes of the v0.8.0 ensemble's inputs (all_models/inflight_batcher_llm/ensemble/config.pbtxt). */
const ensembleInputTypes: Readonly<Record<string, "BYTES" | "INT32" | "FP32" | "UINT64" | "BOOL">> = {
  text_input: "BYTES",
  max_tokens: "INT32",
  bad_words: "BYTES",
  stop_words: "BYTES",
  end_id: "INT32",
  pad_id: "INT32",
  top_k: "INT32",
  top_p: "FP32",
  temperature: "FP32",
  length_penalty: "FP32",
  repetition_penalty: "FP32",
  min_length: "INT32",
  presence_penalty: "FP32",
  frequency_penalty: "FP32",
  random_seed: "UINT64",
  return_log_probs: "BOOL",
  beam_width: "INT32",
  stream: "BOOL",
};

type InputValue = string | number | boolean | readonly string[];

/** One input tensor of a request of batch 1: shape [1, elements]. */
function tensor(name: string, datatype: string, value: InputValue): InferInputTensor {
  const values = (Array.isArray(value) ? value : [value]) as readonly (string | number | boolean)[];
  const contents =
    datatype === "BYTES"
      ? { bytes_contents: values.map((v) => Buffer.from(String(v), "utf8")) }
      : datatype === "BOOL"
        ? { bool_contents: values.map(Boolean) }
        : datatype === "FP32"
          ? { fp32_contents: values.map(Number) }
          : datatype === "UINT64"
            ? { uint64_contents: values.map((v) => String(v)) }
            : { int_contents: values.map(Number) };
  return { name, datatype, shape: [1, values.length], contents };
}

/** The ensemble request for a generate body: each field an input of its own datatype. */
export function ensembleRequest(id: string, body: GenerateBody): ModelInferRequest {
  const inputs = (Object.entries(body) as [string, InputValue | undefined][])
    .filter((entry): entry is [string, InputValue] => entry[1] !== undefined)
    .map(([name, value]) => {
      const datatype = ensembleInputTypes[name];
      if (datatype === undefined) throw new Error(`${name} is not an input of the v0.8.0 ensemble`);
      return tensor(name, datatype, value);
    });
  return { model_name: generateModel, id, parameters: finalFlagRequest, inputs };
}

/**
 * The request that stops request `id`. Triton checks a request's required inputs before the
 * backend sees it, so the three that tensorrt_llm requires come along with a token of nothing.
 */
export function stopRequest(id: string): ModelInferRequest {
  return {
    model_name: engineModel,
    id,
    parameters: finalFlagRequest,
    inputs: [tensor("input_ids", "INT32", 0), tensor("input_lengths", "INT32", 1), tensor("request_output_len", "INT32", 1), tensor("stop", "BOOL", true)],
  };
}

/** The text of a response: its `text_output`, which Triton's gRPC frontend sends as raw bytes. */
export function textOutput(response: ModelInferResponse): string | undefined {
  const outputs = response.outputs ?? [];
  const at = outputs.findIndex((o) => o.name === "text_output");
  const raw = at >= 0 ? response.raw_output_contents?.[at] : undefined;
  if (raw === undefined) return undefined;
  // BYTES elements, each a 4-byte little-endian length and its bytes.
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let text = "";
  for (let offset = 0; offset + 4 <= bytes.length; ) {
    const length = bytes.readUInt32LE(offset);
    text += bytes.toString("utf8", offset + 4, offset + 4 + length);
    offset += 4 + length;
  }
  return text;
}

export function isFinal(response: ModelInferResponse): boolean {
  return response.parameters?.triton_final_response?.bool_param === true;
}

/** Ids unique to this process and, from a random start, unlikely to meet another gateway's. */
let nextId = BigInt(randomInt(1, 2 ** 31)) << 20n;
export function newRequestId(): string {
  nextId += 1n;
  return nextId.toString();
}

/** How a stopped stream ended: the engine stopped it, it had ended already, or the stop failed. */
export class StreamStopped extends Error {
  readonly requestId: string;
  readonly outcome: "stopped" | "had ended" | "stop failed";
  constructor(requestId: string, outcome: StreamStopped["outcome"], detail?: string) {
    super(`Triton request ${requestId} ${outcome === "stopped" ? "stopped" : outcome === "had ended" ? "had ended already" : `could not be stopped: ${detail ?? "no answer"}`}`);
    this.requestId = requestId;
    this.outcome = outcome;
  }
}

/** How long a stop may take: the engine stops at its next token, so this is only a bound. */
const stopTimeoutMs = 5_000;

type StreamCall = Grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>;
interface InferenceClient extends Grpc.Client {
  ModelStreamInfer(): StreamCall;
}

/** gRPC is loaded by the gateway only: no other command pays for it. */
const requireHere = createRequire(import.meta.url);

export class TritonStreamClient {
  /** host:port of Triton's gRPC endpoint. */
  readonly address: string;
  readonly #client: InferenceClient;
  readonly #grpc: typeof Grpc;

  constructor(address: string) {
    this.address = address;
    this.#grpc = requireHere("@grpc/grpc-js") as typeof Grpc;
    const loader = requireHere("@grpc/proto-loader") as typeof import("@grpc/proto-loader");
    const definition = loader.fromJSON(grpcServiceDescriptor as Parameters<typeof loader.fromJSON>[0], { keepCase: true, longs: String, defaults: false, oneofs: true });
    const inference = this.#grpc.loadPackageDefinition(definition).inference as unknown as {
      GRPCInferenceService: new (address: string, credentials: Grpc.ChannelCredentials) => InferenceClient;
    };
    this.#client = new inference.GRPCInferenceService(address, this.#grpc.credentials.createInsecure());
  }

  close(): void {
    this.#client.close();
  }

  /** Whether Triton's gRPC endpoint accepts a connection (an HTTP/2 handshake) within `timeoutMs`. */
  reachable(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => this.#client.waitForReady(Date.now() + timeoutMs, (error) => resolve(error === undefined || error === null)));
  }

  /**
   * Streams the ensemble's answer to `body`, calling `onText` with each piece. When `signal`
   * aborts, the engine is told to stop the request, and the call fails with a StreamStopped
   * saying whether it did.
   */
  generateStream(body: GenerateBody, signal: AbortSignal, onText: (text: string, receivedAt: number) => void): Promise<GenerateAnswer> {
    const id = newRequestId();
    const request = ensembleRequest(id, { ...body, stream: true });
    return new Promise<GenerateAnswer>((resolve, reject) => {
      const call = this.#client.ModelStreamInfer();
      let text = "";
      let events = 0;
      let stopping: Promise<StreamStopped> | undefined;
      let settled = false;
      let stopTimer: NodeJS.Timeout | undefined;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        clearTimeout(stopTimer);
        call.end();
        outcome();
      };
      const failStopped = () =>
        void stopping?.then((stopped) =>
          settle(() => {
            // Over for us, whatever Triton still sends on it.
            call.cancel();
            reject(stopped);
          }),
        );

      call.on("data", (message: ModelStreamInferResponse) => {
        if (settled) return;
        const response = message.infer_response ?? {};
        if (message.error_message) {
          if (stopping) return failStopped();
          return settle(() => reject(streamError(message.error_message ?? "", text)));
        }
        const piece = textOutput(response);
        // After a stop, what the engine still sends has no reader.
        if (piece !== undefined && piece !== "" && !stopping) {
          text += piece;
          events++;
          onText(piece, performance.now());
        }
        if (isFinal(response)) {
          if (stopping) return failStopped();
          settle(() => resolve({ text, events }));
        }
      });
      call.on("error", (error: Grpc.ServiceError) => {
        if (stopping) return failStopped();
        settle(() => reject(this.#callFailure(error, text)));
      });
      call.on("end", () => {
        if (stopping) return failStopped();
        settle(() => reject(new TritonRequestError("stream-error", `Triton's gRPC stream at ${this.address} ended before the answer did (after ${text.length} characters).`)));
      });

      const onAbort = () => {
        stopping = this.#stop(id);
        // The stopped request ends with a final response; should none come, the stop's answer does.
        stopTimer = setTimeout(failStopped, stopTimeoutMs);
        void stopping.then((stopped) => {
          if (stopped.outcome !== "stopped") failStopped();
        });
      };
      if (signal.aborted) {
        settle(() => reject(signal.reason));
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      call.write(request);
    });
  }

  /** Sends the stop request for `id` on a call of its own and says how it went. */
  #stop(id: string): Promise<StreamStopped> {
    return new Promise((resolve) => {
      const call = this.#client.ModelStreamInfer();
      const done = (stopped: StreamStopped) => {
        clearTimeout(timer);
        call.end();
        call.cancel();
        resolve(stopped);
      };
      const timer = setTimeout(() => done(new StreamStopped(id, "stop failed", `no answer in ${stopTimeoutMs / 1000} s`)), stopTimeoutMs);
      call.on("data", (message: ModelStreamInferResponse) => {
        const error = message.error_message ?? "";
        if (error === "") done(new StreamStopped(id, "stopped"));
        // The v0.8.0 backend's answer for an id it no longer runs.
        else if (/not active/.test(error)) done(new StreamStopped(id, "had ended"));
        else done(new StreamStopped(id, "stop failed", error));
      });
      call.on("error", (error: Grpc.ServiceError) => done(new StreamStopped(id, "stop failed", error.details || error.message)));
      call.write(stopRequest(id));
    });
  }

  #callFailure(error: Grpc.ServiceError, received: string): TritonRequestError {
    if (error.code === this.#grpc.status.UNAVAILABLE) {
      return new TritonRequestError(
        "server-unreachable",
        `No server answers gRPC at ${this.address} (${error.details || error.message}). Start it with \`llama3-trt serve\`, or point the gateway's \`--triton-grpc\` at its gRPC port.`,
        { cause: error },
      );
    }
    return streamError(error.details || error.message, received);
  }
}

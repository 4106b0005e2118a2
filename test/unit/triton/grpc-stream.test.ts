/**
 * What the gateway sends on Triton's gRPC stream and how it reads the answers (the pure part of
 * src/triton/grpc-stream.ts; the calls themselves run against the world's Triton stand-in in
 * test/integration/gateway.test.ts), and its protocol descriptor held to the .proto the stand-in
 * compiles.
 */
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { grpcServiceDescriptor } from "../../../src/triton/grpc-protocol.ts";
import { ensembleRequest, isFinal, newRequestId, stopRequest, textOutput } from "../../../src/triton/grpc-stream.ts";

const protoFile = fileURLToPath(new URL("../../../world/images/common/proto/grpc_service.proto", import.meta.url));
/** The .proto as written (protobufjs would camelCase the names, which protoc and Triton do not). */
const loadProto = () => new protobuf.Root().loadSync(protoFile, { keepCase: true });

/** BYTES elements as Triton's gRPC frontend sends them raw: a 4-byte little-endian length, then the bytes. */
function rawBytes(...elements: string[]): Uint8Array {
  return Buffer.concat(
    elements.flatMap((e) => {
      const bytes = Buffer.from(e, "utf8");
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

describe("the gRPC protocol descriptor", () => {
  it("is the .proto the Triton stand-in compiles: same messages, fields, numbers, types and rules", () => {
    const fromProto = loadProto().lookup("inference") as protobuf.Namespace;
    const ours = protobuf.Root.fromJSON(grpcServiceDescriptor as protobuf.INamespace).lookup("inference") as protobuf.Namespace;
    expect(ours.toJSON()).toEqual(fromProto.toJSON());
  });

  it("round-trips a request through protobuf's encoding with every field in its place", () => {
    const root = loadProto();
    const type = root.lookupType("inference.ModelInferRequest");
    const request = ensembleRequest("42", { text_input: "Hi", max_tokens: 5, end_id: 128009, temperature: 0.5, stream: true });
    const decoded = type.toObject(type.decode(type.encode(type.fromObject(request)).finish()), { longs: Number, bytes: String, defaults: false });
    expect(decoded).toEqual({
      model_name: "ensemble",
      id: "42",
      parameters: { triton_enable_empty_final_response: { bool_param: true } },
      inputs: [
        { name: "text_input", datatype: "BYTES", shape: [1, 1], contents: { bytes_contents: [Buffer.from("Hi").toString("base64")] } },
        { name: "max_tokens", datatype: "INT32", shape: [1, 1], contents: { int_contents: [5] } },
        { name: "end_id", datatype: "INT32", shape: [1, 1], contents: { int_contents: [128009] } },
        { name: "temperature", datatype: "FP32", shape: [1, 1], contents: { fp32_contents: [0.5] } },
        { name: "stream", datatype: "BOOL", shape: [1, 1], contents: { bool_contents: [true] } },
      ],
    });
  });
});

describe("the requests", () => {
  it("send each generate field as the ensemble input of its datatype, batch 1, with the final-response flag asked for", () => {
    const request = ensembleRequest("7", { text_input: "Q", max_tokens: 3, end_id: 2, top_k: 4, top_p: 0.9, min_length: 1, stop_words: ["a,b", "c"], random_seed: 9, presence_penalty: 0.1, frequency_penalty: 0.2 } as never);
    expect(request.model_name).toBe("ensemble");
    expect(request.id).toBe("7");
    expect(request.parameters).toEqual({ triton_enable_empty_final_response: { bool_param: true } });
    expect(request.inputs.map((i) => [i.name, i.datatype, i.shape])).toEqual([
      ["text_input", "BYTES", [1, 1]],
      ["max_tokens", "INT32", [1, 1]],
      ["end_id", "INT32", [1, 1]],
      ["top_k", "INT32", [1, 1]],
      ["top_p", "FP32", [1, 1]],
      ["min_length", "INT32", [1, 1]],
      ["stop_words", "BYTES", [1, 2]],
      ["random_seed", "UINT64", [1, 1]],
      ["presence_penalty", "FP32", [1, 1]],
      ["frequency_penalty", "FP32", [1, 1]],
    ]);
    expect(request.inputs.find((i) => i.name === "stop_words")?.contents.bytes_contents?.map((b) => Buffer.from(b).toString())).toEqual(["a,b", "c"]);
    expect(request.inputs.find((i) => i.name === "random_seed")?.contents.uint64_contents).toEqual(["9"]);
  });

  it("refuse a field that is not an input of the v0.8.0 ensemble, and leave out fields not set", () => {
    expect(() => ensembleRequest("1", { text_input: "Q", max_tokens: 1, end_id: 2, id: "x" } as never)).toThrow("id is not an input of the v0.8.0 ensemble");
    expect(ensembleRequest("1", { text_input: "Q", max_tokens: 1, end_id: 2, temperature: undefined }).inputs.map((i) => i.name)).toEqual(["text_input", "max_tokens", "end_id"]);
  });

  it("stop a request with its id on tensorrt_llm, carrying the inputs Triton requires of that model", () => {
    expect(stopRequest("123")).toEqual({
      model_name: "tensorrt_llm",
      id: "123",
      parameters: { triton_enable_empty_final_response: { bool_param: true } },
      inputs: [
        { name: "input_ids", datatype: "INT32", shape: [1, 1], contents: { int_contents: [0] } },
        { name: "input_lengths", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } },
        { name: "request_output_len", datatype: "INT32", shape: [1, 1], contents: { int_contents: [1] } },
        { name: "stop", datatype: "BOOL", shape: [1, 1], contents: { bool_contents: [true] } },
      ],
    });
  });

  it("get ids that are decimal uint64s, unique in the process", () => {
    const ids = Array.from({ length: 1000 }, newRequestId);
    expect(new Set(ids).size).toBe(1000);
    for (const id of ids) {
      expect(id).toMatch(/^[1-9]\d*$/);
      expect(BigInt(id) < 2n ** 64n).toBe(true);
    }
  });
});

describe("the responses", () => {
  it("read text_output from the raw output contents, at its own position among the outputs", () => {
    const response = {
      outputs: [{ name: "cum_log_probs", datatype: "FP32" }, { name: "text_output", datatype: "BYTES" }],
      raw_output_contents: [new Uint8Array(4), rawBytes("Paris", " é")],
    };
    expect(textOutput(response)).toBe("Paris é");
    expect(textOutput({ outputs: [{ name: "text_output" }], raw_output_contents: [rawBytes("")] })).toBe("");
    expect(textOutput({ outputs: [{ name: "cum_log_probs" }], raw_output_contents: [new Uint8Array(4)] })).toBeUndefined();
    expect(textOutput({})).toBeUndefined();
  });

  it("are final only when Triton says so", () => {
    expect(isFinal({ parameters: { triton_final_response: { bool_param: true } } })).toBe(true);
    expect(isFinal({ parameters: { triton_final_response: { bool_param: false } } })).toBe(false);
    expect(isFinal({})).toBe(false);
  });
});

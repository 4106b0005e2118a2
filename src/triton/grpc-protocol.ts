/**
 * The part of Triton's gRPC protocol the gateway speaks: `ModelStreamInfer` and its messages, as a
 * protobufjs JSON descriptor (built into the bundle: no .proto file to find at run time). Field
 * names and numbers are those of triton-inference-server/common `protobuf/grpc_service.proto`;
 * test/unit/triton/grpc-protocol.test.ts holds this to the test world's copy of that file, which
 * the Triton stand-in compiles with protoc.
 */

const scalar = (type: string, id: number) => ({ type, id });
const repeated = (type: string, id: number) => ({ rule: "repeated", type, id });
const parameters = (id: number) => ({ keyType: "string", type: "InferParameter", id });

const tensorFields = {
  name: scalar("string", 1),
  datatype: scalar("string", 2),
  shape: repeated("int64", 3),
  parameters: parameters(4),
  contents: scalar("InferTensorContents", 5),
};

export const grpcServiceDescriptor = {
  nested: {
    inference: {
      nested: {
        GRPCInferenceService: {
          methods: {
            ModelStreamInfer: {
              requestType: "ModelInferRequest",
              requestStream: true,
              responseType: "ModelStreamInferResponse",
              responseStream: true,
            },
          },
        },
        InferParameter: {
          oneofs: { parameter_choice: { oneof: ["bool_param", "int64_param", "string_param"] } },
          fields: { bool_param: scalar("bool", 1), int64_param: scalar("int64", 2), string_param: scalar("string", 3) },
        },
        InferTensorContents: {
          fields: {
            bool_contents: repeated("bool", 1),
            int_contents: repeated("int32", 2),
            int64_contents: repeated("int64", 3),
            uint_contents: repeated("uint32", 4),
            uint64_contents: repeated("uint64", 5),
            fp32_contents: repeated("float", 6),
            fp64_contents: repeated("double", 7),
            bytes_contents: repeated("bytes", 8),
          },
        },
        ModelInferRequest: {
          fields: {
            model_name: scalar("string", 1),
            model_version: scalar("string", 2),
            id: scalar("string", 3),
            parameters: parameters(4),
            inputs: repeated("InferInputTensor", 5),
            outputs: repeated("InferRequestedOutputTensor", 6),
            raw_input_contents: repeated("bytes", 7),
          },
          nested: {
            InferInputTensor: { fields: tensorFields },
            InferRequestedOutputTensor: { fields: { name: scalar("string", 1), parameters: parameters(2) } },
          },
        },
        ModelInferResponse: {
          fields: {
            model_name: scalar("string", 1),
            model_version: scalar("string", 2),
            id: scalar("string", 3),
            parameters: parameters(4),
            outputs: repeated("InferOutputTensor", 5),
            raw_output_contents: repeated("bytes", 6),
          },
          nested: { InferOutputTensor: { fields: tensorFields } },
        },
        ModelStreamInferResponse: {
          fields: { error_message: scalar("string", 1), infer_response: scalar("ModelInferResponse", 2) },
        },
      },
    },
  },
} as const;

/** A parameter of a request or response (InferParameter's oneof, as proto-loader hands it over). */
export interface InferParameter {
  readonly bool_param?: boolean;
  readonly int64_param?: string | number;
  readonly string_param?: string;
}

export interface InferTensorContents {
  readonly bool_contents?: readonly boolean[];
  readonly int_contents?: readonly number[];
  readonly uint64_contents?: readonly (string | number)[];
  readonly fp32_contents?: readonly number[];
  readonly bytes_contents?: readonly Uint8Array[];
}

export interface InferInputTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly contents: InferTensorContents;
}

export interface ModelInferRequest {
  readonly model_name: string;
  readonly id: string;
  readonly parameters: Readonly<Record<string, InferParameter>>;
  readonly inputs: readonly InferInputTensor[];
}

export interface ModelInferResponse {
  readonly model_name?: string;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, InferParameter>>;
  readonly outputs?: readonly { readonly name?: string; readonly datatype?: string; readonly shape?: readonly (string | number)[] }[];
  readonly raw_output_contents?: readonly Uint8Array[];
}

export interface ModelStreamInferResponse {
  readonly error_message?: string;
  readonly infer_response?: ModelInferResponse;
}

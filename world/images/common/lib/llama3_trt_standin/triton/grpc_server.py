"""Triton 24.03's GRPCInferenceService, the part the test world serves: ModelStreamInfer.

Each ModelInferRequest read from a call is handled on its own thread (a call may carry many);
its responses go back on the call as they come, each a ModelStreamInferResponse with
infer_response {model_name, model_version, id, outputs, raw_output_contents, parameters}; an
error is {error_message, infer_response {model_name, id}} and the call stays open. The call ends
when the client has finished writing and every request on it has ended.

- ensemble (and the BLS model): generation as over HTTP (generate.run), paced by the same slots
  (Pace) and deadlines. Outputs are in raw_output_contents, as Triton's gRPC frontend sends
  them: text_output BYTES [1,1], cum_log_probs FP32 [1,1] and output_log_probs FP32 [1,1,k]
  (zeros; k = the tokens in that response); the ensemble's context_logits and generation_logits
  are not sent. `outputs` in the request narrows that set (an unknown name is refused).
- Request ids: the ensemble gives each step the top-level request's id, and the TensorRT-LLM
  v0.8.0 backend takes it as its uint64 request id (tensors.parse_request_id, active.Registry).
  The BLS model of v0.8.0 is taken to make its own tensorrt_llm request without that id
  (stand-in assumption, unverified): its requests are id 0 and cannot be stopped.
- tensorrt_llm with input `stop` true: stops the running request of that id (active.Registry.stop);
  the stop request itself gets one empty response. tensorrt_llm otherwise: refused, as over HTTP.
- Parameter `triton_enable_empty_final_response` (bool_param true): every response carries
  `triton_final_response` (false on each streamed token, true on the last, which v0.8.0 sends
  with its last token). Without it no such parameter is sent, as by the real server.
- A client that cancels or drops a call: its requests run on to their end (no cancellation of the
  engine's work: conservative; 24.03's cancellation of ensembles is not relied on), logged.
"""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Callable, List, Optional

import grpc

from . import active, generate, log, tensors
from . import grpc_service_pb2 as pb
from . import model_config_pb2 as mc

SERVICE = "inference.GRPCInferenceService"
_END = object()


def specs_of(model) -> List[tensors.InputSpec]:
    return [tensors.InputSpec(i.name, tensors.CONFIG_DATATYPE.get(mc.DataType.Name(i.data_type), mc.DataType.Name(i.data_type)),
                              list(i.dims), bool(i.optional)) for i in model.config.input]


def wire_inputs(request) -> List[tensors.WireInput]:
    out = []
    for t in request.inputs:
        contents = None
        if t.HasField("contents"):
            contents = {f: list(getattr(t.contents, f)) for f in tensors.CONTENTS_FIELDS}
        out.append(tensors.WireInput(t.name, t.datatype, list(t.shape), contents))
    return out


def final_flag_wanted(request) -> bool:
    wanted = False
    for key, value in request.parameters.items():
        if key == "triton_enable_empty_final_response":
            if value.WhichOneof("parameter_choice") != "bool_param":
                raise active.RequestError("invalid value type for 'triton_enable_empty_final_response' parameter, "
                                          "expected bool_param. (stand-in wording)")
            wanted = value.bool_param
        elif key.startswith("triton_"):
            raise active.RequestError("parameter keys starting with 'triton_' are reserved for Triton usage and "
                                      "should not be specified.")
    return wanted


def requested_outputs(model, request) -> Optional[List[str]]:
    if not request.outputs:
        return None
    declared = {o.name for o in model.config.output}
    names = []
    for o in request.outputs:
        if o.name not in declared:
            raise active.RequestError(f"unexpected inference output '{o.name}' for model '{model.name}'")
        names.append(o.name)
    return names


def infer_response(model_name: str, version: str, request_id: str, outputs: List[tensors.OutputTensor],
                   final: Optional[bool]):
    r = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request_id)
    for t in outputs:
        r.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        r.raw_output_contents.append(t.raw())
    if final is not None:
        r.parameters["triton_final_response"].bool_param = final
    return pb.ModelStreamInferResponse(infer_response=r)


def generation_outputs(text: str, tokens: int, wanted: Optional[List[str]]) -> List[tensors.OutputTensor]:
    all_outputs = [
        tensors.OutputTensor("text_output", "BYTES", [1, 1], [text]),
        tensors.OutputTensor("cum_log_probs", "FP32", [1, 1], [0.0]),
        tensors.OutputTensor("output_log_probs", "FP32", [1, 1, tokens], [0.0] * tokens),
    ]
    if wanted is None:
        return all_outputs
    return [t for t in all_outputs if t.name in wanted]


def handle(state, request, emit: Callable[[object], bool]) -> None:
    """One ModelInferRequest of a call, to its end."""
    def error(message: str) -> None:
        emit(pb.ModelStreamInferResponse(error_message=message,
                                         infer_response=pb.ModelInferResponse(model_name=request.model_name,
                                                                              id=request.id)))
    try:
        model = state.model(request.model_name, request.model_version)
        final = final_flag_wanted(request)
        inputs = tensors.decode_inputs(model.name, model.config.max_batch_size, specs_of(model),
                                       wire_inputs(request), list(request.raw_input_contents))
        wanted = requested_outputs(model, request)
        if model.config.backend == "tensorrtllm":
            request_id = tensors.parse_request_id(request.id)
            if not (inputs.get("stop") and inputs["stop"][0]):
                raise active.RequestError(f"the test world's tritonserver generates through the ensemble or the BLS "
                                          f"model only, not '{model.name}'")
            state.registry.stop(request_id)
            emit(infer_response(model.name, model.version, request.id, [], True if final else None))
            return
        names = {i.name for i in model.config.input}
        ensemble = model.config.platform == "ensemble"
        if not (ensemble or (model.config.backend == "python" and {"text_input", "max_tokens"} <= names)):
            raise active.RequestError(f"the test world's tritonserver generates through the ensemble or the BLS "
                                      f"model only, not '{model.name}'")
        request_id = tensors.parse_request_id(request.id) if ensemble else 0
        streamed, chunks, n_tokens, _ = generate.run(state.models, model, inputs, True)
        chunks = list(chunks)
        job = state.registry.admit(request_id)
    except active.RequestError as e:
        error(str(e))
        return

    if not chunks:  # nothing generated: still one (final) response
        chunks = [""]
    job.total = n_tokens
    pace = state.pace
    if streamed:
        ticks = list(range(len(chunks)))
    else:
        ticks = [max(n_tokens - 1, 0)] if pace.paced else [0]
    last = len(chunks) - 1

    def send(i: int) -> bool:
        tokens = (1 if n_tokens else 0) if streamed else n_tokens
        ok = emit(infer_response(model.name, model.version, request.id, generation_outputs(chunks[i], tokens, wanted),
                                 (i == last) if final else None))
        if not ok:
            log.info("grpc_server.cc:0", f"[llama3-trt world] ModelStreamInfer: the client cancelled the call after "
                                         f"{i} of {len(chunks)} responses of request '{request.id}'; the request runs "
                                         "on to its end (the test world does not cancel the engine's work)")
        return ok

    def on_stop() -> None:
        log.info("model_instance_state.cc:0", f"[llama3-trt world] requestId {request_id} stopped after {job.tokens} "
                                              f"of {n_tokens} tokens")
        emit(infer_response(model.name, model.version, request.id, generation_outputs("", 0, wanted),
                            True if final else None))

    def on_drop() -> None:
        log.info("model_instance_state.cc:0", f"[llama3-trt world] requestId {request_id} stopped after 0 "
                                              f"of {n_tokens} tokens (stopped while queued)")
        error(f"request Id {request_id} has been stopped. Request is ignored.")

    active.run(pace, state.registry, job, ticks, send, on_stop, on_drop)
    if job.client_gone:
        log.info("grpc_server.cc:0", f"[llama3-trt world] ModelStreamInfer: request '{request.id}' whose client left "
                                     f"ran to its end ({n_tokens} tokens); its slot is free")


def _stream_infer(state):
    def stream_infer(request_iterator, context):
        out: "queue.Queue[object]" = queue.Queue()
        lock = threading.Lock()
        counts = {"pending": 0, "reading": True}

        def emit(response) -> bool:
            if not context.is_active():
                return False
            out.put(response)
            return True

        def done_one() -> None:
            with lock:
                counts["pending"] -= 1
                if not counts["reading"] and counts["pending"] == 0:
                    out.put(_END)

        def run_one(request) -> None:
            try:
                handle(state, request, emit)
            except Exception as e:  # a stand-in bug: say so on the call rather than hang it
                log.error("grpc_server.cc:0", f"[llama3-trt world] ModelStreamInfer: internal error: {e!r}")
                emit(pb.ModelStreamInferResponse(error_message=f"[llama3-trt world] internal error: {e!r}"))
            finally:
                done_one()

        def reader() -> None:
            try:
                for request in request_iterator:
                    with lock:
                        counts["pending"] += 1
                    threading.Thread(target=run_one, args=(request,), daemon=True).start()
            except Exception:  # the call was cancelled or broke: what was read runs on
                pass
            finally:
                with lock:
                    counts["reading"] = False
                    if counts["pending"] == 0:
                        out.put(_END)

        threading.Thread(target=reader, daemon=True).start()
        while True:
            item = out.get()
            if item is _END:
                return
            yield item
    return stream_infer


def start(state, address: str, port: int):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=512),
                         # Without this gRPC binds with SO_REUSEPORT, and a second server on a busy
                         # port would start: Triton's fails.
                         options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
            _stream_infer(state),
            request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelStreamInferResponse.SerializeToString),
    })
    server.add_generic_rpc_handlers((handler,))
    try:
        bound = server.add_insecure_port(f"{address}:{port}")
    except RuntimeError:
        bound = 0
    if bound == 0 or (port != 0 and bound != port):
        server.stop(None)
        raise OSError(f"failed to start GRPC service: Unavailable - Socket '{address}:{port}' already in use")
    server.start()
    return server

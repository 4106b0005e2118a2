"""The KServe v2 generate extension on the TensorRT-LLM ensemble (and BLS), as a stand-in.

Top-level JSON fields are model inputs; "parameters" is not. Triton 24.03's generate endpoint has
no request-id field (that came in 24.08), so a top-level "id" is an unknown input like any other. Inputs are checked against
the model's config: unknown input -> error, missing required input -> error, wrong JSON type ->
error, all as HTTP 400 {"error": ...}. The answer comes from llama3_trt_standin.textgen and honours
end_id (default: the tokenizer's eos), stop_words, exclude_input_in_output and the postprocessing
model's skip_special_tokens; streaming needs a decoupled tensorrt_llm model.
"""

from __future__ import annotations

import csv
from typing import Dict, Iterator, List, Optional, Tuple

from .. import textgen
from . import tensors
from .active import RequestError  # noqa: F401  (one error type for HTTP, gRPC and the engine)
from .repository import Model

_JSON_KIND = {
    "TYPE_STRING": "string",
    "TYPE_INT32": "int",
    "TYPE_INT64": "int",
    "TYPE_UINT64": "uint",
    "TYPE_UINT32": "uint",
    "TYPE_FP32": "number",
    "TYPE_FP16": "number",
    "TYPE_FP64": "number",
    "TYPE_BOOL": "bool",
}
TRITON_DATATYPE = {
    "TYPE_STRING": "BYTES", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64", "TYPE_UINT64": "UINT64",
    "TYPE_UINT32": "UINT32", "TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_FP64": "FP64",
    "TYPE_BOOL": "BOOL", "TYPE_INT8": "INT8", "TYPE_UINT8": "UINT8", "TYPE_INT16": "INT16",
}


def _elements(value) -> list:
    out = []
    if isinstance(value, list):
        for v in value:
            out.extend(_elements(v))
    else:
        out.append(value)
    return out


def _check_kind(model: str, name: str, datatype: str, value) -> list:
    kind = _JSON_KIND.get(datatype)
    elements = _elements(value)
    if kind is None:
        raise RequestError(f"input '{name}' of model '{model}' has datatype {TRITON_DATATYPE.get(datatype, datatype)}, "
                           "which the test world's generate endpoint does not accept")
    for e in elements:
        ok = (
            (kind == "string" and isinstance(e, str))
            or (kind == "int" and isinstance(e, int) and not isinstance(e, bool))
            or (kind == "uint" and isinstance(e, int) and not isinstance(e, bool) and e >= 0)
            or (kind == "number" and isinstance(e, (int, float)) and not isinstance(e, bool))
            or (kind == "bool" and isinstance(e, bool))
        )
        if not ok:
            raise RequestError(f"Unable to parse '{name}': expected {kind} values for input '{name}' of model "
                               f"'{model}' (datatype {TRITON_DATATYPE.get(datatype, datatype)}), got {e!r}")
    if not elements:
        raise RequestError(f"Unable to parse '{name}': no value given")
    return elements


def parse_inputs(model: Model, body) -> Dict[str, list]:
    import google.protobuf  # noqa: F401  (only reached where the schema is available)
    from . import model_config_pb2 as mc

    if not isinstance(body, dict):
        raise RequestError("failed to parse the request JSON buffer: the request must be a JSON object")
    declared = {i.name: i for i in model.config.input}
    inputs: Dict[str, list] = {}
    for key, value in body.items():
        if key == "parameters":
            continue
        if key not in declared:
            raise RequestError(f"unexpected inference input '{key}' for model '{model.name}'")
        datatype = mc.DataType.Name(declared[key].data_type)
        inputs[key] = _check_kind(model.name, key, datatype, value)
    tensors.check_required(model.name, [i.name for i in model.config.input if not i.optional], list(inputs))
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RequestError("failed to parse the request JSON buffer: 'parameters' must be an object")
    return inputs


def pipeline(models: Dict[str, Model], model: Model) -> Tuple[Model, Model, Model]:
    """(preprocessing, tensorrt_llm, postprocessing) behind an ensemble or the BLS model."""
    if model.config.platform == "ensemble":
        steps = [models[n] for n in model.info.get("steps", [])]
    else:
        # tensorrt_llm_bls v0.8.0 calls these three models by name.
        steps = [models.get(n) for n in ("preprocessing", "tensorrt_llm", "postprocessing")]
        if any(s is None or not s.ready for s in steps):
            raise RequestError(f"model '{model.name}' calls preprocessing, tensorrt_llm and postprocessing, "
                               "which are not all loaded")
    trt = [s for s in steps if s.config.backend == "tensorrtllm"]
    tok = [s for s in steps if s.config.backend == "python" and "tokenizer" in s.info]
    if len(trt) != 1 or len(tok) < 2:
        raise RequestError(f"model '{model.name}' is not a TensorRT-LLM text pipeline the test world knows")
    return tok[0], trt[0], tok[-1]


def _stop_words(values: List[str]) -> List[str]:
    words: List[str] = []
    for v in values:
        # The preprocessing model reads each string as CSV: "a,b" is two words.
        for row in csv.reader([v]):
            words.extend(w for w in row if w)
    return words


def run(models: Dict[str, Model], model: Model, inputs: Dict[str, list], streaming_endpoint: bool
        ) -> Tuple[bool, Iterator[str], int, Dict[str, object]]:
    """Returns (streamed, text chunks, number of output tokens, extra fields)."""
    pre, trt, post = pipeline(models, model)
    tokenizer = pre.info["tokenizer"]
    if len(inputs["text_input"]) != 1:
        raise RequestError("the test world's generate endpoint takes one text_input per request")
    prompt = inputs["text_input"][0]
    max_tokens = int(inputs["max_tokens"][0])
    stream = bool(inputs.get("stream", [False])[0])
    decoupled = bool(trt.info.get("decoupled"))
    if stream and not decoupled:
        raise RequestError("Streaming is only supported if model is deployed using decoupled mode.")
    if stream and not streaming_endpoint:
        raise RequestError("generate endpoint does not stream: send 'stream': true to generate_stream")
    end_id = int(inputs["end_id"][0]) if "end_id" in inputs else tokenizer["eos_id"]
    stop_words = _stop_words(inputs.get("stop_words", []))
    beam_width = int(inputs.get("beam_width", [1])[0])
    min_length = int(inputs.get("min_length", [0])[0])

    build = trt.info["engine_config"]["build_config"]
    prompt_tokens = textgen.tokenize(prompt)
    if pre.info.get("add_special_tokens") and tokenizer.get("bos_token"):
        prompt_tokens = [tokenizer["bos_token"]] + prompt_tokens
    if len(prompt_tokens) > build["max_input_len"]:
        raise RequestError(f"[TensorRT-LLM][ERROR] Assertion failed: Prompt length ({len(prompt_tokens)}) exceeds "
                           f"maximum input length ({build['max_input_len']}).")
    if max_tokens > build["max_output_len"]:
        raise RequestError(f"[TensorRT-LLM][ERROR] Assertion failed: Requested output length ({max_tokens}) exceeds "
                           f"maximum output length ({build['max_output_len']}).")
    if max_tokens < 0:
        raise RequestError(f"[TensorRT-LLM][ERROR] Assertion failed: Requested output length ({max_tokens}) "
                           "must not be negative.")
    if beam_width > trt.info.get("max_beam_width", 1):
        raise RequestError(f"[TensorRT-LLM][ERROR] Assertion failed: beam width ({beam_width}) exceeds the model's "
                           f"max_beam_width ({trt.info.get('max_beam_width', 1)})")

    garbled = textgen.rope_mismatch(trt.info["engine_config"]["pretrained_config"], tokenizer)
    generated, _ = textgen.generate(prompt, max_tokens, end_ids=[end_id] if end_id is not None else [],
                                    stop_words=stop_words, garbled=garbled,
                                    min_length=min_length)
    skip = bool(post.info.get("skip_special_tokens", True))
    if stream:
        return True, (textgen.detokenize([t], skip) for t in generated), len(generated), {}
    text = textgen.detokenize(generated, skip)
    if not trt.info.get("exclude_input_in_output"):
        text = textgen.detokenize(prompt_tokens, skip) + text
    return False, iter([text]), len(generated), {}


def response(model: Model, text: str, n_tokens: int, request_id: Optional[str]) -> dict:
    body = {
        "context_logits": 0.0,
        "cum_log_probs": 0.0,
        "generation_logits": 0.0,
        "model_name": model.name,
        "model_version": model.version,
        "output_log_probs": [0.0] * n_tokens,
        "sequence_end": False,
        "sequence_id": 0,
        "sequence_start": False,
        "text_output": text,
    }
    if request_id is not None:
        body["id"] = request_id
    return body

"""Tensors as Triton 24.03's gRPC frontend and core take and give them, in plain Python.

No protobuf or grpc here (the host's python3 has neither; tests run this module there): the gRPC
server (grpc_server.py) turns each ModelInferRequest.InferInputTensor into a `WireInput` and
each output back into protobuf.

Checks, in the order the real server makes them (messages are Triton's where known; the few
marked "stand-in wording" are ours):
- frontend (grpc infer_handler.cc InferGRPCToInput): `contents` together with
  `raw_input_contents`; an input with neither; a `contents` field of another type than the
  input's datatype, or two of them;
- core (InferenceRequest normalisation): unknown input name, missing required inputs, datatype,
  shape ([batch] + dims when max_batch_size > 0; -1 matches any size >= 1), batch size, then the
  data's size against the shape.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .active import RequestError


class TensorError(RequestError):
    pass


# Model config data types and the datatype strings of the KServe v2 protocol.
CONFIG_DATATYPE = {
    "TYPE_STRING": "BYTES", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64", "TYPE_UINT64": "UINT64",
    "TYPE_UINT32": "UINT32", "TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_FP64": "FP64",
    "TYPE_BOOL": "BOOL", "TYPE_INT8": "INT8", "TYPE_UINT8": "UINT8", "TYPE_INT16": "INT16",
    "TYPE_UINT16": "UINT16", "TYPE_BF16": "BF16",
}

# Fixed-size element layouts (little-endian, as Triton's raw tensors). BYTES has none.
_STRUCT = {"BOOL": "?", "INT8": "b", "UINT8": "B", "INT16": "h", "UINT16": "H", "INT32": "i", "UINT32": "I",
           "INT64": "q", "UINT64": "Q", "FP32": "f", "FP64": "d"}
ELEMENT_SIZE = {"BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8,
                "UINT64": 8, "FP16": 2, "BF16": 2, "FP32": 4, "FP64": 8}

# InferTensorContents fields and the datatype each carries (int_contents also carries INT8 and
# INT16, uint_contents UINT8 and UINT16, as the frontend packs them).
CONTENTS_FIELDS = {
    "bool_contents": ("BOOL",),
    "int_contents": ("INT32", "INT8", "INT16"),
    "int64_contents": ("INT64",),
    "uint_contents": ("UINT32", "UINT8", "UINT16"),
    "uint64_contents": ("UINT64",),
    "fp32_contents": ("FP32",),
    "fp64_contents": ("FP64",),
    "bytes_contents": ("BYTES",),
}


@dataclass(frozen=True)
class InputSpec:
    """One `input` of a model's config.pbtxt."""
    name: str
    datatype: str  # "BYTES", "INT32", ...
    dims: Sequence[int]
    optional: bool = False


@dataclass
class WireInput:
    """One ModelInferRequest.InferInputTensor. `contents` maps each non-empty InferTensorContents
    field to its values; None when the tensor has no `contents` message at all."""
    name: str
    datatype: str
    shape: List[int]
    contents: Optional[Dict[str, list]] = None


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: List[int]
    values: list = field(default_factory=list)

    def raw(self) -> bytes:
        return encode_raw(self.datatype, self.values)


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def encode_raw(datatype: str, values: Sequence) -> bytes:
    """Triton's raw tensor bytes: BYTES elements as a 4-byte little-endian length and the bytes;
    other types packed little-endian."""
    if datatype == "BYTES":
        out = bytearray()
        for v in values:
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            out += struct.pack("<I", len(b)) + b
        return bytes(out)
    fmt = _STRUCT.get(datatype)
    if fmt is None:
        raise TensorError(f"the test world's tritonserver does not encode {datatype} tensors")
    return struct.pack("<" + fmt * len(values), *values)


def decode_raw(name: str, model: str, datatype: str, raw: bytes, count: int) -> list:
    """The `count` elements of a raw input tensor; its size must match exactly."""
    if datatype == "BYTES":
        out, at = [], 0
        while at < len(raw):
            if len(raw) - at < 4:
                raise TensorError(f"incomplete string length for inference input '{name}' for model '{model}', "
                                  f"expecting 4 bytes but only {len(raw) - at} bytes available")
            (n,) = struct.unpack_from("<I", raw, at)
            at += 4
            if len(raw) - at < n:
                raise TensorError(f"incomplete string data for inference input '{name}' for model '{model}', "
                                  f"expecting string of length {n} but only {len(raw) - at} bytes available")
            out.append(raw[at:at + n])
            at += n
        if len(out) != count:
            raise TensorError(f"expected {count} string elements for inference input '{name}' for model "
                              f"'{model}', got {len(out)}")
        return out
    size = ELEMENT_SIZE.get(datatype)
    if size is None:
        raise TensorError(f"the test world's tritonserver does not decode {datatype} tensors")
    if len(raw) != size * count:
        raise TensorError(f"input byte size mismatch for input '{name}' for model '{model}'. "
                          f"Expected {size * count}, got {len(raw)}")
    fmt = _STRUCT.get(datatype)
    if fmt is None:  # FP16/BF16: kept as raw 2-byte words; no model the stand-in generates with reads them
        return [raw[i:i + size] for i in range(0, len(raw), size)]
    return list(struct.unpack("<" + fmt * count, raw))


def check_required(model: str, required: Sequence[str], given: Sequence[str]) -> None:
    """Triton core's refusal of a request without every required input (HTTP and gRPC alike)."""
    missing = [n for n in required if n not in given]
    if missing:
        raise TensorError(
            f"expected {len(required)} inputs but got {len([k for k in given if k in required])} inputs for model "
            f"'{model}'. Got input(s) {list(given)}, but missing required input(s) {missing}. "
            "Please provide all required input(s).")


def _matches(dims: Sequence[int], shape: Sequence[int]) -> bool:
    return len(dims) == len(shape) and all(s >= 1 if d == -1 else s == d for d, s in zip(dims, shape))


def decode_inputs(model: str, max_batch_size: int, specs: Sequence[InputSpec], inputs: Sequence[WireInput],
                  raw_contents: Sequence[bytes]) -> Dict[str, list]:
    """Validates a request's inputs against the model's config and returns name -> flat list of
    elements (BYTES as str, BOOL as bool, integers as int, floats as float)."""
    # Frontend: where each input's data is.
    data: Dict[str, tuple] = {}
    raw_index = 0
    for io in inputs:
        if io.contents is not None and raw_contents:
            raise TensorError(f"contents field must not be specified when using raw_input_contents for "
                              f"'{io.name}' for model '{model}'")
        if io.contents is not None:
            present = [(f, v) for f, v in io.contents.items() if len(v) > 0]
            kind = None
            for f, _ in present:
                if f not in CONTENTS_FIELDS:
                    raise TensorError(f"unknown contents field '{f}' for input tensor '{io.name}' (stand-in wording)")
                if kind is not None:
                    raise TensorError(f"unexpected explicit tensor data for input tensor '{io.name}' for model "
                                      f"'{model}', binary data was already supplied.")
                kind = f
                if io.datatype not in CONTENTS_FIELDS[f]:
                    raise TensorError(f"unexpected explicit tensor data for input tensor '{io.name}' for model "
                                      f"'{model}' of type '{CONTENTS_FIELDS[f][0]}', expected datatype "
                                      f"'{io.datatype}'")
            data[io.name] = ("contents", list(present[0][1]) if present else [])
        elif raw_index < len(raw_contents):
            data[io.name] = ("raw", bytes(raw_contents[raw_index]))
            raw_index += 1
        else:
            raise TensorError(f"unable to find data for input tensor '{io.name}' for model '{model}' in request.")
    if raw_contents and raw_index != len(raw_contents):
        # Stand-in wording: the real frontend ignores extra raw_input_contents entries silently? It
        # cannot pair them with an input either way; the stand-in refuses them.
        raise TensorError(f"expected {len(inputs)} raw_input_contents for model '{model}' (one per input), "
                          f"got {len(raw_contents)} (stand-in wording)")

    # Core: names, required inputs, datatypes, shapes, sizes.
    declared = {s.name: s for s in specs}
    seen = []
    for io in inputs:
        if io.name not in declared:
            raise TensorError(f"unexpected inference input '{io.name}' for model '{model}'")
        if io.name in seen:
            raise TensorError(f"input '{io.name}' already exists in request")
        seen.append(io.name)
    check_required(model, [s.name for s in specs if not s.optional], seen)
    out: Dict[str, list] = {}
    for io in inputs:
        spec = declared[io.name]
        if io.datatype != spec.datatype:
            raise TensorError(f"inference input '{io.name}' data-type is '{io.datatype}', but model '{model}' "
                              f"expects '{spec.datatype}'")
        full = ([-1] + list(spec.dims)) if max_batch_size > 0 else list(spec.dims)
        if not _matches(full, io.shape):
            raise TensorError(f"unexpected shape for input '{io.name}' for model '{model}'. Expected "
                              f"{shape_text(full)}, got {shape_text(io.shape)}")
        if max_batch_size > 0:
            if io.shape[0] > max_batch_size:
                raise TensorError(f"inference request batch-size must be <= {max_batch_size} for '{model}'")
            if io.shape[0] != 1:
                raise TensorError(f"the test world's tritonserver takes batch size 1, got {io.shape[0]} for input "
                                  f"'{io.name}' of model '{model}' (stand-in wording)")
        count = 1
        for d in io.shape:
            count *= d
        where, payload = data[io.name]
        if where == "raw":
            values = decode_raw(io.name, model, io.datatype, payload, count)
        else:
            values = payload
            if len(values) != count:
                if io.datatype == "BYTES":
                    raise TensorError(f"expected {count} string elements for inference input '{io.name}' for model "
                                      f"'{model}', got {len(values)}")
                size = ELEMENT_SIZE.get(io.datatype, 1)
                raise TensorError(f"input byte size mismatch for input '{io.name}' for model '{model}'. "
                                  f"Expected {size * count}, got {size * len(values)}")
        if io.datatype == "BYTES":
            try:
                values = [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v for v in values]
            except UnicodeDecodeError as e:
                raise TensorError(f"input '{io.name}' of model '{model}' is not UTF-8 text ({e}) (stand-in wording)")
        elif io.datatype == "BOOL":
            values = [bool(v) for v in values]
        out[io.name] = list(values)
    return out


U64_MAX = (1 << 64) - 1


def parse_request_id(text: str) -> int:
    """The request id the TensorRT-LLM v0.8.0 backend makes of the Triton request id the ensemble
    passes on: empty -> 0 (allowed; such a request cannot be stopped); else a decimal uint64.
    (The backend parses with std::stoull and so would take "12abc" as 12 or wrap "-1"; the
    stand-in refuses anything that is not all decimal digits within uint64, with the backend's
    message.)"""
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit() or int(text) > U64_MAX:
        raise TensorError(f"Invalid requestId, must be uint64_t. Got {text}")
    return int(text)

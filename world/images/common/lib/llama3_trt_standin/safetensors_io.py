"""Reading and writing the safetensors container format (no torch in the test world).

Format: 8-byte little-endian header length N, N bytes of JSON header mapping tensor names to
{dtype, shape, data_offsets: [begin, end]} (offsets relative to the data section) plus an optional
"__metadata__" string map, then the data section. The header is padded with spaces to a multiple
of 8 bytes, as the reference writer does.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}

# The largest header the reference implementation accepts (100 MB).
MAX_HEADER = 100_000_000


class SafetensorsError(Exception):
    pass


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: Tuple[int, ...]
    begin: int
    end: int


def read_header(path: str) -> Tuple[Dict[str, TensorInfo], Dict[str, str]]:
    """Parse and validate a safetensors file's header (the data itself is not loaded)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsError(f"{path}: file too small to be safetensors ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise SafetensorsError(f"{path}: invalid header length {n} (file is {size} bytes)")
            raw = f.read(n)
    except OSError as e:
        raise SafetensorsError(f"{path}: {e.strerror or e}") from e
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON: {e}") from e
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    data_size = size - 8 - n
    tensors: Dict[str, TensorInfo] = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise SafetensorsError(f"{path}: entry {name!r} is not an object")
        dtype = info.get("dtype")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
            raise SafetensorsError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
        expected = math.prod(shape) * DTYPE_SIZES[dtype]
        if offsets[1] - offsets[0] != expected:
            raise SafetensorsError(
                f"{path}: tensor {name!r} spans {offsets[1] - offsets[0]} bytes, "
                f"{dtype}{shape} needs {expected}")
        tensors[name] = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    # The data section must be covered exactly, without holes or overlaps.
    cursor = 0
    for name, t in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if t.begin != cursor:
            raise SafetensorsError(f"{path}: tensor {name!r} starts at {t.begin}, expected {cursor} (hole or overlap)")
        cursor = t.end
    if cursor != data_size:
        raise SafetensorsError(f"{path}: data section is {data_size} bytes, tensors cover {cursor}")
    return tensors, metadata


def write(path: str, tensors: Iterable[Tuple[str, str, Tuple[int, ...], Optional[bytes]]],
          metadata: Optional[Dict[str, str]] = None) -> None:
    """Write (name, dtype, shape, data-or-None) tensors; None data is zero-filled."""
    header: Dict[str, object] = {}
    blobs = []
    offset = 0
    for name, dtype, shape, data in tensors:
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        if data is None:
            data = bytes(nbytes)
        if len(data) != nbytes:
            raise SafetensorsError(f"tensor {name!r}: {len(data)} bytes given, {dtype}{list(shape)} needs {nbytes}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        blobs.append(data)
        offset += nbytes
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)

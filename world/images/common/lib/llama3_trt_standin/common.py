"""Small helpers shared by the stand-ins: failing like a Python program, dtype names."""

from __future__ import annotations

import sys
from typing import NoReturn

# TensorRT-LLM dtype strings and the safetensors dtype of a tensor of that precision.
DTYPE_TO_ST = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
ST_TO_DTYPE = {v: k for k, v in DTYPE_TO_ST.items()}


def die(exception: str, message: str, code: int = 1) -> NoReturn:
    """End the way an uncaught Python exception ends a real tool: a traceback-like tail, exit 1."""
    sys.stdout.flush()
    print("Traceback (most recent call last):", file=sys.stderr)
    print("  (stand-in of the test world: the real program raises here)", file=sys.stderr)
    print(f"{exception}: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def log(prefix: str, message: str) -> None:
    print(f"{prefix} {message}", flush=True)

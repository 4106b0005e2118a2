"""The engine directory trtllm-build v0.8.0 writes and its readers (run.py, the Triton backend).

Layout (tensorrt_llm Engine.save at v0.8.0): `config.json` = {"version", "pretrained_config",
"build_config": {..., "plugin_config": {...}}} and one `rank{r}.engine` per rank. The stand-in's
rank files are small: a magic line and a JSON description, so a reader can refuse an engine of
another rank, world size or TensorRT-LLM version the way TensorRT refuses a foreign plan.
"""

from __future__ import annotations

import json
import os
from typing import Tuple

ENGINE_MAGIC = b"LLAMA3-TRT-WORLD-ENGINE 1\n"
TRTLLM_VERSION = "0.8.0"


class EngineError(Exception):
    pass


def write_rank_engine(path: str, description: dict) -> None:
    blob = ENGINE_MAGIC + json.dumps(description, sort_keys=True).encode("utf-8") + b"\n"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


def read_engine_config(engine_dir: str) -> dict:
    path = os.path.join(engine_dir, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError as e:
        raise EngineError(f"[Errno 2] No such file or directory: '{path}'") from e
    except (OSError, json.JSONDecodeError) as e:
        raise EngineError(f"cannot read engine config {path}: {e}") from e
    if not isinstance(config, dict) or "pretrained_config" not in config or "build_config" not in config:
        raise EngineError(f"{path} is not a TensorRT-LLM {TRTLLM_VERSION} engine config "
                          "(expected version, pretrained_config and build_config)")
    return config


def world_of(config: dict) -> Tuple[int, int, int]:
    """(world size, tp, pp) of an engine config or of a checkpoint config."""
    pretrained = config.get("pretrained_config", config)
    mapping = pretrained.get("mapping") or {}
    tp = int(mapping.get("tp_size", 1))
    pp = int(mapping.get("pp_size", 1))
    return tp * pp, tp, pp


def read_rank_engine(engine_dir: str, rank: int, config: dict) -> dict:
    """Check rank{rank}.engine against the config, as deserializing a plan would."""
    path = os.path.join(engine_dir, f"rank{rank}.engine")
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError as e:
        raise EngineError(f"Failed to open file: {path}") from e
    if not blob.startswith(ENGINE_MAGIC):
        raise EngineError(f"{path}: not a serialized engine of this TensorRT version (bad magic)")
    try:
        description = json.loads(blob[len(ENGINE_MAGIC):].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineError(f"{path}: corrupt engine ({e})") from e
    if description.get("tensorrt_llm_version") != TRTLLM_VERSION or config.get("version") != TRTLLM_VERSION:
        raise EngineError(
            f"The engine plan file is not compatible with this version of TensorRT-LLM ({TRTLLM_VERSION}): "
            f"{path} was built by {description.get('tensorrt_llm_version')!r} (config version "
            f"{config.get('version')!r}); please rebuild.")
    world, tp, pp = world_of(config)
    if description.get("rank") != rank or description.get("world_size") != world:
        raise EngineError(f"{path} is the engine of rank {description.get('rank')} of "
                          f"{description.get('world_size')}, not of rank {rank} of {world}")
    return description

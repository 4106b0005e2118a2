"""Llama checkpoints: the Hugging Face layout convert_checkpoint.py reads, and the TensorRT-LLM
checkpoint layout (v0.8.0) it writes and trtllm-build reads.

Tensor names are facts of the formats (HF LlamaForCausalLM parameter names; the TRT-LLM names
convert_checkpoint.py@v0.8.0 writes). The world's Hub serves tiny-shaped tensors with real names,
so the stand-ins check names, dtypes and index consistency, not shapes.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Tuple

from . import safetensors_io
from .common import die

# LlamaConfig defaults of transformers: what AutoConfig yields for keys a config.json leaves out.
HF_LLAMA_DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}

HF_LAYER_TENSORS = [
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
]

# Buffers some older checkpoints carry; transformers ignores them without a word.
HF_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)

WEIGHTS_INDEX = "model.safetensors.index.json"
SINGLE_WEIGHTS = "model.safetensors"


def hf_config(model_dir: str) -> dict:
    """What `AutoConfig.from_pretrained(model_dir)` would give, for a local Llama directory."""
    if not os.path.isdir(model_dir):
        die("OSError", f"Incorrect path_or_model_id: '{model_dir}'. Please provide either the path to a "
            "local folder or the repo_id of a model on the Hub.")
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        die("OSError", f"{model_dir} does not appear to have a file named config.json.")
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die("OSError", f"It looks like the config file at '{path}' is not a valid JSON file. ({e})")
    if not isinstance(raw, dict):
        die("OSError", f"It looks like the config file at '{path}' is not a valid JSON file.")
    model_type = raw.get("model_type")
    # examples/llama converts what AutoConfig reads as Llama-shaped: llama and mistral (MODEL_MAP
    # maps MistralForCausalLM to LLaMAForCausalLM). Others (qwen2: biases dropped, architecture
    # unknown to trtllm-build) would fail late or convert wrong: the stand-in stops at once.
    if model_type not in ("llama", "mistral"):
        die("ValueError", f"the test world's convert_checkpoint.py stand-in knows Llama and Mistral checkpoints only; "
            f"{path} has model_type {model_type!r}")
    rope_scaling_validation(raw.get("rope_scaling"))
    cfg = dict(HF_LLAMA_DEFAULTS)
    cfg.update(raw)
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] <= 0:
            die("ValueError", f"{path}: {key} must be a positive integer, got {cfg[key]!r}")
    return cfg


def rope_scaling_validation(rope_scaling) -> None:
    """LlamaConfig._rope_scaling_validation of the transformers the v0.8.0 image carries (before
    4.43, which added rope_type "llama3"): a Llama 3.1 config.json fails here, in AutoConfig."""
    if rope_scaling is None:
        return
    if not isinstance(rope_scaling, dict) or len(rope_scaling) != 2:
        die("ValueError", "`rope_scaling` must be a dictionary with with two fields, `type` and `factor`, "
            f"got {rope_scaling}")
    rope_scaling_type = rope_scaling.get("type", None)
    rope_scaling_factor = rope_scaling.get("factor", None)
    if rope_scaling_type is None or rope_scaling_type not in ["linear", "dynamic"]:
        die("ValueError", f"`rope_scaling`'s type field must be one of ['linear', 'dynamic'], got {rope_scaling_type}")
    if rope_scaling_factor is None or not isinstance(rope_scaling_factor, float) or rope_scaling_factor <= 1.0:
        die("ValueError", f"`rope_scaling`'s factor field must be a float > 1, got {rope_scaling_factor}")


def silently_wrong(cfg: dict, args_rotary_scaling) -> List[str]:
    """What v0.8.0 reads past without a word and builds into an engine that answers wrongly
    (convert_checkpoint.py reads no bias, hidden_act, rope_scaling or head_dim from config.json).
    The stand-in refuses each, so a test world build of such a model cannot look like a success."""
    wrong = []
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        wrong.append("its projections have biases, which convert_hf_llama never reads")
    if cfg.get("hidden_act", "silu") != "silu":
        wrong.append(f"hidden_act {cfg.get('hidden_act')!r} is not read (the engine uses --hidden_act, default silu)")
    if cfg.get("rope_scaling") is not None and args_rotary_scaling is None:
        wrong.append(f"rope_scaling {cfg.get('rope_scaling')} is not read from config.json (only --rotary_scaling)")
    return wrong


def hf_expected_tensors(cfg: dict) -> List[str]:
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not cfg.get("tie_word_embeddings"):
        names.append("lm_head.weight")
    for i in range(cfg["num_hidden_layers"]):
        names += [f"model.layers.{i}.{t}" for t in HF_LAYER_TENSORS]
    return names


def validate_hf_weights(model_dir: str, cfg: dict) -> Tuple[str, Dict[str, str]]:
    """Check the safetensors shards against the index and the config.

    Returns the checkpoint's dtype (BF16 or F16) and the tensor -> shard map.
    """
    index_path = os.path.join(model_dir, WEIGHTS_INDEX)
    single_path = os.path.join(model_dir, SINGLE_WEIGHTS)
    if os.path.isfile(index_path):
        try:
            with open(index_path) as f:
                index = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            die("OSError", f"{index_path} is not a valid JSON file ({e})")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            die("OSError", f"{index_path} has no weight_map")
        for name, shard in weight_map.items():
            if not isinstance(shard, str) or "/" in shard or shard.startswith("."):
                die("OSError", f"{index_path}: tensor {name!r} maps to an invalid shard {shard!r}")
        shards = sorted(set(weight_map.values()))
    elif os.path.isfile(single_path):
        weight_map = None
        shards = [SINGLE_WEIGHTS]
    else:
        die("OSError", f"Error no file named pytorch_model.bin, model.safetensors, tf_model.h5, "
            f"model.ckpt.index or flax_model.msgpack found in directory {model_dir}.")

    seen: Dict[str, str] = {}
    dtypes = set()
    problems: List[str] = []
    for shard in shards:
        path = os.path.join(model_dir, shard)
        if not os.path.isfile(path):
            die("OSError", f"{model_dir} does not appear to have a file named {shard}.")
        try:
            tensors, _ = safetensors_io.read_header(path)
        except safetensors_io.SafetensorsError as e:
            die("safetensors_rust.SafetensorError", f"Error while deserializing header: {e}")
        for name, info in tensors.items():
            if name in seen:
                problems.append(f"tensor {name!r} is stored twice ({seen[name]} and {shard})")
                continue
            seen[name] = shard
            if weight_map is not None and weight_map.get(name) != shard:
                problems.append(f"tensor {name!r} is in {shard} but the index maps it to {weight_map.get(name)!r}")
            if not name.endswith(HF_IGNORED_SUFFIXES):
                dtypes.add(info.dtype)
    if weight_map is not None:
        for name, shard in weight_map.items():
            if name not in seen:
                problems.append(f"the index maps {name!r} to {shard} but {shard} does not hold it")
    expected = hf_expected_tensors(cfg)
    missing = [n for n in expected if n not in seen]
    if missing:
        shown = ", ".join(missing[:8]) + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else "")
        problems.append(f"missing tensors for a {cfg['num_hidden_layers']}-layer Llama: {shown}")
    if problems:
        die("ValueError", "invalid Hugging Face checkpoint in " + model_dir + ":\n  " + "\n  ".join(problems))
    bad = dtypes - {"BF16", "F16"}
    if bad or len(dtypes) != 1:
        die("ValueError", f"{model_dir}: expected all weights in one of BF16/F16, found {sorted(dtypes)}")
    unexpected = [n for n in seen if n not in set(expected) and not n.endswith(HF_IGNORED_SUFFIXES)]
    if unexpected:
        # transformers warns about unused weights and carries on.
        print(f"Some weights of the model checkpoint at {model_dir} were not used when initializing "
              f"LlamaForCausalLM: {unexpected[:8]}", flush=True)
    return dtypes.pop(), seen


# ----------------------------------------------------------------------------------------------
# TensorRT-LLM checkpoint (v0.8.0)

LINEAR_MODULES = ["attention.qkv", "attention.dense", "mlp.gate", "mlp.fc", "mlp.proj"]
WEIGHT_ONLY_ALGOS = {"W8A16", "W4A16"}
KNOWN_QUANT_ALGOS = {None, "W8A16", "W4A16", "W4A16_AWQ", "W4A8_AWQ", "W4A16_GPTQ", "FP8",
                     "W8A8_SQ_PER_CHANNEL", "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN",
                     "W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN", "W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN",
                     "W8A8_SQ_PER_TENSOR_PLUGIN"}


def pp_layers(num_layers: int, pp_size: int, pp_rank: int) -> range:
    per_stage = num_layers // pp_size
    return range(pp_rank * per_stage, (pp_rank + 1) * per_stage)


def rank_tensors(num_layers: int, tp_size: int, pp_size: int, rank: int,
                 dtype_st: str, quant_algo: Optional[str]) -> List[Tuple[str, str]]:
    """(name, safetensors dtype) of every tensor rank{rank}.safetensors holds."""
    pp_rank = rank // tp_size
    weight_only = quant_algo in WEIGHT_ONLY_ALGOS
    out: List[Tuple[str, str]] = []
    if pp_rank == 0:
        out.append(("transformer.vocab_embedding.weight", dtype_st))
    for local, _ in enumerate(pp_layers(num_layers, pp_size, pp_rank)):
        prefix = f"transformer.layers.{local}."
        for module in LINEAR_MODULES:
            if weight_only:
                out.append((f"{prefix}{module}.weight", "I8"))
                out.append((f"{prefix}{module}.per_channel_scale", dtype_st))
            else:
                out.append((f"{prefix}{module}.weight", dtype_st))
        out.append((f"{prefix}input_layernorm.weight", dtype_st))
        out.append((f"{prefix}post_layernorm.weight", dtype_st))
    if pp_rank == pp_size - 1:
        out.append(("lm_head.weight", dtype_st))
        out.append(("transformer.ln_f.weight", dtype_st))
    return out

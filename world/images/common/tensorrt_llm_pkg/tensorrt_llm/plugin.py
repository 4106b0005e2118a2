"""Plugin configuration of trtllm-build v0.8.0: its fields, defaults and command-line flags.

Facts from tensorrt_llm/plugin/plugin.py of the v0.8.0 era (see test/fixtures/
trtllm-v0.8.0-flags.json, where the defaults are marked unverified at the tag): the flags are the
`cli_plugin_args` subset of the PluginConfig fields, in field order; str fields take
float16|float32|bfloat16|disable, bool fields take enable|disable, tokens_per_block an int.
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Tuple, Union

# (field, kind, default) in PluginConfig's declaration order. kind: "str" | "bool" | "int".
FIELDS: List[Tuple[str, str, Union[str, bool, int, None]]] = [
    ("bert_attention_plugin", "str", "float16"),
    ("gpt_attention_plugin", "str", "float16"),
    ("gemm_plugin", "str", None),
    ("smooth_quant_gemm_plugin", "str", None),
    ("identity_plugin", "str", None),
    ("layernorm_quantization_plugin", "str", None),
    ("rmsnorm_quantization_plugin", "str", None),
    ("nccl_plugin", "str", "float16"),
    ("lookup_plugin", "str", None),
    ("lora_plugin", "str", None),
    ("weight_only_groupwise_quant_matmul_plugin", "str", None),
    ("weight_only_quant_matmul_plugin", "str", None),
    ("quantize_per_token_plugin", "bool", False),
    ("quantize_tensor_plugin", "bool", False),
    ("moe_plugin", "str", "float16"),
    ("context_fmha", "bool", True),
    ("context_fmha_fp32_acc", "bool", False),
    ("paged_kv_cache", "bool", True),
    ("remove_input_padding", "bool", True),
    ("use_custom_all_reduce", "bool", True),
    ("multi_block_mode", "bool", False),
    ("enable_xqa", "bool", True),
    ("attention_qk_half_accumulation", "bool", False),
    ("tokens_per_block", "int", 128),
    ("use_paged_context_fmha", "bool", False),
    ("use_context_fmha_for_generation", "bool", False),
]

CLI_PLUGIN_ARGS = [
    # Plugins
    "bert_attention_plugin", "gpt_attention_plugin", "gemm_plugin", "lookup_plugin", "lora_plugin",
    "moe_plugin",
    # Features
    "context_fmha", "context_fmha_fp32_acc", "paged_kv_cache", "remove_input_padding",
    "use_custom_all_reduce", "multi_block_mode", "enable_xqa", "attention_qk_half_accumulation",
    "tokens_per_block", "use_paged_context_fmha", "use_context_fmha_for_generation",
]

PLUGIN_OPTIONS = ["float16", "float32", "bfloat16", "disable"]


def add_plugin_argument(parser) -> None:
    for name, kind, default in FIELDS:
        if name not in CLI_PLUGIN_ARGS:
            continue
        if kind == "str":
            parser.add_argument("--" + name, type=str, default=default, choices=PLUGIN_OPTIONS)
        elif kind == "bool":
            parser.add_argument("--" + name, type=str, default="enable" if default else "disable",
                                choices=["enable", "disable"])
        else:
            parser.add_argument("--" + name, type=int, default=default)


def from_arguments(args: argparse.Namespace) -> Dict[str, Optional[Union[str, bool, int]]]:
    """The PluginConfig the arguments describe: 'disable' -> None, enable|disable -> bool."""
    config: Dict[str, Optional[Union[str, bool, int]]] = {name: default for name, _, default in FIELDS}
    values = vars(args)
    for name, kind, _ in FIELDS:
        if name not in values:
            continue
        value = values[name]
        if kind == "bool":
            config[name] = value == "enable"
        elif kind == "str":
            config[name] = None if value == "disable" else value
        else:
            config[name] = value
    return config

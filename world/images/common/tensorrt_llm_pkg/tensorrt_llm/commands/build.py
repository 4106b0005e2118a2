"""`trtllm-build` of TensorRT-LLM v0.8.0, as a strict stand-in.

The flags, types, defaults and choices are those of tensorrt_llm/commands/build.py at v0.8.0
(commit 5955b8afbad2ddcc3156202b16c567e94c52248f) plus the plugin flags of its plugin.py; see
test/fixtures/trtllm-v0.8.0-flags.json. It reads the checkpoint the way the real command does
(config.json, then rank{r}.safetensors for every rank of mapping.world_size) and writes the
engine layout of v0.8.0 (config.json with version/pretrained_config/build_config, rank{r}.engine).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import json
import os
import sys
import time

from llama3_trt_standin import engine as engine_fmt
from llama3_trt_standin import llama, record, safetensors_io
from llama3_trt_standin.common import DTYPE_TO_ST, die

from .. import plugin as plugin_mod
from ..version import __version__

TOOL = "trtllm-build"

# Architectures of MODEL_MAP whose checkpoint layout the stand-in knows (Llama family).
SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM", "MistralForCausalLM"}
# Other names of v0.8.0's MODEL_MAP: accepted by the real command, unknown to the stand-in.
OTHER_MODEL_MAP = {
    "OPTForCausalLM", "BloomForCausalLM", "FalconForCausalLM", "PhiForCausalLM", "MambaLMHeadModel",
    "GPTForCausalLM", "GPTJForCausalLM", "GPTNeoXForCausalLM", "MixtralForCausalLM",
    "InternLMForCausalLM", "MedusaForCausalLm", "GemmaForCausalLM", "BaichuanForCausalLM",
    "ChatGLMForCausalLM", "MPTForCausalLM", "QWenForCausalLM",
}


def parse_arguments_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument('--checkpoint_dir', type=str, default=None)
    parser.add_argument('--model_config', type=str, default=None)
    parser.add_argument('--build_config', type=str, default=None)
    parser.add_argument('--model_cls_file', type=str, default=None)
    parser.add_argument('--model_cls_name', type=str, default=None)
    parser.add_argument('--timing_cache', type=str, default='model.cache')
    parser.add_argument('--log_level', type=str, default='info')
    parser.add_argument('--profiling_verbosity', type=str, default='layer_names_only',
                        choices=['layer_names_only', 'detailed', 'none'])
    parser.add_argument('--enable_debug_output', default=False, action='store_true')
    parser.add_argument('--output_dir', type=str, default='engine_outputs')
    # The real default is the string '1'; argparse converts it with type=int.
    parser.add_argument('--workers', type=int, default='1')
    parser.add_argument('--max_batch_size', type=int, default=1)
    parser.add_argument('--max_input_len', type=int, default=1024)
    parser.add_argument('--max_output_len', type=int, default=1024)
    parser.add_argument('--max_beam_width', type=int, default=1)
    parser.add_argument('--max_num_tokens', type=int, default=None)
    parser.add_argument('--max_prompt_embedding_table_size', '--max_multimodal_len', type=int, default=0)
    parser.add_argument('--use_fused_mlp', default=False, action='store_true')
    parser.add_argument('--gather_all_token_logits', action='store_true', default=False)
    parser.add_argument('--gather_context_logits', action='store_true', default=False)
    parser.add_argument('--gather_generation_logits', action='store_true', default=False)
    parser.add_argument('--strongly_typed', action='store_true', default=False)
    parser.add_argument('--builder_opt', type=int, default=None)
    parser.add_argument('--logits_dtype', type=str, default=None, choices=['float16', 'float32'])
    parser.add_argument('--weight_only_precision', type=str, default=None, choices=['int8', 'int4'])
    plugin_config_parser = parser.add_argument_group("plugin_config")
    plugin_mod.add_plugin_argument(plugin_config_parser)
    return parser


def _log(level: str, message: str) -> None:
    stamp = datetime.datetime.now().strftime("%m/%d/%Y-%H:%M:%S")
    print(f"[{stamp}] [TRT-LLM] [{level}] {message}", flush=True)


def check_max_num_tokens(max_num_tokens, max_batch_size, max_input_len, remove_input_padding,
                         enable_context_fmha, tokens_per_block):
    """tensorrt_llm/_common.py check_max_num_tokens at v0.8.0 (same arithmetic and warnings)."""
    if not remove_input_padding:
        if max_num_tokens is not None:
            _log("W", "remove_input_padding is not enabled, the specified max_num_tokens will be ignored.")
        return max_num_tokens
    if max_num_tokens is None:
        max_num_tokens = max_input_len * max_batch_size
        _log("W", "remove_input_padding is enabled, while max_num_tokens is not set, setting to "
             "max_batch_size*max_input_len. It may not be optimal to set "
             "max_num_tokens=max_batch_size*max_input_len when remove_input_padding is enabled.")
    if max_num_tokens > max_input_len * max_batch_size:
        max_num_tokens = max_input_len * max_batch_size
        _log("W", f"max_num_tokens shouldn't be greater than max_input_len * max_batch_size, "
             f"specifying to max_input_len * max_batch_size ({max_num_tokens}).")
    if max_num_tokens < max_input_len and not enable_context_fmha:
        _log("W", f"When enable_context_fmha is not turned on, max_num_tokens ({max_num_tokens}) should "
             f"be greater than max_input_len ({max_input_len}), specifying to max_input_len.")
        max_num_tokens = max_input_len
    elif max_num_tokens < tokens_per_block and enable_context_fmha:
        _log("W", f"When enable_context_fmha is turned on, max_num_tokens ({max_num_tokens}) should be "
             f"greater than tokens_per_block ({tokens_per_block}), specifying to tokens_per_block.")
        max_num_tokens = tokens_per_block
    return max_num_tokens


def _read_checkpoint_config(path: str) -> dict:
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        die("FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'")
    except (OSError, json.JSONDecodeError) as e:
        die("json.decoder.JSONDecodeError", f"{path}: {e}")
    if not isinstance(config, dict):
        die("TypeError", f"{path} does not hold a JSON object")
    return config


def _validate_checkpoint_config(config: dict, path: str) -> dict:
    architecture = config.get("architecture")
    if not isinstance(architecture, str):
        die("KeyError", "'architecture'")
    if architecture not in SUPPORTED_ARCHITECTURES:
        if architecture in OTHER_MODEL_MAP:
            die("NotImplementedError", f"the test world's trtllm-build knows Llama checkpoints only, not {architecture}")
        die("RuntimeError", f"Unsupported model architecture: {architecture}")
    for key in ("dtype", "num_hidden_layers", "num_attention_heads", "hidden_size", "vocab_size", "hidden_act"):
        if key not in config:
            die("KeyError", f"'{key}' (missing from {path})")
    if config["dtype"] not in DTYPE_TO_ST:
        die("ValueError", f"unsupported dtype {config['dtype']!r} in {path}")
    mapping = config.get("mapping") or {}
    tp = mapping.get("tp_size", 1)
    pp = mapping.get("pp_size", 1)
    world = mapping.get("world_size", 1)
    if not all(isinstance(v, int) and v > 0 for v in (tp, pp, world)):
        die("ValueError", f"invalid mapping in {path}: {mapping}")
    if world != tp * pp:
        die("ValueError", f"world_size must equal to pp_size * tp_size, but got {world} != {pp} * {tp}")
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    if heads % tp != 0:
        die("AssertionError", f"num_attention_heads ({heads}) must be divisible by tp_size ({tp})")
    if kv_heads >= tp and kv_heads % tp != 0:
        die("AssertionError", f"num_key_value_heads ({kv_heads}) must be divisible by tp_size ({tp})")
    if config["num_hidden_layers"] % pp != 0:
        die("AssertionError", f"num_hidden_layers ({config['num_hidden_layers']}) must be divisible by pp_size ({pp})")
    quant = config.get("quantization") or {}
    if quant.get("quant_algo") not in llama.KNOWN_QUANT_ALGOS:
        die("ValueError", f"unknown quant_algo {quant.get('quant_algo')!r} in {path}")
    return config


def _check_rank_file(ckpt_dir: str, rank: int, config: dict) -> None:
    path = os.path.join(ckpt_dir, f"rank{rank}.safetensors")
    if not os.path.isfile(path):
        die("FileNotFoundError", f"No such file or directory: \"{path}\"")
    try:
        tensors, _ = safetensors_io.read_header(path)
    except safetensors_io.SafetensorsError as e:
        die("safetensors_rust.SafetensorError", f"Error while deserializing header: {e}")
    mapping = config.get("mapping") or {}
    expected = llama.rank_tensors(config["num_hidden_layers"], mapping.get("tp_size", 1),
                                  mapping.get("pp_size", 1), rank, DTYPE_TO_ST[config["dtype"]],
                                  (config.get("quantization") or {}).get("quant_algo"))
    expected_names = {n for n, _ in expected}
    unexpected = sorted(set(tensors) - expected_names)
    if unexpected:
        die("AssertionError", f"Encounter unexpected names: {set(unexpected[:8])} in {path}")
    missing = sorted(expected_names - set(tensors))
    if missing:
        die("RuntimeError", f"Required but not provided tensors: {set(missing[:8])} (in {path})")
    for name, dtype in expected:
        if tensors[name].dtype != dtype:
            die("AssertionError", f"{path}: tensor {name} is {tensors[name].dtype}, the checkpoint config "
                f"(dtype {config['dtype']}, quant_algo {(config.get('quantization') or {}).get('quant_algo')}) needs {dtype}")


def main(argv=None) -> int:
    behaviour = record.start(TOOL, argv)
    parser = parse_arguments_parser()
    args = parser.parse_args(argv)
    if args.gather_all_token_logits:
        args.gather_context_logits = True
        args.gather_generation_logits = True
    record.apply_signals(behaviour)
    tik = time.time()

    plugin_config = plugin_mod.from_arguments(args)
    for name, _, _ in plugin_mod.FIELDS:
        if name in vars(args):
            _log("I", f"Set {name} to {plugin_config[name]}.")

    if not os.path.exists(args.output_dir):
        os.makedirs(args.output_dir)

    if args.model_cls_file is not None:
        die("NotImplementedError", "the test world's trtllm-build cannot load --model_cls_file")

    build_config = {
        "max_input_len": args.max_input_len,
        "max_output_len": args.max_output_len,
        "max_batch_size": args.max_batch_size,
        "max_beam_width": args.max_beam_width,
        "max_num_tokens": args.max_num_tokens,
        "max_prompt_embedding_table_size": args.max_prompt_embedding_table_size,
        "gather_context_logits": args.gather_context_logits,
        "gather_generation_logits": args.gather_generation_logits,
        "strongly_typed": args.strongly_typed,
        "builder_opt": args.builder_opt,
        "profiling_verbosity": args.profiling_verbosity,
        "enable_debug_output": args.enable_debug_output,
    }
    if args.build_config is None:
        build_config["max_num_tokens"] = check_max_num_tokens(
            max_num_tokens=args.max_num_tokens, max_batch_size=args.max_batch_size,
            max_input_len=args.max_input_len, remove_input_padding=args.remove_input_padding == "enable",
            enable_context_fmha=args.context_fmha == "enable", tokens_per_block=args.tokens_per_block)
    else:
        # BuildConfig.from_json_file: the file's values, the plugin config from the command line.
        loaded = _read_checkpoint_config(args.build_config)
        for key in build_config:
            if key in loaded:
                build_config[key] = loaded[key]

    source = args.checkpoint_dir if args.checkpoint_dir is not None else args.model_config
    if source is None:
        die("AttributeError", "'NoneType' object has no attribute 'lower'")
    if source.lower().endswith(".json"):
        ckpt_dir = None
        config_path = source
    else:
        ckpt_dir = source
        config_path = os.path.join(source, "config.json")
    model_config = _validate_checkpoint_config(_read_checkpoint_config(config_path), config_path)

    # Plugins the model code needs (stand-in rule, wording ours): the attention of a GPT-like
    # decoder without the GPT attention plugin has neither a paged KV cache nor packed input.
    if plugin_config["gpt_attention_plugin"] is None:
        if plugin_config["paged_kv_cache"]:
            die("AssertionError", "Paged KV cache is enabled (--paged_kv_cache enable, the default) but the GPT "
                "attention plugin is disabled (--gpt_attention_plugin disable)")
        if plugin_config["remove_input_padding"]:
            die("AssertionError", "Padding removal is enabled (--remove_input_padding enable, the default) but the "
                "GPT attention plugin is disabled (--gpt_attention_plugin disable)")
    dtype = model_config["dtype"]
    for name in ("gpt_attention_plugin", "gemm_plugin"):
        if plugin_config[name] is not None and plugin_config[name] != dtype:
            _log("W", f"{name} is {plugin_config[name]} while the checkpoint's dtype is {dtype}")

    if args.logits_dtype is not None:
        model_config["logits_dtype"] = args.logits_dtype
    model_config["use_prompt_tuning"] = build_config["max_prompt_embedding_table_size"] > 0
    quant = model_config.setdefault("quantization", {})
    if quant.get("quant_algo") is None and args.weight_only_precision is not None:
        quant["quant_algo"] = "W4A16" if args.weight_only_precision == "int4" else "W8A16"
        # The checkpoint holds unquantized weights: the rank files keep the model dtype.
        rank_check_config = copy.deepcopy(model_config)
        rank_check_config["quantization"] = dict(quant, quant_algo=None)
    else:
        rank_check_config = model_config

    world, tp, pp = engine_fmt.world_of(model_config)
    if ckpt_dir is not None:
        for rank in range(world):
            _check_rank_file(ckpt_dir, rank, rank_check_config)

    # Plugins the builder sets by itself (build_model at v0.8.0).
    if quant.get("quant_algo") in llama.WEIGHT_ONLY_ALGOS and not model_config.get("disable_weight_only_quant_plugin"):
        plugin_config["weight_only_quant_matmul_plugin"] = dtype
    elif quant.get("quant_algo") in ("W4A16_AWQ", "W4A8_AWQ", "W4A16_GPTQ"):
        plugin_config["weight_only_groupwise_quant_matmul_plugin"] = dtype
    plugin_config["nccl_plugin"] = dtype if world > 1 else None
    build_config["plugin_config"] = plugin_config

    record.apply_common(TOOL, behaviour)

    engine_config = {
        "version": __version__,
        "pretrained_config": model_config,
        "build_config": build_config,
    }
    fingerprint = hashlib.sha256(json.dumps(engine_config, sort_keys=True).encode()).hexdigest()
    for rank in range(world):
        path = os.path.join(args.output_dir, f"rank{rank}.engine")
        _log("I", f"Serializing engine to {path}...")
        engine_fmt.write_rank_engine(path, {
            "tensorrt_llm_version": __version__,
            "rank": rank,
            "world_size": world,
            "tp_size": tp,
            "pp_size": pp,
            "dtype": dtype,
            "architecture": model_config["architecture"],
            "dummy_weights": ckpt_dir is None,
            "config_sha256": fingerprint,
        })
        _log("I", "Engine serialized. Total time: 00:00:00")
    with open(os.path.join(args.output_dir, "config.json"), "w") as f:
        json.dump(engine_config, f, indent=4)
    t = time.strftime('%H:%M:%S', time.gmtime(time.time() - tik))
    _log("I", f"Total time of building all engines: {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

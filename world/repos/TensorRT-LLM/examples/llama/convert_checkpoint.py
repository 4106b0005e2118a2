"""examples/llama/convert_checkpoint.py of TensorRT-LLM v0.8.0 -- stand-in of the llama3-trt test world.

Same command line as the real script at v0.8.0 (commit 5955b8afbad2ddcc3156202b16c567e94c52248f;
test/fixtures/trtllm-v0.8.0-flags.json in the llama3-trt project). It reads a Hugging Face Llama
checkpoint (config.json + safetensors shards) and writes a TensorRT-LLM checkpoint: config.json in
the v0.8.0 layout and one small, valid rank{r}.safetensors per rank.

Like the real one it imports tensorrt_llm first, so it only runs where that package is installed.
"""

import argparse
import json
import os
import time

import tensorrt_llm  # noqa: F401  (the real script needs it for its quantization op)

from llama3_trt_standin import llama, record, safetensors_io
from llama3_trt_standin.common import DTYPE_TO_ST, die

TOOL = "convert_checkpoint.py"

# LoRA module names of Llama (HF name -> TensorRT-LLM name), written into config.json as v0.8.0 does.
HF_MODULES_TO_TRTLLM_MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_dense",
    "gate_proj": "mlp_h_to_4h",
    "down_proj": "mlp_4h_to_h",
    "up_proj": "mlp_gate",
}


def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('--model_dir', type=str, default=None)
    parser.add_argument('--meta_ckpt_dir', type=str, default=None)
    parser.add_argument('--tp_size', type=int, default=1)
    parser.add_argument('--pp_size', type=int, default=1)
    parser.add_argument('--dtype', type=str, default='float16', choices=['float32', 'bfloat16', 'float16'])
    parser.add_argument('--vocab_size', type=int, default=32000)
    parser.add_argument('--n_positions', type=int, default=2048)
    parser.add_argument('--n_layer', type=int, default=32)
    parser.add_argument('--n_head', type=int, default=32)
    parser.add_argument('--n_kv_head', type=int, default=None)
    parser.add_argument('--n_embd', type=int, default=4096)
    parser.add_argument('--inter_size', type=int, default=11008)
    parser.add_argument('--rms_norm_eps', type=float, default=1e-06)
    parser.add_argument('--use_weight_only', default=False, action="store_true")
    parser.add_argument('--disable_weight_only_quant_plugin', default=False, action="store_true")
    parser.add_argument('--weight_only_precision', const='int8', type=str, nargs='?', default='int8',
                        choices=['int8', 'int4', 'int4_gptq'])
    parser.add_argument('--smoothquant', '-sq', type=float, default=None)
    parser.add_argument('--per_channel', action="store_true", default=False)
    parser.add_argument('--per_token', action="store_true", default=False)
    parser.add_argument('--int8_kv_cache', default=False, action="store_true")
    parser.add_argument('--ammo_quant_ckpt_path', type=str, default=None)
    parser.add_argument('--per_group', default=False, action="store_true")
    parser.add_argument('--enable_fp8', default=False, action='store_true')
    parser.add_argument('--fp8_kv_cache', default=False, action="store_true")
    parser.add_argument('--load_by_shard', action='store_true')
    parser.add_argument('--hidden_act', type=str, default='silu')
    parser.add_argument('--rotary_base', type=float, default=10000.0)
    parser.add_argument('--rotary_scaling', nargs=2, type=str, default=None)
    parser.add_argument('--group_size', type=int, default=128)
    parser.add_argument("--storage-type", "-t", type=str, default="fp32", choices=["fp32", "fp16"])
    parser.add_argument("--dataset-cache-dir", type=str, default=None)
    parser.add_argument("--load_model_on_cpu", action="store_true")
    parser.add_argument('--use_parallel_embedding', action="store_true", default=False)
    parser.add_argument('--embedding_sharding_dim', type=int, default=0, choices=[0, 1])
    parser.add_argument('--use_embedding_sharing', action="store_true", default=False)
    parser.add_argument('--use_prompt_tuning', action="store_true", default=False)
    parser.add_argument('--output_dir', type=str, default='tllm_checkpoint')
    parser.add_argument('--workers', type=int, default=1)
    # Defaults: MoeConfig.ParallelismMode.TENSOR_PARALLEL and ExpertScaleNormalizationMode.RENORMALIZE.
    parser.add_argument('--moe_num_experts', default=0, type=int)
    parser.add_argument('--moe_top_k', default=0, type=int)
    parser.add_argument('--moe_tp_mode', default=2, type=int)
    parser.add_argument('--moe_renorm_mode', default=1, type=int)
    parser.add_argument('--enable_pos_shift', default=False, action='store_true')
    parser.add_argument('--dense_context_fmha', default=False, action='store_true')
    parser.add_argument('--hf_lora_dir', type=str, default=None)
    parser.add_argument('--lora_target_modules', nargs='+', default=None,
                        choices=["attn_qkv", "attn_q", "attn_k", "attn_v", "attn_dense",
                                 "mlp_h_to_4h", "mlp_gate", "mlp_4h_to_h"])
    parser.add_argument('--max_lora_rank', type=int, default=64)
    return parser


def main():
    behaviour = record.start(TOOL)
    # The real script prints the package version before it parses its arguments.
    print(tensorrt_llm.__version__, flush=True)
    args = build_parser().parse_args()
    record.apply_signals(behaviour)
    world_size = args.tp_size * args.pp_size
    tik = time.time()

    if args.tp_size <= 0 or args.pp_size <= 0:
        die("ValueError", f"tp_size and pp_size must be positive, got {args.tp_size} and {args.pp_size}")
    if not os.path.exists(args.output_dir):
        os.makedirs(args.output_dir)

    hf_config = None
    if args.model_dir is not None:
        hf_config = llama.hf_config(args.model_dir)
        args.n_head = hf_config["num_attention_heads"]
        args.inter_size = hf_config["intermediate_size"]
        args.n_layer = hf_config["num_hidden_layers"]
        args.n_embd = hf_config["hidden_size"]
        args.n_kv_head = hf_config["num_key_value_heads"]
        args.rms_norm_eps = hf_config["rms_norm_eps"]
        args.vocab_size = hf_config["vocab_size"]
        args.n_positions = hf_config["max_position_embeddings"]
        # v0.8.0 copies rope_theta into rotary_base only for Mixtral: a Llama checkpoint keeps
        # --rotary_base (default 10000.0), whatever its config.json says.
    elif args.meta_ckpt_dir is not None:
        die("NotImplementedError", "the test world's convert_checkpoint.py reads Hugging Face checkpoints "
            "(--model_dir) only, not --meta_ckpt_dir")
    else:
        args.n_kv_head = args.n_kv_head or args.n_head

    if args.rotary_scaling is not None:
        rotary_scaling = {"type": args.rotary_scaling[0], "factor": float(args.rotary_scaling[1])}
        assert rotary_scaling["type"] in ["linear", "dynamic"]
        assert rotary_scaling["factor"] > 1.0
        args.rotary_scaling = rotary_scaling

    if hf_config is not None:
        wrong = llama.silently_wrong(hf_config, args.rotary_scaling)
        if wrong:
            die("ValueError", "the test world's stand-in refuses what the real v0.8.0 converts without error into an "
                "engine that answers wrongly: " + "; ".join(wrong))

    if args.smoothquant is not None or args.int8_kv_cache or args.enable_fp8 or args.fp8_kv_cache:
        die("NotImplementedError", "the test world's convert_checkpoint.py does not calibrate: no SmoothQuant, "
            "INT8/FP8 KV cache or FP8 (they need a dataset and a GPU)")
    if args.hf_lora_dir is not None:
        die("NotImplementedError", "the test world's convert_checkpoint.py does not convert LoRA weights")

    config = {
        'architecture': hf_config["architectures"][0] if hf_config is not None and hf_config.get("architectures")
        else "LlamaForCausalLM",
        'dtype': args.dtype,
        'logits_dtype': 'float32',
        'num_hidden_layers': args.n_layer,
        'num_attention_heads': args.n_head,
        'hidden_size': args.n_embd,
        'intermediate_size': args.inter_size,
        'num_key_value_heads': args.n_kv_head,
        'vocab_size': args.vocab_size,
        'position_embedding_type': 'rope_gpt_neox',
        'max_position_embeddings': args.n_positions,
        'hidden_act': args.hidden_act,
        'rotary_base': args.rotary_base,
        'rotary_scaling': args.rotary_scaling,
        'norm_epsilon': args.rms_norm_eps,
        'quantization': {
            'quant_algo': None,
            'kv_cache_quant_algo': None,
            "sq_use_plugin": False,
            'exclude_modules': ['lm_head'],
        },
        'mapping': {
            'world_size': world_size,
            'tp_size': args.tp_size,
            'pp_size': args.pp_size,
        },
        'use_parallel_embedding': args.use_parallel_embedding,
        'embedding_sharding_dim': args.embedding_sharding_dim,
        'share_embedding_table': args.use_embedding_sharing,
        'use_prompt_tuning': args.use_prompt_tuning,
        'moe_num_experts': args.moe_num_experts,
        'moe_top_k': args.moe_top_k,
        'moe_tp_mode': args.moe_tp_mode,
        'moe_normalization_mode': args.moe_renorm_mode,
        'enable_pos_shift': args.enable_pos_shift,
        'dense_context_fmha': args.dense_context_fmha,
        'max_lora_rank': args.max_lora_rank,
        'lora_target_modules': args.lora_target_modules,
        'hf_modules_to_trtllm_modules': HF_MODULES_TO_TRTLLM_MODULES,
        'trtllm_modules_to_hf_modules': {v: k for k, v in HF_MODULES_TO_TRTLLM_MODULES.items()},
        'disable_weight_only_quant_plugin': args.disable_weight_only_quant_plugin,
    }
    if args.use_weight_only:
        if args.weight_only_precision == 'int8':
            config['quantization']['quant_algo'] = 'W8A16'
        elif args.weight_only_precision == 'int4':
            config['quantization']['quant_algo'] = 'W4A16'
    if args.weight_only_precision == 'int4_gptq':
        config['quantization'].update({
            "group_size": args.group_size,
            "has_zero_point": True,
            "pre_quant_scale": False,
            'quant_algo': 'W4A16_GPTQ',
        })

    with open(os.path.join(args.output_dir, 'config.json'), 'w') as f:
        json.dump(config, f, indent=4)

    if args.model_dir is None and args.meta_ckpt_dir is None:
        return 0

    if args.weight_only_precision == 'int4_gptq':
        die("NotImplementedError", "the test world's convert_checkpoint.py does not read GPTQ checkpoints "
            "(--weight_only_precision int4_gptq needs --ammo_quant_ckpt_path)")

    # Tensor parallelism splits heads; GQA duplicates KV heads when there are fewer than ranks.
    heads, kv_heads, tp = args.n_head, args.n_kv_head, args.tp_size
    if heads % tp != 0:
        die("AssertionError", f"num_attention_heads ({heads}) is not divisible by tp_size ({tp})")
    if kv_heads != heads:
        if kv_heads < tp and tp % kv_heads != 0:
            die("AssertionError", f"tp_size ({tp}) is not a multiple of num_key_value_heads ({kv_heads})")
        if kv_heads >= tp and kv_heads % tp != 0:
            die("AssertionError", f"num_key_value_heads ({kv_heads}) is not divisible by tp_size ({tp})")
    if args.inter_size % tp != 0:
        die("AssertionError", f"intermediate_size ({args.inter_size}) is not divisible by tp_size ({tp})")
    if args.n_layer % args.pp_size != 0:
        # v0.8.0's Mapping.pp_layers would silently drop the remainder layers (stand-in refuses).
        die("AssertionError", f"num_hidden_layers ({args.n_layer}) is not divisible by pp_size ({args.pp_size})")

    # head_size = hidden_size // num_attention_heads (v0.8.0 convert_checkpoint.py:825) and the
    # K/V rows must split by it (832-833): a config.json with another head_dim fails there.
    head_size = args.n_embd // heads
    stated = hf_config.get("head_dim")
    if isinstance(stated, int) and stated != head_size:
        if (stated * kv_heads) % (tp * head_size) != 0:
            die("AssertionError", "assert (k_weight.shape[0] % (mapping.tp_size * head_size)) == 0")
        die("ValueError", f"the test world's stand-in refuses what the real v0.8.0 converts without error into an "
            f"engine that answers wrongly: head_dim {stated} is not hidden_size / num_attention_heads ({head_size})")
    if hf_config.get("quantization_config") is not None:
        # A pre-quantized checkpoint has qweight/scales, not the .weight get_weight looks up (627-630).
        die("KeyError", "'model.layers.0.self_attn.q_proj.weight'")

    # What AutoModelForCausalLM.from_pretrained reads: all shards, all tensors, one dtype.
    llama.validate_hf_weights(args.model_dir, hf_config)
    if hf_config.get("tie_word_embeddings"):
        # named_parameters() lists a tied lm_head once, as model.embed_tokens.weight: get_weight
        # (convert_checkpoint.py:627-630, 1165) then fails on 'lm_head.weight', after the whole load.
        die("KeyError", "'lm_head.weight'")

    record.apply_common(TOOL, behaviour)

    quant_algo = config['quantization']['quant_algo']
    dtype_st = DTYPE_TO_ST[args.dtype]
    for rank in range(world_size):
        tensors = [
            (name, st_dtype, (1,), None)
            for name, st_dtype in llama.rank_tensors(args.n_layer, args.tp_size, args.pp_size, rank,
                                                     dtype_st, quant_algo)
        ]
        safetensors_io.write(os.path.join(args.output_dir, f'rank{rank}.safetensors'), tensors,
                             {"format": "pt", "producer": "llama3-trt world stand-in"})

    t = time.strftime('%H:%M:%S', time.gmtime(time.time() - tik))
    print(f'Total time of converting checkpoints: {t}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

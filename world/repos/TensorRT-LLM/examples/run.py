"""examples/run.py of TensorRT-LLM v0.8.0 -- stand-in of the llama3-trt test world.

Same command line as the real script of v0.8.0 (test/fixtures/trtllm-v0.8.0-flags.json in the
llama3-trt project). It loads the engine directory's config.json and this rank's engine, checks the
request against the engine's build limits, and prints the real script's output format
(`Input [Text 0]: "..."` / `Output [Text 0 Beam 0]: "..."`) with a deterministic stand-in answer.
v0.8.0's run.py has no --end_id: generation ends at the tokenizer's eos token.
"""

import argparse
import sys

from utils import DEFAULT_PROMPT_TEMPLATES, load_tokenizer, read_model_name

import tensorrt_llm

from llama3_trt_standin import engine as engine_fmt
from llama3_trt_standin import record, textgen
from llama3_trt_standin.common import die

TOOL = "run.py"


def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('--max_output_len', type=int, required=True)
    parser.add_argument('--max_attention_window_size', type=int, default=None)
    parser.add_argument('--sink_token_length', type=int, default=None)
    parser.add_argument('--log_level', type=str, default='error')
    parser.add_argument('--engine_dir', type=str, default='engine_outputs')
    parser.add_argument('--use_py_session', default=False, action='store_true')
    parser.add_argument('--input_text', type=str, nargs='+',
                        default=["Born in north-east France, Soyer trained as a"])
    parser.add_argument('--no_prompt_template', dest='use_prompt_template', default=True, action='store_false')
    parser.add_argument('--input_file', type=str, default=None)
    parser.add_argument('--max_input_length', type=int, default=923)
    parser.add_argument('--output_csv', type=str, default=None)
    parser.add_argument('--output_npy', type=str, default=None)
    parser.add_argument('--output_logits_npy', type=str, default=None)
    parser.add_argument('--tokenizer_dir', default='gpt2')
    parser.add_argument('--tokenizer_type')
    parser.add_argument('--vocab_file')
    parser.add_argument('--num_beams', type=int, default=1)
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--top_k', type=int, default=1)
    parser.add_argument('--top_p', type=float, default=0.0)
    parser.add_argument('--length_penalty', type=float, default=1.0)
    parser.add_argument('--repetition_penalty', type=float, default=1.0)
    parser.add_argument('--presence_penalty', type=float, default=0.0)
    parser.add_argument('--beam_search_diversity_rate', type=float, default=0.0)
    parser.add_argument('--frequency_penalty', type=float, default=0.0)
    parser.add_argument('--debug_mode', default=False, action='store_true')
    parser.add_argument('--no_add_special_tokens', dest='add_special_tokens', default=True, action='store_false')
    parser.add_argument('--streaming', default=False, action='store_true')
    parser.add_argument('--streaming_interval', type=int, default=5)
    parser.add_argument('--prompt_table_path', type=str)
    parser.add_argument('--prompt_tasks')
    parser.add_argument('--lora_dir', type=str, default=None, nargs="+")
    parser.add_argument('--lora_task_uids', type=str, default=None, nargs="+")
    parser.add_argument('--lora_ckpt_source', type=str, default="hf", choices=["hf", "nemo"])
    parser.add_argument('--num_prepend_vtokens', nargs="+", type=int)
    parser.add_argument('--run_profiling', default=False, action='store_true')
    parser.add_argument('--medusa_choices', type=str, default=None)
    return parser


def _assertion(message):
    die("RuntimeError", f"[TensorRT-LLM][ERROR] Assertion failed: {message}")


def parse_input(tokenizer, input_text, prompt_template, input_file, add_special_tokens, max_input_length):
    texts = []
    if input_file is None:
        for text in input_text:
            texts.append(prompt_template.format(input_text=text) if prompt_template else text)
    elif input_file.endswith('.txt'):
        with open(input_file, 'r', encoding='utf-8', errors='replace') as f:
            texts.append(f.read())
    else:
        die("NotImplementedError", "the test world's run.py reads --input_text or a .txt --input_file only")
    batch = []
    for text in texts:
        tokens = textgen.tokenize(text)
        if add_special_tokens and tokenizer["add_bos"] and tokenizer["bos_token"]:
            tokens = [tokenizer["bos_token"]] + tokens
        # load_tokenizer sets truncation_side='left': the end of a long input is kept.
        batch.append(tokens[-max_input_length:] if max_input_length > 0 else [])
    return batch


def print_output(batch_input, batch_output, num_beams):
    for batch_idx, (inputs, outputs) in enumerate(zip(batch_input, batch_output)):
        print(f'Input [Text {batch_idx}]: \"{textgen.detokenize(inputs, False)}\"')
        for beam in range(num_beams):
            print(f'Output [Text {batch_idx} Beam {beam}]: \"{textgen.detokenize(outputs, False)}\"')
    sys.stdout.flush()


def main(args, behaviour):
    runtime_rank = tensorrt_llm.mpi_rank()
    model_name, model_version = read_model_name(args.engine_dir)
    tokenizer, pad_id, end_id = load_tokenizer(tokenizer_dir=args.tokenizer_dir, vocab_file=args.vocab_file,
                                               model_name=model_name, model_version=model_version,
                                               tokenizer_type=args.tokenizer_type)
    if args.medusa_choices is not None or args.lora_dir is not None or args.prompt_table_path is not None:
        die("NotImplementedError", "the test world's run.py supports plain generation only (no Medusa, LoRA or prompt tables)")

    prompt_template = None
    if args.use_prompt_template and model_name in DEFAULT_PROMPT_TEMPLATES:
        prompt_template = DEFAULT_PROMPT_TEMPLATES[model_name]
    batch_input = parse_input(tokenizer, args.input_text, prompt_template, args.input_file,
                              args.add_special_tokens, args.max_input_length)
    input_lengths = [len(x) for x in batch_input]

    # ModelRunner(Cpp).from_dir: the runtime's world must be the engine's, and its limits hold.
    config = engine_fmt.read_engine_config(args.engine_dir)
    world, _, _ = engine_fmt.world_of(config)
    runtime_world = tensorrt_llm.mpi_world_size()
    if world != runtime_world:
        die("AssertionError", f"Engine world size ({world}) != Runtime world size ({runtime_world})")
    try:
        engine_fmt.read_rank_engine(args.engine_dir, runtime_rank, config)
    except engine_fmt.EngineError as e:
        _assertion(str(e))
    build = config["build_config"]
    if len(batch_input) > build["max_batch_size"]:
        _assertion(f"batch size ({len(batch_input)}) exceeds the engine's max_batch_size ({build['max_batch_size']})")
    if max(input_lengths, default=0) > build["max_input_len"]:
        _assertion(f"input length ({max(input_lengths)}) exceeds the engine's max_input_len ({build['max_input_len']})")
    if args.max_output_len > build["max_output_len"]:
        _assertion(f"max_output_len ({args.max_output_len}) exceeds the engine's max_output_len ({build['max_output_len']})")
    if args.num_beams > build["max_beam_width"]:
        _assertion(f"num_beams ({args.num_beams}) exceeds the engine's max_beam_width ({build['max_beam_width']})")

    record.apply_common(TOOL, behaviour)

    garbled = textgen.rope_mismatch(config["pretrained_config"], tokenizer)
    batch_output = []
    for tokens in batch_input:
        prompt = "".join(tokens)
        if tokenizer["bos_token"] and prompt.startswith(tokenizer["bos_token"]):
            prompt = prompt[len(tokenizer["bos_token"]):]
        output, _ = textgen.generate(prompt, args.max_output_len, end_ids=[end_id], garbled=garbled)
        batch_output.append(output)

    if runtime_rank != 0:
        return
    if args.streaming:
        step = max(1, args.streaming_interval)
        longest = max((len(o) for o in batch_output), default=0)
        for n in range(step, longest + step, step):
            print_output(batch_input, [o[:n] for o in batch_output], args.num_beams)
    else:
        print_output(batch_input, batch_output, args.num_beams)


if __name__ == '__main__':
    behaviour = record.start(TOOL)
    args = build_parser().parse_args()
    record.apply_signals(behaviour)
    main(args, behaviour)

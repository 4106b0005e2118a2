"""examples/utils.py of TensorRT-LLM v0.8.0 -- stand-in of the llama3-trt test world.

Helpers of examples/run.py: the model name from an engine's config.json and the tokenizer.
"""

import tensorrt_llm  # noqa: F401  (the real utils.py imports tensorrt_llm.builder)

from llama3_trt_standin import engine as engine_fmt
from llama3_trt_standin import textgen
from llama3_trt_standin.common import die

# Llama has no default prompt template in v0.8.0: its inputs are used as given.
DEFAULT_PROMPT_TEMPLATES = {
    'InternLMForCausalLM': "<|User|>:{input_text}<eoh>\n<|Bot|>:",
    'QWenForCausalLM': "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{input_text}<|im_end|>\n<|im_start|>assistant\n",
}


def read_model_name(engine_dir):
    try:
        config = engine_fmt.read_engine_config(engine_dir)
    except engine_fmt.EngineError as e:
        die("FileNotFoundError" if "No such file" in str(e) else "KeyError", str(e))
    return config['pretrained_config']['architecture'], None


def load_tokenizer(tokenizer_dir=None, vocab_file=None, model_name='GPTForCausalLM', model_version=None,
                   tokenizer_type=None):
    """(tokenizer info, pad_id, end_id): pad falls back to eos, end is the tokenizer's eos."""
    if vocab_file is not None:
        die("NotImplementedError", "the test world's run.py reads Hugging Face tokenizer directories only")
    try:
        info = textgen.load_tokenizer_info(tokenizer_dir)
    except textgen.TokenizerError as e:
        die("OSError", str(e))
    end_id = info["eos_id"]
    if end_id is None:
        die("ValueError", f"tokenizer in {tokenizer_dir} has no eos_token the stand-in can map to an id")
    return info, end_id, end_id

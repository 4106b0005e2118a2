/**
 * The small text files of a Meta-Llama-3-8B-Instruct repository, as the world serves them.
 *
 * config.json, generation_config.json and original/params.json carry the real model's values
 * (the product reads them to size the engine and the KV cache); the tokenizer is a valid but tiny
 * byte-level BPE with the real 256 Llama 3 special tokens, so anything that loads it sees the
 * real ids (128000 begin_of_text, 128009 eot_id ...). README.md and LICENSE are stand-ins written
 * for the world, not copies of Meta's texts.
 */

/** Written as text, not JSON.stringify, to keep Python-style floats (`500000.0`) as on the Hub. */
export const CONFIG_JSON = `{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": 128009,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 8192,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
}
`;

/**
 * A Llama-3.1-8B-Instruct config.json (the real model's values): rope_scaling of type "llama3"
 * and 131072 positions, which TensorRT-LLM v0.8.0 cannot build right. The world serves it as
 * `world/llama-3.1-shaped`, for the tests that a refused model never downloads its weights.
 */
export const LLAMA31_CONFIG_JSON = `{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [
    128001,
    128008,
    128009
  ],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.42.3",
  "use_cache": true,
  "vocab_size": 128256
}
`;

/** The Instruct model ends a turn with <|eot_id|> (128009), so both ids are end tokens. */
export const GENERATION_CONFIG_JSON = `{
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128009],
  "do_sample": true,
  "temperature": 0.6,
  "max_length": 4096,
  "top_p": 0.9,
  "transformers_version": "4.40.0.dev0"
}
`;

/** Meta's original (non-HF) checkpoint parameters: the `original/` folder a downloader skips. */
export const ORIGINAL_PARAMS_JSON = `{"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}`;

/** The Llama 3 Instruct chat template (Jinja), as in its tokenizer_config.json. */
export const CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}" +
  "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}" +
  "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

export const BOS_TOKEN = "<|begin_of_text|>";
export const EOS_TOKEN = "<|eot_id|>";

/**
 * The 256 special tokens of Llama 3 (ids 128000..128255): the named ones plus
 * <|reserved_special_token_0..250|> filling the gaps in order.
 */
export function llama3SpecialTokens(): Array<{ id: number; content: string }> {
  const named = new Map<number, string>([
    [128000, "<|begin_of_text|>"],
    [128001, "<|end_of_text|>"],
    [128006, "<|start_header_id|>"],
    [128007, "<|end_header_id|>"],
    [128009, "<|eot_id|>"],
  ]);
  const tokens: Array<{ id: number; content: string }> = [];
  let reserved = 0;
  for (let id = 128000; id < 128256; id++) {
    tokens.push({ id, content: named.get(id) ?? `<|reserved_special_token_${reserved++}|>` });
  }
  return tokens;
}

/** GPT-2's byte-to-unicode table, which byte-level BPE (and so Llama 3's tokenizer.json) uses. */
function byteLevelAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const alphabet: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) alphabet.push(String.fromCodePoint(printable(b) ? b : next++));
  return alphabet;
}

/**
 * A tokenizers-library `tokenizer.json`: Llama 3's pre-tokenizer, post-processor and decoder,
 * a byte-level BPE model reduced to the 256 byte tokens (no merges), and the real added tokens.
 */
export function tokenizerJson(): string {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((symbol, id) => (vocab[symbol] = id));
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: llama3SpecialTokens().map(({ id, content }) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: {
            Regex:
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
          },
          behavior: "Isolated",
          invert: false,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: BOS_TOKEN, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [128000], tokens: [BOS_TOKEN] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: [],
    },
  };
  return JSON.stringify(tokenizer, null, 2) + "\n";
}

export function tokenizerConfigJson(): string {
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const { id, content } of llama3SpecialTokens()) {
    addedTokensDecoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  const config = {
    added_tokens_decoder: addedTokensDecoder,
    bos_token: BOS_TOKEN,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    eos_token: EOS_TOKEN,
    model_input_names: ["input_ids", "attention_mask"],
    // The real file says 1000000000000000019884624838656 (a Python float printed as int);
    // JSON.stringify cannot print that integer exactly, and no reader depends on its digits.
    model_max_length: 1e30,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  return JSON.stringify(config, null, 2) + "\n";
}

export function specialTokensMapJson(): string {
  const token = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  return JSON.stringify({ bos_token: token(BOS_TOKEN), eos_token: token(EOS_TOKEN) }, null, 2) + "\n";
}

/** Meta's tiktoken file format: one `base64(token) rank` line per token; here the 256 bytes only. */
export function originalTokenizerModel(): string {
  const lines: string[] = [];
  for (let b = 0; b < 256; b++) lines.push(`${Buffer.from([b]).toString("base64")} ${b}`);
  return lines.join("\n") + "\n";
}

export function readmeMd(repoId: string, gated: boolean): string {
  const gate = gated
    ? [
        "extra_gated_prompt: >-",
        "  This is the test world's stand-in for a gated repository: access is granted per user.",
        "extra_gated_button_content: Submit",
      ]
    : [];
  return [
    "---",
    "language:",
    "- en",
    "pipeline_tag: text-generation",
    "tags:",
    "- facebook",
    "- meta",
    "- pytorch",
    "- llama",
    "- llama-3",
    "license: llama3",
    ...gate,
    "---",
    `# ${repoId} (llama3-trt test world)`,
    "",
    "A Llama-3-8B-Instruct-shaped repository generated for tests: `config.json` carries the real",
    "architecture, the safetensors shards hold every real tensor name with tiny shapes and",
    "deterministic pseudo-random bf16 values. It is not a usable model.",
    "",
  ].join("\n");
}

export function licenseText(): string {
  return [
    "META LLAMA 3 COMMUNITY LICENSE AGREEMENT (test-world placeholder)",
    "",
    "This file stands in for the license shipped with Meta Llama 3 in the llama3-trt test world.",
    "The generated weights in this repository are pseudo-random and carry no rights or obligations.",
    "",
  ].join("\n");
}

/**
 * Which files git stores through LFS (matched against the file's base name). The fixture marks
 * exactly these as LFS, so `.gitattributes` and the served `lfs` metadata cannot disagree.
 */
export const LFS_PATTERNS: readonly string[] = ["*.bin", "*.model", "*.pt", "*.pth", "*.safetensors", "*.zip", "tokenizer.json"];

/** The attributes file of a Hub repository. */
export function gitattributes(): string {
  return LFS_PATTERNS.map((pattern) => `${pattern} filter=lfs diff=lfs merge=lfs -text`).join("\n") + "\n";
}

/** Added by the second commit ("main moved"). */
export function usePolicyMd(): string {
  return "# Acceptable Use Policy (test-world placeholder)\n\nAdded by the world's second commit.\n";
}

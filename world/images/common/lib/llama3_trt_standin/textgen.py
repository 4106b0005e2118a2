"""A deterministic stand-in for Llama 3 generation, shared by run.py and tritonserver.

No model runs in the test world, but the product's checks of generated text must still mean
something. So the "model" here behaves like an instruct model in the ways that matter:

- A prompt in the Llama 3 chat template gets an answer derived from the user's message, then
  `<|eot_id|>` (128009). A server that stops only at `<|end_of_text|>` (128001) does not stop
  there: it runs on with a fake next turn (`<|start_header_id|>user<|end_header_id|>...`) until
  max_tokens, as a real deployment with the wrong end_id does.
- A plain-text prompt is continued with deterministic words until max_tokens.
- An engine whose RoPE base differs from the checkpoint's (convert_checkpoint.py v0.8.0 ignores
  Llama's rope_theta unless --rotary_base is passed) produces deterministic gibberish.

"Tokens" are word pieces (a word with its leading whitespace) and special tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"

LLAMA3_SPECIAL_IDS: Dict[str, int] = {
    BEGIN_OF_TEXT: 128000,
    END_OF_TEXT: 128001,
    START_HEADER: 128006,
    END_HEADER: 128007,
    EOT: 128009,
}
ID_TO_SPECIAL = {v: k for k, v in LLAMA3_SPECIAL_IDS.items()}

_SPECIAL_RE = re.compile(r"<\|[a-z_]+(?:_id)?\|>|<\|reserved_special_token_\d+\|>")
_TOKEN_RE = re.compile(r"<\|[^|>]+\|>|\s*[^\s<]+|\s*<(?!\|)|\s+")

ASSISTANT_OPENING = f"{START_HEADER}assistant{END_HEADER}\n\n"
USER_OPENING = f"{START_HEADER}user{END_HEADER}\n\n"

_CONTINUATION_WORDS = (
    "the", "stand-in", "model", "keeps", "writing", "deterministic", "words", "for", "the",
    "test", "world", "and", "never", "stops", "before", "its", "budget", "of", "tokens", "runs",
    "out", "because", "plain", "text", "has", "no", "end", "of", "turn",
)
_GIBBERISH = ("zq", "vorp", "ll", "tsk", "quon", "ibb", "rrh", "xet", "plo", "ghf", "wub", "kna")


def tokenize(text: str) -> List[str]:
    """Split into special tokens and word pieces; their concatenation is the text again."""
    return _TOKEN_RE.findall(text)


def is_special(token: str) -> bool:
    return token in LLAMA3_SPECIAL_IDS or bool(_SPECIAL_RE.fullmatch(token))


def detokenize(tokens: Sequence[str], skip_special_tokens: bool) -> str:
    if skip_special_tokens:
        return "".join(t for t in tokens if not is_special(t))
    return "".join(tokens)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def last_user_message(prompt: str) -> Optional[str]:
    """The user's message if the prompt ends in the Llama 3 chat template's assistant opening."""
    if not prompt.endswith(ASSISTANT_OPENING):
        return None
    start = prompt.rfind(USER_OPENING)
    if start < 0:
        return None
    body = prompt[start + len(USER_OPENING):-len(ASSISTANT_OPENING)]
    if not body.endswith(EOT):
        return None
    return body[: -len(EOT)]


def answer_for(message: str) -> str:
    words = re.findall(r"[\w'-]+", message)[:8]
    topic = " ".join(words) if words else "nothing in particular"
    tag = _digest(message).hex()[:8]
    return f"Stand-in answer {tag}: you asked about {topic}."


def _stream(prompt: str, garbled: bool):
    """An endless token stream, as the "model" would emit it after the prompt."""
    if garbled:
        d = _digest("gibberish:" + prompt)
        i = 0
        while True:
            yield " " + _GIBBERISH[d[i % len(d)] % len(_GIBBERISH)] + _GIBBERISH[(d[(i + 7) % len(d)] + i) % len(_GIBBERISH)]
            i += 1
    message = last_user_message(prompt)
    if message is None:
        d = _digest("continue:" + prompt)
        i = 0
        while True:
            yield " " + _CONTINUATION_WORDS[(d[i % len(d)] + i) % len(_CONTINUATION_WORDS)]
            i += 1
    # Chat: answer, end the turn, then (if nobody stops us) invent the next exchange.
    turn = 0
    while True:
        text = answer_for(message) if turn == 0 else f"Follow-up answer {turn}: still about {answer_for(message)[16:]}"
        for t in tokenize(text):
            yield t
        yield EOT
        turn += 1
        yield START_HEADER
        yield "user"
        yield END_HEADER
        yield "\n\n"
        for t in tokenize(f"And what else can you tell me, question {turn}?"):
            yield t
        yield EOT
        yield START_HEADER
        yield "assistant"
        yield END_HEADER
        yield "\n\n"


def generate(prompt: str, max_tokens: int, end_ids: Sequence[int] = (),
             stop_words: Sequence[str] = (), garbled: bool = False, min_length: int = 0) -> Tuple[List[str], str]:
    """Generated tokens (the end token itself excluded) and why generation stopped:
    'end_id', 'stop_words' or 'length'. Before min_length tokens an end token does not end
    generation (TensorRT-LLM's min_length input: the end id is masked until then)."""
    ends = {ID_TO_SPECIAL[i] for i in end_ids if i in ID_TO_SPECIAL}
    out: List[str] = []
    if max_tokens <= 0:
        return out, "length"
    for token in _stream(prompt, garbled):
        if token in ends:
            if len(out) >= min_length:
                return out, "end_id"
            continue  # masked: the model goes on with what it would say next
        out.append(token)
        if stop_words:
            text = "".join(out)
            if any(w and text.endswith(w) for w in stop_words):
                return out, "stop_words"
        if len(out) >= max_tokens:
            return out, "length"
    return out, "length"  # unreachable: the stream is endless


# ----------------------------------------------------------------------------------------------
# Tokenizer directories

class TokenizerError(Exception):
    pass


def load_tokenizer_info(tokenizer_dir: str) -> dict:
    """What the stand-ins need from a Hugging Face tokenizer directory.

    Like AutoTokenizer.from_pretrained on a local path: the directory must exist and hold a
    tokenizer (tokenizer.json or tokenizer.model) and its tokenizer_config.json.
    Returns {eos_token, eos_id, bos_token, add_bos, rope_theta (from config.json or None)}.
    """
    if not os.path.isdir(tokenizer_dir):
        raise TokenizerError(
            f"Incorrect path_or_model_id: '{tokenizer_dir}'. Please provide either the path to a local "
            "folder or the repo_id of a model on the Hub.")
    has_tokenizer = any(os.path.isfile(os.path.join(tokenizer_dir, f)) for f in ("tokenizer.json", "tokenizer.model"))
    config_path = os.path.join(tokenizer_dir, "tokenizer_config.json")
    if not has_tokenizer or not os.path.isfile(config_path):
        raise TokenizerError(
            f"Can't load tokenizer for '{tokenizer_dir}'. Make sure that '{tokenizer_dir}' is the correct "
            "path to a directory containing all relevant files for a tokenizer "
            "(tokenizer.json or tokenizer.model, and tokenizer_config.json).")
    try:
        with open(config_path) as f:
            tok_cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{config_path} is not valid JSON: {e}") from e

    def token_text(value):
        if isinstance(value, dict):
            return value.get("content")
        return value

    eos = token_text(tok_cfg.get("eos_token"))
    bos = token_text(tok_cfg.get("bos_token"))
    ids: Dict[str, int] = dict(LLAMA3_SPECIAL_IDS)
    decoder = tok_cfg.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for k, v in decoder.items():
            if isinstance(v, dict) and isinstance(v.get("content"), str) and str(k).isdigit():
                ids[v["content"]] = int(k)
    tok_json = os.path.join(tokenizer_dir, "tokenizer.json")
    if os.path.isfile(tok_json):
        try:
            with open(tok_json) as f:
                tj = json.load(f)
            for t in tj.get("added_tokens") or []:
                if isinstance(t, dict) and isinstance(t.get("content"), str) and isinstance(t.get("id"), int):
                    ids[t["content"]] = t["id"]
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise TokenizerError(f"{tok_json} is not a valid tokenizer file: {e}") from e
    rope_theta = None
    model_cfg = os.path.join(tokenizer_dir, "config.json")
    if os.path.isfile(model_cfg):
        try:
            with open(model_cfg) as f:
                mc = json.load(f)
            if isinstance(mc, dict) and isinstance(mc.get("rope_theta"), (int, float)):
                rope_theta = float(mc["rope_theta"])
        except (OSError, json.JSONDecodeError):
            pass
    return {
        "eos_token": eos,
        "eos_id": ids.get(eos) if isinstance(eos, str) else None,
        "bos_token": bos,
        "add_bos": bool(tok_cfg.get("add_bos_token", bos is not None)),
        "rope_theta": rope_theta,
    }


def rope_mismatch(engine_pretrained_config: dict, tokenizer: dict) -> bool:
    """True when the engine's RoPE base is not the checkpoint's (both must be known)."""
    base = engine_pretrained_config.get("rotary_base")
    theta = tokenizer.get("rope_theta")
    if not isinstance(base, (int, float)) or theta is None:
        return False
    return abs(float(base) - theta) > 1e-6 * max(1.0, theta)

"""Token counts for observations that arrive without usage, with the model's own tokenizer.

OpenAI encodings come from ``bpe-openai`` (the ``tokenizers`` extra), which carries its BPE
tables inside the wheel and so works with no network. Without that package, or for a tokenizer
that has no offline implementation (Anthropic's ``claude``), nothing is counted: an observation
is left without usage rather than given a guessed one.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

# Model-name prefixes -> encoding, longest match first (OpenAI's published model table).
_ENCODING_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            "gpt-4o": "o200k_base", "chatgpt-4o": "o200k_base", "gpt-4.1": "o200k_base",
            "gpt-4.5": "o200k_base", "gpt-5": "o200k_base", "o1": "o200k_base",
            "o3": "o200k_base", "o4": "o200k_base", "ft:gpt-4o": "o200k_base",
            "gpt-4": "cl100k_base", "gpt-3.5": "cl100k_base", "gpt-35": "cl100k_base",
            "ft:gpt-4": "cl100k_base", "ft:gpt-3.5": "cl100k_base",
            "text-embedding-3": "cl100k_base", "text-embedding-ada-002": "cl100k_base",
            "davinci-002": "cl100k_base", "babbage-002": "cl100k_base",
            "ft:davinci-002": "cl100k_base", "ft:babbage-002": "cl100k_base",
            "text-davinci-002": "p50k_base", "text-davinci-003": "p50k_base",
            "code-davinci": "p50k_base", "code-cushman": "p50k_base",
            "text-davinci-001": "r50k_base", "text-curie-001": "r50k_base",
            "text-babbage-001": "r50k_base", "text-ada-001": "r50k_base",
            "davinci": "r50k_base", "curie": "r50k_base", "babbage": "r50k_base", "ada": "r50k_base",
        }.items(),
        key=lambda item: -len(item[0]),
    )
)  # fmt: skip


def encoding_name(model: str) -> str | None:
    """The BPE encoding an OpenAI model uses, or None when the model is unknown."""
    name = model.lower()
    for prefix, encoding in _ENCODING_PREFIXES:
        if name.startswith(prefix):
            return encoding
    return None


@cache
def _encoding(name: str) -> Any:
    try:
        import bpe_openai
    except ImportError:
        log.info("bpe-openai is not installed: observations without usage stay uncounted")
        return None
    return bpe_openai.get_encoding(name)


# Longer texts are left uncounted: tokenizing megabytes would hold up the writer for seconds
# (and the tokenizer refuses very long inputs anyway). Such generations should carry usage.
MAX_TOKENIZED_CHARS = 1_000_000


class _TooLong(Exception):
    pass


def _encode_len(encoding: Any, text: str) -> int:
    if len(text) > MAX_TOKENIZED_CHARS:
        raise _TooLong
    return len(encoding.encode_ordinary(text))


def tokenizer_available() -> bool:
    return _encoding("cl100k_base") is not None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str) and "role" in value:
        return value["content"]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and "role" in m for m in value)
    )


def _count_chat(encoding: Any, messages: list[dict[str, Any]], config: dict[str, Any]) -> int:
    """OpenAI's chat accounting: a fixed cost per message and per name, plus reply priming."""
    per_message = config.get("tokensPerMessage")
    per_name = config.get("tokensPerName")
    per_message = per_message if isinstance(per_message, int) else 3
    per_name = per_name if isinstance(per_name, int) else 1
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    budget = MAX_TOKENIZED_CHARS
    for message in messages:
        total += per_message
        for key, value in message.items():
            text = _text(value)
            budget -= len(text)
            if budget < 0:
                raise _TooLong
            total += _encode_len(encoding, text)
            if key == "name":
                total += per_name
    return total


def count_tokens(tokenizer_id: str | None, config: Any, value: Any, *, prompt: bool) -> int | None:
    """Tokens of an input (``prompt=True``) or output value; None when it cannot be counted."""
    if value is None or value == "" or tokenizer_id != "openai":
        return None
    config = config if isinstance(config, dict) else {}
    model = config.get("tokenizerModel")
    encoding_id = encoding_name(model) if isinstance(model, str) else None
    if encoding_id is None:
        return None
    encoding = _encoding(encoding_id)
    if encoding is None:
        return None
    try:
        if prompt and _is_chat(value):
            return _count_chat(encoding, value, config)
        return _encode_len(encoding, _text(value))
    except _TooLong:
        log.debug("not tokenizing a value of over %s characters", MAX_TOKENIZED_CHARS)
        return None
    except Exception:  # a tokenizer failure leaves usage empty; it never fails the write
        log.exception("tokenizing for %s failed", model)
        return None

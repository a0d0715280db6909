"""Text tokens without a tokenizer: the documented fallback when no model's own tokenizer is deployed.

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

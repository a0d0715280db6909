"""The no-repeat n-gram guard DeepSeek-OCR relies on against looping, as a pure function.

vLLM ships it as ``NGramPerReqLogitsProcessor`` (in ``vllm.model_executor.models.deepseek_ocr``); the transformers
engine applies the same rule through a ``LogitsProcessor`` built on :func:`banned_next_tokens`, so both engines
decode under the same constraint and their outputs stay comparable.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def banned_next_tokens(
    output_ids: Sequence[int], *, ngram_size: int, window_size: int, whitelist: Collection[int] = ()
) -> set[int]:
    """Tokens that would complete an n-gram already generated within the last ``window_size`` tokens.

    Same semantics as vLLM's ``NoRepeatNGramLogitsProcessor``: the current (n-1)-token suffix is looked up among
    the n-grams starting in the window, and each one's last token is banned, except whitelisted ones (``<td>``
    and ``</td>``, which legitimately repeat in tables).

    Args:
        output_ids: Tokens generated so far (prompt excluded).
        ngram_size: n.
        window_size: How far back n-grams are searched.
        whitelist: Token ids never banned.

    Returns:
        The token ids to mask for the next step (empty while fewer than n tokens exist).
    """
    n = len(output_ids)
    if n < ngram_size:
        return set()
    prefix = tuple(output_ids[n - (ngram_size - 1) :])
    start = max(0, n - window_size)
    stop = n - ngram_size + 1
    banned = {
        output_ids[i + ngram_size - 1]
        for i in range(start, stop)
        if tuple(output_ids[i : i + ngram_size - 1]) == prefix
    }
    return banned - set(whitelist)

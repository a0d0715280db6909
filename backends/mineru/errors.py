"""What an exception out of ``mineru.parser.parse`` means for the client whose document it was reading.

MinerU (and DocVortex under it) raise plain library exceptions on documents they cannot read: ``ValueError("CSV
exceeds max_grid_slots=250000")``, lxml's ``XMLSyntaxError``, ``zipfile.BadZipFile``, ``KeyError`` for a missing
package part, format-specific ``*ResourceLimitError`` / ``*EncryptedError`` classes. Left alone each was a 500.
:func:`classify_parse_error` types them at the one boundary where the client's bytes go in, so a failure *in the
parse* is always a 4xx/5xx that says what happened, while a failure in this project's own code around it (mapping
the result) stays a server fault: ``internal_error`` is for bugs.
"""

from __future__ import annotations

from shared.errors import OCRError
from shared.schema import ErrorCode

LIMIT_MARKERS = ("exceeds max_", "exceeds its byte limit", "too large", "too many", "excessive depth", "amplification")
"""Phrases of MinerU/DocVortex/lxml messages that mean a built-in safety limit was hit (lower-cased)."""


def classify_parse_error(error: BaseException, *, tier: str) -> OCRError:
    """The typed error for an exception raised while MinerU parsed a client's document.

    Args:
        error: What ``parse()`` raised.
        tier: The tier that ran, for messages.

    Returns:
        ``document_too_complex`` (memory, recursion, MinerU's own size limits), ``encrypted_document``,
        ``models_missing`` (a model our pre-check did not predict), ``invalid_page_range`` (MinerU refused the
        range), or ``invalid_document`` for anything else it raised on the document.
    """
    if isinstance(error, OCRError):
        return error
    name = type(error).__name__
    text = str(error)
    lowered = text.lower()
    detail = f"{name}: {text[:300]}" if text else name
    if isinstance(error, (MemoryError, RecursionError)) or "ResourceLimit" in name or "ImageLimit" in name:
        return OCRError(
            ErrorCode.DOCUMENT_TOO_COMPLEX,
            f"MinerU ran out of room reading this document ({detail})",
            accepted={"hint": "split the document or simplify it"},
        )
    if any(marker in lowered for marker in LIMIT_MARKERS):
        return OCRError(ErrorCode.DOCUMENT_TOO_COMPLEX, f"the document exceeds a limit of MinerU's parser ({detail})")
    if "Encrypted" in name or getattr(error, "code", None) in ("file_encrypted", "encrypted"):
        return OCRError(
            ErrorCode.ENCRYPTED_DOCUMENT, f"the document is encrypted ({detail})", accepted=["unencrypted documents"]
        )
    if isinstance(error, FileNotFoundError) and ("Model repo" in text or "not ready" in text):
        return OCRError(ErrorCode.MODELS_MISSING, f"MinerU tier {tier!r} needs models that are absent: {text}")
    if name == "InvalidRequestError" and getattr(error, "param", None) == "page_range":
        return OCRError(ErrorCode.INVALID_PAGE_RANGE, f"MinerU refused the page range: {text}")
    return OCRError(
        ErrorCode.INVALID_DOCUMENT,
        f"MinerU could not read this document ({detail})",
        accepted={"tier": tier},
    )

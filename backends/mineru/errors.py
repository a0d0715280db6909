"""What an exception out of ``mineru.parser.parse`` means for the client whose document it was reading.

MinerU (and DocVortex under it) raise plain library exceptions on documents they cannot read: ``ValueError("CSV
exceeds max_grid_slots=250000")``, lxml's ``XMLSyntaxError``, ``zipfile.BadZipFile``, ``KeyError`` for a missing
package part, format-specific ``*ResourceLimitError`` / ``*EncryptedError`` classes. Left alone each was a 500.
:func:`classify_parse_error` types them at the one boundary where the client's bytes go in, so a failure *in the
parse* is always a 4xx/5xx that says what happened, while a failure in this project's own code around it (mapping
the result) stays a server fault: ``internal_error`` is for bugs.

Not every failure inside ``parse`` is the document's. The model tiers run torch, vLLM or llama.cpp on the GPU,
built on first use inside ``parse``: CUDA out of memory, a CUDA error (illegal address, device-side assert, a
broken driver), a vLLM engine core that fails to start or dies, a runtime package that does not import. Those are
the backend's (:func:`device_fault`): ``backend_unavailable`` (503, retryable), and the parse process that saw one
is replaced (:class:`ProcessBroken`), since a CUDA context that faulted fails every later call in that process.
"""

from __future__ import annotations

import re

from shared.errors import OCRError
from shared.schema import ErrorCode

LIMIT_MARKERS = ("exceeds max_", "exceeds its byte limit", "too large", "too many", "excessive depth", "amplification")
"""Phrases of MinerU/DocVortex/lxml messages that mean a built-in safety limit was hit (lower-cased)."""


DEVICE_MESSAGES = re.compile(
    r"CUDA error|CUDA out of memory|out of memory on device|CUBLAS_STATUS|CUDNN_STATUS|cuDNN error|NCCL error"
    r"|device-side assert|no kernel image is available|Engine core initialization failed|EngineCore"
    r"|failed to allocate .*buffer|ggml_cuda|cudaMalloc",
    re.IGNORECASE,
)
"""Messages of torch, vLLM and llama.cpp that mean the device or the inference engine failed, not the document."""

ENGINE_ERROR_TYPES: dict[str, str] = {
    "OutOfMemoryError": "CUDA out of memory",  # torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same)
    "AcceleratorError": "CUDA error",  # torch >= 2.8: illegal memory access, launch failures...
    "VLLMServerError": "vLLM engine failure",  # vLLM's EngineDeadError, EngineGenerateError
}
"""Exception class names (anywhere in the MRO) that mean the device or the inference engine failed, and what to
call it. Read by name so this module never imports torch or vLLM."""


class ProcessBroken(Exception):
    """A failure that leaves the parse process unfit for another document; it answers with :attr:`error`, then ends.

    Args:
        error: The typed error the client gets (``backend_unavailable``).
    """

    def __init__(self, error: OCRError) -> None:
        super().__init__(error.message)
        self.error = error


def device_fault(error: BaseException) -> str | None:
    """What failed, when ``error`` is the GPU's or an inference engine's fault rather than the document's.

    Returns:
        A short reason (``CUDA out of memory``, ``CUDA error``, ``vLLM engine failure``, ``inference engine
        failure``), or None for anything else.
    """
    for cls in type(error).__mro__:
        if cls.__name__ in ENGINE_ERROR_TYPES:
            return ENGINE_ERROR_TYPES[cls.__name__]
    text = str(error)
    if isinstance(error, (RuntimeError, OSError, SystemError)) and DEVICE_MESSAGES.search(text):
        if "out of memory" in text.lower():
            return "CUDA out of memory"
        return "inference engine failure" if "engine" in text.lower() else "CUDA error"
    return None


def classify_parse_error(error: BaseException, *, tier: str) -> OCRError:
    """The typed error for an exception raised while MinerU parsed a client's document.

    Args:
        error: What ``parse()`` raised.
        tier: The tier that ran, for messages.

    Returns:
        ``document_too_complex`` (memory, recursion, MinerU's own size limits), ``encrypted_document``,
        ``models_missing`` (a model our pre-check did not predict), ``invalid_page_range`` (MinerU refused the
        range), ``backend_unavailable`` for the device's or an engine's failure (:func:`device_fault`) and for a
        runtime package that does not import, or ``invalid_document`` for anything else it raised on the document.
    """
    if isinstance(error, OCRError):
        return error
    name = type(error).__name__
    text = str(error)
    lowered = text.lower()
    detail = f"{name}: {text[:300]}" if text else name
    fault = device_fault(error)
    if fault is not None:
        return OCRError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"MinerU tier {tier!r} failed on this backend, not on the document ({fault}: {detail}); the parse "
            "process is replaced, retry the request",
            accepted={"retryable": True},
        )
    if isinstance(error, ImportError) or name == "TierDependencyError":
        return OCRError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"MinerU tier {tier!r} needs a runtime this backend cannot load ({detail})",
        )
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

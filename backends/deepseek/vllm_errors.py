"""vLLM's start-up failures, classified into what an operator can act on.

vLLM reports a bad model reference, a broken checkpoint and a crashed engine core with generic exception types
(``OSError`` or ``huggingface_hub`` errors for files, ``ValueError`` / pydantic ``ValidationError`` for a config
it cannot read, ``RuntimeError("Engine core initialization failed...")`` from the engine core process). A replica
must not turn these into a crash loop or an opaque 500: missing or unreadable files become ``models_missing``
with the command that fetches the model (the replica stays up and says so), everything else becomes
``backend_unavailable`` with the likely causes. Pure: tested with the exception types vLLM really raises.
"""

from __future__ import annotations

import re

from shared.errors import OCRError

_FILES = re.compile(
    r"repo id|repository id|local directory|does not appear to have a file|no such file|not found|config\.json"
    r"|tokenizer|unrecognized model|model_type|cached snapshot|outgoing traffic has been disabled|can't load",
    re.IGNORECASE,
)
"""Messages that mean: the model reference or its files are the problem (not the engine or the machine)."""

ENGINE_CORE_CAUSES = (
    "not enough memory for the model and its KV cache (lower max_model_len / max_num_seqs, raise "
    "gpu_memory_utilization, or set kv_cache_memory_gb), an attention configuration the device's kernels "
    "refuse, or a vLLM build that does not match the installed torch"
)


_PYDANTIC_VALUE_ERROR = re.compile(r"Value error, (.*?)(?: \[type=|$)", re.DOTALL)


def _first_line(error: BaseException, limit: int = 400) -> str:
    """The informative part of a message: pydantic's ``Value error, ...`` (vLLM validates its configs with
    pydantic, whose first line is only "1 validation error for ModelConfig"), else the first line."""
    message = str(error).strip()
    found = _PYDANTIC_VALUE_ERROR.search(message)
    text = found.group(1).strip() if found else (message.splitlines() or [type(error).__name__])[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_load_error(error: BaseException, *, ref: str, hint: str) -> OCRError:
    """What a failure while building the vLLM engine means for the operator.

    Args:
        error: The exception vLLM (or huggingface_hub / transformers under it) raised.
        ref: The model reference handed to vLLM (directory or hub id).
        hint: The command that downloads the model, for ``models_missing`` messages.

    Returns:
        ``models_missing`` for a reference or files vLLM cannot load (``OSError``, or a ``ValueError`` about the
        repository, directory, config or tokenizer); ``backend_unavailable`` for the engine core failing to start
        (``RuntimeError``) or engine settings vLLM refuses (other ``ValueError``), with what usually causes it.
    """
    if isinstance(error, OCRError):
        return error
    kind = type(error).__name__
    detail = _first_line(error)
    if isinstance(error, OSError) or (isinstance(error, ValueError) and _FILES.search(str(error))):
        return OCRError(
            "models_missing",
            f"vLLM cannot load the model {ref} ({kind}: {detail}); it needs config.json, the tokenizer files and "
            f"the weights; download it with: {hint}",
        )
    if isinstance(error, RuntimeError):
        return OCRError(
            "backend_unavailable",
            f"vLLM's engine core failed to start for {ref} ({detail}); its root cause is in the replica log just "
            f"before this line. Common causes: {ENGINE_CORE_CAUSES}",
        )
    if isinstance(error, ValueError):
        return OCRError("backend_unavailable", f"vLLM refused the engine settings for {ref} ({kind}: {detail})")
    return OCRError("backend_unavailable", f"vLLM failed to start for {ref} ({kind}: {detail})")


def classify_request_error(error: BaseException) -> OCRError | None:
    """What a vLLM exception raised while serving a request means (None: not vLLM's, leave it a server fault).

    Decided by vLLM's own exception hierarchy, read from the class names so that this module never imports
    vLLM: ``VLLMClientError`` (``VLLMValidationError``: arguments vLLM refuses for this request) is the client's
    to fix; ``VLLMServerError`` (``EngineDeadError``, ``EngineGenerateError``) means the engine stopped - the
    replica answers 503 and fails its next health check, so Serve replaces it. vLLM's admission control
    (``QueueOverflowError``, ``MaxQueuedTokensError``: ``GracefulHTTPError`` with 503, neither client nor server
    error) refuses a request while the engine is full: ``overloaded`` - the client retries later, nothing is
    replaced.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    if "GracefulHTTPError" in names and int(getattr(error, "http_status", 0) or 0) == 503:
        return OCRError(
            "overloaded", f"vLLM's queue is full ({type(error).__name__}: {_first_line(error)}); retry later"
        )
    if "VLLMClientError" in names:
        return OCRError("invalid_option", f"vLLM refused the request: {_first_line(error)}")
    if "VLLMServerError" in names:
        return OCRError(
            "backend_unavailable",
            f"the vLLM engine failed ({type(error).__name__}: {_first_line(error)}); this replica is replaced at its "
            "next health check",
        )
    return None

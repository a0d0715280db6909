"""Which backend answers a request. Pure policy, no Ray: the router feeds it what it knows.

The ``auto`` rule: walk ``auto_order`` (then any other deployed backend, in config order) and take the first
backend that is deployed, reported ``ready`` by its last health answer, and reads the document's media type.
So on a GPU box ``auto`` means DeepSeek-OCR, falling back to MinerU, then RapidOCR; on a CPU box, RapidOCR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.errors import OCRError
from shared.schema import BackendStatus

AUTO = "auto"


def auto_candidates(deployed: Sequence[str], auto_order: Sequence[str]) -> list[str]:
    """Deployed backends in ``auto`` preference order."""
    preferred = [n for n in auto_order if n in deployed]
    return preferred + [n for n in deployed if n not in preferred]


def choose_backend(
    requested: str,
    *,
    deployed: Sequence[str],
    statuses: Mapping[str, BackendStatus],
    media_type: str,
    auto_order: Sequence[str],
    exclude: Sequence[str] = (),
) -> str:
    """The backend to call.

    Raises:
        OCRError: ``unknown_backend`` (404) for a name that is not deployed, listing the deployed ones;
            ``backend_unavailable`` (503) when ``auto`` finds no ready backend for this media type.
    """
    if requested != AUTO:
        if requested not in deployed:
            raise OCRError(
                "unknown_backend",
                f"no backend named {requested!r} is deployed",
                accepted=sorted(deployed) + [AUTO],
            )
        return requested
    for name in auto_candidates(deployed, auto_order):
        if name in exclude:
            continue
        status = statuses.get(name)
        if status is not None and status.status == "ready" and media_type in status.media_types:
            return name
    summary = {n: (statuses[n].status if n in statuses else "unknown") for n in deployed}
    raise OCRError(
        "backend_unavailable",
        f"no ready backend reads {media_type} right now",
        accepted={"backends": summary},
    )

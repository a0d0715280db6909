"""A ``RunRequest`` from the loose keywords engine tests like to pass (``include_raw=True, options={...}``)."""

from __future__ import annotations

from typing import Any

from shared.requests import OutputOptions, RunRequest


def run_request(request_id: str, **kw: Any) -> RunRequest:
    """Output options by name into ``output``, every other keyword a field of ``RunRequest``."""
    output = {k: kw.pop(k) for k in OutputOptions.model_fields if k in kw}
    return RunRequest(request_id=request_id, output=OutputOptions(**output), **kw)

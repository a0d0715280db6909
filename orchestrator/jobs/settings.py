"""Settings of the job API (``jobs:`` in the app's args). Light on purpose: the app config imports it."""

from __future__ import annotations

import os
import tempfile

from pydantic import BaseModel, ConfigDict, Field


def default_state_dir() -> str:
    """A per-user directory under the system temp dir (created ``0700`` by the store)."""
    return os.path.join(tempfile.gettempdir(), f"ocrserve-jobs-{os.getuid() if hasattr(os, 'getuid') else 'user'}")


class JobSettings(BaseModel):
    """How the ``jobs`` deployment runs and keeps jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: str = Field(
        default_factory=default_state_dir,
        description="Where job status and results are mirrored (survives a jobs-replica restart on this node); "
        "created with mode 0700, since results hold the documents' text.",
    )
    chunk_pages: int = Field(default=8, gt=0, description="Pages sent to the backend per call.")
    chunk_timeout_s: float = Field(default=600.0, gt=0, description="Time limit of one chunk.")
    keep_s: float = Field(default=24 * 3600.0, gt=0, description="How long finished jobs are kept.")

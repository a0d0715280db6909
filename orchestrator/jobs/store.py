"""Job status and results: in memory, mirrored to a private directory so a jobs-replica restart loses nothing
finished (unfinished jobs are marked ``interrupted``: their worker died with the replica)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shared.schema import JobStatus, OCRResponse

FINISHED = ("succeeded", "failed", "interrupted")


class JobStore:
    """One JSON file per job status and per result, written atomically, in a ``0700`` directory."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # results hold documents' text: never world-readable, even if it existed
        self.status: dict[str, JobStatus] = {}
        for path in self.dir.glob("*.status.json"):
            try:
                status = JobStatus.model_validate_json(path.read_text())
            except ValueError:
                continue
            if status.state not in FINISHED:
                status = status.model_copy(update={"state": "interrupted", "updated_at": time.time()})
                self._write(path, status.model_dump_json())
            self.status[status.job_id] = status

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)

    def put(self, status: JobStatus) -> None:
        self.status[status.job_id] = status
        self._write(self.dir / f"{status.job_id}.status.json", status.model_dump_json())

    def put_result(self, job_id: str, result: OCRResponse) -> None:
        self._write(self.dir / f"{job_id}.result.json", result.model_dump_json())

    def result(self, job_id: str) -> OCRResponse | None:
        path = self.dir / f"{job_id}.result.json"
        return OCRResponse.model_validate_json(path.read_text()) if path.exists() else None

    def prune(self, keep_s: float) -> None:
        cutoff = time.time() - keep_s
        for job_id, st in list(self.status.items()):
            if st.state in FINISHED and st.updated_at < cutoff:
                del self.status[job_id]
                for suffix in (".status.json", ".result.json"):
                    (self.dir / f"{job_id}{suffix}").unlink(missing_ok=True)

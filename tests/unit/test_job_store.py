"""The job store keeps documents' text private: a 0700 directory, 0600 files, whatever existed before."""

from __future__ import annotations

import os
import stat
import time

from orchestrator.jobs.store import JobStore
from shared.schema import DocumentInfo, JobStatus, ModelInfo, OCRResponse, Usage


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _status(job_id: str, state: str) -> JobStatus:
    now = time.time()
    return JobStatus(job_id=job_id, state=state, backend="fake", pages_total=1, created_at=now, updated_at=now)


def test_state_and_results_are_private_to_the_service_user(tmp_path):
    shared_dir = tmp_path / "jobs"
    shared_dir.mkdir(mode=0o777)
    os.chmod(shared_dir, 0o777)  # a directory someone made world-writable before the service started
    store = JobStore(shared_dir)
    assert _mode(shared_dir) == 0o700
    store.put(_status("j1", "succeeded"))
    result = OCRResponse(
        request_id="r",
        backend="fake",
        model=ModelInfo(id="fake", engine="fake"),
        document=DocumentInfo(
            name="d", media_type="image/png", size_bytes=1, sha256="0", page_count=1, pages_processed=[0]
        ),
        markdown="confidential text",
        pages=[],
        usage=Usage(pages=0),
    )
    store.put_result("j1", result)
    files = sorted(p.name for p in shared_dir.iterdir())
    assert files == ["j1.result.json", "j1.status.json"]  # no temporary file left behind
    for name in files:
        assert _mode(shared_dir / name) == 0o600, name
    assert store.result("j1").markdown == "confidential text"


def test_a_restart_marks_unfinished_jobs_interrupted_and_keeps_finished_ones(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.put(_status("done", "succeeded"))
    store.put(_status("busy", "running"))
    again = JobStore(tmp_path / "jobs")
    assert again.status["done"].state == "succeeded" and again.status["busy"].state == "interrupted"
    assert _mode(tmp_path / "jobs" / "busy.status.json") == 0o600

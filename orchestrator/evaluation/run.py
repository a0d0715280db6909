"""Accuracy runs: every document of a manifest through every backend of a running service, scored against its
reference, with bounded concurrency; resumable (see :mod:`.runfolder` for what a run folder holds)."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from orchestrator.client import OCRClient, ServiceError
from orchestrator.evaluation.report import write_reports
from orchestrator.evaluation.runfolder import (
    RESULTS,
    RUN,
    ManifestEntry,
    Report,
    ResultRow,
    RunInfo,
    fingerprint,
    load_results,
    read_manifest,
    read_run_info,
)
from shared.metrics import cer, document_teds, edit_score, wer
from shared.schema import BackendStatus, OCRResponse


def code_version() -> dict[str, str | None]:
    """The package version and git commit this run was made with."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("ocrserve")
    except PackageNotFoundError:
        pkg = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package": pkg, "git_commit": commit}


def _backend_facts(status: BackendStatus) -> dict[str, Any]:
    """What run.json records of a backend: its engine and model, so two runs can be told apart (a cascade: its
    two backends' facts and its rules)."""
    return {"engine": status.engine, "model": status.model.model_dump() if status.model else None}


def score(entry: ManifestEntry, backend: str, result: OCRResponse, seconds: float, run_dir: Path) -> ResultRow:
    """One results row from a response: metrics against the reference, the text and boxes images written."""
    reference = entry.truth.read_text(encoding="utf-8")
    es = edit_score(result.markdown, reference)
    tables = document_teds(result.markdown, reference)
    compute = result.usage.compute
    doc_dir = run_dir / "docs" / entry.id
    doc_dir.mkdir(parents=True, exist_ok=True)
    (doc_dir / f"{backend}.md").write_text(result.markdown, encoding="utf-8")
    images = []
    for page in result.pages:
        if page.boxes_image:
            png = doc_dir / f"{backend}.page-{page.index + 1}.png"
            png.write_bytes(base64.b64decode(page.boxes_image))
            images.append(str(png.relative_to(run_dir)))
    return ResultRow(
        doc=entry.id,
        backend=backend,
        ok=True,
        ned=round(es.ned, 6),
        distance=es.distance,
        length=es.length,
        cer=round(cer(result.markdown, reference), 6),
        wer=round(wer(result.markdown, reference), 6),
        teds=round(tables.teds, 6) if tables else None,
        teds_structure=round(tables.teds_structure, 6) if tables else None,
        tables=tables.reference_tables if tables else 0,
        seconds=round(seconds, 4),
        pages=len(result.pages),
        cpu_seconds=compute.cpu_seconds if compute else None,
        gpu_seconds=compute.gpu_seconds if compute else None,
        model=result.model.model_dump(),
        markdown=str((doc_dir / f"{backend}.md").relative_to(run_dir)),
        images=images,
        warnings=result.warnings,
    )


def run_accuracy(
    manifest: Path,
    *,
    url: str,
    backends: list[str],
    out: Path,
    concurrency: int = 2,
    options: dict[str, dict[str, Any]] | None = None,
    dpi: float | None = None,
    api_key: str | None = None,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Run (or resume) an accuracy run into ``out``; returns the report.

    Pairs already in ``results.jsonl`` are not sent again (failed ones are, with ``retry_failed``).

    Raises:
        ValueError: a bad manifest, a backend that is not deployed, or ``out`` holding a run over other data.
    """
    entries = read_manifest(manifest)
    out.mkdir(parents=True, exist_ok=True)
    done = {(r.doc, r.backend) for r in load_results(out) if r.ok or not retry_failed}
    todo = [(e, b) for e in entries for b in backends if (e.id, b) not in done]
    options = options or {}

    with OCRClient(url, api_key=api_key) as client:
        listing = client.backends()
        deployed = {b.name: _backend_facts(b) for b in listing.backends}
        for cascade in listing.cascades:  # requested like a backend; recorded with both of its backends' facts
            deployed[cascade.name] = {
                "engine": "cascade",
                "first": deployed.get(cascade.first),
                "then": deployed.get(cascade.then),
                "rules": cascade.rules,
            }
        missing = [b for b in backends if b not in deployed]
        if missing:
            raise ValueError(f"backends {missing} are not deployed at {url} (deployed: {sorted(deployed)})")
        dataset_sha256, documents = fingerprint(entries)
        info = RunInfo(
            manifest=str(manifest.resolve()),
            url=url,
            backends={b: deployed[b] for b in backends},
            options=options,
            dpi=dpi,
            code=code_version(),
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            dataset_sha256=dataset_sha256,
            documents=documents,
        )
        previous = read_run_info(out)
        if previous and previous.dataset_sha256 != info.dataset_sha256:
            raise ValueError(f"{out} holds a run over a different dataset; use a new --out folder")
        (out / RUN).write_text(info.model_dump_json(indent=2), encoding="utf-8")

        lock = threading.Lock()
        total = len(entries) * len(backends)
        completed = total - len(todo)
        if progress:
            progress(completed, total)

        def work(entry: ManifestEntry, backend: str) -> ResultRow:
            started = time.perf_counter()
            try:
                result = client.ocr_bytes(
                    entry.file.read_bytes(),
                    entry.file.name,
                    backend=backend,
                    dpi=dpi,
                    options=options.get(backend),
                    request_id=f"accuracy-{entry.id}-{backend}",
                )
            except ServiceError as e:
                error = e.error.error.model_dump(mode="json")
            except Exception as e:  # network trouble: recorded, retried on --retry-failed
                error = {"code": "client_error", "message": f"{type(e).__name__}: {e}"}
            else:
                return score(entry, backend, result, time.perf_counter() - started, out)
            return ResultRow(
                doc=entry.id, backend=backend, ok=False, error=error, seconds=round(time.perf_counter() - started, 4)
            )

        with (
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool,
            open(out / RESULTS, "a", encoding="utf-8") as sink,
        ):
            futures = [pool.submit(work, e, b) for e, b in todo]
            for future in as_completed(futures):
                row = future.result()
                with lock:
                    sink.write(row.model_dump_json() + "\n")
                    sink.flush()
                    completed += 1
                    if progress:
                        progress(completed, total)

    return write_reports(out, entries, backends)

"""Accuracy runs: every document of a manifest through every backend, scored against its reference.

The manifest is JSON lines as in ``../shared/data/dev/manifest.jsonl``: ``id``, ``file`` and ``truth`` (paths
relative to the manifest) and ``truth_format`` (``text`` or ``markdown``). A run directory holds:

- ``run.json``: what was run — dataset fingerprint (sha256 of every input and reference), backends with their
  model ids and versions, options, code version — so two runs can be compared;
- ``results.jsonl``: one line per document x backend, appended as each finishes, so an interrupted run
  resumes where it stopped;
- ``docs/<id>/<backend>.md`` and ``.page-N.png``: each backend's text and boxes images;
- ``report.json``, ``report.md``, ``report.html`` (see :mod:`orchestrator.report`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.client import OCRClient, ServiceError
from shared.metrics import cer, edit_score, wer

RESULTS = "results.jsonl"
RUN = "run.json"


@dataclass(frozen=True)
class ManifestEntry:
    id: str
    file: Path
    truth: Path
    truth_format: str


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Entries of a manifest, paths resolved against its folder.

    Raises:
        ValueError: a line that is not valid, or a file that does not exist (naming the line).
    """
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            entry = ManifestEntry(
                id=str(row["id"]),
                file=(path.parent / row["file"]).resolve(),
                truth=(path.parent / row["truth"]).resolve(),
                truth_format=row.get("truth_format", "text"),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a manifest entry ({e})") from None
        for p in (entry.file, entry.truth):
            if not p.is_file():
                raise ValueError(f"{path}:{n}: {p} does not exist")
        entries.append(entry)
    if len({e.id for e in entries}) != len(entries):
        raise ValueError(f"{path}: duplicate ids")
    return entries


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(entries: list[ManifestEntry]) -> dict[str, Any]:
    """sha256 of every input and reference, and one digest over all of them."""
    files = {e.id: {"input": sha256_file(e.file), "truth": sha256_file(e.truth)} for e in entries}
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"dataset_sha256": digest, "documents": files}


def code_version() -> dict[str, str | None]:
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


def load_results(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RESULTS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interruption: that pair runs again
            continue
    return rows


def score(entry: ManifestEntry, backend: str, result, seconds: float, run_dir: Path) -> dict[str, Any]:
    """One results.jsonl row from a response: metrics against the reference, files written."""
    import base64

    reference = entry.truth.read_text(encoding="utf-8")
    es = edit_score(result.markdown, reference)
    doc_dir = run_dir / "docs" / entry.id
    doc_dir.mkdir(parents=True, exist_ok=True)
    (doc_dir / f"{backend}.md").write_text(result.markdown, encoding="utf-8")
    images = []
    for page in result.pages:
        if page.boxes_image:
            png = doc_dir / f"{backend}.page-{page.index + 1}.png"
            png.write_bytes(base64.b64decode(page.boxes_image))
            images.append(str(png.relative_to(run_dir)))
    return {
        "doc": entry.id,
        "backend": backend,
        "ok": True,
        "ned": round(es.ned, 6),
        "distance": es.distance,
        "length": es.length,
        "cer": round(cer(result.markdown, reference), 6),
        "wer": round(wer(result.markdown, reference), 6),
        "seconds": round(seconds, 4),
        "pages": len(result.pages),
        "model": result.model.model_dump(),
        "markdown": str((doc_dir / f"{backend}.md").relative_to(run_dir)),
        "images": images,
        "warnings": result.warnings,
    }


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
) -> dict[str, Any]:
    """Run (or resume) an accuracy run into ``out``; returns the report dict.

    Pairs already in ``results.jsonl`` are not sent again (failed ones are, with ``retry_failed``).
    """
    from orchestrator.report import write_reports

    entries = read_manifest(manifest)
    out.mkdir(parents=True, exist_ok=True)
    done_rows = load_results(out)
    done = {(r["doc"], r["backend"]) for r in done_rows if r.get("ok") or not retry_failed}
    todo = [(e, b) for e in entries for b in backends if (e.id, b) not in done]
    options = options or {}

    with OCRClient(url, api_key=api_key) as client:
        listing = client.backends()
        deployed = {b["name"]: b for b in listing["backends"]}
        missing = [b for b in backends if b not in deployed]
        if missing:
            raise ValueError(f"backends {missing} are not deployed at {url} (deployed: {sorted(deployed)})")
        run_info = {
            "manifest": str(manifest.resolve()),
            "url": url,
            "backends": {b: {"engine": deployed[b]["engine"], "model": deployed[b].get("model")} for b in backends},
            "options": options,
            "dpi": dpi,
            "code": code_version(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **fingerprint(entries),
        }
        previous = json.loads((out / RUN).read_text()) if (out / RUN).exists() else None
        if previous and previous.get("dataset_sha256") != run_info["dataset_sha256"]:
            raise ValueError(f"{out} holds a run over a different dataset; use a new --out folder")
        (out / RUN).write_text(json.dumps(run_info, indent=2), encoding="utf-8")

        lock = threading.Lock()
        completed = len(entries) * len(backends) - len(todo)
        total = len(entries) * len(backends)
        if progress:
            progress(completed, total)

        def work(entry: ManifestEntry, backend: str) -> dict[str, Any]:
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
                return {
                    "doc": entry.id,
                    "backend": backend,
                    "ok": False,
                    "error": e.error.error.model_dump(),
                    "seconds": round(time.perf_counter() - started, 4),
                }
            except Exception as e:  # network trouble: recorded, retried on --retry-failed
                return {
                    "doc": entry.id,
                    "backend": backend,
                    "ok": False,
                    "error": {"code": "client_error", "message": f"{type(e).__name__}: {e}"},
                    "seconds": round(time.perf_counter() - started, 4),
                }
            return score(entry, backend, result, time.perf_counter() - started, out)

        with (
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool,
            open(out / RESULTS, "a", encoding="utf-8") as sink,
        ):
            futures = [pool.submit(work, e, b) for e, b in todo]
            for future in as_completed(futures):
                row = future.result()
                with lock:
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                    completed += 1
                    if progress:
                        progress(completed, total)

    return write_reports(out, entries, backends)

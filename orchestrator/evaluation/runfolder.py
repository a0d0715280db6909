"""The format of an accuracy run: its manifest entries, and the files of a run folder, as typed models.

Both halves of an accuracy run read and write these - the runner (:mod:`.run`) appends result rows, the reports
(:mod:`.report`) read them - so the format is defined once, here, and neither half imports the other.

A run folder holds ``run.json`` (:class:`RunInfo`), ``results.jsonl`` (one :class:`ResultRow` per document x
backend, appended as pairs finish so an interrupted run resumes), ``docs/<id>/<backend>.md`` and ``.page-N.png``,
and the reports ``report.json`` (:class:`Report`), ``report.md``, ``report.html``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RUN = "run.json"
RESULTS = "results.jsonl"
REPORT = "report.json"


class ManifestEntry(BaseModel):
    """One document of a dataset and its reference transcription (paths resolved against the manifest)."""

    model_config = ConfigDict(frozen=True)

    id: str
    file: Path
    truth: Path
    truth_format: Literal["text", "markdown"] = "text"


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Entries of a manifest (JSON lines: ``id``, ``file``, ``truth``, ``truth_format``).

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
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
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


def fingerprint(entries: list[ManifestEntry]) -> tuple[str, dict[str, dict[str, str]]]:
    """sha256 of every input and reference, and one digest over all of them."""
    files = {e.id: {"input": sha256_file(e.file), "truth": sha256_file(e.truth)} for e in entries}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(), files


class RunInfo(BaseModel):
    """``run.json``: what was run, so two runs can be compared."""

    manifest: str
    url: str
    backends: dict[str, dict[str, Any]] = Field(description="Per backend: engine and model (id, version...).")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dpi: float | None = None
    code: dict[str, str | None] = Field(default_factory=dict, description="Package version and git commit.")
    started_at: str
    dataset_sha256: str
    documents: dict[str, dict[str, str]] = Field(description="Per document id: sha256 of input and reference.")


class ResultRow(BaseModel):
    """One line of ``results.jsonl``: a document through a backend, scored or failed."""

    doc: str
    backend: str
    ok: bool
    seconds: float
    error: dict[str, Any] | None = None
    ned: float | None = None
    distance: int | None = None
    length: int | None = None
    cer: float | None = None
    wer: float | None = None
    teds: float | None = Field(default=None, description="TEDS of the document's tables (None: reference has none).")
    teds_structure: float | None = Field(default=None, description="TEDS-structure (cell text ignored).")
    tables: int = Field(default=0, description="Tables in the reference (the weight of this row's TEDS).")
    pages: int = 0
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None
    model: dict[str, Any] | None = None
    markdown: str | None = Field(default=None, description="The backend's markdown, relative to the run folder.")
    images: list[str] = Field(default_factory=list, description="Boxes images, relative to the run folder.")
    warnings: list[str] = Field(default_factory=list)


class BackendSummary(BaseModel):
    """One backend's figures over a run (the last row of each document x backend pair counts)."""

    documents: int
    failures: int
    ned_mean: float | None
    ned_dataset: float | None
    cer_mean: float | None
    wer_mean: float | None
    teds: float | None = Field(default=None, description="TEDS over every reference table (documents weighted).")
    teds_structure: float | None = Field(default=None, description="TEDS-structure, weighted the same way.")
    docs_with_tables: int = 0
    latency_p50_s: float | None
    latency_p95_s: float | None
    pages: int
    pages_per_s: float | None
    cpu_seconds: float | None = Field(default=None, description="Compute used, CPU-seconds (sum over documents).")
    gpu_seconds: float | None = Field(default=None, description="Compute used, GPU-seconds (sum over documents).")
    model: dict[str, Any] | None


class Report(BaseModel):
    """``report.json``."""

    dataset_sha256: str | None
    code: dict[str, str | None] | None
    documents: int
    backends: dict[str, BackendSummary]


def read_run_info(run_dir: Path) -> RunInfo | None:
    path = run_dir / RUN
    return RunInfo.model_validate_json(path.read_text()) if path.exists() else None


def read_report(run_dir: Path) -> Report:
    return Report.model_validate_json((run_dir / REPORT).read_text())


def load_results(run_dir: Path) -> list[ResultRow]:
    """Every row of ``results.jsonl``; a line cut by an interruption is skipped (that pair runs again)."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(ResultRow.model_validate_json(line))
        except ValueError:
            continue
    return rows


def latest_rows(rows: list[ResultRow]) -> dict[tuple[str, str], ResultRow]:
    """The last row of each (document, backend) pair: a retried pair's new answer replaces the old one."""
    return {(r.doc, r.backend): r for r in rows}

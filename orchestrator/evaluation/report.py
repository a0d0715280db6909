"""Reports of an accuracy run (``report.json``, ``report.md``, ``report.html``) and the diff of two runs.

Per backend: NED (mean of documents and dataset-level, sum of edits over sum of lengths as OmniDocBench
averages), TEDS and TEDS-structure of tables (weighted by reference tables), CER and WER means, latency p50/p95,
pages per second of backend time, compute used, failures. The HTML puts the worst documents first, each with
every backend's boxes images and text side by side.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

from orchestrator.evaluation.runfolder import (
    REPORT,
    BackendSummary,
    ManifestEntry,
    Report,
    ResultRow,
    latest_rows,
    load_results,
    read_report,
    read_run_info,
)
from shared.metrics import EditScore, dataset_ned


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 4) if known else None


def summarise(rows: list[ResultRow], backends: list[str]) -> dict[str, BackendSummary]:
    """Per-backend figures from results rows (the last row of each doc x backend pair wins)."""
    latest = latest_rows(rows)
    out: dict[str, BackendSummary] = {}
    for b in backends:
        mine = [r for (_, bb), r in latest.items() if bb == b]
        good = [r for r in mine if r.ok]
        seconds = [r.seconds for r in good]
        pages = sum(r.pages for r in good)
        tabled = [r for r in good if r.tables and r.teds is not None]
        weight = sum(r.tables for r in tabled)
        out[b] = BackendSummary(
            documents=len(mine),
            failures=len(mine) - len(good),
            ned_mean=_mean([r.ned for r in good if r.ned is not None]),
            ned_dataset=round(dataset_ned(EditScore(r.distance or 0, r.length or 0) for r in good), 6)
            if good
            else None,
            cer_mean=_mean([r.cer for r in good if r.cer is not None]),
            wer_mean=_mean([r.wer for r in good if r.wer is not None]),
            teds=round(sum((r.teds or 0.0) * r.tables for r in tabled) / weight, 6) if weight else None,
            teds_structure=round(sum((r.teds_structure or 0.0) * r.tables for r in tabled) / weight, 6)
            if weight
            else None,
            docs_with_tables=len(tabled),
            latency_p50_s=_pct(seconds, 0.5),
            latency_p95_s=_pct(seconds, 0.95),
            pages=pages,
            pages_per_s=round(pages / sum(seconds), 4) if seconds and sum(seconds) > 0 else None,
            cpu_seconds=_total([r.cpu_seconds for r in good]),
            gpu_seconds=_total([r.gpu_seconds for r in good]),
            model=good[0].model if good else None,
        )
    return out


def write_reports(run_dir: Path, entries: list[ManifestEntry], backends: list[str]) -> Report:
    """``report.json``, ``report.md`` and ``report.html`` of the run in ``run_dir``."""
    rows = load_results(run_dir)
    info = read_run_info(run_dir)
    report = Report(
        dataset_sha256=info.dataset_sha256 if info else None,
        code=info.code if info else None,
        documents=len(entries),
        backends=summarise(rows, backends),
    )
    (run_dir / REPORT).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(report, rows, entries, backends, run_dir), encoding="utf-8")
    return report


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


LEGEND = (
    "NED: OmniDocBench-normalised edit distance (0 is perfect); dataset NED = sum of edits / sum of lengths. "
    "TEDS: PubTabNet tree-edit-distance similarity of tables (1 is perfect), over every reference table; TEDS-S "
    "ignores cell text. CPU/GPU s: reserved resource-seconds the backend used."
)

COLUMNS = [
    ("ned_mean", "NED mean"),
    ("ned_dataset", "NED dataset"),
    ("teds", "TEDS"),
    ("teds_structure", "TEDS-S"),
    ("cer_mean", "CER"),
    ("wer_mean", "WER"),
    ("latency_p50_s", "p50 s"),
    ("latency_p95_s", "p95 s"),
    ("pages_per_s", "pages/s"),
    ("cpu_seconds", "CPU s"),
    ("gpu_seconds", "GPU s"),
    ("failures", "failures"),
]


def render_markdown(report: Report) -> str:
    lines = [
        f"# Accuracy run — {report.documents} documents",
        "",
        f"Dataset sha256 `{report.dataset_sha256}`, code `{(report.code or {}).get('git_commit')}`. {LEGEND}",
        "",
        "| backend | model | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, s in report.backends.items():
        model = (s.model or {}).get("id", "–")
        lines.append(f"| {name} | {model} | " + " | ".join(_fmt(getattr(s, k)) for k, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def render_html(
    report: Report, rows: list[ResultRow], entries: list[ManifestEntry], backends: list[str], run_dir: Path
) -> str:
    latest = latest_rows(rows)
    esc = html.escape

    def ned_or_worst(row: ResultRow | None) -> float:
        return row.ned if row is not None and row.ok and row.ned is not None else 1.0

    def worst_first(e: ManifestEntry) -> float:
        neds = [ned_or_worst(latest.get((e.id, b))) for b in backends]
        return -statistics.fmean(neds) if neds else 0.0

    head = "".join(f"<th>{esc(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(str((s.model or {}).get('id', '–')))}</td>"
        + "".join(f"<td>{_fmt(getattr(s, k))}</td>" for k, _ in COLUMNS)
        + "</tr>"
        for name, s in report.backends.items()
    )
    docs_html = []
    for e in sorted(entries, key=worst_first):
        cells = []
        for b in backends:
            r = latest.get((e.id, b))
            if r is None:
                cells.append(f"<td><h4>{esc(b)}</h4><p class=err>not run</p></td>")
                continue
            if not r.ok:
                err = r.error or {}
                what = f"{esc(str(err.get('code', '')))}: {esc(str(err.get('message', '')))}"
                cells.append(f"<td><h4>{esc(b)}</h4><p class=err>{what}</p></td>")
                continue
            md = run_dir / (r.markdown or "")
            text = md.read_text(encoding="utf-8") if r.markdown and md.exists() else ""
            imgs = "".join(f'<a href="{esc(p)}"><img src="{esc(p)}" loading=lazy></a>' for p in r.images[:3])
            cells.append(
                f"<td><h4>{esc(b)} — NED {_fmt(r.ned)}, CER {_fmt(r.cer)}"
                + (f", TEDS {_fmt(r.teds)}" if r.teds is not None else "")
                + f", {r.seconds:.2f} s</h4>{imgs}"
                f"<pre>{esc(text[:4000])}</pre></td>"
            )
        truth = e.truth.read_text(encoding="utf-8")
        docs_html.append(
            f"<section><h3>{esc(e.id)} <small>{esc(e.file.name)}</small></h3><table class=side><tr>{''.join(cells)}"
            f"<td><h4>reference ({esc(e.truth_format)})</h4><pre>{esc(truth[:4000])}</pre></td></tr></table></section>"
        )
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Accuracy run</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
.summary td,.summary th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
.summary td:first-child{{text-align:left}}
.side td{{vertical-align:top;border:1px solid #ddd;padding:6px;width:{100 // (len(backends) + 1)}%}}
.side img{{max-width:100%;border:1px solid #eee;margin-bottom:4px}}
pre{{white-space:pre-wrap;font-size:12px;max-height:400px;overflow:auto;background:#fafafa}}
.err{{color:#b00}} h4{{margin:2px 0 6px}} small{{color:#777;font-weight:normal}}
</style></head><body>
<h1>Accuracy run — {report.documents} documents, {len(backends)} backends</h1>
<p>{esc(LEGEND)} Dataset sha256 <code>{esc(str(report.dataset_sha256))}</code>.</p>
<table class=summary><tr><th>backend</th><th>model</th>{head}</tr>{body}</table>
<h2>Documents, worst first</h2>{"".join(docs_html)}</body></html>"""


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """What changed from run ``a`` to run ``b``: dataset, code, models, and accuracy per backend."""
    ra, rb = read_report(a), read_report(b)
    ia, ib = read_run_info(a), read_run_info(b)
    backends = {}
    for name in sorted(set(ra.backends) | set(rb.backends)):
        sa, sb = ra.backends.get(name), rb.backends.get(name)
        row: dict[str, Any] = {"in_a": sa is not None, "in_b": sb is not None}
        if sa and sb:
            for key in ("ned_mean", "ned_dataset", "teds", "cer_mean", "wer_mean", "latency_p50_s", "failures"):
                va, vb = getattr(sa, key), getattr(sb, key)
                row[key] = {"a": va, "b": vb, "delta": round(vb - va, 6) if va is not None and vb is not None else None}
            row["model_a"], row["model_b"] = sa.model, sb.model
            row["model_changed"] = sa.model != sb.model
        backends[name] = row
    return {
        "same_dataset": ra.dataset_sha256 == rb.dataset_sha256,
        "code_a": ia.code if ia else None,
        "code_b": ib.code if ib else None,
        "backends": backends,
    }

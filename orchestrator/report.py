"""Reports of an accuracy run (``report.json``, ``report.md``, ``report.html``) and the diff of two runs.

Per backend: NED (mean of documents and dataset-level, sum of edits over sum of lengths as OmniDocBench
averages), CER and WER means, latency p50/p95, pages per second of backend time, failures. The HTML puts the
worst documents first, each with every backend's boxes images and text side by side.
"""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from orchestrator.accuracy import RUN, ManifestEntry, load_results
from shared.metrics import EditScore, dataset_ned


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


def summarise(rows: list[dict[str, Any]], backends: list[str]) -> dict[str, Any]:
    """Per-backend figures from results rows (the last row of each doc x backend pair wins)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        latest[(r["doc"], r["backend"])] = r
    out: dict[str, Any] = {}
    for b in backends:
        mine = [r for (d, bb), r in latest.items() if bb == b]
        good = [r for r in mine if r.get("ok")]
        seconds = [r["seconds"] for r in good]
        pages = sum(r["pages"] for r in good)
        out[b] = {
            "documents": len(mine),
            "failures": len(mine) - len(good),
            "ned_mean": _mean([r["ned"] for r in good]),
            "ned_dataset": round(dataset_ned(EditScore(r["distance"], r["length"]) for r in good), 6) if good else None,
            "cer_mean": _mean([r["cer"] for r in good]),
            "wer_mean": _mean([r["wer"] for r in good]),
            "latency_p50_s": _pct(seconds, 0.5),
            "latency_p95_s": _pct(seconds, 0.95),
            "pages": pages,
            "pages_per_s": round(pages / sum(seconds), 4) if seconds and sum(seconds) > 0 else None,
            "model": good[0]["model"] if good else None,
        }
    return out


def write_reports(run_dir: Path, entries: list[ManifestEntry], backends: list[str]) -> dict[str, Any]:
    rows = load_results(run_dir)
    run_info = json.loads((run_dir / RUN).read_text()) if (run_dir / RUN).exists() else {}
    report = {
        "dataset_sha256": run_info.get("dataset_sha256"),
        "code": run_info.get("code"),
        "documents": len(entries),
        "backends": summarise(rows, backends),
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(report, rows, entries, backends, run_dir), encoding="utf-8")
    return report


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


COLUMNS = [
    ("ned_mean", "NED mean"),
    ("ned_dataset", "NED dataset"),
    ("cer_mean", "CER"),
    ("wer_mean", "WER"),
    ("latency_p50_s", "p50 s"),
    ("latency_p95_s", "p95 s"),
    ("pages_per_s", "pages/s"),
    ("failures", "failures"),
]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Accuracy run — {report['documents']} documents",
        "",
        f"Dataset sha256 `{report['dataset_sha256']}`, code `{(report.get('code') or {}).get('git_commit')}`. "
        "NED: OmniDocBench-normalised edit distance (0 is perfect); dataset NED = sum of edits / sum of lengths.",
        "",
        "| backend | model | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, s in report["backends"].items():
        model = (s.get("model") or {}).get("id", "–")
        lines.append(f"| {name} | {model} | " + " | ".join(_fmt(s[k]) for k, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def render_html(
    report: dict[str, Any], rows: list[dict[str, Any]], entries: list[ManifestEntry], backends: list[str], run_dir: Path
) -> str:
    latest = {(r["doc"], r["backend"]): r for r in rows}
    esc = html.escape

    def worst_first(e: ManifestEntry) -> float:
        neds = [latest[(e.id, b)]["ned"] if latest.get((e.id, b), {}).get("ok") else 1.0 for b in backends]
        return -statistics.fmean(neds) if neds else 0.0

    head = "".join(f"<th>{esc(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(str((s.get('model') or {}).get('id', '–')))}</td>"
        + "".join(f"<td>{_fmt(s[k])}</td>" for k, _ in COLUMNS)
        + "</tr>"
        for name, s in report["backends"].items()
    )
    docs_html = []
    for e in sorted(entries, key=worst_first):
        cells = []
        for b in backends:
            r = latest.get((e.id, b))
            if r is None:
                cells.append(f"<td><h4>{esc(b)}</h4><p class=err>not run</p></td>")
                continue
            if not r.get("ok"):
                err = r.get("error") or {}
                what = f"{esc(err.get('code', ''))}: {esc(err.get('message', ''))}"
                cells.append(f"<td><h4>{esc(b)}</h4><p class=err>{what}</p></td>")
                continue
            text = (run_dir / r["markdown"]).read_text(encoding="utf-8") if (run_dir / r["markdown"]).exists() else ""
            imgs = "".join(f'<a href="{esc(p)}"><img src="{esc(p)}" loading=lazy></a>' for p in r["images"][:3])
            cells.append(
                f"<td><h4>{esc(b)} — NED {r['ned']:.3f}, CER {r['cer']:.3f}, {r['seconds']:.2f} s</h4>{imgs}"
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
<h1>Accuracy run — {report["documents"]} documents, {len(backends)} backends</h1>
<p>NED is the OmniDocBench-normalised edit distance (0 = identical to the reference); dataset NED = sum of edits /
sum of lengths. Dataset sha256 <code>{esc(str(report["dataset_sha256"]))}</code>.</p>
<table class=summary><tr><th>backend</th><th>model</th>{head}</tr>{body}</table>
<h2>Documents, worst first</h2>{"".join(docs_html)}</body></html>"""


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """What changed from run ``a`` to run ``b``: dataset, code, models, and accuracy per backend."""
    ra, rb = (json.loads((p / "report.json").read_text()) for p in (a, b))
    ia, ib = (json.loads((p / RUN).read_text()) if (p / RUN).exists() else {} for p in (a, b))
    backends = {}
    for name in sorted(set(ra["backends"]) | set(rb["backends"])):
        sa, sb = ra["backends"].get(name), rb["backends"].get(name)
        row: dict[str, Any] = {"in_a": sa is not None, "in_b": sb is not None}
        if sa and sb:
            for key in ("ned_mean", "ned_dataset", "cer_mean", "wer_mean", "latency_p50_s", "failures"):
                va, vb = sa.get(key), sb.get(key)
                row[key] = {"a": va, "b": vb, "delta": round(vb - va, 6) if va is not None and vb is not None else None}
            row["model_a"], row["model_b"] = sa.get("model"), sb.get("model")
            row["model_changed"] = sa.get("model") != sb.get("model")
        backends[name] = row
    return {
        "same_dataset": ra.get("dataset_sha256") == rb.get("dataset_sha256"),
        "code_a": ia.get("code"),
        "code_b": ib.get("code"),
        "backends": backends,
    }

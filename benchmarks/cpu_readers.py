"""Which CPU reader reads born-digital pages better: MinerU's flash tier (the text layer), RapidOCR with layout, or
the CPU profile's cascade of the two (its policy, read from ``orchestrator/ops/profiles/cpu.yaml``, applied by the
router's own code to the two answers: ``plan_escalations`` and ``merge_cascade``).

The CPU profile's cascade and its ``auto`` order are chosen by these figures (README, "The CPU profile's cascade, by
quality"). Both engines run in-process on the same documents, one after the other: every page of the reading corpus
that has a text layer (``tests/data/corpus``) and the dev set's PDFs (``../shared/data/dev``, when present), each
scored against its reference — NED, word recall, TEDS where the reference has tables, running heads and footers
kept in the markdown (words of the reference's furniture lines the reader kept), and seconds per page.

    .venv/bin/python benchmarks/cpu_readers.py [--json out.json]

Mind the references: a corpus page's reference *is* its text layer, the very text MinerU's flash tier reads, so on
those pages MinerU is scored against its own input (an upper bound for it, not a fair race); the dev set's PDFs have
independent markdown references (docling's), tables included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.pipeline import run_document  # noqa: E402
from backends.registry import create_engine  # noqa: E402
from orchestrator.serving.cascade import CascadePolicy, merge_cascade, plan_escalations  # noqa: E402
from shared.documents import open_document  # noqa: E402
from shared.metrics import document_teds, ned, word_recall  # noqa: E402
from shared.requests import OutputOptions, RunRequest  # noqa: E402
from shared.textlayer import pages_without_text  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus" / "manifest.jsonl"
PROFILE = ROOT / "orchestrator" / "ops" / "profiles" / "cpu.yaml"
DEV = ROOT.parent / "shared" / "data" / "dev" / "manifest.jsonl"
SMALLEST_RUN = "--only census-abstract-table"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it): one page."""
READERS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "mineru-flash": ("mineru", {"default_tier": "flash", "tiers": ["flash"]}, {"tier": "flash"}),
    "rapidocr-layout": ("rapidocr", {}, {}),
}


def documents(corpus: Path, dev: Path | None) -> list[dict[str, Any]]:
    """Born-digital documents with a reference: corpus pages whose reference is their text layer, dev PDFs."""
    docs = []
    for name, manifest in (("corpus", corpus), ("dev", dev)):
        if manifest is None or not manifest.is_file():
            continue
        for line in manifest.read_text().splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            born_digital = e.get("reference") == "text-layer" if name == "corpus" else e["file"].endswith(".pdf")
            if born_digital and e.get("truth"):
                docs.append(
                    {
                        "id": e["id"],
                        "set": name,
                        "kind": e.get("kind", ""),
                        "data": (manifest.parent / e["file"]).read_bytes(),
                        "reference": (manifest.parent / e["truth"]).read_text(),
                    }
                )
    return docs


def furniture_kept(markdown: str, reference: str) -> float:
    """Share of the reference's first and last lines (where running heads and footers sit) found in the markdown."""
    lines = [ln for ln in reference.splitlines() if ln.strip()]
    edges = lines[:1] + lines[-1:] if len(lines) > 2 else []
    return word_recall(markdown, " ".join(edges)) if edges else 0.0


def cascade_policy() -> CascadePolicy:
    """The CPU profile's cascade, as deployed."""
    import yaml

    app = yaml.safe_load(PROFILE.read_text())["applications"][0]
    return CascadePolicy.model_validate(app["args"]["router"]["cascades"]["cascade"])


def score(markdown: str, reference: str, seconds: float, result: Any) -> dict[str, Any]:
    """One reader's figures on one document."""
    tables = document_teds(markdown, reference)
    return {
        "ned": round(ned(markdown, reference), 4),
        "recall": round(word_recall(markdown, reference), 4),
        "teds": None if tables is None else round(tables.teds, 3),
        "edges_kept": round(furniture_kept(markdown, reference), 3),
        "s_per_page": round(seconds / max(1, len(result.pages)), 3),
        "tables_html": markdown.count("<table"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="Read only these document ids.")
    args = parser.parse_args(argv)

    docs = [d for d in documents(args.corpus, args.dev) if not args.only or d["id"] in args.only]
    rows: dict[str, dict[str, Any]] = {d["id"]: {"id": d["id"], "set": d["set"], "kind": d["kind"]} for d in docs}
    answers: dict[tuple[str, str], Any] = {}
    for reader, (kind, config, options) in READERS.items():
        engine = create_engine(kind, config)
        engine.start()
        for d in docs:
            started = time.perf_counter()
            try:
                result = run_document(
                    engine,
                    open_document(d["data"], accepted=engine.media_types),
                    RunRequest(request_id="bench", output=OutputOptions(include_boxes_image=False), options=options),
                    backend=reader,
                )
            except Exception as e:  # a reader that refuses a page is a figure too
                rows[d["id"]][reader] = {"error": str(e)[:120]}
                continue
            answers[(reader, d["id"])] = result
            rows[d["id"]][reader] = score(result.markdown, d["reference"], time.perf_counter() - started, result)
    policy = cascade_policy()
    for d in docs:
        second = answers.get(("rapidocr-layout", d["id"]))
        first = answers.get(("mineru-flash", d["id"]))
        if second is None:
            continue
        if first is None:  # flash refused the document: the whole of it goes up (first_failed)
            plan = {p.index: ["first_failed"] for p in second.pages}
            merged = merge_cascade("cascade", policy, None, plan, second)
            seconds = rows[d["id"]]["rapidocr-layout"]["s_per_page"] * len(second.pages)
        else:
            scanned = pages_without_text(d["data"], first.document.media_type, first.document.pages_processed)
            plan = plan_escalations(first, policy, pages_without_text_layer=scanned)
            up = second.model_copy(update={"pages": [p for p in second.pages if p.index in plan]})
            merged = merge_cascade("cascade", policy, first, plan, up if plan else None)
            seconds = rows[d["id"]]["mineru-flash"]["s_per_page"] * len(first.pages)
            seconds += rows[d["id"]]["rapidocr-layout"]["s_per_page"] * len(plan)
        rows[d["id"]]["cascade"] = score(merged.markdown, d["reference"], seconds, merged)
        rows[d["id"]]["cascade"]["escalated"] = sorted({r for e in merged.escalations for r in e.rules})
    for d in docs:
        for reader in (*READERS, "cascade"):
            r = rows[d["id"]].get(reader, {})
            if "ned" in r:
                print(f"{reader:16s} {d['id']:24s} NED {r['ned']:.3f} recall {r['recall']:.3f} TEDS {r['teds']}")

    summary: dict[str, Any] = {}
    for subset in ("corpus", "dev"):
        ok = [r for r in rows.values() if r["set"] == subset and all("ned" in r.get(x, {}) for x in READERS)]
        if not ok:
            continue
        summary[subset] = {"documents": len(ok)}
        for reader in (*READERS, "cascade"):
            teds = [r[reader]["teds"] for r in ok if r[reader]["teds"] is not None]
            summary[subset][reader] = {
                "ned_mean": round(statistics.mean(r[reader]["ned"] for r in ok), 4),
                "recall_mean": round(statistics.mean(r[reader]["recall"] for r in ok), 4),
                "teds_mean": round(statistics.mean(teds), 3) if teds else None,
                "edges_kept_mean": round(statistics.mean(r[reader]["edges_kept"] for r in ok), 3),
                "s_per_page_median": round(statistics.median(r[reader]["s_per_page"] for r in ok), 3),
                "better_ned_on": sum(
                    1 for r in ok if r[reader]["ned"] < min(r[x]["ned"] for x in READERS if x != reader)
                ),
                "escalated": sum(1 for r in ok if r[reader].get("escalated")),
            }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"rows": list(rows.values()), "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

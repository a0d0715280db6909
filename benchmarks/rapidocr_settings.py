"""RapidOCR detector settings: speed and accuracy side by side, so the default is chosen on evidence.

Runs the engine in-process with each setting over the dev scans (when ../shared/data/dev exists) and generated
pages, three timed runs per page after a warm-up; prints median seconds per page and NED per document.

    .venv/bin/python benchmarks/rapidocr_settings.py
    .venv/bin/python benchmarks/rapidocr_settings.py --runs 1 --no-dev     # smallest run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this clone's code

from backends.pipeline import run_document  # noqa: E402
from backends.rapidocr import FAST_PARAMS, RapidOCREngine  # noqa: E402
from orchestrator.ops import samples  # noqa: E402
from shared.documents import open_document  # noqa: E402
from shared.metrics import ned  # noqa: E402
from shared.requests import OutputOptions, RunRequest

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "images"
SETTINGS = {
    "package default": {},
    "max 960, no cls (ours)": FAST_PARAMS,
    "max 1280, no cls": {**FAST_PARAMS, "Det.limit_side_len": 1280},
}

LINES = {"layout": False}
SMALLEST_RUN = "--runs 1 --no-dev"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""


DEV_SCANS = [
    ("phototest.tif", "phototest.gold.txt"),
    ("eurotext.tif", "eurotext.txt"),
    ("8071_093.3B.tif", "8071_093.3B.txt"),
]


def documents(*, dev: bool = True) -> list[tuple[str, bytes, str]]:
    """(name, bytes, reference) of the dev scans (when ``dev`` and present) and of two generated pages."""
    docs = []
    for name, ref in DEV_SCANS if dev else []:
        if (DEV / name).exists():
            docs.append((name, (DEV / name).read_bytes(), (DEV / ref).read_text()))
    for label, make in [("generated 1-col", samples.one_column_page), ("generated 2-col", samples.two_column_page)]:
        image, truth = make()
        docs.append((label, samples.encode(image), truth))
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="Timed runs per page and setting, after a warm-up.")
    parser.add_argument(
        "--dev", action=argparse.BooleanOptionalAction, default=True, help="Include the dev scans when present."
    )
    args = parser.parse_args()
    docs = documents(dev=args.dev)
    header = f"{'setting':<24}" + "".join(f"{n[:18]:>22}" for n, _, _ in docs)
    print(f"seconds per page (median of {args.runs}) / NED\n" + header)
    for label, params in SETTINGS.items():
        # The detector alone: the layout pass costs the same under every setting (benchmarks/rapidocr_layout.py).
        engine = RapidOCREngine({"params": params, "load_layout_models": False})
        engine.start()
        cells = []
        for _, data, truth in docs:
            doc = open_document(data)
            run_document(
                engine,
                doc,
                RunRequest(request_id="w", output=OutputOptions(include_boxes_image=False), options=LINES),
                backend="r",
            )
            times, text = [], ""
            for _ in range(args.runs):
                t = time.perf_counter()
                text = run_document(
                    engine,
                    doc,
                    RunRequest(request_id="x", output=OutputOptions(include_boxes_image=False), options=LINES),
                    backend="r",
                ).markdown
                times.append(time.perf_counter() - t)
            cells.append(f"{statistics.median(times):8.2f}s / {ned(text, truth):.3f}")
        print(f"{label:<24}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()

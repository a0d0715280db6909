"""Reading order of detected lines, paragraphs, and boxes maths/drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.boxes import clamp_box, draw_boxes, make_block, scale_box
from shared.layout import group_paragraphs, reading_order


def column(x0: float, x1: float, n: int, *, top: float = 100, pitch: float = 40, h: float = 30) -> list[list[float]]:
    return [[x0, top + i * pitch, x1, top + i * pitch + h] for i in range(n)]


def test_two_aligned_columns_are_read_one_after_the_other():
    left, right = column(50, 450, 10), column(500, 900, 10)
    boxes = [b for pair in zip(left, right) for b in pair]  # detector order: interleaved rows
    order = reading_order(boxes)
    assert order == [2 * i for i in range(10)] + [2 * i + 1 for i in range(10)]


def test_title_spanning_columns_comes_first():
    title = [[50, 20, 900, 80]]
    boxes = title + column(50, 450, 8) + column(500, 900, 8)
    order = reading_order(boxes)
    assert order[0] == 0
    assert order[1:9] == list(range(1, 9)) and order[9:] == list(range(9, 17))


def test_a_line_merged_across_the_gutter_does_not_interleave_columns():
    left, right = column(50, 450, 12), column(500, 900, 12)
    merged = [[50, 100 + 12 * 40, 900, 100 + 12 * 40 + 30]]  # last row: both columns' lines as one box
    boxes = left + right + merged
    order = reading_order(boxes)
    assert order.index(11) < order.index(12)  # the whole left column before the right one
    assert order[:12] == list(range(12)) or order[:13] == list(range(12)) + [24]


def test_single_column_is_top_to_bottom():
    boxes = column(50, 900, 6)[::-1]
    assert reading_order(boxes) == [5, 4, 3, 2, 1, 0]
    assert reading_order([]) == []


def test_paragraphs_split_on_vertical_gaps():
    boxes = column(50, 900, 3) + column(50, 900, 2, top=100 + 3 * 40 + 60)
    order = reading_order(boxes)
    assert group_paragraphs(boxes, order) == [[0, 1, 2], [3, 4]]


def test_make_block_clamps_and_normalises():
    b = make_block("text", "x", [-10, 20, 250, 90], width=200, height=100)
    assert b.bbox == [0, 20, 200, 90]
    assert b.bbox_norm == pytest.approx([0, 0.2, 1.0, 0.9])
    assert make_block("nonsense", "x", [0, 0, 1, 1], width=10, height=10).type == "other"
    assert clamp_box([5, 9, 1, 2], 10, 10) == [1, 2, 5, 9]  # corners given in any order
    assert scale_box([0, 0, 999, 999], sx=1000 / 999, sy=500 / 999) == pytest.approx([0, 0, 1000, 500])


def test_draw_boxes_marks_inside_the_box_and_adds_a_legend():
    page = Image.new("RGB", (400, 300), "white")
    blocks = [
        make_block("title", "t", [50, 50, 200, 100], width=400, height=300),
        make_block("table", "t", [50, 150, 350, 250], width=400, height=300),
    ]
    out = draw_boxes(page, blocks)
    assert out.width == 400 and out.height > 300  # legend strip below the page
    arr = np.asarray(out).astype(int)
    assert (arr[75, 120] != 255).any()  # tinted inside the title box
    assert (arr[5:40, 300:395] == 255).all()  # untouched outside every box
    assert tuple(arr[150, 200]) != tuple(arr[75, 120])  # different types, different colours

"""Reading order of detected lines and of layout regions, paragraphs, and boxes maths/drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.boxes import TYPE_COLOURS, clamp_box, draw_boxes, make_block, scale_box
from shared.layout import assign_to_regions, group_paragraphs, reading_order, suppress_overlaps, unit_order
from shared.schema import TableCell


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


def test_lines_go_to_the_region_covering_most_of_them():
    regions = [[0, 0, 500, 500], [100, 100, 200, 150]]  # a big text region, a small title region inside it
    lines = [
        [110, 110, 190, 140],  # inside both: the smaller, more specific region wins
        [300, 300, 400, 330],  # only in the big one
        [450, 480, 650, 520],  # a quarter inside: below the 0.5 share, stays free
        [900, 900, 950, 930],  # outside everything
    ]
    assert assign_to_regions(lines, regions) == [1, 0, None, None]


def test_regions_mostly_inside_a_better_one_are_dropped():
    boxes = [[0, 0, 100, 100], [10, 10, 90, 90], [90, 0, 200, 100], [300, 300, 310, 310]]
    ranks = [4.9, 1.0, 0.5, 0.1]  # a table, a text box inside it, a neighbour overlapping a little, a tiny one
    assert suppress_overlaps(boxes, ranks) == [0, 2, 3]


def test_units_keep_columns_and_tables_are_read_whole():
    left = column(50, 450, 6)
    right = column(500, 900, 6)
    caption = [[50, 550, 880, 580]]  # below both columns, across the page
    table_lines = [[50, 600, 120, 630], [600, 600, 680, 630], [50, 640, 120, 670], [600, 640, 680, 670]]
    lines = left + right + caption + table_lines
    units = [list(range(6)), list(range(6, 12)), [12], [13, 14, 15, 16]]
    boxes = [[50, 100, 450, 330], [500, 100, 900, 330], caption[0], [40, 590, 900, 680]]
    # Were its lines to take part, the table's gap between its cells would line up with the columns' gutter and
    # cut the page there: caption and table read in the middle of the columns. Read whole, it blocks that cut.
    assert unit_order(lines, units, boxes) == [0, 2, 3, 1]
    assert unit_order(lines, units, boxes, whole=[False, False, False, True]) == [0, 1, 2, 3]
    figure = [[50, 800, 900, 1000]]  # a unit without lines takes part as its box
    assert unit_order(lines, units + [[]], boxes + figure, whole=[False, False, False, True, True])[-1] == 4


def test_draw_boxes_draws_table_cells_and_tells_header_from_footer():
    assert TYPE_COLOURS["header"] != TYPE_COLOURS["footer"]
    page = Image.new("RGB", (400, 300), "white")
    table = make_block("table", "<table></table>", [50, 50, 350, 250], width=400, height=300)
    table.cells = [
        TableCell(row=0, col=0, text="a", bbox=[50, 50, 200, 150]),
        TableCell(row=0, col=1, text="b", bbox=[200, 50, 350, 150]),
    ]
    arr = np.asarray(draw_boxes(page, [table])).astype(int)
    fill = arr[100, 120]
    assert (arr[100, 199:202] != fill).any()  # the cell border between the two cells is drawn

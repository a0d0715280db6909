"""How a RapidOCR page is put together from lines, regions and table structures — hand-made inputs, no models."""

from __future__ import annotations

import pytest

from backends.rapidocr.compose import FORMULA_MARK, ComposeSettings, compose_page
from backends.rapidocr.layout import Region
from backends.rapidocr.ocr import OCRLine
from backends.rapidocr.rules import is_caption, is_page_number
from backends.rapidocr.table_html import TableParseError, build_table, parse_structure
from backends.rapidocr.tables import TableStructure

W, H = 1000, 1400


def line(text: str, x0: float, y0: float, x1: float, h: float = 30, score: float = 0.95) -> OCRLine:
    box = [x0, y0, x1, y0 + h]
    return OCRLine(quad=[[x0, y0], [x1, y0], [x1, y0 + h], [x0, y0 + h]], box=box, text=text, score=score)


def region(kind: str, box: list[float], label: str | None = None, score: float = 0.9) -> Region:
    return Region(type=kind, label=label or kind, box=box, score=score)


def compose(lines, regions, read_table=None, **settings):
    return compose_page(
        index=0,
        width=W,
        height=H,
        dpi=144,
        lines=lines,
        regions=regions,
        settings=ComposeSettings(**settings),
        read_table=read_table,
    )


# A page: running head, title, paragraph, caption + 2x2 table, figure, page number.
LINES = [
    line("Journal of Things", 100, 40, 400, h=22),
    line("A Study of Tables", 100, 150, 700, h=50),
    line("First line of the body text here.", 100, 250, 900),
    line("Second line of the body text.", 100, 290, 800),
    line("Table 1. Two rows.", 100, 380, 500),
    line("Name", 110, 440, 200),
    line("Value", 510, 440, 600),
    line("alpha", 110, 490, 200),
    line("1 < 2", 510, 490, 600),
    line("axis label", 300, 800, 420, h=20),
    line("12", 480, 1340, 520, h=24),
]
REGIONS = [
    region("header", [95, 35, 405, 65]),
    region("title", [95, 145, 705, 205]),
    region("text", [95, 245, 905, 325]),
    region("table", [100, 430, 700, 530]),
    region("figure", [150, 650, 850, 1000]),
    region("text", [98, 245, 600, 300], score=0.6),  # a weaker box over the paragraph: dropped
]
ROW = ["<tr>", "<td></td>", "<td></td>", "</tr>"]
TABLE = TableStructure(
    tokens=["<table>", *ROW, *ROW, "</table>"],
    cell_boxes=[[100, 430, 500, 480], [500, 430, 700, 480], [100, 480, 500, 530], [500, 480, 700, 530]],
)


def test_a_page_read_as_a_document():
    reading = compose(LINES, REGIONS, read_table=lambda box: TABLE)
    page = reading.result
    assert [(b.type, b.label) for b in page.blocks] == [
        ("header", "header"),
        ("title", "title"),
        ("text", "text"),
        ("caption", "caption"),  # rule: "Table 1." next to a table
        ("table", "table"),
        ("figure", "figure"),
        ("footer", "page_number"),  # rule: a lone number below every other line
    ]
    table = page.blocks[4]
    assert table.text == ("<table><tr><td>Name</td><td>Value</td></tr><tr><td>alpha</td><td>1 &lt; 2</td></tr></table>")
    assert [(c.row, c.col, c.text) for c in table.cells] == [
        (0, 0, "Name"),
        (0, 1, "Value"),
        (1, 0, "alpha"),
        (1, 1, "1 < 2"),
    ]
    assert table.cells[3].bbox == [500, 480, 700, 530]
    assert page.blocks[5].text == "axis label"  # the figure keeps what was read inside it...
    assert page.markdown == "\n\n".join(
        [
            "# A Study of Tables",
            "First line of the body text here.\nSecond line of the body text.",
            "Table 1. Two rows.",
            table.text,
            "![figure](#page-1-figure-1)",  # ...the markdown references the figure instead
        ]
    )
    assert "Journal" not in page.markdown and "12" not in page.markdown
    assert page.warnings == []
    assert sum(r["kept"] for r in reading.regions) == 5


def test_furniture_in_the_markdown_when_asked():
    page = compose(LINES, REGIONS, read_table=lambda box: TABLE, include_page_furniture=True).result
    assert page.markdown.startswith("Journal of Things\n\n# A Study") and page.markdown.endswith("\n\n12")


def test_a_table_the_model_cannot_parse_keeps_its_text_with_a_warning():
    broken = TableStructure(tokens=["<table>", "<tr>", "<td></td>", "</tr>"], cell_boxes=[])
    page = compose(LINES, REGIONS, read_table=lambda box: broken).result
    table = next(b for b in page.blocks if b.type == "table")
    assert table.cells is None and table.text == "Name\nValue\nalpha\n1 < 2"  # row by row
    assert len(page.warnings) == 1 and "not recognised" in page.warnings[0]


def test_tables_off_reads_table_regions_as_text_rows():
    page = compose(LINES, REGIONS, read_table=None).result
    table = next(b for b in page.blocks if b.type == "table")
    assert table.cells is None and table.text == "Name\nValue\nalpha\n1 < 2" and page.warnings == []


def test_layout_off_is_lines_and_paragraphs_only():
    with_regions = compose(LINES, REGIONS, layout=False).result
    without = compose(LINES, None).result
    assert with_regions == without
    assert {b.type for b in without.blocks} <= {"text", "title"} and all(b.label is None for b in without.blocks)
    assert "Journal of Things" in without.markdown and "12" in without.markdown


def test_doubtful_furniture_and_titles_are_read_as_text():
    lines = [line("Big Document Title", 100, 60, 600), line("Body one.", 100, 300, 600)]
    lines += [line(f"Dense line {i}", 100, 500 + 40 * i, 600) for i in range(5)]
    regions = [
        region("header", [95, 55, 605, 95], score=0.6),  # a title the model half-thinks is a running head
        region("header", [95, 295, 605, 335], score=0.95),  # confident, but far below the top band
        region("title", [95, 495, 605, 700]),  # a "title" of five lines: a paragraph
    ]
    page = compose(lines, regions).result
    assert [b.type for b in page.blocks] == ["text", "text", "text"]
    assert [b.label for b in page.blocks] == ["header", "header", "title"]
    assert page.markdown.startswith("Big Document Title\n\nBody one.")


def test_formula_regions_are_marked_and_lines_outside_regions_are_kept():
    lines = [line("E = m c2", 300, 400, 500), line("missed by the layout model", 100, 600, 700)]
    page = compose(lines, [region("formula", [290, 390, 510, 440], label="equation")]).result
    assert [(b.type, b.label) for b in page.blocks] == [("formula", "equation"), ("text", None)]
    assert page.markdown == f"{FORMULA_MARK}\nE = m c2\n\nmissed by the layout model"


def test_structure_with_spans_becomes_a_grid():
    tokens = [
        "<table>",
        "<thead>",
        "<tr>",
        "<td",
        ' rowspan="2"',
        ">",
        "</td>",
        "<td",
        ' colspan="2"',
        ">",
        "</td>",
        "</tr>",
        "<tr>",
        "<td></td>",
        "<td></td>",
        "</tr>",
        "</thead>",
        "</table>",
    ]
    boxes = [[0, 0, 10, 20], [10, 0, 30, 10], [10, 10, 20, 20], [20, 10, 30, 20]]
    cells = parse_structure(tokens, boxes)
    assert [(c.row, c.col, c.row_span, c.col_span) for c in cells] == [
        (0, 0, 2, 1),
        (0, 1, 1, 2),
        (1, 1, 1, 1),
        (1, 2, 1, 1),
    ]
    schema_cells, html = build_table(tokens, boxes, [([1, 1, 9, 9], "k"), ([11, 11, 19, 19], "x & y")])
    assert html == (
        '<table><tr><td rowspan="2">k</td><td colspan="2"></td></tr><tr><td>x &amp; y</td><td></td></tr></table>'
    )
    assert schema_cells[0].text == "k"


@pytest.mark.parametrize(
    "tokens,boxes",
    [
        (["<table>", "</table>"], []),  # no cells
        (["<td></td>"], [[0, 0, 1, 1]]),  # a cell outside a row
        (["<tr>", "<td></td>", "<td></td>", "</tr>"], [[0, 0, 1, 1]]),  # fewer boxes than cells
        (["<tr>", "<td", ' colspan="2"'], [[0, 0, 1, 1]]),  # cut off inside a cell tag
    ],
)
def test_structures_that_do_not_hold_together_are_refused(tokens, boxes):
    with pytest.raises(TableParseError):
        parse_structure(tokens, boxes)


def test_page_number_and_caption_rules():
    assert all(is_page_number(t) for t in ["7", "- 12 -", "Page 3", "page 3 of 9", "xii", "(4)"])
    assert not any(is_page_number(t) for t in ["1990s", "Table 1", "7 days", "Chapter 2", ""])
    assert all(is_caption(t) for t in ["Table 1. Results", "Figure 7-26. Nuts", "Fig. 3: x", "TABLE IV"])
    assert not any(is_caption(t) for t in ["The table below", "Figures show", "Tables"])


def test_a_large_page_heading_is_not_a_page_number():
    lines = [line("Page 3", 100, 60, 300, h=60)] + [line(f"Body {i}", 100, 300 + 40 * i, 600) for i in range(4)]
    page = compose(lines, [region("title", [95, 55, 305, 125])]).result
    assert page.blocks[0].type == "title" and page.markdown.startswith("# Page 3")


def test_a_large_heading_the_model_calls_a_header_stays_in_the_text():
    lines = [line("Page 1", 100, 60, 300, h=60)] + [line(f"Body {i}", 100, 300 + 40 * i, 600) for i in range(4)]
    page = compose(lines, [region("header", [95, 55, 305, 125], score=0.95)]).result
    assert (page.blocks[0].type, page.blocks[0].label) == ("title", "header")
    assert page.markdown.startswith("# Page 1")


# --- regions checked against the lines they hold (backends/rapidocr/regions.py) ---------------------------------

PROSE = [
    "It was a bright cold day in April and the clocks",
    "were striking thirteen while the wind blew hard",
    "along the street where nobody had ever walked",
    "before the rain came down on the town at noon",
]


def typed_page(n: int = 4) -> list[OCRLine]:
    return [line(text, 100, 200 + 45 * i, 900) for i, text in enumerate(PROSE[:n])]


def test_a_page_taken_for_one_figure_is_read_as_text_with_a_warning():
    lines = typed_page()
    page = compose(lines, [region("figure", [50, 150, 950, 420], score=0.95)]).result
    assert page.markdown == "\n".join(PROSE)  # every word of the page, no figure reference
    assert {(b.type, b.label) for b in page.blocks} == {("text", "figure→text")}
    assert len(page.warnings) == 1 and page.warnings[0].startswith("figure→text: figure region at [50, 150, 950, 420]")
    assert "4 of the page's 4 lines" in page.warnings[0]
    unchecked = compose(lines, [region("figure", [50, 150, 950, 420], score=0.95)], check_regions=False).result
    assert unchecked.markdown == "![figure](#page-1-figure-1)"  # what the layout pass did before the checks


def test_a_real_picture_keeps_its_labels_out_of_the_markdown():
    lines = typed_page() + [line("2019", 300, 700, 360, h=20), line("2020", 600, 700, 660, h=20)]
    page = compose(lines, [region("figure", [250, 600, 800, 760])]).result
    assert [b.type for b in page.blocks][-1] == "figure" and page.warnings == []
    assert page.markdown.endswith("![figure](#page-1-figure-1)") and "2019" not in page.markdown


def test_sentences_inside_a_figure_are_read_when_confidently_read():
    body = [line("Short intro line here.", 100, 100, 900)] + [
        line(f"Body line {i}", 100, 900 + 40 * i, 500) for i in range(6)
    ]
    inside = [line(t, 150, 300 + 40 * i, 850, score=s) for i, (t, s) in enumerate(zip(PROSE[:2], (0.97, 0.95)))]
    page = compose(body + inside, [region("figure", [120, 280, 880, 400])]).result
    assert "2 of its 2 lines are sentences" in page.warnings[0] and PROSE[0] in page.markdown
    blurred = [line(t, 150, 300 + 40 * i, 850, score=0.6) for i, t in enumerate(PROSE[:2])]  # a photo's sign
    page = compose(body + blurred, [region("figure", [120, 280, 880, 400])]).result
    assert page.warnings == [] and PROSE[0] not in page.markdown


def test_prose_columns_taken_for_a_table_are_read_as_text_columns():
    left = [line(t, 60, 200 + 40 * i, 480) for i, t in enumerate(PROSE)]
    right = [line(t, 520, 200 + 40 * i, 940) for i, t in enumerate(reversed(PROSE))]
    calls = []
    page = compose(left + right, [region("table", [50, 190, 950, 370])], read_table=calls.append).result
    assert calls == []  # the structure model is not even asked
    assert page.markdown == "\n".join(PROSE) + "\n\n" + "\n".join(reversed(PROSE))  # column by column
    assert {b.label for b in page.blocks} == {"table→text"} and "<table>" not in page.markdown
    assert (
        page.warnings[0].startswith("table→text: table region") and "8 of its 8 lines are sentences" in page.warnings[0]
    )


def test_a_table_of_short_cells_stays_a_table():
    page = compose(LINES, REGIONS, read_table=lambda box: TABLE).result
    assert any(b.type == "table" and b.cells for b in page.blocks) and page.warnings == []


def test_numbers_with_neighbours_on_their_row_are_values_not_page_numbers():
    grid = [
        line(str(v), 100 + 120 * c, 1300 + 40 * r, 160 + 120 * c)
        for r in range(2)
        for c in range(5)
        for v in [r * 5 + c]
    ]
    page = compose(typed_page() + grid, [region("text", [50, 150, 950, 420])]).result
    assert not any(b.type == "footer" for b in page.blocks)
    assert all(str(v) in page.markdown.split() for v in range(10))


def test_a_header_of_many_lines_is_read_and_an_unsure_text_region_frees_its_lines():
    head = [line(f"Letterhead line {i}", 100, 20 + 30 * i, 500, h=24) for i in range(3)]
    page = compose(head + typed_page(), [region("header", [95, 15, 505, 115], score=0.95)]).result
    assert page.markdown.startswith("Letterhead line 0") and page.blocks[0].label == "header"
    unsure = compose(typed_page(), [region("text", [50, 150, 950, 420], score=0.6)]).result
    assert {b.label for b in unsure.blocks} == {None}  # read as the plain lines, not as the model's unit
    sure = compose(typed_page(), [region("text", [50, 150, 950, 420], score=0.9)]).result
    assert {b.label for b in sure.blocks} == {"text"}

"""How big a table a CSV or a workbook asks a parser to build, measured before it is built.

A spreadsheet is small on disk and large in a parser: MinerU turns every sheet's used range into a grid and then
into HTML and markdown, so the cost follows *rows x columns* of that range (a single cell at XFD1048576 makes a
17-billion-slot grid), plus the length of each cell's text. These counters read the cells as they stream past
(CSV records, worksheet ``<row>``/``<c>`` elements, shared strings) and refuse past ``max_table_cells`` or
``max_cell_chars`` without keeping the cells. Measured on this project's 2-core machine: MinerU's flash tier takes
~12 s and ~800 MB for a 100,000-cell XLSX, ~5 s for a 100,000-cell CSV.

Pure: no project imports but :mod:`shared.markup` and :mod:`shared.errors`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

from shared.errors import OCRError
from shared.markup import too_complex
from shared.schema import ErrorCode

CSV_FIELD_LIMIT = 131_072
"""Python's csv reader refuses longer fields (its default ``field_size_limit``, a process-wide setting this module
leaves alone); ``max_cell_chars`` is bounded by it."""

_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_RECORDS = 20
_SEP_DIRECTIVE = re.compile(r"\Asep=([,;\t|])(?:\r\n|\n|\r|$)", re.IGNORECASE)
_CELL_REF = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")


class CellTally:
    """Cells across every table of one document, against ``max_table_cells`` and ``max_cell_chars``."""

    def __init__(self, *, max_cells: int, max_cell_chars: int) -> None:
        self.max_cells = max_cells
        self.max_cell_chars = max_cell_chars
        self.used = 0
        """Cells of the tables already finished."""

    def check_grid(self, where: str, rows: int, columns: int) -> None:
        """A table (still growing) of ``rows`` x ``columns``, on top of the finished ones.

        Raises:
            OCRError: ``document_too_complex`` naming ``max_table_cells``.
        """
        if self.used + rows * columns > self.max_cells:
            raise too_complex(
                f"{where} spans {rows} rows x {columns} columns ({rows * columns} cells"
                + (f", {self.used} more in earlier tables" if self.used else "")
                + f"); the limit is max_table_cells={self.max_cells}",
                max_table_cells=self.max_cells,
            )

    def finish(self, rows: int, columns: int) -> None:
        self.used += rows * columns

    def check_text(self, where: str, length: int) -> None:
        """One cell's text length.

        Raises:
            OCRError: ``document_too_complex`` naming ``max_cell_chars``.
        """
        if length > self.max_cell_chars:
            raise too_complex(
                f"{where} has a cell of {length} characters or more; the limit is max_cell_chars={self.max_cell_chars}",
                max_cell_chars=self.max_cell_chars,
            )


class SheetCounter:
    """Hooks for :class:`~shared.markup.XmlInspector` over one worksheet part: its used range and cell texts.

    Cell positions come from ``r`` attributes (``<row r="7">``, ``<c r="AB7">``) as spreadsheet readers take
    them, or follow on from the previous one when absent.
    """

    def __init__(self, where: str, cells: CellTally) -> None:
        self.where = where
        self.cells = cells
        self.row = 0
        self.column = 0
        self.rows = 0
        self.columns = 0
        self._text: int | None = None

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == "row":
            self.row = _positive_int(attributes.get("r"), self.row + 1)
            self.column = 0
            self._grow(self.row, self.columns)
        elif name == "c":
            match = _CELL_REF.match(attributes.get("r", ""))
            if match:
                self.column = _column_index(match.group(1))
                self.row = max(self.row, int(match.group(2)))
            else:
                self.column += 1
            self._grow(max(self.rows, self.row, 1), max(self.columns, self.column))
        elif name in ("v", "t", "f"):
            self._text = 0

    def text(self, data: str) -> None:
        if self._text is not None:
            self._text += len(data)
            self.cells.check_text(self.where, self._text)

    def end(self, name: str) -> None:
        if name in ("v", "t", "f"):
            self._text = None

    def close(self) -> None:
        self.cells.finish(self.rows, self.columns)

    def _grow(self, rows: int, columns: int) -> None:
        if rows > self.rows or columns > self.columns:
            self.rows, self.columns = max(rows, self.rows), max(columns, self.columns)
            self.cells.check_grid(f"worksheet {self.where}", self.rows, self.columns)


class SharedStringsCounter:
    """Hooks over ``xl/sharedStrings.xml``: how many strings (at most one per cell) and how long each is."""

    def __init__(self, where: str, cells: CellTally) -> None:
        self.where = where
        self.cells = cells
        self.strings = 0
        self._chars: int | None = None
        self._in_text = False

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == "si":
            self.strings += 1
            self._chars = 0
            if self.strings > self.cells.max_cells:
                raise too_complex(
                    f"{self.where} holds more than {self.cells.max_cells} strings; the limit is "
                    f"max_table_cells={self.cells.max_cells}",
                    max_table_cells=self.cells.max_cells,
                )
        elif name == "t":
            self._in_text = True

    def text(self, data: str) -> None:
        if self._in_text and self._chars is not None:
            self._chars += len(data)
            self.cells.check_text(self.where, self._chars)

    def end(self, name: str) -> None:
        if name == "t":
            self._in_text = False
        elif name == "si":
            self._chars = None

    def close(self) -> None:
        pass


def inspect_csv(data: bytes, cells: CellTally) -> None:
    """Rows x columns and cell lengths of a CSV, read as MinerU reads it (same delimiter choice), stopping early.

    Raises:
        OCRError: ``document_too_complex`` over a limit; ``invalid_document`` for a CSV no strict reader accepts.
    """
    text = data.decode("utf-8-sig", errors="replace")
    match = _SEP_DIRECTIVE.match(text)
    if match:
        delimiter, text = match.group(1), text[match.end() :]
    else:
        delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    rows = columns = 0
    try:
        for record in reader:
            rows += 1
            if len(record) > columns:
                columns = len(record)
            if rows * max(columns, 1) > cells.max_cells - cells.used:
                cells.check_grid("the CSV", rows, max(columns, 1))
            for field in record:
                if len(field) > cells.max_cell_chars:
                    cells.check_text(f"the CSV (record {rows})", len(field))
    except csv.Error as e:
        if "field larger than field limit" in str(e):
            cells.check_text(f"the CSV (near line {reader.line_num})", CSV_FIELD_LIMIT + 1)
        raise OCRError(
            ErrorCode.INVALID_DOCUMENT, f"the CSV is malformed near line {reader.line_num}: {e}", accepted=["text/csv"]
        ) from None
    cells.finish(rows, max(columns, 1))


def sniff_delimiter(text: str) -> str:
    """The delimiter among , ; TAB | that gives the first records the most consistent width (ties: the comma)."""
    best, best_score = ",", (0, 0, 0)
    for preference, delimiter in enumerate(_DELIMITERS):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
        widths: list[int] = []
        try:
            for record in reader:
                widths.append(max(1, len(record)))
                if len(widths) >= _SAMPLE_RECORDS:
                    break
        except csv.Error:
            continue
        if not widths:
            continue
        width, frequency = max(Counter(widths).items(), key=lambda item: (item[1], item[0]))
        score = (frequency, width, -preference)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
    return best


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default

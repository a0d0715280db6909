"""Text into page images, made for a DeepSeek resolution mode: the first half of optical compression.

DeepSeek-OCR's headline is that a page of text costs far fewer vision tokens than text tokens; teams exploit it by
*rendering* long text (logs, histories) into images and letting the model read them back. How well that works
depends on the geometry: a page the size of the mode's own view is never resampled, and the font must stay large
enough for the encoder to resolve. So each mode has its own page size, margin and default font size
(:data:`GEOMETRY`), and callers may override the font size and margin.

Pure: Pillow only, deterministic for a given Pillow and font. Monospace is DejaVu Sans Mono, shipped in
``shared/fonts`` (Bitstream Vera licence) so every machine draws the same pixels; proportional is Pillow's own
bundled font (``ImageFont.load_default``, Aileron), which needs Pillow built with FreeType (the PyPI wheels are).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from shared.errors import OCRError
from shared.schema import ErrorCode

FontKind = Literal["monospace", "proportional"]


@dataclass(frozen=True)
class PageGeometry:
    """Page size, margin and default font size rendered for one mode.

    Attributes:
        width: Page width in pixels.
        height: Page height in pixels.
        margin: Default margin on every side, pixels.
        font_size: Default font size, pixels.
    """

    width: int
    height: int
    margin: int
    font_size: int


GEOMETRY: dict[str, PageGeometry] = {
    "tiny": PageGeometry(512, 512, 16, 11),
    "small": PageGeometry(640, 640, 20, 13),
    "base": PageGeometry(1024, 1024, 32, 18),
    "large": PageGeometry(1280, 1280, 40, 22),
    "gundam": PageGeometry(1280, 1920, 48, 20),
}
"""Per mode: square pages the size of the mode's view (tiny 512, small 640, base 1024, large 1280 px), so the
encoder sees the page unscaled; for Gundam a 2:3 page that tiles into 2 x 3 tiles of 640 px plus the global view
(6 x 100 + 256 = 856 vision tokens on DeepSeek-OCR). Font sizes keep about 70-90 characters per line."""

LINE_SPACING = 1.25
"""Line height as a multiple of the font size."""
TAB = "    "
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class RenderedText:
    """One rendered page.

    Attributes:
        image: The page, RGB.
        text: The text drawn on it, one line per drawn line (what a perfect reader gives back).
        lines: Lines drawn.
    """

    image: Image.Image
    text: str
    lines: int


@dataclass
class Rendering:
    """The pages of one rendering and the settings that made them.

    Attributes:
        pages: The pages, in order.
        font_name: Name of the font drawn with.
        font_size: Font size, pixels.
        margin: Margin, pixels.
        warnings: What was changed in the text (wrapped lines, dropped control characters).
    """

    pages: list[RenderedText]
    font_name: str
    font_size: int
    margin: int
    warnings: list[str] = field(default_factory=list)


@lru_cache(maxsize=32)
def load_font(kind: FontKind, size: int) -> tuple[ImageFont.FreeTypeFont, str]:
    """The font to draw with and its name (cached per size)."""
    if kind == "monospace":
        path = resources.files("shared").joinpath("fonts", "DejaVuSansMono.ttf")
        with resources.as_file(path) as file:
            return ImageFont.truetype(str(file), size), "DejaVu Sans Mono"
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise OCRError(
            ErrorCode.BACKEND_UNAVAILABLE, "proportional text needs Pillow built with FreeType; use font: monospace"
        )
    return font, "Aileron (Pillow)"


def wrap_line(line: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``line`` broken at spaces into pieces no wider than ``width`` pixels (words wider than a line are cut)."""
    if not line or font.getlength(line) <= width:
        return [line]
    out: list[str] = []
    current = ""
    for word in re.split(r"(\s+)", line):
        candidate = current + word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current.strip():
            out.append(current.rstrip())
        current = word.lstrip() if word.isspace() is False else ""
        while current and font.getlength(current) > width:  # a word longer than the line: cut it
            cut = _fit(current, font, width)
            out.append(current[:cut])
            current = current[cut:]
    if current.strip() or not out:
        out.append(current.rstrip())
    return out


def _fit(word: str, font: ImageFont.FreeTypeFont, width: int) -> int:
    """How many leading characters of ``word`` fit ``width`` (at least one)."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def render_text(
    text: str,
    *,
    mode: str = "small",
    font: FontKind = "monospace",
    font_size: int | None = None,
    margin: int | None = None,
    dpi: float = 144.0,
    max_pages: int = 50,
) -> Rendering:
    """Draw ``text`` onto as many pages as it needs, in the page geometry of ``mode``.

    Line breaks of the input are kept; lines wider than the page are wrapped at spaces; tabs become four spaces;
    control characters are dropped (with a warning). Black text on white, no anti-aliasing tricks.

    Args:
        text: The text (must contain something other than whitespace).
        mode: One of :data:`GEOMETRY` (tiny, small, base, large, gundam).
        font: ``monospace`` or ``proportional``.
        font_size: Pixels; default: the mode's.
        margin: Pixels on every side; default: the mode's.
        dpi: Stored in each image's ``info["dpi"]`` (PNG pHYs) - the page's physical size is pixels / dpi.
        max_pages: Refuse text that needs more pages.

    Raises:
        OCRError: ``invalid_option`` for an unknown mode, empty text, a margin that leaves no room, or too many pages.
    """
    if mode not in GEOMETRY:
        raise OCRError(ErrorCode.INVALID_OPTION, f"unknown mode {mode!r}", accepted={"mode": list(GEOMETRY)})
    geo = GEOMETRY[mode]
    size = font_size or geo.font_size
    pad = geo.margin if margin is None else margin
    usable_w, usable_h = geo.width - 2 * pad, geo.height - 2 * pad
    line_h = max(1, round(size * LINE_SPACING))
    if usable_w < 4 * size or usable_h < line_h:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"margin {pad} px leaves no room for {size} px text on a {geo.width} x {geo.height} page",
            accepted={"margin_px": f"0..{(geo.width - 4 * size) // 2}"},
        )
    warnings: list[str] = []
    cleaned = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", TAB))
    if len(cleaned) != len(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", TAB)):
        warnings.append("control characters were dropped")
    if not cleaned.strip():
        raise OCRError(ErrorCode.INVALID_OPTION, "text is empty")
    face, name = load_font(font, size)
    lines: list[str] = []
    wrapped = 0
    for raw in cleaned.rstrip("\n").split("\n"):
        pieces = wrap_line(raw.rstrip(), face, usable_w)
        wrapped += len(pieces) > 1
        lines.extend(pieces)
    if wrapped:
        warnings.append(f"{wrapped} line(s) wider than the page were wrapped")
    per_page = usable_h // line_h
    chunks = [lines[i : i + per_page] for i in range(0, len(lines), per_page)]
    if len(chunks) > max_pages:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"the text needs {len(chunks)} pages in mode {mode!r} at {size} px; at most {max_pages} are rendered",
            accepted={"max_pages": max_pages},
        )
    pages = [_draw(chunk, face, geo, pad, line_h, dpi) for chunk in chunks]
    return Rendering(pages=pages, font_name=name, font_size=size, margin=pad, warnings=warnings)


def _draw(
    lines: list[str], face: ImageFont.FreeTypeFont, geo: PageGeometry, pad: int, line_h: int, dpi: float
) -> RenderedText:
    image = Image.new("RGB", (geo.width, geo.height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        if line:
            draw.text((pad, pad + i * line_h), line, fill="black", font=face)
    image.info["dpi"] = (dpi, dpi)
    while lines and not lines[-1]:
        lines = lines[:-1]
    return RenderedText(image=image, text="\n".join(lines), lines=len(lines))

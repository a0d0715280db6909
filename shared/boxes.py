"""Boxes: building blocks from pixel or grid coordinates, and drawing them on the page.

Every engine reports boxes in its own frame (RapidOCR: pixel quadrilaterals; DeepSeek-OCR: a 0-999 grid; MinerU:
0-1 fractions). They all end up here, as pixel boxes clamped to the page plus the same box normalised to 0-1, so
the schema has one meaning for ``bbox`` whatever answered.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

from shared.schema import BLOCK_TYPES, Block, Line

# Colour-blind-safe-ish palette (Okabe-Ito plus greys), one per block type.
TYPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "text": (0, 114, 178),
    "title": (213, 94, 0),
    "table": (0, 158, 115),
    "figure": (204, 121, 167),
    "formula": (230, 159, 0),
    "caption": (86, 180, 233),
    "list": (0, 0, 0),
    "header": (110, 110, 110),
    "footer": (160, 160, 160),
    "other": (170, 68, 153),
}
assert set(TYPE_COLOURS) == set(BLOCK_TYPES)


def clamp_box(box: Sequence[float], width: float, height: float) -> list[float]:
    """[x0, y0, x1, y1] ordered and clamped inside a width x height page."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    return [
        min(max(x0, 0.0), width),
        min(max(y0, 0.0), height),
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
    ]


def make_block(
    type_: str,
    text: str,
    box: Sequence[float],
    *,
    width: int,
    height: int,
    score: float | None = None,
    label: str | None = None,
    lines: list[Line] | None = None,
) -> Block:
    """A schema block from a pixel box on a ``width`` x ``height`` page (box clamped, normalised copy added)."""
    px = clamp_box(box, width, height)
    norm = [px[0] / width, px[1] / height, px[2] / width, px[3] / height] if width and height else [0.0] * 4
    return Block(
        type=type_ if type_ in TYPE_COLOURS else "other",  # type: ignore[arg-type]
        text=text,
        bbox=[round(v, 2) for v in px],
        bbox_norm=[round(v, 6) for v in norm],
        score=score,
        label=label,
        lines=lines,
    )


def scale_box(box: Sequence[float], *, sx: float, sy: float) -> list[float]:
    """Multiply a box's x by ``sx`` and y by ``sy`` (e.g. a normalised or grid box to pixels)."""
    x0, y0, x1, y1 = box
    return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]


def union_box(boxes: Iterable[Sequence[float]]) -> list[float]:
    """Smallest box holding all of ``boxes``."""
    xs0, ys0, xs1, ys1 = zip(*boxes)
    return [min(xs0), min(ys0), max(xs1), max(ys1)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, blocks: Sequence[Block], *, draw_lines: bool = True) -> Image.Image:
    """The page with each block's box drawn in its type's colour, its number and type written on it, and a legend.

    Boxes get a translucent fill so overlapping blocks stay readable; line boxes (when the engine gives lines)
    are drawn thin inside their block, and a table's cell boxes (when the engine recognised its structure)
    instead of its lines. Headers and footers have greys of their own, told apart in the legend.
    """
    base = image.convert("RGB")
    w, h = base.size
    unit = max(1, round(max(w, h) / 1000))  # line width and text scale follow page size
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    label_font = _font(max(10, 11 * unit))
    for n, block in enumerate(blocks, start=1):
        colour = TYPE_COLOURS.get(block.type, TYPE_COLOURS["other"])
        x0, y0, x1, y1 = block.bbox
        od.rectangle([x0, y0, x1, y1], fill=colour + (40,), outline=colour + (255,), width=2 * unit)
        if draw_lines and block.cells:  # a table's cells, not its lines: the grid is what the model recognised
            for cell in block.cells:
                od.rectangle(cell.bbox, outline=colour + (170,), width=max(1, unit // 2))
        elif draw_lines and block.lines:
            for line in block.lines:
                od.rectangle(line.bbox, outline=colour + (150,), width=max(1, unit // 2))
        tag = f"{n} {block.type}"
        tx, ty = x0, max(0, y0 - label_font.size - 2 * unit) if hasattr(label_font, "size") else max(0, y0 - 12)
        tb = od.textbbox((tx, ty), tag, font=label_font)
        od.rectangle([tb[0] - unit, tb[1] - unit, tb[2] + unit, tb[3] + unit], fill=colour + (230,))
        od.text((tx, ty), tag, fill=(255, 255, 255, 255), font=label_font)
    boxed = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    return _with_legend(boxed, sorted({b.type for b in blocks}, key=BLOCK_TYPES.index), unit)


def _with_legend(image: Image.Image, types: list[str], unit: int) -> Image.Image:
    if not types:
        return image
    font = _font(max(12, 14 * unit))
    pad = 6 * unit
    row_h = int(getattr(font, "size", 12)) + 2 * pad
    legend = Image.new("RGB", (image.width, row_h), (245, 245, 245))
    d = ImageDraw.Draw(legend)
    x = pad
    for t in types:
        colour = TYPE_COLOURS[t]
        sw = row_h - 2 * pad
        d.rectangle([x, pad, x + sw, pad + sw], fill=colour)
        x += sw + pad
        d.text((x, pad), t, fill=(20, 20, 20), font=font)
        x += int(d.textlength(t, font=font)) + 3 * pad
    out = Image.new("RGB", (image.width, image.height + row_h), "white")
    out.paste(image, (0, 0))
    out.paste(legend, (0, image.height))
    return out


def png_base64(image: Image.Image) -> str:
    """PNG bytes of ``image``, base64 text (what the schema carries)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return base64.b64encode(buf.getvalue()).decode("ascii")

"""JPEGs as cameras write them: the picture stored turned or mirrored, and an EXIF tag saying how to show it."""

from __future__ import annotations

import io

from PIL import Image

EXIF_ORIENTATION = 0x0112

UNDO_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
"""How a camera stores an upright picture for each EXIF orientation (the inverse of what a viewer applies)."""


def exif_jpeg(upright: Image.Image, orientation: int, *, quality: int = 95) -> bytes:
    """``upright`` stored as a camera would with EXIF ``orientation``: a viewer that applies it shows ``upright``."""
    undo = UNDO_ORIENTATION[orientation]
    stored = upright.transpose(undo) if undo is not None else upright
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes(), quality=quality)
    return buf.getvalue()

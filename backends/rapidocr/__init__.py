"""RapidOCR, the embedded CPU engine: PP-OCR lines, a layout pass and table structure, all from bundled models.

Modules: ``config`` (engine config and request options), ``ocr`` (lines out of RapidOCR), ``layout`` (the CDLA
layout model), ``tables`` (the SLANet+ structure model), ``table_html`` (cells and HTML), ``rules`` (page
numbers, captions), ``compose`` (a page's blocks and markdown), ``engine`` (the ``OCREngine``). Importing this
package is cheap: the model libraries are imported in ``RapidOCREngine.start()``.
"""

from backends.rapidocr.config import FAST_PARAMS, RapidOCRConfig, RapidOCROptions
from backends.rapidocr.engine import RapidOCREngine

__all__ = ["FAST_PARAMS", "RapidOCRConfig", "RapidOCROptions", "RapidOCREngine"]

"""Writing a response to disk the way the CLI and the demo do: markdown, slim JSON, one boxes PNG per page, and the
chunks for a retrieval index as JSON lines."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from shared.schema import OCRResponse


def write_outputs(result: OCRResponse, out_dir: Path, stem: str) -> list[Path]:
    """``STEM.md``, ``STEM.json`` (without images) and ``STEM.page-N.boxes.png`` per page into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{stem}.md"]
    written[0].write_text(result.markdown + "\n", encoding="utf-8")
    for page in result.pages:
        if page.boxes_image:
            png = out_dir / f"{stem}.page-{page.index + 1}.boxes.png"
            png.write_bytes(base64.b64decode(page.boxes_image))
            written.append(png)
    slim = result.model_copy(deep=True)
    for page in slim.pages:
        page.boxes_image = None
    js = out_dir / f"{stem}.json"
    js.write_text(slim.model_dump_json(indent=2), encoding="utf-8")
    written.append(js)
    return written


def write_chunks(result: OCRResponse, out_dir: Path, stem: str) -> Path:
    """``STEM.chunks.jsonl``: one chunk per line (id, text, heading path, pages, block refs, boxes, tokens), each
    with the document's name and how the chunks were cut - ready for an embedding job."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.chunks.jsonl"
    info = result.chunking.model_dump() if result.chunking else None
    with path.open("w", encoding="utf-8") as f:
        for chunk in result.chunks or []:
            line = {"document": result.document.name, "chunking": info, **chunk.model_dump()}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path

"""Resolution modes: what each one feeds the vision encoder, which engine honours which, and what a page costs.

DeepSeek-OCR's headline is *compression*: a page becomes a fixed, small number of vision tokens that the decoder
expands back into text. How many depends on the mode (a global view of ``base_size`` pixels, plus tiles of
``tile_size`` pixels when the mode crops) and, for tiled modes, on the page's aspect ratio. Both engines need the
same arithmetic: the engine to report usage and compression per page, the vLLM path to keep prompt + output
inside ``max_model_len``. It lives here, pure, so it is tested without a model.

Who honours what (checked against the libraries' source, see docs/deepseek.md):

* DeepSeek-OCR (v1) on vLLM: the processor hard-codes Gundam (1024 global + 640 tiles, 2-6 crops) and computes
  the placeholder count from module constants, so no other mode can be requested per prompt.
* DeepSeek-OCR-2 on vLLM: one mode, 1024 global + 0-6 tiles of 768 (reported as ``gundam``).
* DeepSeek-OCR-2 on transformers: ``gundam`` (the native dynamic tiling) and ``base`` (global view only, the path
  the model takes for pages no larger than one tile). The model only has query sets for 1024 and 768 px views, so
  ``tiny``/``small``/``large`` cannot be reproduced; they map to the nearest honoured mode, with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

Mode = Literal["tiny", "small", "base", "large", "gundam"]
MODES: tuple[str, ...] = Mode.__args__  # type: ignore[attr-defined]
Variant = Literal["ocr", "ocr2"]
EngineName = Literal["vllm", "transformers"]


@dataclass(frozen=True)
class ModeSpec:
    """The geometry of one resolution mode.

    Attributes:
        name: Mode name as requested.
        base_size: Side of the (padded, square) global view, in pixels.
        tile_size: Side of a local tile; None for modes without tiles.
        min_tiles: Fewest tiles when a page is tiled.
        max_tiles: Most tiles when a page is tiled.
        patch_size: Vision encoder patch size (16 on the real models).
        downsample_ratio: Token compressor ratio after the patch grid (4 on the real models).
    """

    name: str
    base_size: int
    tile_size: int | None = None
    min_tiles: int = 2
    max_tiles: int = 6
    patch_size: int = 16
    downsample_ratio: int = 4

    @property
    def global_tokens(self) -> int:
        """Vision tokens of the global view (64 / 100 / 256 / 400 for 512 / 640 / 1024 / 1280 px)."""
        return queries_per_side(self.base_size, self.patch_size, self.downsample_ratio) ** 2

    @property
    def tile_tokens(self) -> int:
        """Vision tokens of one tile (100 for 640 px, 144 for 768 px); 0 for untiled modes."""
        if self.tile_size is None:
            return 0
        return queries_per_side(self.tile_size, self.patch_size, self.downsample_ratio) ** 2


V1_MODES: dict[str, ModeSpec] = {
    "tiny": ModeSpec("tiny", 512),
    "small": ModeSpec("small", 640),
    "base": ModeSpec("base", 1024),
    "large": ModeSpec("large", 1280),
    # vLLM caps Gundam at 6 crops (MAX_CROPS = 6 in vllm's deepseek_ocr processor); the paper allows up to 9.
    "gundam": ModeSpec("gundam", 1024, tile_size=640, min_tiles=2, max_tiles=6),
}
"""DeepSeek-OCR (v1) modes: base_size / image_size / crop_mode from the model card."""

V2_MODES: dict[str, ModeSpec] = {
    "gundam": ModeSpec("gundam", 1024, tile_size=768, min_tiles=2, max_tiles=6),
    "base": ModeSpec("base", 1024),
}
"""DeepSeek-OCR-2 modes: the native one (1024 global + 0-6 tiles of 768) and its global-only path."""

_V2_FALLBACK: dict[str, str] = {"tiny": "base", "small": "base", "base": "base", "large": "gundam", "gundam": "gundam"}


def queries_per_side(side: int, patch_size: int = 16, downsample_ratio: int = 4) -> int:
    """Vision queries along one side of a view: ceil(side / patch / downsample), as both processors compute it."""
    return math.ceil(side / patch_size / downsample_ratio)


def honoured_modes(variant: Variant, engine: EngineName) -> tuple[str, ...]:
    """Modes the (variant, engine) pair runs as asked; any other request is mapped and warned about."""
    if engine == "vllm":
        return ("gundam",)
    return tuple(V2_MODES) if variant == "ocr2" else tuple(V1_MODES)


def resolve_mode(requested: str, *, variant: Variant, engine: EngineName) -> tuple[ModeSpec, list[str]]:
    """The mode an engine will actually run for ``requested``, and the warnings that say so.

    Never silent: whenever the effective mode differs from the requested one, the returned warnings name both
    and the reason, and the engine copies them into the response.

    Args:
        requested: A name from :data:`MODES`.
        variant: ``ocr`` (DeepSeek-OCR) or ``ocr2`` (DeepSeek-OCR-2).
        engine: ``vllm`` or ``transformers``.

    Returns:
        (spec of the mode that will run, warnings).
    """
    if requested not in MODES:
        raise ValueError(f"unknown mode {requested!r}; expected one of {', '.join(MODES)}")
    table = V2_MODES if variant == "ocr2" else V1_MODES
    if engine == "vllm":
        effective = "gundam"
        why = (
            "vLLM fixes the resolution to Gundam (1024 global view + 640 px tiles)"
            if variant == "ocr"
            else "vLLM runs DeepSeek-OCR-2 at its native resolution (1024 global view + 0-6 tiles of 768)"
        )
    elif variant == "ocr2":
        effective = _V2_FALLBACK[requested]
        why = (
            "DeepSeek-OCR-2 only has 1024 px and 768 px vision queries, so it runs 'gundam' "
            "(1024 global + 0-6 tiles of 768) or 'base' (1024 global only)"
        )
    else:
        effective = requested
        why = ""
    spec = table[effective]
    if effective == requested:
        return spec, []
    return spec, [f"mode '{requested}' is not available here: {why}; ran '{effective}' instead"]


def with_geometry(
    spec: ModeSpec,
    *,
    base_size: int,
    tile_size: int | None,
    patch_size: int,
    downsample_ratio: int,
    min_tiles: int | None = None,
    max_tiles: int | None = None,
) -> ModeSpec:
    """``spec`` rescaled to a checkpoint's own geometry (the tiny test model uses 128 / 96 px views).

    The real checkpoints match the tables above; a checkpoint that declares other sizes in its processor config
    is trusted over the tables, so token counts stay equal to what the processor really produces.
    """
    return replace(
        spec,
        base_size=base_size,
        tile_size=tile_size if spec.tile_size is not None else None,
        patch_size=patch_size,
        downsample_ratio=downsample_ratio,
        min_tiles=spec.min_tiles if min_tiles is None else min_tiles,
        max_tiles=spec.max_tiles if max_tiles is None else max_tiles,
    )


@lru_cache(maxsize=16)
def _grids(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    grids = [
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    ]
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def tile_grid(width: int, height: int, spec: ModeSpec) -> tuple[int, int]:
    """(columns, rows) of tiles for a ``width`` x ``height`` page; (0, 0) when the page is not tiled.

    Same rule as the processors: a page no larger than one tile on both sides is not tiled; otherwise the grid
    whose aspect ratio is closest to the page's wins, ties going to more tiles while the page still covers more
    than half of the tiled canvas. Mirrors ``get_optimal_tiled_canvas`` (transformers) and ``count_tiles`` (vLLM).
    """
    if spec.tile_size is None or max(width, height) <= spec.tile_size:
        return (0, 0)
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in _grids(spec.min_tiles, spec.max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * spec.tile_size * spec.tile_size * cols * rows:
            best = (cols, rows)
    return best


def vision_tokens(width: int, height: int, spec: ModeSpec) -> int:
    """Vision tokens a page costs in ``spec``, as the paper counts them (global + tiles x tile tokens).

    Examples: Gundam v1 on a 1240 x 1754 page: 2 x 3 tiles -> 6 x 100 + 256 = 856; OCR-2 on the same page:
    6 x 144 + 256 = 1120. Separator and newline embeddings are not counted (see :func:`placeholder_tokens`).
    """
    cols, rows = tile_grid(width, height, spec)
    return spec.global_tokens + cols * rows * spec.tile_tokens


def placeholder_tokens(width: int, height: int, spec: ModeSpec, *, variant: Variant) -> int:
    """Prompt positions the image occupies in the decoder, separators included (what fills ``max_model_len``).

    DeepSeek-OCR (v1) adds a newline embedding after every row of queries and one view separator; OCR-2 only the
    view separator. Matches ``get_num_image_tokens`` in vLLM's deepseek_ocr / deepseek_ocr2 and the transformers
    processor's ``replace_image_token``.
    """
    cols, rows = tile_grid(width, height, spec)
    q = queries_per_side(spec.base_size, spec.patch_size, spec.downsample_ratio)
    if variant == "ocr2":
        return vision_tokens(width, height, spec) + 1
    total = q * (q + 1) + 1
    if cols * rows:
        qt = queries_per_side(spec.tile_size or 0, spec.patch_size, spec.downsample_ratio)
        total += (rows * qt) * (cols * qt + 1)
    return total


def max_placeholder_tokens(spec: ModeSpec, *, variant: Variant) -> int:
    """The most prompt positions one page can take in ``spec`` (the worst tile grid), separators included.

    What ``max_model_len`` must hold before any output: e.g. Gundam on OCR v1 peaks at 933 (a 1 x 6 grid), OCR-2
    at 1121 (six 768 px tiles).
    """
    q = queries_per_side(spec.base_size, spec.patch_size, spec.downsample_ratio)
    if spec.tile_size is None:
        return q * q + 1 if variant == "ocr2" else q * (q + 1) + 1
    qt = queries_per_side(spec.tile_size, spec.patch_size, spec.downsample_ratio)
    grids = _grids(spec.min_tiles, spec.max_tiles)
    if variant == "ocr2":
        return q * q + max(c * r for c, r in grids) * qt * qt + 1
    return q * (q + 1) + 1 + max(r * qt * (c * qt + 1) for c, r in grids)


def page_costs(sizes: list[tuple[int, int]]) -> list[tuple[str, Variant, list[int]]]:
    """Vision tokens of pages of ``sizes`` (width, height) in every mode of both models, as the paper counts them.

    What optical compression costs before any OCR runs (``POST /v1/render``): DeepSeek-OCR's five modes, then
    DeepSeek-OCR-2's two. Modes an engine does not honour (vLLM runs Gundam only) are still listed: the figures
    are the models' geometry, not one deployment's.

    Returns:
        ``(mode, variant, tokens per page)`` for each mode, DeepSeek-OCR first.
    """
    out: list[tuple[str, Variant, list[int]]] = []
    for variant, table in (("ocr", V1_MODES), ("ocr2", V2_MODES)):
        for name, spec in table.items():
            out.append((name, variant, [vision_tokens(w, h, spec) for w, h in sizes]))  # type: ignore[arg-type]
    return out

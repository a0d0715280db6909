"""MinerU 4 backend (PyPI ``mineru``, the maintained successor of ``magic-pdf``): engine, config, mapping.

Modules: :mod:`.config` (deployment config and request options), :mod:`.environment` (offline environment, device),
:mod:`.models` (which models a tier needs, fail-fast check), :mod:`.textlayer` (does a PDF need OCR),
:mod:`.mapping` (middle JSON -> unified schema), :mod:`.engine` (the ``OCREngine``), :mod:`backends.textpdf` (tiny
born-digital PDFs for warm-up, tests and benchmarks). Nothing here imports ``mineru`` at import time: the
router and CPU-only installs import the registry without it.
"""

from backends.mineru.config import MinerUConfig, MinerUOptions
from backends.mineru.engine import MinerUEngine

__all__ = ["MinerUConfig", "MinerUEngine", "MinerUOptions"]

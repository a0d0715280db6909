"""What the benchmarks share with the tests: the stand-in engine (:mod:`.fake_engine`), hostile and good
structured documents (:mod:`.hostile_documents`) and pages with a known layout (:mod:`.layout_samples`).

It lives here, not under ``tests/``, because a benchmark must run from a fresh clone with the command in its
docstring, where ``tests`` is not importable: the tests import these modules from here, never the other way round
(``tests/benchmarks/test_scripts.py`` checks that nothing in ``benchmarks/`` names ``tests``). Not part of the
installed product: a benchmark puts the repository's root on ``sys.path`` (:data:`ROOT`) to import it.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: what a benchmark puts first on ``sys.path``."""


def ray_worker_env() -> dict[str, str]:
    """``PYTHONPATH`` for a Ray cluster a benchmark starts, with the repository's root first, so that its replicas
    import :mod:`benchmarks.support.fake_engine` whatever directory the script was started from (Ray hands workers
    the driver's working directory, not its ``sys.path``)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}

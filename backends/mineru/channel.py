"""The framing of messages between the replica and its MinerU parse process: an 8-byte big-endian length, then
a pickle. Both ends are this project's own code (pickle never reads anything a client sent as a pickle: a client's
document travels inside the message as bytes)."""

from __future__ import annotations

import pickle
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct(">Q")


def encode(message: Any) -> bytes:
    """One message as the bytes that go on the pipe."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def read_message(stream: BinaryIO) -> Any:
    """One message from ``stream`` (blocking), or None at end of input."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def write_message(stream: BinaryIO, message: Any) -> None:
    stream.write(encode(message))
    stream.flush()

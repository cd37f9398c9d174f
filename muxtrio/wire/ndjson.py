"""Newline-delimited JSON framing (Ollama): an incremental line splitter with a size limit, and the stream framer.

Invariants: any split of the input yields the same lines; blank lines are skipped; a trailing ``\\r`` is stripped;
a line longer than ``max_line_bytes`` raises :class:`EventTooLarge`. ``flush()`` returns a last line without newline.
Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from muxtrio.errors import EventTooLarge
from muxtrio.wire.framing import Frame, Framer
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES


class NDJSONDecoder:
    """Splits what it is fed into lines in one pass per feed (``bytes.split``); only a line still waiting for its
    newline is kept between feeds."""

    __slots__ = ("_max", "_partial", "_partial_size")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_line_bytes
        self._partial: list[bytes] = []  # pieces of a line without its newline yet: joined once (linear time)
        self._partial_size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
                self._partial_size += len(chunk)
                if self._partial_size > self._max:
                    raise EventTooLarge("NDJSON line", self._max)
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
        lines = chunk.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" or the start of the next line
        self._partial_size = len(tail)
        if tail:
            self._partial.append(tail)
            if self._partial_size > self._max:
                raise EventTooLarge("NDJSON line", self._max)
        out: list[bytes] = []
        for line in lines:
            line = line.rstrip(b"\r")
            if len(line) > self._max:
                raise EventTooLarge("NDJSON line", self._max)
            if line and not line.isspace():
                out.append(line)
        return out

    def flush(self) -> list[bytes]:
        rest = b"".join(self._partial).strip()
        self._partial, self._partial_size = [], 0
        return [rest] if rest else []


class NDJSONFramer(Framer):
    """Frames -> one line per payload (event names do not exist in this framing)."""

    __slots__ = ()

    def frame(self, frames: Sequence[Frame]) -> bytes:
        if not frames:
            return b""
        return b"\n".join([data for _name, data in frames]) + b"\n"

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
    __slots__ = ("_buf", "_max", "_partial", "_partial_size")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = b""
        self._partial: list[bytes] = []  # chunks of a line without its newline yet: joined once (linear time)
        self._partial_size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            self._partial.append(chunk)
            self._partial_size += len(chunk)
            if len(self._buf) + self._partial_size > self._max:
                raise EventTooLarge("NDJSON line", self._max)
            return []
        if self._partial:
            chunk = b"".join(self._partial) + chunk
            self._partial = []
            self._partial_size = 0
        buf = self._buf + chunk if self._buf else chunk
        lines: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl].rstrip(b"\r")
            start = nl + 1
            if line.strip():
                lines.append(line)
        self._buf = buf[start:]
        if len(self._buf) > self._max:
            raise EventTooLarge("NDJSON line", self._max)
        return lines

    def flush(self) -> list[bytes]:
        rest = (self._buf + b"".join(self._partial)).strip()
        self._buf, self._partial, self._partial_size = b"", [], 0
        return [rest] if rest else []


class NDJSONFramer(Framer):
    """Frames -> one line per payload (event names do not exist in this framing)."""

    __slots__ = ()

    def frame(self, frames: Sequence[Frame]) -> bytes:
        if not frames:
            return b""
        return b"\n".join([data for _name, data in frames]) + b"\n"

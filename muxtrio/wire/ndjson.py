"""Newline-delimited JSON framing (Ollama): an incremental line splitter with a size limit, and the encoder.

Invariants: any split of the input yields the same lines; blank lines are skipped; a trailing ``\\r`` is stripped;
a line longer than ``max_line_bytes`` raises :class:`CodecError`. ``flush()`` returns a last line without newline.
Pure: standard library only.
"""

from __future__ import annotations

from muxtrio.errors import CodecError
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES


class NDJSONDecoder:
    __slots__ = ("_buf", "_max")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
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
            raise CodecError(f"NDJSON line larger than {self._max} bytes")
        return lines

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf.strip(), b""
        return [rest] if rest else []


def encode_line(data: bytes) -> bytes:
    return data + b"\n"

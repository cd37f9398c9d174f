"""A stream written as one JSON array (Gemini's ``streamGenerateContent`` without ``alt=sse``): ``[``, the objects
separated by ``,\\r\\n``, ``]`` — the API's own bytes.

Invariants: ``[`` comes before the first object (or the ``]`` of an empty stream), exactly once; an error object is
the array's last element, so a broken stream is still one well-formed array whose last object is the error. Pure:
standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from muxtrio.wire.framing import Frame, Framer

SEPARATOR = b",\r\n"


class JSONArrayFramer(Framer):
    __slots__ = ("_objects", "_opened")

    def __init__(self) -> None:
        self._opened = False
        self._objects = 0

    def frame(self, frames: Sequence[Frame]) -> bytes:
        parts: list[bytes] = []
        if not self._opened:
            self._opened = True
            parts.append(b"[")
        for _name, data in frames:
            if self._objects:
                parts.append(SEPARATOR)
            self._objects += 1
            parts.append(data)
        return b"".join(parts)

    def close(self) -> bytes:
        return self.frame(()) + b"]"

    def fail(self, frames: Sequence[Frame]) -> bytes:
        return self.frame(frames) + b"]"

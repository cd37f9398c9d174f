"""What a client stream is made of before it is bytes: stream encoders (``codecs/``) produce *frames*, and a
*framer* of this package turns them into the bytes of one transport framing (SSE, NDJSON, a JSON array).

A frame is ``(event name or None, payload)``: the payload is one compact JSON document (no newline); the name is
the SSE ``event:`` field where the format has one. The WebSocket transports send the payloads as they are (one per
message, or batched), so no framing is undone there.

Invariants: a framer's output for a sequence of ``frame`` calls does not depend on how the frames were split
between calls; ``close`` ends a stream that finished normally (``[DONE]``, ``]``...), ``fail`` writes the error
frames of a broken stream, framed so that it never looks finished. Pure: standard library only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

Frame = tuple[str | None, bytes]
"""One payload of a client stream: ``(SSE event name or None, compact JSON)``."""


class Framer(ABC):
    """Frames -> bytes for one stream (may keep state, e.g. whether a JSON array was opened)."""

    __slots__ = ()

    @abstractmethod
    def frame(self, frames: Sequence[Frame]) -> bytes: ...

    def close(self) -> bytes:
        """The bytes after the last frame of a stream that ended normally."""
        return b""

    def fail(self, frames: Sequence[Frame]) -> bytes:
        """The error frames that end a broken stream."""
        return self.frame(frames)

"""Server-sent events: an incremental, sans-IO decoder, the encoder helpers and the stream framer.

Decoder invariants:
- Any split of the input gives the same events (lines may be cut anywhere, even between ``\\r`` and ``\\n``).
- Line endings LF, CRLF and CR are all accepted; comment lines (``:``) are skipped; ``event:`` names the event;
  several ``data:`` lines join with ``\\n``; a blank line dispatches. ``id:`` and ``retry:`` are ignored.
- ``[DONE]`` is only special to codecs that check ``event.data == b"[DONE]"`` (a whole data payload), never a
  substring match inside content.
- An event (or a line) larger than ``max_event_bytes`` raises :class:`EventTooLarge` instead of growing without bound.
- ``flush()`` dispatches a final event that lacked its blank line (some servers end that way).

Framer (:class:`SSEFramer`): ``event: <name>`` when a frame has a name, ``data: <payload>``, a blank line; the line
ending is LF or CRLF (Gemini's own framing); ``close`` writes the terminator payload (``[DONE]``) where the format
has one, never after an error.
Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from muxtrio.errors import EventTooLarge
from muxtrio.wire.framing import Frame, Framer

DEFAULT_MAX_EVENT_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: bytes


class SSEDecoder:
    """Splits what it is fed into lines in one pass per feed (``bytes.splitlines`` is exactly the SSE set of line
    endings: LF, CRLF, CR); only a line still waiting for its ending is kept between feeds."""

    __slots__ = ("_data", "_data_size", "_event", "_max", "_partial", "_partial_size", "_pending_cr")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        # Pieces of a line still waiting for its line ending, joined once when it comes (a 20 MB event arriving in
        # 64 KB reads is copied once, not once per read).
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._pending_cr = False  # the last feed ended with CR: a LF opening the next one belongs to it
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        end = chunk[-1]
        if end != 10 and end != 13 and b"\n" not in chunk and b"\r" not in chunk:
            self._partial.append(chunk)
            self._partial_size += len(chunk)
            if self._partial_size + self._data_size > self._max:
                raise EventTooLarge("SSE event", self._max)
            return []
        self._pending_cr = end == 13
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        lines = chunk.splitlines()
        if end != 10 and end != 13:  # the last line has no ending yet
            tail = lines.pop()
            self._partial.append(tail)
            self._partial_size = len(tail)
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data or self._event is not None:
                    events.append(SSEEvent(self._event, b"\n".join(data)))
                    self._event = None
                    self._data = data = []
                    self._data_size = 0
            elif line[:5] == b"data:":  # the common line, inline
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self._max:
                    raise EventTooLarge("SSE event", self._max)
            else:
                self._line(line)
        if self._partial_size + self._data_size > self._max:
            raise EventTooLarge("SSE event", self._max)
        return events

    def _line(self, line: bytes) -> None:
        if line[:5] == b"data:":
            value = line[6:] if line[5:6] == b" " else line[5:]
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise EventTooLarge("SSE event", self._max)
        elif line[:1] == b":":
            return
        elif line[:6] == b"event:":
            self._event = line[6:].strip().decode("utf-8", "replace")
        # id:, retry: and unknown fields are ignored, as the SSE spec says.

    def flush(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._partial:
            line = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
            self._line(line)
        if self._data or self._event is not None:
            events.append(SSEEvent(self._event, b"\n".join(self._data)))
            self._event = None
            self._data = []
            self._data_size = 0
        return events


def encode_data(data: bytes) -> bytes:
    """``data: <payload>\\n\\n``. The payload must not contain newlines (compact JSON never does)."""
    return b"data: " + data + b"\n\n"




class SSEFramer(Framer):
    """Frames -> SSE events. ``done`` is the payload that ends a normal stream (``b"[DONE]"``), if any;
    ``error_lines`` writes error frames as bare JSON lines instead of events (Gemini's mid-stream errors, which the
    JS SDK only recognises in that form)."""

    __slots__ = ("_between", "_close", "_end", "_error_lines")

    def __init__(self, *, line_end: bytes = b"\n", done: bytes | None = None, error_lines: bool = False) -> None:
        self._end = line_end + line_end
        self._between = self._end + b"data: "
        self._close = b"data: " + done + self._end if done is not None else b""
        self._error_lines = error_lines

    def frame(self, frames: Sequence[Frame]) -> bytes:
        if not frames:
            return b""
        end = self._end
        payloads = [data for name, data in frames if name is None]
        if len(payloads) == len(frames):  # data-only events (OpenAI Chat, Gemini): one join
            return b"data: " + self._between.join(payloads) + end
        parts: list[bytes] = []
        line_end = end[: len(end) // 2]
        for name, data in frames:
            if name is not None:
                parts += (b"event: ", name.encode(), line_end)
            parts += (b"data: ", data, end)
        return b"".join(parts)

    def close(self) -> bytes:
        return self._close

    def fail(self, frames: Sequence[Frame]) -> bytes:
        if self._error_lines:
            line_end = self._end[: len(self._end) // 2]
            return b"".join([data + line_end for _name, data in frames])
        return self.frame(frames)

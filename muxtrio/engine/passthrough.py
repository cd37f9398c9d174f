"""Same-format pass-through: a provider's stream bytes forwarded to a client of the same format as they came.

When the client speaks the provider's format and nothing in the answer needs rewriting, the client gets the
provider's own frames (its ids, ``created``, ``system_fingerprint`` and every field the IR does not model), and the
gateway skips encoding and framing. The provider's bytes are still decoded into IR events, because the engine needs
them (usage, ``Finish``, the failover transcript, the thinking cache) and the writer keeps its encoder's state in
step with them (:meth:`StreamEncoder.advance`), so that a recovery from another provider, or an error frame, can
still be written after the provider's bytes.

:class:`PassThrough` is the client's side of the offer (the handler makes it); :class:`RawReader` is one attempt's
reader: it cuts each upstream chunk at its last complete frame, feeds the frames to the decoder and sorts their bytes
into ``raw`` (to write with the batch) and ``tail`` (to write only when the engine has finished).

Invariants:
- Only complete frames are forwarded (a partial frame waits in ``_rest``), so an error frame written after them is
  a frame of its own, never glued to half an event.
- A cut stream never looks finished: the frame that produced ``Finish`` and every frame after it (OpenAI
  ``[DONE]``; Anthropic ``message_delta``/``message_stop``; Gemini's last chunk; Ollama's ``done`` line) go to
  ``tail``, which the writer sends only after the engine completed — as the translated path sends its closing
  frames only then.
- A frame that made the decoder raise (a provider error event) is never forwarded; frames decoded before it in the
  same chunk are, and the error is raised by the next ``feed``/``flush`` (the decoders' own rule).
- Several whole frames from one read are decoded in one call and forwarded as one unit, unless one of them may end
  the answer, be an error or be usage the client did not ask for (the format's marker bytes, ``error``, ``usage``
  appear): then they are decoded one by one. A decoder that deferred an error inside a unit (it raises on the next
  call, probed at once) gets that unit translated, never forwarded.
- Whatever the reader cannot split exactly (a line ending it did not expect, a partial frame over the event limit)
  turns pass-through off for the rest of the attempt: the frames not yet forwarded and all later ones are decoded and
  translated as usual (``raw`` is then ``None``).
- OpenAI Chat: a client that did not ask for usage (``stream_options.include_usage``; muxtrio always asks the
  provider) does not get the provider's usage-only chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from muxtrio.codecs.base import Codec, Format, StreamDecoder
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import MuxError
from muxtrio.ir.events import Event, Finish, UsageUpdate
from muxtrio.ir.request import Request

RAW_FORMATS: dict[Format, frozenset[str | None]] = {
    Format.OPENAI_CHAT: frozenset({None}),  # not the legacy /v1/completions dialect
    Format.ANTHROPIC: frozenset({None}),
    Format.GEMINI: frozenset({None}),  # SSE (alt=sse), not the JSON-array stream
    Format.OLLAMA: frozenset({"chat"}),  # /api/chat, not /api/generate
}
"""The client formats (and their dialects, ``request.extensions[format]["endpoint"]``) whose stream is the same
bytes as their provider's stream. OpenAI Responses is not among them: its answers carry the gateway's response id,
which stored responses (``previous_response_id``) and the WebSocket transport rely on."""

_NDJSON = frozenset({Format.OLLAMA})
_END_MARKERS: dict[Format, bytes] = {
    Format.OPENAI_CHAT: b"[DONE]",  # Finish comes with [DONE] (or at the end of the stream)
    Format.ANTHROPIC: b"message_",  # message_delta (Finish) and message_stop; message_start only once
    Format.GEMINI: b"finishReason",
    Format.OLLAMA: b"true",  # "done":true, however it is spaced
}
"""Bytes that every frame that can end an answer contains, per format (a frame without them cannot carry Finish)."""


@dataclass(frozen=True, slots=True)
class PassThrough:
    """A client's offer to take the provider's bytes: its format, and the model name it must be shown (by the
    ``response-model`` rule) once an attempt's route is known. An attempt passes through only when the model shown
    is the upstream model the attempt asks for."""

    format: Format
    model_shown: Callable[[StreamMeta], str]


def offer(enabled: bool, fmt: Format, request: Request, model_shown: Callable[[StreamMeta], str]) -> PassThrough | None:
    """The pass-through offer of an HTTP streaming client, or None where its stream cannot be the provider's."""
    dialects = RAW_FORMATS.get(fmt)
    if not enabled or dialects is None:
        return None
    endpoint = request.extensions.get(fmt.value, {}).get("endpoint")
    if endpoint not in dialects:
        return None
    return PassThrough(fmt, model_shown)


def eligible(offer: PassThrough | None, codec: Codec, meta: StreamMeta, recovering: bool) -> bool:
    """Whether this attempt's bytes may go to the client as they are: same format, the format's own codec (not a
    subscription variant that rewrites the answer), not a recovery of a cut stream, and the model the client must
    see is the one the provider will name."""
    if offer is None or recovering or codec.format is not offer.format:
        return False
    if type(codec) is not type(get_codec(codec.format)):
        return False
    return offer.model_shown(meta) == meta.model


class RawReader:
    """One attempt's provider bytes -> ``(events, raw, tail)`` per chunk. See the module docstring."""

    __slots__ = (
        "_decoder", "_ended", "_error", "_limit", "_marker", "_more", "_more_size", "_more_tail", "_ndjson", "_on",
        "_rest", "_separator", "_usage_wanted",
    )

    def __init__(self, decoder: StreamDecoder, fmt: Format, request: Request, max_event_bytes: int) -> None:
        self._decoder = decoder
        self._ndjson = fmt in _NDJSON
        self._separator: bytes | None = b"\n" if self._ndjson else None  # SSE: LF or CRLF, from the first frame
        self._usage_wanted = fmt is not Format.OPENAI_CHAT or request.include_usage
        self._marker = _END_MARKERS[fmt]
        self._limit = max_event_bytes
        self._rest = b""
        # Reads that came while a frame stays open after ``_rest``, joined once when its end arrives: a 20 MB event
        # in 64 KB reads is copied once and scanned once, not once per read.
        self._more: list[bytes] = []
        self._more_size = 0
        self._more_tail = b""  # the last 3 bytes of the open frame so far (a separator may straddle two reads)
        self._on = True
        self._ended = False  # a frame produced Finish: every later frame belongs to the tail
        self._error: MuxError | None = None

    @property
    def passing(self) -> bool:
        return self._on

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def feed(self, chunk: bytes) -> tuple[list[Event], bytes | None, bytes]:
        if self._error is not None:
            self._raise_pending()
        if not self._on:
            return self._decoder.feed(chunk), None, b""
        if self._rest:
            if self._ndjson:
                still_open = b"\n" not in chunk
            else:  # no frame end in the read, nor across its start
                last = (self._more_tail if self._more else self._rest[-3:]) + chunk[:3]
                still_open = not _ends(chunk) and not _ends(last)
                if still_open:
                    self._more_tail = chunk[-3:] if len(chunk) >= 3 else last[-3:]
            if still_open:
                self._more.append(chunk)  # still inside the open frame
                self._more_size += len(chunk)
                if len(self._rest) + self._more_size > self._limit:
                    return self._off(self._take_rest())
                return [], b"", b""
            self._more.append(chunk)
            buf = self._take_rest()
        else:
            buf = chunk
        separator = self._separator
        if separator is None:
            if b"\r\n\r\n" in buf:
                separator = self._separator = b"\r\n\r\n"
            elif b"\n\n" in buf:
                separator = self._separator = b"\n\n"
            elif len(buf) > self._limit:
                return self._off(buf)
            else:
                self._rest = buf
                return [], b"", b""
        size = len(separator)
        if buf.endswith(separator):
            # The hot path: the chunk ends at a frame's end. Cut at that frame's start only if it has several (a
            # provider error frame must be decoded alone, to be left out); one scan for the separator says which.
            crlf_mixed = size == 4 and b"\n\n" in buf
            if not crlf_mixed:
                self._rest = b""
                if buf.find(separator) != len(buf) - size:
                    return self._unit(buf, separator)
                return self._frame(buf)
        # A partial frame at the end (or an odd line ending): cut after the last whole frame.
        if (b"\n\n" in buf) if size == 4 else (b"\r" in buf):
            return self._off(buf)  # line endings the cut cannot follow exactly: translate from here
        end = buf.rfind(separator)
        if end < 0:
            if len(buf) > self._limit:
                return self._off(buf)
            self._rest = buf
            return [], b"", b""
        end += size
        self._rest = buf[end:]
        return self._unit(buf[:end], separator)

    def _unit(self, data: bytes, separator: bytes) -> tuple[list[Event], bytes | None, bytes]:
        """Several whole frames (one socket read carried them). Decoded in one call, as the translated path does,
        unless a frame may need to be told apart: one that may end the answer or be an error (the format's marker
        bytes appear in the frames; a false hit only costs the exact path), or usage the client did not ask for."""
        if self._ended:
            return self._decoder.feed(data), b"", data
        if self._marker in data or b"error" in data or (not self._usage_wanted and b'"usage"' in data):
            return self._frames(_split(data, separator))
        got = self._decoder.feed(data)
        try:
            self._decoder.feed(b"")  # a decoder that defers an error raised mid-feed raises it now
        except MuxError as exc:
            self._error = exc
            return got, None, b""  # what came before the bad frame, translated; the error follows
        return got, data, b""

    def _frame(self, frame: bytes) -> tuple[list[Event], bytes, bytes]:
        """One whole frame: its events, and its bytes as ``raw``, ``tail`` or neither."""
        got = self._decoder.feed(frame)  # a provider error raises here: nothing of the frame is forwarded
        if self._ended:
            return got, b"", frame
        for event in got:
            if type(event) is Finish:
                self._ended = True
                return got, b"", frame
        if self._usage_wanted or (got and type(got[0]) is not UsageUpdate):
            return got, frame, b""
        return self._usage_frame(got, frame)

    @staticmethod
    def _usage_frame(got: list[Event], frame: bytes) -> tuple[list[Event], bytes, bytes]:
        """A frame for an OpenAI client that did not ask for usage: left out if it is the usage chunk muxtrio asked
        the provider for (usage and nothing else)."""
        if b'"usage"' in frame and all(type(event) is UsageUpdate for event in got):
            return got, b"", b""
        return got, frame, b""

    def flush(self) -> tuple[list[Event], bytes | None, bytes]:
        self._raise_pending()
        if not self._on:
            return self._decoder.flush(), None, b""
        events: list[Event] = []
        raw = tail = b""
        if self._rest:
            rest = self._take_rest()
            events, raw, tail = self._frames([self._terminated(rest)])
            self._raise_pending()
        events.extend(self._decoder.flush())
        return events, raw, tail

    def _take_rest(self) -> bytes:
        """The open frame's bytes (``_rest`` and the reads after it), joined once; both are emptied."""
        rest = b"".join([self._rest, *self._more]) if self._more else self._rest
        self._rest = b""
        self._more = []
        self._more_size = 0
        return rest

    def _terminated(self, frame: bytes) -> bytes:
        """A last frame that lacked its end (some servers stop that way), ended so that the client reads it."""
        if self._ndjson:
            return frame if frame.endswith(b"\n") else frame + b"\n"
        end = self._separator or b"\n\n"
        if frame.endswith(end):
            return frame
        line = end[: len(end) // 2]
        return frame + (line if frame.endswith(line) else end)

    def _off(self, buf: bytes) -> tuple[list[Event], bytes | None, bytes]:
        """Pass-through ends for this attempt: what is not forwarded yet is decoded and translated."""
        self._on = False
        self._rest = b""
        self._more = []
        self._more_size = 0
        return self._decoder.feed(buf), None, b""

    def _frames(self, frames: list[bytes]) -> tuple[list[Event], bytes, bytes]:
        events: list[Event] = []
        raw: list[bytes] = []
        tail: list[bytes] = []
        for frame in frames:
            try:
                got, forward, closing = self._frame(frame)
            except MuxError as exc:
                if not events:
                    raise
                self._error = exc  # what came before it goes out first; raised by the next call
                break
            events.extend(got)
            if forward:
                raw.append(forward)
            if closing:
                tail.append(closing)
        return events, b"".join(raw), b"".join(tail)


def _split(data: bytes, separator: bytes) -> list[bytes]:
    """``data`` (whole frames) cut after each ``separator``, which stays with its frame."""
    parts = data.split(separator)
    parts.pop()  # data ends with the separator: the last part is empty
    return [part + separator for part in parts]


def _ends(chunk: bytes) -> bool:
    """Whether an SSE frame separator (LF LF or CRLF CRLF) occurs anywhere in ``chunk``."""
    return b"\n\n" in chunk or b"\r\n\r\n" in chunk

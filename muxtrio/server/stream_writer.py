"""One client stream's writer, shared by every streaming transport: the HTTP streaming answer
(:mod:`muxtrio.server.handlers`), ``/v1/ws`` streams (:mod:`muxtrio.server.ws_mux`) and Responses WebSocket turns
(:mod:`muxtrio.server.ws_responses`). It drives an ``EventStream``'s ready batches through the client's
``StreamEncoder`` and hands the frames of each batch to the transport in one ``write``; the transport frames them
(HTTP: the encoder's :mod:`muxtrio.wire` framer) or sends their payloads as they are (WebSocket).

States (``state``), one machine for every transport:
- ``WAITING``: nothing of this stream has been written. An error is still answered outside the stream (an HTTP
  status in the client's error shape, a lone WebSocket ``error`` message).
- ``STREAMING``: the transport wrote output (HTTP: the response headers, at the first batch or keepalive;
  WebSocket: the first payload). An error must now be the format's own error frames (``error_frames``).
- ``FINISHED``: the engine ended normally and the final frames were handed to ``end``. ``FAILED`` is set by the
  caller that writes the error.

Invariants: the encoder is created once, with the model shown to the client, when the first batch (or the first
idle interval, or the end) needs it; ``ready`` is awaited *before* each batch is asked for (per-stream flow control);
``observe`` sees every event, in order, before its frames are written; a normal ``run`` return means the engine
finished (so ``end`` ran), an exception means it did not (and ``end`` did not run).

Pass-through (``takes_raw`` transports, :mod:`muxtrio.engine.passthrough`): a batch that carries the provider's
bytes is written as those bytes; its events are still observed and advance the encoder (``StreamEncoder.advance``),
so batches encoded later (a recovery, an attempt that is not eligible) and error frames continue the same stream.
The provider's closing frames (``tail``) are held until the engine finished and then written by ``end_raw`` in
place of the encoder's final frames; a stream that fails never gets them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

import trio

from muxtrio.codecs.base import StreamEncoder
from muxtrio.engine.stream import EventStream, StreamMeta
from muxtrio.ir.events import Event
from muxtrio.wire.framing import Frame

_Ready = TypeVar("_Ready")


class State(Enum):
    WAITING = "waiting"
    STREAMING = "streaming"
    FINISHED = "finished"
    FAILED = "failed"


class StreamWriter(ABC):
    """The loop; a transport subclasses it for ``write`` and ``end`` (and ``ready``, ``observe``, ``idle``)."""

    idle_interval: float | None = None
    """Seconds without a batch after which ``idle`` is called (keepalive); ``None``: never."""

    __slots__ = ("_raw_tail", "encoder", "state", "takes_raw")  # one writer per open stream: no instance dict

    def __init__(self) -> None:
        self.state = State.WAITING
        self.encoder: StreamEncoder | None = None
        # The transport writes framed bytes (HTTP) and so can take a provider's bytes (pass-through).
        self.takes_raw = False
        self._raw_tail: bytes | None = None  # pass-through: the provider's closing frames; None: translating

    @abstractmethod
    def new_encoder(self, meta: StreamMeta) -> StreamEncoder:
        """The client's encoder for this stream (``meta`` tells which model is shown)."""

    def encoder_for(self, meta: StreamMeta) -> StreamEncoder:
        encoder = self.encoder
        if encoder is None:
            encoder = self.encoder = self.new_encoder(meta)
        return encoder

    async def run(self, events: EventStream) -> None:
        """Write the whole stream. Raises what the engine raises (``MuxError`` for a failed stream)."""
        if self.takes_raw:
            await self._run_raw(events)
            return
        meta = events.meta
        while (batch := await self._next(events.next_batch, meta)) is not None:
            frames_of = self.encoder_for(meta).frames
            observe = self.observe
            frames: list[Frame] = []
            add = frames.extend
            for event in batch:  # the hot path: per event one observe and the encoder's frames
                observe(event, meta)
                add(frames_of(event))
            await self.write(frames, meta)
        await self.end(list(self.encoder_for(meta).final_frames()), meta)
        self.state = State.FINISHED

    async def _next(self, fetch: Callable[[], Awaitable[_Ready | None]], meta: StreamMeta) -> _Ready | None:
        """What ``fetch`` returns once the transport is ready for it, with a keepalive (``idle``) written after
        every ``idle_interval`` without one."""
        interval = self.idle_interval
        while True:
            await self.ready()
            if interval is None:
                return await fetch()
            with trio.move_on_after(interval) as idle:
                ready = await fetch()
            if not idle.cancelled_caught:
                return ready
            await self.idle(meta)

    async def _run_raw(self, events: EventStream) -> None:
        """``run`` for a transport that takes provider bytes: per ready batch, its bytes or its encoding."""
        meta = events.meta
        while (items := await self._next(events.next_items, meta)) is not None:
            encoder = self.encoder_for(meta)
            observe = self.observe
            advance = encoder.advance
            parts: list[bytes] = []
            for item in items:
                raw = item.raw
                if raw is None:  # translated: this batch's frames, framed
                    self._raw_tail = None
                    frames: list[Frame] = []
                    for event in item.events:
                        observe(event, meta)
                        frames.extend(encoder.frames(event))
                    if frames:
                        parts.append(encoder.framer.frame(frames))
                    continue
                for event in item.events:  # the pass-through hot path: observe, and keep the encoder in step
                    observe(event, meta)
                    advance(event)
                if raw:
                    parts.append(raw)
                if self._raw_tail is None:
                    self._raw_tail = item.tail
                elif item.tail:
                    self._raw_tail += item.tail
            await self.write_raw(b"".join(parts) if len(parts) != 1 else parts[0], meta)
        encoder = self.encoder_for(meta)
        if self._raw_tail is None:
            await self.end(list(encoder.final_frames()), meta)
        else:
            # The provider's own closing frames; a provider that closed without any (OpenAI without [DONE]) gets
            # the framing's terminator, as a translated stream would.
            await self.end_raw(self._raw_tail or encoder.framer.close(), meta)
        self.state = State.FINISHED

    async def write_raw(self, data: bytes, meta: StreamMeta) -> None:
        """One ready batch as bytes of the HTTP stream (maybe empty). Only ``takes_raw`` transports get here."""
        raise TypeError(f"{type(self).__name__} does not take provider bytes")

    async def end_raw(self, data: bytes, meta: StreamMeta) -> None:
        """The closing bytes of a stream that passed through and that the engine finished normally."""
        raise TypeError(f"{type(self).__name__} does not take provider bytes")

    async def ready(self) -> None:
        """Awaited before each batch is asked for (flow control); returns at once by default."""
        return

    def observe(self, event: Event, meta: StreamMeta) -> None:
        """Every event, before its frames are written (usage, limits, the remembered answer)."""
        return

    async def idle(self, meta: StreamMeta) -> None:
        """``idle_interval`` passed without a batch."""
        return

    @abstractmethod
    async def write(self, frames: list[Frame], meta: StreamMeta) -> None:
        """One ready batch's frames (maybe none: the batch's events had no output of their own)."""

    @abstractmethod
    async def end(self, frames: list[Frame], meta: StreamMeta) -> None:
        """The final frames of a stream the engine finished normally."""

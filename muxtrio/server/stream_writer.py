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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum

import trio

from muxtrio.codecs.base import StreamEncoder
from muxtrio.engine.stream import EventStream, StreamMeta
from muxtrio.ir.events import Event
from muxtrio.wire.framing import Frame


class State(Enum):
    WAITING = "waiting"
    STREAMING = "streaming"
    FINISHED = "finished"
    FAILED = "failed"


class StreamWriter(ABC):
    """The loop; a transport subclasses it for ``write`` and ``end`` (and ``ready``, ``observe``, ``idle``)."""

    idle_interval: float | None = None
    """Seconds without a batch after which ``idle`` is called (keepalive); ``None``: never."""

    __slots__ = ("encoder", "state")  # one writer per open stream: no instance dict (subclasses add their own)

    def __init__(self) -> None:
        self.state = State.WAITING
        self.encoder: StreamEncoder | None = None

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
        meta = events.meta
        interval = self.idle_interval
        while True:
            await self.ready()
            if interval is None:
                batch = await events.next_batch()
            else:
                with trio.move_on_after(interval) as idle:
                    batch = await events.next_batch()
                if idle.cancelled_caught:
                    await self.idle(meta)
                    continue
            if batch is None:
                break
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

"""The channel between a provider reader and a client writer, with its own bounded buffer pool.

Invariants:
- Each stream owns one :class:`BytePool`: a byte budget. The reader takes budget for every upstream chunk *before*
  it decodes and forwards it, and the budget comes back when the consumer asks for the next batch (which means it
  has written the previous one). When the pool is empty the reader waits and does not read the upstream socket, so
  TCP backpressure reaches the provider. Memory held per stream is bounded by the pool, whatever the stream's
  length or the client's speed.
- A single chunk larger than the whole pool takes the whole pool (it cannot be split, and it is already bounded by
  the decoder's maximum event size).
- Every byte taken is given back on every path: the reader releases what it holds in ``finally`` (a decoder that
  raises on an oversized event must not leak the budget into the next attempt), and the consumer's budget goes back
  when it asks for more or leaves.
- No wait is unbounded: :meth:`BytePool.acquire` takes a timeout and raises :class:`ConsumerStalled` when the
  consumer has not freed budget in time (a client that stopped reading; never the provider's fault).
- The consumer sees a stream as complete only if the producer said so (``StreamMeta.completed``): a channel that
  ends without it raises :class:`StreamTruncated`, so a lost failure can never read as a finished answer.
- Errors travel as a :class:`Failure` item and are raised in the consumer's task, never in the reader's nursery,
  so the consumer always sees either a clean end or a ``MuxError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

from muxtrio.errors import ErrorKind, MuxError, StreamTruncated
from muxtrio.ir.events import Event


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    capacity: int
    in_use: int
    peak: int
    waits: int


class ConsumerStalled(Exception):
    """The consumer freed no budget (wrote nothing to its client) for ``seconds``: the client stopped reading.

    Deliberately not a :class:`MuxError`: it says nothing about the provider, so the engine's attempt loop (which
    judges every ``MuxError`` and may fail over) lets it through, and the producer ends the stream with
    :meth:`error`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the client read nothing for {seconds:g}s")
        self.seconds = seconds

    def error(self) -> MuxError:
        return MuxError(ErrorKind.TIMEOUT, f"the client read nothing for {self.seconds:g}s; stream abandoned")


class BytePool:
    """A per-stream byte budget. ``acquire`` waits while the budget is spent; ``release`` gives it back."""

    __slots__ = ("_freed", "_in_use", "_peak", "_waits", "capacity", "waiting")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("pool capacity must be positive")
        self.capacity = capacity
        self._in_use = 0
        self._peak = 0
        self._waits = 0
        self.waiting = False  # the producer waits for budget now (a writer stalled by backpressure)
        self._freed: trio.Event | None = None  # made when the producer first waits (most streams never do)

    def try_acquire(self, size: int) -> int | None:
        """Take ``size`` bytes (clamped to the capacity) if they are free now; None if the caller must wait."""
        size = min(size, self.capacity)
        if self._in_use + size > self.capacity:
            return None
        self._in_use += size
        if self._in_use > self._peak:
            self._peak = self._in_use
        return size

    async def acquire(self, size: int, patience: float) -> int:
        """Take ``size`` bytes (clamped to the capacity), waiting at most ``patience`` seconds for the consumer to
        free them; returns what was taken, to pass to :meth:`release`. Raises :class:`ConsumerStalled` after that."""
        if (taken := self.try_acquire(size)) is not None:
            return taken
        self.waiting = True
        try:
            with trio.move_on_after(patience):
                while (taken := self.try_acquire(size)) is None:
                    self._waits += 1
                    freed = self._freed = trio.Event()
                    await freed.wait()
                return taken
        finally:
            self.waiting = False
        raise ConsumerStalled(patience)

    def release(self, size: int) -> None:
        if size:
            self._in_use -= size
            if self._freed is not None:
                self._freed.set()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self.capacity, self._in_use, self._peak, self._waits)


@dataclass(slots=True)
class Batch:
    """Events decoded from one upstream chunk, and the pool budget they hold.

    Pass-through (:mod:`muxtrio.engine.passthrough`): ``raw`` is the provider's bytes of these events, written
    instead of their encoding (``None``: encode them), and ``tail`` the provider's closing frames among them, written
    only once the engine finished."""

    events: list[Event]
    cost: int = 0
    raw: bytes | None = None
    tail: bytes = b""


@dataclass(slots=True)
class Failure:
    error: MuxError


@dataclass(slots=True)
class StreamMeta:
    """What the engine learned while serving: which provider and upstream model answered (and under which model
    name of the route: the requested one or a fallback), attempts made, and warnings for the client."""

    provider: str = ""
    model: str = ""
    route: str = ""  # the model name (the requested one or a fallback) whose route served
    credential: str = ""  # the label (never the key) of the credential of the last attempt
    attempts: int = 0
    failovers: int = 0
    continued: bool = False  # a cut stream was finished by a continuation (assistant prefill)
    regenerated: bool = False  # a cut stream was finished by a regeneration spliced after what was sent
    completed: bool = False  # set by the producer when the answer ended normally, before it closes the channel
    buffer_peak: int = 0  # the most bytes this stream's pool held (set when the stream ends)
    buffer_waits: int = 0  # how often the producer waited for budget (the consumer was behind)
    warnings: list[str] = field(default_factory=list)  # told to the client (a response header), e.g. dropped tools


class EventStream:
    """The consumer's side: iterate events (``async for``) or ready batches (``batches()``).

    Asking for the next item releases the budget of the previous one.
    """

    __slots__ = ("_failure", "_held", "_receive", "meta", "pool")

    def __init__(self, receive: trio.MemoryReceiveChannel[Batch | Failure], pool: BytePool, meta: StreamMeta) -> None:
        self._receive = receive
        self.pool = pool
        self.meta = meta
        self._held = 0
        self._failure: Failure | None = None

    def _release(self) -> None:
        if self._held:
            self.pool.release(self._held)
            self._held = 0

    async def next_batch(self) -> list[Event] | None:
        """All events ready now (at least one), or None at the end. Joins batches already waiting, so a writer
        that fell behind catches up with one write."""
        items = await self.next_items()
        if items is None:
            return None
        if len(items) == 1:
            return items[0].events
        return [event for item in items for event in item.events]

    async def next_items(self) -> list[Batch] | None:
        """The ready batches as they are (at least one), or None at the end; :meth:`next_batch` joins their events
        (a pass-through writer needs each batch's provider bytes next to its events). A failure that arrives behind
        ready batches is raised on the next call, after they were delivered."""
        self._release()
        if self._failure is not None:
            raise self._failure.error
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            if not self.meta.completed:
                raise StreamTruncated("the stream ended before the answer was complete") from None
            return None
        items = [self._take(item)]
        while True:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return items
            if isinstance(item, Failure):
                self._failure = item
                return items
            items.append(self._take(item))

    def _take(self, item: Batch | Failure) -> Batch:
        if isinstance(item, Failure):
            raise item.error
        self._held += item.cost
        return item

    async def batches(self) -> AsyncIterator[list[Event]]:
        while (batch := await self.next_batch()) is not None:
            yield batch

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while (batch := await self.next_batch()) is not None:
            for event in batch:
                yield event

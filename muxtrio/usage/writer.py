"""The usage writer: a bounded queue that the request path drops records into, and one task that writes them in batches.

Invariants:
- ``submit`` never waits and never raises: a full queue drops the record and counts it (one WARNING per burst).
- One writer task per process; it batches by size (``batch-size``) and by time (``flush-interval``) and calls the
  blocking store from a worker thread, one call at a time, so a slow database never blocks the event loop.
- A failed write keeps its batch and is retried with backoff; records keep queueing up to the bound meanwhile.
- Closing flushes everything queued, within a deadline: a database that stays down then loses the rest (counted).
- Retention cleanup runs in the same task, so it never races a write.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from muxtrio.usage.record import UsageRecord
from muxtrio.usage.store import Store, open_store

log = logging.getLogger("muxtrio.usage")

CLEANUP_EVERY = 3600.0


@dataclass(slots=True)
class WriterStatistics:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    last_error: str | None = None


Observer = Callable[[str, int], None]
"""Called with ("queued" | "written" | "dropped", count) as records move; the metrics layer counts them."""


class UsageWriter:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 100,
        flush_interval: float = 5.0,
        retention_days: float = 30.0,
        queue_limit: int = 10_000,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self.statistics = WriterStatistics()
        self._observer = observer
        self._send, self._receive = trio.open_memory_channel[UsageRecord](queue_limit)
        self._dropping = False
        self._limiter = trio.CapacityLimiter(1)
        self._batch: list[UsageRecord] = []

    def _note(self, what: str, count: int) -> None:
        if self._observer is not None and count:
            self._observer(what, count)

    def submit(self, record: UsageRecord) -> bool:
        """Queue one record; False (and counted) when the queue is full or closed."""
        try:
            self._send.send_nowait(record)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.statistics.dropped += 1
            self._note("dropped", 1)
            if not self._dropping:
                self._dropping = True
                log.warning("usage queue is full (database slow or down): dropping usage records until it drains")
            return False
        self.statistics.queued += 1
        self._note("queued", 1)
        return True

    async def _call(self, fn: Callable[[], object]) -> object:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter, abandon_on_cancel=False)

    async def _write(self, batch: list[UsageRecord], *, deadline: float = math.inf) -> bool:
        """Write one batch, retrying with backoff until it lands or the deadline passes."""
        delay = 0.5
        while True:
            try:
                await self._call(lambda: self.store.write(batch))
            except Exception as exc:  # any driver error: keep the batch, back off, retry
                self.statistics.failed_writes += 1
                first = self.statistics.last_error is None
                self.statistics.last_error = type(exc).__name__
                if first:
                    log.warning("usage store %s: write failed (%s); retrying", self.store.label, type(exc).__name__)
                if trio.current_time() + delay > deadline:
                    return False
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if self.statistics.last_error is not None:
                log.info("usage store %s: writes recovered", self.store.label)
            self.statistics.last_error = None
            self.statistics.written += len(batch)
            self._note("written", len(batch))
            return True

    async def _cleanup(self) -> None:
        if self.retention_days <= 0:
            return
        cutoff = time.time() - self.retention_days * 86400
        try:
            removed = await self._call(lambda: self.store.delete_before(cutoff))
        except Exception as exc:
            log.warning("usage retention cleanup failed (%s)", type(exc).__name__)
            return
        if removed:
            log.info("usage retention: removed %s records older than %g days", removed, self.retention_days)

    async def run(self) -> None:
        """Write batches until the queue is closed and drained. The batch being filled lives on ``self._batch``, so a
        cancellation loses nothing: ``drain`` writes it first."""
        next_cleanup = trio.current_time()
        while True:
            if trio.current_time() >= next_cleanup:
                await self._cleanup()
                next_cleanup = trio.current_time() + CLEANUP_EVERY
            with trio.move_on_at(next_cleanup):
                try:
                    self._batch.append(await self._receive.receive())
                except trio.EndOfChannel:
                    return
            if not self._batch:
                continue
            closed = await self._fill()
            if await self._write(self._batch):
                self._batch = []
            if self._dropping and self._receive.statistics().current_buffer_used < self.batch_size:
                self._dropping = False
            if closed:
                return

    async def _fill(self) -> bool:
        """Add records to the batch until it is full or the flush interval passes; True once the queue closed."""
        with trio.move_on_after(self.flush_interval):
            while len(self._batch) < self.batch_size:
                try:
                    self._batch.append(await self._receive.receive())
                except trio.EndOfChannel:
                    return True
        return False

    async def drain(self, grace: float) -> None:
        """Close the queue and write what it holds, within ``grace`` seconds; what cannot be written is counted."""
        self._send.close()
        deadline = trio.current_time() + grace
        left, self._batch = self._batch, []
        while True:
            try:
                left.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        for start in range(0, len(left), self.batch_size):
            chunk = left[start : start + self.batch_size]
            if not await self._write(chunk, deadline=deadline):
                lost = len(left) - start
                self.statistics.dropped += lost
                self._note("dropped", lost)
                log.warning("usage store %s unreachable at shutdown: %d records lost", self.store.label, lost)
                return


@asynccontextmanager
async def open_writer(
    dsn: str,
    *,
    batch_size: int = 100,
    flush_interval: float = 5.0,
    retention_days: float = 30.0,
    queue_limit: int = 10_000,
    shutdown_grace: float = 10.0,
    observer: Observer | None = None,
    opener: Callable[[str], Store] = open_store,
) -> AsyncIterator[UsageWriter]:
    """Open the store and run its writer for the duration of the block; leaving flushes and closes."""
    store = await trio.to_thread.run_sync(opener, dsn)
    writer = UsageWriter(
        store, batch_size=batch_size, flush_interval=flush_interval, retention_days=retention_days,
        queue_limit=queue_limit, observer=observer,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            try:
                yield writer
            finally:
                nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await writer.drain(shutdown_grace)
    finally:
        await trio.to_thread.run_sync(store.close)

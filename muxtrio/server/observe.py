"""The server's observability: Prometheus series, usage records and request logs for every client request.

One :class:`Observability` per process, opened by the app's lifespan. ``begin`` and ``end`` bracket each request;
``end`` turns the request's :class:`~muxtrio.server.handlers.RequestLog` into metrics, one usage record and, when the
request failed or ``request-log`` is on, a request log file.

Invariants:
- Never on the request's critical path: metrics are in-memory increments, the usage record goes into the writer's
  bounded queue (``submit`` never waits), and request log files are written by a background task from a bounded
  queue of their own (full → the entry is dropped and counted in the log).
- Opening the usage store never fails the server: a database that is down at startup is retried by the writer; a
  store that cannot be opened at all (bad path) turns usage records off with one ERROR line.
- Relative ``logging.*`` paths resolve against the muxtrio data directory (``$XDG_DATA_HOME/muxtrio``, else
  ``~/.local/share/muxtrio``), so a gateway never writes into whatever directory it was started from.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from muxtrio.config import Config
from muxtrio.metrics import Metrics, status_class
from muxtrio.paths import data_dir, data_path
from muxtrio.redact import Scrubber
from muxtrio.requestlog import RequestLogDirectory, RequestRecorder, build_entry
from muxtrio.usage.record import UsageRecord
from muxtrio.usage.store import open_store
from muxtrio.usage.writer import UsageWriter, open_writer

if TYPE_CHECKING:
    from muxtrio.engine.engine import Engine
    from muxtrio.server.handlers import RequestLog

log = logging.getLogger("muxtrio.observe")

REQUEST_LOG_QUEUE = 256
SAMPLE_INTERVAL = 1.0  # seconds between refreshes of the gauges read from the engine (each worker its own)


def usage_dsn(config: Config) -> str | None:
    """The DSN usage records go to, or None when they are off."""
    dsn = config.usage.dsn
    if dsn == "":
        return None
    return dsn if dsn is not None else "sqlite://" + os.path.join(data_dir(), "usage.db")


class Observability:
    def __init__(self, config: Config, known_models: Iterable[str], scrubber: Scrubber) -> None:
        self.config = config
        self.metrics = Metrics(known_models)
        self.scrubber = scrubber
        self.usage: UsageWriter | None = None
        self.request_logs: RequestLogDirectory | None = None
        self._log_send, self._log_receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](REQUEST_LOG_QUEUE)
        self.request_logs_dropped = 0
        self.engine: Engine | None = None  # set by the app once its engine is open: the sampled gauges read it

    # ------------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def running(self) -> AsyncIterator[Observability]:
        """Run the usage writer and the request-log writer for the duration of the block; leaving flushes both."""
        logging_config = self.config.logging
        self.request_logs = await trio.to_thread.run_sync(
            lambda: RequestLogDirectory(
                data_path(logging_config.request_log_dir),
                max_files=logging_config.request_log_max_files,
                max_bytes=logging_config.request_log_max_bytes,
            )
        )
        dsn = usage_dsn(self.config)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_request_logs)
            nursery.start_soon(self._sample)
            try:
                if dsn is None:
                    yield self
                else:
                    async with self._usage_writer(dsn) as writer:
                        self.usage = writer
                        yield self
                        self.usage = None
            finally:
                self._log_send.close()
                nursery.cancel_scope.cancel()

    @asynccontextmanager
    async def _usage_writer(self, dsn: str) -> AsyncIterator[UsageWriter | None]:
        usage = self.config.usage
        try:
            opened = open_writer(
                dsn, batch_size=usage.batch_size, flush_interval=usage.flush_interval,
                retention_days=usage.retention_days, queue_limit=usage.queue_limit,
                shutdown_grace=max(self.config.shutdown_grace, 1.0), observer=self.metrics.note_usage,
                opener=open_store,
            )  # fmt: skip
            writer = await opened.__aenter__()
        except Exception as exc:
            log.error("usage records are off: the store could not be opened (%s: %s)", type(exc).__name__,
                      self.scrubber(str(exc)))
            yield None
            return
        log.info("usage records: %s", writer.store.label)
        try:
            yield writer
        except BaseException as exc:
            if not await opened.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await opened.__aexit__(None, None, None)

    async def _sample(self) -> None:
        """Refresh the engine-fed gauges every :data:`SAMPLE_INTERVAL`, so each worker's values stay current in a
        multiprocess scrape even when another worker answers the scrape."""
        while True:
            await trio.sleep(SAMPLE_INTERVAL)
            self.refresh()

    def refresh(self) -> None:
        """Set the gauges read from the engine: per-credential state and stream buffers (also called per scrape)."""
        engine = self.engine
        if engine is None:
            return
        self.refresh_credential_gauges(engine.statistics())
        held, high_water, stalled = engine.buffer_statistics()
        self.metrics.buffer_bytes.set(held)
        self.metrics.buffer_high_water.set(high_water)
        self.metrics.stalled_writers.set(stalled)

    async def _write_request_logs(self) -> None:
        async with self._log_receive:
            async for request_id, entry in self._log_receive:
                directory = self.request_logs
                if directory is None:
                    continue
                try:
                    await trio.to_thread.run_sync(directory.write, request_id, entry)
                except OSError as exc:
                    log.warning("request log not written (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ per request
    def recorder(self) -> RequestRecorder:
        return RequestRecorder(
            self.config.logging.request_log_body_bytes, capture_responses=self.config.logging.request_log,
            debug=self.config.debug,
        )

    def begin(self) -> None:
        self.metrics.active_requests.inc()

    def end(self, entry: RequestLog, recorder: RequestRecorder | None, headers: Iterable[tuple[str, str]]) -> None:
        """Account for one finished client request (metrics, usage record, request log)."""
        metrics = self.metrics
        metrics.active_requests.dec()
        duration = time.perf_counter() - entry.start
        status = entry.status or 499
        model = metrics.model_label(entry.model)
        meta = entry.meta
        provider = meta.provider if meta is not None and meta.provider else "-"
        served = metrics.model_label(meta.route) if meta is not None and meta.route else "-"
        key = entry.key_name or "-"  # client keys are operator-named (bounded); never the key itself
        metrics.requests.labels(entry.format, entry.kind, model, provider, served, status_class(status), key).inc()
        metrics.duration.labels(entry.format, entry.kind).observe(duration)
        if entry.ttfb is not None:
            metrics.ttft.labels(entry.format, entry.kind).observe(entry.ttfb)
        usage = entry.usage
        if usage is not None and entry.kind == "generate":
            upstream_model = metrics.model_label(meta.model) if meta is not None and meta.model else served
            for kind, value in (
                ("input", usage.input_tokens), ("output", usage.output_tokens),
                ("reasoning", usage.reasoning_tokens), ("cache_read", usage.cache_read_tokens),
                ("cache_write", usage.cache_write_tokens),
            ):  # fmt: skip
                if value:
                    metrics.tokens.labels(kind, provider, upstream_model, key).inc(value)
        if entry.kind in ("generate", "count") and self.usage is not None:
            self.usage.submit(self._record(entry, status, duration))
        failed = status >= 400 or bool(entry.error)
        breakdown = self._breakdown(entry, recorder, duration) if self.config.debug and recorder is not None else None
        if breakdown is not None:
            log.debug("timing id=%s %s", entry.request_id, " ".join(
                f"{k}={v}" for k, v in breakdown.items() if not isinstance(v, list)))
        if recorder is not None and (failed or self.config.logging.request_log):
            self._queue_request_log(entry, recorder, status, headers, breakdown)

    @staticmethod
    def _breakdown(entry: RequestLog, recorder: RequestRecorder, duration: float) -> dict[str, Any]:
        """``debug: true``: where the request's time went (routing until the first upstream attempt, each attempt's
        connect / TLS / response-head times, the client's time to first byte, then the stream) and its stream buffer
        figures (the most bytes its pool held, how often the upstream reader waited for budget)."""

        def ms(seconds: float) -> float:
            return round(seconds * 1000, 1)

        first = recorder.exchanges[0].start - recorder.start if recorder.exchanges else None
        meta = entry.meta
        return {
            "routing_ms": None if first is None else ms(first),
            "ttfb_ms": None if entry.ttfb is None else ms(entry.ttfb),
            "stream_ms": None if entry.ttfb is None or not entry.stream else ms(duration - entry.ttfb),
            "total_ms": ms(duration),
            "attempts": [
                {"provider": x.provider, "status": x.status, **(x.phases or {}),
                 "headers_ms": None if x.head is None else ms(x.head - x.start)}
                for x in recorder.exchanges
            ],
            "buffer_peak_bytes": meta.buffer_peak if meta is not None else 0,
            "buffer_waits": meta.buffer_waits if meta is not None else 0,
        }  # fmt: skip

    def _record(self, entry: RequestLog, status: int, duration: float) -> UsageRecord:
        meta, usage = entry.meta, entry.usage
        tokens: dict[str, int | None] = dict.fromkeys(
            ("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens",
             "total_tokens")
        )  # null where the provider reported nothing
        if usage is not None:
            tokens = {
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "reasoning_tokens": usage.reasoning_tokens, "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens, "total_tokens": usage.total_tokens,
            }  # fmt: skip
        return UsageRecord(
            request_id=entry.request_id,
            client_format=entry.format,
            requested_model=entry.model,
            status=status,
            ts=entry.wall_start,
            client_key_id=entry.key_id,
            client_key_name=entry.key_name,
            provider=meta.provider or None if meta is not None else None,
            served_model=meta.model or None if meta is not None else None,
            credential=meta.credential or None if meta is not None else None,
            error_class=entry.error_class,
            tokens_estimated=entry.tokens_estimated,
            attempts=meta.attempts if meta is not None else 0,
            failovers=meta.failovers if meta is not None else 0,
            continued=meta.continued if meta is not None else False,
            regenerated=meta.regenerated if meta is not None else False,
            ttft_ms=None if entry.ttfb is None else round(entry.ttfb * 1000, 3),
            duration_ms=round(duration * 1000, 3),
            stream=entry.stream,
            cost=entry.cost,
            **tokens,
        )

    def _queue_request_log(
        self, entry: RequestLog, recorder: RequestRecorder, status: int, headers: Iterable[tuple[str, str]],
        breakdown: dict[str, Any] | None,
    ) -> None:
        record = build_entry(
            recorder, self.scrubber, request_id=entry.request_id, method=entry.method, path=entry.path,
            headers=headers, status=status, error_class=entry.error_class, error=entry.error or None,
            extra_timings={
                "ttfb_ms": None if entry.ttfb is None else round(entry.ttfb * 1000, 1),
                "total_ms": round((time.perf_counter() - entry.start) * 1000, 1),
            },
        )  # fmt: skip
        if breakdown is not None:
            record["debug"] = breakdown
        try:
            self._log_send.send_nowait((entry.request_id, record))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.request_logs_dropped += 1
            if self.request_logs_dropped in (1, 10, 100) or self.request_logs_dropped % 1000 == 0:
                log.warning("request logs dropped (writer behind): %d so far", self.request_logs_dropped)

    def refresh_credential_gauges(self, statistics: dict[str, Any]) -> None:
        """Set the per-credential gauges from the engine's statistics (called before a scrape)."""
        for provider, credentials in statistics.get("providers", {}).items():
            for cred in credentials:
                label = str(cred.get("name") or cred.get("label") or "")
                cooling = cred.get("cooling") or {}
                seconds = max((float(v) for v in cooling.values()), default=0.0) if isinstance(cooling, dict) else 0.0
                self.metrics.cooling.labels(provider, label).set(seconds)
                self.metrics.disabled.labels(provider, label).set(1.0 if cred.get("refused") else 0.0)
                breaker = str(cred.get("breaker") or "closed")
                self.metrics.breaker.labels(provider, label).set(
                    {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}.get(breaker, 0.0)
                )

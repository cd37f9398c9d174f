"""Prometheus metrics for the whole server: definitions, bounded label values, and the exposition.

With ``--workers N`` the runner sets ``PROMETHEUS_MULTIPROC_DIR`` before it spawns the workers, so prometheus-client
keeps every value in per-process files and one scrape of any worker reports the whole server (its multiprocess mode).
With one worker the values live in this process's own registry.

Invariants:
- Bounded labels only: never a client key, a request id, or a raw model string from a client. A requested model that
  the configuration does not name collapses to ``"other"`` (:meth:`Metrics.model_label`); credential labels are the
  masked labels the pools use, never the key.
- Recording never raises into the request path and never blocks (prometheus-client values are in-memory or mmap'd).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from muxtrio.errors import (
    CodecError,
    ErrorKind,
    MuxError,
    ResponseTooLarge,
    StreamTruncated,
    UpstreamError,
    UpstreamTimeout,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

ATTEMPT_OUTCOMES = ("ok", "429", "5xx", "4xx", "connect_timeout", "first_byte_timeout", "idle_timeout",
                    "total_timeout", "connect", "cut", "malformed", "refused")
TOKEN_KINDS = ("input", "output", "reasoning", "cache_read", "cache_write")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess() -> str:
    """Create a fresh directory for the workers' metric files and export it (call in the parent before spawning)."""
    path = tempfile.mkdtemp(prefix="muxtrio-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def cleanup_multiprocess(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop(MULTIPROC_ENV, None)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: they are history)."""
    if multiprocess_dir() is not None:
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def attempt_outcome(error: MuxError | None, *, cut: bool = False) -> str:
    """The outcome class of one upstream attempt (one of :data:`ATTEMPT_OUTCOMES`): ``ok``; the provider's status
    class (``429``, ``5xx``, ``refused`` for 401/403, ``4xx``); each timeout phase; ``connect`` (never reached);
    ``cut`` (the stream broke after output was sent, or ended early); ``malformed`` (an unreadable answer)."""
    if error is None:
        return "ok"
    if cut or isinstance(error, StreamTruncated):
        return "cut"
    if isinstance(error, UpstreamTimeout):
        return f"{error.phase}_timeout"
    if isinstance(error, UpstreamError) and error.provider_status:
        status = error.provider_status
        if status == 429:
            return "429"
        if status >= 500:
            return "5xx"
        return "refused" if status in (401, 403) else "4xx"
    if isinstance(error, CodecError | ResponseTooLarge):
        return "malformed"
    if isinstance(error, UpstreamError):
        return "connect" if error.kind is ErrorKind.UNAVAILABLE else "cut"
    return "malformed" if error.kind is ErrorKind.UPSTREAM else "4xx"


def status_class(status: int) -> str:
    if status == 499:
        return "client_closed"
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class Metrics:
    """Every series muxtrio exports; one instance per process."""

    def __init__(self, known_models: Iterable[str] = ()) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode values live in files and the scrape reads them through a collector; the metric objects
        # then belong to no registry.
        self._own = CollectorRegistry(auto_describe=True)
        reg = None if self.multiprocess else self._own
        self.known_models = frozenset(known_models)

        self.requests = Counter(
            "muxtrio_requests", "Client requests by client format, route, requested model, served provider/model, "
            "status class and client key name ('-' for the flat api-keys list or no key).",
            ["format", "route", "model", "provider", "served_model", "status", "key"], registry=reg)
        self.duration = Histogram(
            "muxtrio_request_duration_seconds", "Client request duration, headers in to last byte out.",
            ["format", "route"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.ttft = Histogram(
            "muxtrio_time_to_first_token_seconds", "Time from request to the first byte of the answer.",
            ["format", "route"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.tokens = Counter(
            "muxtrio_tokens", "Tokens by kind as reported by providers (input includes cache reads and writes), by "
            "provider, upstream model and client key name.", ["kind", "provider", "model", "key"], registry=reg)
        self.attempts = Counter(
            "muxtrio_upstream_attempts", "Upstream attempts by provider, credential label and outcome class.",
            ["provider", "credential", "outcome"], registry=reg)
        self.state_fallbacks = Counter(
            "muxtrio_state_fallbacks", "Shared-state (Redis) calls answered from local state instead, by reason.",
            ["reason"], registry=reg)
        self.recoveries = Counter(
            "muxtrio_recoveries", "Retries, failovers, mid-stream continuations and regenerations.",
            ["kind", "provider"], registry=reg)
        self.active_requests = Gauge(
            "muxtrio_active_requests", "Requests in progress.", registry=reg, multiprocess_mode="livesum")
        self.open_streams = Gauge(
            "muxtrio_open_streams", "Streaming responses in progress.", registry=reg, multiprocess_mode="livesum")
        self.stalled_writers = Gauge(
            "muxtrio_stalled_writers", "Upstream readers waiting on a full per-stream buffer (backpressure).",
            registry=reg, multiprocess_mode="livesum")
        self.buffer_bytes = Gauge(
            "muxtrio_stream_buffer_bytes", "Bytes held in per-stream buffer pools.", registry=reg,
            multiprocess_mode="livesum")
        self.buffer_high_water = Gauge(
            "muxtrio_stream_buffer_high_water_bytes", "Largest number of bytes one stream's pool held.",
            registry=reg, multiprocess_mode="livemax")
        self.cooling = Gauge(
            "muxtrio_credential_cooling_seconds", "Seconds until a cooling credential is used again (0: ready).",
            ["provider", "credential"], registry=reg, multiprocess_mode="livemax")
        self.disabled = Gauge(
            "muxtrio_credential_disabled", "1 while a credential is out after the provider refused it.",
            ["provider", "credential"], registry=reg, multiprocess_mode="livemax")
        self.breaker = Gauge(
            "muxtrio_credential_breaker_open", "Breaker state per credential: 0 closed, 1 half-open, 2 open.",
            ["provider", "credential"], registry=reg, multiprocess_mode="livemax")
        self.reloads = Counter(
            "muxtrio_config_reloads", "Configuration reloads by result.", ["result"], registry=reg)
        self.usage_records = Counter(
            "muxtrio_usage_records", "Usage records by fate: queued, written, dropped.", ["state"], registry=reg)

    def model_label(self, model: str) -> str:
        """A bounded label for a client-supplied model name: configured names pass, everything else is ``other``."""
        return model if model in self.known_models else OTHER

    def note_reload(self, result: str) -> None:
        """Count one configuration reload by its result (``ok``, ``invalid``, ``failed``...: a short fixed word)."""
        self.reloads.labels(result).inc()

    def note_usage(self, state: str, count: int) -> None:
        self.usage_records.labels(state).inc(count)

    def render(self) -> bytes:
        """The whole server's metrics in the Prometheus text exposition format."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._own)

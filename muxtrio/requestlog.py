"""Per-request log files: what the client sent, what went upstream on each attempt and what came back, with timings.

A request is recorded while it is served (:class:`RequestRecorder`, reached through the :data:`RECORDER` context
variable, so the upstream client adds each attempt without the engine knowing) and written when it ends — always for a
failed request, for every request when ``request-log: true``. Files are JSON, one per request, named
``{YYYYmmddTHHMMSS}-{request_id}.json`` in ``logging.request-log-dir``.

Invariants:
- Secrets never reach a file: credential-carrying headers are masked (their name is kept) and every header value,
  body and message passes through the configured :class:`~muxtrio.redact.Scrubber`.
- Bounded: each captured body stops at ``request-log-body-bytes``; the directory keeps at most
  ``request-log-max-files`` files and ``request-log-max-bytes`` bytes, the oldest removed first.
- Recording costs nothing when no recorder is set: one context-variable read per upstream attempt.
- Writing happens off the event loop (a worker thread), one write at a time per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from muxtrio.redact import Scrubber

log = logging.getLogger("muxtrio.requestlog")

MASKED = "[masked]"
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password|session|management-key", re.I)
FILE_NAME = re.compile(r"^\d{8}T\d{6}-[A-Za-z0-9._~!$&'*+^`|-]{1,128}\.json$")


def mask_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Header names kept, values of credential-carrying headers replaced."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): (MASKED if _SECRET_HEADER.search(name) else value) for name, value in items}


def _scrubbed(headers: Mapping[str, str], scrub: Scrubber) -> dict[str, str]:
    """Header values with every known secret replaced: a header of any name may carry one (a provider that echoes
    the key it received in a response header)."""
    return {name: scrub(value) for name, value in headers.items()}


@dataclass(slots=True)
class Capture:
    """A body captured up to ``limit`` bytes; ``size`` counts everything seen. Chunks are kept by reference (no
    copy on the request path) until ``limit`` bytes are held, so memory stays within ``limit`` plus one chunk."""

    limit: int
    parts: list[bytes] = field(default_factory=list)
    kept: int = 0
    size: int = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.kept < self.limit:
            self.parts.append(chunk)
            self.kept += len(chunk)

    def text(self, scrub: Scrubber) -> str:
        body = b"".join(self.parts)[: self.limit]
        shown = body.decode("utf-8", "replace")
        cut = f"\n[... {self.size - len(body)} more bytes not kept]" if self.size > len(body) else ""
        return scrub(shown) + cut


_PHASES = (("connect", "connect_tcp.complete"), ("tls", "start_tls.complete"),
           ("request_sent", "send_request_body.complete"), ("headers", "receive_response_headers.complete"))


@dataclass(slots=True)
class Exchange:
    """One upstream attempt: the request sent and what came back."""

    provider: str
    method: str
    url: str
    request_headers: Mapping[str, str]  # as sent, masked when written (no masked copy held per open stream)
    request_body: Capture
    start: float = field(default_factory=time.perf_counter)
    status: int | None = None
    response_headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)  # as received, masked when written
    response_body: Capture | None = None
    error: str | None = None
    end: float | None = None
    head: float | None = None  # when the response head arrived
    phases: dict[str, float] | None = None  # connection phases (debug), ms since the attempt began

    async def trace(self, name: str, info: Mapping[str, Any]) -> None:
        """The HTTP client's trace hook (set only with ``debug: true``): notes when the TCP connect, the TLS
        handshake and the response headers completed. A reused connection has no connect phase."""
        for phase, suffix in _PHASES:
            if name.endswith(suffix):
                if self.phases is None:
                    self.phases = {}
                self.phases.setdefault(phase, round((time.perf_counter() - self.start) * 1000, 1))

    def respond(self, status: int, headers: Mapping[str, str], capture: bool) -> Capture | None:
        """Note the response head; returns the capture for its body when bodies are captured."""
        self.head = time.perf_counter()
        self.status = status
        self.response_headers = headers
        if capture:
            self.response_body = Capture(self.request_body.limit)
        return self.response_body

    def finish(self, error: str | None = None) -> None:
        self.end = time.perf_counter()
        if error is not None:
            self.error = error

    def as_dict(self, scrub: Scrubber) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "method": self.method,
            "url": scrub(self.url),
            "request_headers": _scrubbed(mask_headers(self.request_headers), scrub),
            "request_body": self.request_body.text(scrub),
            "status": self.status,
            "response_headers": _scrubbed(mask_headers(self.response_headers), scrub),
            "response_body": None if self.response_body is None else self.response_body.text(scrub),
            "error": None if self.error is None else scrub(self.error),
            "duration_ms": None if self.end is None else round((self.end - self.start) * 1000, 1),
            "headers_ms": None if self.head is None else round((self.head - self.start) * 1000, 1),
            **({"phases_ms": dict(self.phases)} if self.phases else {}),
        }


class RequestRecorder:
    """What one client request did, gathered while it is served. Upstream response bodies are captured only with
    ``capture_responses`` (``request-log: true``): a failed request's log otherwise carries each attempt's status,
    headers and error text, so an open stream never holds a copy of what it relayed."""

    __slots__ = ("body_limit", "capture_responses", "client_body", "debug", "exchanges", "start")

    def __init__(self, body_limit: int, *, capture_responses: bool, debug: bool = False) -> None:
        self.body_limit = body_limit
        self.capture_responses = capture_responses
        self.debug = debug  # trace connection phases of each attempt (``debug: true``)
        self.client_body = Capture(body_limit)
        self.exchanges: list[Exchange] = []
        self.start = time.perf_counter()

    def upstream(self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Exchange:
        capture = Capture(self.body_limit)
        capture.add(body)  # a reference: the engine holds the request body for the attempt anyway
        exchange = Exchange(provider, method, url, headers, capture)
        self.exchanges.append(exchange)
        return exchange


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

RECORDER: ContextVar[RequestRecorder | None] = ContextVar("muxtrio_request_recorder", default=None)


class RequestLogDirectory:
    """The bounded directory of request logs. Blocking methods: call them from a worker thread."""

    def __init__(self, path: str, *, max_files: int, max_bytes: int) -> None:
        self.path = os.path.abspath(path)
        self.max_files = max_files
        self.max_bytes = max_bytes
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        files = sorted(
            (entry.name, entry.stat().st_size)
            for entry in os.scandir(self.path)
            if entry.is_file() and FILE_NAME.match(entry.name)
        )
        self._files: deque[tuple[str, int]] = deque(files)
        self._bytes = sum(size for _, size in files)

    def write(self, request_id: str, entry: Mapping[str, Any]) -> str:
        safe_id = request_id if re.fullmatch(r"[A-Za-z0-9._~!$&'*+^`|-]{1,128}", request_id) else "invalid-id"
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{safe_id}.json"
        data = orjson.dumps(entry, option=orjson.OPT_INDENT_2)
        target = os.path.join(self.path, name)
        temp = target + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
        self._files.append((name, len(data)))
        self._bytes += len(data)
        self._prune()
        return name

    def _prune(self) -> None:
        while self._files and (len(self._files) > self.max_files or self._bytes > self.max_bytes):
            name, size = self._files.popleft()
            self._bytes -= size
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.path, name))

    def listing(self) -> list[dict[str, Any]]:
        return [{"name": name, "size": size} for name, size in reversed(self._files)]


def build_entry(
    recorder: RequestRecorder,
    scrub: Scrubber,
    *,
    request_id: str,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    status: int,
    error_class: str | None,
    error: str | None,
    extra_timings: Mapping[str, float | None] = {},
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": method,
        "path": scrub(path),
        "status": status,
        "error_class": error_class,
        "error": None if error is None else scrub(error),
        "headers": _scrubbed(mask_headers(headers), scrub),
        "client_body": recorder.client_body.text(scrub),
        "upstream": [exchange.as_dict(scrub) for exchange in recorder.exchanges],
        "timings": dict(extra_timings),
    }

"""Upstream HTTP: the httpx2 clients of one provider (one per proxy URL), created inside trio.

Invariants:
- Pool limits come from config (httpx's default of 100 connections makes stream 101 wait, then fail); the
  keep-alive pool is kept small on purpose (a large idle pool slows every request start after a burst).
- No library read timeout: the engine owns first-byte, idle and total deadlines. Only connect is left to httpx2.
- ``trust_env=False``: proxies come from config only (``proxy-url`` globally, per provider or per key), so an
  ambient ``HTTP_PROXY`` never silently reroutes provider traffic.
- Every transport exception is mapped here, once, to an :class:`UpstreamError` whose message names the provider
  but never a key; so is a body whose ``content-encoding`` does not decode. Response bodies are closed on every exit
  path (client disconnect included).
- Bodies are yielded *decoded* (gzip/deflate undone), produced as the caller asks: whoever counts the yielded bytes
  against a limit bounds decompression too, and stops it early (a gzip bomb inflates no further than the limit plus
  one yielded piece). ``read`` does that counting.
- One yielded piece per socket read, not per HTTP chunk: providers write one event per transfer-encoding chunk, so
  one read often carries dozens of chunks, which h11 hands out one by one. ``chunks`` keeps pulling while h11's
  receive buffer already holds the next whole chunk (no socket read, so no wait) and yields the pieces joined, at
  most :data:`COALESCE_MAX` bytes (plus one piece) at a time, so the caller splits, feeds and forwards once per read.
  It never waits for the network while holding bytes: a chunk still missing its header or its first data byte ends
  the piece. Where the buffer cannot be seen (HTTP/2, a test transport) or the body is content-encoded (a compressed
  chunk may decode to nothing) each chunk is yielded on its own, as before.
- The request id of the client request being served (:data:`REQUEST_ID`) goes upstream as ``x-request-id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import h11
import httpx2
import trio

from muxtrio.codecs.base import MERGED_HEADERS, WireRequest, merge_header_lists
from muxtrio.errors import ErrorKind, ResponseTooLarge, UpstreamError, UpstreamTimeout
from muxtrio.requestlog import RECORDER, Capture, Exchange

SHRINK_BELOW = 16 * 1024
COALESCE_MAX = 256 * 1024
"""The most bytes ``chunks`` joins into one piece before yielding (a read is at most 64 KB raw, but gzip inflates)."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    base_url: str
    http2: bool = False
    max_connections: int = 1000
    max_keepalive: int = 32
    connect_timeout: float = 10.0
    proxy_url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def merge_headers(configured: tuple[tuple[str, str], ...], request: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The provider's configured headers, then the request's (case-insensitive names): a request header replaces a
    configured one, except list headers (``anthropic-beta``, ``openai-beta``), whose values are joined so that a
    provider's own betas and the client's betas both reach it."""
    merged: dict[str, tuple[str, str]] = {}
    for name, value in (*configured, *request):
        key = name.lower()
        if key in MERGED_HEADERS and key in merged:
            value = merge_header_lists(merged[key][1], value)
        merged[key] = (name, value)
    return dict(merged.values())


class UpstreamResponse:
    """A provider response whose body is read incrementally (``chunks``) or whole (``read``)."""

    __slots__ = ("_buffered", "_capture", "_exchange", "_response", "headers", "provider", "status")

    def __init__(
        self,
        provider: str,
        response: httpx2.Response,
        capture: Capture | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        self.provider = provider
        self.status = response.status_code
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}
        self._response = response
        self._capture = capture  # the request log's copy of the body (request-log: true), else None
        self._exchange = exchange  # the request log's record of this exchange, finished on close
        # h11's unparsed bytes of this connection, where visible. Not for an encoded body: a compressed chunk can
        # decode to nothing, and httpx2 would then read the socket for the next one while we hold the joined bytes.
        self._buffered = None if "content-encoding" in self.headers else _receive_buffer(response)

    async def aclose(self) -> None:
        """Close the body (the connection goes back to the pool, or is dropped mid-body) and finish the request
        log's record. Idempotent."""
        try:
            await self._response.aclose()
        finally:
            if self._exchange is not None:
                self._exchange.finish()
                self._exchange = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The decoded body, one piece per socket read (see the module docstring)."""
        pieces = self._response.aiter_bytes()
        buffered = self._buffered
        try:
            async for piece in pieces:
                if not piece:
                    continue
                if buffered is not None and _whole_chunk_buffered(buffered):
                    parts = [piece]
                    size = len(piece)
                    while size < COALESCE_MAX and _whole_chunk_buffered(buffered):
                        more = await anext(pieces, b"")  # served from h11's buffer: no socket read, no wait
                        if not more:
                            break
                        parts.append(more)
                        size += len(more)
                    piece = b"".join(parts)
                if self._capture is not None:
                    self._capture.add(piece)
                yield piece
        except httpx2.TransportError as exc:
            raise _transport_error(self.provider, exc) from None
        except httpx2.DecodingError:
            encoding = self.headers.get("content-encoding", "")[:40]
            raise UpstreamError(
                ErrorKind.UPSTREAM, f"provider {self.provider} sent a body that does not decode as {encoding!r}"
            ) from None

    async def read(self, limit: int, *, watchdog: trio.CancelScope | None = None, idle: float = 0.0) -> bytes:
        """The whole decoded body, refusing more than ``limit`` bytes (:class:`ResponseTooLarge`, raised as soon as
        the decoded bytes pass it). With ``watchdog``, its deadline is moved to ``idle`` seconds after each chunk."""
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and "content-encoding" not in self.headers and int(declared) > limit:
            raise ResponseTooLarge(self.provider, limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(self.provider, limit)
            parts.append(chunk)
            if watchdog is not None:
                watchdog.deadline = trio.current_time() + idle
        if len(parts) == 1:
            return parts[0]
        body = b"".join(parts)
        parts.clear()
        return body


def _receive_buffer(response: httpx2.Response) -> bytearray | None:
    """The bytes h11 has received on ``response``'s HTTP/1.1 connection and not parsed yet, or None where the chain
    is not httpx2 → httpcore2 → h11 (HTTP/2, a test or built-in transport, a future httpcore2 that moved them).

    Neither library offers a public view of this buffer (h11's ``trailing_data`` copies it on every call), so it is
    found through their attributes and only read, never written; anything unexpected turns coalescing off, which
    costs speed, not correctness. ``tests/upstream/test_read_path.py`` fails if the chain stops being found."""
    stream = getattr(response.stream, "_stream", None)  # httpx2 BoundAsyncStream -> AsyncResponseStream
    stream = getattr(stream, "_httpcore_stream", None)  # -> httpcore2 PoolByteStream
    stream = getattr(stream, "_stream", None)  # -> HTTP11ConnectionByteStream
    state = getattr(getattr(stream, "_connection", None), "_h11_state", None)
    if not isinstance(state, h11.Connection):
        return None
    data = getattr(getattr(state, "_receive_buffer", None), "_data", None)  # created once per connection
    return data if isinstance(data, bytearray) else None


def _whole_chunk_buffered(buffered: bytearray) -> bool:
    """Whether h11 can hand out the next body piece without reading the socket, right after it handed out one.

    After a chunk's data, what is left starts with that chunk's ``\\r\\n``; the next piece needs a whole chunk-size
    line after it and at least one byte behind that line (a data byte, or the ``\\r\\n`` ending the last chunk's
    trailer). A chunk cut by the read leaves nothing buffered (h11 hands out what it has), so this is False."""
    size = len(buffered)
    return size > 4 and 2 <= buffered.find(b"\n", 2) < size - 1


def _transport_error(provider: str, exc: httpx2.TransportError, connect_timeout: float = 0.0) -> UpstreamError:
    if isinstance(exc, httpx2.ConnectTimeout):
        return UpstreamTimeout("connect", connect_timeout)
    if isinstance(exc, httpx2.ConnectError | httpx2.ProxyError):
        return UpstreamError(ErrorKind.UNAVAILABLE, f"could not connect to provider {provider}")
    if isinstance(exc, httpx2.TimeoutException):
        return UpstreamError(ErrorKind.TIMEOUT, f"provider {provider} timed out ({type(exc).__name__})")
    return UpstreamError(ErrorKind.UPSTREAM, f"connection to provider {provider} failed ({type(exc).__name__})")


REQUEST_ID: ContextVar[str | None] = ContextVar("muxtrio_request_id", default=None)
"""The gateway's id of the request being served, sent upstream as ``x-request-id`` (set by the server around each
request; trio tasks started while serving it inherit it)."""


class UpstreamClient:
    """The HTTP side of one provider. ``transport`` replaces the network (tests, the built-in echo provider)."""

    def __init__(
        self, provider: str, settings: ClientSettings, *, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.provider = provider
        self.settings = settings
        self._transport = transport
        self._clients: dict[str | None, httpx2.AsyncClient] = {}

    def _client(self, proxy_url: str | None) -> httpx2.AsyncClient:
        proxy = proxy_url or self.settings.proxy_url
        client = self._clients.get(proxy)
        if client is None:
            s = self.settings
            client = httpx2.AsyncClient(
                http1=True,
                http2=s.http2,
                proxy=proxy if self._transport is None else None,
                transport=self._transport,
                timeout=httpx2.Timeout(connect=s.connect_timeout, read=None, write=60.0, pool=None),
                limits=httpx2.Limits(
                    max_connections=s.max_connections,
                    max_keepalive_connections=s.max_keepalive,
                    keepalive_expiry=60.0,
                ),
                trust_env=False,
                follow_redirects=False,
            )
            self._clients[proxy] = client
        return client

    async def start(self, wire: WireRequest, *, proxy_url: str | None = None) -> UpstreamResponse:
        """Send ``wire`` and return the response with its body unread. The caller owns it: ``await
        response.aclose()`` on every path (the streaming path does so in a plain ``try``/``finally``, which costs an
        open stream less than an async context manager's generator)."""
        client = self._client(proxy_url)
        headers = merge_headers(self.settings.headers, wire.headers)
        request_id = REQUEST_ID.get()
        if request_id is not None:
            headers["x-request-id"] = request_id
        body = wire.body
        if len(body) < SHRINK_BELOW:
            # orjson hands back small documents in a larger buffer (a 74-byte body in a 4 KB allocation, measured);
            # the request is held for the whole stream, so keep an exact-size copy.
            body = bytes(memoryview(body))
        url = wire.path  # an account with its own API host sends an absolute URL
        if not url.startswith(("https://", "http://")):
            url = self.settings.base_url.rstrip("/") + url
        request = client.build_request(wire.method, url, headers=headers, content=body)
        recorder = RECORDER.get()
        exchange = None
        if recorder is not None:
            exchange = recorder.upstream(self.provider, wire.method, str(request.url), headers, body)
            if recorder.debug:
                request.extensions["trace"] = exchange.trace
        try:
            response = await client.send(request, stream=True)
        except httpx2.TransportError as exc:
            error = _transport_error(self.provider, exc, self.settings.connect_timeout)
            if exchange is not None:
                exchange.finish(error=error.message)
            raise error from None
        capture = None
        if recorder is not None and exchange is not None:
            capture = exchange.respond(response.status_code, response.headers, recorder.capture_responses)
        return UpstreamResponse(self.provider, response, capture, exchange)

    @asynccontextmanager
    async def open(self, wire: WireRequest, *, proxy_url: str | None = None) -> AsyncIterator[UpstreamResponse]:
        """Send ``wire`` and yield the response with its body unread; the body is closed on exit."""
        response = await self.start(wire, proxy_url=proxy_url)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

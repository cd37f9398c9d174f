"""Response compression: ``Accept-Encoding`` negotiation (RFC 9110 §12.5.3) and an ASGI ``send`` wrapper that
compresses whole responses above a size threshold and, when configured, streams (SSE, NDJSON) write by write.

Codings: ``zstd`` (``zstandard``), ``br`` (``brotli``) and ``gzip`` (stdlib ``zlib``); the server's preference among
codings the client weighs equally is ``compression.algorithms`` (default zstd > gzip > br: ``perf/compression.py``).

Invariants:
- A response is compressed only when the client accepts a coding with q > 0 (``identity``, ``*`` and ``;q=0``
  refusals as RFC 9110 says); no header, an empty one, or one that accepts none of ours: identity. A header that
  refuses identity as well still gets identity (never a 406: a request never fails over its Accept-Encoding). A
  malformed or huge header is read as far as it makes sense (at most :data:`MAX_ELEMENTS` elements) and never raises.
- Never compressed: HEAD answers (the caller does not wrap them), 1xx/204/304, a body that already has a
  ``Content-Encoding``, a content type outside :func:`compressible`, a whole body under ``min-size`` bytes, a stream
  unless ``streams`` is on. A whole body is replaced by its compression only when that is smaller.
- A whole response (one with ``Content-Length``) is sent with the ``Content-Length`` of the compressed body; its
  start is held until the body is complete (one write, as :func:`muxtrio.server.http.send_whole` does). Every
  response whose coding depended on ``Accept-Encoding`` carries ``Vary: Accept-Encoding``.
- A compressed stream: every body message is compressed and *flushed* (zlib ``Z_SYNC_FLUSH``, zstd block flush,
  brotli flush) before it is sent, so each write of the stream writer (a batch of events, a keepalive) reaches the
  client decodable at once; the message that ends the response finishes the compressor (gzip trailer, zstd frame
  end). A stream the gateway did not end (cut connection) therefore also lacks the coding's end, so it never looks
  finished; an error frame, being the last message, is finished like any end. Each message still awaits the
  server's ``send`` (backpressure unchanged).
- A request without ``Accept-Encoding`` is not wrapped at all (identity, no ``Vary``: its answer is the one every
  client accepts).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable
from enum import Enum
from typing import Final, Protocol

import brotli
import zstandard

from muxtrio.config import CompressionConfig
from muxtrio.server.http import SEND_SLICE, Headers, Message, Scope, Send

MAX_ELEMENTS: Final = 32
"""At most this many comma-separated elements of ``Accept-Encoding`` are read (real clients send 2 to 5)."""
MAX_HEADER_CHARS: Final = 4096
"""Only the first this many characters of the (joined) ``Accept-Encoding`` are read."""

STREAM_TYPES: Final = frozenset({"text/event-stream", "application/x-ndjson", "application/json"})
"""Content types of streams (bodies without ``Content-Length``) that may be compressed when ``streams`` is on; a
Gemini ``streamGenerateContent`` without ``alt=sse`` is an ``application/json`` array stream."""
_TEXT_TYPES: Final = frozenset({"application/json", "application/javascript", "application/x-ndjson"})


class Coding(Enum):
    """The content codings muxtrio produces (their RFC 9110 / IANA names)."""

    ZSTD = "zstd"
    BR = "br"
    GZIP = "gzip"


_ALIASES: Final = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3: a recipient SHOULD treat x-gzip as gzip


_QVALUE: Final = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
"""An RFC 9110 weight: ``0`` to ``1`` with at most three decimals."""


def _qvalue(text: str) -> float | None:
    return float(text) if _QVALUE.fullmatch(text) else None


def parse_accept_encoding(value: str) -> dict[str, float]:
    """The weight of each coding named in ``value`` (lower-case names; a name listed twice keeps its first weight).
    Elements that do not parse (no token, a bad ``q``) are skipped."""
    weights: dict[str, float] = {}
    for count, element in enumerate(value[:MAX_HEADER_CHARS].split(",")):
        if count >= MAX_ELEMENTS:
            break
        name, _, params = element.partition(";")
        coding = name.strip().lower()
        if not coding or not coding.isascii() or any(char in coding for char in ' \t"()/<>=?@[]{}\\'):
            continue
        weight: float | None = 1.0
        for param in params.split(";") if params else ():
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                weight = _qvalue(raw.strip())
        if weight is None:
            continue
        weights.setdefault(_ALIASES.get(coding, coding), weight)
    return weights


def negotiate(accept: str | None, offered: Iterable[Coding]) -> Coding | None:
    """The coding to answer a request carrying ``accept`` (``None``: no header) with, from ``offered`` in the
    server's order of preference; ``None`` means identity. The client's highest weight wins, ties by ``offered``."""
    if not accept:
        return None  # no header (no preference: identity serves every client) or an empty one (identity only)
    weights = parse_accept_encoding(accept)
    wildcard = weights.get("*", 0.0)
    best: Coding | None = None
    best_weight = 0.0
    for coding in offered:
        weight = weights.get(coding.value, wildcard)
        if weight > best_weight:
            best, best_weight = coding, weight
    if best is None:
        return None
    # Identity is always acceptable unless refused, but only a client that weighs it (itself or through ``*``) above
    # every coding of ours prefers it; an unlisted identity carries no preference.
    identity = weights.get("identity", wildcard if "*" in weights else 0.0)
    return None if identity > best_weight else best


class StreamCompressor(Protocol):
    def compressed(self, data: bytes) -> bytes:
        """``data`` compressed, maybe held back in the compressor (no flush)."""

    def flushed(self, data: bytes) -> bytes:
        """``data`` compressed and flushed: everything so far is decodable from the output."""

    def finished(self, data: bytes) -> bytes:
        """``data`` compressed, and the coding's end."""


class _Gzip:
    __slots__ = ("_zlib",)

    def __init__(self, level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: the gzip container

    def compressed(self, data: bytes) -> bytes:
        return self._zlib.compress(data)

    def flushed(self, data: bytes) -> bytes:
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finished(self, data: bytes) -> bytes:
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_FINISH)


class _Zstd:
    __slots__ = ("_zstd",)

    def __init__(self, level: int) -> None:
        self._zstd = zstandard.ZstdCompressor(level=level).compressobj()

    def compressed(self, data: bytes) -> bytes:
        return self._zstd.compress(data)

    def flushed(self, data: bytes) -> bytes:
        return self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finished(self, data: bytes) -> bytes:
        return self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _Brotli:
    __slots__ = ("_brotli",)

    def __init__(self, quality: int) -> None:
        self._brotli = brotli.Compressor(quality=quality)

    def compressed(self, data: bytes) -> bytes:
        return bytes(self._brotli.process(data))

    def flushed(self, data: bytes) -> bytes:
        return bytes(self._brotli.process(data) + self._brotli.flush())

    def finished(self, data: bytes) -> bytes:
        return bytes(self._brotli.process(data) + self._brotli.finish())


def stream_compressor(coding: Coding, settings: CompressionConfig) -> StreamCompressor:
    if coding is Coding.GZIP:
        return _Gzip(settings.gzip_level)
    if coding is Coding.ZSTD:
        return _Zstd(settings.zstd_level)
    return _Brotli(settings.br_level)


def compress_whole(coding: Coding, data: bytes, settings: CompressionConfig) -> bytes:
    """``data`` in one call (zstd then records the content size in its frame header)."""
    if coding is Coding.GZIP:
        return zlib.compress(data, settings.gzip_level, wbits=31)
    if coding is Coding.ZSTD:
        return _zstd_whole(settings.zstd_level).compress(data)
    return bytes(brotli.compress(data, quality=settings.br_level))


@functools.cache
def _zstd_whole(level: int) -> zstandard.ZstdCompressor:
    """One compressor per level for whole bodies, kept: a new one costs ~25 µs (its context) per answer. Safe because
    ``compress`` runs to completion without yielding and never in a thread; a stream gets its own (its context lives
    across awaits)."""
    return zstandard.ZstdCompressor(level=level)


def compressible(content_type: str) -> bool:
    """Text worth compressing: JSON (and ``+json``), NDJSON, JavaScript, any ``text/*``."""
    media = content_type.partition(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json")


def accept_encoding(scope: Scope) -> str | None:
    """The request's ``Accept-Encoding``, repeated headers joined with commas; ``None`` when absent."""
    values = [bytes(value).decode("latin-1") for key, value in scope["headers"] if key == b"accept-encoding"]
    return ",".join(values) if values else None


_VARY: Final = (b"vary", b"Accept-Encoding")


def _with_vary(headers: Headers) -> Headers:
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"accept-encoding" not in value.lower() and value.strip() != b"*":
                headers[index] = (name, value + b", Accept-Encoding")
            return headers
    headers.append(_VARY)
    return headers


class _Whole:
    """A whole response being compressed: its held start and its body so far."""

    __slots__ = ("coding", "compressor", "parts", "start")

    def __init__(self, start: Message, coding: Coding) -> None:
        self.start = start
        self.coding = coding
        self.parts: list[bytes] = []
        self.compressor: StreamCompressor | None = None


@functools.cache
def _offered(algorithms: tuple[str, ...]) -> tuple[Coding, ...]:
    return tuple(Coding(name) for name in algorithms)


def compressing_send(send: Send, scope: Scope, settings: CompressionConfig) -> Send:
    """``send`` compressing what the response allows (see the module invariants). Wrap only non-HEAD requests."""
    if not settings.responses and not settings.streams:
        return send
    accept = accept_encoding(scope)
    if accept is None:
        return send  # no preference stated: identity serves it, and the answer does not depend on the header
    offered = _offered(settings.algorithms)
    whole: _Whole | None = None
    stream: StreamCompressor | None = None

    async def send_compressed(message: Message) -> None:
        nonlocal whole, stream
        kind = message["type"]
        if kind == "http.response.start":
            whole, stream, message = _begin(message, accept, offered, settings)
            if whole is None:
                await send(message)
            return
        if kind != "http.response.body":
            await send(message)
            return
        more = message.get("more_body", False)
        if stream is not None:
            body = message.get("body", b"")
            if more and not body:
                await send(message)
                return
            data = stream.flushed(body) if more else stream.finished(body)
            await send({"type": "http.response.body", "body": data, "more_body": more})
            return
        if whole is None:
            await send(message)
            return
        await _whole_body(send, whole, message.get("body", b""), more, settings)
        if not more:
            whole = None

    return send_compressed


def _begin(
    start: Message, accept: str | None, offered: tuple[Coding, ...], settings: CompressionConfig
) -> tuple[_Whole | None, StreamCompressor | None, Message]:
    """What to do with a response, from its start: hold it (a whole body to compress), compress it as a stream, or
    pass it on (the returned start, with ``Vary`` where the coding depended on the request)."""
    status = int(start["status"])
    headers: Headers = list(start.get("headers", ()))
    length: int | None = None
    content_type = ""
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-encoding":
            return None, None, start
        if lower == b"content-length":
            length = int(value) if value.isdigit() else None
        elif lower == b"content-type":
            content_type = value.decode("latin-1")
    if status < 200 or status in (204, 304) or not compressible(content_type):
        return None, None, start
    if length is not None:
        if not settings.responses or length < settings.min_size:
            return None, None, start
        coding = negotiate(accept, offered)
        if coding is None:
            return None, None, {**start, "headers": _with_vary(headers)}
        return _Whole(start, coding), None, start
    media = content_type.partition(";")[0].strip().lower()
    if not settings.streams or media not in STREAM_TYPES:
        return None, None, start
    coding = negotiate(accept, offered)
    headers = _with_vary(headers)
    if coding is not None:
        headers.append((b"content-encoding", coding.value.encode()))
        return None, stream_compressor(coding, settings), {**start, "headers": headers}
    return None, None, {**start, "headers": headers}


async def _whole_body(send: Send, whole: _Whole, body: bytes, more: bool, settings: CompressionConfig) -> None:
    """Take one body message of a held whole response; at the last one, send the start and the body."""
    if more or whole.parts:  # a body sent in slices: compressed as it comes, never joined uncompressed
        if whole.compressor is None:
            whole.compressor = stream_compressor(whole.coding, settings)
        compressor = whole.compressor
        whole.parts.append(compressor.compressed(body) if more else compressor.finished(body))
        if more:
            return
        data = b"".join(whole.parts)
        original = None
    else:
        data = compress_whole(whole.coding, body, settings)
        original = body
    if original is not None and len(data) >= len(original):
        await _send_start(send, whole.start, None, len(original))
        await send({"type": "http.response.body", "body": original, "more_body": False})
        return
    await _send_start(send, whole.start, whole.coding, len(data))
    size = len(data)
    view = memoryview(data)
    for offset in range(0, size - SEND_SLICE, SEND_SLICE):
        await send({"type": "http.response.body", "body": bytes(view[offset : offset + SEND_SLICE]), "more_body": True})
    last = (size - 1) // SEND_SLICE * SEND_SLICE if size > SEND_SLICE else 0
    await send({"type": "http.response.body", "body": bytes(view[last:]) if last else data, "more_body": False})


async def _send_start(send: Send, start: Message, coding: Coding | None, length: int) -> None:
    headers: Headers = [(name, value) for name, value in start.get("headers", ()) if name.lower() != b"content-length"]
    headers.append((b"content-length", str(length).encode()))
    if coding is not None:
        headers.append((b"content-encoding", coding.value.encode()))
    await send({**start, "headers": _with_vary(headers)})

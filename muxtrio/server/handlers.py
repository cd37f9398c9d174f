"""HTTP handlers for generation and token counting, the same for every client format.

Flow: read the bounded body -> the client codec parses it into an IR request -> the engine serves it -> the client
codec encodes the answer. Streaming writes each ready batch of events as soon as it is decoded (several ready
events go out in one send), sends SSE keepalive comments while the upstream is silent, and watches for the client
going away (which cancels the engine's scope and so closes the upstream response): under muxtrio's listener through
the request's ``DisconnectSignal`` (no task per request), under another ASGI server with a watcher task.

Invariants:
- Response headers go out with the first batch, so an error before any output gets a real HTTP status in the
  client's error shape (429 with ``Retry-After``, 400, 404, 502...). Only if the keepalive interval passes first are
  headers sent early; an error after that is written with the encoder's ``error()`` framing.
- A stream ends with the encoder's ``finish()`` only when the engine ended normally (which implies a ``Finish``
  event); any error ends it with ``error()``. A truncated answer never looks complete.
- One log line per request; never a key, never a body; every client- or provider-supplied field is escaped
  (:func:`muxtrio.logsafe.escape_controls`), so a newline in a path or model name cannot forge a line. The status
  logged is the status sent, set before the answer is written.
- The last message of an answer is sent shielded from the disconnect watcher: the client going away at that moment
  (which Hypercorn reports while it recycles or closes the connection) must not cancel Hypercorn's own
  end-of-response handling, or the connection would never be closed (``Connection: close``, HTTP/1.0) nor reach
  its idle keep-alive timeout.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace

import trio
from prometheus_client import Gauge

from muxtrio.codecs.base import PROTOCOL_HEADERS, Codec, Format, RequestHints, StreamEncoder, StreamInfo
from muxtrio.codecs.registry import get_codec
from muxtrio.config import Config, ResponseModel
from muxtrio.engine.engine import DeploymentFilter, Engine
from muxtrio.engine.passthrough import offer
from muxtrio.engine.retry import error_class
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import ClientError, ErrorKind, LimitError, MuxError
from muxtrio.ir.events import Event, UsageUpdate
from muxtrio.ir.request import Request
from muxtrio.ir.response import Usage
from muxtrio.ir.tokens import estimate_tokens
from muxtrio.keys.gate import KeyGate, KeyIdentity, Ticket
from muxtrio.logsafe import escape_controls
from muxtrio.redact import scrub_error
from muxtrio.requestlog import RECORDER
from muxtrio.server.http import (
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    disconnect_signal,
    read_body,
    send_whole,
    watch_disconnect,
)
from muxtrio.server.stream_writer import State, StreamWriter
from muxtrio.wire.framing import Frame

access_log = logging.getLogger("muxtrio.access")

ID_PREFIX: dict[Format, str] = {
    Format.OPENAI_CHAT: "chatcmpl-",
    Format.OPENAI_RESPONSES: "resp_",
    Format.ANTHROPIC: "msg_",
    Format.GEMINI: "",
    Format.OLLAMA: "",
}


@dataclass(slots=True)
class RequestLog:
    """What one client request did: the access-log line, and what metrics, usage records and request logs read."""

    method: str
    path: str
    format: str
    request_id: str
    start: float = field(default_factory=time.perf_counter)
    wall_start: float = field(default_factory=time.time)
    kind: str = "-"  # the route kind: generate, count, list, ...
    model: str = "-"
    provider: str = "-"
    status: int = 0
    ttfb: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    error: str = ""
    error_class: str | None = None
    stream: bool = False
    meta: StreamMeta | None = None
    usage: Usage | None = None  # the provider-reported usage; None when it reported none
    tokens_estimated: bool = False
    key_id: str | None = None  # the client key's id and name (client keys), never the key
    key_name: str | None = None
    cost: float | None = None
    client_key: KeyIdentity | None = None  # the client key the request was made with; None for the flat api-keys

    def emit(self) -> None:
        duration = time.perf_counter() - self.start
        ttfb = f"{self.ttfb * 1000:.1f}ms" if self.ttfb is not None else "-"
        access_log.info(
            "%s %s fmt=%s model=%s provider=%s status=%d ttfb=%s dur=%.1fms tokens=%d/%d id=%s%s",
            escape_controls(self.method), escape_controls(self.path), self.format, escape_controls(self.model),
            escape_controls(self.provider), self.status, ttfb, duration * 1000, self.tokens_in, self.tokens_out,
            escape_controls(self.request_id), f" error={escape_controls(repr(self.error))}" if self.error else "",
        )  # fmt: skip


def error_headers(err: MuxError, request_id: str) -> Headers:
    headers: Headers = [(b"x-request-id", request_id.encode())]
    if err.retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(err.retry_after))).encode()))
    if isinstance(err, LimitError):
        headers.extend((name.encode(), value.encode()) for name, value in err.headers)
    return headers


async def send_error(send: Send, codec: Codec, err: MuxError, request_id: str, log: RequestLog | None = None) -> int:
    """Answer ``err`` in the codec's shape; returns the status (also recorded in ``log`` before sending)."""
    status, body = codec.emit_error(err)
    if log is not None:
        log.status = status
    await send_whole(send, status, body, extra=error_headers(err, request_id))
    return status


class GuardedSend:
    """``send``, with the message that ends the response shielded from cancellation (see the module invariants), and
    noting that it went out (``finished``). One small object per request instead of two closures and their cells."""

    __slots__ = ("_send", "finished")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.finished = False  # the answer's last message went out (a disconnect after that is the normal end)

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await self._send(message)
            self.finished = True
        else:
            await self._send(message)


class Generation:
    """Serves one generation (or token-count) request for one client format."""

    __slots__ = ("allow", "codec", "config", "engine", "fmt", "hints", "keys", "log", "response_id", "streams",
                 "ticket")

    def __init__(
        self,
        config: Config,
        engine: Engine,
        fmt: Format,
        hints: RequestHints,
        log: RequestLog,
        streams: Gauge | None = None,
        *,
        keys: KeyGate | None = None,
    ) -> None:
        self.config = config
        self.streams = streams  # the open-streams gauge, when metrics are kept
        self.keys = keys
        self.ticket: Ticket | None = None  # the client key's admission, settled when the response ends
        self.engine = engine
        self.codec = get_codec(fmt)
        self.fmt = fmt
        self.hints = hints
        self.log = log
        # Never the request id: a client may choose that one (x-request-id), and response ids must stay unique.
        self.response_id = ID_PREFIX[fmt] + new_request_id()
        self.allow: DeploymentFilter | None = None

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, scope, self.config.max_request_bytes)
        recorder = RECORDER.get()
        if recorder is not None:
            recorder.client_body.add(body)
        hints = replace(self.hints, headers=protocol_headers(self.fmt, scope))
        request = self.codec.parse_request(body, hints)
        self.log.model = request.model  # logged escaped, also when it is refused just below
        self.log.stream = request.stream and self.hints.endpoint != "count_tokens"
        checked_model(request)
        del body, hints  # the parsed request is what the answer needs (the request log keeps its own reference)
        guarded = GuardedSend(send)
        identity = self.log.client_key
        if identity is not None and self.keys is not None:
            if self.hints.endpoint == "count_tokens":
                self.allow = self.keys.access_filter(identity, request.model, self.engine.router)
            else:
                estimate = estimate_tokens(request)
                self.ticket = await self.keys.admit(identity, request.model, estimate, self.engine.router)
                self.allow = self.ticket.allow
        try:
            # Served in this frame (no ``_serve`` coroutine of its own): an open stream keeps one frame fewer.
            signal = disconnect_signal(scope)
            if signal is not None:
                # The listener cancels this scope when the client goes away: no watcher task per request. A
                # cancellation (client gone) stays inside and ends here; errors leave as themselves.
                with trio.CancelScope() as cancel_scope:
                    signal.watch(cancel_scope)
                    try:
                        await self._dispatch(request, guarded)
                    finally:
                        signal.unwatch()
                gone = signal.gone
            else:
                gone = await self._serve_watched(request, receive, guarded)
            if gone and not guarded.finished:  # the client left before the answer ended (its headers said 200)
                self.log.status = 499
                self.log.error_class = "client_closed"
        finally:
            if self.ticket is not None and self.keys is not None:
                self.keys.settle(self.ticket)

    async def _serve_watched(self, request: Request, receive: Receive, send: Send) -> bool:
        """Under another ASGI server: a watcher task notices ``http.disconnect``; returns whether it did. Errors
        leave the watcher's nursery as themselves (not wrapped in an ExceptionGroup) so the app writes them in the
        client's shape; a cancellation by the watcher (client gone) stays inside and ends here."""
        error: Exception | None = None
        gone = False

        async def watch(cancel_scope: trio.CancelScope) -> None:
            nonlocal gone
            await watch_disconnect(receive, cancel_scope)
            gone = True

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await self._dispatch(request, send)
            except Exception as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        return gone

    def _dispatch(self, request: Request, send: Send) -> Awaitable[None]:
        # Hands back the chosen coroutine instead of awaiting it: an open stream keeps one suspended frame fewer.
        if self.hints.endpoint == "count_tokens":
            return self._count(request, send)
        if request.stream:
            return self._stream(request, send)
        return self._complete(request, send)

    def _headers(self, content_type: str, meta: StreamMeta | None = None) -> Headers:
        headers: Headers = [
            (b"content-type", content_type.encode()),
            (b"x-request-id", self.log.request_id.encode()),
        ]
        if meta is not None:
            headers.extend(warning_headers(meta))
        if self.ticket is not None:
            headers.extend((name.encode(), value.encode()) for name, value in self.ticket.headers)
        return headers

    async def _complete(self, request: Request, send: Send) -> None:
        meta = StreamMeta()
        self.log.meta = meta
        response = await self.engine.complete(request, meta=meta, allow=self.allow)
        if self.ticket is not None:
            self.ticket.observe(response.usage, meta.model)
            self.ticket.finished = True
        self.log.ttfb = time.perf_counter() - self.log.start
        self.log.tokens_in, self.log.tokens_out = response.usage.input_tokens, response.usage.output_tokens
        self.log.usage = response.usage if response.usage != Usage() else None
        self.log.provider = meta.provider or "-"
        model = shown_model(self.config, request, meta, response.model)
        info = StreamInfo(self.response_id, model, int(time.time()), request)
        body = self.codec.emit_response(response, info)
        del response, info  # a large answer is then held once (as `body`) while it is sent
        self.log.status = 200
        await send_whole(send, 200, body, extra=self._headers("application/json", meta)[1:])

    async def _count(self, request: Request, send: Send) -> None:
        tokens, exact = await self.engine.count_tokens(request, allow=self.allow)
        self.log.tokens_in = tokens
        self.log.tokens_estimated = not exact
        self.log.status = 200
        await send_whole(send, 200, self.codec.emit_count_response(tokens), extra=self._headers("")[1:])

    async def _stream(self, request: Request, send: Send) -> None:
        streams = self.streams  # the open-streams gauge (counted in this frame: no wrapper coroutine per stream)
        if streams is not None:
            streams.inc()
        try:
            writer = _HTTPStream(self, request, send)
            config = self.config
            passthrough = offer(
                config.pass_through, self.codec.format, request, lambda meta: shown_model(config, request, meta)
            )
            writer.takes_raw = passthrough is not None
            try:
                async with self.engine.stream(request, allow=self.allow, passthrough=passthrough) as events:
                    self.log.meta = events.meta
                    await writer.run(events)
                    if self.ticket is not None:
                        self.ticket.finished = True
            except MuxError as err:
                await self._fail(send, err, writer.state is not State.WAITING, writer.encoder)
                return
            except Exception:
                if writer.state is State.WAITING:
                    raise  # the app answers a 500 in the client's shape
                logging.getLogger("muxtrio.server").exception("unexpected error while streaming")
                await self._fail(send, internal_error(), True, writer.encoder)
                return
            await send({"type": "http.response.body", "body": writer.tail, "more_body": False})
        finally:
            if streams is not None:
                streams.dec()

    async def _fail(self, send: Send, err: MuxError, started: bool, encoder: StreamEncoder | None) -> None:
        """End the request with ``err``: a real status before any output, the format's error framing after."""
        scrub_error(err, self.engine.scrubber)
        self.log.error = err.message
        self.log.error_class = error_class(err)
        if not started or encoder is None:
            await send_error(send, self.codec, err, self.log.request_id, self.log)
            return
        await send({"type": "http.response.body", "body": encoder.error(err), "more_body": False})



LARGE_BATCH_BYTES = 64 * 1024
"""A streamed batch whose frames carry more than this is written frame by frame (see ``_HTTPStream.write``)."""


class _HTTPStream(StreamWriter):
    """A streaming HTTP answer: headers with the first batch (or the first keepalive), each batch's frames in one
    body message through the encoder's framer, keepalive comments while the provider is silent. The last message
    (``tail``: final frames and the framing's terminator) is sent by the caller, after the engine's scope closed."""

    __slots__ = ("_generation", "_log", "_request", "_send", "_ticket", "idle_interval", "tail")

    def __init__(self, generation: Generation, request: Request, send: Send) -> None:
        super().__init__()
        self.idle_interval = generation.config.keepalive_interval
        self.tail = b""
        self._generation = generation
        self._request = request
        self._send = send
        self._log = generation.log
        self._ticket = generation.ticket

    def new_encoder(self, meta: StreamMeta) -> StreamEncoder:
        generation = self._generation
        model = shown_model(generation.config, self._request, meta)
        return generation.codec.new_encoder(StreamInfo(generation.response_id, model, int(time.time()), self._request))

    async def _start(self, encoder: StreamEncoder, meta: StreamMeta) -> None:
        self.state = State.STREAMING
        self._log.status = 200
        headers = self._generation._headers(encoder.content_type, meta)
        if encoder.content_type == "text/event-stream":
            headers.append((b"cache-control", b"no-cache"))
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    def observe(self, event: Event, meta: StreamMeta) -> None:
        if type(event) is UsageUpdate:
            self._log.tokens_in = event.usage.input_tokens
            self._log.tokens_out = event.usage.output_tokens
            self._log.usage = event.usage
            if self._ticket is not None:
                self._ticket.observe(event.usage, meta.model)
        elif self._ticket is not None:
            self._ticket.produced(event)

    async def idle(self, meta: StreamMeta) -> None:
        encoder = self.encoder_for(meta)
        if encoder.keepalive is None:
            return
        if self.state is State.WAITING:
            await self._start(encoder, meta)
        await self._send({"type": "http.response.body", "body": encoder.keepalive, "more_body": True})

    async def write(self, frames: list[Frame], meta: StreamMeta) -> None:
        encoder = self.encoder_for(meta)
        if self.state is State.WAITING:
            self._log.ttfb = time.perf_counter() - self._log.start
            await self._start(encoder, meta)
        if not frames:
            return
        framer = encoder.framer
        if len(frames) > 1 and sum(len(data) for _name, data in frames) > LARGE_BATCH_BYTES:
            # A large batch (Responses' ``*.done`` events each repeat the whole answer) is written a frame at a
            # time, each frame released once framed, rather than copied into one body the size of the batch.
            frames.reverse()
            while frames:
                body = framer.frame((frames.pop(),))
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
            return
        body = framer.frame(frames)
        frames.clear()  # the frames' own buffers go before the send waits (orjson keeps >= 4 KB per output)
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def end(self, frames: list[Frame], meta: StreamMeta) -> None:
        self._log.provider = meta.provider or "-"
        encoder = self.encoder_for(meta)
        if self.state is State.WAITING:
            await self._start(encoder, meta)
        self.tail = encoder.framer.frame(frames) + encoder.framer.close()

    async def write_raw(self, data: bytes, meta: StreamMeta) -> None:
        if self.state is State.WAITING:
            self._log.ttfb = time.perf_counter() - self._log.start
            await self._start(self.encoder_for(meta), meta)
        if data:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_raw(self, data: bytes, meta: StreamMeta) -> None:
        self._log.provider = meta.provider or "-"
        if self.state is State.WAITING:
            await self._start(self.encoder_for(meta), meta)
        self.tail = data

def shown_model(config: Config, request: Request, meta: StreamMeta, upstream: str = "") -> str:
    """The model name an answer carries (``response-model``). ``requested``: the client's own name while its route
    serves (an alias stays the alias, so clients such as Claude Code do not see the model change under them), the
    fallback's configured name once a fallback serves (the failover stays visible). ``upstream``: the provider's
    name."""
    if config.response_model is ResponseModel.UPSTREAM:
        return upstream or meta.model or request.model
    if not meta.route or meta.route == request.model:
        return request.model
    return meta.route


def warning_headers(meta: StreamMeta) -> Headers:
    """One ``x-muxtrio-warning`` header per thing the gateway left out of the client's request (e.g. a provider-run
    tool the serving provider cannot run)."""
    return [(b"x-muxtrio-warning", warning.encode("ascii", "replace")) for warning in meta.warnings]


def protocol_headers(fmt: Format, scope: Scope) -> tuple[tuple[str, str], ...]:
    """The client's protocol headers of its format (``PROTOCOL_HEADERS``), lower-case names, values as sent;
    repeated headers are joined with commas (RFC 9110 list semantics)."""
    allowed = PROTOCOL_HEADERS[fmt]
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if name in allowed:
            value = raw_value.decode("latin-1").strip()
            found[name] = f"{found[name]},{value}" if name in found else value
    return tuple(found.items())


def checked_model(request: Request) -> Request:
    """``request``, once its model name is known to hold no control character (a 400 otherwise): such a name can
    never be served, and it must not reach a provider URL, a header or a log line as it is."""
    if not request.model.isprintable():
        message = "the model name contains control or invisible characters"
        raise ClientError(ErrorKind.INVALID_REQUEST, message, param="model")
    return request


def new_request_id() -> str:
    return secrets.token_hex(12)


MAX_REQUEST_ID = 128
_REQUEST_ID_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
"""RFC 9110 token characters: safe in a header, a log line and an id."""


def request_id_for(incoming: str | None) -> str:
    """The id of a request: the client's ``x-request-id`` when it is 1 to 128 token characters, else a new one."""
    if incoming and len(incoming) <= MAX_REQUEST_ID and all(char in _REQUEST_ID_CHARS for char in incoming):
        return incoming
    return new_request_id()


def internal_error() -> MuxError:
    return MuxError(ErrorKind.INTERNAL, "internal gateway error")

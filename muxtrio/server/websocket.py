"""WebSocket endpoints: OpenAI Responses WebSocket mode (``/v1/responses``) and muxtrio's multiplexed protocol
(``/v1/ws``). ``MuxApp`` hands every ASGI ``websocket`` scope to :func:`serve_websocket`.

Per connection: one nursery. Its parent task reads the socket; one writer task owns ``send`` and drains a bounded
channel of whole messages; every generation is a task in the same nursery, around ``Engine.stream``. When the client
goes away the reader returns and the nursery is cancelled, which closes every upstream response of that connection
at once.

Invariants:
- Auth is the HTTP one (``auth.check``: ``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key`` or ``?key=`` on
  the upgrade request); a refused upgrade is an HTTP 401/403/404/503 with a JSON error body (ASGI WebSocket denial
  response), or a plain close where the server lacks that extension. Keys are never logged.
- Only the writer task calls ``send`` after the accept, so messages never interleave; it drops the queued messages
  of a stream the client cancelled.
- A malformed or oversized message, an unknown format, or an invalid body is answered with an ``error`` (for that
  request id when there is one) and the socket stays open. Cancelling or crediting an unknown id is ignored.
- ``/v1/ws`` flow control: a stream spends one credit per event sent (an ``events`` message of n events, for a
  request with ``batch``, spends n) and waits, *before asking its ``EventStream`` for the next batch*, while it has
  none. So the engine's per-stream byte pool fills and the provider read pauses for that stream alone; other
  streams on the socket keep flowing. ``done``/``error`` cost no credit. Every stream that is not cancelled ends
  with exactly one ``done`` (normal end, with usage) or ``error`` (a cut stream never ends with ``done``); after a
  ``cancel`` nothing more is sent for it.
- Responses mode: a turn's events are the Responses SSE events of the codec's encoder, each ``data:`` payload sent
  as one text message (byte-identical to SSE, no re-serialisation). ``previous_response_id`` resolves against this
  connection's memory (the full IR conversation: the earlier messages plus the answer's parts, and the system /
  developer text that came as input items — only ``instructions`` belong to their own turn, as OpenAI documents); it
  is never sent upstream, so any provider can serve every turn. A warm-up (``generate: false``) is remembered too:
  Codex CLI sends its base instructions as the warm-up's only input item. Turns on one ``stream_id`` lane run in
  order; lanes run concurrently. An error before a turn's first event is a lone ``error`` event with ``status``;
  after it, the encoder's own ``error`` + ``response.failed`` events, as over SSE.
- Keepalive: WebSocket ping/pong is the server's job (Hypercorn answers pings; it sends its own every
  ``websocket_ping_interval`` when set). No application-level pings: a Responses client must not see unknown events.

Imports: server, engine, codecs (the ``"ir"`` JSON mapping is the codec :mod:`muxtrio.codecs.ir_json`), IR and
wire; never :mod:`muxtrio.client`, the library on the other end.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
import trio

from muxtrio.codecs.base import Codec, Format, RequestHints, StreamEncoder, StreamInfo
from muxtrio.codecs.ir_json import event_to_json, request_from_json, request_to_json, usage_to_json
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.engine import Engine
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.ir.accumulate import Accumulator
from muxtrio.ir.events import Event, Finish, Start, UsageUpdate
from muxtrio.ir.request import Message, Part, Request, Role, Text, ToolCall, ToolResult
from muxtrio.ir.response import Usage
from muxtrio.server import auth
from muxtrio.server.handlers import (
    ID_PREFIX,
    RequestLog,
    checked_model,
    internal_error,
    new_request_id,
    shown_model,
)
from muxtrio.server.http import Receive, Scope, Send
from muxtrio.state.store import PREFIX as STATE_PREFIX
from muxtrio.wire import jsonutil
from muxtrio.wire.mux_protocol import DEFAULT_WINDOW, MAX_WINDOW
from muxtrio.wire.ndjson import NDJSONDecoder
from muxtrio.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from muxtrio.server.app import MuxApp
    from muxtrio.server.observe import Observability
    from muxtrio.server.reload import Live

log = logging.getLogger("muxtrio.server.websocket")

RESPONSES_PATH = "/v1/responses"
MUX_PATH = "/v1/ws"

WRITE_QUEUE = 256
"""Whole messages waiting for the writer task (per connection). Full: every stream of the connection waits, which
is the connection's own TCP backpressure; per-stream pacing is the credit window."""
MAX_STREAMS = 1024
"""Concurrent ``/v1/ws`` streams per connection."""
MAX_ID_CHARS = 256
MAX_GRANT = 1 << 20
MAX_LANES = 256
"""Concurrent Responses ``stream_id`` lanes per connection."""
LANE_QUEUE = 16
"""``response.create`` messages waiting on one lane."""
REMEMBERED_RESPONSES = 128
"""Responses kept per connection for ``previous_response_id`` (least recently used ones are forgotten). With shared
state (``state.backend: redis``) every turn is also kept in Redis for ``state.responses-ttl``, so the next turn may
come on any node."""
RECALL_RETRY_S = 0.1
"""With shared state, an unknown ``previous_response_id`` is looked up once more after this long."""

WIRE_ENDPOINTS: dict[Format, frozenset[str]] = {
    Format.OPENAI_CHAT: frozenset({"completions"}),
    Format.OLLAMA: frozenset({"chat", "generate"}),
}
"""The dialects a ``/v1/ws`` request may pick with ``endpoint`` (none for the other formats)."""
LOGGED_FORMATS = frozenset({*(f.value for f in Format), "ir"})
"""Format names written to the access log as they are (anything else a client sends is logged as ``?``)."""


# =============================================================================================== entry point
async def serve_websocket(app: MuxApp, scope: Scope, receive: Receive, send: Send, live: Live | None = None) -> None:
    """Serve one WebSocket connection (an ASGI ``websocket`` scope). ``live`` is the configuration and engine the
    connection is pinned to (hot reload: the socket keeps them until it closes)."""
    config = live.config if live is not None else app.config
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    path = str(scope.get("path", "")).rstrip("/")
    fmt = Format.OPENAI_RESPONSES if path == RESPONSES_PATH else None
    try:
        if path not in (RESPONSES_PATH, MUX_PATH):
            raise ClientError(ErrorKind.NOT_FOUND, f"no WebSocket endpoint at {path or '/'}")
        app.keys.refuse_client_key(auth.presented_key(scope), "on the WebSocket transport")
        auth.check(config, scope)
        engine = live.engine if live is not None else app.engine
        if engine is None or not app.ready:
            raise MuxError(ErrorKind.UNAVAILABLE, "the gateway is starting or stopping")
    except MuxError as err:
        await _reject(scope, send, err, fmt, path)
        return
    await send({"type": "websocket.accept"})
    connection: _Connection
    if path == RESPONSES_PATH:
        connection = ResponsesConnection(engine, receive, send, config.max_request_bytes)
    else:
        connection = MuxConnection(engine, receive, send, config.max_request_bytes)
    connection.observe = app.observe
    try:
        await connection.run()
    except Exception:
        # The server then closes the socket with 1011; the client sees its streams end without `done`.
        log.exception("WebSocket connection on %s failed", path)


async def _reject(scope: Scope, send: Send, err: MuxError, fmt: Format | None, path: str) -> None:
    """Refuse the upgrade with an HTTP status and an error body (OpenAI's shape on ``/v1/responses``)."""
    entry = RequestLog("WS", path or "/", fmt.value if fmt is not None else "mux", new_request_id())
    entry.status, entry.error = err.status, err.message
    entry.emit()
    body = get_codec(fmt).emit_error(err)[1] if fmt is not None else orjson.dumps({"error": error_json(err)})
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": err.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def error_json(err: MuxError) -> dict[str, Any]:
    """The ``error`` object of ``/v1/ws`` messages: the same for every format."""
    return {
        "kind": err.kind.value,
        "status": err.status,
        "message": err.message,
        "param": err.param,
        "retry_after": err.retry_after,
    }


# =============================================================================================== encodings
class _Encoding(ABC):
    """IR events -> the JSON payloads of one stream's event messages."""

    started = False  # a payload was produced

    @abstractmethod
    def encode(self, events: list[Event], model: str) -> list[bytes]: ...

    def finish(self, model: str) -> list[bytes]:
        return []

    def error(self, err: MuxError) -> list[bytes]:
        return []


class _IREncoding(_Encoding):
    def encode(self, events: list[Event], model: str) -> list[bytes]:
        self.started = True
        return [orjson.dumps(event_to_json(event)) for event in events]


class _WireEncoding(_Encoding):
    """A client format's own stream encoder, its output cut back into the objects it framed: SSE ``data:``
    payloads (``[DONE]`` dropped) or NDJSON lines. Those bytes are sent as they are."""

    def __init__(self, codec: Codec, response_id: str, created: int, request: Request) -> None:
        self._codec = codec
        self._id = response_id
        self._created = created
        self._request = request
        self._encoder: StreamEncoder | None = None
        self._sse: SSEDecoder | None = None
        self._ndjson: NDJSONDecoder | None = None

    def _get(self, model: str) -> StreamEncoder:
        if self._encoder is None:
            info = StreamInfo(self._id, model, self._created, self._request)
            self._encoder = self._codec.new_encoder(info)
            if self._encoder.content_type == "text/event-stream":
                self._sse = SSEDecoder()
            else:
                self._ndjson = NDJSONDecoder()
        return self._encoder

    def _split(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        if self._sse is not None:
            frames = [e.data for e in self._sse.feed(data) if e.data and e.data != b"[DONE]"]
        else:
            assert self._ndjson is not None
            frames = self._ndjson.feed(data)
        if frames:
            self.started = True
        return frames

    def _flush(self) -> list[bytes]:
        if self._sse is not None:
            return [e.data for e in self._sse.flush() if e.data and e.data != b"[DONE]"]
        return self._ndjson.flush() if self._ndjson is not None else []

    def encode(self, events: list[Event], model: str) -> list[bytes]:
        encoder = self._get(model)
        return self._split(b"".join([encoder.encode(event) for event in events]))

    def finish(self, model: str) -> list[bytes]:
        return self._split(self._get(model).finish()) + self._flush()

    def error(self, err: MuxError) -> list[bytes]:
        return self._split(self._get(self._request.model).error(err)) + self._flush()


async def _generate(
    engine: Engine,
    request: Request,
    encoding: _Encoding,
    emit: Callable[[list[bytes]], Awaitable[None]],
    *,
    gate: Callable[[], Awaitable[None]] | None = None,
    observe: Callable[[Event], None] | None = None,
    entry: RequestLog | None = None,
) -> StreamMeta:
    """Run one generation: engine events -> encoding -> ``emit`` with the payloads of each ready batch (never
    empty). ``gate`` is awaited before each batch is asked for (flow control). Raises ``MuxError``; a normal
    return means the stream finished."""
    async with engine.stream(request) as events:
        if entry is not None:
            entry.meta = events.meta  # what metrics and the usage record read, also when the stream fails
        while True:
            if gate is not None:
                await gate()
            batch = await events.next_batch()
            if batch is None:
                break
            if observe is not None:
                for event in batch:
                    observe(event)
            frames = encoding.encode(batch, shown_model(engine.config, request, events.meta))
            if frames:
                await emit(frames)
        frames = encoding.finish(shown_model(engine.config, request, events.meta))
        if frames:
            await emit(frames)
        return events.meta


# =============================================================================================== connections
class _Owner:
    """Who queued a message for the writer; the writer drops messages of a cancelled owner."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class _Connection(ABC):
    """The reader/writer skeleton shared by both endpoints."""

    def __init__(self, engine: Engine, receive: Receive, send: Send, max_message_bytes: int) -> None:
        self.engine = engine
        self.observe: Observability | None = None  # metrics and usage records of each generation, when set
        self._receive = receive
        self._send = send
        self._limit = max_message_bytes
        self._out, self._out_receive = trio.open_memory_channel[tuple[_Owner | None, str]](WRITE_QUEUE)

    def _begin(self, entry: RequestLog) -> None:
        """A generation starts: it counts as one client request (metrics, one usage record), like an HTTP one."""
        entry.kind = "generate"
        entry.stream = True
        if self.observe is not None:
            self.observe.begin()

    def _end(self, entry: RequestLog, usage: Usage) -> None:
        entry.tokens_in, entry.tokens_out = usage.input_tokens, usage.output_tokens
        entry.usage = usage if usage != Usage() else None
        if entry.status == 499:
            entry.error_class = "client_closed"
        if self.observe is not None:
            self.observe.end(entry, None, ())

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            await self._read(nursery)
            nursery.cancel_scope.cancel()  # the client left: cancel every generation of this connection

    async def _writer(self) -> None:
        async with self._out_receive:
            async for owner, text in self._out_receive:
                if owner is not None and owner.cancelled:
                    continue
                await self._send({"type": "websocket.send", "text": text})

    async def write(self, owner: _Owner | None, message: bytes) -> None:
        await self._out.send((owner, message.decode()))

    async def _read(self, nursery: trio.Nursery) -> None:
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            raw: str | bytes | None = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            size = len(raw) if isinstance(raw, bytes) or raw.isascii() else len(raw.encode())
            if size > self._limit:
                err = ClientError(ErrorKind.REQUEST_TOO_LARGE, f"message larger than {self._limit} bytes")
                await self.reject(err, None)
                continue
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                await self.reject(ClientError(ErrorKind.INVALID_REQUEST, "message is not valid JSON"), None)
                continue
            if not isinstance(parsed, dict):
                await self.reject(ClientError(ErrorKind.INVALID_REQUEST, "message must be a JSON object"), None)
                continue
            try:
                jsonutil.check_nesting(parsed, raw, what="message")
                await self.on_message(parsed, nursery)
            except MuxError as err:
                await self.reject(err, parsed)
            except Exception:
                # One message's failure is that message's error; the socket and its other streams carry on.
                log.exception("unexpected error handling a WebSocket message")
                await self.reject(internal_error(), parsed)

    @abstractmethod
    async def on_message(self, message: dict[str, Any], nursery: trio.Nursery) -> None: ...

    @abstractmethod
    async def reject(self, err: MuxError, message: Mapping[str, Any] | None) -> None:
        """Answer a message that could not be taken (no generation started)."""


# ----------------------------------------------------------------------------------------------- /v1/ws
class _MuxStream(_Owner):
    """One ``/v1/ws`` stream: its id, credit and cancel scope."""

    __slots__ = ("_more", "batch", "credit", "id", "prefix", "scope")

    def __init__(self, stream_id: str, credit: int, batch: bool) -> None:
        super().__init__()
        self.id = stream_id
        kind = b"events" if batch else b"event"
        self.prefix = b'{"type":"' + kind + b'","id":' + orjson.dumps(stream_id) + b',"data":'
        self.batch = batch
        self.credit = credit
        self.scope = trio.CancelScope()
        self._more = trio.Event()

    def grant(self, events: int) -> None:
        self.credit += events
        self._more.set()

    async def ready(self) -> None:
        while self.credit <= 0:
            self._more = trio.Event()
            await self._more.wait()

    def cancel(self) -> None:
        self.cancelled = True
        self.scope.cancel()


class MuxConnection(_Connection):
    """``/v1/ws``: ``request`` / ``cancel`` / ``credit`` in; ``event`` / ``done`` / ``error`` out."""

    def __init__(self, engine: Engine, receive: Receive, send: Send, max_message_bytes: int) -> None:
        super().__init__(engine, receive, send, max_message_bytes)
        self.streams: dict[str, _MuxStream] = {}

    async def reject(self, err: MuxError, message: Mapping[str, Any] | None) -> None:
        stream_id = message.get("id") if message is not None else None
        if not isinstance(stream_id, str):
            stream_id = None
        await self.write(None, orjson.dumps({"type": "error", "id": stream_id, "error": error_json(err)}))

    async def on_message(self, message: dict[str, Any], nursery: trio.Nursery) -> None:
        kind = message.get("type")
        stream_id = message.get("id")
        if kind == "cancel":
            stream = self.streams.pop(stream_id, None) if isinstance(stream_id, str) else None
            if stream is not None:
                stream.cancel()
            return
        if kind == "credit":
            events = message.get("events")
            if isinstance(events, bool) or not isinstance(events, int) or events < 1:
                await self.reject(_invalid("`events` must be a positive integer", "events"), message)
                return
            stream = self.streams.get(stream_id) if isinstance(stream_id, str) else None
            if stream is not None:
                stream.grant(min(events, MAX_GRANT))
            return
        if kind != "request":
            await self.reject(_invalid(f"unknown message type {kind!r}", "type"), message)
            return
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > MAX_ID_CHARS:
            await self.reject(_invalid(f"`id` must be a string of 1 to {MAX_ID_CHARS} characters", "id"), None)
            return
        if stream_id in self.streams:
            await self.reject(_invalid(f"stream id {stream_id!r} is already active", "id"), message)
            return
        if len(self.streams) >= MAX_STREAMS:
            err = MuxError(ErrorKind.RATE_LIMIT, f"more than {MAX_STREAMS} concurrent streams on one connection")
            await self.reject(err, message)
            return
        fmt = message.get("format")
        entry = RequestLog("WS", MUX_PATH, fmt if fmt in LOGGED_FORMATS else "?", new_request_id())
        try:
            request, encoding, credit, batch = self._parse(message, entry)
        except MuxError as err:
            entry.status, entry.error = err.status, err.message
            entry.emit()
            await self.reject(err, message)
            return
        stream = self.streams[stream_id] = _MuxStream(stream_id, credit, batch)
        nursery.start_soon(self._serve, stream, request, encoding, entry)

    def _parse(self, message: dict[str, Any], entry: RequestLog) -> tuple[Request, _Encoding, int, bool]:
        credit = message.get("credit", DEFAULT_WINDOW)
        if isinstance(credit, bool) or not isinstance(credit, int) or not 1 <= credit <= MAX_WINDOW:
            raise _invalid(f"`credit` must be an integer from 1 to {MAX_WINDOW}", "credit")
        batch = message.get("batch", False)
        if not isinstance(batch, bool):
            raise _invalid("`batch` must be a boolean", "batch")
        fmt = message.get("format")
        body = message.get("body")
        if fmt == "ir":
            request = checked_model(request_from_json(body))
            entry.model = request.model
            return request, _IREncoding(), credit, batch
        if not isinstance(fmt, str):
            raise _invalid("`format` must be a string", "format")
        codec = _codec(fmt)
        if not isinstance(body, dict):
            raise _invalid("`body` must be a JSON object", "body")
        model = message.get("model")
        if model is not None and not isinstance(model, str):
            raise _invalid("`model` must be a string", "model")
        endpoint = message.get("endpoint")
        if endpoint is not None and endpoint not in WIRE_ENDPOINTS.get(codec.format, frozenset()):
            raise _invalid(f"`endpoint` {endpoint!r} is not a dialect of {codec.format.value}", "endpoint")
        hints = RequestHints(model=model, stream=True, endpoint=endpoint)
        request = replace(checked_model(codec.parse_request(orjson.dumps(body), hints)), stream=True)
        entry.model = request.model
        response_id = ID_PREFIX[codec.format] + entry.request_id
        return request, _WireEncoding(codec, response_id, int(time.time()), request), credit, batch

    async def _serve(self, stream: _MuxStream, request: Request, encoding: _Encoding, entry: RequestLog) -> None:
        usage = Usage()
        finish: Finish | None = None

        def observe(event: Event) -> None:
            nonlocal usage, finish
            if isinstance(event, UsageUpdate):
                usage = usage.merge(event.usage)
            elif isinstance(event, Finish):
                finish = event

        async def emit(frames: list[bytes]) -> None:
            if entry.ttfb is None:
                entry.ttfb = time.perf_counter() - entry.start
            if not stream.batch:
                for frame in frames:
                    await stream.ready()
                    stream.credit -= 1
                    await self.write(stream, stream.prefix + _json_value(frame) + b"}")
                return
            while frames:
                # One message per ready batch, cut where the credit ends.
                await stream.ready()
                take, frames = frames[: stream.credit], frames[stream.credit :]
                stream.credit -= len(take)
                payload = b",".join([_json_value(frame) for frame in take])
                await self.write(stream, stream.prefix + b"[" + payload + b"]}")

        entry.status = 499  # until it ends otherwise: cancelled by the client, or the connection went away
        self._begin(entry)
        try:
            with stream.scope:
                meta = await _generate(self.engine, request, encoding, emit, gate=stream.ready, observe=observe,
                                       entry=entry)
                entry.status = 200
                entry.provider = meta.provider or "-"
                done = {
                    "type": "done",
                    "id": stream.id,
                    "usage": usage_to_json(usage),
                    "finish_reason": finish.reason.value if finish is not None else None,
                    "model": shown_model(self.engine.config, request, meta),
                }
                await self.write(stream, orjson.dumps(done))
        except MuxError as err:
            entry.status, entry.error = err.status, err.message
            await self.write(stream, orjson.dumps({"type": "error", "id": stream.id, "error": error_json(err)}))
        except Exception:
            log.exception("internal error in /v1/ws stream (model %s)", request.model)
            internal = internal_error()
            entry.status, entry.error = internal.status, internal.message
            await self.write(stream, orjson.dumps({"type": "error", "id": stream.id, "error": error_json(internal)}))
        finally:
            if self.streams.get(stream.id) is stream:
                del self.streams[stream.id]
            self._end(entry, usage)
            entry.emit()


# ----------------------------------------------------------------------------------------------- /v1/responses
class PreviousResponseNotFound(ClientError):
    """``previous_response_id`` names no response this connection remembers (OpenAI: 400
    ``previous_response_not_found``)."""

    code = "previous_response_not_found"

    def __init__(self, response_id: str) -> None:
        super().__init__(
            ErrorKind.INVALID_REQUEST,
            f"Previous response with id '{response_id}' not found on this connection.",
            param="previous_response_id",
        )


class _Lane(_Owner):
    __slots__ = ("id", "id_json")

    def __init__(self, lane_id: str | None) -> None:
        super().__init__()
        self.id = lane_id
        self.id_json = orjson.dumps(lane_id) if lane_id is not None else None


@dataclass(frozen=True, slots=True)
class _Remembered:
    """What a later turn continues from: the system/developer text given as input items (carried over, unlike
    ``instructions``) and the conversation, the answer included."""

    system: tuple[Text, ...] = ()
    messages: tuple[Message, ...] = ()


class ResponsesConnection(_Connection):
    """Responses WebSocket mode: ``response.create`` in; the Responses stream events out, one per message."""

    def __init__(self, engine: Engine, receive: Receive, send: Send, max_message_bytes: int) -> None:
        super().__init__(engine, receive, send, max_message_bytes)
        self.codec = get_codec(Format.OPENAI_RESPONSES)
        self.lanes: dict[str | None, tuple[_Lane, trio.MemorySendChannel[dict[str, Any]]]] = {}
        self.memory: OrderedDict[str, _Remembered] = OrderedDict()

    async def reject(self, err: MuxError, message: Mapping[str, Any] | None) -> None:
        lane_id = message.get("stream_id") if message is not None else None
        lane = _Lane(lane_id if isinstance(lane_id, str) else None)
        await self.write(None, self._error_event(err, lane))

    def _error_event(self, err: MuxError, lane: _Lane) -> bytes:
        status, body = self.codec.emit_error(err)
        error = orjson.loads(body)["error"]
        if isinstance(err, PreviousResponseNotFound):
            error["code"] = err.code
        event: dict[str, Any] = {"type": "error", "status": status, "error": error}
        if lane.id is not None:
            event["stream_id"] = lane.id
        return orjson.dumps(event)

    async def on_message(self, message: dict[str, Any], nursery: trio.Nursery) -> None:
        kind = message.get("type")
        if kind != "response.create":
            what = "steering" if kind == "response.steer" else f"client event {kind!r}"
            await self.reject(ClientError(ErrorKind.UNSUPPORTED, f"{what} is not supported", param="type"), message)
            return
        lane_id = message.get("stream_id")
        if lane_id is not None and (not isinstance(lane_id, str) or not lane_id or len(lane_id) > MAX_ID_CHARS):
            await self.reject(_invalid("`stream_id` must be a non-empty string", "stream_id"), None)
            return
        found = self.lanes.get(lane_id)
        if found is None:
            if len(self.lanes) >= MAX_LANES:
                err = MuxError(ErrorKind.RATE_LIMIT, f"more than {MAX_LANES} stream_id lanes on one connection")
                await self.reject(err, message)
                return
            lane = _Lane(lane_id)
            send, receive = trio.open_memory_channel[dict[str, Any]](LANE_QUEUE)
            found = self.lanes[lane_id] = (lane, send)
            nursery.start_soon(self._lane, lane, receive)
        try:
            found[1].send_nowait(message)
        except trio.WouldBlock:
            err = MuxError(ErrorKind.RATE_LIMIT, f"more than {LANE_QUEUE} response.create waiting on this lane")
            await self.reject(err, message)

    async def _lane(self, lane: _Lane, queue: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async with queue:
            async for message in queue:
                await self._turn(lane, message)

    async def _emit(self, lane: _Lane, frame: bytes) -> None:
        if lane.id_json is not None:
            frame = b'{"stream_id":' + lane.id_json + b"," + frame[1:]
        await self.write(lane, frame)

    async def _turn(self, lane: _Lane, message: dict[str, Any]) -> None:
        entry = RequestLog("WS", RESPONSES_PATH, Format.OPENAI_RESPONSES.value, new_request_id())
        response_id = ID_PREFIX[Format.OPENAI_RESPONSES] + entry.request_id
        encoding: _WireEncoding | None = None
        entry.status = 499
        answer = Accumulator()
        generating = False

        async def emit(frames: list[bytes]) -> None:
            if entry.ttfb is None:
                entry.ttfb = time.perf_counter() - entry.start
            for frame in frames:
                await self._emit(lane, frame)

        try:
            body = {k: v for k, v in message.items() if k not in ("type", "stream_id", "stream")}
            client_request = checked_model(self.codec.parse_request(orjson.dumps(body), RequestHints(stream=True)))
            entry.model = client_request.model
            history = await self._recall(client_request.previous_response_id)
            # The codec puts `instructions` first in `system`, then the leading system/developer input items.
            instructions = client_request.system[:1] if isinstance(body.get("instructions"), str) else ()
            carried = history.system + client_request.system[len(instructions):]
            messages = history.messages + _name_tool_results(client_request.messages, history.messages)
            request = replace(client_request, system=instructions + carried, messages=messages,
                              previous_response_id=None, stream=True)
            encoding = _WireEncoding(self.codec, response_id, int(time.time()), client_request)
            if body.get("generate") is False:
                # Warm-up: remember the input, answer with an empty completed response.
                start = encoding.encode([Start(response_id, request.model)], request.model)
                await emit(start + encoding.finish(request.model))
                await self._remember(response_id, _Remembered(carried, messages))
                entry.status = 200
                return
            generating = True
            self._begin(entry)
            meta = await _generate(self.engine, request, encoding, emit, observe=answer.add, entry=entry)
            entry.status = 200
            entry.provider = meta.provider or "-"
            parts = answer.partial_parts()
            answered = messages + ((Message(Role.ASSISTANT, parts),) if parts else ())
            await self._remember(response_id, _Remembered(carried, answered))
        except MuxError as err:
            entry.status, entry.error = err.status, err.message
            await self._fail(lane, encoding, err)
        except Exception:
            log.exception("internal error in a Responses WebSocket turn")
            internal = internal_error()
            entry.status, entry.error = internal.status, internal.message
            await self._fail(lane, encoding, internal)
        finally:
            if generating:
                self._end(entry, answer.usage)
            entry.emit()

    async def _fail(self, lane: _Lane, encoding: _WireEncoding | None, err: MuxError) -> None:
        if encoding is not None and encoding.started:
            for frame in encoding.error(err):
                await self._emit(lane, frame)
        else:
            await self.write(lane, self._error_event(err, lane))

    async def _recall(self, response_id: str | None) -> _Remembered:
        """This connection's memory first; then, with shared state, what any node remembered (one round trip)."""
        if response_id is None:
            return _Remembered()
        history = self.memory.get(response_id)
        if history is None:
            history = await _shared_recall(self.engine, response_id)
            if history is None:
                raise PreviousResponseNotFound(response_id)
            self.memory[response_id] = history
        self.memory.move_to_end(response_id)
        return history

    async def _remember(self, response_id: str, turns: _Remembered) -> None:
        self.memory[response_id] = turns
        while len(self.memory) > REMEMBERED_RESPONSES:
            self.memory.popitem(last=False)
        await _shared_remember(self.engine, response_id, turns)


def _response_key(response_id: str) -> str:
    return f"{STATE_PREFIX}response:{response_id}"


async def _shared_remember(engine: Engine, response_id: str, turns: _Remembered) -> None:
    """With shared state, keep the turn for ``state.responses-ttl`` where every node finds it (awaited: one round
    trip per turn, after its last event; none while it streams)."""
    if not engine.state.shared:
        return
    body = request_to_json(Request(model="-", system=turns.system, messages=turns.messages))
    ttl_ms = str(max(1, int(engine.config.state.responses_ttl * 1000)))
    await engine.state.pipeline([["SET", _response_key(response_id), orjson.dumps(body), "PX", ttl_ms]])


async def _shared_recall(engine: Engine, response_id: str) -> _Remembered | None:
    if not engine.state.shared or len(response_id) > MAX_ID_CHARS:
        return None
    replies = await engine.state.pipeline([["GET", _response_key(response_id)]])
    if replies is not None and replies[0] is None:
        # The turn may have ended on another node a moment ago, its write still on the way: look once more.
        await trio.sleep(RECALL_RETRY_S)
        replies = await engine.state.pipeline([["GET", _response_key(response_id)]])
    if not replies or not isinstance(replies[0], bytes | str):
        return None
    stored = request_from_json(orjson.loads(replies[0]))
    return _Remembered(tuple(p for p in stored.system if isinstance(p, Text)), stored.messages)


# =============================================================================================== helpers
def _invalid(message: str, param: str) -> ClientError:
    return ClientError(ErrorKind.INVALID_REQUEST, message, param=param)


def _codec(fmt: str) -> Codec:
    try:
        return get_codec(fmt)
    except ImportError:
        message = f"format {fmt!r} is not available in this build"
        raise ClientError(ErrorKind.UNSUPPORTED, message, param="format") from None


def _json_value(frame: bytes) -> bytes:
    """A payload that codecs produce as JSON goes out as it is; anything else as a JSON string."""
    if frame[:1] in (b"{", b"["):
        return frame
    return orjson.dumps(frame.decode("utf-8", "replace"))


def _name_tool_results(messages: tuple[Message, ...], history: tuple[Message, ...]) -> tuple[Message, ...]:
    """Give tool results of a continued turn the tool name from the remembered call (formats such as Gemini need
    it; the Responses ``function_call_output`` item only carries the call id)."""
    if not history:
        return messages
    names = {
        part.id: part.name for message in history for part in message.parts if isinstance(part, ToolCall)
    }
    out: list[Message] = []
    for message in messages:
        if any(isinstance(p, ToolResult) and p.name is None and p.call_id in names for p in message.parts):
            parts: tuple[Part, ...] = tuple(
                replace(p, name=names[p.call_id]) if isinstance(p, ToolResult) and p.name is None
                and p.call_id in names else p
                for p in message.parts
            )
            message = replace(message, parts=parts)
        out.append(message)
    return tuple(out)

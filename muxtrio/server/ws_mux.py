"""muxtrio's multiplexed WebSocket protocol (``/v1/ws``, ``docs/websocket.md``): ``request`` / ``cancel`` /
``credit`` in; ``event`` / ``events`` / ``done`` / ``error`` out, many streams on one socket, each in any client
format (or ``"ir"``, the codec :mod:`muxtrio.codecs.ir_json`).

Invariants:
- Flow control: a stream spends one credit per event sent (an ``events`` message of n events, for a request with
  ``batch``, spends n) and waits, *before asking its ``EventStream`` for the next batch*, while it has none. So the
  engine's per-stream byte pool fills and the provider read pauses for that stream alone; other streams on the
  socket keep flowing. ``done``/``error`` cost no credit.
- Every stream that is not cancelled ends with exactly one ``done`` (normal end, with usage) or ``error`` (a cut
  stream never ends with ``done``); after a ``cancel`` nothing more is sent for it. Cancelling or crediting an
  unknown id is ignored.

Imports: server (:mod:`muxtrio.server.ws_connection`, handlers), engine, codecs, IR and wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson
import trio

from muxtrio.codecs.base import Codec, Format, RequestHints, StreamEncoder, StreamInfo
from muxtrio.codecs.ir_json import IRStreamEncoder, request_from_json, usage_to_json
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.engine import Engine
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.ir.events import Event, Finish, UsageUpdate
from muxtrio.ir.request import Request
from muxtrio.ir.response import Usage
from muxtrio.server.handlers import ID_PREFIX, RequestLog, checked_model, internal_error, new_request_id, shown_model
from muxtrio.server.http import Receive, Send
from muxtrio.server.ws_connection import (
    LOGGED_FORMATS,
    MAX_ID_CHARS,
    Connection,
    Owner,
    PayloadWriter,
    error_json,
    generate,
    invalid,
    log,
)
from muxtrio.wire.mux_protocol import DEFAULT_WINDOW, MAX_WINDOW

MUX_PATH = "/v1/ws"
_Encoders = Callable[[str], StreamEncoder]
"""A stream's encoder for the model shown to the client."""
MAX_STREAMS = 1024
"""Concurrent ``/v1/ws`` streams per connection."""
MAX_GRANT = 1 << 20
WIRE_ENDPOINTS: dict[Format, frozenset[str]] = {
    Format.OPENAI_CHAT: frozenset({"completions"}),
    Format.OLLAMA: frozenset({"chat", "generate"}),
}
"""The dialects a ``/v1/ws`` request may pick with ``endpoint`` (none for the other formats)."""


class _MuxStream(Owner):
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


class MuxConnection(Connection):
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
                await self.reject(invalid("`events` must be a positive integer", "events"), message)
                return
            stream = self.streams.get(stream_id) if isinstance(stream_id, str) else None
            if stream is not None:
                stream.grant(min(events, MAX_GRANT))
            return
        if kind != "request":
            await self.reject(invalid(f"unknown message type {kind!r}", "type"), message)
            return
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > MAX_ID_CHARS:
            await self.reject(invalid(f"`id` must be a string of 1 to {MAX_ID_CHARS} characters", "id"), None)
            return
        if stream_id in self.streams:
            await self.reject(invalid(f"stream id {stream_id!r} is already active", "id"), message)
            return
        if len(self.streams) >= MAX_STREAMS:
            err = MuxError(ErrorKind.RATE_LIMIT, f"more than {MAX_STREAMS} concurrent streams on one connection")
            await self.reject(err, message)
            return
        fmt = message.get("format")
        entry = RequestLog("WS", MUX_PATH, fmt if fmt in LOGGED_FORMATS else "?", new_request_id())
        try:
            request, encoders, credit, batch = self._parse(message, entry)
        except MuxError as err:
            entry.status, entry.error = err.status, err.message
            entry.emit()
            await self.reject(err, message)
            return
        stream = self.streams[stream_id] = _MuxStream(stream_id, credit, batch)
        nursery.start_soon(self._serve, stream, request, encoders, entry)

    def _parse(self, message: dict[str, Any], entry: RequestLog) -> tuple[Request, _Encoders, int, bool]:
        credit = message.get("credit", DEFAULT_WINDOW)
        if isinstance(credit, bool) or not isinstance(credit, int) or not 1 <= credit <= MAX_WINDOW:
            raise invalid(f"`credit` must be an integer from 1 to {MAX_WINDOW}", "credit")
        batch = message.get("batch", False)
        if not isinstance(batch, bool):
            raise invalid("`batch` must be a boolean", "batch")
        fmt = message.get("format")
        body = message.get("body")
        if fmt == "ir":
            request = checked_model(request_from_json(body))
            entry.model = request.model
            return request, _ir_encoder, credit, batch
        if not isinstance(fmt, str):
            raise invalid("`format` must be a string", "format")
        codec = _codec(fmt)
        if not isinstance(body, dict):
            raise invalid("`body` must be a JSON object", "body")
        model = message.get("model")
        if model is not None and not isinstance(model, str):
            raise invalid("`model` must be a string", "model")
        endpoint = message.get("endpoint")
        if endpoint is not None and endpoint not in WIRE_ENDPOINTS.get(codec.format, frozenset()):
            raise invalid(f"`endpoint` {endpoint!r} is not a dialect of {codec.format.value}", "endpoint")
        hints = RequestHints(model=model, stream=True, endpoint=endpoint)
        request = replace(checked_model(codec.parse_request(orjson.dumps(body), hints)), stream=True)
        entry.model = request.model
        response_id = ID_PREFIX[codec.format] + entry.request_id
        created = int(time.time())

        def encoder(model: str) -> StreamEncoder:
            return codec.new_encoder(StreamInfo(response_id, model, created, request))

        return request, encoder, credit, batch

    async def _serve(self, stream: _MuxStream, request: Request, encoders: _Encoders, entry: RequestLog) -> None:
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
                writer = PayloadWriter(self.engine.config, request, encoders, emit, gate=stream.ready, observe=observe)
                meta = await generate(self.engine, request, writer, entry)
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



def _ir_encoder(model: str) -> StreamEncoder:
    return IRStreamEncoder()


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

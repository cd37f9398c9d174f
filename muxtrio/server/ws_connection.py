"""What both WebSocket endpoints share: the connection skeleton (one reader, one writer task owning ``send``, one
nursery for every generation of the socket), the WebSocket transport of the shared stream writer
(:class:`PayloadWriter`: frame payloads as messages, no framing to undo) and one generation around
``Engine.stream``. :mod:`muxtrio.server.ws_mux` (``/v1/ws``) and :mod:`muxtrio.server.ws_responses` (Responses
WebSocket mode) build on it; :mod:`muxtrio.server.websocket` is the entry point.

Invariants:
- Only the writer task calls ``send`` after the accept, so messages never interleave; it drops the queued messages
  of an owner (a stream or a lane) that was cancelled.
- A malformed or oversized message, or one whose handling fails, is answered through ``Connection.reject`` and the
  socket stays open.
- A generation counts as one client request (metrics and one usage record through ``Observability``), like an
  HTTP one.

Imports: server (handlers, http, stream_writer), engine, config, codecs, IR and wire; never :mod:`muxtrio.server.app`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import trio

from muxtrio.codecs.base import Format, StreamEncoder
from muxtrio.config import Config
from muxtrio.engine.engine import Engine
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.ir.events import Event
from muxtrio.ir.request import Request
from muxtrio.ir.response import Usage
from muxtrio.server.handlers import RequestLog, internal_error, shown_model
from muxtrio.server.http import Receive, Send
from muxtrio.server.stream_writer import State, StreamWriter
from muxtrio.wire import jsonutil
from muxtrio.wire.framing import Frame

if TYPE_CHECKING:
    from muxtrio.server.observe import Observability

log = logging.getLogger("muxtrio.server.websocket")

WRITE_QUEUE = 256
"""Whole messages waiting for the writer task (per connection). Full: every stream of the connection waits, which
is the connection's own TCP backpressure; per-stream pacing is the credit window."""
MAX_ID_CHARS = 256
"""Longest ``/v1/ws`` stream id or Responses ``stream_id``."""
LOGGED_FORMATS = frozenset({*(f.value for f in Format), "ir"})
"""Format names written to the access log as they are (anything else a client sends is logged as ``?``)."""


# =============================================================================================== streams
class PayloadWriter(StreamWriter):
    """One WebSocket stream (a ``/v1/ws`` stream or a Responses turn): the payloads of each batch's frames go to
    ``emit`` as they are (never an empty list); ``STREAMING`` once the first payload went out."""

    def __init__(
        self,
        config: Config,
        request: Request,
        make_encoder: Callable[[str], StreamEncoder],
        emit: Callable[[list[bytes]], Awaitable[None]],
        *,
        gate: Callable[[], Awaitable[None]] | None = None,
        observe: Callable[[Event], None] | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._request = request
        self._make_encoder = make_encoder
        self._emit = emit
        self._gate = gate
        self._observe = observe

    def new_encoder(self, meta: StreamMeta) -> StreamEncoder:
        return self._make_encoder(shown_model(self._config, self._request, meta))

    async def ready(self) -> None:
        if self._gate is not None:
            await self._gate()

    def observe(self, event: Event, meta: StreamMeta) -> None:
        if self._observe is not None:
            self._observe(event)

    async def write(self, frames: list[Frame], meta: StreamMeta) -> None:
        if frames:
            self.state = State.STREAMING
            await self._emit([data for _name, data in frames])

    async def end(self, frames: list[Frame], meta: StreamMeta) -> None:
        await self.write(frames, meta)


async def generate(engine: Engine, request: Request, writer: StreamWriter, entry: RequestLog) -> StreamMeta:
    """Run one generation through ``writer``. Raises ``MuxError``; a normal return means the stream finished."""
    async with engine.stream(request) as events:
        entry.meta = events.meta  # what metrics and the usage record read, also when the stream fails
        await writer.run(events)
        return events.meta


# =============================================================================================== connections
class Owner:
    """Who queued a message for the writer; the writer drops messages of a cancelled owner."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class Connection(ABC):
    """The reader/writer skeleton shared by both endpoints."""

    def __init__(self, engine: Engine, receive: Receive, send: Send, max_message_bytes: int) -> None:
        self.engine = engine
        self.observe: Observability | None = None  # metrics and usage records of each generation, when set
        self._receive = receive
        self._send = send
        self._limit = max_message_bytes
        self._out, self._out_receive = trio.open_memory_channel[tuple[Owner | None, str]](WRITE_QUEUE)

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

    async def write(self, owner: Owner | None, message: bytes) -> None:
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



# =============================================================================================== helpers
def error_json(err: MuxError) -> dict[str, Any]:
    """The ``error`` object of ``/v1/ws`` messages: the same for every format."""
    return {
        "kind": err.kind.value,
        "status": err.status,
        "message": err.message,
        "param": err.param,
        "retry_after": err.retry_after,
    }


def invalid(message: str, param: str) -> ClientError:
    return ClientError(ErrorKind.INVALID_REQUEST, message, param=param)

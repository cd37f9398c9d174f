"""The trio client of muxtrio's multiplexed WebSocket protocol (``/v1/ws``).

Use::

    async with muxtrio.client.connect("ws://127.0.0.1:8080/v1/ws", api_key=KEY) as mux:
        async with mux.stream("openai-chat", {"model": "m", "messages": [...]}) as events:
            async for chunk in events:      # that format's stream objects (dicts)
                ...
            print(events.usage)             # from the server's ``done`` message

        async with mux.stream("ir", ir.Request(...)) as events:
            async for event in events:      # ir.Event objects
                ...

Many streams run concurrently over one socket (open them from tasks of one nursery). See ``docs/websocket.md`` for
the protocol itself.

Invariants:
- Structured concurrency: :func:`connect` is a context manager that owns one nursery with one reader task; leaving
  it cancels the reader and closes the socket. :meth:`Mux.stream` starts no task. Nothing outlives its block.
- Flow control: a stream is opened with a credit window ``W``; credit is granted back (``credit`` message) once the
  consumer has *taken* ``max(1, W // 2)`` events, so at most ``W`` events of a stream are ever buffered here. The
  reader never blocks on a slow consumer (other streams keep flowing); a server that overruns the window fails
  that stream with a protocol error instead of growing memory.
- Leaving a stream's block before its ``done``/``error`` sends ``cancel`` (shielded, with a short timeout, so it is
  sent even when the block is left by cancellation); messages for that id that arrive later are dropped.
- Stream ids are unique per connection (a counter); they are never reused.
- Errors: a stream's ``error`` message is raised from iteration as :class:`MuxError` with the server's kind,
  status and message; a lost connection is ``MuxError(UNAVAILABLE)``; a refused upgrade is raised by ``connect``
  as ``MuxError`` with the HTTP status. The API key is sent as ``Authorization: Bearer`` and appears in no error.

The ``"ir"`` JSON mapping is the codec :mod:`muxtrio.codecs.ir_json`, which the server uses too, and the protocol's
window sizes live in :mod:`muxtrio.wire.mux_protocol`; this module imports nothing from ``muxtrio.server``, and the
server imports nothing from here. Its names are re-exported here for the library's users.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, Literal, NoReturn, TypeAlias, TypeVar, overload
from urllib.parse import urlsplit, urlunsplit

import orjson
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, WebSocketConnection, open_websocket_url

from muxtrio.codecs.ir_json import (
    EVENT_TAGS,
    PART_TAGS,
    event_from_json,
    event_to_json,
    request_from_json,
    request_to_json,
    usage_from_json,
    usage_to_json,
)
from muxtrio.codecs.ir_json import FORMAT as IR_FORMAT
from muxtrio.errors import DEFAULT_STATUS, ErrorKind, MuxError
from muxtrio.ir.events import (
    Event,
)
from muxtrio.ir.request import (
    Request,
)
from muxtrio.ir.response import Usage
from muxtrio.wire.mux_protocol import DEFAULT_WINDOW, MAX_WINDOW

log = logging.getLogger("muxtrio.client")

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
"""Largest server message the client accepts (a Responses ``response.completed`` carries the whole answer)."""
CANCEL_TIMEOUT = 2.0

WireFormat: TypeAlias = Literal["openai-chat", "openai-responses", "anthropic", "gemini", "ollama"]

# =============================================================================================== the client
T = TypeVar("T")


def error_from_json(value: Any) -> MuxError:
    """A server ``error`` object (``{"kind", "status", "message", "param", "retry_after"}``) as a ``MuxError``."""
    obj = value if isinstance(value, dict) else {}
    try:
        kind = ErrorKind(str(obj.get("kind")))
    except ValueError:
        kind = ErrorKind.INTERNAL
    status = obj.get("status")
    retry_after = obj.get("retry_after")
    param = obj.get("param")
    return MuxError(
        kind,
        str(obj.get("message") or "stream failed"),
        status=status if isinstance(status, int) and not isinstance(status, bool) else DEFAULT_STATUS[kind],
        param=param if isinstance(param, str) else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )


@dataclass(slots=True)
class _Item:
    kind: Literal["events", "done", "error"]
    payload: Any  # events: a list of event data; done: the message; error: its error object


class Stream(Generic[T]):
    """One generation on a :class:`Mux`: ``async for event in stream``. After the end, ``usage`` and
    ``finish_reason`` hold what the server's ``done`` message said."""

    def __init__(self, mux: Mux, stream_id: str, window: int, convert: Callable[[Any], T]) -> None:
        self.id = stream_id
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self._mux = mux
        self._window = window
        self._grant_every = max(1, window // 2)
        self._taken = 0  # events taken since the last grant
        self._convert = convert
        # Capacity: the window (every item holds at least one event), plus the terminal message. Filling it means
        # the server ignored the window.
        self._send, self._receive = trio.open_memory_channel[_Item](window + 1)
        self._pending: deque[Any] = deque()  # events of the last item not yet taken
        self._ended = False  # done/error received (or the stream was failed locally)
        self._error: MuxError | None = None

    # ------------------------------------------------------------------ reader side (never blocks)
    def _deliver(self, item: _Item) -> None:
        if self._ended:
            return
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self._fail(MuxError(ErrorKind.UPSTREAM, f"protocol error: the server overran stream {self.id}'s window"))
            return
        except trio.ClosedResourceError:
            return
        if item.kind != "events":
            self._ended = True
            self._send.close()

    def _fail(self, error: MuxError) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._send.close()

    # ------------------------------------------------------------------ consumer side
    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._pending:
            try:
                item = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if self._error is not None:
                    raise self._error from None
                raise StopAsyncIteration from None
            if item.kind != "events":
                return self._end(item)
            self._pending.extend(item.payload)
        data = self._pending.popleft()
        self._taken += 1
        if self._taken >= self._grant_every:
            granted, self._taken = self._taken, 0
            await self._mux._send({"type": "credit", "id": self.id, "events": granted})
        return self._convert(data)

    def _end(self, item: _Item) -> NoReturn:
        self._receive.close()
        if item.kind == "done":
            done = item.payload
            self.usage = usage_from_json(done.get("usage") or {})
            reason = done.get("finish_reason")
            self.finish_reason = reason if isinstance(reason, str) else None
            model = done.get("model")
            self.model = model if isinstance(model, str) else None
            raise StopAsyncIteration
        self._error = error_from_json(item.payload)
        raise self._error

    @property
    def finished(self) -> bool:
        """The server ended this stream (``done`` or ``error``) or the connection was lost."""
        return self._ended


class Mux:
    """A connection to ``/v1/ws``: open streams with :meth:`stream`. Made by :func:`connect`."""

    def __init__(self, ws: WebSocketConnection, window: int, batch: bool = True) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be between 1 and {MAX_WINDOW}")
        self._ws = ws
        self._window = window
        self._batch = batch
        self._ids = itertools.count(1)
        self._streams: dict[str, Stream[Any]] = {}
        self._closed: MuxError | None = None
        self.connection_errors: list[MuxError] = []  # errors the server sent with no stream id

    @overload
    def stream(
        self, format: Literal["ir"], body: Request | Mapping[str, Any], *, window: int | None = None
    ) -> AbstractAsyncContextManager[Stream[Event]]: ...

    @overload
    def stream(
        self,
        format: WireFormat,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[dict[str, Any]]]: ...

    @overload
    def stream(
        self,
        format: str,
        body: Request | Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[Any]]: ...

    def stream(
        self,
        format: str,
        body: Request | Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[Any]]:
        """Start a generation in ``format`` (a client wire format, or ``"ir"``). ``model`` is for formats that
        name it outside the body (Gemini); ``endpoint`` picks a dialect (``"generate"`` for Ollama,
        ``"completions"`` for legacy OpenAI). Leaving the block before the end cancels the generation."""
        return self._stream(format, body, model, endpoint, window or self._window)

    @asynccontextmanager
    async def _stream(
        self, format: str, body: Request | Mapping[str, Any], model: str | None, endpoint: str | None, window: int
    ) -> AsyncIterator[Stream[Any]]:
        if self._closed is not None:
            raise self._closed
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be between 1 and {MAX_WINDOW}")
        stream_id = str(next(self._ids))
        convert: Callable[[Any], Any] = event_from_json if format == IR_FORMAT else _identity
        stream: Stream[Any] = Stream(self, stream_id, window, convert)
        message: dict[str, Any] = {
            "type": "request",
            "id": stream_id,
            "format": format,
            "body": request_to_json(body) if isinstance(body, Request) else dict(body),
            "credit": window,
            "batch": self._batch,
        }
        if model is not None:
            message["model"] = model
        if endpoint is not None:
            message["endpoint"] = endpoint
        self._streams[stream_id] = stream
        try:
            await self._send(message)
            yield stream
        finally:
            self._streams.pop(stream_id, None)
            if not stream.finished and self._closed is None:
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_TIMEOUT), suppress(MuxError):
                    await self._send({"type": "cancel", "id": stream_id})
            stream._fail(MuxError(ErrorKind.INVALID_REQUEST, "the stream was closed"))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            await self._ws.send_message(orjson.dumps(message).decode())
        except ConnectionClosed:
            raise self._lost() from None

    def _lost(self) -> MuxError:
        if self._closed is None:
            reason = self._ws.closed
            detail = f" (code {reason.code})" if reason is not None else ""
            self._closed = MuxError(ErrorKind.UNAVAILABLE, f"the muxtrio connection was closed{detail}")
        return self._closed

    async def _read(self) -> None:
        """The reader task: dispatch every server message to its stream, never waiting on a consumer."""
        try:
            while True:
                raw = await self._ws.get_message()
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("ignoring a non-JSON message from the server")
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            error = self._lost()
            for stream in list(self._streams.values()):
                stream._fail(error)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        stream_id = message.get("id")
        if kind == "error" and stream_id is None:
            self.connection_errors.append(error_from_json(message.get("error")))
            return
        stream = self._streams.get(stream_id) if isinstance(stream_id, str) else None
        if stream is None:
            return  # a stream we left (its late messages), or not ours
        if kind == "events":
            data = message.get("data")
            if isinstance(data, list) and data:
                stream._deliver(_Item("events", data))
        elif kind == "event":
            stream._deliver(_Item("events", [message.get("data")]))
        elif kind == "done":
            self._streams.pop(stream.id, None)
            stream._deliver(_Item("done", message))
        elif kind == "error":
            self._streams.pop(stream.id, None)
            stream._deliver(_Item("error", message.get("error")))

    @property
    def active(self) -> int:
        """Streams open on this connection."""
        return len(self._streams)


def _identity(value: Any) -> Any:
    return value


def ws_url(url: str) -> str:
    """``http(s)://host[:port]`` -> ``ws(s)://host[:port]/v1/ws``; a ``ws(s)://`` URL with a path is kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket or HTTP URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/v1/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@asynccontextmanager
async def connect(
    url: str,
    *,
    api_key: str | None = None,
    window: int = DEFAULT_WINDOW,
    batch: bool = True,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    connect_timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Mux]:
    """Open a multiplexed connection to a muxtrio gateway (``ws://host:port/v1/ws``, or its ``http://`` base URL).

    ``window`` is each stream's default credit window (events in flight). ``batch`` asks the server to send the
    events that are ready together as one ``events`` message (far fewer WebSocket frames when a consumer falls
    behind or a provider sends bursts; the events seen here are the same). Raises ``MuxError`` when the gateway
    refuses the upgrade (401/403 for a bad key) or cannot be reached.
    """
    headers = [(b"authorization", b"Bearer " + api_key.encode())] if api_key else []
    target = ws_url(url)
    try:
        async with open_websocket_url(
            target,
            ssl_context,
            extra_headers=headers,
            max_message_size=max_message_bytes,
            connect_timeout=connect_timeout,
            message_queue_size=16,
        ) as ws:
            mux = Mux(ws, window, batch)
            error: BaseException | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mux._read)
                try:
                    yield mux
                except BaseException as exc:
                    # Re-raised as itself below, not wrapped in an ExceptionGroup by this nursery.
                    error = exc
                finally:
                    nursery.cancel_scope.cancel()
            if error is not None:
                raise error
    except ConnectionRejected as exc:
        raise _rejected(exc) from None
    except HandshakeError as exc:
        # Opening (connect error, timeout) or closing (DisconnectionTimeout) handshake.
        raise MuxError(ErrorKind.UNAVAILABLE, f"WebSocket handshake with {_safe(target)} failed: {exc!r}") from None


def _rejected(exc: ConnectionRejected) -> MuxError:
    status = exc.status_code
    message = f"the gateway refused the WebSocket upgrade with HTTP {status}"
    with suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        detail = orjson.loads(exc.body or b"{}").get("error", {}).get("message")
        if isinstance(detail, str):
            message += f": {detail}"
    kind = {401: ErrorKind.AUTHENTICATION, 403: ErrorKind.PERMISSION, 404: ErrorKind.NOT_FOUND}.get(
        status, ErrorKind.UNAVAILABLE
    )
    return MuxError(kind, message, status=status)


def _safe(url: str) -> str:
    """A URL for an error message: scheme, host and path only (a ``?key=`` never leaks)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


__all__ = [
    "DEFAULT_WINDOW",
    "EVENT_TAGS",
    "MAX_WINDOW",
    "PART_TAGS",
    "Mux",
    "Stream",
    "connect",
    "error_from_json",
    "event_from_json",
    "event_to_json",
    "request_from_json",
    "request_to_json",
    "usage_from_json",
    "usage_to_json",
    "ws_url",
]

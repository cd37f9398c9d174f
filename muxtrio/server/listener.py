"""Accept connections and serve each one with Hypercorn's HTTP machinery, supervised, until told to stop.

Role: the worker loop (in place of ``hypercorn.trio.serve``): run the ASGI lifespan, listen, hand each accepted
connection to a :class:`SupervisedConnection`, and drain on shutdown. Hypercorn still parses HTTP/1.1 (h11),
HTTP/2 (h2) and WebSocket; this module owns which of them a connection may speak and what a failure costs.

Invariants:
- One connection's failure never ends the process: any exception out of a connection's protocol handling is logged
  as one WARNING line (no traceback, control characters escaped) and only that connection is closed.
- HTTP/2 is served only when ``http2`` is enabled in the config. Otherwise a cleartext connection speaks HTTP/1.1
  only (an ``Upgrade: h2c`` header is ignored and the request is answered in HTTP/1.1; the h2 prior-knowledge
  preface is answered 505 and the connection closed) and TLS offers only ``http/1.1`` by ALPN.
- With HTTP/2 enabled, DATA for a stream that the gateway already answered and closed (an early 401/404/413 while
  the client is still sending its body) is acknowledged for flow control and dropped, instead of failing the
  connection (Hypercorn 0.18 raises ``KeyError`` there).
- Every HTTP request gets a :class:`~muxtrio.server.http.DisconnectSignal` (scope extension ``muxtrio.disconnect``),
  fired when Hypercorn queues ``http.disconnect`` for it (connection closed, HTTP/2 stream reset). Its messages
  reach the app through a bounded queue of Hypercorn's size (``max_app_queue_size``) that checkpoints as a memory
  channel does.
- Shutdown: ``stop`` ends accepting and lets open requests finish for up to ``graceful_timeout`` seconds; ``now``
  (checked while draining) cancels them at once. Idle keep-alive connections close as soon as the drain starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h2.events
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H2CProtocolRequiredError, H2ProtocolAssumedError, H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.task_group import _handle as run_app
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr, repr_socket_addr, wrap_app

from muxtrio.logsafe import escape_controls
from muxtrio.server.http import DISCONNECT_EXTENSION, DisconnectSignal

log = logging.getLogger("muxtrio.server")

_HTTP2_DISABLED_TEXT = b"HTTP/2 is not enabled on this gateway; use HTTP/1.1.\n"
_HTTP2_DISABLED = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HTTP2_DISABLED_TEXT), _HTTP2_DISABLED_TEXT)
)


class _Http1Only(H11Protocol):
    """HTTP/1.1 that never switches to HTTP/2: ``Upgrade: h2c`` is ignored, the h2 preface is refused."""

    async def _check_protocol(self, event: Any) -> None:
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            raise H2ProtocolAssumedError(b"")


class _Http2(H2Protocol):
    """HTTP/2 that tolerates DATA for a stream it has already answered and closed."""

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        # One event at a time: handling an event can close a stream that a later event in the same batch names.
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                await self._flush()
                continue
            await super()._handle_events([event])


class GatewayProtocol:
    """Speaks HTTP/1.1, and HTTP/2 (by ALPN, prior knowledge or h2c upgrade) when ``http2`` is enabled."""

    def __init__(self, http2: bool, alpn: str | None, send: Callable[[Event], Awaitable[None]], **common: Any) -> None:
        self.http2 = http2
        self.common = common
        self.send = send
        self.protocol: H11Protocol | H2Protocol
        if http2 and alpn == "h2":
            self.protocol = _Http2(send=send, **common)
        else:
            self.protocol = H11Protocol(send=send, **common) if http2 else _Http1Only(send=send, **common)

    async def initiate(self) -> None:
        await self.protocol.initiate()

    async def handle(self, event: Event) -> None:
        try:
            await self.protocol.handle(event)
        except H2ProtocolAssumedError as switch:
            if not self.http2:
                await self.send(RawData(data=_HTTP2_DISABLED))
                raise _CloseConnection() from None
            self.protocol = _Http2(send=self.send, **self.common)
            await self.protocol.initiate()
            if switch.data:
                await self.protocol.handle(RawData(data=switch.data))
        except H2CProtocolRequiredError as upgrade:
            self.protocol = _Http2(send=self.send, **self.common)
            await self.protocol.initiate(upgrade.headers, upgrade.settings)
            if upgrade.data:
                await self.protocol.handle(RawData(data=upgrade.data))


class _SignallingTaskGroup(TaskGroup):
    """Hypercorn's per-connection task group, which also hands every HTTP request a :class:`DisconnectSignal`
    (scope extension ``muxtrio.disconnect``) and fires it as it queues ``http.disconnect`` for the app: a handler
    learns that its client went away without a watcher task of its own per request. An HTTP request's messages go
    through an :class:`_AppQueue` instead of a trio memory channel."""

    async def spawn_app(
        self, app: AppWrapper, config: HypercornConfig, scope: Any, send: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        if scope.get("type") != "http":
            return await super().spawn_app(app, config, scope, send)
        signal = DisconnectSignal()
        scope.setdefault("extensions", {})[DISCONNECT_EXTENSION] = signal
        queue = _AppQueue(signal, config.max_app_queue_size)
        assert self._nursery is not None  # spawn_app runs inside the task group
        self._nursery.start_soon(
            run_app, app, config, scope, queue.get, send, trio.to_thread.run_sync, trio.from_thread.run
        )
        return queue.put


class _AppQueue:
    """The messages Hypercorn hands one HTTP request's app (body chunks, ``http.disconnect``): at most ``limit``
    waiting (``max_app_queue_size``, Hypercorn's bound), ``put`` waiting for room beyond that, ``get`` for a message;
    both checkpoint as a trio memory channel's ``send`` and ``receive`` do. ``put`` fires the request's
    :class:`DisconnectSignal` on ``http.disconnect``.

    Why not the memory channel Hypercorn uses: an open stream holds this queue for its whole life, and a memory
    channel is a state object with a deque, two ordered dicts, two channel objects and their task sets (~1.5 KB per
    request, ``perf/mem_tasks.py``); this is one small object, and a parking lot only while someone waits."""

    __slots__ = ("_items", "_limit", "_lot", "_signal")

    def __init__(self, signal: DisconnectSignal, limit: int) -> None:
        self._items: list[Any] = []
        self._limit = max(1, limit)
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._signal = signal

    def _wait(self) -> Awaitable[None]:
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        return self._lot.park()

    def _wake(self) -> None:
        if self._lot is not None and self._lot:
            self._lot.unpark_all()

    async def put(self, message: Any) -> None:
        if message.get("type") == "http.disconnect":
            self._signal.fire()
        await trio.lowlevel.checkpoint_if_cancelled()
        if len(self._items) < self._limit:
            self._items.append(message)
            self._wake()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        while len(self._items) >= self._limit:
            await self._wait()
        self._items.append(message)
        self._wake()

    async def get(self) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items:
            message = self._items.pop(0)
            self._wake()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return message
        while not self._items:
            await self._wait()
        message = self._items.pop(0)
        self._wake()
        return message


class _CloseConnection(Exception):
    """End this connection quietly (the answer is already written)."""


class SupervisedConnection(TCPServer):
    """One accepted connection: Hypercorn's connection loop with :class:`GatewayProtocol`, and a supervisor that
    turns any failure into closing this connection only."""

    def __init__(self, http2: bool, *args: Any) -> None:
        super().__init__(*args)
        self.http2 = http2

    async def run(self) -> None:
        try:
            await self._serve()
        except Exception as exc:  # the supervisor: whatever one connection raises stays with it
            failures = _failures(exc)
            if failures:
                peer = _peer(self.stream)
                log.warning("closed the connection from %s after an error: %s", peer, escape_controls(failures))
        finally:
            quiet = contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError)
            with trio.CancelScope(shield=True), quiet:
                await self._close()

    async def _serve(self) -> None:
        stream: Any = self.stream
        if isinstance(stream, trio.SSLStream):
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError):
                return
            alpn, sock, tls = stream.selected_alpn_protocol(), stream.transport_stream.socket, True
        else:
            alpn, sock, tls = "http/1.1", stream.socket, False
        async with _SignallingTaskGroup() as task_group:
            self._task_group = task_group
            self.protocol = GatewayProtocol(  # type: ignore[assignment]
                self.http2,
                alpn,
                self.protocol_send,
                app=self.app,
                config=self.config,
                context=self.context,
                task_group=task_group,
                connection_state=ConnectionState(self.state.copy()),
                ssl=tls,
                client=parse_socket_addr(sock.family, sock.getpeername()),
                server=parse_socket_addr(sock.family, sock.getsockname()),
            )
            await self.protocol.initiate()
            await self.idle_task.restart(task_group, self._idle_timeout)
            await self._read_data()

    async def _read_data(self) -> None:
        """Hypercorn's read loop, without a cancel scope per read when no ``read_timeout`` is set (the default):
        the connection then holds one cancel scope and its status fewer while it waits for the client."""
        timeout = self.config.read_timeout
        receive_some = self.stream.receive_some
        while True:
            try:
                if not timeout:  # None or 0: no read timeout (as Hypercorn reads it)
                    data = await receive_some(MAX_RECV)
                else:
                    with trio.fail_after(timeout):
                        data = await receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            await self.protocol.handle(RawData(bytes(data)))  # TLS streams give a bytearray
            if data == b"":
                break
        await self.protocol.handle(Closed())


def _failures(exc: BaseException) -> str:
    """What went wrong, one line; empty when the connection only ended (a reset, or closed on purpose)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(text for inner in exc.exceptions if (text := _failures(inner)))
    if isinstance(exc, (_CloseConnection, OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
        return ""
    return f"{type(exc).__name__}: {exc}"


def _peer(stream: Any) -> str:
    try:
        sock = stream.transport_stream.socket if isinstance(stream, trio.SSLStream) else stream.socket
        return repr_socket_addr(sock.family, sock.getpeername())
    except (OSError, AttributeError):
        return "a client"


async def serve(
    asgi_app: Callable[..., Awaitable[None]],
    hc: HypercornConfig,
    *,
    http2: bool,
    sockets: Sockets | None = None,
    stop: trio.Event,
    now: trio.Event | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``asgi_app`` until ``stop`` is set, then drain (``now`` cuts the drain short). Reports the bound URLs."""
    app: AppWrapper = wrap_app(asgi_app, hc.wsgi_max_body_size, "asgi")
    if not http2:
        hc.alpn_protocols = ["http/1.1"]
    state: LifespanState = {}
    lifespan = Lifespan(app, hc, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        drain = trio.CancelScope()
        if now is not None:
            lifespan_nursery.start_soon(_cancel_when, now, drain)
        with drain:
            async with trio.open_nursery() as connections:
                if sockets is None:
                    sockets = hc.create_sockets()
                    for sock in sockets.secure_sockets + sockets.insecure_sockets:
                        sock.listen(hc.backlog)
                ssl_context = hc.create_ssl_context()
                listeners: list[trio.abc.Listener[Any]] = []
                binds: list[str] = []
                for sock in sockets.secure_sockets:
                    plain = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                    listeners.append(trio.SSLListener(plain, ssl_context, https_compatible=True))  # type: ignore[arg-type]
                    binds.append("https://" + repr_socket_addr(sock.family, sock.getsockname()))
                for sock in sockets.insecure_sockets:
                    listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                    binds.append("http://" + repr_socket_addr(sock.family, sock.getsockname()))
                handler = partial(SupervisedConnection, http2, app, hc, context, state)
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(partial(trio.serve_listeners, handler, listeners, handler_nursery=connections))
                    task_status.started(binds)
                    await stop.wait()
                    accepting.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
                await context.terminated.set()  # idle keep-alive connections close now, busy ones after their request
                drain.deadline = trio.current_time() + hc.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()

"""Small ASGI helpers: read a bounded body, send whole responses, watch for a client disconnect.

Invariants: a body over the limit is refused before it is buffered whole (Content-Length first, then by counting);
a body with a ``Content-Encoding`` is returned decoded, under the same limit (:mod:`muxtrio.server.request_coding`);
every response is sent as one ``http.response.start`` plus one body message where possible (one write, no Nagle
stall); header names are lower-case bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import trio

from muxtrio.errors import ClientError, ErrorKind
from muxtrio.server.request_coding import decode_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


SEND_SLICE = 1 << 20


class ClientGone(Exception):
    """The client disconnected while we were reading its request."""


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ClientError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise ClientError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes")
            parts.append(chunk)
        if not message.get("more_body", False):
            body = b"".join(parts) if len(parts) != 1 else parts[0]
            return decode_body(body, header(scope, b"content-encoding"), limit)


async def send_whole(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole response. A body over :data:`SEND_SLICE` goes out in slices of that size, so the server's
    framing layer (which copies what it is given) never holds a second copy of a large body."""
    headers: Headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    size = len(body)
    if size > SEND_SLICE:
        view = memoryview(body)
        for start in range(0, size - SEND_SLICE, SEND_SLICE):
            part = bytes(view[start : start + SEND_SLICE])
            await send({"type": "http.response.body", "body": part, "more_body": True})
        body = bytes(view[(size - 1) // SEND_SLICE * SEND_SLICE :])
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away (ASGI ``http.disconnect``)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


DISCONNECT_EXTENSION = "muxtrio.disconnect"
"""The ASGI scope extension under which :mod:`muxtrio.server.listener` hands a request its :class:`DisconnectSignal`
(absent under another server: then :func:`watch_disconnect` runs as a task)."""


class DisconnectSignal:
    """Cancels the registered scope when the server learns the client went away, without a watcher task.

    The listener fires it from the connection's own reading task at the moment it queues ``http.disconnect`` for the
    app; a handler ``watch``es its cancel scope while it serves. Firing before ``watch`` cancels at ``watch``."""

    __slots__ = ("_scope", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._scope: trio.CancelScope | None = None

    def fire(self) -> None:
        self.gone = True
        if self._scope is not None:
            self._scope.cancel()

    def watch(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        if self.gone:
            scope.cancel()

    def unwatch(self) -> None:
        self._scope = None


def disconnect_signal(scope: Scope) -> DisconnectSignal | None:
    signal = scope.get("extensions", {}).get(DISCONNECT_EXTENSION)
    return signal if isinstance(signal, DisconnectSignal) else None

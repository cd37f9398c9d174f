"""WebSocket entry point: the upgrade of an ASGI ``websocket`` scope, refused with an HTTP error or handed to the
endpoint's connection — OpenAI Responses WebSocket mode (``/v1/responses``, :mod:`muxtrio.server.ws_responses`) or
muxtrio's multiplexed protocol (``/v1/ws``, :mod:`muxtrio.server.ws_mux`), both built on
:mod:`muxtrio.server.ws_connection`.

Per connection: one nursery. Its parent task reads the socket; one writer task owns ``send`` and drains a bounded
channel of whole messages; every generation is a task in the same nursery, around ``Engine.stream``. When the client
goes away the reader returns and the nursery is cancelled, which closes every upstream response of that connection
at once.

Invariants:
- Auth is the HTTP one (``auth.check``: ``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key`` or ``?key=`` on
  the upgrade request); a refused upgrade is an HTTP 401/403/404/503 with a JSON error body (ASGI WebSocket denial
  response), or a plain close where the server lacks that extension. Managed client keys are refused on this
  transport. Keys are never logged.
- The caller passes in what a connection needs (the configuration and engine it is pinned to for its whole life,
  the key gate, observability): this module never imports :mod:`muxtrio.server.app`.
- Keepalive: WebSocket ping/pong is the server's job (Hypercorn answers pings; it sends its own every
  ``websocket_ping_interval`` when set). No application-level pings: a Responses client must not see unknown events.

Imports: server, engine, codecs and config; never :mod:`muxtrio.client`, the library on the other end.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from muxtrio.codecs.base import Format
from muxtrio.codecs.registry import get_codec
from muxtrio.config import Config
from muxtrio.engine.engine import Engine
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.keys.gate import KeyGate
from muxtrio.server import auth
from muxtrio.server.handlers import RequestLog, new_request_id
from muxtrio.server.http import Receive, Scope, Send
from muxtrio.server.observe import Observability
from muxtrio.server.ws_connection import Connection, error_json, log
from muxtrio.server.ws_mux import MUX_PATH, MuxConnection
from muxtrio.server.ws_responses import RESPONSES_PATH, ResponsesConnection


async def serve_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    config: Config,
    engine: Engine | None,
    ready: Callable[[], bool],
    keys: KeyGate,
    observe: Observability,
) -> None:
    """Serve one WebSocket connection (an ASGI ``websocket`` scope) with ``config`` and ``engine`` (hot reload: the
    socket keeps them until it closes); ``ready`` says whether the gateway serves (not starting or stopping)."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    path = str(scope.get("path", "")).rstrip("/")
    fmt = Format.OPENAI_RESPONSES if path == RESPONSES_PATH else None
    try:
        if path not in (RESPONSES_PATH, MUX_PATH):
            raise ClientError(ErrorKind.NOT_FOUND, f"no WebSocket endpoint at {path or '/'}")
        keys.refuse_client_key(auth.presented_key(scope), "on the WebSocket transport")
        auth.check(config, scope)
        if engine is None or not ready():
            raise MuxError(ErrorKind.UNAVAILABLE, "the gateway is starting or stopping")
    except MuxError as err:
        await _reject(scope, send, err, fmt, path)
        return
    await send({"type": "websocket.accept"})
    connection: Connection
    if path == RESPONSES_PATH:
        connection = ResponsesConnection(engine, receive, send, config.max_request_bytes)
    else:
        connection = MuxConnection(engine, receive, send, config.max_request_bytes)
    connection.observe = observe
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

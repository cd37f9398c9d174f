"""The ASGI application: lifespan (owns the Engine), the route table, auth, and error shapes per client format.

Routes (see ``docs/http.md``): OpenAI ``/v1/chat/completions``, ``/v1/completions``, ``/v1/responses``
(+ ``/input_tokens``), ``/v1/models[/{id}]``; Anthropic ``/v1/messages`` (+ ``/count_tokens``), ``/v1/models`` in
Anthropic's shape when ``anthropic-version`` is sent; Gemini ``/v1beta/models[/{m}]`` and
``/v1beta/models/{m}:generateContent|streamGenerateContent|countTokens`` (also under ``/v1/``); Ollama ``/api/chat``,
``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/version``, ``/api/ps``; ``/`` and ``/api/hello`` (no key,
Claude Code's probe), ``/healthz``,
``/metrics``; WebSocket ``/v1/responses`` and ``/v1/ws``. ``/v1/models[/{id}]`` answers in Gemini's shape when the
request carries ``x-goog-api-key`` or ``x-goog-api-client`` (google-genai's default ``api_version`` is ``v1``).
``HEAD`` is answered wherever ``GET`` is, without the body.
``/dashboard`` serves the operator page's static files, without a key (:mod:`muxtrio.server.dashboard`).

Request ids: a client's ``x-request-id`` (1-128 token characters) is the request's id, else a new one; it is
returned in ``x-request-id``, logged, and sent to the provider through :data:`muxtrio.upstream.client.REQUEST_ID`.

Invariants: every error reaches the client in the error shape of the format its path belongs to, with the right
status, its text scrubbed of secrets (:mod:`muxtrio.redact`); an unexpected exception is logged with its traceback
and answered as a 500 in that shape, never with the traceback; ``/healthz`` answers 200 only once the engine is ready
to route.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx2
import orjson
import trio

from muxtrio import logring
from muxtrio.codecs.base import Format, RequestHints
from muxtrio.codecs.registry import get_codec
from muxtrio.config import Config, config_secrets
from muxtrio.engine.engine import Engine
from muxtrio.engine.retry import error_class
from muxtrio.engine.routing import ModelEntry, Router
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.keys.gate import KeyGate, KeyIdentity
from muxtrio.keys.prices import request_cost
from muxtrio.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from muxtrio.redact import Scrubber, scrub_error
from muxtrio.requestlog import RECORDER, RequestRecorder
from muxtrio.server import auth, client_keys, dashboard, models
from muxtrio.server.compression import compressing_send
from muxtrio.server.handlers import Generation, RequestLog, internal_error, request_id_for, send_error
from muxtrio.server.http import ClientGone, Message, Receive, Scope, Send, header, read_body, send_whole
from muxtrio.server.management import PREFIX as MANAGEMENT_PREFIX
from muxtrio.server.management import Management
from muxtrio.server.observe import Observability
from muxtrio.server.reload import Live, Reloader
from muxtrio.server.websocket import serve_websocket
from muxtrio.state.store import CLIENT_KEYS_TOPIC
from muxtrio.upstream.client import REQUEST_ID

log = logging.getLogger("muxtrio.server")

@dataclass(frozen=True, slots=True)
class Route:
    method: str
    format: Format
    kind: str  # generate | count | list | get | tags | show | version | ps | health | metrics | root
    hints: RequestHints = field(default_factory=RequestHints)
    model: str | None = None


GEMINI_ACTIONS = {
    "generateContent": (False, None, "generate"),
    "streamGenerateContent": (True, None, "generate"),
    "countTokens": (False, "count_tokens", "count"),
}

_FIXED: dict[str, tuple[str, Format, str, RequestHints]] = {
    "/v1/chat/completions": ("POST", Format.OPENAI_CHAT, "generate", RequestHints()),
    "/v1/completions": ("POST", Format.OPENAI_CHAT, "generate", RequestHints(endpoint="completions")),
    "/v1/responses": ("POST", Format.OPENAI_RESPONSES, "generate", RequestHints()),
    "/v1/responses/input_tokens": ("POST", Format.OPENAI_RESPONSES, "count", RequestHints(endpoint="count_tokens")),
    "/v1/messages": ("POST", Format.ANTHROPIC, "generate", RequestHints()),
    "/v1/messages/count_tokens": ("POST", Format.ANTHROPIC, "count", RequestHints(endpoint="count_tokens")),
    "/api/chat": ("POST", Format.OLLAMA, "generate", RequestHints(endpoint="chat")),
    "/api/generate": ("POST", Format.OLLAMA, "generate", RequestHints(endpoint="generate")),
    "/api/tags": ("GET", Format.OLLAMA, "tags", RequestHints()),
    "/api/show": ("POST", Format.OLLAMA, "show", RequestHints()),
    "/api/version": ("GET", Format.OLLAMA, "version", RequestHints()),
    "/api/ps": ("GET", Format.OLLAMA, "ps", RequestHints()),
    "/": ("GET", Format.OPENAI_CHAT, "root", RequestHints()),
    # Claude Code's connection probe (a HEAD at start-up; its connectivity check wants a GET 200 there).
    "/api/hello": ("GET", Format.ANTHROPIC, "root", RequestHints()),
    "/healthz": ("GET", Format.OPENAI_CHAT, "health", RequestHints()),
    "/metrics": ("GET", Format.OPENAI_CHAT, "metrics", RequestHints()),
}


def path_format(path: str, scope: Scope) -> Format:
    """The client format a path belongs to, for its error shape."""
    if path.startswith("/v1/messages"):
        return Format.ANTHROPIC
    if path.startswith("/v1beta/") or ":generateContent" in path or ":streamGenerateContent" in path:
        return Format.GEMINI
    if path.startswith("/api/"):
        return Format.OLLAMA
    if path.startswith("/v1/responses"):
        return Format.OPENAI_RESPONSES
    if path.startswith("/v1/models"):
        if header(scope, b"anthropic-version") is not None:
            return Format.ANTHROPIC
        if header(scope, b"x-goog-api-key") is not None or header(scope, b"x-goog-api-client") is not None:
            return Format.GEMINI  # google-genai's default api_version is v1
    return Format.OPENAI_CHAT


def match(method: str, path: str, scope: Scope) -> Route:
    """The route for a request, or a 404/405 ClientError. ``HEAD`` matches wherever ``GET`` does."""
    if method == "HEAD":
        return _head(match("GET", path, scope))
    fixed = _FIXED.get(path.rstrip("/") or "/")
    if fixed is not None:
        want, fmt, kind, hints = fixed
        if method != want:
            raise ClientError(ErrorKind.METHOD_NOT_ALLOWED, f"method {method} not allowed on {path}; use {want}")
        return Route(method, fmt, kind, hints)
    for prefix in ("/v1beta/models/", "/v1/models/"):
        if path.startswith(prefix) and len(path) > len(prefix):
            rest = path[len(prefix) :]  # ASGI's path is percent-decoded once already: never decode it again
            model, sep, action = rest.rpartition(":")
            if sep and action in GEMINI_ACTIONS:
                if method != "POST":
                    raise ClientError(ErrorKind.METHOD_NOT_ALLOWED, f"method {method} not allowed on {path}")
                stream, endpoint, kind = GEMINI_ACTIONS[action]
                if stream and _query(scope).get("alt") != "sse" and _query(scope).get("$alt") != "sse":
                    endpoint = "json-array"
                return Route(method, Format.GEMINI, kind, RequestHints(model=model, stream=stream, endpoint=endpoint))
            if method != "GET":
                raise ClientError(ErrorKind.METHOD_NOT_ALLOWED, f"method {method} not allowed on {path}")
            fmt = Format.GEMINI if prefix == "/v1beta/models/" else path_format(path, scope)
            return Route(method, fmt, "get", model=rest)
    if path.rstrip("/") in ("/v1beta/models", "/v1/models"):
        if method != "GET":
            raise ClientError(ErrorKind.METHOD_NOT_ALLOWED, f"method {method} not allowed on {path}")
        fmt = Format.GEMINI if path.startswith("/v1beta") else path_format(path, scope)
        return Route(method, fmt, "list")
    raise ClientError(ErrorKind.NOT_FOUND, f"no route for {method} {path}")


def _head(route: Route) -> Route:
    return Route("HEAD", route.format, route.kind, route.hints, route.model)


def _without_body(send: Send) -> Send:
    """``send`` for a HEAD request: the GET response's status and headers, no body bytes."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return send_head


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


class MuxApp:
    """``MuxApp(config)`` is the ASGI app; its lifespan opens the Engine. ``transports`` replace provider networks
    (tests and embedding)."""

    def __init__(self, config: Config, *, transports: dict[str, httpx2.AsyncBaseTransport] | None = None) -> None:
        self.transports = transports
        self.ready = False
        self._initial_scrubber = Scrubber(config_secrets(config))
        self.observe = Observability(config, known_models(config), self._initial_scrubber)
        self.keys = KeyGate(config)
        self.reloader = Reloader(config, transports=transports, metrics=self.observe.metrics)
        self.reloader.on_swap.append(self._swapped)
        self.reloader.on_record.append(lambda record: self.observe.metrics.reloads.labels(record.result).inc())
        self.management = Management(self)

    # The live state: a request pins it once (``reloader.acquire``); these read the newest one.
    @property
    def config(self) -> Config:
        live = self.reloader.live
        return live.config if live is not None else self.reloader.initial

    @property
    def engine(self) -> Engine | None:
        live = self.reloader.live
        return live.engine if live is not None else None

    @property
    def scrubber(self) -> Scrubber:
        live = self.reloader.live
        return live.scrubber if live is not None else self._initial_scrubber

    def _swapped(self, live: Live) -> None:
        """A reload swapped the live state: the parts that outlive one engine follow it."""
        self.keys.config = live.config
        self.observe.scrubber = live.scrubber
        self.observe.engine = live.engine
        self._subscribe_key_changes(live.engine)

    async def _publish_key_change(self, key_id: str) -> None:
        engine = self.engine
        if engine is not None:
            await engine.state.publish(CLIENT_KEYS_TOPIC, key_id.encode())

    def _subscribe_key_changes(self, engine: Engine | None) -> None:
        if engine is not None:
            engine.state.subscribe(CLIENT_KEYS_TOPIC, lambda _key_id: self.keys.refresh_now())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function on purpose: ASGI servers (Hypercorn's ``serve``) tell ASGI from WSGI apps by that.
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            live = self.reloader.acquire() if self.ready else None
            config = live.config if live is not None else self.config
            engine = live.engine if live is not None else self.engine
            try:
                await serve_websocket(
                    scope, receive, send, config=config, engine=engine, ready=lambda: self.ready, keys=self.keys,
                    observe=self.observe,
                )
            finally:
                if live is not None:
                    await self.reloader.release(live)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        logring.install()
        try:
            async with self.observe.running(), trio.open_nursery() as nursery:
                await nursery.start(self.reloader.run)  # the engine (and each one a reload brings)
                # A key changed on any node (revoked, rotated, new limits) is reloaded on every node at once; the
                # engine of the moment carries the shared state (a reload re-subscribes in _swapped).
                self.keys.on_change = self._publish_key_change
                self._subscribe_key_changes(self.engine)
                await nursery.start(self.keys.run)
                self.observe.engine = self.engine
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown: hypercorn sends it after open streams drained
                self.ready = False
                nursery.cancel_scope.cancel()
                await self.keys.close()
        except Exception as exc:
            log.exception("engine failed to start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        fmt = path_format(path, scope)
        entry = RequestLog(method, path, fmt.value, request_id_for(header(scope, b"x-request-id")))
        request_id = REQUEST_ID.set(entry.request_id)
        recorder: RequestRecorder | None = None
        recording = None
        if method == "HEAD":
            send = _without_body(send)
        else:
            send = compressing_send(send, scope, self.config.compression)
        self.observe.begin()
        live: Live | None = None
        try:
            if dashboard.is_dashboard(path):
                entry.kind = "dashboard"
                await dashboard.serve(method, path, send)
                entry.status = 200
                return
            if path == client_keys.PREFIX or path.startswith(client_keys.PREFIX + "/"):
                entry.kind = "management"
                entry.status = await client_keys.serve(self.keys, scope, receive, send)
                return
            if path == MANAGEMENT_PREFIX or path.startswith(MANAGEMENT_PREFIX + "/"):
                entry.kind = "management"
                entry.status = await self.management.handle(scope, receive, send)
                return
            live = self.reloader.acquire() if self.ready else None  # this request's config and engine
            route = match(method, path, scope)
            fmt = route.format
            entry.format = fmt.value
            entry.kind = route.kind
            if route.kind == "health":
                await self._health(send)
                return
            if route.kind == "root":
                await send_whole(send, 200, b"muxtrio is running", b"text/plain; charset=utf-8")
                return
            if route.kind == "metrics":
                await self._metrics(scope, send, entry)
                return
            if route.kind in ("generate", "count"):
                recorder = self.observe.recorder()
                recording = RECORDER.set(recorder)
            identity = await self.keys.identify(auth.presented_key(scope))
            if identity is None:
                auth.check(live.config if live is not None else self.config, scope)
            else:
                entry.client_key, entry.key_id, entry.key_name = identity, identity.id, identity.name
            await self._dispatch(live, route, scope, receive, send, entry)
        except ClientGone:
            entry.status = 499
            entry.error_class = "client_closed"
        except MuxError as err:
            scrub_error(err, live.scrubber if live is not None else self.scrubber)
            entry.error = err.message
            entry.error_class = error_class(err)
            await send_error(send, get_codec(fmt), err, entry.request_id, entry)
        except trio.Cancelled:
            entry.status = entry.status or 499
            raise
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            await send_error(send, get_codec(fmt), internal_error(), entry.request_id, entry)
        finally:
            REQUEST_ID.reset(request_id)
            if recording is not None:
                RECORDER.reset(recording)
            prices = (live.config if live is not None else self.config).prices
            if entry.usage is not None and prices:
                served = entry.meta.model if entry.meta is not None else None
                entry.cost = request_cost(prices, served, entry.model, entry.usage)
            if entry.kind not in ("health", "root"):
                self.observe.end(entry, recorder, _headers_of(scope))
            else:
                self.observe.metrics.active_requests.dec()
            if entry.status != 0 or entry.error:
                entry.emit()
            if live is not None:
                await self.reloader.release(live)

    async def _health(self, send: Send) -> None:
        if self.ready:
            await send_whole(send, 200, b'{"status":"ok"}')
        else:
            await send_whole(send, 503, b'{"status":"starting"}')

    def _engine(self) -> Engine:
        if self.engine is None or not self.ready:
            raise MuxError(ErrorKind.UNAVAILABLE, "the gateway is starting or stopping")
        return self.engine

    async def _dispatch(
        self, live: Live | None, route: Route, scope: Scope, receive: Receive, send: Send, entry: RequestLog
    ) -> None:
        if live is None:
            raise MuxError(ErrorKind.UNAVAILABLE, "the gateway is starting or stopping")
        engine = live.engine
        if route.kind in ("generate", "count"):
            generation = Generation(
                live.config, engine, route.format, route.hints, entry, streams=self.observe.metrics.open_streams,
                keys=self.keys,
            )
            await generation.run(scope, receive, send)
            return
        entries = _visible(engine.router.models(), entry.client_key)
        entry.status = 200
        if route.kind == "list":
            await send_whole(send, 200, _listing(route.format, entries))
        elif route.kind == "get":
            found = _find(entries, route.model or "", engine)
            await send_whole(send, 200, _one(route.format, found))
        elif route.kind == "tags":
            await send_whole(send, 200, models.ollama_tags(entries))
        elif route.kind == "show":
            body = await read_body(receive, scope, live.config.max_request_bytes)
            name = _show_name(body)
            await send_whole(send, 200, models.ollama_show(_find(entries, name, engine)))
        elif route.kind == "version":
            server = (b"server", b"ollama/" + models.OLLAMA_VERSION.encode())
            await send_whole(send, 200, models.ollama_version(), extra=[server])
        elif route.kind == "ps":
            await send_whole(send, 200, models.ollama_ps())

    async def _metrics(self, scope: Scope, send: Send, entry: RequestLog) -> None:
        """Prometheus text for the whole server (``?format=json``: this worker's engine statistics, the JSON
        snapshot of earlier releases). Loopback scrapers need no key unless ``metrics.require-key``; others need a
        gateway key."""
        if not self.config.metrics.enabled:
            raise ClientError(ErrorKind.NOT_FOUND, "metrics are disabled (metrics.enabled: false)")
        if self.config.metrics.require_key or not auth.is_loopback(scope):
            auth.check(self.config, scope)
        engine = self._engine()
        entry.status = 200
        if _query(scope).get("format") == "json":
            await send_whole(send, 200, orjson.dumps(engine.statistics(), default=str))
            return
        self.observe.refresh()
        body = await trio.to_thread.run_sync(self.observe.metrics.render)
        await send_whole(send, 200, body, METRICS_CONTENT_TYPE.encode())


def known_models(config: Config) -> set[str]:
    """The model names the configuration gives (models, aliases, fallbacks): the only ones a metric label takes."""
    names = {entry.id for entry in Router(config).models()}
    names.update(config.aliases)
    names.update(config.fallbacks)
    for chain in config.fallbacks.values():
        names.update(chain)
    return names


def _headers_of(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]


def _visible(entries: list[ModelEntry], identity: KeyIdentity | None) -> list[ModelEntry]:
    """The models a client key may use (every model for the flat keys)."""
    if identity is None or identity.key.access.unrestricted:
        return entries
    return [entry for entry in entries if identity.key.access.names(entry.id)]


def _show_name(body: bytes) -> str:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise ClientError(ErrorKind.INVALID_REQUEST, "request body is not valid JSON") from None
    name = data.get("model") or data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise ClientError(ErrorKind.INVALID_REQUEST, "missing field 'model'", param="model")
    return name


def _find(entries: list[ModelEntry], model: str, engine: Engine) -> ModelEntry:
    name = model.removeprefix("models/")
    for entry in entries:
        if entry.id == name:
            return entry
    deployments = engine.router.resolve(name)
    if deployments:
        return ModelEntry(name, deployments[0].provider.name, str(deployments[0].provider.type))
    raise ClientError(ErrorKind.NOT_FOUND, f"model {name!r} not found", param="model")


def _listing(fmt: Format, entries: list[ModelEntry]) -> bytes:
    if fmt is Format.ANTHROPIC:
        return models.anthropic_list(entries)
    if fmt is Format.GEMINI:
        return models.gemini_list(entries)
    return models.openai_list(entries)


def _one(fmt: Format, entry: ModelEntry) -> bytes:
    if fmt is Format.ANTHROPIC:
        return orjson.dumps(models.anthropic_model(entry))
    if fmt is Format.GEMINI:
        return orjson.dumps(models.gemini_model(entry))
    return orjson.dumps(models.openai_model(entry))

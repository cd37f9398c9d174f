"""A gateway started from a config *file* (so it can hot-reload) plus gated streaming fake providers, all on
127.0.0.1 inside the test's trio run; and a small management-API client.

``GatedProvider`` is an OpenAI-compatible provider whose streams send ``<name>:start`` at once and the rest only
after :meth:`GatedProvider.release` — so a test can hold any number of streams open across a reload and then see
which provider finished each one. Its non-streaming answer is ``<name>:whole``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from muxtrio.config import load_config
from muxtrio.server.app import MuxApp

MANAGEMENT_KEY = "mgmt-test-key-0123456789"
CLIENT_KEY = "client-key-0001"



async def serve_lifespan(receive: Any, send: Any) -> None:
    """A fake provider's ASGI lifespan: ready at once, done at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI http scope."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body

class GatedProvider:
    """An OpenAI-compatible fake on a loopback port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = ""
        self.gate = trio.Event()
        self.open_streams = 0
        self.requests = 0
        self.keys_seen: list[str] = []

    def release(self) -> None:
        self.gate.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.requests += 1
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        self.keys_seen.append(auth.removeprefix("Bearer "))
        request = orjson.loads(body)
        model = request.get("model", "m")
        if not request.get("stream"):
            answer = {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"{self.name}:whole"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": orjson.dumps(answer)})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        self.open_streams += 1
        try:
            await send({"type": "http.response.body", "body": _chunk(model, f"{self.name}:start"), "more_body": True})
            await self.gate.wait()
            tail = _chunk(model, ":end") + _chunk(model, None, finish=True) + b"data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            self.open_streams -= 1


def _chunk(model: str, content: str | None, *, finish: bool = False) -> bytes:
    delta = {} if content is None else {"role": "assistant", "content": content}
    chunk = {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if finish else None}],
    }  # fmt: skip
    if finish:
        chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _serve_app(nursery: trio.Nursery, app: Any) -> str:
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    binds: list[str] = await nursery.start(serve, app, hc)
    return binds[0]


@asynccontextmanager
async def fake_providers(*names: str) -> AsyncIterator[dict[str, GatedProvider]]:
    async with trio.open_nursery() as nursery:
        fakes = {name: GatedProvider(name) for name in names}
        for fake in fakes.values():
            fake.url = await _serve_app(nursery, fake)
        try:
            yield fakes
        finally:
            for fake in fakes.values():
                fake.release()
            nursery.cancel_scope.cancel()


def provider_yaml(name: str, url: str, key: str, models: tuple[str, ...] = ("m",)) -> str:
    lines = [f"  - type: openai\n    name: {name}\n    base-url: {url}/v1\n    api-keys: [{key}]\n    models:\n"]
    lines += [f"      - {{name: {model}}}\n" for model in models]
    return "".join(lines)


@dataclass
class Gateway:
    base: str
    path: str
    app: MuxApp

    def write(self, text: str) -> None:
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def read(self) -> str:
        with open(self.path, encoding="utf-8") as handle:
            return handle.read()


@asynccontextmanager
async def gateway(path: str, text: str) -> AsyncIterator[Gateway]:
    """Write ``text`` to ``path`` and serve a gateway loaded from it."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    app = MuxApp(load_config(path))
    async with trio.open_nursery() as nursery:
        base = await _serve_app(nursery, app)
        async with httpx2.AsyncClient() as client:
            for _ in range(500):  # hang guard: startup takes milliseconds
                if (await client.get(base + "/healthz")).status_code == 200:
                    break
                await trio.sleep(0.01)
        try:
            yield Gateway(base, path, app)
        finally:
            nursery.cancel_scope.cancel()


class Admin:
    """The management API through httpx2, with the test's management key."""

    def __init__(self, client: httpx2.AsyncClient, base: str, key: str = MANAGEMENT_KEY) -> None:
        self.client = client
        self.base = base + "/v1/management"
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        return await self.client.request(method, self.base + path, headers=self.headers, **kwargs)

    async def data(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["data"]


def set_management_key(monkeypatch: Any, key: str = MANAGEMENT_KEY) -> None:
    monkeypatch.setenv("MUXTRIO_MANAGEMENT_KEY", key)
    for name in ("LLM_MUX_MANAGEMENT_KEY", "MUXTRIO_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert os.environ["MUXTRIO_MANAGEMENT_KEY"] == key

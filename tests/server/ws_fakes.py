"""Test harness for the WebSocket endpoints: the real ASGI app under Hypercorn's trio server on loopback, and an
in-process OpenAI-compatible provider (an httpx2 transport) that can answer with a tool call, stream slowly, stall,
or fail, and records what it was asked and whether the gateway closed each response body.

The provider picks its behaviour from the *upstream model name* (so one provider plays every scenario):
- ``tools``: a ``get_weather`` tool call when the request offers tools and the last message is not a tool result;
  after the result, the text ``sunny in <city>`` (the city read back from the call's arguments);
- ``words``: ``count`` words (``w0 w1 ...``), each in its own chunk;
- ``endless``: words until the gateway stops reading (for backpressure and cancellation);
- ``gated``: two words, then waits for :attr:`FakeProvider.gate` before finishing;
- ``fail``: a 400 invalid-request error before any byte;
- ``cut``: three words, then the connection dies (a truncated stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from muxtrio.config import Config, ModelConfig, ProviderConfig, ProviderType
from muxtrio.server.app import MuxApp

KEY = "sk-mux-test-key-0001"


@dataclass
class Seen:
    model: str
    body: dict[str, Any]
    closed: trio.Event = field(default_factory=trio.Event)
    sent: int = 0  # chunks the gateway pulled from this response


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _usage(model: str, prompt: int, completion: int) -> bytes:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes], seen: Seen) -> None:
        self._chunks = chunks
        self._seen = seen

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self._seen.sent += 1
            yield chunk

    async def aclose(self) -> None:
        self._seen.closed.set()


class FakeProvider(httpx2.AsyncBaseTransport):
    def __init__(self, count: int = 5) -> None:
        self.count = count
        self.seen: list[Seen] = []
        self.gate = trio.Event()
        self.started = trio.Event()  # set when a request arrives

    def requests_for(self, model: str) -> list[Seen]:
        return [s for s in self.seen if s.model == model]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(await request.aread())
        model = str(body["model"])
        seen = Seen(model, body)
        self.seen.append(seen)
        self.started.set()
        if model == "fail":
            error = {"error": {"message": "bad things in the prompt", "type": "invalid_request_error",
                               "param": None, "code": None}}
            return httpx2.Response(400, headers={"content-type": "application/json"}, content=orjson.dumps(error))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               stream=_Body(self._stream(model, body), seen))

    async def _stream(self, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        yield _chunk(model, {"role": "assistant", "content": ""})
        if model == "tools":
            async for chunk in self._tools(model, body):
                yield chunk
            return
        n = 0
        while model == "endless" or n < (2 if model == "gated" else self.count):
            await trio.sleep(0)
            if model == "cut" and n == 3:
                raise httpx2.RemoteProtocolError("peer closed connection without sending complete message")
            yield _chunk(model, {"content": f"w{n} "})
            n += 1
        if model == "gated":
            await self.gate.wait()
        yield _chunk(model, {}, "stop")
        yield _usage(model, 7, n)
        yield b"data: [DONE]\n\n"

    async def _tools(self, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if body.get("tools") and last.get("role") != "tool":
            call = {"index": 0, "id": "call_w1", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}
            yield _chunk(model, {"tool_calls": [call]})
            for piece in ('{"city": ', '"Paris"}'):
                yield _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield _chunk(model, {}, "tool_calls")
            yield _usage(model, 11, 9)
        else:
            city = "nowhere"
            for message in messages:
                for call in message.get("tool_calls") or []:
                    city = orjson.loads(call["function"]["arguments"]).get("city", city)
            yield _chunk(model, {"content": f"sunny in {city}"})
            yield _chunk(model, {}, "stop")
            yield _usage(model, 13, 3)
        yield b"data: [DONE]\n\n"


def gateway_config(**kw: Any) -> Config:
    """The built-in echo model plus the fake provider (``fake``), whose aliases are its scenario names."""
    fake = ProviderConfig(
        type=ProviderType.OPENAI,
        name="fake",
        base_url="http://fake.test/v1",
        models=tuple(ModelConfig(name=m, alias=m) for m in ("tools", "words", "endless", "gated", "fail", "cut")),
    )
    base: dict[str, Any] = {"providers": (fake,), "api_keys": (KEY,), "request_retry": 0}
    base.update(kw)
    return Config(**base)


@dataclass
class Gateway:
    base: str  # http://127.0.0.1:PORT
    app: MuxApp
    fake: FakeProvider
    stopping: trio.Event = field(default_factory=trio.Event)

    def stop(self) -> None:
        """Shut the server down (open connections are dropped after Hypercorn's graceful timeout)."""
        self.stopping.set()

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://", 1)


@asynccontextmanager
async def running_gateway(
    config: Config | None = None, fake: FakeProvider | None = None, **hypercorn: Any
) -> AsyncIterator[Gateway]:
    """Serve ``MuxApp`` on 127.0.0.1 (port 0) inside this context; stop it (and every connection) on exit."""
    fake = fake or FakeProvider()
    app = MuxApp(config or gateway_config(), transports={"fake": fake})
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 0.1
    for key, value in hypercorn.items():
        setattr(hc, key, value)
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(app, hc, shutdown_trigger=stopping.wait, task_status=task_status)  # type: ignore[arg-type]
        )
        try:
            yield Gateway(binds[0], app, fake, stopping)
        finally:
            stopping.set()
            nursery.cancel_scope.deadline = trio.current_time() + 5

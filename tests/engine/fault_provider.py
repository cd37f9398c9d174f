"""An in-process, fault-injecting OpenAI-compatible provider (an httpx2 transport) for engine tests.

Faults are chosen by the *upstream model name* the engine sends, so one provider can play every scenario:
``ok``, ``429`` (no hint), ``429-ra<N>`` (Retry-After N s), ``500-once``, ``503`` (always), ``reset`` (connection
reset before headers), ``silent`` (never answers), ``slow<N>`` (first token after N s), ``cut<N>`` (connection
dies after N tokens), ``stall<N>`` (stops after N tokens, connection open), ``malformed<N>`` (garbage after N
tokens), ``noconnect`` (connect timeout),
``noterm<N>`` (clean EOF after N tokens without finish or [DONE]), ``ctx`` (400 context length),
``filter`` (400 content filter), ``sig`` (400 rejecting reasoning signatures, first request only),
``down<N>`` (503 for the first N requests, then OK), ``big<N>`` (N KB of tokens), ``refuse`` / ``refuse<N>`` (401
quoting the key it got, always / for the first N requests), ``noaccess`` (403 about the model), ``gone`` (404 model
not found), ``alt<N>`` (a different answer from word N on, for diverging regenerations).

It uses only trio primitives, so it runs under ``MockClock(autojump_threshold=0)``. It records every request
(time, model, messages) and whether each response body was closed by the client (``closed``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson
import trio

WORDS = ["alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta "]


@dataclass
class Seen:
    time: float
    model: str
    body: dict[str, Any]
    closed: trio.Event = field(default_factory=trio.Event)
    sent_tokens: int = 0


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def usage_chunk(model: str, prompt: int, completion: int) -> bytes:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def error_response(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                   type_: str = "invalid_request_error") -> httpx2.Response:
    body = orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})
    return httpx2.Response(status, headers={"content-type": "application/json", **(headers or {})}, content=body)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, gen: AsyncIterator[bytes], seen: Seen) -> None:
        self._gen = gen
        self._seen = seen

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._gen:
            yield part

    async def aclose(self) -> None:
        self._seen.closed.set()


class FaultProvider(httpx2.AsyncBaseTransport):
    def __init__(self, tokens: int = 6, pace: float = 0.0) -> None:
        self.tokens = tokens
        self.pace = pace
        self.seen: list[Seen] = []
        self.counts: dict[str, int] = {}

    def requests_for(self, model: str) -> list[Seen]:
        return [s for s in self.seen if s.model == model]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(await request.aread())
        model = body["model"]
        seen = Seen(trio.current_time(), model, body)
        self.seen.append(seen)
        n = self.counts[model] = self.counts.get(model, 0) + 1
        name, arg = _split(model)
        if name == "refuse" and (arg is None or n <= arg):
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return error_response(401, f"Incorrect API key provided: {key}.", "invalid_api_key")
        if name == "noaccess":
            return error_response(403, f"Project does not have access to model `{model}`", type_="permission_error")
        if name == "gone":
            return error_response(404, f"The model `{model}` does not exist", "model_not_found")
        if name == "429":
            return error_response(429, "rate limited", "rate_limit_exceeded", type_="requests")
        if name == "429-ra":
            return error_response(429, "rate limited", "rate_limit_exceeded", {"retry-after": str(arg)})
        if name == "500-once" and n == 1:
            return error_response(500, "boom", type_="server_error")
        if name == "503" or (name == "down" and n <= (arg or 0)):
            return error_response(503, "unavailable", type_="server_error")
        if name == "reset":
            raise httpx2.ReadError("connection reset by peer")
        if name == "noconnect":
            raise httpx2.ConnectTimeout("timed out connecting")
        if name == "silent":
            await trio.sleep_forever()
        if name == "ctx":
            return error_response(400, "This model's maximum context length is 8192 tokens", "context_length_exceeded")
        if name == "sig" and n == 1:
            return error_response(400, "messages.1.content.0: Invalid `signature` in `thinking` block")
        if name == "filter":
            return error_response(400, "content policy", "content_filter")
        if not body.get("stream"):
            return self._whole(model, body)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               stream=_Body(self._stream(model, name, arg, seen), seen))

    def _whole(self, model: str, body: dict[str, Any]) -> httpx2.Response:
        text = "".join(WORDS[i % len(WORDS)] for i in range(self.tokens))
        answer = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 5, "completion_tokens": self.tokens, "total_tokens": 5 + self.tokens}}
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=orjson.dumps(answer))

    async def _stream(self, model: str, name: str, arg: int | None, seen: Seen) -> AsyncIterator[bytes]:
        if name == "slow":
            await trio.sleep(arg or 0)
        total = self.tokens
        if name == "big":
            total = (arg or 1) * 1024 // 6
        messages = seen.body.get("messages") or []
        start = 0
        if messages and messages[-1].get("role") == "assistant":
            # A prefill: continue after the words already given, as a real model would.
            start = len(str(messages[-1].get("content") or "").split())
            name, arg = "ok", None
        yield chunk(model, {"role": "assistant", "content": ""})
        for i in range(start, total):
            if name in ("cut", "stall", "malformed", "noterm") and i == arg:
                if name == "cut":
                    raise httpx2.RemoteProtocolError("peer closed connection without sending complete message")
                if name == "stall":
                    await trio.sleep_forever()
                if name == "malformed":
                    yield b"data: {not json\n\n"
                return
            if self.pace:
                await trio.sleep(self.pace)
            seen.sent_tokens += 1
            word = "omega " if name == "alt" and i >= (arg or 0) else WORDS[i % len(WORDS)]
            yield chunk(model, {"content": word})
        yield chunk(model, {}, "stop")
        yield usage_chunk(model, 5, total - start)
        yield b"data: [DONE]\n\n"


_NAME = re.compile(r"^(429-ra|500-once|[a-z0-9]+?)(\d+)?$")


def _split(model: str) -> tuple[str, int | None]:
    base = model.split("/")[-1]
    for fixed in ("500-once", "429", "503"):
        if base == fixed:
            return fixed, None
    m = _NAME.match(base)
    if not m:
        return base, None
    return m.group(1), int(m.group(2)) if m.group(2) else None

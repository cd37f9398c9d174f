"""The bytes on the wire between the gateway and a client, read raw: response headers as the real APIs send them,
each format's stream framing rules, the Gemini JSON-array stream dialect, Ollama streaming by default, and SSE
keepalive pings while a provider is silent (with every SDK still reading the stream correctly).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import orjson
import pytest
import trio

from tests.e2e import clients
from tests.e2e.checks import validate_stream, validate_whole
from tests.e2e.clients import PER_CLIENT, PROMPT, TOOL_NAME, TOOL_SCHEMA, Answer, raw_client
from tests.e2e.conftest import CLIENT_KEY, PER_UPSTREAM, Stack, run_sync
from tests.e2e.fakes import script_text

KEEPALIVE_S = 0.02
PAUSE_S = 0.25  # how long a held provider stays silent in the keepalive tests (many keepalive intervals)
READ_GUARD_S = 20.0  # hang guard for raw reads


def _request(fmt: str, model: str, *, stream: bool = True, think: bool = False) -> tuple[str, dict[str, Any]]:
    """A raw client request in ``fmt`` (with the get_weather tool, and thinking on when ``think``)."""
    messages = [{"role": "user", "content": PROMPT}]
    function = {"name": TOOL_NAME, "description": "Current weather in a city", "parameters": TOOL_SCHEMA}
    body: dict[str, Any]
    if fmt == "openai-chat":
        body = {"model": model, "messages": messages, "tools": [{"type": "function", "function": function}]}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        if think:
            body["reasoning_effort"] = "medium"
        return "/v1/chat/completions", body
    if fmt == "openai-responses":
        body = {"model": model, "input": PROMPT, "stream": stream, "tools": [{"type": "function", **function}]}
        if think:
            body["reasoning"] = {"effort": "medium", "summary": "auto"}
        return "/v1/responses", body
    if fmt == "anthropic":
        body = {"model": model, "max_tokens": 2048, "messages": messages, "stream": stream, "tools": [
            {"name": TOOL_NAME, "description": "Current weather in a city", "input_schema": TOOL_SCHEMA}]}
        if think:
            body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
        return "/v1/messages", body
    if fmt == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                "tools": [{"functionDeclarations": [function]}]}
        if think:
            body["generationConfig"] = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/{model}:{action}", body
    if fmt == "ollama":
        body = {"model": model, "messages": messages, "tools": [{"type": "function", "function": function}]}
        if not stream:
            body["stream"] = False  # no "stream" at all: Ollama streams by default
        if think:
            body["think"] = True
        return "/api/chat", body
    raise AssertionError(fmt)


@asynccontextmanager
async def _open(stack: Stack, fmt: str, model: str) -> AsyncIterator[httpx2.Response]:
    path, body = _request(fmt, model)
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    if fmt == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    async with raw_client(stack.url, headers=headers) as http:
        async with http.stream("POST", path, content=orjson.dumps(body)) as response:
            yield response


def _sse_events(raw: bytes, sep: bytes) -> list[list[tuple[str, str]]]:
    """SSE events as lists of (field, value), comments included as ("", text)."""
    events: list[list[tuple[str, str]]] = []
    for block in raw.split(sep):
        if not block.strip():
            continue
        lines: list[tuple[str, str]] = []
        for line in block.decode().splitlines():
            name, _, value = line.partition(":")
            lines.append((name, value.removeprefix(" ")))
        events.append(lines)
    return events


def check_framing(fmt: str, raw: bytes, upstream: str) -> str:
    """Assert ``fmt``'s stream framing rules on a whole stream body; returns the answer text it carries."""
    if fmt == "openai-chat":
        events = [e for e in _sse_events(raw, b"\n\n") if e[0][0] != ""]
        assert all(len(e) == 1 and e[0][0] == "data" for e in events), events
        assert events[-1] == [("data", "[DONE]")]
        chunks = [orjson.loads(e[0][1]) for e in events[:-1]]
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert len({c["id"] for c in chunks}) == 1
        finish = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0].get("finish_reason")]
        usage = [i for i, c in enumerate(chunks) if c.get("usage")]
        assert len(finish) == 1 and usage == [len(chunks) - 1] and finish[0] < usage[0]
        assert chunks[-1]["choices"] == []
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    if fmt == "openai-responses":
        events = [e for e in _sse_events(raw, b"\n\n") if e[0][0] != ""]
        data = []
        for event in events:
            assert [name for name, _ in event] == ["event", "data"], event
            payload = orjson.loads(event[1][1])
            assert payload["type"] == event[0][1]
            data.append(payload)
        assert [d["sequence_number"] for d in data] == list(range(len(data)))
        assert data[0]["type"] == "response.created" and data[-1]["type"] == "response.completed"
        assert b"[DONE]" not in raw
        return "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta")
    if fmt == "anthropic":
        events = [e for e in _sse_events(raw, b"\n\n") if e[0][0] != ""]
        data = []
        for event in events:
            assert [name for name, _ in event] == ["event", "data"], event
            payload = orjson.loads(event[1][1])
            assert payload["type"] == event[0][1]
            if payload["type"] != "ping":
                data.append(payload)
        types = [d["type"] for d in data]
        assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
        open_index: int | None = None
        next_index = 0
        for d in data[1:-2]:
            if d["type"] == "content_block_start":
                assert open_index is None and d["index"] == next_index
                open_index = d["index"]
            elif d["type"] == "content_block_delta":
                assert d["index"] == open_index
            elif d["type"] == "content_block_stop":
                assert d["index"] == open_index
                open_index, next_index = None, next_index + 1
            else:
                raise AssertionError(f"unexpected event inside the blocks: {d}")
        assert open_index is None and next_index >= 1
        return "".join(d["delta"].get("text", "") for d in data if d["type"] == "content_block_delta")
    if fmt == "gemini":
        assert raw.endswith(b"\r\n\r\n")
        events = _sse_events(raw, b"\r\n\r\n")
        assert all(len(e) == 1 and e[0][0] == "data" for e in events), events
        chunks = [orjson.loads(e[0][1]) for e in events]
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        assert "usageMetadata" in chunks[-1]
        return "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])
                       for p in cand.get("content", {}).get("parts", []) if not p.get("thought"))
    if fmt == "ollama":
        lines = [orjson.loads(line) for line in raw.split(b"\n") if line]
        assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
        assert lines[-1]["done_reason"] == "stop"
        return "".join(line["message"]["content"] for line in lines)
    raise AssertionError(fmt)


API_OF = {"openai-chat": "openai", "openai-responses": "responses", "anthropic": "anthropic", "gemini": "gemini",
          "ollama": "ollama"}
CONTENT_TYPES = {"openai-chat": "text/event-stream", "openai-responses": "text/event-stream",
                 "anthropic": "text/event-stream", "gemini": "text/event-stream", "ollama": "application/x-ndjson"}
FORMATS = pytest.mark.parametrize("fmt", list(CONTENT_TYPES), ids=[f"{f}-client" for f in CONTENT_TYPES])


@PER_UPSTREAM
@FORMATS
async def test_stream_headers_and_framing(stack: Stack, fmt: str, upstream: str) -> None:
    async with _open(stack, fmt, stack.model(upstream, "text")) as response:
        raw = await response.aread()
    assert response.status_code == 200, raw[:300]
    assert response.headers["content-type"].split(";")[0] == CONTENT_TYPES[fmt]
    assert response.headers.get("x-request-id")
    if CONTENT_TYPES[fmt] == "text/event-stream":
        assert response.headers.get("cache-control") == "no-cache"
    assert check_framing(fmt, raw, upstream) == script_text("text", upstream)


@PER_UPSTREAM
async def test_gemini_stream_without_alt_sse_is_a_json_array(stack: Stack, upstream: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    async with raw_client(stack.url, headers={"x-goog-api-key": CLIENT_KEY}) as http:
        response = await http.post(f"/v1beta/models/{stack.model(upstream, 'text')}:streamGenerateContent",
                                   content=orjson.dumps(body))
    assert response.status_code == 200
    chunks = orjson.loads(response.content)
    assert isinstance(chunks, list) and len(chunks) >= 2
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == script_text("text", upstream)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


@PER_UPSTREAM
@FORMATS
@pytest.mark.gateway_config(keepalive_interval=KEEPALIVE_S)
async def test_keepalive_pings_while_the_provider_is_silent(stack: Stack, fmt: str, upstream: str) -> None:
    """SSE formats whose SDKs ignore comments (OpenAI, Anthropic) get ``: ping`` comments while the provider holds
    its stream; Gemini (its SDK parses every line as JSON) and Ollama (NDJSON) get none. The stream is intact."""
    fake = stack.fake(upstream)
    raw = b""
    with trio.fail_after(READ_GUARD_S):
        async with _open(stack, fmt, stack.model(upstream, "hold")) as response:
            chunks = response.aiter_raw()
            async for chunk in chunks:
                raw += chunk
                if b"Hello " in raw:
                    break
            if fmt in ("openai-chat", "openai-responses", "anthropic"):
                while raw.count(b": ping") < 2:  # pings keep coming while the provider holds
                    raw += await anext(chunks)
            else:
                await trio.sleep(PAUSE_S)
            fake.release.set()
            async for chunk in chunks:
                raw += chunk
    pings = raw.count(b": ping")
    if fmt in ("gemini", "ollama"):
        assert pings == 0
    else:
        assert pings >= 2
    assert check_framing(fmt, raw, upstream) == script_text("hold", upstream)


@PER_CLIENT
@pytest.mark.gateway_config(keepalive_interval=KEEPALIVE_S)
async def test_sdks_read_streams_with_keepalives(stack: Stack, client: str) -> None:
    """Each SDK reads a stream during which the gateway sent keepalives, and gets the whole answer."""
    fake = stack.fake("anthropic")
    sdk = clients.make(client, stack.url, CLIENT_KEY)

    def on_chunk(answer: Answer) -> None:
        if answer.chunks == 1:
            time.sleep(PAUSE_S)  # the SDK stops reading; the provider is silent; keepalives pile up
            trio.from_thread.run_sync(fake.release.set)

    sdk.on_chunk = on_chunk
    answer = await run_sync(sdk.ask, stack.model("anthropic", "hold"), sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("hold", "anthropic")


@PER_UPSTREAM
@FORMATS
@pytest.mark.parametrize("behaviour", ["text", "think", "thinktool"])
async def test_gateway_output_validates_with_the_sdk_types(
    stack: Stack, fmt: str, upstream: str, behaviour: str
) -> None:
    """What the gateway sends each client format (whole and streamed; text, thinking, thinking + tool call) validates
    strictly against that format's SDK types, as the fakes' own output does (``test_fakes.py``)."""
    model = stack.model(upstream, behaviour)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "anthropic-version": "2023-06-01"}
    async with raw_client(stack.url, headers=headers) as http:
        path, body = _request(fmt, model, stream=False, think=behaviour != "text")
        whole = await http.post(path, content=orjson.dumps(body))
        path, body = _request(fmt, model, stream=True, think=behaviour != "text")
        streamed = await http.post(path, content=orjson.dumps(body))
    assert whole.status_code == streamed.status_code == 200, (whole.text, streamed.text)
    validate_whole(API_OF[fmt], orjson.loads(whole.content))
    assert validate_stream(API_OF[fmt], streamed.content) >= 1

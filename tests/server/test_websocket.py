"""The WebSocket endpoints against the real ASGI app under Hypercorn on loopback.

- ``/v1/responses`` (OpenAI Responses WebSocket mode) with the official ``openai`` SDK's ``responses.connect()`` (its
  sync client, in a worker thread) and with trio-websocket for what the SDK cannot send (lanes, malformed data).
- ``/v1/ws`` (the multiplexed protocol) with :mod:`muxtrio.client` and by hand with trio-websocket.

Flow-control and isolation tests assert ordering and bounded progress, never wall-clock thresholds; ``fail_after``
only guards against a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
import pytest
import trio
from openai import OpenAI
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Ping, RejectConnection
from wsproto.events import Request as WSRequest

import muxtrio.client
from muxtrio.client import ws_url
from muxtrio.codecs.ir_json import (
    event_from_json,
    event_to_json,
    request_from_json,
    request_to_json,
    usage_from_json,
    usage_to_json,
)
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.ir import (
    Effort,
    Event,
    File,
    Finish,
    FinishReason,
    Image,
    Message,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoningBlock,
    Request,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Sampling,
    Start,
    Text,
    TextDelta,
    Thinking,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    Usage,
    UsageUpdate,
)
from muxtrio.ir.request import Reasoning, RedactedReasoning
from tests.server.ws_fakes import KEY, Gateway, gateway_config, running_gateway

GUARD = 20  # seconds: a hang fails the test instead of blocking the suite
AUTH = [(b"authorization", b"Bearer " + KEY.encode())]
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")

R = TypeVar("R")

# openai 3.57's sync `responses.connect()` calls websockets' `connect()` as a function, which websockets >= 16 warns
# about; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with running_gateway() as gw:
        yield gw


async def in_thread(fn: Callable[[], R]) -> R:
    """Run a blocking SDK client in a worker thread while the gateway serves in this trio thread."""
    with trio.fail_after(GUARD):
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(GUARD):
        message = orjson.loads(await ws.get_message())
    assert isinstance(message, dict)
    return message


async def send(ws: WebSocketConnection, message: dict[str, Any] | str) -> None:
    await ws.send_message(message if isinstance(message, str) else orjson.dumps(message).decode())


async def until_terminal(ws: WebSocketConnection) -> list[dict[str, Any]]:
    events = []
    while True:
        event = await recv(ws)
        events.append(event)
        if event["type"] in TERMINAL and (event["type"] != "error" or "sequence_number" not in event):
            return events


# =============================================================================================== Responses mode
def _sdk(gw: Gateway) -> OpenAI:
    return OpenAI(base_url=gw.base + "/v1", api_key=KEY, max_retries=0)


def _turn(conn: Any) -> list[Any]:
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            return events
    raise AssertionError("the connection closed before the turn ended")


async def test_sdk_multi_turn_with_previous_response_id(gateway: Gateway) -> None:
    def run() -> tuple[list[Any], list[Any]]:
        with _sdk(gateway).responses.connect() as conn:
            conn.response.create(model="words", input="alpha beta", instructions="be brief", store=False)
            first = _turn(conn)
            # Only the new input goes out: the gateway continues from the answer it remembers.
            conn.response.create(model="words", input="gamma", previous_response_id=first[-1].response.id)
            return first, _turn(conn)

    first, second = await in_thread(run)
    types = [e.type for e in first]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [e.sequence_number for e in first] == list(range(len(first)))  # as over SSE
    done = first[-1].response
    assert done.output_text == "w0 w1 w2 w3 w4 " and done.instructions == "be brief"
    assert done.usage.input_tokens == 7 and done.usage.output_tokens == 5
    assert second[-1].type == "response.completed"
    assert second[-1].response.previous_response_id == done.id
    assert second[-1].response.id != done.id
    history = gateway.fake.requests_for("words")[1].body["messages"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "alpha beta"),
        ("assistant", "w0 w1 w2 w3 w4 "),
        ("user", "gamma"),
    ]
    # Instructions belong to their turn (OpenAI does not carry them over): turn 2 sent none, so none went upstream.
    assert gateway.fake.requests_for("words")[0].body["messages"][0] == {"role": "system", "content": "be brief"}


async def test_sdk_tool_call_round_trip(gateway: Gateway) -> None:
    def run() -> tuple[list[Any], list[Any]]:
        with _sdk(gateway).responses.connect() as conn:
            conn.response.create(model="tools", input="weather in Paris?", tools=[WEATHER_TOOL])  # type: ignore[list-item]
            first = _turn(conn)
            call = first[-1].response.output[-1]
            output = {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}
            conn.response.create(
                model="tools", previous_response_id=first[-1].response.id, input=[output], tools=[WEATHER_TOOL]  # type: ignore[list-item]
            )
            return first, _turn(conn)

    first, second = await in_thread(run)
    call = first[-1].response.output[-1]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_w1"
    assert call.arguments == '{"city": "Paris"}'
    assert "response.function_call_arguments.delta" in [e.type for e in first]
    assert second[-1].type == "response.completed" and second[-1].response.output_text == "sunny in Paris"
    body = gateway.fake.requests_for("tools")[1].body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_w1"
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_w1", "content": "18C, sunny"}


async def test_sdk_error_turns_leave_the_socket_usable(gateway: Gateway) -> None:
    def run() -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
        with _sdk(gateway).responses.connect() as conn:
            conn.response.create(model="fail", input="x")
            upstream = _turn(conn)
            conn.response.create(model="words", input="x", previous_response_id="resp_unknown")
            unknown = _turn(conn)
            conn.response.create(model="no-such-model", input="x")
            model = _turn(conn)
            conn.send_raw("{not json")
            malformed = _turn(conn)
            conn.response.create(model="words", input="still there?")
            return upstream, unknown, model, malformed, _turn(conn)

    upstream, unknown, model, malformed, ok = await in_thread(run)
    for events, status in ((upstream, 400), (unknown, 400), (model, 404), (malformed, 400)):
        assert [e.type for e in events] == ["error"]  # nothing started: a lone error event, as OpenAI sends
        assert events[0].status == status
    assert upstream[0].error.message == "bad things in the prompt"
    assert unknown[0].error.code == "previous_response_not_found"
    assert unknown[0].error.param == "previous_response_id"
    assert ok[-1].type == "response.completed" and ok[-1].response.output_text == "w0 w1 w2 w3 w4 "


async def test_responses_cut_stream_ends_with_error_and_failed_never_completed(gateway: Gateway) -> None:
    async with open_websocket_url(gateway.ws + "/v1/responses", extra_headers=AUTH) as ws:
        await send(ws, {"type": "response.create", "model": "cut", "input": "x"})
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "response.failed":
            events.append(await recv(ws))
        types = [e["type"] for e in events]
        assert "response.output_text.delta" in types and "response.completed" not in types
        assert types[-2:] == ["error", "response.failed"]
        assert events[-1]["response"]["status"] == "failed"
        # The failed turn is not remembered.
        await send(ws, {"type": "response.create", "model": "words", "input": "x",
                        "previous_response_id": events[0]["response"]["id"]})
        assert (await recv(ws))["error"]["code"] == "previous_response_not_found"


async def test_responses_lanes_run_concurrently_and_echo_stream_id(gateway: Gateway) -> None:
    async with open_websocket_url(gateway.ws + "/v1/responses", extra_headers=AUTH) as ws:
        await send(ws, {"type": "response.create", "stream_id": "slow", "model": "gated", "input": "x"})
        await send(ws, {"type": "response.create", "stream_id": "fast", "model": "words", "input": "y"})
        seen: list[dict[str, Any]] = []
        while not (seen and seen[-1]["type"] == "response.completed" and seen[-1]["stream_id"] == "fast"):
            seen.append(await recv(ws))
        assert all(e["stream_id"] in ("slow", "fast") for e in seen)
        # The stalled provider of lane "slow" did not hold lane "fast" back.
        assert not any(e["type"] == "response.completed" and e["stream_id"] == "slow" for e in seen)
        gateway.fake.gate.set()
        while not (seen[-1]["type"] == "response.completed" and seen[-1]["stream_id"] == "slow"):
            seen.append(await recv(ws))
        slow = [e for e in seen if e["stream_id"] == "slow"]
        assert [e["sequence_number"] for e in slow] == list(range(len(slow)))
        # A second turn on one lane waits for the first (FIFO per lane).
        gateway.fake.gate = trio.Event()
        await send(ws, {"type": "response.create", "stream_id": "one", "model": "gated", "input": "1"})
        await send(ws, {"type": "response.create", "stream_id": "one", "model": "words", "input": "2"})
        first = [await recv(ws) for _ in range(3)]
        gateway.fake.gate.set()
        rest = await until_terminal(ws)
        rest += await until_terminal(ws)
        completed = [e["response"]["model"] for e in first + rest if e["type"] == "response.completed"]
        assert completed == ["gated", "words"]


async def test_responses_warmup_with_generate_false(gateway: Gateway) -> None:
    async with open_websocket_url(gateway.ws + "/v1/responses", extra_headers=AUTH) as ws:
        await send(ws, {"type": "response.create", "model": "words", "input": "context", "generate": False})
        warm = await until_terminal(ws)
        assert [e["type"] for e in warm] == ["response.created", "response.in_progress", "response.completed"]
        assert warm[-1]["response"]["output"] == []
        assert gateway.fake.seen == []  # no generation
        await send(ws, {"type": "response.create", "model": "words", "input": "go",
                        "previous_response_id": warm[-1]["response"]["id"]})
        assert (await until_terminal(ws))[-1]["type"] == "response.completed"
        messages = gateway.fake.seen[0].body["messages"]
        assert [m["content"] for m in messages] == ["context", "go"]


async def test_responses_unsupported_client_events(gateway: Gateway) -> None:
    async with open_websocket_url(gateway.ws + "/v1/responses", extra_headers=AUTH) as ws:
        await send(ws, {"type": "response.steer", "previous_response_id": "resp_x", "input": []})
        steer = await recv(ws)
        assert steer["type"] == "error" and steer["error"]["code"] == "unsupported_parameter"
        await send(ws, {"type": "response.create", "model": "words", "input": "x", "background": True})
        assert (await recv(ws))["error"]["param"] == "background"
        await send(ws, [1, 2])  # type: ignore[arg-type]
        assert (await recv(ws))["status"] == 400


async def test_responses_upgrade_auth(gateway: Gateway) -> None:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(gateway.ws + "/v1/responses"):
            pass
    assert rejected.value.status_code == 401
    assert orjson.loads(rejected.value.body or b"")["error"]["code"] == "invalid_api_key"
    with pytest.raises(ConnectionRejected) as wrong:
        async with open_websocket_url(gateway.ws + "/v1/responses",
                                      extra_headers=[(b"authorization", b"Bearer sk-wrong")]):
            pass
    assert wrong.value.status_code == 401 and b"sk-wrong" not in (wrong.value.body or b"")
    async with open_websocket_url(gateway.ws + f"/v1/responses?key={KEY}") as ws:
        await send(ws, {"type": "response.create", "model": "words", "input": "x"})
        assert (await until_terminal(ws))[-1]["type"] == "response.completed"

    def sdk_bad_key() -> BaseException | None:
        try:
            with OpenAI(base_url=gateway.base + "/v1", api_key="sk-bad", max_retries=0).responses.connect():
                return None
        except Exception as exc:
            return exc

    error = await in_thread(sdk_bad_key)
    assert error is not None and "401" in str(error)


# =============================================================================================== /v1/ws
def _text_of(fmt: str, events: list[Any]) -> str:
    out = []
    for e in events:
        if fmt == "ir":
            out.append(e.text if isinstance(e, TextDelta) else "")
        elif fmt == "openai-chat":
            out.extend(c["delta"].get("content") or "" for c in e["choices"])
        elif fmt == "anthropic":
            out.append(e["delta"].get("text", "") if e["type"] == "content_block_delta" else "")
        elif fmt == "ollama":
            out.append(e["message"]["content"])
        elif fmt == "openai-responses":
            out.append(e["delta"] if e["type"] == "response.output_text.delta" else "")
        elif fmt == "gemini":
            out.extend(p.get("text", "") for c in e.get("candidates", []) for p in c["content"].get("parts", []))
    return "".join(out)


def _body(fmt: str, model: str, text: str) -> dict[str, Any]:
    if fmt == "ir":
        return {"model": model, "messages": [{"role": "user", "parts": [{"type": "text", "text": text}]}]}
    if fmt == "openai-responses":
        return {"model": model, "input": text}
    if fmt == "gemini":
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}  # the model is named outside the body
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if fmt == "anthropic":
        body["max_tokens"] = 64
    return body


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "one-event-per-message"])
async def test_client_hundred_concurrent_streams_across_formats_and_providers(gateway: Gateway, batch: bool) -> None:
    formats = ["openai-chat", "openai-responses", "anthropic", "gemini", "ollama", "ir"]
    results: dict[int, tuple[str, str, str, Usage | None, str | None]] = {}

    async def one(mux: muxtrio.client.Mux, i: int) -> None:
        fmt = formats[i % len(formats)]
        model = "muxtrio-echo" if i % 2 else "words"
        prompt = f"stream {i} says hello"
        model_kw = model if fmt == "gemini" else None
        async with mux.stream(fmt, _body(fmt, model, prompt), model=model_kw, window=8) as events:
            got = [event async for event in events]
        if fmt == "ir":
            assert isinstance(got[0], Start) and isinstance(got[-1], Finish)
        expected = prompt if model == "muxtrio-echo" else "w0 w1 w2 w3 w4 "
        results[i] = (fmt, expected, _text_of(fmt, got), events.usage, events.finish_reason)

    with trio.fail_after(GUARD):
        async with muxtrio.client.connect(gateway.ws + "/v1/ws", api_key=KEY, batch=batch) as mux, \
                trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, mux, i)
    assert len(results) == 100
    for fmt, expected, text, usage, finish in results.values():
        assert text == expected, fmt
        assert usage is not None and usage.output_tokens > 0 and finish == "stop"
    assert len(gateway.fake.seen) == 50
    assert {fmt for fmt, *_ in results.values()} == set(formats)


async def test_client_stalled_consumer_pauses_its_upstream_without_delaying_others() -> None:
    # A small per-stream pool so that "bounded" is visibly small: an unthrottled endless stream sends thousands.
    async with running_gateway(gateway_config(stream_buffer_bytes=1024)) as gw, \
            muxtrio.client.connect(gw.ws, api_key=KEY) as mux:
        with trio.fail_after(GUARD):
            async with mux.stream("openai-chat", _body("openai-chat", "endless", "x"), window=4) as stalled:
                await gw.fake.started.wait()
                endless = gw.fake.requests_for("endless")[0]
                # While nobody reads the stalled stream, 30 other streams run to completion on the same socket.
                async with trio.open_nursery() as nursery:
                    for i in range(30):
                        nursery.start_soon(_complete, mux, "ir" if i % 2 else "anthropic", "muxtrio-echo")
                paused_at = endless.sent
                assert paused_at < 60  # credit (4 events) + the engine's 1 KiB pool, not thousands
                assert not endless.closed.is_set() and not stalled.finished
                # Reading resumes it: credit flows back and the provider is read again.
                got = [await anext(stalled) for _ in range(40)]
                assert _text_of("openai-chat", got).startswith("w0 w1 w2")
                assert endless.sent > paused_at
            # Leaving the block early sent `cancel`: the provider's response is closed.
            await endless.closed.wait()


async def _complete(mux: muxtrio.client.Mux, fmt: str, model: str) -> None:
    async with mux.stream(fmt, _body(fmt, model, "quick one")) as events:
        assert _text_of(fmt, [e async for e in events]) == "quick one"


async def test_client_stalled_provider_does_not_delay_other_streams(gateway: Gateway) -> None:
    order: list[str] = []

    async def gated(mux: muxtrio.client.Mux) -> None:
        async with mux.stream("ir", _body("ir", "gated", "x")) as events:
            async for _ in events:
                pass
        order.append("gated")

    async def quick(mux: muxtrio.client.Mux, i: int) -> None:
        await _complete(mux, "openai-chat", "muxtrio-echo")
        order.append(f"quick{i}")

    with trio.fail_after(GUARD):
        async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gated, mux)
                await gateway.fake.started.wait()
                async with trio.open_nursery() as quick_ones:
                    for i in range(10):
                        quick_ones.start_soon(quick, mux, i)
                gateway.fake.gate.set()
    assert order[-1] == "gated" and len(order) == 11


async def test_client_cancel_reaches_the_provider(gateway: Gateway) -> None:
    with trio.fail_after(GUARD):
        async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
            async with mux.stream("openai-responses", _body("openai-responses", "endless", "x")) as events:
                async for event in events:
                    if event["type"] == "response.output_text.delta" and event["delta"] == "w2 ":
                        break
            await gateway.fake.requests_for("endless")[0].closed.wait()
            assert mux.active == 0
            # The connection is still good.
            await _complete(mux, "ollama", "muxtrio-echo")


async def test_client_task_cancelled_inside_a_stream_cancels_it(gateway: Gateway) -> None:
    with trio.fail_after(GUARD):
        async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
            with trio.move_on_after(0.2):
                async with mux.stream("ir", _body("ir", "endless", "x")) as events:
                    async for _ in events:
                        pass
            await gateway.fake.requests_for("endless")[0].closed.wait()


async def test_disconnect_cancels_every_upstream_of_the_connection(gateway: Gateway) -> None:
    with trio.fail_after(GUARD):
        async with open_websocket_url(gateway.ws + "/v1/ws", extra_headers=AUTH) as ws:
            for i in range(3):
                await send(ws, {"type": "request", "id": f"s{i}", "format": "ir", "body": _body("ir", "endless", "x")})
            while len(gateway.fake.seen) < 3:
                await recv(ws)
        for seen in gateway.fake.seen:
            await seen.closed.wait()


def _count(messages: list[dict[str, Any]]) -> int:
    return sum(len(m["data"]) if m["type"] == "events" else 1 for m in messages)


@pytest.mark.parametrize("batch", [False, True])
async def test_credit_window_is_respected(gateway: Gateway, batch: bool) -> None:
    async with open_websocket_url(gateway.ws + "/v1/ws", extra_headers=AUTH) as ws:
        await send(ws, {"type": "request", "id": "a", "format": "ir", "credit": 3, "batch": batch,
                        "body": _body("ir", "endless", "x")})

        async def sentinel(name: str) -> list[dict[str, Any]]:
            # A second stream's completion proves the first sent nothing more meanwhile (ordering, not time).
            await send(ws, {"type": "request", "id": name, "format": "ir", "body": _body("ir", "muxtrio-echo", "z")})
            got: list[dict[str, Any]] = []
            while not (got and got[-1]["type"] == "done" and got[-1]["id"] == name):
                got.append(await recv(ws))
            return [m for m in got if m["id"] == "a"]

        first = [await recv(ws)]
        while _count(first) < 3:
            first.append(await recv(ws))
        assert {m["id"] for m in first} == {"a"} and _count(first) == 3
        assert {m["type"] for m in first} == ({"events"} if batch else {"event"})
        start = first[0]["data"][0] if batch else first[0]["data"]
        assert start["type"] == "start"
        assert await sentinel("b") == []
        await send(ws, {"type": "credit", "id": "a", "events": 2})
        assert _count(await sentinel("c")) == 2
        await send(ws, {"type": "cancel", "id": "a"})
        await gateway.fake.requests_for("endless")[0].closed.wait()
        assert await sentinel("d") == []  # nothing for a cancelled stream, not even `done`


async def test_protocol_errors_keep_the_socket_open() -> None:
    async with running_gateway(gateway_config(max_request_bytes=4096)) as gw, \
            open_websocket_url(gw.ws + "/v1/ws", extra_headers=AUTH) as ws:

        async def error_for(message: dict[str, Any] | str) -> dict[str, Any]:
            await send(ws, message)
            reply = await recv(ws)
            assert reply["type"] == "error", reply
            return reply

        assert (await error_for("{nope"))["id"] is None
        assert (await error_for("[1]"))["error"]["kind"] == "invalid_request"
        assert (await error_for({"type": "bogus", "id": "q"}))["id"] == "q"
        assert (await error_for({"type": "request", "format": "ir", "body": {}}))["error"]["param"] == "id"
        unknown = await error_for({"type": "request", "id": "f", "format": "klingon", "body": {}})
        assert unknown["id"] == "f" and unknown["error"]["param"] == "format" and unknown["error"]["status"] == 400
        bad_body = await error_for({"type": "request", "id": "g", "format": "openai-chat", "body": {"model": "m"}})
        assert bad_body["id"] == "g" and bad_body["error"]["kind"] == "invalid_request"
        bad_ir = await error_for({"type": "request", "id": "h", "format": "ir", "body": {"model": "m", "mesages": []}})
        assert bad_ir["error"]["param"] == "body.mesages"
        bad_credit = await error_for({"type": "request", "id": "i", "format": "ir", "credit": 0, "body": {}})
        assert bad_credit["error"]["param"] == "credit"
        assert (await error_for({"type": "credit", "id": "x", "events": -1}))["error"]["param"] == "events"
        model = await error_for({"type": "request", "id": "j", "format": "ir", "body": _body("ir", "nope", "x")})
        assert model["error"]["kind"] == "not_found" and model["error"]["status"] == 404
        big = await error_for({"type": "request", "id": "k", "format": "ir", "body": _body("ir", "words", "x" * 5000)})
        assert big["id"] is None and big["error"]["kind"] == "request_too_large"
        # Cancel and credit for unknown ids are ignored: the next message we get is the valid request's.
        await send(ws, {"type": "cancel", "id": "ghost"})
        await send(ws, {"type": "credit", "id": "ghost", "events": 5})
        await send(ws, {"type": "request", "id": "ok", "format": "ollama", "body": _body("ollama", "words", "x")})
        replies = [await recv(ws)]
        while replies[-1]["type"] == "event":
            replies.append(await recv(ws))
        assert {m["id"] for m in replies} == {"ok"} and replies[-1]["type"] == "done"
        assert replies[-1]["usage"]["output_tokens"] == 5 and replies[-1]["finish_reason"] == "stop"
        assert replies[-2]["data"]["done"] is True  # the format's own final object comes before `done`


async def test_duplicate_active_id_is_refused(gateway: Gateway) -> None:
    async with open_websocket_url(gateway.ws + "/v1/ws", extra_headers=AUTH) as ws:
        request = {"type": "request", "id": "dup", "format": "ir", "credit": 1, "body": _body("ir", "endless", "x")}
        await send(ws, request)
        assert (await recv(ws))["type"] == "event"  # active, and out of credit
        await send(ws, request)
        reply = await recv(ws)
        assert reply["type"] == "error" and reply["error"]["param"] == "id"


async def test_upstream_error_and_cut_stream(gateway: Gateway) -> None:
    async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
        with pytest.raises(MuxError) as failed:
            async with mux.stream("openai-chat", _body("openai-chat", "fail", "x")) as events:
                [e async for e in events]
        assert failed.value.status == 400 and failed.value.message == "bad things in the prompt"
        got: list[Any] = []
        with pytest.raises(MuxError) as cut:
            async with mux.stream("anthropic", _body("anthropic", "cut", "x")) as events:
                async for event in events:
                    got.append(event)
        assert cut.value.kind is ErrorKind.UPSTREAM
        assert _text_of("anthropic", got) == "w0 w1 w2 " and events.usage is None  # never `done`
        assert "message_stop" not in [e["type"] for e in got]


async def test_client_connect_errors(gateway: Gateway) -> None:
    for key in (None, "sk-wrong"):
        with pytest.raises(MuxError) as refused:
            async with muxtrio.client.connect(gateway.ws, api_key=key):
                pass
        assert refused.value.status == 401 and refused.value.kind is ErrorKind.AUTHENTICATION
        assert "sk-wrong" not in str(refused.value)
    with pytest.raises(MuxError) as missing:
        async with muxtrio.client.connect(gateway.ws + "/v1/nothing", api_key=KEY):
            pass
    assert missing.value.status == 404
    async with muxtrio.client.connect(f"{gateway.base}/v1/ws?key={KEY}") as mux:
        await _complete(mux, "ir", "muxtrio-echo")


async def test_user_exception_inside_connect_is_raised_as_itself(gateway: Gateway) -> None:
    with pytest.raises(KeyError):
        async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
            async with mux.stream("ir", _body("ir", "endless", "x")) as events:
                await anext(events)
                raise KeyError("mine")
    await gateway.fake.requests_for("endless")[0].closed.wait()


async def test_lost_connection_fails_open_streams_loudly() -> None:
    async with running_gateway() as gw, muxtrio.client.connect(gw.ws, api_key=KEY) as mux:
        with pytest.raises(MuxError) as lost:
            async with mux.stream("ir", _body("ir", "gated", "x")) as events:
                assert isinstance(await anext(events), Start)
                gw.stop()
                with trio.fail_after(GUARD):
                    async for _ in events:
                        pass
        assert lost.value.kind is ErrorKind.UNAVAILABLE and events.usage is None
        with pytest.raises(MuxError):
            async with mux.stream("ir", _body("ir", "words", "x")):
                pass


async def _count_server_pings(gw: Gateway, wanted: int) -> int:
    """Open ``/v1/ws`` by hand with wsproto and count the server's pings (answering each) until ``wanted``."""
    host, port = gw.base.removeprefix("http://").rsplit(":", 1)
    connection = WSConnection(ConnectionType.CLIENT)
    pings = 0
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        headers = [(b"authorization", f"Bearer {KEY}".encode())]
        await stream.send_all(connection.send(WSRequest(host=f"{host}:{port}", target="/v1/ws", extra_headers=headers)))
        with trio.fail_after(GUARD):
            while pings < wanted:
                data = await stream.receive_some()
                assert data, f"the server closed the connection after {pings} ping(s)"
                connection.receive_data(data)
                for event in connection.events():
                    assert not isinstance(event, RejectConnection | CloseConnection), event
                    if isinstance(event, Ping):
                        pings += 1
                        await stream.send_all(connection.send(event.response()))
    return pings


async def test_the_server_sends_pings_and_the_client_answers_them() -> None:
    async with running_gateway(websocket_ping_interval=0.01) as gw:
        assert await _count_server_pings(gw, wanted=3) == 3
        async with muxtrio.client.connect(gw.ws, api_key=KEY) as mux:
            await trio.sleep(0.1)  # several server pings while idle, answered by the client's connection
            await _complete(mux, "openai-chat", "muxtrio-echo")


async def test_no_pings_without_a_ping_interval(gateway: Gateway) -> None:
    """The counter above can fail: without ``websocket_ping_interval`` the server stays silent."""
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(0.3):
            await _count_server_pings(gateway, wanted=1)


async def test_gemini_model_outside_the_body_is_required(gateway: Gateway) -> None:
    async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
        with pytest.raises(MuxError) as missing:
            async with mux.stream("gemini", _body("gemini", "", "hi")) as events:
                [e async for e in events]
        assert missing.value.status == 400 and missing.value.param == "model"
        async with mux.stream("gemini", _body("gemini", "", "hi there"), model="muxtrio-echo") as events:
            assert _text_of("gemini", [e async for e in events]) == "hi there"


async def test_ollama_generate_dialect_over_the_mux(gateway: Gateway) -> None:
    async with muxtrio.client.connect(gateway.ws, api_key=KEY) as mux:
        async with mux.stream("ollama", {"model": "muxtrio-echo", "prompt": "one two"}, endpoint="generate") as events:
            got = [e async for e in events]
    assert "".join(e["response"] for e in got) == "one two"


# =============================================================================================== "ir" JSON mapping
RICH = Request(
    model="m",
    messages=(
        Message(Role.USER, (Text("hi"), Image(url="https://x/y.png", detail="low"), File(file_id="f1"))),
        Message(Role.ASSISTANT, (Reasoning("think", signature="sig", id="rs1"), RedactedReasoning("opaque"),
                                 ToolCall("c1", "get", '{"a":1}', signature="ts"))),
        Message(Role.TOOL, (ToolResult("c1", (Text("ok"), Image(data="AAAA", mime_type="image/png")),
                                       name="get", is_error=True),)),
    ),
    system=(Text("sys"),),
    tools=(Tool("get", "gets", {"type": "object", "properties": {}}, strict=True),),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get"),
    parallel_tool_calls=False,
    sampling=Sampling(temperature=0.5, top_k=3, max_tokens=9, stop=("x",), seed=1),
    thinking=Thinking(enabled=True, budget_tokens=100, effort=Effort.HIGH, include_thoughts=True),
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, {"type": "object"}, "r", True),
    stream=True,
    include_usage=True,
    user="u",
    metadata={"k": "v"},
    service_tier="flex",
    previous_response_id="resp_1",
    extensions={"openai-responses": {"store": True}},
)

ALL_EVENTS: list[Event] = [
    Start("id1", "m"),
    TextDelta(0, "a"),
    ReasoningDelta(1, "b"),
    ReasoningSignature(1, "s"),
    RedactedReasoningBlock(2, "d"),
    ToolCallStart(3, "c", "n", "sig"),
    ToolCallStart(4, "c2", "n2"),
    ToolCallDelta(3, "{}"),
    ToolCallEnd(3),
    UsageUpdate(Usage(1, 2, 3, 4, 5)),
    Finish(FinishReason.STOP_SEQUENCE, "END"),
]


def test_ir_request_json_round_trip() -> None:
    wire = orjson.loads(orjson.dumps(request_to_json(RICH)))
    assert request_from_json(wire) == RICH
    assert wire["messages"][1]["parts"][2] == {"type": "tool_call", "id": "c1", "name": "get",
                                               "arguments": '{"a":1}', "signature": "ts"}
    minimal = request_from_json({"model": "m", "messages": [], "system": "be nice"})
    assert minimal.system == (Text("be nice"),) and minimal.stream is True


def test_ir_event_json_round_trip() -> None:
    for event in ALL_EVENTS:
        wire = orjson.loads(orjson.dumps(event_to_json(event)))
        assert event_from_json(wire) == event
        assert wire["type"] == muxtrio.client.EVENT_TAGS[type(event)]
    assert event_to_json(TextDelta(0, "a")) == {"type": "text_delta", "index": 0, "text": "a"}
    usage = usage_to_json(Usage(1, 2))
    assert usage["total_tokens"] == 3 and usage_from_json(usage) == Usage(1, 2)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "body.model"),
        ({"model": "m", "messages": [{"role": "robot", "parts": []}]}, "body.messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "user", "parts": [{"type": "video"}]}]},
            "body.messages[0].parts[0].type",
        ),
        ({"model": "m", "messages": [], "sampling": {"temperature": "hot"}}, "body.sampling.temperature"),
        ({"model": "m", "messages": [], "thinking": {"effort": "max"}}, "body.thinking.effort"),
        ({"model": "m", "messages": [], "tools": [{"name": "t", "parameters": []}]}, "body.tools[0].parameters"),
    ],
)
def test_ir_request_errors_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as err:
        request_from_json(body)
    assert err.value.param == param


def test_ws_url() -> None:
    assert ws_url("http://h:1") == "ws://h:1/v1/ws"
    assert ws_url("https://h/") == "wss://h/v1/ws"
    assert ws_url("ws://h:2/v1/ws?key=k") == "ws://h:2/v1/ws?key=k"
    with pytest.raises(ValueError):
        ws_url("ftp://h")


async def test_responses_system_input_items_carry_over_and_instructions_do_not(gateway: Gateway) -> None:
    """OpenAI carries every earlier input item over ``previous_response_id``, system/developer messages included;
    only ``instructions`` belong to their own turn. Codex CLI relies on it: its warm-up's only input item is its base
    developer message, and later turns send only what is new."""

    def developer(text: str) -> dict[str, Any]:
        return {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]}

    async with open_websocket_url(gateway.ws + "/v1/responses", extra_headers=AUTH) as ws:
        await send(ws, {"type": "response.create", "model": "words", "input": [developer("base rules")],
                        "generate": False})
        warm = await until_terminal(ws)
        await send(ws, {"type": "response.create", "model": "words", "instructions": "this turn only",
                        "previous_response_id": warm[-1]["response"]["id"],
                        "input": [developer("skills"), {"type": "message", "role": "user", "content": "go"}]})
        first = await until_terminal(ws)
        await send(ws, {"type": "response.create", "model": "words", "input": "again",
                        "previous_response_id": first[-1]["response"]["id"]})
        assert (await until_terminal(ws))[-1]["type"] == "response.completed"

    def system_text(body: dict[str, Any]) -> list[str]:
        return [p["text"] for m in body["messages"] if m["role"] == "system" for p in m["content"]]

    first_up, second_up = (s.body for s in gateway.fake.seen)
    assert system_text(first_up) == ["this turn only", "base rules", "skills"]
    assert system_text(second_up) == ["base rules", "skills"]
    assert [m["content"] for m in second_up["messages"] if m["role"] == "user"] == ["go", "again"]

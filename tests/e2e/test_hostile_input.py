"""Hostile client input through the real server: 400s in each endpoint's own shape (never a 500), connections that
close when HTTP says so, and an access log that records what was sent and cannot be forged.

- Integers beyond 64 bits and ``±1e308`` in max-tokens/seed fields, and nesting of 255 levels or more in tool
  schemas, on every generation/count endpoint: 400 in the route's error shape, nothing sent upstream, and the same on
  ``/v1/ws`` answers that stream with an error while the socket stays open.
- ``Connection: close`` and HTTP/1.0 on generation requests (whole and streamed): the server closes the socket after
  the answer; an idle keep-alive connection that served a generation is closed after ``keep-alive-timeout``.
- A streaming request that fails before its first byte is logged with the status it was answered with.
- Control characters in a model name (body or Gemini path, plain or ``provider/``-forced) are a 400, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from muxtrio.wire.jsonutil import MAX_DEPTH
from tests.e2e.clients import raw_client
from tests.e2e.conftest import CLIENT_KEY, Stack
from tests.e2e.endpoints import ENDPOINTS, IDS, MARKER, Endpoint, error_message, nested, with_raw

ENDPOINT = pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
GUARD_S = 20  # a hang fails the test instead of blocking the suite
HOSTILE_NUMBERS = {
    "int-beyond-64-bits": b"100000000000000000000000",
    "minus-1e308": b"-1e308",
    "1e300": b"1e300",
    "u64-overflow": b"18446744073709551616",
}


def _splice(body: dict[str, Any], where: tuple[str, ...], literal: bytes) -> bytes:
    """``body`` serialized with the raw JSON number ``literal`` at ``where`` (orjson cannot write it itself)."""
    return with_raw(_place(body, where, MARKER), literal)


def _place(body: dict[str, Any], where: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = dict(body)
    if len(where) == 1:
        out[where[0]] = value
    else:
        out[where[0]] = _place(dict(out.get(where[0], {})), where[1:], value)
    return out


async def _post(stack: Stack, endpoint: Endpoint, content: bytes) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}
    async with raw_client(stack.url, headers=headers) as http:
        response = await http.post(endpoint.path, content=content)
    return response.status_code, response.content


# Only the endpoints whose format has the field (count_tokens bodies have neither, Ollama's /api/show none...).
NUMBER_FIELDS = [
    pytest.param(endpoint, field, id=f"{endpoint.name}-{field}")
    for endpoint in ENDPOINTS
    for field in ("max_tokens", "seed")
    if (endpoint.max_tokens if field == "max_tokens" else endpoint.seed) is not None
]


@pytest.mark.parametrize(("endpoint", "field"), NUMBER_FIELDS)
@pytest.mark.parametrize("number", list(HOSTILE_NUMBERS), ids=list(HOSTILE_NUMBERS))
async def test_out_of_range_numbers_are_400_in_the_endpoint_shape(
    stack: Stack, endpoint: Endpoint, number: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    where = endpoint.max_tokens if field == "max_tokens" else endpoint.seed
    assert where is not None
    status, content = await _post(stack, endpoint, _splice(endpoint.body, where, HOSTILE_NUMBERS[number]))
    assert status == 400, content
    assert where[-1] in error_message(endpoint.shape, status, content) or "JSON" in content.decode()
    assert stack.all_requests() == []
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@ENDPOINT
@pytest.mark.parametrize("levels", [255, 256, 1000])
async def test_deep_nesting_is_400_in_the_endpoint_shape(
    stack: Stack, endpoint: Endpoint, levels: int, caplog: pytest.LogCaptureFixture
) -> None:
    status, content = await _post(stack, endpoint, with_raw(endpoint.with_tool_schema(MARKER), nested(levels)))
    assert status == 400, content
    assert "nested" in error_message(endpoint.shape, status, content)
    assert stack.all_requests() == []
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@ENDPOINT
async def test_nesting_up_to_the_limit_is_served(stack: Stack, endpoint: Endpoint) -> None:
    """The limit rejects only what cannot be re-encoded: a deep but allowed schema goes upstream."""
    body = with_raw(endpoint.with_tool_schema(MARKER), nested(MAX_DEPTH - 10))
    status, content = await _post(stack, endpoint, body)
    assert status == 200, content


async def test_ws_deep_message_is_an_error_for_that_stream_and_the_socket_stays_open(stack: Stack) -> None:
    url = stack.url.replace("http://", "ws://") + "/v1/ws"
    headers = [("authorization", f"Bearer {CLIENT_KEY}")]
    deep = {"model": "openai-text", "messages": [{"role": "user", "content": "hi"}], **_tool(MARKER)}
    big = {"model": "openai-text", "messages": [{"role": "user", "content": "hi"}]}
    with trio.fail_after(GUARD_S):
        async with open_websocket_url(url, extra_headers=headers) as ws:
            message = {"type": "request", "id": "deep", "format": "openai-chat", "body": deep}
            await ws.send_message(with_raw(message, nested(300)))
            answer = orjson.loads(await ws.get_message())
            assert (answer["type"], answer["id"]) == ("error", "deep"), answer
            assert "nested" in answer["error"]["message"]
            huge = orjson.dumps({"type": "request", "id": "huge", "format": "openai-chat", "body": big})
            await ws.send_message(huge.replace(b'"content":"hi"}]', b'"content":"hi"}],"max_tokens":1e300'))
            answer = orjson.loads(await ws.get_message())
            assert (answer["type"], answer["id"]) == ("error", "huge"), answer
            await ws.send_message(orjson.dumps({"type": "request", "id": "fine", "format": "openai-chat", "body": big}))
            kinds = []
            while not kinds or kinds[-1] not in ("done", "error"):
                message = orjson.loads(await ws.get_message())
                assert message["id"] == "fine", message
                kinds.append(message["type"])
            assert kinds[-1] == "done", kinds


def _tool(schema: Any) -> dict[str, Any]:
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}


# ------------------------------------------------------------------------------------------------ connection close
def _http_request(path: str, body: bytes, *, version: str = "1.1", close: bool = False) -> bytes:
    head = [
        f"POST {path} HTTP/{version}",
        "host: 127.0.0.1",
        f"authorization: Bearer {CLIENT_KEY}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if close:
        head.append("connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _served_then_closed(stack: Stack, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it; returns everything read."""
    host, port = stack.url.removeprefix("http://").split(":")
    received = b""
    with trio.fail_after(GUARD_S):  # a connection the server never closes fails here
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(request)
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


WHOLE = orjson.dumps({"model": "openai-text", "messages": [{"role": "user", "content": "hi"}]})
STREAMED = orjson.dumps({"model": "openai-text", "messages": [{"role": "user", "content": "hi"}], "stream": True})
UNKNOWN = orjson.dumps({"model": "nope", "messages": [{"role": "user", "content": "hi"}], "stream": True})


@pytest.mark.parametrize("body", [WHOLE, STREAMED, UNKNOWN], ids=["whole", "stream", "stream-404"])
@pytest.mark.parametrize("version", ["1.1-close", "1.0"])
async def test_generation_connection_closes_when_http_says_so(stack: Stack, body: bytes, version: str) -> None:
    if version == "1.0":
        request = _http_request("/v1/chat/completions", body, version="1.0")
    else:
        request = _http_request("/v1/chat/completions", body, close=True)
    received = await _served_then_closed(stack, request)
    status = 404 if body is UNKNOWN else 200
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:80]


@pytest.mark.gateway_config(keep_alive_timeout=0.3)
@pytest.mark.parametrize("body", [WHOLE, STREAMED], ids=["whole", "stream"])
async def test_idle_keep_alive_connection_is_closed_after_a_generation(stack: Stack, body: bytes) -> None:
    received = await _served_then_closed(stack, _http_request("/v1/chat/completions", body))
    assert received.startswith(b"HTTP/1.1 200 "), received[:80]


# ------------------------------------------------------------------------------------------------ access log status
async def test_stream_failing_before_its_first_byte_logs_the_status_sent(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"model": "dead-text", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with caplog.at_level(logging.INFO, logger="muxtrio.access"):
        async with raw_client(stack.url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
            response = await http.post("/v1/chat/completions", content=orjson.dumps(body))
        assert response.status_code >= 500, response.text
        with trio.fail_after(GUARD_S):  # the line is written just after the answer
            while not (lines := [r.getMessage() for r in caplog.records if r.name == "muxtrio.access"]):
                await trio.sleep(0.01)
    assert len(lines) == 1, lines
    assert f" status={response.status_code} " in lines[0], lines[0]


# ------------------------------------------------------------------------------------------------ model names
CONTROL_MODELS = ["gemini/text\x00", "gemini/te\r\nxt", "gemini://te\nxt", "openai/a\r\nb", "anthropic-text\x00",
                  "ollama/a\x1bb", "responses/a\nb"]  # fmt: skip


@ENDPOINT
@pytest.mark.parametrize("model", CONTROL_MODELS, ids=[repr(m) for m in CONTROL_MODELS])
async def test_control_characters_in_model_names_are_400(
    stack: Stack, endpoint: Endpoint, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    if endpoint.shape == "gemini":
        path = endpoint.path.replace("openai-text", quote(model, safe=""))
        body = orjson.dumps(endpoint.body)
    else:
        path, body = endpoint.path, orjson.dumps({**endpoint.body, "model": model})
    async with raw_client(stack.url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        response = await http.post(path, content=body)
    assert response.status_code == 400, response.text
    assert "model" in error_message(endpoint.shape, 400, response.content)
    assert stack.all_requests() == []
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

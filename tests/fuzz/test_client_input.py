"""Client-input fuzzing of every generation/count endpoint and ``/v1/ws`` against a real ``muxtrio serve`` process.

The process serves the built-in echo provider under the model name the endpoint table uses, so a well-formed body is
answered through the full path (client codec -> IR -> OpenAI Chat encoding -> echo upstream -> client encoder).

Inputs (Hypothesis, derandomized, a fixed number of examples): random bytes and random JSON; the valid body with one
field (at any depth) replaced by a value of another type; depth and size extremes; odd encodings (UTF-16, BOMs,
invalid UTF-8, lone surrogates, NUL and CRLF in strings and model names).

Invariant for every input: a 2xx answer, or a 4xx in the endpoint's own error shape; never a 5xx, never a hang (each
request has a deadline), and the server process keeps serving. At the end, the server's log holds no traceback and
no ERROR line.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.e2e.endpoints import ENDPOINTS, MARKER, MODEL, Endpoint, error_message, nested, with_raw
from tests.test_serve_hardening import KEY, Server, running

REQUEST_DEADLINE_S = 15.0
FUZZ = settings(
    max_examples=120,
    derandomize=True,  # the same inputs on every run: CI failures reproduce
    database=None,
    deadline=None,  # timing is the request deadline's job, not Hypothesis's
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
ECHO_CONFIG = f"providers:\n  - {{type: echo, name: fuzz, models: [{{name: muxtrio-echo, alias: {MODEL}}}]}}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("fuzz"), ECHO_CONFIG) as gateway:
        yield gateway
        gateway.proc.send_signal(signal.SIGTERM)
        lines = gateway.finish()
    assert gateway.proc.returncode == 0
    bad = [line for line in lines if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]
    assert bad == [], "the server logged errors:\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base, headers=HEADERS, timeout=REQUEST_DEADLINE_S) as client:
        yield client


def dumps(value: Any) -> bytes:
    """JSON text of ``value``; the standard library writes what orjson refuses (integers past 64 bits, lone
    surrogates as ``\\ud800`` escapes), which is exactly what a hostile client sends."""
    return json.dumps(value, separators=(",", ":")).encode()


def check(endpoint: Endpoint, response: httpx2.Response) -> None:
    """The invariant: a normal answer, or a 4xx in the endpoint's own error shape."""
    status = response.status_code
    assert status < 500, (endpoint.name, status, response.text[:500])
    if status >= 400:
        error_message(endpoint.shape, status, response.content)
    else:
        assert status == 200, (endpoint.name, status)


# ----------------------------------------------------------------------------------------------------- strategies
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ENDPOINT = st.sampled_from(ENDPOINTS)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (object keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
_CHAT_RICH = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tool_choice": "auto", "temperature": 0.5, "stop": ["x"], "stream_options": {"include_usage": True},
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}},
}
_RESPONSES_RICH = {
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ],
    "tools": [{"type": "function", "name": "f", "parameters": SCHEMA},
              {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g", "parameters": SCHEMA}]},
              {"type": "web_search"}],
    "reasoning": {"effort": "low"}, "text": {"format": {"type": "text"}}, "instructions": "be brief",
}
_MESSAGES_RICH = {
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": PNG}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"city": "P"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ],
    "tools": [{"name": "f", "input_schema": SCHEMA}, {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048,
}
_GEMINI_RICH = {
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"city": "P"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "sunny"}}}]},
    ],
    "tools": [{"functionDeclarations": [{"name": "f", "parameters": SCHEMA}]}, {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"temperature": 0.5, "responseMimeType": "application/json", "responseSchema": SCHEMA,
                         "thinkingConfig": {"thinkingBudget": 128}},
}
_OLLAMA_RICH = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "images": [PNG]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"city": "P"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "f"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
    "options": {"temperature": 0.5, "num_ctx": 4096}, "think": True, "keep_alive": "5m",
}  # fmt: skip
RICH: dict[str, dict[str, Any]] = {
    "chat": _CHAT_RICH, "chat-stream": _CHAT_RICH, "responses": _RESPONSES_RICH, "responses-count": _RESPONSES_RICH,
    "messages": _MESSAGES_RICH, "messages-count": _MESSAGES_RICH, "gemini": _GEMINI_RICH,
    "gemini-stream": _GEMINI_RICH, "gemini-count": _GEMINI_RICH, "ollama-chat": _OLLAMA_RICH,
}  # fmt: skip


def _rich_body(endpoint: Endpoint) -> dict[str, Any]:
    """A valid body using most of the endpoint's request features (tools, images, tool history, schemas)."""
    return {**endpoint.body, **RICH.get(endpoint.name, {})}


def _full_body(endpoint: Endpoint) -> dict[str, Any]:
    """The valid body plus optional fields for the fuzzer to corrupt: a tool (or format) schema and max-tokens."""
    body = endpoint.with_tool_schema({"type": "object", "properties": {"city": {"type": "string"}}})
    where = endpoint.max_tokens
    holder = body.setdefault(where[0], {}) if len(where) == 2 else body
    holder[where[-1]] = 16
    return body


@st.composite
def wrong_types(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    endpoint = draw(ENDPOINT)
    body = draw(st.sampled_from([_full_body(endpoint), _rich_body(endpoint)]))
    path = draw(st.sampled_from(_paths(body)))
    return endpoint, dumps(_replace(body, path, draw(JSON_VALUES)))


@st.composite
def random_json(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    endpoint = draw(ENDPOINT)
    value = draw(JSON_VALUES | st.dictionaries(st.sampled_from(sorted(_full_body(endpoint))), JSON_VALUES))
    return endpoint, dumps(value)


@st.composite
def random_bytes(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    endpoint = draw(ENDPOINT)
    valid = dumps(endpoint.body)
    cut = draw(st.integers(min_value=0, max_value=len(valid)))
    junk = draw(st.binary(max_size=64))
    return endpoint, draw(st.sampled_from([junk, valid[:cut], valid[:cut] + junk, junk + valid]))


ODD_STRINGS = [
    "\x00", "a\r\nb", "\ud800", "\udfff", "\ufeff", "\u2028", "é" * 10, "\U0001f600", "../../x#?y", "%2e%2e%2f",
]  # fmt: skip


@st.composite
def odd_encodings(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    endpoint = draw(ENDPOINT)
    body = _full_body(endpoint)
    kind = draw(st.sampled_from(["utf-16", "bom", "invalid-utf8", "escaped-surrogate", "odd-string", "odd-model"]))
    text = dumps(body)
    if kind == "utf-16":
        return endpoint, text.decode().encode("utf-16")
    if kind == "bom":
        return endpoint, b"\xef\xbb\xbf" + text
    if kind == "invalid-utf8":
        return endpoint, text.replace(b'"hi"', b'"h\xff\xfei"').replace(b'"hi"', b'"\xc3"')
    if kind == "escaped-surrogate":
        return endpoint, text.replace(b'"hi"', b'"\\ud800 \\udc00x \\u0000"')
    odd = draw(st.sampled_from(ODD_STRINGS))
    if kind == "odd-model" and "model" in body:
        return endpoint, dumps({**body, "model": MODEL + odd})
    path = draw(st.sampled_from([p for p in _paths(body) if isinstance(_get(body, p), str)]))
    return endpoint, dumps(_replace(body, path, odd))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def extremes(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    endpoint = draw(ENDPOINT)
    kind = draw(st.sampled_from(["deep-schema", "deep-array", "long-string", "many-items", "big-number"]))
    if kind == "deep-schema":
        levels = draw(st.sampled_from([199, 200, 201, 254, 255, 256, 1000, 5000]))
        return endpoint, with_raw(endpoint.with_tool_schema(MARKER), nested(levels))
    if kind == "deep-array":
        levels = draw(st.sampled_from([200, 255, 1024, 20_000]))
        field = draw(st.sampled_from(sorted(endpoint.body)))
        return endpoint, with_raw({**endpoint.body, field: MARKER}, b"[" * levels + b"]" * levels)
    if kind == "long-string":
        size = draw(st.sampled_from([10_000, 1_000_000]))
        return endpoint, dumps(_replace(endpoint.body, draw(st.sampled_from(_paths(endpoint.body))), "x" * size))
    if kind == "many-items":
        count = draw(st.sampled_from([1_000, 50_000]))
        field = draw(st.sampled_from(sorted(endpoint.body)))
        return endpoint, dumps({**endpoint.body, field: [0] * count})
    numbers = [b"1e400", b"-1e308", b"123456789012345678901234567890", b"-0", b"1E+2", b"0.0000001"]
    number = draw(st.sampled_from(numbers))
    return endpoint, with_raw(endpoint.with_value(endpoint.max_tokens, MARKER), number)


# ---------------------------------------------------------------------------------------------------------- tests
@FUZZ
@given(case=wrong_types())
def test_wrong_types_at_every_field(http: httpx2.Client, case: tuple[Endpoint, bytes]) -> None:
    endpoint, content = case
    check(endpoint, http.post(endpoint.path, content=content))


@FUZZ
@given(case=random_json())
def test_random_json(http: httpx2.Client, case: tuple[Endpoint, bytes]) -> None:
    endpoint, content = case
    check(endpoint, http.post(endpoint.path, content=content))


@FUZZ
@given(case=random_bytes())
def test_random_and_truncated_bytes(http: httpx2.Client, case: tuple[Endpoint, bytes]) -> None:
    endpoint, content = case
    check(endpoint, http.post(endpoint.path, content=content))


@FUZZ
@given(case=odd_encodings())
def test_odd_encodings(http: httpx2.Client, case: tuple[Endpoint, bytes]) -> None:
    endpoint, content = case
    check(endpoint, http.post(endpoint.path, content=content))


@settings(FUZZ, max_examples=60)
@given(case=extremes())
def test_depth_and_size_extremes(http: httpx2.Client, case: tuple[Endpoint, bytes]) -> None:
    endpoint, content = case
    check(endpoint, http.post(endpoint.path, content=content))


# ------------------------------------------------------------------------------------------------------------ /v1/ws
WS_MESSAGES = st.one_of(
    JSON_VALUES.map(orjson.dumps),
    st.binary(max_size=64),
    st.builds(
        lambda fmt, body, kind: dumps({"type": kind, "id": "fuzz", "format": fmt, "body": body}),
        st.sampled_from(["openai-chat", "openai-responses", "anthropic", "gemini", "ollama", "ir", "nope", 7]),
        JSON_VALUES,
        st.sampled_from(["request", "credit", "cancel", "other"]),
    ),
    st.sampled_from([nested(300), b"[" * 5000 + b"]" * 5000]).map(
        lambda deep: with_raw({"type": "request", "id": "fuzz", "format": "openai-chat", "body": MARKER}, deep)
    ),
)
VALID_WS = dumps(
    {"type": "request", "id": "ok", "format": "openai-chat", "body": {"model": MODEL, "messages": [{"role": "user",
                                                                                                "content": "hi"}]}}
)  # fmt: skip


@pytest.fixture(scope="module")
def ws(server: Server) -> Iterator[Any]:
    url = server.base.replace("http://", "ws://") + "/v1/ws"
    with connect(url, additional_headers={"authorization": f"Bearer {KEY}"}, open_timeout=REQUEST_DEADLINE_S) as socket:
        yield socket


@settings(FUZZ, max_examples=80)
@given(message=WS_MESSAGES)
def test_ws_messages_never_close_the_socket(ws: Any, message: bytes) -> None:
    ws.send(message)
    ws.send(VALID_WS)
    # Whatever the fuzzed message caused (an error, a stream of its own, nothing), the valid request that follows on
    # the same socket is answered to its end.
    while True:
        answer = orjson.loads(ws.recv(timeout=REQUEST_DEADLINE_S))
        if answer.get("id") == "ok" and answer["type"] in ("done", "error"):
            assert answer["type"] == "done", answer
            return
        if answer["type"] == "error" and answer.get("id") != "ok":
            assert isinstance(answer["error"]["message"], str)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.name in RICH], ids=lambda e: e.name)
def test_rich_bodies_are_served(http: httpx2.Client, endpoint: Endpoint) -> None:
    """The structured fuzzing starts from bodies the gateway serves, so mutations probe the parsers past the top."""
    response = http.post(endpoint.path, content=dumps(_rich_body(endpoint)))
    assert response.status_code == 200, response.text


def test_server_still_serves_after_the_fuzzing(http: httpx2.Client) -> None:
    endpoint = ENDPOINTS[0]
    response = http.post(endpoint.path, content=dumps(endpoint.body))
    assert response.status_code == 200, response.text

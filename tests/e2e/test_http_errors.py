"""HTTP error shapes through the real server, with a raw HTTP client: every error in its route's own format and
status, never a 500.

Per route family: unknown route 404, wrong method 405, malformed JSON 400 naming the problem, a missing required
field 400 naming the field, an unknown model 404 naming the model, a body over ``max_request_bytes`` 413. Shapes:
OpenAI (Chat and Responses) ``{"error": {"message", "type", ...}}``, Anthropic ``{"type": "error", "error": {"type",
"message"}}``, Gemini ``{"error": {"code", "message", "status"}}`` (google.rpc.Status), Ollama ``{"error": "..."}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
import pytest

from tests.e2e.clients import raw_client
from tests.e2e.conftest import CLIENT_KEY, Stack

MAX_REQUEST_BYTES = 4096


@dataclass(frozen=True)
class Family:
    name: str
    path: str  # the generation route
    body: dict[str, Any]  # a valid request body for model "openai-text"
    required: str  # a field the format requires, removed to test "missing field"
    unknown_route: str
    unknown_model_path: str | None = None  # Gemini names the model in the path

    def request(self, model: str = "openai-text") -> tuple[str, dict[str, Any]]:
        if self.unknown_model_path is not None and model != "openai-text":
            return self.unknown_model_path.format(model=model), dict(self.body)
        body = dict(self.body)
        if "model" in body:
            body["model"] = model
        return self.path, body


FAMILIES = [
    Family("openai-chat", "/v1/chat/completions",
           {"model": "openai-text", "messages": [{"role": "user", "content": "hi"}]}, "messages",
           "/v1/no-such-route"),
    Family("openai-responses", "/v1/responses", {"model": "openai-text", "input": "hi"}, "model",
           "/v1/responses/no/such/route"),
    Family("anthropic", "/v1/messages",
           {"model": "openai-text", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}, "messages",
           "/v1/messages/no-such-route"),
    Family("gemini", "/v1beta/models/openai-text:generateContent",
           {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, "contents", "/v1beta/no-such-route",
           unknown_model_path="/v1beta/models/{model}:generateContent"),
    Family("ollama", "/api/chat",
           {"model": "openai-text", "messages": [{"role": "user", "content": "hi"}], "stream": False}, "model",
           "/api/no-such-route"),
]  # fmt: skip
FAMILY = pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])

GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}


def assert_shape(family: Family, response: httpx2.Response, status: int) -> str:
    """The response has ``status`` and the family's error shape; returns its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = orjson.loads(response.content)
    if family.name.startswith("openai"):
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and error["type"]
        return str(error["message"])
    if family.name == "anthropic":
        assert body["type"] == "error"
        assert isinstance(body["error"]["type"], str) and body["error"]["type"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return str(body["error"]["message"])
    if family.name == "gemini":
        error = body["error"]
        assert error["code"] == status
        assert isinstance(error["status"], str) and error["status"].isupper()
        if status in GOOGLE_STATUS:
            assert error["status"] == GOOGLE_STATUS[status]
        assert isinstance(error["message"], str) and error["message"]
        return str(error["message"])
    assert family.name == "ollama"
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def client(stack: Stack) -> httpx2.AsyncClient:
    return raw_client(stack.url, headers={"authorization": f"Bearer {CLIENT_KEY}"})


@FAMILY
async def test_valid_request_is_served(stack: Stack, family: Family) -> None:
    """The baseline every error case below departs from."""
    path, body = family.request()
    async with client(stack) as http:
        response = await http.post(path, content=orjson.dumps(body))
    assert response.status_code == 200, response.text


@FAMILY
async def test_unknown_route_is_404(stack: Stack, family: Family) -> None:
    async with client(stack) as http:
        response = await http.post(family.unknown_route, content=b"{}")
    assert_shape(family, response, 404)


@FAMILY
async def test_wrong_method_is_405(stack: Stack, family: Family) -> None:
    async with client(stack) as http:
        response = await http.get(family.path)
    assert_shape(family, response, 405)


@FAMILY
async def test_malformed_json_is_400_naming_the_problem(stack: Stack, family: Family) -> None:
    async with client(stack) as http:
        response = await http.post(family.path, content=b'{"model": "openai-text", "messages": [')
    assert "json" in assert_shape(family, response, 400).lower()
    assert stack.all_requests() == []


@FAMILY
async def test_missing_required_field_is_400_naming_the_field(stack: Stack, family: Family) -> None:
    path, body = family.request()
    del body[family.required]
    async with client(stack) as http:
        response = await http.post(path, content=orjson.dumps(body))
    assert family.required in assert_shape(family, response, 400)
    assert stack.all_requests() == []


@FAMILY
async def test_unknown_model_is_404_naming_the_model(stack: Stack, family: Family) -> None:
    path, body = family.request("no-such-model")
    async with client(stack) as http:
        response = await http.post(path, content=orjson.dumps(body))
    message = assert_shape(family, response, 404)
    assert "no-such-model" in message
    assert "sk-" not in message and "127.0.0.1" not in message  # lists nothing secret
    assert stack.all_requests() == []


@FAMILY
@pytest.mark.gateway_config(max_request_bytes=MAX_REQUEST_BYTES)
async def test_body_over_the_limit_is_413(stack: Stack, family: Family) -> None:
    path, body = family.request()
    body = {**body, "padding": "x" * (2 * MAX_REQUEST_BYTES)}
    async with client(stack) as http:
        response = await http.post(path, content=orjson.dumps(body))
    assert_shape(family, response, 413)
    assert stack.all_requests() == []


@FAMILY
async def test_missing_client_key_is_401(stack: Stack, family: Family) -> None:
    path, body = family.request()
    async with raw_client(stack.url) as http:
        response = await http.post(path, content=orjson.dumps(body))
    assert_shape(family, response, 401)
    assert stack.all_requests() == []


KEY_CARRIERS = {
    "authorization": lambda key: ({"authorization": f"Bearer {key}"}, {}),
    "x-api-key": lambda key: ({"x-api-key": key}, {}),
    "x-goog-api-key": lambda key: ({"x-goog-api-key": key}, {}),
    "query-key": lambda key: ({}, {"key": key}),
}


@FAMILY
@pytest.mark.parametrize("carrier", list(KEY_CARRIERS))
async def test_client_key_is_read_from_every_carrier(stack: Stack, family: Family, carrier: str) -> None:
    """``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key`` and ``?key=`` all carry the gateway key; a
    wrong key in any of them is a 401 in the route's own shape."""
    path, body = family.request()
    async with raw_client(stack.url) as http:
        headers, params = KEY_CARRIERS[carrier](CLIENT_KEY)
        good = await http.post(path, content=orjson.dumps(body), headers=headers, params=params)
        headers, params = KEY_CARRIERS[carrier]("wrong-key")
        bad = await http.post(path, content=orjson.dumps(body), headers=headers, params=params)
    assert good.status_code == 200, good.text
    assert_shape(family, bad, 401)
    assert len(stack.requests("openai")) == 1


@pytest.mark.gateway_config(disable_auth=True)
async def test_disable_auth_serves_without_a_key(stack: Stack) -> None:
    family = FAMILIES[0]
    path, body = family.request()
    async with raw_client(stack.url) as http:
        response = await http.post(path, content=orjson.dumps(body))
    assert response.status_code == 200, response.text

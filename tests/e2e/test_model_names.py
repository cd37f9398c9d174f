"""Model names through the real server: they cannot steer provider URLs, forcing never widens a model list, and a
name no provider serves is a 404 that says why (issue 11 items 2-3, issue 12 item 14).

A second gateway runs next to the e2e stack's fake providers with providers that have *no* model list (``gem``,
``oai``, ``resp``, ``ant``, ``oll``: forcing ``gem/<anything>`` passes the name through to them, the path where a
name reaches a URL) and one with a list (``restricted``, serving ``allowed-model`` = upstream ``text`` only).
Hostile names go through every client endpoint with a raw HTTP client (the SDKs would refuse or re-encode some of
them); the fakes must see nothing, and the client a 400 in its own error shape naming the model field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import attrs
import httpx2
import openai
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

import muxtrio.client
from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType, default_config
from muxtrio.errors import MuxError
from tests.e2e.clients import openai_client, raw_client
from tests.e2e.conftest import CLIENT_KEY, Stack, provider_key, run_sync
from tests.e2e.test_http_errors import FAMILIES, Family, assert_shape
from tests.server.harness import serving

LISTLESS = ("gem", "oai", "resp", "ant", "oll")
# (provider type, fake kind, base-URL suffix, key) of each list-less provider
_LISTLESS_KINDS: dict[str, tuple[ProviderType, str, str, str | None]] = {
    "gem": (ProviderType.GEMINI, "gemini", "", provider_key("gemini")),
    "oai": (ProviderType.OPENAI, "openai", "/v1", provider_key("openai")),
    "resp": (ProviderType.OPENAI_RESPONSES, "openai", "/v1", provider_key("responses")),
    "ant": (ProviderType.ANTHROPIC, "anthropic", "", provider_key("anthropic")),
    "oll": (ProviderType.OLLAMA, "ollama", "", None),
}
# What each list-less provider's fake must see for a forced ``<provider>/text`` (nothing else, ever).
EXPECTED_PATHS = {
    "gem": {"/v1beta/models/text:generateContent", "/v1beta/models/text:streamGenerateContent",
            "/v1beta/models/text:countTokens"},
    "oai": {"/v1/chat/completions"},
    "resp": {"/v1/responses", "/v1/responses/input_tokens"},
    "ant": {"/v1/messages", "/v1/messages/count_tokens"},
    "oll": {"/api/chat"},
}  # fmt: skip

# The shapes of the report (each with {p} = a forced provider prefix), plus NUL, CRLF and escaped variants.
HOSTILE = (
    "{p}/../../v1beta/cachedContents#",
    "{p}://../../../steal#",
    "{p}/text?alt=evil",
    "{p}/text#frag",
    "{p}/..%2F..%2Fsteal",
    "{p}/%2E%2E/%2E%2E/steal",
    "{p}/%252E%252E%252Fsteal",
    "{p}/text%3Falt=evil",
    "{p}/..",
    "{p}/./text",
    "{p}/te\x00xt",
    "{p}/text\r\nx-injected: 1",
    "{p}/text\\..\\steal",
    "../../{p}/text",
)


@dataclass(frozen=True)
class Endpoint:
    """One client endpoint: which error family it answers in, and how a request names its model."""

    name: str
    family: str
    path: str  # ``{model}`` is replaced (percent-encoded) for Gemini, whose model is in the path
    body: dict[str, Any]

    def request(self, model: str, *, double_encode: bool = False) -> tuple[str, dict[str, Any]]:
        if "{model}" in self.path:
            segment = quote(model, safe="")
            if double_encode:
                segment = quote(segment, safe="")
            return self.path.format(model=segment), dict(self.body)
        return self.path, {**self.body, "model": model}


_CHAT = {"messages": [{"role": "user", "content": "hi"}]}
_GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
ENDPOINTS = [
    Endpoint("chat", "openai-chat", "/v1/chat/completions", _CHAT),
    Endpoint("chat-stream", "openai-chat", "/v1/chat/completions", {**_CHAT, "stream": True}),
    Endpoint("completions", "openai-chat", "/v1/completions", {"prompt": "hi"}),
    Endpoint("responses", "openai-responses", "/v1/responses", {"input": "hi"}),
    Endpoint("responses-stream", "openai-responses", "/v1/responses", {"input": "hi", "stream": True}),
    Endpoint("responses-count", "openai-responses", "/v1/responses/input_tokens", {"input": "hi"}),
    Endpoint("messages", "anthropic", "/v1/messages", {**_CHAT, "max_tokens": 16}),
    Endpoint("messages-stream", "anthropic", "/v1/messages", {**_CHAT, "max_tokens": 16, "stream": True}),
    Endpoint("messages-count", "anthropic", "/v1/messages/count_tokens", _CHAT),
    Endpoint("gemini", "gemini", "/v1beta/models/{model}:generateContent", _GEMINI),
    Endpoint("gemini-stream", "gemini", "/v1beta/models/{model}:streamGenerateContent?alt=sse", _GEMINI),
    Endpoint("gemini-v1", "gemini", "/v1/models/{model}:generateContent", _GEMINI),
    Endpoint("gemini-count", "gemini", "/v1beta/models/{model}:countTokens", _GEMINI),
    Endpoint("ollama-chat", "ollama", "/api/chat", {**_CHAT, "stream": False}),
    Endpoint("ollama-generate", "ollama", "/api/generate", {"prompt": "hi", "stream": False}),
]  # fmt: skip
ENDPOINT = pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
_FAMILY_OF = {f.name: f for f in FAMILIES}


def _family(endpoint: Endpoint) -> Family:
    return _FAMILY_OF[endpoint.family]


def _config(stack: Stack) -> Config:
    extra: list[ProviderConfig] = []
    for name, (ptype, fake, suffix, key) in _LISTLESS_KINDS.items():
        extra.append(ProviderConfig(type=ptype, name=name, base_url=stack.fakes[fake].url + suffix,
                                    credentials=(Credential(key),) if key else ()))
    extra.append(ProviderConfig(type=ProviderType.OPENAI, name="restricted", base_url=stack.fakes["openai"].url + "/v1",
                                credentials=(Credential(provider_key("openai") or ""),),
                                models=(ModelConfig(name="text", alias="allowed-model"),)))
    return attrs.evolve(stack.config, providers=(*stack.config.providers, *extra))


@asynccontextmanager
async def gateway(stack: Stack) -> AsyncIterator[str]:
    """A second real gateway (Hypercorn, loopback) over the stack's fakes, with the list-less providers added."""
    async with serving(_config(stack)) as url:
        yield url


def _paths_seen(stack: Stack) -> list[tuple[str, str]]:
    return [(s.api, s.path) for s in stack.all_requests()]


def _assert_names_model(endpoint: Endpoint, response: Any, status: int) -> str:
    message = assert_shape(_family(endpoint), response, status)
    assert "model" in message, message
    if endpoint.family.startswith("openai"):
        assert orjson.loads(response.content)["error"].get("param") == "model"
    return message


@ENDPOINT
async def test_hostile_model_names_never_reach_a_provider(stack: Stack, endpoint: Endpoint) -> None:
    """Every report shape, forced at every list-less provider: a 400 naming the model, and no provider request."""
    async with gateway(stack) as url, raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for shape in HOSTILE:
            for prefix in LISTLESS:
                model = shape.format(p=prefix)
                for double in (False, True) if "{model}" in endpoint.path else (False,):
                    path, body = endpoint.request(model, double_encode=double)
                    response = await http.post(path, content=orjson.dumps(body))
                    message = _assert_names_model(endpoint, response, 400)
                    assert "\r" not in message and "\n" not in message
    assert _paths_seen(stack) == []


@ENDPOINT
async def test_forced_names_reach_only_the_expected_paths(stack: Stack, endpoint: Endpoint) -> None:
    """The positive control of the test above: ``<provider>/text`` is served, at the provider's own path."""
    async with gateway(stack) as url, raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for prefix in LISTLESS:
            path, body = endpoint.request(f"{prefix}/text")
            response = await http.post(path, content=orjson.dumps(body))
            assert response.status_code == 200, (prefix, response.text)
    seen = stack.all_requests()
    assert seen, "count endpoints of some providers are local estimates, but generation always reaches one"
    allowed = set().union(*EXPECTED_PATHS.values())
    assert {s.path for s in seen} <= allowed, _paths_seen(stack)
    assert all(s.model == "text" for s in seen if s.model)


async def test_gemini_route_path_is_decoded_once(stack: Stack) -> None:
    """``%252F`` in the Gemini route is the literal text ``%2F`` in the model name (decoded once, by the server):
    it is refused as an escape of ``/..``; a plain encoded ``/`` (``gem%2Ftext``) is the forced name ``gem/text``."""
    async with gateway(stack) as url, raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        refused = await http.post("/v1beta/models/gem%252F..%252Fsteal:generateContent",
                                  content=orjson.dumps(_GEMINI))
        served = await http.post("/v1beta/models/gem%2Ftext:generateContent", content=orjson.dumps(_GEMINI))
    assert_shape(_FAMILY_OF["gemini"], refused, 400)
    assert served.status_code == 200, served.text
    assert _paths_seen(stack) == [("gemini", "/v1beta/models/text:generateContent")]


async def test_openai_sdk_gets_a_400_for_a_traversal_model(stack: Stack) -> None:
    async with gateway(stack) as url:
        client = openai_client(url, CLIENT_KEY)
        with pytest.raises(openai.BadRequestError) as caught:
            await run_sync(client.chat.completions.create, model="gem/../../v1beta/cachedContents#",
                           messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    assert "model" in str(caught.value)
    assert _paths_seen(stack) == []


# ------------------------------------------------------------------------------------------------ forcing
@ENDPOINT
async def test_forcing_never_widens_a_model_list(stack: Stack, endpoint: Endpoint) -> None:
    """``restricted`` lists only ``allowed-model``: forcing anything else is a 404 in the client's format naming the
    model, and its key is never used; forcing a listed model (by alias or by upstream name) is served."""
    async with gateway(stack) as url, raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for model in ("restricted/gpt-4-unlisted-expensive", "restricted://o1-pro", "restricted/tools2"):
            path, body = endpoint.request(model)
            response = await http.post(path, content=orjson.dumps(body))
            message = _assert_names_model(endpoint, response, 404)
            assert model in message and "restricted" in message
        assert _paths_seen(stack) == []
        for model in ("restricted/allowed-model", "restricted://text", "allowed-model"):
            path, body = endpoint.request(model)
            response = await http.post(path, content=orjson.dumps(body))
            assert response.status_code == 200, (model, response.text)
    assert {s.model for s in stack.all_requests() if s.model} <= {"text"}


# ------------------------------------------------------------------------------------------------ list-less families
async def test_official_endpoint_without_a_list_serves_its_family_and_says_so(stack: Stack) -> None:
    """An env-detected OpenAI provider (``OPENAI_API_KEY`` only: the official base URL, no list) serves OpenAI's
    families; ``llama3`` is a 404 that names those families and the way to force it (docs/config.md, "Providers
    without a model list"). The official URL is answered by the fake through a transport: nothing leaves the machine."""
    detected = default_config({"OPENAI_API_KEY": provider_key("openai") or ""})
    env_provider = next(p for p in detected.providers if p.type is ProviderType.OPENAI)
    assert env_provider.base_url.rstrip("/") == "https://api.openai.com/v1" and not env_provider.models
    config = attrs.evolve(detected, host="127.0.0.1", port=0, api_keys=(CLIENT_KEY,))
    fake_url = stack.fakes["openai"].url

    async def to_fake(request: httpx2.Request) -> httpx2.Response:
        async with httpx2.AsyncClient() as client:
            upstream = await client.request(request.method, fake_url + request.url.raw_path.decode(),
                                            headers=dict(request.headers), content=request.content)
            return httpx2.Response(upstream.status_code, content=upstream.content,
                                   headers={"content-type": upstream.headers["content-type"]})

    name = env_provider.name
    async with serving(config, {name: httpx2.MockTransport(to_fake)}) as url:
        async with raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
            refused = await http.post("/v1/chat/completions", content=orjson.dumps({**_CHAT, "model": "llama3"}))
            forced = await http.post("/v1/chat/completions", content=orjson.dumps({**_CHAT, "model": f"{name}/text"}))
            fine_tune = await http.post("/v1/chat/completions",
                                        content=orjson.dumps({**_CHAT, "model": "ft:gpt-4o-mini:org::abc"}))
    message = assert_shape(_FAMILY_OF["openai-chat"], refused, 404)
    assert "llama3" in message and "gpt-*" in message and f"'{name}/llama3'" in message
    assert forced.status_code == 200, forced.text
    # A fine-tune id is in OpenAI's family: it reaches the provider (whose fake does not know it: its own 404).
    assert fine_tune.status_code == 404 and "ft:gpt-4o-mini:org::abc" in fine_tune.text
    assert [s.model for s in stack.all_requests()] == ["text", "ft:gpt-4o-mini:org::abc"]


# ------------------------------------------------------------------------------------------------ WebSocket
async def test_hostile_model_names_over_websockets_are_stream_errors(stack: Stack) -> None:
    """Responses WebSocket mode and ``/v1/ws``: a hostile name is a 400 for that turn/stream only (naming the model),
    the socket stays usable, and no provider is asked; a forced good name then works on the same socket."""
    auth = [("authorization", f"Bearer {CLIENT_KEY}")]
    hostile = [shape.format(p=p) for shape in HOSTILE for p in ("gem", "oai")]
    async with gateway(stack) as url:
        ws_base = "ws" + url.removeprefix("http")
        async with open_websocket_url(ws_base + "/v1/responses", extra_headers=auth) as ws:
            for model in hostile:
                await ws.send_message(orjson.dumps({"type": "response.create", "model": model, "input": "hi"}).decode())
                with trio.fail_after(20):
                    error = orjson.loads(await ws.get_message())
                assert error["type"] == "error" and error["status"] == 400, error
                assert error["error"]["param"] == "model" and "model" in error["error"]["message"]
            assert _paths_seen(stack) == []
            create = {"type": "response.create", "model": "resp/text", "input": "hi"}
            await ws.send_message(orjson.dumps(create).decode())
            with trio.fail_after(20):
                while (event := orjson.loads(await ws.get_message()))["type"] not in ("response.completed", "error"):
                    pass
            assert event["type"] == "response.completed", event
        async with muxtrio.client.connect(ws_base + "/v1/ws", api_key=CLIENT_KEY) as mux:
            for model in hostile:
                with pytest.raises(MuxError) as caught:
                    async with mux.stream("openai-chat", {"model": model, **_CHAT}) as events:
                        async for _ in events:
                            pass
                assert caught.value.status == 400 and "model" in caught.value.message
            async with mux.stream("openai-chat", {"model": "oai/text", **_CHAT}) as events:
                chunks = [chunk async for chunk in events]
            assert chunks
    assert _paths_seen(stack) == [("responses", "/v1/responses"), ("openai", "/v1/chat/completions")]

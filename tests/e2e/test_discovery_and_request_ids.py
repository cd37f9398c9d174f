"""What real clients do before and around their first request: google-genai's default client (``api_version`` v1)
lists and fetches models on ``/v1/models``; Claude Code probes ``HEAD /``; a client's ``x-request-id`` is kept as the
request id, returned, and sent to the provider.
"""

from __future__ import annotations

import httpx2
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from tests.e2e.clients import openai_async_client
from tests.e2e.conftest import CLIENT_KEY, Stack, run_sync
from tests.e2e.fakes import script_text


def default_genai_client(url: str) -> genai.Client:
    """google-genai exactly as a user makes it, only pointed at the gateway: no api_version override."""
    return genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(base_url=url))


async def test_genai_default_client_lists_gets_and_generates_on_v1(stack: Stack) -> None:
    client = default_genai_client(stack.url)
    listed = await run_sync(lambda: list(client.models.list()))
    names = [m.name for m in listed]
    assert "models/gemini-text" in names and "models/anthropic-text" in names
    assert all(m.supported_actions and "generateContent" in m.supported_actions for m in listed)
    model = await run_sync(client.models.get, model="gemini-text")
    assert model.name == "models/gemini-text"
    answer = await run_sync(client.models.generate_content, model="gemini-text", contents="hi")
    assert answer.text == script_text("text", "gemini")
    with pytest.raises(genai.errors.ClientError) as info:  # a Gemini-shaped 404, which the SDK parses
        await run_sync(client.models.get, model="no-such-model")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


async def test_v1_models_stays_openai_shaped_for_openai_clients(stack: Stack) -> None:
    client = openai_async_client(stack.url, CLIENT_KEY)
    ids = [m.id async for m in client.models.list()]
    assert "gemini-text" in ids
    assert (await client.models.retrieve("gemini-text")).id == "gemini-text"


@pytest.mark.parametrize("path", ["/", "/api/hello", "/healthz", "/v1/models", "/api/tags", "/api/version"])
async def test_head_answers_where_get_does_with_headers_and_no_body(stack: Stack, path: str) -> None:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with httpx2.AsyncClient(base_url=stack.url, timeout=10) as client:
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
    assert got.status_code == 200 and got.content
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_root_needs_no_key_and_head_on_post_routes_is_405(stack: Stack) -> None:
    async with httpx2.AsyncClient(base_url=stack.url, timeout=10) as client:
        root = await client.head("/")  # Claude Code's probe, sent before it uses its key
        hello = await client.head("/api/hello")  # the path Claude Code 2.1 probes (HEAD {ANTHROPIC_BASE_URL}/api/hello)
        post_only = await client.head("/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"})
        unknown = await client.head("/nope")
    assert root.status_code == 200
    assert hello.status_code == 200
    assert (post_only.status_code, post_only.content) == (405, b"")
    assert (unknown.status_code, unknown.content) == (404, b"")


async def test_client_request_id_is_kept_returned_and_sent_upstream(stack: Stack) -> None:
    client = openai_async_client(stack.url, CLIENT_KEY)
    raw = await client.chat.completions.with_raw_response.create(
        model="anthropic-text",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "trace-7f3a.b_9"},
    )
    assert raw.headers["x-request-id"] == "trace-7f3a.b_9"
    assert raw.parse().id != "chatcmpl-trace-7f3a.b_9"  # response ids are never client-chosen
    (seen,) = stack.requests("anthropic")
    assert seen.headers["x-request-id"] == "trace-7f3a.b_9"

    with pytest.raises(openai.NotFoundError) as info:  # an error answer carries it too
        await client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "e-1"}
        )
    assert info.value.response.headers["x-request-id"] == "e-1"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "quote\"d", "ünïcode", ""])
async def test_an_invalid_request_id_is_replaced_by_a_new_one(stack: Stack, bad: str) -> None:
    async with httpx2.AsyncClient(base_url=stack.url, timeout=10) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": bad.encode("utf-8")},
            json={"model": "openai-text", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert returned != bad and len(returned) == 24 and all(c in "0123456789abcdef" for c in returned)
    (seen,) = stack.requests("openai")
    assert seen.headers["x-request-id"] == returned


async def test_without_a_client_id_the_generated_one_goes_upstream(stack: Stack) -> None:
    client = openai_async_client(stack.url, CLIENT_KEY)
    raw = await client.chat.completions.with_raw_response.create(
        model="gemini-text", messages=[{"role": "user", "content": "hi"}]
    )
    (seen,) = stack.requests("gemini")
    assert seen.headers["x-request-id"] == raw.headers["x-request-id"]

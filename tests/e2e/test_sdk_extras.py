"""The rest of each official SDK's surface through the real gateway: model listings, token counting, the legacy
OpenAI completions endpoint, Ollama's ``generate``, the async openai/anthropic clients (under trio), and the built-in
``muxtrio-echo`` model in every client format.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import ollama
import openai
import pytest
import trio
from google import genai
from google.genai import errors as genai_errors

from tests.e2e import clients
from tests.e2e.checks import check_request, user_text
from tests.e2e.clients import PER_CLIENT, PROMPT
from tests.e2e.conftest import (
    CLIENT_KEY,
    DEAD,
    PER_UPSTREAM,
    REGEN,
    REGEN_DIVERGE,
    STITCH,
    STREAM_OR_NOT,
    UPSTREAM_NAMES,
    Stack,
    run_sync,
)
from tests.e2e.fakes import BEHAVIOURS, COUNT_TOKENS, script_text
from tests.e2e.family_rules import FAMILY_ALIASES

UPSTREAM = PER_UPSTREAM
STREAM = STREAM_OR_NOT
NATIVE_COUNT = {"anthropic": "/v1/messages/count_tokens", "gemini": "/v1beta/models/text:countTokens",
                "responses": "/v1/responses/input_tokens"}  # upstreams with a token-count endpoint of their own


def _aliases(stack: Stack) -> set[str]:
    names = {stack.model(u, b) for u in UPSTREAM_NAMES for b in BEHAVIOURS}
    names |= {stack.model(u, m) for u, models in FAMILY_ALIASES.items() for m in models}
    extra = {f"{u}-gone" for u in UPSTREAM_NAMES} | {f"{u}-revoked" for u in UPSTREAM_NAMES if u != "ollama"}
    return names | {f"{u}-pool" for u in UPSTREAM_NAMES} | extra | {"muxtrio-echo", STITCH, REGEN, REGEN_DIVERGE, DEAD}


def _openai(stack: Stack) -> openai.OpenAI:
    return clients.openai_client(stack.url, CLIENT_KEY)


def _anthropic(stack: Stack) -> anthropic.Anthropic:
    return clients.anthropic_client(stack.url, CLIENT_KEY)


def _genai(stack: Stack) -> genai.Client:
    return clients.genai_client(stack.url, CLIENT_KEY)


@contextmanager
def _ollama(stack: Stack) -> Iterator[ollama.Client]:
    client = clients.ollama_client(stack.url, CLIENT_KEY)
    try:
        yield client
    finally:
        client.close()  # an open keep-alive connection would delay the server's graceful shutdown


def _count_checks(stack: Stack, upstream: str, tokens: int) -> None:
    """Native count where the serving provider has an endpoint (exactly its answer), else the local estimate
    (positive, and the provider is not asked at all)."""
    seen = stack.requests(upstream)
    if upstream in NATIVE_COUNT:
        assert tokens == COUNT_TOKENS
        assert [s.path for s in seen] == [NATIVE_COUNT[upstream]]
    else:
        assert tokens > 0
        assert seen == []


# ----------------------------------------------------------------------------------------------------- openai
async def test_openai_models_list(stack: Stack) -> None:
    def run() -> list[Any]:
        with _openai(stack) as client:
            return list(client.models.list())

    models = await run_sync(run)
    assert {m.id for m in models} == _aliases(stack)
    assert all(m.object == "model" for m in models)


@UPSTREAM
@STREAM
async def test_openai_legacy_completions(stack: Stack, upstream: str, stream: bool) -> None:
    def run() -> tuple[str, int]:
        with _openai(stack) as client:
            if not stream:
                r = client.completions.create(model=stack.model(upstream, "text"), prompt=PROMPT, max_tokens=64)
                return r.choices[0].text, 1
            parts = [c.choices[0].text for c in client.completions.create(
                model=stack.model(upstream, "text"), prompt=PROMPT, max_tokens=64, stream=True) if c.choices]
            return "".join(parts), len([p for p in parts if p])

    text, chunks = await run_sync(run)
    assert text == script_text("text", upstream)
    if stream:
        assert chunks >= 2
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=stream, prompt=PROMPT)


@UPSTREAM
async def test_openai_responses_input_tokens(stack: Stack, upstream: str) -> None:
    def run() -> int:
        with _openai(stack) as client:
            return client.responses.input_tokens.count(model=stack.model(upstream, "text"), input=PROMPT).input_tokens

    _count_checks(stack, upstream, await run_sync(run))


@UPSTREAM
@STREAM
async def test_openai_async_chat(stack: Stack, upstream: str, stream: bool) -> None:
    """``AsyncOpenAI`` runs on trio (its HTTP client supports trio), in the same trio run as the servers."""
    async with clients.openai_async_client(stack.url, CLIENT_KEY) as client:
        kwargs: dict[str, Any] = {"model": stack.model(upstream, "text"),
                                  "messages": [{"role": "user", "content": PROMPT}]}
        if not stream:
            r = await client.chat.completions.create(**kwargs)
            text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        else:
            text, finish = "", None
            async with await client.chat.completions.create(**kwargs, stream=True) as events:
                async for chunk in events:
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                        finish = choice.finish_reason or finish
    assert (text, finish) == (script_text("text", upstream), "stop")
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=stream, prompt=PROMPT)


# ----------------------------------------------------------------------------------------------------- anthropic
async def test_anthropic_models_list(stack: Stack) -> None:
    def run() -> list[Any]:
        with _anthropic(stack) as client:
            return list(client.models.list())

    models = await run_sync(run)
    assert {m.id for m in models} == _aliases(stack)
    assert all(m.type == "model" for m in models)


@UPSTREAM
async def test_anthropic_count_tokens(stack: Stack, upstream: str) -> None:
    def run() -> int:
        with _anthropic(stack) as client:
            return client.messages.count_tokens(
                model=stack.model(upstream, "text"), messages=[{"role": "user", "content": PROMPT}]
            ).input_tokens

    _count_checks(stack, upstream, await run_sync(run))


@UPSTREAM
@STREAM
async def test_anthropic_async_messages(stack: Stack, upstream: str, stream: bool) -> None:
    """``AsyncAnthropic`` on trio: ``messages.create`` and ``messages.stream()``."""
    async with clients.anthropic_async_client(stack.url, CLIENT_KEY) as client:
        kwargs: dict[str, Any] = {"model": stack.model(upstream, "text"), "max_tokens": 256,
                                  "messages": [{"role": "user", "content": PROMPT}]}
        if not stream:
            message = await client.messages.create(**kwargs)
        else:
            async with client.messages.stream(**kwargs) as events:
                deltas = [e async for e in events if e.type == "content_block_delta"]
                message = await events.get_final_message()
            assert len(deltas) >= 2
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == script_text("text", upstream)
    assert message.stop_reason == "end_turn"
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=stream, prompt=PROMPT)


# ----------------------------------------------------------------------------------------------------- google-genai
async def test_gemini_models_list(stack: Stack) -> None:
    def run() -> list[Any]:
        with _genai(stack) as client:
            return list(client.models.list())

    models = await run_sync(run)
    assert {m.name for m in models} == {f"models/{a}" for a in _aliases(stack)}
    assert all("generateContent" in (m.supported_actions or []) for m in models)


@UPSTREAM
async def test_gemini_count_tokens(stack: Stack, upstream: str) -> None:
    def run() -> int | None:
        with _genai(stack) as client:
            return client.models.count_tokens(model=stack.model(upstream, "text"), contents=PROMPT).total_tokens

    tokens = await run_sync(run)
    assert tokens is not None
    _count_checks(stack, upstream, tokens)


# ----------------------------------------------------------------------------------------------------- ollama
async def test_ollama_list(stack: Stack) -> None:
    def run() -> list[Any]:
        with _ollama(stack) as client:
            return list(client.list().models)

    models = await run_sync(run)
    assert {m.model for m in models} == _aliases(stack)


@UPSTREAM
@STREAM
async def test_ollama_generate(stack: Stack, upstream: str, stream: bool) -> None:
    def run() -> tuple[str, int, str | None]:
        with _ollama(stack) as client:
            if not stream:
                r = client.generate(model=stack.model(upstream, "text"), prompt=PROMPT, stream=False)
                return r.response, 1, r.done_reason
            parts = list(client.generate(model=stack.model(upstream, "text"), prompt=PROMPT, stream=True))
        assert parts[-1].done and not any(p.done for p in parts[:-1])
        return "".join(p.response for p in parts), len([p for p in parts if p.response]), parts[-1].done_reason

    text, chunks, done_reason = await run_sync(run)
    assert (text, done_reason) == (script_text("text", upstream), "stop")
    if stream:
        assert chunks >= 2
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=stream, prompt=PROMPT)


# ----------------------------------------------------------------------------------------------------- muxtrio-echo
@PER_CLIENT
@STREAM
async def test_echo_model_answers_every_client_format(stack: Stack, client: str, stream: bool) -> None:
    """The built-in echo model repeats the last user message, word by word, in every client format."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    prompt = "echo these five words back"
    answer = await run_sync(sdk.ask, "muxtrio-echo", sdk.start(prompt), stream=stream)
    sdk.close()
    assert answer.text == prompt
    if stream:
        assert answer.chunks >= 2
    assert stack.all_requests() == []


# ----------------------------------------------------------------------------------------------------- one model
async def test_each_sdk_retrieves_one_model(stack: Stack) -> None:
    """``GET /v1/models/{id}`` (OpenAI and Anthropic shapes), ``GET /v1beta/models/{m}``, ``POST /api/show``; an
    unknown id is the SDK's not-found error."""

    def run() -> None:
        with _openai(stack) as client:
            model = client.models.retrieve("anthropic-text")
            assert (model.id, model.object, model.owned_by) == ("anthropic-text", "model", "anthropic")
            with pytest.raises(openai.NotFoundError):
                client.models.retrieve("no-such-model")
        with _anthropic(stack) as client:
            info = client.models.retrieve("gemini-think")
            assert (info.id, info.type) == ("gemini-think", "model")
            with pytest.raises(anthropic.NotFoundError):
                client.models.retrieve("no-such-model")
        with _genai(stack) as client:
            gmodel = client.models.get(model="ollama-text")
            assert gmodel.name == "models/ollama-text"
            with pytest.raises(genai_errors.ClientError) as caught:
                client.models.get(model="no-such-model")
            assert caught.value.code == 404
        with _ollama(stack) as client:
            shown = client.show("openai-text")
            assert shown.details is not None and shown.modified_at is not None
            assert client.ps().models == []
            with pytest.raises(ollama.ResponseError) as missing:
                client.show("no-such-model")
            assert missing.value.status_code == 404

    await run_sync(run)
    assert stack.all_requests() == []


async def test_anthropic_sdk_with_bearer_auth_token(stack: Stack) -> None:
    """The anthropic SDK's ``auth_token`` sends ``Authorization: Bearer``: accepted like ``x-api-key``."""

    def run() -> str:
        with clients.anthropic_client(stack.url, auth_token=CLIENT_KEY) as c:
            message = c.messages.create(model=stack.model("gemini", "text"), max_tokens=64,
                                        messages=[{"role": "user", "content": PROMPT}])
            return "".join(b.text for b in message.content if b.type == "text")

    assert await run_sync(run) == script_text("text", "gemini")


async def test_concurrent_streams_through_every_upstream(stack: Stack) -> None:
    """Twenty streams at once over one gateway (four per upstream kind), each gets exactly its own answer."""
    results: dict[int, str] = {}

    async def one(i: int, client: openai.AsyncOpenAI) -> None:
        upstream = UPSTREAM_NAMES[i % len(UPSTREAM_NAMES)]
        text = ""
        async with await client.chat.completions.create(
            model=stack.model(upstream, "text"), messages=[{"role": "user", "content": f"{PROMPT} {i}"}], stream=True
        ) as events:
            async for chunk in events:
                text += "".join(c.delta.content or "" for c in chunk.choices)
        results[i] = text

    async with clients.openai_async_client(stack.url, CLIENT_KEY) as client, trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(one, i, client)
    assert results == {i: script_text("text", UPSTREAM_NAMES[i % len(UPSTREAM_NAMES)]) for i in range(20)}
    for upstream in UPSTREAM_NAMES:
        prompts = sorted(user_text(upstream, s.body) for s in stack.requests(upstream))
        assert prompts == sorted(f"{PROMPT} {i}" for i in range(20) if UPSTREAM_NAMES[i % 5] == upstream)

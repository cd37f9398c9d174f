"""Same-format pass-through through the real gateway: a client of its provider's format gets the provider's bytes.

Each test runs the e2e stack with ``response-model: upstream`` (the model the client is shown is the one the
provider names, so nothing needs rewriting) unless it checks an ineligible case. "The provider's bytes" are what the
fake sends when asked directly with the client's own request (the fakes are deterministic); the gateway's body must
equal them. The official SDKs then read the same streams, and the stream guarantees are checked on this path: usage
reaches the metrics, a cut or a provider's error never looks finished, a recovery after passed-through bytes
continues the same stream, the idle watchdog fires.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from muxtrio.config import ResponseModel, Timeouts
from tests.e2e import clients
from tests.e2e.conftest import CLIENT_KEY, STITCH, UPSTREAMS, Stack, provider_key, run_sync
from tests.e2e.fakes import INPUT_TOKENS, script_output_tokens, script_text

SAME = ("openai", "anthropic", "gemini", "ollama")
SDK = {"openai": "openai-chat", "anthropic": "anthropic", "gemini": "gemini", "ollama": "ollama"}
PER_FORMAT = pytest.mark.parametrize("upstream", SAME, ids=[f"{u}-to-{u}" for u in SAME])
UPSTREAM_MODEL = pytest.mark.gateway_config(response_model=ResponseModel.UPSTREAM)
# The frame that says a stream is complete, per format.
TERMINAL = {"openai": b"[DONE]", "anthropic": b"message_stop", "gemini": b"finishReason", "ollama": b'"done":true'}


def _request(upstream: str, model: str, *, include_usage: bool = False) -> tuple[str, dict[str, Any]]:
    """The client's streaming request in ``upstream``'s format: (path, body)."""
    messages = [{"role": "user", "content": "hi"}]
    if upstream == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        return "/chat/completions", body
    if upstream == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 100, "messages": messages, "stream": True}
    if upstream == "gemini":
        path = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return path, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return "/api/chat", {"model": model, "messages": messages}


def _headers(upstream: str, key: str | None) -> dict[str, str]:
    if upstream == "anthropic":
        return {"x-api-key": key or "", "anthropic-version": "2023-06-01"}
    if upstream == "gemini":
        return {"x-goog-api-key": key or ""}
    return {"authorization": f"Bearer {key}"} if key else {}


async def _post(url: str, upstream: str, path: str, body: dict[str, Any], key: str | None) -> tuple[int, bytes]:
    async with httpx2.AsyncClient(timeout=30.0) as client:
        response = await client.post(url + path, json=body, headers=_headers(upstream, key))
        return response.status_code, response.content


async def _via_gateway(stack: Stack, upstream: str, behaviour: str, **kw: bool) -> tuple[int, bytes]:
    path, body = _request(upstream, stack.model(upstream, behaviour), **kw)
    return await _post(stack.url, upstream, ("/v1" + path) if upstream == "openai" else path, body, CLIENT_KEY)


async def _direct(stack: Stack, upstream: str, behaviour: str, **kw: bool) -> tuple[int, bytes]:
    """What the provider sends a client that asks it directly (the upstream model is the behaviour's name)."""
    path, body = _request(upstream, behaviour, **kw)
    base = stack.fake(upstream).url + UPSTREAMS[upstream][2]
    return await _post(base, upstream, path, body, provider_key(upstream))


async def _metric(stack: Stack, name: str, **labels: str) -> float:
    async with httpx2.AsyncClient(timeout=10.0) as client:
        text = (await client.get(stack.url + "/metrics")).text
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )


@PER_FORMAT
@UPSTREAM_MODEL
async def test_the_client_gets_the_providers_bytes(stack: Stack, upstream: str) -> None:
    status, body = await _via_gateway(stack, upstream, "text")
    direct_status, direct = await _direct(stack, upstream, "text")
    assert (status, direct_status) == (200, 200)
    assert body == direct
    # Usage still reaches the gateway's accounting (the provider reports it; OpenAI's chunk is asked for by muxtrio
    # and not forwarded to this client, which did not ask).
    assert await _metric(stack, "muxtrio_tokens_total", kind="input") == INPUT_TOKENS
    assert await _metric(stack, "muxtrio_tokens_total", kind="output") == script_output_tokens("text")


@UPSTREAM_MODEL
async def test_an_openai_client_that_asks_for_usage_gets_the_providers_usage_chunk(stack: Stack) -> None:
    status, body = await _via_gateway(stack, "openai", "text", include_usage=True)
    assert status == 200
    assert body == (await _direct(stack, "openai", "text", include_usage=True))[1]
    assert b'"usage"' in body


@PER_FORMAT
@UPSTREAM_MODEL
async def test_the_sdk_reads_a_passed_through_stream(stack: Stack, upstream: str) -> None:
    sdk = clients.make(SDK[upstream], stack.url, CLIENT_KEY)
    first, final = await run_sync(sdk.tool_round_trip, stack.model(upstream, "tool"), stream=True)
    sdk.close()
    assert first.finish is not None and [call.name for call in first.tool_calls] == ["get_weather"]
    assert final.finish is not None and final.text
    assert final.usage is None or final.usage[0] == INPUT_TOKENS


@PER_FORMAT
async def test_a_renamed_model_is_translated(stack: Stack, upstream: str) -> None:
    """``response-model: requested`` with an alias (``<upstream>-text`` -> ``text``): the client must see its own
    name, so the stream is re-encoded (and the SDK still reads it)."""
    status, body = await _via_gateway(stack, upstream, "text")
    assert status == 200
    assert body != (await _direct(stack, upstream, "text"))[1]
    assert stack.model(upstream, "text").encode() in body
    sdk = clients.make(SDK[upstream], stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("text", upstream)


@PER_FORMAT
@pytest.mark.gateway_config(response_model=ResponseModel.UPSTREAM, pass_through=False)
async def test_pass_through_off_translates(stack: Stack, upstream: str) -> None:
    status, body = await _via_gateway(stack, upstream, "text")
    assert status == 200 and body != (await _direct(stack, upstream, "text"))[1]


@PER_FORMAT
@UPSTREAM_MODEL
async def test_a_cut_stream_never_gets_the_providers_final_frame(stack: Stack, upstream: str) -> None:
    """The provider cuts its stream after two chunks (nothing can recover it): the client has the provider's first
    frames and then the gateway's error frame, never the provider's terminal frame."""
    status, body = await _via_gateway(stack, upstream, "cut")
    assert status == 200
    assert TERMINAL[upstream] not in body
    assert b"error" in body.rstrip().rsplit(b"\n", 1)[-1]
    sdk = clients.make(SDK[upstream], stack.url, CLIENT_KEY)
    with pytest.raises(Exception) as caught:
        await run_sync(sdk.ask, stack.model(upstream, "cut"), sdk.start(), stream=True)
    sdk.close()
    assert not isinstance(caught.value, AssertionError)
    assert sdk.last is not None and sdk.last.finish is None and sdk.last.text == "Hello from a stream "


@PER_FORMAT
@UPSTREAM_MODEL
async def test_a_providers_error_event_is_not_forwarded(stack: Stack, upstream: str) -> None:
    """``midstream``: two chunks, then the provider's in-band error: the client gets the two chunks, then one error
    frame (the gateway's, in the client's format), and never the finish."""
    status, body = await _via_gateway(stack, upstream, "midstream")
    assert status == 200
    # One error frame: the gateway's (which relays the provider's message); the provider's own is not forwarded.
    assert sum(b'"error"' in line for line in body.splitlines()) == 1
    assert TERMINAL[upstream] not in body
    assert b"from a stream " in body


@UPSTREAM_MODEL
async def test_a_recovery_continues_the_passed_through_stream(stack: Stack) -> None:
    """``stitch``: the Anthropic provider (same format: passed through) cuts its stream, the Ollama provider
    continues it (translated); the Anthropic SDK reads one answer, blocks numbered consistently."""
    sdk = clients.make("anthropic", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, STITCH, sdk.start(), stream=True)
    sdk.close()
    assert answer.finish is not None
    assert answer.text.startswith("Hello from a stream ") and len(answer.text) > len("Hello from a stream ")
    assert [s.model for s in stack.requests("ollama")]


@PER_FORMAT
@pytest.mark.gateway_config(response_model=ResponseModel.UPSTREAM, timeouts=Timeouts(idle=0.3))
async def test_the_idle_watchdog_ends_a_stalled_passed_through_stream(stack: Stack, upstream: str) -> None:
    sdk = clients.make(SDK[upstream], stack.url, CLIENT_KEY)
    with pytest.raises(Exception) as caught:
        await run_sync(sdk.ask, stack.model(upstream, "endless"), sdk.start(), stream=True)
    sdk.close()
    assert not isinstance(caught.value, AssertionError)
    assert sdk.last is not None and sdk.last.text == "Hello " and sdk.last.finish is None


@UPSTREAM_MODEL
async def test_openai_and_anthropic_sdks_raise_their_own_errors_after_passed_through_bytes(stack: Stack) -> None:
    chat = clients.make("openai-chat", stack.url, CLIENT_KEY)
    with pytest.raises(openai.APIError):
        await run_sync(chat.ask, stack.model("openai", "cut"), chat.start(), stream=True)
    chat.close()
    messages = clients.make("anthropic", stack.url, CLIENT_KEY)
    with pytest.raises(anthropic.APIError):
        await run_sync(messages.ask, stack.model("anthropic", "cut"), messages.start(), stream=True)
    messages.close()

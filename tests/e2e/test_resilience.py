"""Issue 5's resilience scenarios through the real server with real SDK clients.

- A stream cut mid-answer reaches every client as an error in its own format, after the partial text: never a
  normal end (each upstream here has one credential, so there is nothing to continue on, prefill or not).
- A 429 on the first key of a pool fails over to the second key; the client sees a normal answer.
- A context-length 400 is not retried on the same model; the configured fallback answers.
- A client that goes away mid-stream makes the gateway close the upstream connection (the fake sees EOF).
- A cut stream on a model that another, prefill-capable provider also serves is continued there and stitched into
  the same client stream.
- A cut stream whose other provider cannot take a prefill is regenerated there from the original request and
  spliced: the client gets each word once; a regeneration that diverges from what was sent ends with an error.
- A provider's in-band error event mid-stream ends the client's stream with an error too.
- A provider 400 is never retried and reaches the client with the provider's reason; a 500 once is retried
  invisibly; a provider that stays down gets ``request-retry + 1`` attempts, then the client gets 503.
- An unreachable provider is a clean 502/503; a silent one hits the first-byte timeout (504); a stream that stalls
  with its connection open hits the idle-gap timeout and ends with an error.
"""

from __future__ import annotations

import anthropic
import ollama
import openai
import pytest
import trio
from google.genai import errors as genai_errors

from muxtrio.config import Timeouts
from tests.e2e import clients
from tests.e2e.checks import check_request, user_text
from tests.e2e.clients import BAD_REQUEST, PER_CLIENT, PROMPT, Answer, error_status
from tests.e2e.conftest import (
    CLIENT_KEY,
    DEAD,
    FALLBACK,
    PER_UPSTREAM,
    REGEN,
    REGEN_DIVERGE,
    STITCH,
    STREAM_OR_NOT,
    Stack,
    pool_keys,
    run_sync,
)
from tests.e2e.fakes import prefill_of, script_text

UPSTREAM = PER_UPSTREAM
CLIENT = PER_CLIENT
STREAM = STREAM_OR_NOT
DISCONNECT_GUARD_S = 10.0  # hang guard while waiting for the fake to see the connection close

STREAM_ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    "openai-chat": (openai.APIError,),
    "openai-responses": (openai.APIError,),
    "anthropic": (anthropic.APIError,),
    "gemini": (genai_errors.APIError,),
    "ollama": (ollama.ResponseError,),
}


class ClientGoesAway(Exception):
    """Raised from inside the SDK's stream loop: the client stops reading and closes the response."""


@UPSTREAM
@CLIENT
async def test_mid_stream_cut_ends_with_an_error_never_a_normal_end(stack: Stack, client: str, upstream: str) -> None:
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer: Answer | None = None
    error: BaseException | None = None
    try:
        answer = await run_sync(sdk.ask, stack.model(upstream, "cut"), sdk.start(), stream=True)
    except STREAM_ERRORS[client] as exc:
        error = exc
    sdk.close()
    partial = sdk.last
    assert partial is not None
    assert partial.text == "Hello from a stream ", "the text sent before the cut should have reached the client"
    if client == "openai-responses" and error is None:
        # The openai SDK does not raise on Responses error events: the stream must end with one, not with
        # response.completed.
        assert answer is not None and answer.finish in ("error", "response.failed"), answer
    else:
        assert error is not None, f"the cut stream ended normally for the client: {answer!r}"
    [seen] = stack.requests(upstream)
    assert not seen.finished
    assert f"provider:{upstream}:cut" in stack.events


@UPSTREAM
@STREAM
async def test_rate_limited_key_fails_over_to_the_second_key(stack: Stack, upstream: str, stream: bool) -> None:
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, f"{upstream}-pool", sdk.start(), stream=stream)
    sdk.close()
    assert answer.text == script_text("text", upstream)
    first, second = stack.requests(upstream)
    assert (first.key, first.status) == (pool_keys(upstream)[0], 429)
    assert (second.key, second.status) == (pool_keys(upstream)[1], 200)
    assert first.model == second.model == "keyed"
    assert first.stream is second.stream is stream


@UPSTREAM
@STREAM
async def test_context_length_error_goes_to_the_fallback(stack: Stack, upstream: str, stream: bool) -> None:
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model(upstream, "ctxlimit"), sdk.start(), stream=stream)
    sdk.close()
    fallback = FALLBACK[upstream]
    assert answer.text == script_text("text", fallback)
    [refused] = stack.requests(upstream)  # not retried on the same model
    assert (refused.model, refused.status) == ("ctxlimit", 400)
    [served] = stack.requests(fallback)
    check_request(fallback, served, behaviour="text", stream=stream, prompt=PROMPT)


@UPSTREAM
@CLIENT
async def test_client_disconnect_mid_stream_closes_the_upstream(stack: Stack, client: str, upstream: str) -> None:
    sdk = clients.make(client, stack.url, CLIENT_KEY)

    def on_chunk(answer: Answer) -> None:
        raise ClientGoesAway(answer.text)

    sdk.on_chunk = on_chunk
    with pytest.raises(ClientGoesAway, match=r"^Hello $"):
        await run_sync(sdk.ask, stack.model(upstream, "endless"), sdk.start(), stream=True)
    sdk.close()
    [seen] = stack.requests(upstream)
    with trio.fail_after(DISCONNECT_GUARD_S):
        await seen.disconnected.wait()
    assert not seen.finished


@CLIENT
async def test_cut_stream_is_continued_on_a_prefill_provider(stack: Stack, client: str) -> None:
    """``stitch`` is served by anthropic (which cuts its stream after two chunks) and ollama (prefill-capable): the
    engine resends the conversation with the partial answer as an assistant prefill and stitches the continuation
    into the same client stream, which then ends normally."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, STITCH, sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("continued", "ollama")
    [cut] = stack.requests("anthropic")
    assert cut.model == "cut" and not cut.finished
    [continued] = stack.requests("ollama")
    assert continued.model == "continue" and continued.finished
    assert prefill_of("ollama", continued.body) == "Hello from a stream"
    assert PROMPT in user_text("ollama", continued.body)


@CLIENT
async def test_cut_stream_is_regenerated_on_a_provider_without_prefill(stack: Stack, client: str) -> None:
    """``regen``: anthropic cuts after "Hello from a stream "; gemini (no prefill) answers the original request in
    full; the gateway holds back the repeated part and forwards only the rest, so the client reads every word once
    and its stream ends normally."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, REGEN, sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("continued", "gemini")  # "Hello from a stream that was continued."
    [cut] = stack.requests("anthropic")
    assert cut.model == "cut" and not cut.finished
    [regenerated] = stack.requests("gemini")
    assert regenerated.model == "continue" and regenerated.finished
    assert prefill_of("gemini", regenerated.body) is None  # the original request, not a continuation
    assert PROMPT in user_text("gemini", regenerated.body)


@CLIENT
async def test_diverging_regeneration_ends_with_an_error(stack: Stack, client: str) -> None:
    """``regen-diverge``: the regenerated answer says something else after "Hello from ": nothing of it reaches the
    client, whose stream ends with an error after the text it already had."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer: Answer | None = None
    error: BaseException | None = None
    try:
        answer = await run_sync(sdk.ask, REGEN_DIVERGE, sdk.start(), stream=True)
    except STREAM_ERRORS[client] as exc:
        error = exc
    sdk.close()
    assert sdk.last is not None and sdk.last.text == "Hello from a stream "
    if client == "openai-responses" and error is None:
        assert answer is not None and answer.finish in ("error", "response.failed"), answer
    else:
        assert error is not None, f"the diverging regeneration ended normally: {answer!r}"
    [regenerated] = stack.requests("gemini")
    assert regenerated.model == "text"


@UPSTREAM
@CLIENT
async def test_provider_error_event_mid_stream_ends_with_an_error(stack: Stack, client: str, upstream: str) -> None:
    """The provider sends two chunks, then its own in-band error event (OpenAI ``data: {"error"}``, Responses
    ``event: error``, Anthropic ``event: error``, Gemini a ``data:`` Status, Ollama an ``{"error"}`` line) and ends
    the body: the client gets the partial text and then an error, never a normal end."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer: Answer | None = None
    error: BaseException | None = None
    try:
        answer = await run_sync(sdk.ask, stack.model(upstream, "midstream"), sdk.start(), stream=True)
    except STREAM_ERRORS[client] as exc:
        error = exc
    sdk.close()
    assert sdk.last is not None and sdk.last.text == "Hello from a stream "
    if client == "openai-responses" and error is None:
        assert answer is not None and answer.finish in ("error", "response.failed"), answer
    else:
        assert error is not None, f"the stream ended normally after the provider's error event: {answer!r}"
    [seen] = stack.requests(upstream)
    assert seen.finished  # the provider ended its body itself, after the error event


@UPSTREAM
@CLIENT
async def test_provider_400_is_not_retried_and_keeps_its_reason(stack: Stack, client: str, upstream: str) -> None:
    """An invalid-request 400 (not context length) is never retried nor failed over; the client gets a 400 in its
    own format that carries the provider's reason."""
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    for stream in (False, True):
        with pytest.raises(BAD_REQUEST[client]) as caught:
            await run_sync(sdk.ask, stack.model(upstream, "badrequest"), sdk.start(), stream=stream)
        assert error_status(caught.value)[0] == 400
        assert "the fake provider refuses this request" in str(caught.value)
    sdk.close()
    assert [(s.model, s.status, s.stream) for s in stack.requests(upstream)] == [
        ("badrequest", 400, False),
        ("badrequest", 400, True),
    ]


@UPSTREAM
@STREAM
@pytest.mark.gateway_config(max_retry_interval=0.05)
async def test_provider_500_once_is_retried_invisibly(stack: Stack, upstream: str, stream: bool) -> None:
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model(upstream, "flaky"), sdk.start(), stream=stream)
    sdk.close()
    assert answer.text == script_text("text", upstream)
    assert [(s.model, s.status) for s in stack.requests(upstream)] == [("flaky", 500), ("flaky", 200)]


@UPSTREAM
@pytest.mark.gateway_config(max_retry_interval=0.05, request_retry=2)
async def test_provider_down_gets_bounded_attempts_then_503(stack: Stack, upstream: str) -> None:
    """A provider that stays overloaded (Anthropic 529, others 503) sees exactly ``request-retry + 1`` attempts; the
    client then gets 503."""
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    with pytest.raises(openai.InternalServerError) as caught:
        await run_sync(sdk.ask, stack.model(upstream, "down"), sdk.start())
    sdk.close()
    assert error_status(caught.value)[0] == 503
    attempts = stack.requests(upstream)
    assert [s.model for s in attempts] == ["down"] * 3
    assert {s.status for s in attempts} == {529 if upstream == "anthropic" else 503}


@pytest.mark.gateway_config(max_retry_interval=0.05, request_retry=1)
async def test_unreachable_provider_is_a_clean_5xx(stack: Stack) -> None:
    """A provider whose port refuses connections: bounded retries, then a 502/503 in the client's format."""
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            await run_sync(sdk.ask, DEAD, sdk.start(), stream=stream)
        assert error_status(caught.value)[0] in (502, 503)
    sdk.close()


@UPSTREAM
@pytest.mark.gateway_config(timeouts=Timeouts(first_byte=0.3), max_retry_interval=0.05, request_retry=1)
async def test_silent_provider_times_out_at_first_byte(stack: Stack, upstream: str) -> None:
    """A provider that never answers: each attempt ends at the first-byte timeout (the gateway closes the
    connection), ``request-retry + 1`` attempts, then 504."""
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    with pytest.raises(openai.APIStatusError) as caught:
        await run_sync(sdk.ask, stack.model(upstream, "silent"), sdk.start(), stream=True)
    sdk.close()
    assert error_status(caught.value)[0] == 504
    attempts = stack.requests(upstream)
    assert [s.model for s in attempts] == ["silent", "silent"]
    with trio.fail_after(DISCONNECT_GUARD_S):
        for seen in attempts:
            await seen.disconnected.wait()


@UPSTREAM
@pytest.mark.gateway_config(timeouts=Timeouts(idle=0.3))
async def test_stalled_stream_ends_with_an_error(stack: Stack, upstream: str) -> None:
    """The provider sends one chunk and then nothing, connection open: the idle-gap timeout ends the client's stream
    with an error after the partial text (never a normal end), and the upstream connection is closed."""
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    with pytest.raises(openai.APIError):
        await run_sync(sdk.ask, stack.model(upstream, "endless"), sdk.start(), stream=True)
    sdk.close()
    assert sdk.last is not None and sdk.last.text == "Hello " and sdk.last.finish is None
    [seen] = stack.requests(upstream)
    with trio.fail_after(DISCONNECT_GUARD_S):
        await seen.disconnected.wait()

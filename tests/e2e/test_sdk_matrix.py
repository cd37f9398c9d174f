"""Every official client SDK x every provider kind, through the real gateway: text, streaming, a tool-call round trip,
thinking in the client's own reasoning field, a provider 429 and a bad client key.

Clients: ``openai`` Chat Completions and Responses, ``anthropic`` Messages, ``google-genai``, ``ollama`` (sync
clients, see ``clients.py``). Upstreams: the fake OpenAI Chat, OpenAI Responses, Anthropic, Gemini and Ollama
providers (``fakes.py``). Each test also asserts what the fake received: the translated request in the provider's
own format, with the provider's key.
"""

from __future__ import annotations

import base64

import pytest

from tests.e2e import clients
from tests.e2e.checks import (
    check_parallel_results,
    check_request,
    check_tool_result,
    forced_tool,
    images_in,
    sampling_of,
    system_text,
    thinking_requested,
    user_text,
)
from tests.e2e.clients import (
    AUTH,
    BAD_REQUEST,
    PER_CLIENT,
    PROMPT,
    RATE_LIMIT,
    TOOL_PROMPT,
    TOOL_RESULT,
    TOOL_RESULTS,
    Sampling,
    error_status,
)
from tests.e2e.conftest import BAD_CLIENT_KEY, CLIENT_KEY, PER_UPSTREAM, STREAM_OR_NOT, Stack, run_sync
from tests.e2e.fakes import INPUT_TOKENS, script_output_tokens, script_signature, script_text, script_thinking

# The normal end of an answer, as each client SDK reports it: for text, and after a tool call.
FINISH = {
    "openai-chat": ("stop", "tool_calls"),
    "openai-responses": ("completed", "completed"),
    "anthropic": ("end_turn", "tool_use"),
    "gemini": ("STOP", "STOP"),
    "ollama": ("stop", "stop"),
}

pytestmark = [PER_UPSTREAM, PER_CLIENT]

STREAM = STREAM_OR_NOT


def _sdk(stack: Stack, client: str, key: str = CLIENT_KEY) -> clients.Adapter:
    return clients.make(client, stack.url, key)


@STREAM
async def test_text(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    sdk = _sdk(stack, client)
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start(), stream=stream)
    sdk.close()
    assert answer.text == script_text("text", upstream)
    assert answer.tool_calls == []
    assert answer.finish in (FINISH[client][0], "response.completed")
    assert answer.usage == (INPUT_TOKENS, script_output_tokens("text")), "usage must be the provider's"
    if stream:
        assert answer.chunks >= 2, "the answer arrived in one piece: the stream was not incremental"
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=stream, prompt=PROMPT)


@STREAM
async def test_tool_round_trip(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    """The model calls get_weather, the client runs it and sends the result back, the model answers with it."""
    sdk = _sdk(stack, client)
    first, final = await run_sync(sdk.tool_round_trip, stack.model(upstream, "tool"), stream=stream)
    sdk.close()
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert first.finish in (FINISH[client][1], "response.completed")
    assert final.finish in (FINISH[client][0], "response.completed")
    assert first.usage == (INPUT_TOKENS, script_output_tokens("tool_call"))
    assert final.usage == (INPUT_TOKENS, script_output_tokens("tool_answer"))
    if client in ("openai-chat", "openai-responses", "anthropic"):
        assert first.tool_calls[0].id, "this client format needs a tool-call id to send the result back"
    assert final.text.startswith("The tool said: ") and TOOL_RESULT in final.text
    first_seen, second_seen = stack.requests(upstream)
    check_request(upstream, first_seen, behaviour="tool", stream=stream)
    check_request(upstream, second_seen, behaviour="tool", stream=stream)
    check_tool_result(upstream, second_seen, TOOL_RESULT, provider_ids=client != "ollama")


@STREAM
async def test_thinking(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    """Reasoning shows in the client's own reasoning field; the signature passes byte-exact when client and provider
    speak the same format."""
    sdk = _sdk(stack, client)
    answer = await run_sync(sdk.ask, stack.model(upstream, "think"), sdk.start(), stream=stream, think=True)
    sdk.close()
    assert answer.text == script_text("think", upstream)
    assert answer.reasoning == script_thinking()
    assert answer.usage == (INPUT_TOKENS, script_output_tokens("think"))
    if (client, upstream) == ("anthropic", "anthropic"):
        assert answer.signature == script_signature("anthropic")
    if (client, upstream) == ("gemini", "gemini"):
        assert answer.signature == base64.b64decode(script_signature("gemini"))
    if (client, upstream) == ("openai-responses", "responses"):
        assert answer.signature == script_signature("responses")
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="think", stream=stream)
    assert thinking_requested(upstream, seen.body), "the client asked for thinking; the provider request did not"


async def test_provider_rate_limit(stack: Stack, client: str, upstream: str) -> None:
    """The provider's 429 reaches the client as the SDK's rate-limit error with Retry-After; a second request
    within that Retry-After is answered 429 by the gateway without asking the provider again."""
    sdk = _sdk(stack, client)
    model = stack.model(upstream, "ratelimit")
    for stream in (False, True):
        with pytest.raises(RATE_LIMIT[client]) as caught:
            await run_sync(sdk.ask, model, sdk.start(), stream=stream)
        status, retry_after = error_status(caught.value)
        assert status == 429, caught.value
        if retry_after is not None:
            assert 100 <= int(retry_after) <= 120
    sdk.close()
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="ratelimit", stream=False)


async def test_bad_client_key(stack: Stack, client: str, upstream: str) -> None:
    """A wrong gateway key is refused with 401 in the client's format; nothing reaches any provider."""
    sdk = _sdk(stack, client, BAD_CLIENT_KEY)
    with pytest.raises(AUTH[client]) as caught:
        await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start())
    sdk.close()
    assert error_status(caught.value)[0] == 401
    assert stack.all_requests() == []


# Clients whose format can carry a reasoning signature back (Anthropic thinking block, Responses reasoning item's
# encrypted_content, Gemini thoughtSignature), and those that can carry Gemini's tool-call signature (Gemini itself,
# the Responses carrier item, Chat's extra_content.google.thought_signature).
CARRIES_REASONING_SIGNATURE = {"anthropic", "openai-responses", "gemini"}
CARRIES_TOOL_SIGNATURE = {"gemini", "openai-responses", "openai-chat"}


@STREAM
async def test_thinking_tool_round_trip(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    """Think, call a tool, get the result, answer — with thinking on in both turns. The second provider request must
    be one the real provider accepts: the signature comes back byte-exact where the client's format can carry it;
    Anthropic gets a signed thinking block first in the tool-use turn, or thinking off (it rejects an unsigned
    tool loop); Gemini gets the call's own signature, or the documented ``skip_thought_signature_validator``."""
    sdk = _sdk(stack, client)
    first, final = await run_sync(sdk.tool_round_trip, stack.model(upstream, "thinktool"), stream=stream, think=True)
    sdk.close()
    assert first.reasoning == script_thinking("think_tool_call")
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert final.text.startswith("The tool said: ") and TOOL_RESULT in final.text
    _, second = stack.requests(upstream)
    check_tool_result(upstream, second, TOOL_RESULT, provider_ids=client != "ollama")
    signature = script_signature(upstream)
    body = second.body
    if upstream == "anthropic":
        turn = body["messages"][-2]["content"]
        if client in CARRIES_REASONING_SIGNATURE:
            assert turn[0] == {"type": "thinking", "thinking": script_thinking("think_tool_call"),
                               "signature": signature}
            assert thinking_requested(upstream, body)
        else:
            assert turn[0]["type"] == "thinking" or not thinking_requested(upstream, body)
            assert all(b.get("signature") for b in turn if b["type"] == "thinking")
    elif upstream == "gemini":
        [call] = [p for p in body["contents"][-2]["parts"] if "functionCall" in p]
        expected = signature if client in CARRIES_TOOL_SIGNATURE else "skip_thought_signature_validator"
        assert call.get("thoughtSignature") == expected
    elif upstream == "responses":
        reasoning = [i for i in body["input"] if i.get("type") == "reasoning"]
        if client in CARRIES_REASONING_SIGNATURE:
            assert [r.get("encrypted_content") for r in reasoning] == [signature]
        assert all(r.get("encrypted_content") or r.get("id") for r in reasoning)


@STREAM
async def test_parallel_tool_calls_round_trip(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    """Two calls in one turn (Paris, then Tokyo): the client sees both, in order, with distinct ids where its
    format has ids; each result reaches the provider linked to its own call; the answer quotes both, in order."""
    sdk = _sdk(stack, client)
    first, final = await run_sync(sdk.tool_round_trip, stack.model(upstream, "tools2"), stream=stream)
    sdk.close()
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    if client in ("openai-chat", "openai-responses", "anthropic"):
        ids = [c.id for c in first.tool_calls]
        assert all(ids) and len(set(ids)) == 2
    assert final.text.startswith("The tool said: ")
    paris, tokyo = final.text.find(TOOL_RESULTS["Paris"]), final.text.find(TOOL_RESULTS["Tokyo"])
    assert 0 < paris < tokyo, final.text
    _, second = stack.requests(upstream)
    check_parallel_results(upstream, second, TOOL_RESULTS, provider_ids=client != "ollama")


# A 1x1 PNG (the bytes a client would read from a file).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_image_input(stack: Stack, client: str, upstream: str) -> None:
    """A user turn with text and a PNG reaches the provider with the same bytes, as that provider takes images
    (data URL, base64 source block, inlineData, Ollama ``images``: standard base64 except Gemini, which accepts
    both alphabets), with its media type where the format has one."""
    sdk = _sdk(stack, client)
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start_with_image("What is this?", PNG))
    sdk.close()
    assert answer.text == script_text("text", upstream)
    [seen] = stack.requests(upstream)
    check_request(upstream, seen, behaviour="text", stream=False, prompt="What is this?")
    [(mime, data)] = images_in(upstream, seen.body)
    assert data == PNG
    assert mime in ("image/png", None) and (mime is None) == (upstream == "ollama")


SYSTEM = "You are a terse weather bot."


async def test_system_prompt(stack: Stack, client: str, upstream: str) -> None:
    """The client's system prompt reaches the provider in the provider's own place for it, not as user text."""
    sdk = _sdk(stack, client)
    sdk.system = SYSTEM
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start())
    sdk.close()
    assert answer.text == script_text("text", upstream)
    [seen] = stack.requests(upstream)
    assert system_text(upstream, seen.body) == SYSTEM
    assert SYSTEM not in user_text(upstream, seen.body)


SAMPLING = Sampling(temperature=0.25, max_tokens=123, stop=("END",))


async def test_sampling_settings(stack: Stack, client: str, upstream: str) -> None:
    """Temperature, the output-token limit and stop sequences reach the provider in its own fields. The Responses
    API has no stop sequences: a client that sends some to a Responses provider gets a clear 400 naming ``stop``
    (the codec refuses what the target cannot express rather than drop it), and nothing is sent."""
    sdk = _sdk(stack, client)
    sdk.sampling = SAMPLING
    sends_stop = client != "openai-responses"  # the Responses API (and SDK) has no stop sequences
    if upstream == "responses" and sends_stop:
        with pytest.raises(BAD_REQUEST[client]) as caught:
            await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start())
        sdk.close()
        assert error_status(caught.value)[0] == 400
        assert "stop" in str(caught.value)
        assert stack.requests(upstream) == []
        return
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start())
    sdk.close()
    assert answer.text == script_text("text", upstream)
    [seen] = stack.requests(upstream)
    stop = list(SAMPLING.stop) if sends_stop else []
    temperature = None if client == "anthropic" else SAMPLING.temperature  # the anthropic SDK has no temperature
    assert sampling_of(upstream, seen.body) == (temperature, SAMPLING.max_tokens, stop)


async def test_forced_tool_choice(stack: Stack, client: str, upstream: str) -> None:
    """A client that forces the get_weather call gets the call, and the provider request forces it in the
    provider's own terms. Ollama has no tool_choice: forcing a call toward an Ollama provider is a clear 400 naming
    ``tool_choice`` (nothing is sent); an Ollama *client* cannot force a call at all, so it only checks that it
    still gets the call unforced."""
    sdk = _sdk(stack, client)
    sdk.force_tool = client != "ollama"
    model = stack.model(upstream, "tool")
    if upstream == "ollama" and sdk.force_tool:
        with pytest.raises(BAD_REQUEST[client]) as caught:
            await run_sync(sdk.ask, model, sdk.start(TOOL_PROMPT), tools=True)
        sdk.close()
        assert error_status(caught.value)[0] == 400 and "tool_choice" in str(caught.value)
        assert stack.requests(upstream) == []
        return
    answer = await run_sync(sdk.ask, model, sdk.start(TOOL_PROMPT), tools=True)
    sdk.close()
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("get_weather", {"city": "Paris"})]
    [seen] = stack.requests(upstream)
    if sdk.force_tool:
        assert forced_tool(upstream, seen.body) == "get_weather"

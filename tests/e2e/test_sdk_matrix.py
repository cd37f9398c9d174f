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
from tests.e2e.checks import check_request, check_tool_result, thinking_requested
from tests.e2e.clients import AUTH, CLIENT_NAMES, PROMPT, RATE_LIMIT, TOOL_RESULT, error_status
from tests.e2e.conftest import BAD_CLIENT_KEY, CLIENT_KEY, UPSTREAM_NAMES, Stack, run_sync
from tests.e2e.fakes import script_signature, script_text, script_thinking

pytestmark = [pytest.mark.parametrize("upstream", UPSTREAM_NAMES), pytest.mark.parametrize("client", CLIENT_NAMES)]

STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def _sdk(stack: Stack, client: str, key: str = CLIENT_KEY) -> clients.Adapter:
    return clients.make(client, stack.url, key)


@STREAM
async def test_text(stack: Stack, client: str, upstream: str, stream: bool) -> None:
    sdk = _sdk(stack, client)
    answer = await run_sync(sdk.ask, stack.model(upstream, "text"), sdk.start(), stream=stream)
    sdk.close()
    assert answer.text == script_text("text", upstream)
    assert answer.tool_calls == []
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
    if (client, upstream) == ("anthropic", "anthropic"):
        assert answer.signature == script_signature()
    if (client, upstream) == ("gemini", "gemini"):
        assert answer.signature == base64.b64decode(script_signature())
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

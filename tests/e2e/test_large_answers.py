"""Long answers arrive complete and exact in every client format (issue 19, target 6).

The fake's ``long`` answer is 12,000 token-sized text deltas (~84K characters: past the failover transcript's cap,
so the transcript's joining and its drop at the cap both run). Each client format reads it through the real gateway
with its official SDK (and ``/v1/ws`` with ``muxtrio.client``, legacy completions with the openai SDK): the text
must be the fake's, character for character, and the stream must end normally. Memory is measured in
``perf/big_answer.py``, not asserted here; the transcript cap's behaviour is tested in ``tests/engine/test_splice.py``.
"""

from __future__ import annotations

import pytest

import muxtrio.client
from tests.e2e import clients
from tests.e2e.clients import PER_CLIENT, openai_client
from tests.e2e.conftest import CLIENT_KEY, PER_UPSTREAM, Stack, run_sync
from tests.e2e.fakes import LONG_DELTAS, script_text


@PER_CLIENT
async def test_a_long_streamed_answer_arrives_complete_in_every_client_format(stack: Stack, client: str) -> None:
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model("openai", "long"), sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("long", "openai")
    assert answer.chunks >= LONG_DELTAS // 2  # streamed, not one buffered piece
    assert answer.finish is not None


@PER_UPSTREAM
async def test_a_long_answer_from_every_provider_format_arrives_complete(stack: Stack, upstream: str) -> None:
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model(upstream, "long"), sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("long", upstream)
    assert answer.finish is not None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_long_legacy_completion_arrives_complete(stack: Stack, stream: bool) -> None:
    sdk = openai_client(stack.url, CLIENT_KEY)

    def ask() -> tuple[str, str | None]:
        if not stream:
            whole = sdk.completions.create(model=stack.model("openai", "long"), prompt="Say hello")
            return whole.choices[0].text, whole.choices[0].finish_reason
        text: list[str] = []
        finish: str | None = None
        for chunk in sdk.completions.create(model=stack.model("openai", "long"), prompt="Say hello", stream=True):
            for choice in chunk.choices:
                text.append(choice.text)
                finish = choice.finish_reason or finish
        return "".join(text), finish

    text, finish = await run_sync(ask)
    sdk.close()
    assert text == script_text("long", "openai")
    assert finish == "stop"


async def test_a_long_answer_over_the_multiplexed_websocket_arrives_complete(stack: Stack) -> None:
    ws_url = "ws" + stack.url.removeprefix("http") + "/v1/ws"
    body = {"model": stack.model("openai", "long"), "messages": [{"role": "user", "content": "Say hello"}]}
    text: list[str] = []
    finish: str | None = None
    async with muxtrio.client.connect(ws_url, api_key=CLIENT_KEY) as mux, mux.stream("openai-chat", body) as events:
        async for chunk in events:
            for choice in chunk.get("choices", ()):
                text.append((choice.get("delta") or {}).get("content") or "")
                finish = choice.get("finish_reason") or finish
    assert "".join(text) == script_text("long", "openai")
    assert finish == "stop"


async def test_a_long_non_stream_answer_arrives_complete(stack: Stack) -> None:
    sdk = clients.make("anthropic", stack.url, CLIENT_KEY)
    answer = await run_sync(sdk.ask, stack.model("openai", "long"), sdk.start(), stream=False)
    sdk.close()
    assert answer.text == script_text("long", "openai")


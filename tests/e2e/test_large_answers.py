"""Long answers arrive complete and exact in every client format (issue 19, target 6).

The fake's ``long`` answer is 12,000 token-sized text deltas (~84K characters: past the failover transcript's cap,
so the transcript's joining and its drop at the cap both run). Each client format reads it through the real gateway
with its official SDK (and ``/v1/ws`` with ``muxtrio.client``, legacy completions with the openai SDK): the text
must be the fake's, character for character, and the stream must end normally. Memory is measured in
``perf/big_answer.py``, not asserted here; the transcript cap's behaviour is tested in ``tests/engine/test_splice.py``.
"""

from __future__ import annotations

import orjson
import pytest

import muxtrio.client
from muxtrio.server.handlers import LARGE_BATCH_BYTES
from tests.e2e import clients
from tests.e2e.clients import PER_CLIENT, openai_client, raw_client
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



async def test_a_long_responses_stream_repeats_the_whole_answer_in_each_done_event_in_order(stack: Stack) -> None:
    """The Responses stream's closing events each carry the whole answer (here larger than the writer's large-batch
    size, so they are written one frame at a time): every one must be there, whole, in the protocol's order."""
    body = {"model": stack.model("openai", "long"), "input": "Say hello", "stream": True}
    async with raw_client(stack.url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as http:
        response = await http.post("/v1/responses", content=orjson.dumps(body))
    assert response.status_code == 200
    events = [orjson.loads(block.split(b"data: ", 1)[1]) for block in response.content.split(b"\n\n") if block]
    expected = script_text("long", "openai")
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == expected
    closing = [e for e in events if e["type"] in ("response.output_text.done", "response.content_part.done",
                                                   "response.output_item.done", "response.completed")]
    assert [e["type"] for e in closing] == ["response.output_text.done", "response.content_part.done",
                                            "response.output_item.done", "response.completed"]
    assert len(expected) > LARGE_BATCH_BYTES
    assert closing[0]["text"] == expected
    assert closing[1]["part"]["text"] == expected
    assert closing[2]["item"]["content"][0]["text"] == expected
    assert closing[3]["response"]["output"][0]["content"][0]["text"] == expected
    assert events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

"""What agent CLIs send beyond the SDK examples, through the real gateway (issue 12 item 8, issue 20 items 1, 2, 5):

- Codex CLI's ``namespace`` tools and hosted ``web_search`` (openai SDK, Responses) toward every provider format:
  members flattened for function-only formats, calls shown back as the Responses API shows namespaced calls, the web
  search mapped where the target has one and dropped with an ``x-muxtrio-warning`` header elsewhere;
- Claude Code's ``anthropic-beta`` header with its beta body field (``context_management``): forwarded to an
  Anthropic provider (whose fake refuses the field without the header, as Anthropic does), never sent elsewhere;
- the model name in answers (``response-model``): the alias asked for, the fallback's name after a failover, the
  upstream name when configured;
- signed thinking that a Gemini client dropped from its history, restored from the gateway's thinking cache toward
  an Anthropic provider whose fake enforces "signed thinking first" with thinking on.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION

from muxtrio.config import HostedToolPolicy, ResponseModel
from tests.e2e import clients
from tests.e2e.clients import PROMPT, TOOL_DESCRIPTION, TOOL_SCHEMA
from tests.e2e.conftest import CLIENT_KEY, PER_UPSTREAM, STREAM_OR_NOT, Stack, run_sync
from tests.e2e.fakes import script_signature, script_text

NAMESPACE = "weather"
FLAT = "weather__get_weather"
CODEX_TOOLS: list[dict[str, Any]] = [
    {
        "type": "namespace",
        "name": NAMESPACE,
        "description": "Weather tools.",
        "tools": [
            {"type": "function", "name": "get_weather", "description": TOOL_DESCRIPTION, "parameters": TOOL_SCHEMA,
             "strict": False},
        ],
    },
    {"type": "web_search", "external_web_access": False},
]
# The gateway renders a Gemini functionResponse object as compact JSON text.
GEMINI_RESULT = json.dumps({"result": "sunny"}, separators=(",", ":"))
CONTEXT_BETA = "context-management-2025-06-27"
CONTEXT_MANAGEMENT = {"edits": [{"type": "clear_tool_uses_20250919"}]}


def _offered_names(api: str, body: dict[str, Any]) -> list[str]:
    """The function names a provider request offers, in its own format."""
    tools = body.get("tools") or []
    if api in ("openai", "ollama"):
        return [t["function"]["name"] for t in tools if t.get("type") == "function"]
    if api == "anthropic":
        return [t["name"] for t in tools if "input_schema" in t]
    if api == "gemini":
        return [d["name"] for t in tools for d in t.get("functionDeclarations") or []]
    return [t["name"] for t in tools if t.get("type") == "function"]


def _hosted_in(api: str, body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools") or []
    if api == "anthropic":
        return [t for t in tools if "input_schema" not in t]
    if api == "gemini":
        return [t for t in tools if "functionDeclarations" not in t]
    if api == "responses":
        return [t for t in tools if t.get("type") not in ("function", "namespace")]
    return []


EXPECTED_HOSTED: dict[str, list[Any]] = {
    "openai": [],
    "ollama": [],
    "anthropic": [{"type": "web_search_20250305", "name": "web_search"}],
    "gemini": [{"googleSearch": {}}],
    "responses": [{"type": "web_search", "external_web_access": False}],
}


# --------------------------------------------------------------------------------------- Codex: namespace + web_search
@PER_UPSTREAM
@STREAM_OR_NOT
async def test_codex_namespace_tool_round_trip(stack: Stack, upstream: str, stream: bool) -> None:
    model = stack.model(upstream, "nstool")

    def first() -> tuple[Any, dict[str, str]]:
        with clients.openai_client(stack.url, CLIENT_KEY) as client:
            kwargs: dict[str, Any] = {"model": model, "input": PROMPT, "tools": CODEX_TOOLS, "store": False}
            if not stream:
                raw = client.responses.with_raw_response.create(**kwargs)
                return raw.parse(), dict(raw.headers)
            with client.responses.with_streaming_response.create(**kwargs, stream=True) as raw:
                final = None
                for event in raw.parse():
                    if event.type == "response.completed":
                        final = event.response
                return final, dict(raw.headers)

    response, headers = await run_sync(first)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.namespace, c.name, json.loads(c.arguments)) for c in calls] == [
        (NAMESPACE, "get_weather", {"city": "Paris"})
    ]
    sent = stack.requests(upstream)[-1].body
    if upstream == "responses":
        namespaces = [t for t in sent["tools"] if t.get("type") == "namespace"]
        assert [(n["name"], [m["name"] for m in n["tools"]]) for n in namespaces] == [(NAMESPACE, ["get_weather"])]
    else:
        assert _offered_names(upstream, sent) == [FLAT]
    assert _hosted_in(upstream, sent) == EXPECTED_HOSTED[upstream]
    if EXPECTED_HOSTED[upstream]:
        assert "x-muxtrio-warning" not in headers
    else:
        target = "openai-chat" if upstream == "openai" else "ollama"
        assert headers["x-muxtrio-warning"] == (
            f"provider-run tool 'web_search' dropped: the serving provider ({target} format) cannot run it"
        )

    # Turn 2, as Codex sends it: the call item back verbatim (namespace and all) and its output.
    call = calls[0]
    history = [
        {"role": "user", "content": PROMPT},
        {"type": "function_call", "call_id": call.call_id, "namespace": NAMESPACE, "name": "get_weather",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]

    def second() -> Any:
        with clients.openai_client(stack.url, CLIENT_KEY) as client:
            return client.responses.create(model=model, input=history, tools=CODEX_TOOLS, store=False)

    answer = await run_sync(second)
    assert answer.output_text == script_text("tool_answer", upstream, "sunny")
    sent = stack.requests(upstream)[-1].body
    if upstream == "responses":
        items = [i for i in sent["input"] if i.get("type") == "function_call"]
        assert [(i["namespace"], i["name"]) for i in items] == [(NAMESPACE, "get_weather")]
    elif upstream == "anthropic":
        uses = [b for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"]
                if b["type"] == "tool_use"]
        assert [u["name"] for u in uses] == [FLAT]
    elif upstream == "gemini":
        named = [p["functionCall"]["name"] for c in sent["contents"] for p in c["parts"] if "functionCall" in p]
        assert named == [FLAT]
    else:
        named = [t["function"]["name"] for m in sent["messages"] for t in m.get("tool_calls") or []]
        assert named == [FLAT]


@pytest.mark.gateway_config(hosted_tools=HostedToolPolicy.REJECT)
async def test_codex_web_search_refused_toward_chat_with_hosted_tools_reject(stack: Stack) -> None:
    """``hosted-tools: reject``: a provider that cannot run the web search is not asked at all; the client gets a
    400 naming the tool."""
    import openai

    def run() -> Any:
        with clients.openai_client(stack.url, CLIENT_KEY) as client:
            return client.responses.create(model=stack.model("openai", "nstool"), input=PROMPT, tools=CODEX_TOOLS)

    with pytest.raises(openai.BadRequestError) as info:
        await run_sync(run)
    assert "web_search" in str(info.value)
    assert stack.requests("openai") == []


# ------------------------------------------------------------------------------ Claude Code: anthropic-beta + fields
@STREAM_OR_NOT
async def test_anthropic_beta_header_and_field_reach_an_anthropic_provider(stack: Stack, stream: bool) -> None:
    def run() -> str:
        with clients.anthropic_client(stack.url, CLIENT_KEY) as client:
            kwargs: dict[str, Any] = {
                "model": stack.model("anthropic", "text"),
                "max_tokens": 64,
                "messages": [{"role": "user", "content": PROMPT}],
                "extra_headers": {"anthropic-beta": f"claude-code-20250219,{CONTEXT_BETA}"},
                "extra_body": {"context_management": CONTEXT_MANAGEMENT},
            }
            if not stream:
                message = client.messages.create(**kwargs)
                return "".join(b.text for b in message.content if b.type == "text")
            with client.messages.stream(**kwargs) as events:
                return events.get_final_text()

    assert await run_sync(run) == script_text("text", "anthropic")
    seen = stack.requests("anthropic")[-1]
    assert seen.headers["anthropic-beta"] == f"claude-code-20250219,{CONTEXT_BETA}"
    assert seen.headers["anthropic-version"] == ANTHROPIC_API_VERSION  # the client's, not the gateway's default
    assert seen.body["context_management"] == CONTEXT_MANAGEMENT


async def test_anthropic_fake_refuses_the_beta_field_without_its_header(stack: Stack) -> None:
    """The control for the test above: without the beta header the provider refuses the field, as Anthropic does,
    and the client gets that 400 in its own error shape."""

    def run() -> Any:
        with clients.anthropic_client(stack.url, CLIENT_KEY) as client:
            return client.messages.create(
                model=stack.model("anthropic", "text"), max_tokens=64,
                messages=[{"role": "user", "content": PROMPT}], extra_body={"context_management": CONTEXT_MANAGEMENT},
            )

    with pytest.raises(anthropic.BadRequestError) as info:
        await run_sync(run)
    assert "context_management: Extra inputs are not permitted" in str(info.value)


@pytest.mark.parametrize("upstream", ["openai", "responses", "gemini", "ollama"])
async def test_anthropic_beta_field_is_not_sent_to_other_formats(stack: Stack, upstream: str) -> None:
    def run() -> str:
        with clients.anthropic_client(stack.url, CLIENT_KEY) as client:
            message = client.messages.create(
                model=stack.model(upstream, "text"), max_tokens=64, messages=[{"role": "user", "content": PROMPT}],
                extra_headers={"anthropic-beta": CONTEXT_BETA}, extra_body={"context_management": CONTEXT_MANAGEMENT},
            )
            return "".join(b.text for b in message.content if b.type == "text")

    assert await run_sync(run) == script_text("text", upstream)
    seen = stack.requests(upstream)[-1]
    assert "context_management" not in seen.body
    assert "anthropic-beta" not in seen.headers


# ------------------------------------------------------------------------------------------------ model names
def _chat_models(stack: Stack, model: str, stream: bool) -> set[str]:
    with clients.openai_client(stack.url, CLIENT_KEY) as client:
        messages = [{"role": "user", "content": PROMPT}]
        if not stream:
            return {client.chat.completions.create(model=model, messages=messages).model}  # type: ignore[arg-type]
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
        return {chunk.model for chunk in chunks}


@STREAM_OR_NOT
async def test_answers_carry_the_requested_alias(stack: Stack, stream: bool) -> None:
    """``anthropic-text`` is an alias of the upstream model ``text``: the client sees the name it asked for."""
    assert await run_sync(_chat_models, stack, stack.model("anthropic", "text"), stream) == {"anthropic-text"}
    assert stack.requests("anthropic")[-1].body["model"] == "text"


@STREAM_OR_NOT
async def test_answers_from_a_fallback_carry_the_fallback_name(stack: Stack, stream: bool) -> None:
    """``anthropic-ctxlimit`` fails with a context-length error and falls back to ``openai-text``: the answer names
    the fallback (as configured), so the failover stays visible."""
    assert await run_sync(_chat_models, stack, stack.model("anthropic", "ctxlimit"), stream) == {"openai-text"}
    assert [s.model for s in stack.requests("openai")] == ["text"]


@pytest.mark.gateway_config(response_model=ResponseModel.UPSTREAM)
@STREAM_OR_NOT
async def test_response_model_upstream_shows_the_provider_name(stack: Stack, stream: bool) -> None:
    assert await run_sync(_chat_models, stack, stack.model("anthropic", "text"), stream) == {"text"}


# ------------------------------------------------------------------------------- thinking across turns (Gemini CLI)
def _gemini_tool_turns(stack: Stack, stream: bool) -> tuple[Any, Any]:
    """Turn 1 with thinking and a tool; turn 2 with the model turn as Gemini CLI keeps it (thought parts removed)."""
    adapter = clients.Gemini(stack.url, CLIENT_KEY)
    try:
        model = stack.model("anthropic", "thinktool")
        messages = adapter.start()
        first = adapter.ask(model, messages, stream=stream, think=True, tools=True)
        first.raw = [part for part in first.raw or [] if not part.thought]
        history = adapter.after_tool(messages, first, ["sunny"])
        second = adapter.ask(model, history, stream=stream, think=True, tools=True)
        return first, second
    finally:
        adapter.close()


def _last_assistant_blocks(stack: Stack) -> list[dict[str, Any]]:
    body = stack.requests("anthropic")[-1].body
    return [m for m in body["messages"] if m["role"] == "assistant"][-1]["content"]


@STREAM_OR_NOT
async def test_signed_thinking_dropped_by_a_gemini_client_is_restored(stack: Stack, stream: bool) -> None:
    first, second = await run_sync(_gemini_tool_turns, stack, stream)
    assert [c.name for c in first.tool_calls] == ["get_weather"]
    assert second.text == script_text("tool_answer", "anthropic", GEMINI_RESULT)
    body = stack.requests("anthropic")[-1].body
    assert body["thinking"]["type"] == "enabled"  # thinking stays on for the turn after the tool
    blocks = _last_assistant_blocks(stack)
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["signature"] == script_signature("anthropic")


@pytest.mark.gateway_config(thinking_cache_entries=0)
async def test_without_the_thinking_cache_thinking_is_turned_off(stack: Stack) -> None:
    """The control: with the cache disabled the gateway has no signed thinking to send and turns thinking off for
    that turn (what it did before), which the provider accepts."""
    _first, second = await run_sync(_gemini_tool_turns, stack, False)
    assert second.text == script_text("tool_answer", "anthropic", GEMINI_RESULT)
    body = stack.requests("anthropic")[-1].body
    assert body.get("thinking", {"type": "disabled"})["type"] == "disabled"
    assert [b["type"] for b in _last_assistant_blocks(stack)] == ["tool_use"]


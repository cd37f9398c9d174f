"""The agent fakes' provider rules (``tests/agents/rules.py``), each shown refusing the request the real API refuses
and accepting its valid neighbour — so a rule that stopped firing fails here, not silently in the CLI tests. Every
rule id used here has its citation in ``rules.source.txt``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.agents.rules import CHECKS, Refusal

SOURCES = (Path(__file__).parent / "rules.source.txt").read_text(encoding="utf-8")
CITED = set(re.findall(r"^== (\S+)$", SOURCES, flags=re.MULTILINE))

USER = {"role": "user", "content": "hi"}


def _anthropic(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 4096, "messages": [USER], **fields}


def _tool_loop(first_block: dict[str, Any] | None, result_id: str = "toolu_1") -> list[dict[str, Any]]:
    blocks = ([first_block] if first_block else []) + [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                                        "input": {}}]
    return [USER, {"role": "assistant", "content": blocks},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": result_id, "content": "ok"}]}]


SIGNED = {"type": "thinking", "thinking": "t", "signature": "issued-sig"}
ADAPTIVE = {"type": "adaptive"}

# (format, model, body, headers, expected rule id or None)
CASES: list[tuple[str, str, dict[str, Any], dict[str, str], str | None]] = [
    # Anthropic
    ("anthropic", "claude-sonnet-4-6", _anthropic(), {}, None),
    ("anthropic", "claude-sonnet-4-6", _anthropic(speed="fast"), {}, "anthropic-unknown-field"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(context_management={"edits": []}), {}, "anthropic-beta-field"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(context_management={"edits": []}),
     {"anthropic-beta": "claude-code-20250219,context-management-2025-06-27"}, None),
    ("anthropic", "claude-sonnet-4-6", _anthropic(tools=[{"name": "t", "input_schema": {}, "defer_loading": True}]),
     {}, "anthropic-beta-field"),
    ("anthropic", "claude-sonnet-4-6", {"model": "m", "messages": [USER]}, {}, "anthropic-max-tokens"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking={"type": "enabled", "budget_tokens": 512}), {},
     "anthropic-thinking"),
    ("anthropic", "claude-sonnet-4-5", _anthropic(thinking=ADAPTIVE), {}, "anthropic-adaptive-thinking"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking=ADAPTIVE), {}, None),
    ("anthropic", "claude-sonnet-4-5", _anthropic(output_config={"effort": "high"}), {}, "anthropic-effort"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(temperature=1.0, top_p=0.95), {}, "anthropic-one-sampler"),
    ("anthropic", "claude-3-7-sonnet", _anthropic(temperature=1.0, top_p=0.95), {}, None),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking=ADAPTIVE, temperature=0.5), {},
     "anthropic-thinking-sampling"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking=ADAPTIVE, top_k=40), {}, "anthropic-thinking-sampling"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(messages=_tool_loop(None)), {}, None),
    ("anthropic", "claude-sonnet-4-6", _anthropic(messages=_tool_loop(None, "toolu_other")), {}, "anthropic-pairing"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(messages=[*_tool_loop(None)[:2], USER]), {}, "anthropic-pairing"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking=ADAPTIVE, messages=_tool_loop(None)), {},
     "anthropic-thinking-tool-turn"),
    ("anthropic", "claude-sonnet-4-6", _anthropic(thinking=ADAPTIVE, messages=_tool_loop(SIGNED)), {}, None),
    ("anthropic", "claude-sonnet-4-6",
     _anthropic(thinking=ADAPTIVE, messages=_tool_loop({**SIGNED, "signature": "forged"})), {}, "anthropic-signature"),
    # OpenAI Chat
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER]}, {}, None),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER], "thinking": {}}, {}, "openai-unknown-field"),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER], "max_tokens": 10}, {}, "openai-reasoning-max-tokens"),
    ("openai", "gpt-4.1", {"model": "m", "messages": [USER], "max_tokens": 10}, {}, None),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER], "max_completion_tokens": 10}, {}, None),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER], "top_p": 0.95}, {}, "openai-reasoning-sampling"),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [USER], "temperature": 1}, {}, None),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [
        USER, {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                    "function": {"name": "f", "arguments": "{}"}}]},
        USER]}, {}, "openai-chat-pairing"),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [
        USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}, {}, "openai-chat-pairing"),
    ("openai", "gpt-5-mini", {"model": "m", "messages": [
        USER, {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                    "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}, {}, None),
    # OpenAI Responses
    ("responses", "gpt-5", {"model": "m", "input": "hi", "client_metadata": {}}, {}, None),
    ("responses", "gpt-5", {"model": "m", "input": "hi", "stop": ["x"]}, {}, "openai-unknown-field"),
    ("responses", "gpt-5", {"model": "m", "input": "hi", "temperature": 0.7}, {}, "openai-reasoning-sampling"),
    ("responses", "gpt-4.1", {"model": "m", "input": "hi", "temperature": 0.7}, {}, None),
    ("responses", "gpt-5", {"model": "m", "input": [
        {"type": "function_call_output", "call_id": "call_9", "output": "x"}]}, {}, "openai-responses-pairing"),
    ("responses", "gpt-5", {"model": "m", "input": [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}]}, {},
     "openai-responses-pairing"),
    ("responses", "gpt-5", {"model": "m", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "forged"}]}, {},
     "openai-responses-encrypted"),
    ("responses", "gpt-5", {"model": "m", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "issued-sig"}]}, {}, None),
    # Gemini
    ("gemini", "gemini-3-pro-preview", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {}, None),
    ("gemini", "gemini-3-pro-preview", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "store": True},
     {}, "gemini-unknown-field"),
    ("gemini", "gemini-3-pro-preview", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                        "generationConfig": {"reasoningEffort": "high"}}, {}, "gemini-unknown-field"),
    ("gemini", "gemini-3-pro-preview", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                        "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024,
                                                                                "thinkingLevel": "high"}}},
     {}, "gemini-thinking-level-budget"),
]

_CALL_TURN = [
    {"role": "user", "parts": [{"text": "hi"}]},
    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "issued-sig"}]},
]
_ANSWER = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "x"}}}]}
CASES += [
    ("gemini", "gemini-3-pro-preview", {"contents": [*_CALL_TURN, _ANSWER]}, {}, None),
    ("gemini", "gemini-3-pro-preview", {"contents": [*_CALL_TURN, {"role": "user", "parts": []}]}, {},
     "gemini-pairing"),
    ("gemini", "gemini-3-pro-preview", {"contents": [
        _CALL_TURN[0], {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}, _ANSWER]}, {},
     "gemini-signature"),
    ("gemini", "gemini-2.5-flash", {"contents": [
        _CALL_TURN[0], {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}, _ANSWER]}, {}, None),
    ("gemini", "gemini-3-pro-preview", {"contents": [
        _CALL_TURN[0], {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}},
                                                    "thoughtSignature": "skip_thought_signature_validator"}]},
        _ANSWER]}, {}, None),
    ("gemini", "gemini-3-pro-preview", {"contents": [
        _CALL_TURN[0], {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}},
                                                    "thoughtSignature": "Zm9yZ2Vk"}]}, _ANSWER]}, {},
     "gemini-signature"),
]


@pytest.mark.parametrize(("api", "model", "body", "headers", "expected"), CASES,
                         ids=[f"{c[0]}-{c[4] or 'accepted'}-{i}" for i, c in enumerate(CASES)])
def test_rule(api: str, model: str, body: dict[str, Any], headers: dict[str, str], expected: str | None) -> None:
    refusal = CHECKS[api](model, body, headers, {"issued-sig"})
    if expected is None:
        assert refusal is None
    else:
        assert isinstance(refusal, Refusal)
        assert (refusal.rule, refusal.status) == (expected, 400), refusal.message


def test_every_rule_is_cited_and_exercised() -> None:
    source = (Path(__file__).parent / "rules.py").read_text(encoding="utf-8")
    used = set(re.findall(r'_(?:anthropic|openai|gemini)_error\(\s*"([a-z0-9-]+)"', source))
    assert used <= CITED, f"rules without a citation in rules.source.txt: {sorted(used - CITED)}"
    exercised = {c[4] for c in CASES if c[4] is not None}
    assert used == exercised, f"rules without a refusing case here: {sorted(used - exercised)}"

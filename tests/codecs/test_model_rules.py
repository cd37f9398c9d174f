"""The model-family parameter table (``codecs/model_rules.py``): which rule a model gets, what it does to the IR
request, and that the codecs then send what the family accepts."""

from __future__ import annotations

import orjson
import pytest

from muxtrio.codecs.base import Format, Target
from muxtrio.codecs.model_rules import BUILTIN_RULES, SAMPLING_FIELDS, ModelRule, ModelRules, apply_rule
from muxtrio.codecs.registry import get_codec
from muxtrio.config import SAMPLING_FIELD_NAMES
from muxtrio.ir.request import Effort, Message, Request, Role, Sampling, Text, Thinking

RULES = ModelRules()
GEMINI_CLI_SAMPLING = Sampling(temperature=0.0, top_p=1.0, top_k=64, max_tokens=32000)


def request(model: str = "m", *, sampling: Sampling = GEMINI_CLI_SAMPLING, thinking: Thinking | None = None) -> Request:
    return Request(model, (Message(Role.USER, (Text("hi"),)),), sampling=sampling, thinking=thinking or Thinking())


def rule_for(model: str, fmt: Format) -> str | None:
    rule = RULES.find(model, fmt)
    return rule.name if rule is not None else None


@pytest.mark.parametrize(
    ("model", "fmt", "expected"),
    [
        ("claude-sonnet-4-5-20250929", Format.ANTHROPIC, "claude-4.1+-one-sampler"),
        ("claude-opus-4-1", Format.ANTHROPIC, "claude-4.1+-one-sampler"),
        ("anthropic/claude-haiku-4-5", Format.OPENAI_CHAT, "claude-4.1+-one-sampler"),
        ("claude-opus-4-7", Format.ANTHROPIC, "claude-opus-4.7+"),
        ("claude-3-7-sonnet-20250219", Format.ANTHROPIC, "claude"),
        ("claude-3-7-sonnet-20250219", Format.OPENAI_CHAT, None),
        ("gpt-5", Format.OPENAI_RESPONSES, "openai-reasoning"),
        ("gpt-5-mini", Format.OPENAI_CHAT, "openai-reasoning"),
        ("gpt-5.1", Format.OPENAI_CHAT, "openai-gpt-5.1+"),
        ("gpt-5.1-codex", Format.OPENAI_RESPONSES, "openai-always-reasoning"),
        ("gpt-5-codex", Format.OPENAI_RESPONSES, "openai-always-reasoning"),
        ("gpt-5.2-pro", Format.OPENAI_RESPONSES, "openai-always-reasoning"),
        ("gpt-5-chat-latest", Format.OPENAI_CHAT, "openai-gpt-5-chat"),
        ("O3-MINI", Format.OPENAI_CHAT, "openai-reasoning"),
        ("gpt-5", Format.GEMINI, None),
        ("gpt-4o", Format.OPENAI_CHAT, None),
        ("gemini-2.5-pro", Format.GEMINI, "gemini-2.5-pro"),
        ("gemini-2.5-flash-lite", Format.GEMINI, "gemini-2.5-flash-lite"),
        ("gemini-2.5-flash", Format.GEMINI, "gemini-2.5-flash"),
        ("gemini-3-pro-preview", Format.GEMINI, None),
    ],
)
def test_the_first_matching_rule_wins(model: str, fmt: Format, expected: str | None) -> None:
    assert rule_for(model, fmt) == expected


def test_every_builtin_rule_cites_its_documentation() -> None:
    for rule in BUILTIN_RULES:
        assert "https://" in rule.source, rule.name


def test_config_and_table_agree_on_the_sampling_field_names() -> None:
    assert SAMPLING_FIELD_NAMES == SAMPLING_FIELDS


def test_one_of_keeps_the_first_present_field() -> None:
    rule = RULES.find("claude-sonnet-4-5", Format.ANTHROPIC)
    assert rule is not None
    out, notes = apply_rule(request(), rule)
    assert (out.sampling.temperature, out.sampling.top_p, out.sampling.top_k) == (0.0, None, 64)
    assert notes == ("top_p dropped: claude-4.1+-one-sampler takes only one of temperature, top_p (temperature kept)",)
    only_top_p = request(sampling=Sampling(top_p=0.9))
    assert apply_rule(only_top_p, rule) == (only_top_p, ())


def test_drop_removes_refused_fields() -> None:
    rule = RULES.find("claude-opus-4-7", Format.ANTHROPIC)
    assert rule is not None
    out, _ = apply_rule(request(), rule)
    assert out.sampling == Sampling(max_tokens=32000)


@pytest.mark.parametrize(
    ("thinking", "kept"),
    [
        (Thinking(), True),  # GPT-5.1+ default to effort none
        (Thinking(enabled=False), True),
        (Thinking(effort=Effort.NONE), True),
        (Thinking(effort=Effort.LOW), False),
        (Thinking(enabled=True, budget_tokens=4096), False),
    ],
)
def test_drop_with_reasoning_depends_on_the_effort(thinking: Thinking, kept: bool) -> None:
    rule = RULES.find("gpt-5.2", Format.OPENAI_RESPONSES)
    assert rule is not None
    out, _ = apply_rule(request(thinking=thinking), rule)
    assert (out.sampling.temperature is not None) is kept
    assert (out.sampling.top_p is not None) is kept


def test_reasoning_by_default_counts_a_silent_client_as_reasoning() -> None:
    rule = ModelRule("r", ("x",), drop_with_reasoning=("temperature",), reasoning_by_default=True)
    assert apply_rule(request(), rule)[0].sampling.temperature is None
    assert apply_rule(request(thinking=Thinking(effort=Effort.NONE)), rule)[0].sampling.temperature == 0.0


@pytest.mark.parametrize(
    ("model", "thinking", "expected"),
    [
        ("gemini-2.5-pro", Thinking(enabled=False), Thinking(enabled=True, budget_tokens=128)),
        ("gemini-2.5-pro", Thinking(enabled=True, budget_tokens=64), Thinking(enabled=True, budget_tokens=128)),
        ("gemini-2.5-pro", Thinking(enabled=True, budget_tokens=-1), Thinking(enabled=True, budget_tokens=-1)),
        ("gemini-2.5-flash", Thinking(effort=Effort.XHIGH), Thinking(effort=Effort.XHIGH, budget_tokens=24576)),
        ("gemini-2.5-flash", Thinking(effort=Effort.HIGH), Thinking(effort=Effort.HIGH)),  # 24576: inside, as sent
        ("gemini-2.5-flash", Thinking(enabled=False), Thinking(enabled=False)),
        ("gemini-2.5-flash-lite", Thinking(enabled=True, budget_tokens=100), Thinking(enabled=True, budget_tokens=512)),
        ("claude-sonnet-4-5", Thinking(enabled=True, budget_tokens=500), Thinking(enabled=True, budget_tokens=1024)),
        ("gemini-2.5-pro", Thinking(), Thinking()),
    ],
)
def test_thinking_budgets_are_clamped_to_the_family_range(model: str, thinking: Thinking, expected: Thinking) -> None:
    fmt = Format.ANTHROPIC if model.startswith("claude") else Format.GEMINI
    rule = RULES.find(model, fmt)
    assert rule is not None
    assert apply_rule(request(thinking=thinking), rule)[0].thinking == expected


def test_config_rules_come_before_the_builtin_table() -> None:
    own = ModelRule("mine", ("claude-sonnet-4-5*",))
    rules = ModelRules([own])
    assert rules.find("claude-sonnet-4-5", Format.ANTHROPIC) is own
    assert rules.find("claude-opus-4-7", Format.ANTHROPIC) is not None


def test_rules_refuse_unknown_field_names() -> None:
    with pytest.raises(ValueError, match="unknown sampling field"):
        ModelRule("bad", ("x",), drop=("temprature",))
    with pytest.raises(ValueError, match="output limit"):
        ModelRule("bad", ("x",), output_limit_field="max_output")


# ------------------------------------------------------------------------------------------- through the codecs
def emitted(fmt: Format, model: str, req: Request) -> dict[str, object]:
    rule = RULES.find(model, fmt)
    assert rule is not None
    req, _ = apply_rule(req, rule)
    codec = get_codec(fmt)
    target = Target(
        model, "k", stream=False, max_tokens_field=rule.output_limit_field, adaptive_thinking=rule.adaptive_thinking
    )
    wire = codec.emit_request(req, target)
    body = orjson.loads(wire.body)
    assert isinstance(body, dict)
    return body


def test_chat_reasoning_model_gets_max_completion_tokens_and_no_sampling() -> None:
    body = emitted(Format.OPENAI_CHAT, "o3-mini", request(thinking=Thinking(enabled=True, budget_tokens=4096)))
    assert body["max_completion_tokens"] == 32000
    assert not {"max_tokens", "temperature", "top_p", "top_k"} & set(body)
    assert body["reasoning_effort"] == "medium"


def test_chat_without_a_rule_keeps_max_tokens() -> None:
    codec = get_codec(Format.OPENAI_CHAT)
    body = orjson.loads(codec.emit_request(request(), Target("gpt-4o", "k", stream=False)).body)
    assert body["max_tokens"] == 32000 and body["temperature"] == 0.0 and body["top_p"] == 1.0


def test_anthropic_one_sampler_through_the_codec() -> None:
    body = emitted(Format.ANTHROPIC, "claude-sonnet-4-5-20250929", request())
    assert body["temperature"] == 0.0 and "top_p" not in body and body["top_k"] == 64


def test_gemini_pro_cannot_turn_thinking_off_through_the_codec() -> None:
    body = emitted(Format.GEMINI, "gemini-2.5-pro", request(thinking=Thinking(enabled=False)))
    assert body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 128  # type: ignore[index]


@pytest.mark.parametrize(
    ("thinking", "expected_thinking", "expected_config"),
    [
        (Thinking(enabled=True, budget_tokens=30000), {"type": "adaptive"}, {"effort": "xhigh"}),
        (Thinking(effort=Effort.LOW, include_thoughts=True), {"type": "adaptive", "display": "summarized"},
         {"effort": "low"}),
        (Thinking(enabled=False), {"type": "disabled"}, None),
    ],
)
def test_opus_4_7_gets_adaptive_thinking_and_an_effort(
    thinking: Thinking, expected_thinking: dict[str, object], expected_config: dict[str, object] | None
) -> None:
    body = emitted(Format.ANTHROPIC, "claude-opus-4-7", request(thinking=thinking))
    assert body["thinking"] == expected_thinking
    assert body.get("output_config") == expected_config
    assert not {"temperature", "top_p", "top_k"} & set(body)

"""llm-mux payload rules (``codecs/payload_rules.py``): matching, dot paths, default versus override."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from muxtrio.codecs.base import Format, WireRequest
from muxtrio.codecs.payload_rules import (
    PayloadModel,
    PayloadRule,
    PayloadRules,
    apply_payload_rules,
    apply_to_body,
    get_path,
    matching,
    set_path,
    split_path,
)


def rule(*params: tuple[str, Any], name: str = "*", protocol: Format | None = None) -> PayloadRule:
    return PayloadRule((PayloadModel(name, protocol),), tuple(params))


def test_split_path_handles_escaped_dots() -> None:
    assert split_path("generationConfig.thinkingConfig.thinkingBudget") == (
        "generationConfig", "thinkingConfig", "thinkingBudget",
    )  # fmt: skip
    assert split_path(r"metadata.a\.b") == ("metadata", "a.b")
    with pytest.raises(ValueError, match="empty segment"):
        split_path("a..b")


def test_set_path_creates_objects_and_indexes_arrays() -> None:
    body: dict[str, Any] = {"tools": [{"name": "a"}], "text": "x"}
    assert set_path(body, ("generationConfig", "thinkingConfig", "thinkingBudget"), 1024)
    assert body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}}
    assert set_path(body, ("tools", "0", "strict"), True)
    assert set_path(body, ("tools", "-1"), {"name": "b"})
    assert body["tools"] == [{"name": "a", "strict": True}, {"name": "b"}]
    assert not set_path(body, ("tools", "5", "x"), 1)  # past the end
    assert not set_path(body, ("text", "inner"), 1)  # through a string
    assert get_path(body, ("tools", "1", "name")) == "b"


def test_defaults_fill_only_absent_fields_and_the_first_default_wins() -> None:
    body: dict[str, Any] = {"temperature": 0.2, "reasoning": {}}
    rules = PayloadRules(default=(rule(("temperature", 1.0), ("reasoning.effort", "high")),
                                  rule(("reasoning.effort", "low"))))
    notes = apply_to_body(body, rules)
    assert body == {"temperature": 0.2, "reasoning": {"effort": "high"}}
    assert notes == ["default reasoning.effort"]


def test_overrides_always_set_and_the_last_override_wins() -> None:
    body: dict[str, Any] = {"service_tier": "auto"}
    rules = PayloadRules(override=(rule(("service_tier", "priority")), rule(("service_tier", "flex"))),
                         default=(rule(("service_tier", "default")),))
    apply_to_body(body, rules)
    assert body == {"service_tier": "flex"}


def test_values_are_copied_not_shared_between_requests() -> None:
    rules = PayloadRules(override=(rule(("metadata", {"tags": ["a"]})),))
    first: dict[str, Any] = {}
    apply_to_body(first, rules)
    first["metadata"]["tags"].append("mutated")
    second: dict[str, Any] = {}
    apply_to_body(second, rules)
    assert second == {"metadata": {"tags": ["a"]}}


@pytest.mark.parametrize(
    ("entry", "names", "fmt", "applies"),
    [
        (PayloadModel("gemini-2.5-*", Format.GEMINI), ("gemini-2.5-pro",), Format.GEMINI, True),
        (PayloadModel("gemini-2.5-*", Format.GEMINI), ("gemini-2.5-pro",), Format.OPENAI_CHAT, False),
        (PayloadModel("GPT-5*"), ("gpt-5-codex",), Format.OPENAI_RESPONSES, True),
        (PayloadModel("*-5"), ("gpt-5",), Format.OPENAI_CHAT, True),
        (PayloadModel("gemini-*-pro"), ("gemini-3-pro",), Format.GEMINI, True),
        (PayloadModel("my-alias"), ("upstream-name", "my-alias"), Format.ANTHROPIC, True),
        (PayloadModel("gpt-4"), ("gpt-4o",), Format.OPENAI_CHAT, False),
    ],
)
def test_matching_by_pattern_and_protocol(
    entry: PayloadModel, names: tuple[str, ...], fmt: Format, applies: bool
) -> None:
    rules = PayloadRules(override=(PayloadRule((entry,), (("x", 1),)),))
    assert bool(matching(rules, names, fmt)) is applies


def test_apply_payload_rules_rewrites_the_wire_body_only_when_something_changed() -> None:
    wire = WireRequest("POST", "/chat/completions", (("content-type", "application/json"),), b'{"model":"m"}')
    same, notes = apply_payload_rules(wire, PayloadRules(default=(rule(("model", "x")),)))
    assert same is wire and notes == []
    changed, notes = apply_payload_rules(wire, PayloadRules(override=(rule(("reasoning_effort", "high")),)))
    assert orjson.loads(changed.body) == {"model": "m", "reasoning_effort": "high"}
    assert (changed.method, changed.path, changed.headers) == (wire.method, wire.path, wire.headers)
    assert notes == ["override reasoning_effort"]


def test_a_body_that_is_not_a_json_object_is_left_alone() -> None:
    wire = WireRequest("POST", "/x", (), b"[1, 2]")
    assert apply_payload_rules(wire, PayloadRules(override=(rule(("a", 1)),)))[0] is wire

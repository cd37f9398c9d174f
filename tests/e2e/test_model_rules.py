"""Model-family parameter rules and payload rules through the real gateway, with the official SDKs, toward fakes that
refuse what the real model families refuse (``tests/e2e/family_rules.py``).

Each test sends what an agent CLI sends (Gemini CLI: temperature, top_p and top_k together; Claude Code: max_tokens
with thinking) to a real model name, and checks both that the client got its answer and what the fake received. The
control test turns a built-in rule off in the config and sees the provider's refusal reach the client: without the
rule the request is refused, so the rule is what makes the others pass.
"""

from __future__ import annotations

import anthropic
import pytest
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from muxtrio.config import ModelRuleConfig, PayloadMatch, PayloadRuleConfig
from tests.e2e import clients
from tests.e2e.conftest import CLIENT_KEY, Stack, run_sync
from tests.e2e.fakes import script_text


def _gemini_cli_config(**extra: object) -> gtypes.GenerateContentConfig:
    """The sampling settings Gemini CLI sends by default (temperature 0, topP 1, plus topK here)."""
    return gtypes.GenerateContentConfig(temperature=0.0, top_p=1.0, top_k=64, **extra)  # type: ignore[arg-type]


def _answer_text(stack: Stack, model: str, config: gtypes.GenerateContentConfig) -> str:
    client = clients.genai_client(stack.url, CLIENT_KEY)
    return client.models.generate_content(model=model, contents="hello", config=config).text or ""


async def test_gemini_client_to_claude_sends_one_sampler(stack: Stack) -> None:
    text = await run_sync(_answer_text, stack, "anthropic-claude-sonnet-4-5-20250929", _gemini_cli_config())
    assert text == script_text("text", "anthropic")
    [seen] = stack.requests("anthropic")
    assert seen.status == 200
    assert seen.body["temperature"] == 0.0
    assert "top_p" not in seen.body  # temperature wins; Sonnet 4.5 refuses the pair
    assert seen.body["top_k"] == 64  # not part of the rule


async def test_gemini_client_to_claude_opus_4_7_sends_no_sampling(stack: Stack) -> None:
    assert await run_sync(_answer_text, stack, "anthropic-claude-opus-4-7", _gemini_cli_config()) == script_text(
        "text", "anthropic"
    )
    [seen] = stack.requests("anthropic")
    assert seen.status == 200
    assert not {"temperature", "top_p", "top_k"} & set(seen.body)


@pytest.mark.gateway_config(model_rules=(ModelRuleConfig(models=("claude-sonnet-4-5*",)),))
async def test_a_config_rule_replaces_the_builtin_one_and_the_provider_refusal_reaches_the_client(
    stack: Stack,
) -> None:
    with pytest.raises(genai_errors.ClientError) as info:
        await run_sync(_answer_text, stack, "anthropic-claude-sonnet-4-5-20250929", _gemini_cli_config())
    assert info.value.code == 400
    assert "temperature and top_p cannot both be specified" in str(info.value)
    [seen] = stack.requests("anthropic")
    assert seen.status == 400 and {"temperature", "top_p"} <= set(seen.body)


async def test_gemini_client_to_gpt5_over_responses_drops_sampling_with_reasoning(stack: Stack) -> None:
    config = _gemini_cli_config(thinking_config=gtypes.ThinkingConfig(thinking_budget=8192))
    await run_sync(_answer_text, stack, "responses-gpt-5", config)
    [seen] = stack.requests("responses")
    assert seen.status == 200
    assert not {"temperature", "top_p"} & set(seen.body)
    assert seen.body["reasoning"]["effort"] == "medium"


def _claude_code_call(stack: Stack, model: str) -> anthropic.types.Message:
    client = clients.anthropic_client(stack.url, CLIENT_KEY)
    return client.messages.create(
        model=model,
        max_tokens=32000,
        thinking={"type": "enabled", "budget_tokens": 4096},
        messages=[{"role": "user", "content": "hello"}],
    )


async def test_anthropic_client_to_openai_reasoning_chat_uses_max_completion_tokens(stack: Stack) -> None:
    message = await run_sync(_claude_code_call, stack, "openai-o3-mini")
    assert [block.text for block in message.content if block.type == "text"] == [script_text("text", "openai")]
    [seen] = stack.requests("openai")
    assert seen.status == 200
    assert "max_tokens" not in seen.body
    assert seen.body["max_completion_tokens"] == 32000
    assert seen.body["reasoning_effort"] == "medium"


async def test_anthropic_client_thinking_budget_to_opus_4_7_becomes_adaptive_thinking(stack: Stack) -> None:
    message = await run_sync(_claude_code_call, stack, "anthropic-claude-opus-4-7")
    assert [block.text for block in message.content if block.type == "text"] == [script_text("text", "anthropic")]
    [seen] = stack.requests("anthropic")
    assert seen.status == 200
    assert seen.body["thinking"] == {"type": "adaptive"}
    assert seen.body["output_config"] == {"effort": "medium"}  # budget 4096 -> effort medium (ir/thinking.py)
    assert seen.body["max_tokens"] == 32000


async def test_thinking_budget_is_clamped_to_the_gemini_2_5_pro_range(stack: Stack) -> None:
    def call() -> str:
        client = clients.openai_client(stack.url, CLIENT_KEY)
        answer = client.chat.completions.create(
            model="gemini-gemini-2.5-pro",
            messages=[{"role": "user", "content": "hello"}],
            reasoning_effort="none",  # Gemini 2.5 Pro cannot turn thinking off
        )
        return answer.choices[0].message.content or ""

    await run_sync(call)
    [seen] = stack.requests("gemini")
    assert seen.status == 200
    assert seen.body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 128


@pytest.mark.gateway_config(
    payload_default=(
        PayloadRuleConfig(
            models=(PayloadMatch("gemini-2.5-*", "gemini"),),
            params=(("generationConfig.thinkingConfig.thinkingBudget", "2048"), ("generationConfig.seed", "7")),
        ),
    ),
    payload_override=(
        PayloadRuleConfig(models=(PayloadMatch("gemini-gemini-2.5-pro"),), params=(("generationConfig.seed", "9"),)),
        PayloadRuleConfig(models=(PayloadMatch("*", "anthropic"),), params=(("metadata.user_id", '"ops"'),)),
    ),
)
async def test_payload_rules_edit_the_provider_body(stack: Stack) -> None:
    def call() -> str:
        client = clients.openai_client(stack.url, CLIENT_KEY)
        answer = client.chat.completions.create(
            model="gemini-gemini-2.5-pro", messages=[{"role": "user", "content": "hello"}]
        )
        return answer.choices[0].message.content or ""

    assert await run_sync(call) == script_text("text", "gemini")
    [seen] = stack.requests("gemini")
    config = seen.body["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] == 2048  # default: the field was absent
    assert config["seed"] == 9  # the override (matched on the client's alias) wins over the default
    assert "metadata" not in seen.body  # the anthropic-only rule did not apply

"""What the real provider APIs refuse, as checks over a parsed request body: the strict half of the agent fakes.

Each check returns the provider's refusal (a :class:`Refusal`: rule id, HTTP status, the provider's own message) or
``None``. Every rule id is cited in ``tests/agents/rules.source.txt`` (documentation URL and what it says); the
messages follow the wording the real APIs answer with, so a failing agent test names the field that broke.

Scope: the rules an agent CLI's traffic can meet through a gateway — unknown top-level fields, beta fields without
their beta header, thinking/signature rules, tool-call/tool-result pairing, sampling parameters the model family
refuses. Fields are checked at the top level and in the few nested objects whose schema is closed and small
(``generationConfig``, ``thinkingConfig``); message-level shapes are left to the SDK-type validation of
``tests/e2e/test_fakes.py``.

``signatures`` is the set of reasoning signatures / encrypted reasoning the fake itself issued: a signature coming
back that the fake never issued is refused, as the real APIs refuse a forged or foreign one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Refusal:
    rule: str  # the id in rules.source.txt
    status: int
    message: str
    param: str | None = None  # OpenAI's error ``param``


Check = Callable[[str, dict[str, Any], dict[str, str], Collection[str]], "Refusal | None"]

# ------------------------------------------------------------------------------------------------ Anthropic Messages
ANTHROPIC_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "output_config", "inference_geo",
})  # fmt: skip
# Body fields that exist only behind a beta: without the header the API answers "Extra inputs are not permitted".
ANTHROPIC_BETA_FIELDS = {
    "context_management": "context-management-2025-06-27",
    "mcp_servers": "mcp-client-2025-04-04",
    "output_format": "structured-outputs-2025-11-13",
}
# Tool-definition fields behind a beta (tool search / deferred loading, tool-use examples).
ANTHROPIC_BETA_TOOL_FIELDS = {
    "defer_loading": "advanced-tool-use-2025-11-20",
    "input_examples": "advanced-tool-use-2025-11-20",
}
# Claude models that take temperature or top_p, not both (Claude 4.5 generation and later).
ANTHROPIC_ONE_SAMPLER = re.compile(r"^claude-(sonnet|opus|haiku)-4-[5-9]|^claude-(sonnet|opus|haiku)-[5-9]")
# Claude models that know adaptive thinking (Opus/Sonnet 4.6 and later); older ones need enabled + budget_tokens.
ANTHROPIC_ADAPTIVE = re.compile(r"^claude-(sonnet|opus)-4-[6-9]|^claude-[a-z]+-[5-9]")
# Claude models that take output_config.effort: Opus 4.5 and every adaptive-thinking model.
ANTHROPIC_EFFORT = re.compile(r"^claude-opus-4-5|^claude-(sonnet|opus)-4-[6-9]|^claude-[a-z]+-[5-9]")


def _anthropic_error(rule: str, message: str, status: int = 400) -> Refusal:
    return Refusal(rule, status, message)


def _betas(headers: dict[str, str]) -> set[str]:
    return {b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()}


def check_anthropic(model: str, body: dict[str, Any], headers: dict[str, str],
                    signatures: Collection[str]) -> Refusal | None:
    betas = _betas(headers)
    for key in body:
        if key in ANTHROPIC_BETA_FIELDS:
            if ANTHROPIC_BETA_FIELDS[key] not in betas:
                return _anthropic_error("anthropic-beta-field", f"{key}: Extra inputs are not permitted")
        elif key not in ANTHROPIC_FIELDS:
            return _anthropic_error("anthropic-unknown-field", f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("max_tokens"), int):
        return _anthropic_error("anthropic-max-tokens", "max_tokens: Field required")
    for i, tool in enumerate(body.get("tools") or []):
        for key, beta in ANTHROPIC_BETA_TOOL_FIELDS.items():
            if isinstance(tool, dict) and key in tool and beta not in betas:
                return _anthropic_error("anthropic-beta-field",
                                        f"tools.{i}.custom.{key}: Extra inputs are not permitted")
    thinking = body.get("thinking") or {}
    thinking_type = thinking.get("type") if isinstance(thinking, dict) else None
    if thinking_type not in (None, "enabled", "disabled", "adaptive"):
        return _anthropic_error("anthropic-thinking", f"thinking.type: Input tag '{thinking_type}' found using "
                                "'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'")
    thinking_on = thinking_type in ("enabled", "adaptive")
    if thinking_type == "adaptive" and not ANTHROPIC_ADAPTIVE.match(model):
        return _anthropic_error("anthropic-adaptive-thinking", "thinking.type.adaptive is not supported for this "
                                "model. Use thinking.type.enabled with budget_tokens.")
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and "effort" in output_config and not ANTHROPIC_EFFORT.match(model):
        return _anthropic_error("anthropic-effort", "output_config.effort: This model does not support the effort "
                                "parameter.")
    if thinking_type == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return _anthropic_error("anthropic-thinking", "thinking.enabled.budget_tokens: Input should be greater "
                                    "than or equal to 1024")
        if budget >= body["max_tokens"]:
            return _anthropic_error("anthropic-thinking", "`max_tokens` must be greater than "
                                    "`thinking.budget_tokens`")
    if ANTHROPIC_ONE_SAMPLER.match(model) and "temperature" in body and "top_p" in body:
        return _anthropic_error("anthropic-one-sampler", "`temperature` and `top_p` cannot both be specified for "
                                "this model. Please use only one.")
    if thinking_on:
        if "temperature" in body and body["temperature"] != 1:
            return _anthropic_error("anthropic-thinking-sampling", "`temperature` may only be set to 1 when "
                                    "thinking is enabled or in adaptive mode.")
        if "top_k" in body:
            return _anthropic_error("anthropic-thinking-sampling", "`top_k` is not supported when thinking is "
                                    "enabled or in adaptive mode.")
        if "top_p" in body and not 0.95 <= body["top_p"] <= 1:
            return _anthropic_error("anthropic-thinking-sampling", "`top_p` must be between 0.95 and 1 when "
                                    "thinking is enabled or in adaptive mode.")
        choice = body.get("tool_choice") or {}
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            return _anthropic_error("anthropic-thinking-sampling", "Thinking may not be enabled when tool_choice "
                                    "forces tool use.")
    return _anthropic_messages(body.get("messages"), thinking_on, signatures)


def _anthropic_messages(messages: Any, thinking_on: bool, signatures: Collection[str]) -> Refusal | None:
    if not isinstance(messages, list) or not messages:
        return _anthropic_error("anthropic-pairing", "messages: at least one message is required")
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    for i, message in enumerate(turns):
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        for j, block in enumerate(blocks):
            if block.get("type") == "thinking" and block.get("signature") not in signatures:
                return _anthropic_error("anthropic-signature", f"messages.{i}.content.{j}: Invalid `signature` in "
                                        "`thinking` block")
        if message["role"] != "assistant":
            continue
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        following = turns[i + 1] if i + 1 < len(turns) else None
        if uses and following is None:
            continue  # a prefill ending in tool_use is answered by the model, not an error here
        answered: list[str] = []
        if following is not None and isinstance(following.get("content"), list):
            results = following["content"]
            leading = 0
            while leading < len(results) and results[leading].get("type") == "tool_result":
                leading += 1
            if any(b.get("type") == "tool_result" for b in results[leading:]):
                return _anthropic_error("anthropic-pairing", f"messages.{i + 1}: `tool_result` blocks must come "
                                        "first in the content of the user message that follows `tool_use`")
            answered = [b.get("tool_use_id") for b in results[:leading]]
        missing = [u for u in uses if u not in answered]
        if missing:
            return _anthropic_error("anthropic-pairing", f"messages.{i}: `tool_use` ids were found without "
                                    f"`tool_result` blocks immediately after: {', '.join(missing)}. Each `tool_use` "
                                    "block must have a corresponding `tool_result` block in the next message.")
        stray = [a for a in answered if a not in uses]
        if stray:
            return _anthropic_error("anthropic-pairing", f"messages.{i + 1}.content: unexpected `tool_use_id` found "
                                    f"in `tool_result` blocks: {', '.join(stray)}. Each `tool_result` block must "
                                    "have a corresponding `tool_use` block in the previous message.")
    if thinking_on:
        # The assistant turn of the tool loop in progress (the last one, answered by tool results) starts with
        # its signed thinking when thinking is on.
        last_assistant = next((i for i in range(len(turns) - 1, -1, -1) if turns[i]["role"] == "assistant"), None)
        if last_assistant is not None and last_assistant == len(turns) - 2:
            content = turns[last_assistant].get("content")
            blocks = content if isinstance(content, list) else []
            if any(b.get("type") == "tool_use" for b in blocks) and (
                not blocks or blocks[0].get("type") not in ("thinking", "redacted_thinking")
            ):
                found = blocks[0].get("type") if blocks else "nothing"
                return _anthropic_error("anthropic-thinking-tool-turn", f"messages.{last_assistant}.content.0.type: "
                                        f"Expected `thinking` or `redacted_thinking`, but found `{found}`. When "
                                        "`thinking` is enabled, a final `assistant` message must start with a "
                                        "thinking block (preceeding the lastmost set of `tool_use` and "
                                        "`tool_result` blocks).")
    return None


# ------------------------------------------------------------------------------------------------ OpenAI Chat
CHAT_FIELDS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})  # fmt: skip
OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")  # o-series and GPT-5-class reasoning models
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _openai_error(rule: str, message: str, param: str | None = None) -> Refusal:
    return Refusal(rule, 400, message, param)


def _sampling_refusal(model: str, body: dict[str, Any], rule: str) -> Refusal | None:
    for name in ("temperature", "top_p"):
        if name in body and body[name] is not None and body[name] != 1:
            return _openai_error(rule, f"Unsupported value: '{name}' does not support {body[name]} with this "
                                 "model. Only the default (1) value is supported.", name)
    return None


def check_chat(model: str, body: dict[str, Any], headers: dict[str, str],
               signatures: Collection[str]) -> Refusal | None:
    for key in body:
        if key not in CHAT_FIELDS:
            return _openai_error("openai-unknown-field", f"Unrecognized request argument supplied: {key}", key)
    if OPENAI_REASONING.match(model):
        if "max_tokens" in body:
            return _openai_error("openai-reasoning-max-tokens", "Unsupported parameter: 'max_tokens' is not "
                                 "supported with this model. Use 'max_completion_tokens' instead.", "max_tokens")
        refusal = _sampling_refusal(model, body, "openai-reasoning-sampling")
        if refusal is not None:
            return refusal
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _openai_error("openai-chat-pairing", "[] is too short - 'messages'", "messages")
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in CHAT_ROLES:
            return _openai_error("openai-chat-pairing", f"Invalid value: '{role}'. Supported values are: "
                                 "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                                 f"messages[{i}].role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                return _openai_error("openai-chat-pairing", "Invalid parameter: messages with role 'tool' must be "
                                     "a response to a preceeding message with 'tool_calls'.",
                                     f"messages.[{i}].role")
            pending.remove(call_id)
            continue
        if pending:
            return _openai_error("openai-chat-pairing", "An assistant message with 'tool_calls' must be followed "
                                 "by tool messages responding to each 'tool_call_id'. The following tool_call_ids "
                                 f"did not have response messages: {', '.join(pending)}", "messages")
        if role == "assistant":
            pending = [c.get("id") for c in message.get("tool_calls") or []]
    return None


# ------------------------------------------------------------------------------------------------ OpenAI Responses
RESPONSES_FIELDS = frozenset({
    "model", "input", "instructions", "background", "conversation", "include", "max_output_tokens",
    "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    "context_management", "client_metadata",
})  # fmt: skip


def check_responses(model: str, body: dict[str, Any], headers: dict[str, str],
                    signatures: Collection[str]) -> Refusal | None:
    for key in body:
        if key not in RESPONSES_FIELDS:
            return _openai_error("openai-unknown-field", f"Unknown parameter: '{key}'.", key)
    if OPENAI_REASONING.match(model):
        for name in ("temperature", "top_p"):
            if name in body and body[name] is not None and body[name] != 1:
                return _openai_error("openai-reasoning-sampling", f"Unsupported parameter: '{name}' is not "
                                     "supported with this model.", name)
    items = body.get("input")
    if not isinstance(items, list):
        return None
    calls = [i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call"]
    outputs = [i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls and body.get("previous_response_id") is None:
            return _openai_error("openai-responses-pairing", "No tool call found for function call output with "
                                 f"call_id {call_id}.", "input")
    for call_id in calls:
        if call_id not in outputs:
            return _openai_error("openai-responses-pairing", f"No tool output found for function call {call_id}.",
                                 "input")
    for n, item in enumerate(items):
        if (isinstance(item, dict) and item.get("type") == "reasoning"
                and item.get("encrypted_content") is not None and item["encrypted_content"] not in signatures):
            return _openai_error("openai-responses-encrypted", f"The encrypted content for item "
                                 f"{item.get('id', '')} could not be verified.", f"input[{n}]")
    return None


# ------------------------------------------------------------------------------------------------ Gemini
GEMINI_FIELDS = frozenset({
    "contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent",
    "tool_config", "safety_settings", "system_instruction", "generation_config", "cached_content", "model",
})  # fmt: skip
GEMINI_GENERATION_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "_responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers",
    "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
})  # fmt: skip
GEMINI_THINKING_FIELDS = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
GEMINI_SIGNED = re.compile(r"^gemini-3")  # models that validate thought signatures on function calls
SKIP_SIGNATURE = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _gemini_error(rule: str, message: str) -> Refusal:
    return Refusal(rule, 400, message)


def check_gemini(model: str, body: dict[str, Any], headers: dict[str, str],
                 signatures: Collection[str]) -> Refusal | None:
    for key in body:
        if key not in GEMINI_FIELDS:
            return _gemini_error("gemini-unknown-field", f'Invalid JSON payload received. Unknown name "{key}": '
                                 "Cannot find field.")
    config = body.get("generationConfig", body.get("generation_config")) or {}
    for key in config:
        if _snake_to_camel(key) not in GEMINI_GENERATION_FIELDS:
            return _gemini_error("gemini-unknown-field", f'Invalid JSON payload received. Unknown name "{key}" at '
                                 "'generation_config': Cannot find field.")
    thinking = config.get("thinkingConfig", config.get("thinking_config")) or {}
    for key in thinking:
        if _snake_to_camel(key) not in GEMINI_THINKING_FIELDS:
            return _gemini_error("gemini-unknown-field", f'Invalid JSON payload received. Unknown name "{key}" at '
                                 "'generation_config.thinking_config': Cannot find field.")
    camel = {_snake_to_camel(k) for k in thinking}
    if {"thinkingBudget", "thinkingLevel"} <= camel:
        return _gemini_error("gemini-thinking-level-budget", "You can only set only one of thinking budget and "
                             "thinking level.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _gemini_error("gemini-pairing", "* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        parts = content.get("parts") or [] if isinstance(content, dict) else []
        calls = [p["functionCall"].get("name") for p in parts if "functionCall" in p]
        if not calls or content.get("role") != "model":
            continue
        following = contents[i + 1] if i + 1 < len(contents) else None
        if following is None:
            continue
        responses = [p["functionResponse"].get("name") for p in following.get("parts") or [] if "functionResponse" in p]
        if len(responses) != len(calls):
            return _gemini_error("gemini-pairing", "Please ensure that the number of function response parts is "
                                 "equal to the number of function call parts of the function call turn.")
        if sorted(responses) != sorted(calls):
            return _gemini_error("gemini-pairing", "Please ensure that function response turn comes immediately "
                                 "after a function call turn, and each function response names a function called.")
    if GEMINI_SIGNED.match(model):
        refusal = _gemini_signatures(contents, signatures)
        if refusal is not None:
            return refusal
    return None


def _gemini_signatures(contents: list[Any], signatures: Collection[str]) -> Refusal | None:
    """Gemini 3: in the current turn (after the last user message with text), the first function call part of every
    model step carries the thought signature the model returned with it."""
    start = 0
    for i, content in enumerate(contents):
        parts = content.get("parts") or []
        if content.get("role", "user") == "user" and any("text" in p for p in parts):
            start = i
    for i in range(start, len(contents)):
        content = contents[i]
        if content.get("role") != "model":
            continue
        first_call = next((p for p in content.get("parts") or [] if "functionCall" in p), None)
        if first_call is None:
            continue
        signature = first_call.get("thoughtSignature", first_call.get("thought_signature"))
        if signature is None:
            return _gemini_error("gemini-signature", f"Function call is missing a thought_signature in "
                                 f"functionCall parts. This is required for tools to work correctly, and missing "
                                 f"thought_signature may lead to degraded model performance. Additional data, "
                                 f"function call `default_api:{first_call['functionCall'].get('name')}` , position "
                                 f"{i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures "
                                 "for more details.")
        if signature not in signatures and signature not in SKIP_SIGNATURE:
            return _gemini_error("gemini-signature", f"Corrupted thought signature at contents[{i}].")
    return None


CHECKS: dict[str, Check] = {
    "anthropic": check_anthropic,
    "openai": check_chat,
    "responses": check_responses,
    "gemini": check_gemini,
}

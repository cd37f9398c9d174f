"""What real model families refuse, for the fake providers: the parameter combinations their APIs answer with 400.

The fakes serve a few real model names (:data:`FAMILY_MODELS`, each answering like the ``text`` behaviour) and run
:func:`family_refusal` on every generation request first, so a gateway that forwards a combination the real model
refuses gets the real API's 400 here too. Each rule cites the provider documentation it follows:

- Anthropic, Claude Sonnet 4.5 and the later 4.x models: "Use only temperature OR top_p, not both"
  (platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4#update-sampling-parameters); the API's
  message: "temperature and top_p cannot both be specified for this model. Please use only one."
- Anthropic, Claude Opus 4.7: temperature, top_p and top_k are removed ("`temperature` is deprecated for this model.")
  and so is thinking with a budget (``{type: enabled, budget_tokens}``; adaptive thinking with ``output_config.effort``
  replaces it): platform.claude.com/docs/en/about-claude/models/migration-guide#migrating-to-claude-opus-4-7.
- OpenAI reasoning models (o-series, GPT-5): Chat ``max_tokens`` is refused for ``max_completion_tokens``
  (platform.openai.com/docs/api-reference/chat/create#chat-create-max_tokens: "not compatible with o-series models");
  temperature, top_p and the penalties are unsupported parameters (platform.openai.com/docs/guides/reasoning), on Chat
  and Responses alike.
- Gemini 2.5 Pro: ``thinkingBudget`` 128..32768 or -1, thinking cannot be turned off
  (ai.google.dev/gemini-api/docs/thinking#set-budget).
"""

from __future__ import annotations

from typing import Any

FAMILY_MODELS: dict[str, str] = {
    "claude-sonnet-4-5-20250929": "text",
    "claude-opus-4-7": "text",
    "gpt-5": "text",
    "o3-mini": "text",
    "gemini-2.5-pro": "text",
}
"""Real model names the fakes serve, and the behaviour each answers with."""

FAMILY_ALIASES: dict[str, tuple[str, ...]] = {
    "openai": ("gpt-5", "o3-mini"),
    "responses": ("gpt-5", "o3-mini"),
    "anthropic": ("claude-sonnet-4-5-20250929", "claude-opus-4-7"),
    "gemini": ("gemini-2.5-pro",),
}
"""Which upstream kind serves which of them (the e2e config's alias is ``<upstream>-<model>``)."""

_OPENAI_REASONING_REFUSED = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def _anthropic(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def _openai(param: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": "unsupported_parameter"}}


def _gemini(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def family_refusal(api: str, model: str, body: Any) -> dict[str, Any] | None:
    """The error body the real API answers for this request (status 400), or None when it takes it."""
    if model not in FAMILY_MODELS or not isinstance(body, dict):
        return None
    if api == "anthropic":
        if model.startswith("claude-opus-4-7"):
            for name in ("temperature", "top_p", "top_k"):
                if name in body:
                    return _anthropic(f"`{name}` is deprecated for this model.")
            if (body.get("thinking") or {}).get("type") == "enabled":
                return _anthropic('"thinking.type.enabled" is not supported for this model. Use '
                                  '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.')
        elif "temperature" in body and "top_p" in body:
            return _anthropic("temperature and top_p cannot both be specified for this model. Please use only one.")
    elif api in ("openai", "responses"):
        if api == "openai" and "max_tokens" in body:
            return _openai("max_tokens", "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                         "Use 'max_completion_tokens' instead.")
        for name in _OPENAI_REASONING_REFUSED:
            if name in body:
                return _openai(name, f"Unsupported parameter: '{name}' is not supported with this model.")
    elif api == "gemini":
        thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        budget = thinking.get("thinkingBudget")
        if budget is not None and budget != -1 and not 128 <= budget <= 32768:
            return _gemini("The thinking budget is invalid. This model only works in thinking mode; the budget must "
                           "be between 128 and 32768.")
    return None

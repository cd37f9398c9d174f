"""Per-model-family parameter rules: which sampling fields a model family takes together, which it refuses, the wire
name of its output-token limit, and the bounds of its thinking budget. Applied to every request on its way to a
provider, after routing and before the provider codec's ``emit_request``, so that they hold whatever format the
client spoke.

Why: clients send what *their* format and model accept. Gemini CLI sends ``temperature``, ``top_p`` and ``top_k``
together; recent Claude models refuse ``temperature`` with ``top_p``. Gemini CLI sends ``temperature`` alongside
reasoning to a GPT-5-class model, which refuses it; Claude Code's ``max_tokens`` becomes Chat ``max_tokens``, which
OpenAI reasoning models refuse (they take ``max_completion_tokens``). The providers answer 400 for each.

The table (:data:`BUILTIN_RULES`) is ordered; the first rule whose ``models`` pattern matches the upstream model name
(``*`` wildcards, case-insensitive) and whose ``formats`` include the provider's format wins, and rules from the config
(``model-rules:``) are tried before it. Every built-in rule carries ``source``: the provider documentation it follows
(URL and what it says). What a rule does to a request (:func:`apply_rule`):

- ``drop``: sampling fields the family refuses outright are removed.
- ``drop_with_reasoning``: removed while reasoning is on — the client asked for an effort other than ``none``, or said
  nothing and the family reasons by default (``reasoning_by_default``).
- ``one_of``: at most one of these fields is sent; the first one present, in the rule's order, wins.
- ``budget_min``/``budget_max``: a positive thinking budget is clamped into the range. ``thinking_off=False``: the
  family cannot turn thinking off, so "off" becomes ``budget_min``. Budgets are those of :mod:`muxtrio.ir.thinking`
  (the one effort/budget table): the client's own number, else the budget of its effort; a budget already inside the
  range is left as the client expressed it (effort or number), so codecs keep sending its own form.
- ``output_limit_field``: carried to the codec in ``Target.max_tokens_field`` (OpenAI Chat: ``max_completion_tokens``).
- ``adaptive_thinking``: carried in ``Target.adaptive_thinking``; the Anthropic codec sends ``{type: adaptive}`` and
  the effort instead of a budget (Claude Opus 4.7 refuses budgets).

Constraints that hold for a whole format stay in its codec (Anthropic with thinking on: no ``temperature``/``top_k``,
``top_p >= 0.95``, ``max_tokens > budget_tokens``; see ``codecs/anthropic.py``). Every change is reported back as a
short note for the engine's debug log; nothing is logged here.

Pure: standard library, ``codecs.base`` and ``ir`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from muxtrio.codecs.base import Format
from muxtrio.ir.request import Effort, Request, Sampling, Thinking
from muxtrio.ir.thinking import DYNAMIC_BUDGET, budget_for, effort_for
from muxtrio.wildcard import wildcard_match

SAMPLING_FIELDS: Final = frozenset({"temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty", "seed"})
"""The IR sampling fields a rule may name (``ir.request.Sampling``)."""

OUTPUT_LIMIT_FIELDS: Final = frozenset({"max_tokens", "max_completion_tokens"})
"""The output-limit names a rule may choose (only OpenAI Chat has a choice)."""


@dataclass(frozen=True, slots=True)
class ModelRule:
    """One model family's parameter rules. ``models``: wildcard patterns on the upstream model name; ``formats``:
    the provider formats it applies to (empty: all). ``source``: the documentation it follows."""

    name: str
    models: tuple[str, ...]
    formats: tuple[Format, ...] = ()
    drop: tuple[str, ...] = ()
    drop_with_reasoning: tuple[str, ...] = ()
    reasoning_by_default: bool = False
    one_of: tuple[str, ...] = ()
    output_limit_field: str | None = None
    budget_min: int | None = None
    budget_max: int | None = None
    thinking_off: bool = True
    adaptive_thinking: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        unknown = sorted({*self.drop, *self.drop_with_reasoning, *self.one_of} - SAMPLING_FIELDS)
        if unknown:
            raise ValueError(f"model rule {self.name!r}: unknown sampling field(s) {unknown}")
        if self.output_limit_field is not None and self.output_limit_field not in OUTPUT_LIMIT_FIELDS:
            raise ValueError(f"model rule {self.name!r}: unknown output limit field {self.output_limit_field!r}")
        if self.budget_min is not None and self.budget_max is not None and self.budget_min > self.budget_max:
            raise ValueError(f"model rule {self.name!r}: budget_min is above budget_max")

    def matches(self, model: str, provider_format: Format) -> bool:
        if self.formats and provider_format not in self.formats:
            return False
        return any(wildcard_match(pattern, model) for pattern in self.models)


# ---------------------------------------------------------------------------------------------------- the table
_OPENAI: Final = (Format.OPENAI_CHAT, Format.OPENAI_RESPONSES)
_REASONING_REFUSES: Final = ("temperature", "top_p", "frequency_penalty", "presence_penalty")

_OPENAI_REASONING_SOURCE: Final = (
    "https://platform.openai.com/docs/guides/reasoning and "
    "https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_tokens: reasoning models (o1, o3, "
    "o4-mini, GPT-5) take max_completion_tokens ('max_tokens ... is not compatible with o-series models'; the API "
    "answers \"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
    'instead.") and refuse temperature, top_p, presence_penalty and frequency_penalty ("Unsupported parameter: '
    "'temperature' is not supported with this model.\"); see also "
    "https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning (not supported: temperature, top_p, "
    "presence_penalty, frequency_penalty, logprobs, max_tokens)"
)

BUILTIN_RULES: Final[tuple[ModelRule, ...]] = (
    # ---- OpenAI
    ModelRule(
        name="openai-gpt-5-chat",
        models=("gpt-5-chat*", "gpt-5.*-chat*"),
        formats=_OPENAI,
        output_limit_field="max_completion_tokens",
        source=(
            "https://platform.openai.com/docs/models/gpt-5-chat-latest: the ChatGPT snapshot is not a reasoning "
            "model (no reasoning_effort); max_tokens is deprecated for max_completion_tokens "
            "(https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_tokens)"
        ),
    ),
    ModelRule(
        name="openai-always-reasoning",
        models=("gpt-5*codex*", "gpt-5*-pro*"),
        formats=_OPENAI,
        drop=_REASONING_REFUSES,
        reasoning_by_default=True,
        output_limit_field="max_completion_tokens",
        source=(
            "https://platform.openai.com/docs/models/gpt-5.1-codex and https://platform.openai.com/docs/models/gpt-5-pro:"
            " the Codex and Pro snapshots take reasoning efforts low..high (Pro: high only), never 'none', so they "
            "always reason. " + _OPENAI_REASONING_SOURCE
        ),
    ),
    ModelRule(
        name="openai-gpt-5.1+",
        models=("gpt-5.*",),
        formats=_OPENAI,
        drop_with_reasoning=_REASONING_REFUSES,
        reasoning_by_default=False,
        output_limit_field="max_completion_tokens",
        source=(
            "https://platform.openai.com/docs/guides/latest-model#gpt-5-2-parameter-compatibility: GPT-5.1 and later "
            "default to reasoning effort 'none'; 'temperature, top_p and logprobs are only supported with reasoning "
            "effort none' and requests that combine them with another effort are refused. " + _OPENAI_REASONING_SOURCE
        ),
    ),
    ModelRule(
        name="openai-reasoning",
        models=("o1*", "o3*", "o4*", "gpt-5*", "codex-*"),
        formats=_OPENAI,
        drop=_REASONING_REFUSES,
        reasoning_by_default=True,
        output_limit_field="max_completion_tokens",
        source=_OPENAI_REASONING_SOURCE,
    ),
    # ---- Anthropic
    ModelRule(
        name="claude-opus-4.7+",
        models=("*claude-opus-4-7*", "*claude-opus-4-8*"),
        drop=("temperature", "top_p", "top_k"),
        adaptive_thinking=True,
        source=(
            "https://platform.claude.com/docs/en/about-claude/models/migration-guide#migrating-to-claude-opus-4-7: "
            "sampling parameters are removed on Claude Opus 4.7: setting temperature, top_p or top_k returns a 400 "
            "error ('`temperature` is deprecated for this model.'); extended thinking with a budget is removed "
            "(thinking type enabled with budget_tokens returns 400): adaptive thinking (thinking type adaptive) with "
            "output_config.effort replaces it"
        ),
    ),
    ModelRule(
        name="claude-4.1+-one-sampler",
        models=(
            "*claude-opus-4-1*",
            "*claude-opus-4-5*",
            "*claude-opus-4-6*",
            "*claude-sonnet-4-5*",
            "*claude-sonnet-4-6*",
            "*claude-haiku-4-5*",
        ),
        one_of=("temperature", "top_p"),
        budget_min=1024,
        source=(
            "https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4#update-sampling-parameters: "
            "'Use only temperature OR top_p, not both' (a breaking change of the Claude 4.5 models; Opus 4.1 and the "
            'later 4.x models answer 400 "temperature and top_p cannot both be specified for this model. Please use '
            'only one."). Thinking budgets: https://platform.claude.com/docs/en/build-with-claude/extended-thinking '
            "('budget_tokens ... minimum is 1,024 tokens')"
        ),
    ),
    ModelRule(
        name="claude",
        models=("*claude-*",),
        formats=(Format.ANTHROPIC,),
        budget_min=1024,
        source=(
            "https://platform.claude.com/docs/en/build-with-claude/extended-thinking: 'budget_tokens ... minimum "
            "is 1,024 tokens' and must be below max_tokens (the codec raises max_tokens above the budget)"
        ),
    ),
    # ---- Gemini (https://ai.google.dev/gemini-api/docs/thinking#set-budget, "thinkingBudget ranges")
    ModelRule(
        name="gemini-2.5-pro",
        models=("gemini-2.5-pro*",),
        formats=(Format.GEMINI,),
        budget_min=128,
        budget_max=32768,
        thinking_off=False,
        source=(
            "https://ai.google.dev/gemini-api/docs/thinking#set-budget: Gemini 2.5 Pro thinkingBudget 128 to 32768; "
            "'Cannot disable thinking'; -1 = dynamic"
        ),
    ),
    ModelRule(
        name="gemini-2.5-flash-lite",
        models=("gemini-2.5-flash-lite*",),
        formats=(Format.GEMINI,),
        budget_min=512,
        budget_max=24576,
        source=(
            "https://ai.google.dev/gemini-api/docs/thinking#set-budget: Gemini 2.5 Flash-Lite thinkingBudget 512 to "
            "24576; 0 disables thinking; -1 = dynamic"
        ),
    ),
    ModelRule(
        name="gemini-2.5-flash",
        models=("gemini-2.5-flash*",),
        formats=(Format.GEMINI,),
        budget_min=1,
        budget_max=24576,
        source=(
            "https://ai.google.dev/gemini-api/docs/thinking#set-budget: Gemini 2.5 Flash thinkingBudget 0 to 24576; "
            "0 disables thinking; -1 = dynamic"
        ),
    ),
)


# ---------------------------------------------------------------------------------------------------- lookup
class ModelRules:
    """An ordered rule list (config rules first, then :data:`BUILTIN_RULES`); :meth:`find` gives the first match."""

    def __init__(self, rules: Iterable[ModelRule] = (), *, builtin: Sequence[ModelRule] = BUILTIN_RULES) -> None:
        self.rules: tuple[ModelRule, ...] = (*rules, *builtin)

    def find(self, model: str, provider_format: Format) -> ModelRule | None:
        return next((rule for rule in self.rules if rule.matches(model, provider_format)), None)


# ---------------------------------------------------------------------------------------------------- application
def apply_rule(request: Request, rule: ModelRule) -> tuple[Request, tuple[str, ...]]:
    """``request`` as ``rule``'s family accepts it, and one note per change made (for a debug log line)."""
    notes: list[str] = []
    sampling = _sampling(request, rule, notes)
    thinking = _thinking(request.thinking, rule, notes)
    if sampling is request.sampling and thinking is request.thinking:
        return request, ()
    return replace(request, sampling=sampling, thinking=thinking), tuple(notes)


def _reasoning_on(thinking: Thinking, rule: ModelRule) -> bool:
    effort = effort_for(thinking)
    if effort is None:
        return rule.reasoning_by_default
    return effort is not Effort.NONE


def _sampling(request: Request, rule: ModelRule, notes: list[str]) -> Sampling:
    sampling = request.sampling
    removed: dict[str, None] = {}
    for name in rule.drop:
        if getattr(sampling, name) is not None:
            removed[name] = None
            notes.append(f"{name} dropped: {rule.name} refuses it")
    if rule.drop_with_reasoning and _reasoning_on(request.thinking, rule):
        for name in rule.drop_with_reasoning:
            if name not in removed and getattr(sampling, name) is not None:
                removed[name] = None
                notes.append(f"{name} dropped: {rule.name} refuses it with reasoning on")
    present = [name for name in rule.one_of if name not in removed and getattr(sampling, name) is not None]
    for name in present[1:]:
        removed[name] = None
        notes.append(f"{name} dropped: {rule.name} takes only one of {', '.join(rule.one_of)} ({present[0]} kept)")
    if not removed:
        return sampling
    return replace(sampling, **removed)  # type: ignore[arg-type]  # names checked against SAMPLING_FIELDS


def _requested_budget(thinking: Thinking) -> int | None:
    """The budget a client asked for, in the sense of ``ir.thinking``: its own number (no Anthropic floor), else the
    budget of its effort; 0 when off; None when it said nothing."""
    if thinking.enabled is False:
        return 0
    if thinking.budget_tokens is not None:
        return thinking.budget_tokens
    return budget_for(thinking)


def _thinking(thinking: Thinking, rule: ModelRule, notes: list[str]) -> Thinking:
    budget = _requested_budget(thinking)
    if budget is None or budget == DYNAMIC_BUDGET:
        return thinking
    if budget == 0 and thinking.enabled is not True:
        if rule.thinking_off or rule.budget_min is None:
            return thinking
        notes.append(f"thinking cannot be turned off on {rule.name}: budget {rule.budget_min}")
        return replace(thinking, enabled=True, budget_tokens=rule.budget_min, effort=None)
    low = max(rule.budget_min or 1, 1)
    high = rule.budget_max if rule.budget_max is not None else budget
    clamped = min(max(budget, low), max(high, low))
    if clamped == budget:
        return thinking
    notes.append(f"thinking budget {budget} clamped to {clamped} for {rule.name}")
    return replace(thinking, budget_tokens=clamped)


__all__ = [
    "BUILTIN_RULES",
    "OUTPUT_LIMIT_FIELDS",
    "SAMPLING_FIELDS",
    "ModelRule",
    "ModelRules",
    "apply_rule",
]

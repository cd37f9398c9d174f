"""The one table that maps reasoning configuration between formats.

| effort  | budget_tokens | Gemini 2.5 thinkingBudget | Ollama think |
|---------|---------------|---------------------------|--------------|
| none    | 0             | 0                         | false        |
| minimal | 1024          | 1024                      | "low"        |
| low     | 2048          | 2048                      | "low"        |
| medium  | 8192          | 8192                      | "medium"     |
| high    | 24576         | 24576                     | "high"       |
| xhigh   | 32768         | 32768                     | "high"       |

Anthropic requires ``budget_tokens >= 1024`` and ``max_tokens > budget_tokens``; :func:`budget_for` never returns a
positive budget under 1024. A budget maps back to the smallest effort whose budget is at least it.
``budget_tokens=-1`` (Gemini "dynamic") maps to effort ``medium``.

Pure: standard library and ``ir`` only.
"""

from __future__ import annotations

from muxtrio.ir.request import Effort, Thinking

EFFORT_BUDGET: dict[Effort, int] = {
    Effort.NONE: 0,
    Effort.MINIMAL: 1024,
    Effort.LOW: 2048,
    Effort.MEDIUM: 8192,
    Effort.HIGH: 24576,
    Effort.XHIGH: 32768,
}

DYNAMIC_BUDGET = -1
MIN_ANTHROPIC_BUDGET = 1024
DEFAULT_THINKING_BUDGET = EFFORT_BUDGET[Effort.MEDIUM]


def effort_for_budget(budget: int) -> Effort:
    if budget == DYNAMIC_BUDGET:
        return Effort.MEDIUM
    if budget <= 0:
        return Effort.NONE
    for effort, limit in EFFORT_BUDGET.items():
        if effort is not Effort.NONE and budget <= limit:
            return effort
    return Effort.XHIGH


def budget_for(thinking: Thinking) -> int | None:
    """The token budget a client asked for, or None when it did not ask for thinking at all.

    Returns 0 when thinking is explicitly off, ``DYNAMIC_BUDGET`` when on with no amount given by a format that
    supports it, else a positive budget >= 1024.
    """
    if thinking.enabled is False:
        return 0
    if thinking.budget_tokens is not None:
        if thinking.budget_tokens == DYNAMIC_BUDGET or thinking.budget_tokens == 0:
            return thinking.budget_tokens
        return max(thinking.budget_tokens, MIN_ANTHROPIC_BUDGET)
    if thinking.effort is not None:
        return EFFORT_BUDGET[thinking.effort]
    if thinking.enabled:
        return DEFAULT_THINKING_BUDGET
    return None


def effort_for(thinking: Thinking) -> Effort | None:
    """The effort level a client asked for, or None when it did not ask."""
    if thinking.enabled is False:
        return Effort.NONE
    if thinking.effort is not None:
        return thinking.effort
    if thinking.budget_tokens is not None:
        return effort_for_budget(thinking.budget_tokens)
    if thinking.enabled:
        return Effort.MEDIUM
    return None

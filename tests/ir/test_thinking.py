"""ir/thinking.py: the one effort <-> budget table, in both directions."""

from __future__ import annotations

import pytest

from muxtrio.ir.request import Effort, Thinking
from muxtrio.ir.thinking import (
    DEFAULT_THINKING_BUDGET,
    DYNAMIC_BUDGET,
    EFFORT_BUDGET,
    MIN_ANTHROPIC_BUDGET,
    budget_for,
    effort_for,
    effort_for_budget,
)


@pytest.mark.parametrize("effort", list(Effort))
def test_an_effort_round_trips_through_its_budget(effort: Effort) -> None:
    assert effort_for_budget(EFFORT_BUDGET[effort]) is effort
    assert budget_for(Thinking(effort=effort)) == EFFORT_BUDGET[effort]


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(1, Effort.MINIMAL), (1024, Effort.MINIMAL), (1025, Effort.LOW), (8192, Effort.MEDIUM), (8193, Effort.HIGH),
     (10**6, Effort.XHIGH), (0, Effort.NONE), (-5, Effort.NONE), (DYNAMIC_BUDGET, Effort.MEDIUM)],
)  # fmt: skip
def test_a_budget_maps_to_the_smallest_effort_that_covers_it(budget: int, effort: Effort) -> None:
    assert effort_for_budget(budget) is effort


def test_a_positive_budget_is_never_under_the_anthropic_minimum() -> None:
    assert budget_for(Thinking(enabled=True, budget_tokens=10)) == MIN_ANTHROPIC_BUDGET
    assert budget_for(Thinking(enabled=True, budget_tokens=5000)) == 5000


@pytest.mark.parametrize(
    ("thinking", "budget", "effort"),
    [
        (Thinking(), None, None),  # the client said nothing
        (Thinking(enabled=False, effort=Effort.HIGH), 0, Effort.NONE),  # off wins
        (Thinking(enabled=True), DEFAULT_THINKING_BUDGET, Effort.MEDIUM),
        (Thinking(enabled=True, budget_tokens=DYNAMIC_BUDGET), DYNAMIC_BUDGET, Effort.MEDIUM),
        (Thinking(budget_tokens=0), 0, Effort.NONE),
        (Thinking(budget_tokens=3000, effort=Effort.LOW), 3000, Effort.LOW),  # each field answers its own question
    ],
)
def test_what_a_client_asked_for(thinking: Thinking, budget: int | None, effort: Effort | None) -> None:
    assert (budget_for(thinking), effort_for(thinking)) == (budget, effort)

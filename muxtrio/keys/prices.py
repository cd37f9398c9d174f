"""Cost of a request from the ``prices:`` config: per model name or ``*`` pattern, per million tokens.

Invariants:
- The first entry (in config order) whose pattern matches the model wins; an exact name should come before a
  pattern that also covers it. No entry matches -> None (unknown cost), never a guess.
- Input tokens are priced without the cache reads and writes the provider reported separately (Anthropic and
  OpenAI both report cache reads inside or beside input; :class:`Usage` carries them separately, so they are
  priced at their own rates and ``input_tokens`` at the input rate).
- Pure: no IO.
"""

from __future__ import annotations

from muxtrio.config import PriceConfig
from muxtrio.ir.response import Usage
from muxtrio.wildcard import wildcard_match

PER = 1_000_000.0


def price_for(prices: tuple[PriceConfig, ...], model: str) -> PriceConfig | None:
    for price in prices:
        if wildcard_match(price.model, model):
            return price
    return None


def cost_of(prices: tuple[PriceConfig, ...], model: str, usage: Usage) -> float | None:
    """The cost of ``usage`` on ``model`` in the prices' currency, or None when no price names the model."""
    price = price_for(prices, model)
    if price is None:
        return None
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
    ) / PER


def request_cost(
    prices: tuple[PriceConfig, ...], served_model: str | None, requested_model: str, usage: Usage
) -> float | None:
    """The cost of one request: priced by the model that served it (the provider's name), else by the name the
    client asked for (an alias or a pattern written for client names); None when neither has a price."""
    cost = cost_of(prices, served_model, usage) if served_model else None
    return cost if cost is not None else cost_of(prices, requested_model, usage)


def input_cost(prices: tuple[PriceConfig, ...], model: str, tokens: int) -> float:
    """The cost of ``tokens`` input tokens on ``model`` (0 when unpriced): what admission reserves."""
    price = price_for(prices, model)
    return tokens * price.input / PER if price is not None else 0.0

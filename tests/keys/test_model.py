"""The pure parts of client keys: key shape, limits parsing, the allowlist rule, windows, counters, reset texts,
and costs from ``prices:``."""

from __future__ import annotations

import calendar

import pytest

from muxtrio.config import PriceConfig
from muxtrio.ir.response import Usage
from muxtrio.keys.limits import RPM, TOKENS_DAY, TOKENS_MONTH, Counter, reset_text, window
from muxtrio.keys.model import Limits, ModelAccess, limits_from, looks_like_client_key, new_secret, parse_duration
from muxtrio.keys.prices import cost_of, input_cost


def test_key_shape() -> None:
    secret = new_secret()
    assert secret.startswith("mx-") and len(secret) == 46 and looks_like_client_key(secret)
    assert new_secret() != secret
    assert not looks_like_client_key("mx-short") and not looks_like_client_key("sk-" + secret[3:])


def test_limits_parsing() -> None:
    limits = limits_from({"rpm": 60, "tpm": "200k", "max-concurrency": 8, "budget-tokens-month": "50M",
                          "budget_cost_day": 2.5})
    assert limits == Limits(rpm=60, tpm=200_000, max_concurrency=8, budget_tokens_month=50_000_000,
                            budget_cost_day=2.5)
    assert limits_from({"rpm": None}, limits).rpm is None
    for bad, message in (({"rpm": 0}, "positive"), ({"rpm": 1.5}, "whole"), ({"rpm": True}, "positive"),
                         ({"rpx": 1}, "unknown limit"), ({"tpm": "lots"}, "such as")):
        with pytest.raises(ValueError, match=message):
            limits_from(bad)
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 43200
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_allowlist_rule() -> None:
    access = ModelAccess(("claude-*", "fast", "gpt-5*"))
    assert access.permits("claude-sonnet-4", ("claude-sonnet-4", "claude-sonnet-4-20250514"))
    assert access.permits("fast", ("gpt-4o-mini", "gpt-4o-mini"))  # an exact entry grants what it resolves to
    assert not ModelAccess(("claude-*",)).permits("claude-cheap", ("gpt-4o", "gpt-4o"))  # wildcard alias trick
    assert not access.permits("gemini-2.5-pro", ("gemini-2.5-pro",))
    assert access.names("CLAUDE-opus") and not access.names("opus")
    assert ModelAccess().permits("anything", ("else",))


def test_windows_are_utc_aligned() -> None:
    now = calendar.timegm((2026, 12, 31, 23, 59, 30))
    assert window(RPM, now) == (now - 30, now + 30.0)
    assert window(TOKENS_DAY, now) == (now - 86400 + 30, now + 30.0)
    start, end = window(TOKENS_MONTH, now)
    assert start == calendar.timegm((2026, 12, 1, 0, 0, 0)) and end == calendar.timegm((2027, 1, 1, 0, 0, 0))


def test_counter_leases_and_settlements() -> None:
    counter = Counter(TOKENS_DAY, 1000.0)
    counter.roll(100.0)
    assert counter.lease_size(10) == 125  # far from the limit: an eighth of what is left
    counter.granted(125, 125)
    assert counter.spend_local(10, 100.0) and counter.held == 115
    counter.settle(200)  # the response used 200 more than reserved: 115 from the lease, 85 to write back
    assert (counter.held, counter.pending, counter.used) == (0, 85, 210)
    counter.settle(-30)
    assert counter.held == 30
    window_start, delta = counter.take_sync(200.0, idle=1.0)  # idle: the held units go back
    assert (window_start, delta, counter.held) == (0, 85 - 30, 0)
    counter.used = 995
    assert counter.lease_size(1) == 1  # near the limit: single permits


def test_reset_texts() -> None:
    assert [reset_text(s) for s in (0.02, 1, 59.2, 360, 3723)] == ["20ms", "1s", "1m0s", "6m0s", "1h2m3s"]


def test_costs() -> None:
    prices = (PriceConfig("claude-sonnet-4", input=3, output=15, cache_read=0.3, cache_write=3.75),
              PriceConfig("claude-*", input=1, output=5))
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=2_000_000, cache_write_tokens=0)
    assert cost_of(prices, "claude-sonnet-4", usage) == pytest.approx(3 + 1.5 + 0.6)
    assert cost_of(prices, "claude-haiku", usage) == pytest.approx(1 + 0.5)
    assert cost_of(prices, "gpt-5", usage) is None
    assert input_cost(prices, "claude-sonnet-4", 1000) == pytest.approx(0.003)
    assert input_cost(prices, "gpt-5", 1000) == 0.0


def test_config_reads_client_keys_and_prices() -> None:
    import yaml

    from muxtrio.config import ConfigError, parse_config

    config = parse_config(yaml.safe_load(
        "client-keys: {refresh-interval: 500ms, sync-interval: 2s}\n"
        "prices:\n  claude-sonnet-4*: {input: 3, output: 15, cache-read: 0.3, cache-write: 3.75}\n"
        "  gpt-5*: {input: 1.25, output: 10}\n"
    ), env={})
    assert (config.client_keys.refresh_interval, config.client_keys.sync_interval) == (0.5, 2.0)
    assert config.prices == (PriceConfig("claude-sonnet-4*", 3.0, 15.0, 0.3, 3.75), PriceConfig("gpt-5*", 1.25, 10.0))
    with pytest.raises(ConfigError, match=r"prices\.x\.input: expected a number"):
        parse_config({"prices": {"x": {"input": True}}}, env={})
    with pytest.raises(ConfigError, match=r"client-keys\.sync-interval"):
        parse_config({"client-keys": {"sync-interval": 0}}, env={})
    warned = parse_config({"prices": {"x": {"inptu": 1}}}, env={})
    assert any("prices.x.inptu: unknown key" in w for w in warned.warnings)

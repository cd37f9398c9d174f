"""Error classification and retry hints (pure policy: no clock, no sleeping)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from muxtrio.engine.retry import (
    Action,
    Effect,
    Move,
    Verdict,
    backoff,
    classify,
    next_step,
    parse_duration,
    provider_retry_hint,
)
from muxtrio.errors import CapacityError, ClientError, ErrorKind, StreamTruncated, UpstreamError, UpstreamTimeout

NOW = 1_800_000_000.0


def verdict(
    error: UpstreamError | ClientError | CapacityError, headers: dict[str, str] | None = None, failures: int = 1
) -> Verdict:
    return classify(error, headers or {}, now=NOW, failures=failures, max_retry_interval=30.0, rng=random.Random(7),
                    model="gpt-4o")


def test_rate_limit_honours_retry_after_seconds() -> None:
    v = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "slow down", provider_status=429), {"retry-after": "7"})
    assert v.action is Action.NEXT_CREDENTIAL and v.cooldown == 7.0 and v.hinted
    assert v.effect is Effect.RATE_LIMITED  # a cooldown, never a breaker failure


def test_rate_limit_honours_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 42, tz=UTC)
    v = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "x"), {"retry-after": format_datetime(when, usegmt=True)})
    assert v.cooldown == pytest.approx(42.0)


def test_rate_limit_uses_body_hint_when_no_header() -> None:
    v = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "x", retry_after=3.5))
    assert v.cooldown == 3.5 and v.hinted


def test_rate_limit_without_hint_backs_off_capped() -> None:
    v = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "x"), failures=30)
    assert v.action is Action.NEXT_CREDENTIAL and not v.hinted
    assert 15.0 <= (v.cooldown or 0) <= 30.0


def test_provider_hint_is_not_extended_by_backoff() -> None:
    # A short hint after many failures stays short: the cooldown must not outlive recovered quota.
    v = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "x"), {"retry-after": "1"}, failures=20)
    assert v.cooldown == 1.0


def test_anthropic_reset_of_the_exhausted_limit() -> None:
    reset_tokens = datetime.fromtimestamp(NOW + 20, tz=UTC).isoformat().replace("+00:00", "Z")
    reset_requests = datetime.fromtimestamp(NOW + 50, tz=UTC).isoformat().replace("+00:00", "Z")
    headers = {
        "anthropic-ratelimit-tokens-reset": reset_tokens,
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset_requests,
        "anthropic-ratelimit-requests-remaining": "12",
    }
    assert provider_retry_hint(headers, NOW) == pytest.approx(20.0)


def test_openai_reset_durations() -> None:
    headers = {"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-tokens": "20ms", "x-ratelimit-remaining-tokens": "1000"}
    assert provider_retry_hint(headers, NOW) == 360.0
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("soon") is None


def test_auth_errors_refuse_the_credential() -> None:
    for kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION):
        v = verdict(UpstreamError(kind, "bad key", provider_status=401))
        assert v.action is Action.NEXT_CREDENTIAL and v.effect is Effect.REFUSED and not v.model_scoped


def test_a_403_about_the_model_refuses_that_model_only() -> None:
    v = verdict(UpstreamError(ErrorKind.PERMISSION, "Project has no access to model `gpt-4o`", provider_status=403))
    assert v.effect is Effect.REFUSED and v.model_scoped
    v = verdict(UpstreamError(ErrorKind.AUTHENTICATION, "gpt-4o: invalid key", provider_status=401))
    assert not v.model_scoped  # a 401 is always about the credential


def test_model_not_found_is_a_missing_model_not_a_cooldown() -> None:
    v = verdict(UpstreamError(ErrorKind.NOT_FOUND, "no such model", provider_status=404))
    assert v.action is Action.NEXT_MODEL and v.effect is Effect.MODEL_MISSING and v.cooldown is None


@pytest.mark.parametrize("phase", ["connect", "first_byte"])
def test_timeouts_before_any_byte_move_to_the_next_route(phase: str) -> None:
    v = verdict(UpstreamTimeout(phase, 5))
    assert v.action is Action.NEXT_ROUTE and v.effect is Effect.FAILURE


@pytest.mark.parametrize(
    "error",
    [UpstreamError(ErrorKind.UPSTREAM, "500"), UpstreamError(ErrorKind.OVERLOADED, "529"),
     UpstreamTimeout("idle", 5), StreamTruncated(), UpstreamError(ErrorKind.UNAVAILABLE, "refused")],
)
def test_transient_errors_retry_and_count_for_the_breaker(error: UpstreamError) -> None:
    v = verdict(error)
    assert v.action is Action.RETRY and v.effect is Effect.FAILURE


def test_context_length_goes_to_fallbacks_without_retry() -> None:
    assert verdict(UpstreamError(ErrorKind.CONTEXT_LENGTH, "prompt is too long")).action is Action.NEXT_MODEL


@pytest.mark.parametrize("kind", [ErrorKind.INVALID_REQUEST, ErrorKind.CONTENT_FILTER, ErrorKind.UNSUPPORTED])
def test_request_errors_are_never_retried(kind: ErrorKind) -> None:
    assert verdict(UpstreamError(kind, "no")).action is Action.FAIL


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    values = [backoff(n, 8.0, rng) for n in range(1, 8)]
    assert values[0] <= 1.0 and values[2] >= 2.0 and all(v <= 8.0 for v in values)


def step(v: Verdict, other: str | None = None, fallback_left: bool = False, retries: int = 0) -> tuple[Move, str]:
    s = next_step(v, other=other, fallback_left=fallback_left, retries=retries, max_retries=2, max_wait=10.0,
                  rng=random.Random(3))
    return s.move, s.label


def test_next_step_after_a_silent_route() -> None:
    silent = verdict(UpstreamTimeout("first_byte", 30))
    assert step(silent, other="p#1") == (Move.AGAIN, "failover:p#1")
    assert step(silent, fallback_left=True) == (Move.FALLBACK, "fallback")  # at once, no backoff
    move, label = step(silent)  # nothing else left: the same route, after a backoff
    assert move is Move.LATER and label.startswith("retry_in_")
    assert step(silent, retries=2) == (Move.FALLBACK, "give_up")


def test_next_step_after_a_rate_limit_and_a_refusal() -> None:
    limited = verdict(UpstreamError(ErrorKind.RATE_LIMIT, "x"), {"retry-after": "5"})
    assert step(limited) == (Move.AGAIN, "wait_5.0s")
    assert step(limited, retries=2, fallback_left=True) == (Move.AGAIN, "fallback")
    refused = verdict(UpstreamError(ErrorKind.AUTHENTICATION, "bad key"))
    assert step(refused, other="p#2") == (Move.AGAIN, "failover:p#2")
    assert step(refused) == (Move.AGAIN, "give_up")  # the loop then reports the refusal (503)
    assert step(verdict(UpstreamError(ErrorKind.CONTENT_FILTER, "no"))) == (Move.FAIL, "fail")

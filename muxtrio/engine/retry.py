"""Error classification: one table-driven function that turns a failed attempt into a routing decision.

| error                                   | action          | effect on state                                  |
|-----------------------------------------|-----------------|--------------------------------------------------|
| 429 / rate limit                        | next credential | cool (credential, model) for the provider's hint |
|                                         |                 | (Retry-After, reset headers, RetryInfo), else    |
|                                         |                 | exponential backoff with jitter, capped          |
| 401 / 403                               | next credential | credential disabled until config changes         |
| 404 (model not found)                   | next model      | (provider, model) cooled for ``MODEL_GONE_S``    |
| 5xx, overloaded, connect/reset, timeout | retry           | breaker failure; backoff before the next attempt |
| context length                          | next model      | none (the prompt is the problem, not the model)  |
| other 4xx (invalid, content filter)     | fail            | none — never retried                             |

Invariants: a cooldown never outlives what the provider said (its hint wins over our backoff, even if shorter);
backoff is capped by ``max-retry-interval``. Takes ``now`` (epoch seconds, for HTTP dates) and a random source as
arguments, so it is testable without a clock.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from muxtrio.errors import CapacityError, ErrorKind, MuxError, UpstreamError

MODEL_GONE_S = 3600.0
BACKOFF_BASE_S = 1.0


class Action(StrEnum):
    RETRY = "retry"  # transient: try again (another credential if there is one), after a backoff
    NEXT_CREDENTIAL = "next_credential"  # this credential cannot serve now; others may, at once
    NEXT_MODEL = "next_model"  # no credential of this model will do: go to the fallbacks
    FAIL = "fail"  # the request itself is wrong: answer the client now


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    cooldown: float | None = None  # seconds to cool this (credential, model)
    disable: bool = False  # disable this credential
    model_cooldown: float | None = None  # seconds to cool this model on this provider
    breaker_failure: bool = False  # counts toward the credential's circuit breaker
    hinted: bool = False  # the cooldown came from the provider, not from our backoff


def backoff(failures: int, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [base * 2^(n-1) / 2, base * 2^(n-1)], capped."""
    ceiling = min(cap, BACKOFF_BASE_S * float(2 ** max(failures - 1, 0)))
    return ceiling / 2 + rng.random() * ceiling / 2


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """OpenAI's reset format (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``) or a bare number of seconds."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return float(sum(float(n) * _UNITS[u] for n, u in parts))


def parse_retry_after(value: str, now: float) -> float | None:
    """``Retry-After`` as seconds or an HTTP date."""
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - now, 0.0)


def _parse_timestamp(value: str, now: float) -> float | None:
    from datetime import datetime

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(when.timestamp() - now, 0.0)


def provider_retry_hint(headers: Mapping[str, str], now: float) -> float | None:
    """The provider's own word on when to retry, from response headers (lower-case names).

    Order: ``retry-after-ms``, ``retry-after``; then the reset time of an exhausted limit — Anthropic
    ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`` (RFC 3339) and OpenAI
    ``x-ratelimit-reset-{requests,tokens}`` (durations) — taking the limits whose ``remaining`` is 0, or all of them
    when none says so.
    """
    if "retry-after-ms" in headers:
        try:
            return max(float(headers["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    if "retry-after" in headers:
        hint = parse_retry_after(headers["retry-after"], now)
        if hint is not None:
            return hint
    resets: list[float] = []
    exhausted: list[float] = []
    for name, value in headers.items():
        if name.startswith("anthropic-ratelimit-") and name.endswith("-reset"):
            seconds = _parse_timestamp(value, now)
            limit = name[len("anthropic-ratelimit-") : -len("-reset")]
            remaining = headers.get(f"anthropic-ratelimit-{limit}-remaining")
        elif name.startswith("x-ratelimit-reset-"):
            seconds = parse_duration(value)
            limit = name[len("x-ratelimit-reset-") :]
            remaining = headers.get(f"x-ratelimit-remaining-{limit}")
        else:
            continue
        if seconds is None:
            continue
        resets.append(seconds)
        if remaining is not None and remaining.strip() == "0":
            exhausted.append(seconds)
    if exhausted:
        return max(exhausted)
    return min(resets) if resets else None


def classify(
    error: MuxError,
    headers: Mapping[str, str],
    *,
    now: float,
    failures: int,
    max_retry_interval: float,
    rng: random.Random,
) -> Verdict:
    """Decide what to do after ``error``. ``failures`` counts this credential's consecutive failures including
    this one (it sizes the backoff)."""
    kind = error.kind
    if isinstance(error, CapacityError):
        return Verdict(Action.NEXT_MODEL)
    if kind is ErrorKind.RATE_LIMIT:
        hint = provider_retry_hint(headers, now)
        if hint is None:
            hint = error.retry_after
        if hint is not None:
            return Verdict(Action.NEXT_CREDENTIAL, cooldown=hint, hinted=True)
        return Verdict(Action.NEXT_CREDENTIAL, cooldown=backoff(failures, max_retry_interval, rng))
    if kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION):
        return Verdict(Action.NEXT_CREDENTIAL, disable=True)
    if kind is ErrorKind.NOT_FOUND and isinstance(error, UpstreamError):
        return Verdict(Action.NEXT_MODEL, model_cooldown=MODEL_GONE_S)
    if kind is ErrorKind.CONTEXT_LENGTH:
        return Verdict(Action.NEXT_MODEL)
    if kind in (ErrorKind.UPSTREAM, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE):
        hint = provider_retry_hint(headers, now) if kind is ErrorKind.OVERLOADED else None
        return Verdict(Action.RETRY, cooldown=hint, breaker_failure=True, hinted=hint is not None)
    return Verdict(Action.FAIL)

"""Error classification: one table-driven function that turns a failed attempt into a routing decision.

| error                                   | action          | effect on state                                  |
|-----------------------------------------|-----------------|--------------------------------------------------|
| 429 / rate limit                        | next credential | cool (credential, model) for the provider's hint |
|                                         |                 | (Retry-After, reset headers, RetryInfo), else    |
|                                         |                 | exponential backoff with jitter, capped; never a |
|                                         |                 | breaker failure                                  |
| 401 / 403                               | next credential | credential refused for the next step of the      |
|                                         |                 | refusal cooldown ladder (a 403 that names the    |
|                                         |                 | model: that model on that credential only)       |
| 404 (model not found)                   | next model      | (provider, model) missing until the re-check     |
| connect / first-byte timeout            | next route      | breaker failure; no backoff: another credential  |
|                                         |                 | or the fallback at once, the same route only     |
|                                         |                 | when nothing else is left                        |
| 5xx, overloaded, reset, idle timeout    | retry           | breaker failure; backoff before the next attempt |
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

from muxtrio.errors import CapacityError, ErrorKind, MuxError, UpstreamError, UpstreamTimeout

BACKOFF_BASE_S = 1.0
SILENT_PHASES = frozenset({"connect", "first_byte"})  # timeouts before any response byte


class Action(StrEnum):
    RETRY = "retry"  # transient: try again (another credential if there is one), after a backoff
    NEXT_CREDENTIAL = "next_credential"  # this credential cannot serve now; others may, at once
    NEXT_ROUTE = "next_route"  # a silent route: another credential or the fallback at once, this one last
    NEXT_MODEL = "next_model"  # no credential of this model will do: go to the fallbacks
    FAIL = "fail"  # the request itself is wrong: answer the client now


class Effect(StrEnum):
    """What the failure says about the credential (the pool method that records it)."""

    NONE = "none"  # nothing: the request was the problem
    RATE_LIMITED = "rate_limited"  # CredentialPool.on_rate_limit
    REFUSED = "refused"  # CredentialPool.on_refused
    MODEL_MISSING = "model_missing"  # CredentialPool.on_model_missing
    FAILURE = "failure"  # CredentialPool.on_failure (counts toward the breaker)


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    effect: Effect = Effect.NONE
    cooldown: float | None = None  # seconds to cool (rate limit) or to wait before retrying (overload hint)
    model_scoped: bool = False  # a refusal that concerns this model only
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
    model: str = "",
) -> Verdict:
    """Decide what to do after ``error`` on upstream ``model``. ``failures`` counts this credential's consecutive
    rate limits including this one (it sizes the backoff when the provider gives no hint)."""
    kind = error.kind
    if isinstance(error, CapacityError):
        return Verdict(Action.NEXT_MODEL)
    if kind is ErrorKind.RATE_LIMIT:
        hint = provider_retry_hint(headers, now)
        if hint is None:
            hint = error.retry_after
        if hint is not None:
            return Verdict(Action.NEXT_CREDENTIAL, Effect.RATE_LIMITED, cooldown=hint, hinted=True)
        return Verdict(Action.NEXT_CREDENTIAL, Effect.RATE_LIMITED, cooldown=backoff(failures, max_retry_interval, rng))
    if kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION):
        scoped = kind is ErrorKind.PERMISSION and _names_model(error.message, model)
        return Verdict(Action.NEXT_CREDENTIAL, Effect.REFUSED, model_scoped=scoped)
    if kind is ErrorKind.NOT_FOUND and isinstance(error, UpstreamError):
        return Verdict(Action.NEXT_MODEL, Effect.MODEL_MISSING)
    if kind is ErrorKind.CONTEXT_LENGTH:
        return Verdict(Action.NEXT_MODEL)
    if isinstance(error, UpstreamTimeout) and error.phase in SILENT_PHASES:
        return Verdict(Action.NEXT_ROUTE, Effect.FAILURE)
    if kind in (ErrorKind.UPSTREAM, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE):
        hint = provider_retry_hint(headers, now) if kind is ErrorKind.OVERLOADED else None
        return Verdict(Action.RETRY, Effect.FAILURE, cooldown=hint, hinted=hint is not None)
    return Verdict(Action.FAIL)


class Move(StrEnum):
    """What the attempt loop does after a failure."""

    AGAIN = "again"  # pick the next candidate of this model now (another credential, or wait for a cooldown)
    LATER = "later"  # nobody else to ask: sleep ``Step.delay``, then ask the same credentials again
    FALLBACK = "fallback"  # this model is done: the next model of the chain, or the error when there is none
    FAIL = "fail"  # answer the client with this error now


@dataclass(frozen=True, slots=True)
class Step:
    move: Move
    label: str  # what the log says happens next
    delay: float = 0.0
    spends_retry: bool = False  # counts against ``request-retry`` for this model


def next_step(
    verdict: Verdict,
    *,
    other: str | None,
    fallback_left: bool,
    retries: int,
    max_retries: int,
    max_wait: float,
    rng: random.Random,
) -> Step:
    """The loop's next move after a failed attempt. ``other`` names the credential that would be picked now (None
    when none of this model's is available), ``retries`` the retries this model already spent."""
    give_up = Step(Move.FALLBACK, "fallback" if fallback_left else "give_up")
    action = verdict.action
    if action is Action.FAIL:
        return Step(Move.FAIL, "fail")
    if action is Action.NEXT_MODEL:
        return give_up
    if action is Action.NEXT_ROUTE and other is None:
        if fallback_left:
            return give_up
        action = Action.RETRY  # a silent route is asked again only when nothing else is left
    if action is Action.RETRY:
        if retries >= max_retries:
            return Step(Move.FALLBACK, give_up.label, spends_retry=True)
        if other is None:
            delay = min(verdict.cooldown or backoff(retries + 1, max_wait, rng), max_wait)
            return Step(Move.LATER, f"retry_in_{delay:.1f}s", delay, spends_retry=True)
        return Step(Move.AGAIN, f"failover:{other}", spends_retry=True)
    if other is not None:
        return Step(Move.AGAIN, f"failover:{other}")
    cooldown = verdict.cooldown or 0.0
    if verdict.effect is Effect.RATE_LIMITED and retries < max_retries and cooldown <= max_wait:
        return Step(Move.AGAIN, f"wait_{cooldown:.1f}s")  # the loop waits for the first cooldown to end
    return Step(Move.AGAIN, give_up.label)  # the loop finds nobody and reports why


def _names_model(message: str, model: str) -> bool:
    """Whether a 403's text is about one model (OpenAI "does not have access to model X", Gemini "model X is not
    available to this project") rather than the credential as a whole."""
    lowered = message.lower()
    return (bool(model) and model.lower() in lowered) or "access to model" in lowered


def error_class(error: MuxError) -> str:
    """A short, secret-free name for an error: its kind, and the phase of a timeout (``timeout/first_byte``)."""
    if isinstance(error, UpstreamTimeout):
        return f"{error.kind.value}/{error.phase}"
    return error.kind.value

"""Credential pools: per-credential state (in-flight, cooldowns per model, failures, circuit breaker) and selection.

Invariants:
- Policy code takes ``now`` (a monotonic time in seconds) as an argument and never reads a clock, so it is tested
  without sleeping.
- A credential is *available* for a model when it is enabled, not cooling for that model (or all models), and its
  breaker is closed, or half-open with no probe in flight. A half-open breaker lets exactly one probe through;
  success closes it, failure re-opens it for another period.
- Selection: ``least-busy`` picks the lowest in-flight count (ties rotate); ``round-robin`` rotates.
- Keys never appear in ``statistics()`` or ``repr``: credentials are named ``<provider>#<index>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

ALL_MODELS = "*"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(eq=False, slots=True)
class CredentialState:
    provider: str
    index: int
    key: str | None = field(repr=False)
    proxy_url: str | None = None
    in_flight: int = 0
    cooldown_until: dict[str, float] = field(default_factory=dict)
    disabled: bool = False
    consecutive_failures: int = 0
    breaker: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    probe_in_flight: bool = False
    successes: int = 0
    failures: int = 0

    @property
    def name(self) -> str:
        return f"{self.provider}#{self.index}"

    def cooling_until(self, model: str, now: float) -> float:
        until = max(self.cooldown_until.get(model, 0.0), self.cooldown_until.get(ALL_MODELS, 0.0))
        return until if until > now else 0.0


@dataclass(frozen=True, slots=True)
class CredentialStatistics:
    name: str
    in_flight: int
    disabled: bool
    breaker: str
    consecutive_failures: int
    successes: int
    failures: int
    cooling: dict[str, float]


class CredentialPool:
    """The credentials of one provider."""

    def __init__(
        self,
        provider: str,
        keys: list[tuple[str | None, str | None]],
        *,
        strategy: str = "least-busy",
        breaker_failures: int = 5,
        breaker_open_seconds: float = 30.0,
    ) -> None:
        self.provider = provider
        self.credentials = [CredentialState(provider, i, key, proxy) for i, (key, proxy) in enumerate(keys)]
        self.strategy = strategy
        self.breaker_failures = breaker_failures
        self.breaker_open_seconds = breaker_open_seconds
        self.model_cooldown_until: dict[str, float] = {}
        self._cursor = 0

    # ------------------------------------------------------------------ availability
    def _breaker_allows(self, cred: CredentialState, now: float) -> bool:
        if cred.breaker is BreakerState.CLOSED:
            return True
        if cred.breaker is BreakerState.OPEN:
            if now - cred.opened_at < self.breaker_open_seconds:
                return False
            cred.breaker = BreakerState.HALF_OPEN
            cred.probe_in_flight = False
        return not cred.probe_in_flight

    def available(self, cred: CredentialState, model: str, now: float) -> bool:
        return (
            not cred.disabled
            and not cred.cooling_until(model, now)
            and self.model_cooldown_until.get(model, 0.0) <= now
            and self._breaker_allows(cred, now)
        )

    def pick(self, model: str, now: float, exclude: frozenset[int] = frozenset()) -> CredentialState | None:
        """The credential to use next for ``model``, or None when none is available now."""
        candidates = [
            c for c in self.credentials if c.index not in exclude and self.available(c, model, now)
        ]
        if not candidates:
            return None
        n = len(self.credentials)
        start = self._cursor % n if n else 0
        # Rotate from the cursor so ties (and round-robin) spread over credentials.
        candidates.sort(key=lambda c: (c.index - start) % n)
        if self.strategy == "round-robin":
            chosen = candidates[0]
        else:
            chosen = min(candidates, key=lambda c: c.in_flight)
        self._cursor = chosen.index + 1
        return chosen

    def next_available_at(self, model: str, now: float) -> float | None:
        """When some credential will be usable for ``model`` again (``now`` if one is), or None if never
        (all disabled)."""
        times: list[float] = []
        model_until = self.model_cooldown_until.get(model, 0.0)
        for cred in self.credentials:
            if cred.disabled:
                continue
            t = max(cred.cooling_until(model, now), model_until, now)
            if cred.breaker is BreakerState.OPEN:
                t = max(t, cred.opened_at + self.breaker_open_seconds)
            times.append(t)
        return min(times) if times else None

    # ------------------------------------------------------------------ bookkeeping
    def begin(self, cred: CredentialState) -> None:
        cred.in_flight += 1
        if cred.breaker is BreakerState.HALF_OPEN:
            cred.probe_in_flight = True

    def end(self, cred: CredentialState) -> None:
        cred.in_flight -= 1

    def on_success(self, cred: CredentialState, model: str) -> None:
        cred.successes += 1
        cred.consecutive_failures = 0
        cred.breaker = BreakerState.CLOSED
        cred.probe_in_flight = False
        cred.cooldown_until.pop(model, None)

    def on_failure(
        self,
        cred: CredentialState,
        model: str,
        now: float,
        *,
        cooldown: float | None = None,
        disable: bool = False,
        model_cooldown: float | None = None,
        breaker_failure: bool = False,
    ) -> None:
        cred.failures += 1
        cred.consecutive_failures += 1
        if disable:
            cred.disabled = True
        if cooldown is not None and cooldown > 0:
            cred.cooldown_until[model] = now + cooldown
        if model_cooldown is not None:
            self.model_cooldown_until[model] = now + model_cooldown
        if breaker_failure:
            if cred.breaker is BreakerState.HALF_OPEN or cred.consecutive_failures >= self.breaker_failures:
                cred.breaker = BreakerState.OPEN
                cred.opened_at = now
            cred.probe_in_flight = False
        elif cred.breaker is BreakerState.HALF_OPEN:
            # The probe ended without telling us about the upstream's health (e.g. a 400): let another probe go.
            cred.probe_in_flight = False

    def on_neutral(self, cred: CredentialState) -> None:
        """An attempt that says nothing about the credential (client error, cancellation)."""
        if cred.breaker is BreakerState.HALF_OPEN:
            cred.probe_in_flight = False

    def statistics(self, now: float) -> list[CredentialStatistics]:
        return [
            CredentialStatistics(
                name=c.name,
                in_flight=c.in_flight,
                disabled=c.disabled,
                breaker=c.breaker.value,
                consecutive_failures=c.consecutive_failures,
                successes=c.successes,
                failures=c.failures,
                cooling={m: round(t - now, 3) for m, t in c.cooldown_until.items() if t > now},
            )
            for c in self.credentials
        ]

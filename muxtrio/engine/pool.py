"""Credential pools: per-credential state (in-flight, rate-limit cooldowns, refusals, circuit breaker), selection,
and the reason a model cannot be served right now.

Three separate kinds of "out", because each means something different to an operator and to a client:
- *Rate-limited* (429): the credential cools for that model for the provider's hint or a backoff. Not a failure:
  it never counts toward the breaker.
- *Refused* (401/403): the provider rejected the credential (or, for a 403 about one model, the credential for that
  model). It is out for the next step of ``refusal_cooldowns`` (1 min, 10 min, 1 h by default; the last step
  repeats), after which exactly one request probes it; success clears the refusal, another refusal takes the next
  step. Never "disabled until restart".
- *Breaker open*: ``breaker_failures`` consecutive transient failures (5xx, resets, timeouts) open the credential's
  breaker for ``breaker_open_seconds``; then it half-opens and lets one probe through; success closes it, failure
  re-opens it.
A model the provider answered 404 for is *missing* on that provider for ``missing_recheck_seconds`` (a configuration
fact, re-checked by the next request after that).

Invariants:
- Policy code takes ``now`` (a monotonic time in seconds) as an argument and never reads a clock, so it is tested
  without sleeping.
- A credential is *available* for a model when an operator has not disabled it (management API), it is not
  rate-limited or refused for that model (or all models),
  the model is not missing, and no probe is due or the probe slot is free (one probe in flight per credential).
- :meth:`CredentialPool.outage` explains an empty :meth:`pick` (reason, detail, when it ends); it never returns a
  reason for a pool that has an available credential.
- Selection: ``least-busy`` picks the lowest in-flight count (ties rotate); ``round-robin`` rotates. With shared
  state (``muxtrio.state.pools``) the count includes the other live nodes' (``in_flight_elsewhere``), and a probe
  another node holds (``probe_elsewhere``) keeps the credential out here as one held locally does.
- Keys never appear in ``statistics()`` or ``repr``: credentials are named ``<provider>#<index>``; subscription
  accounts by their label (``<type>:<email or account id>``).
- Indices are never reused: an account whose token file went away is *retired* (never picked again, and no reason
  in :meth:`CredentialPool.outage`), not removed, so a request that already tried it still excludes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from muxtrio.errors import CapacityError, ErrorKind

ALL_MODELS = "*"
DEFAULT_REFUSAL_COOLDOWNS = (60.0, 600.0, 3600.0)
DEFAULT_MISSING_RECHECK_S = 60.0
MAX_DETAIL = 300  # characters of a provider's message kept to repeat to clients


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class OutageReason(StrEnum):
    """Why no credential of a pool can serve a model now, in order of precedence when credentials disagree."""

    MODEL_MISSING = "model_missing"  # the provider answered 404 for the model
    REFUSED = "refused"  # 401/403: the provider refused the credential
    BREAKER_OPEN = "breaker_open"  # repeated transient failures
    PROBING = "probing"  # the one probe after a refusal or an open breaker is in flight
    RATE_LIMITED = "rate_limited"  # 429 cooldowns
    DISABLED = "disabled"  # an operator took every credential out (management API); never ends by itself


@dataclass(frozen=True, slots=True)
class Outage:
    """Why a pool cannot serve ``model`` now. ``until`` is when the earliest credential may be tried again (a
    monotonic time); ``status`` is the provider status behind it (401, 403, 404, 429) or 0; ``failures`` the
    consecutive failures that opened a breaker and ``last_failure`` their last error class."""

    provider: str
    reason: OutageReason
    until: float
    status: int = 0
    failures: int = 0
    last_failure: str = ""
    detail: str = ""  # the provider's own words, where they add something (a missing model)


    def error(self, model: str, now: float) -> CapacityError:
        """What the client is told: the reason in words, with the provider's name, and when to come back."""
        if self.reason is OutageReason.DISABLED:
            return CapacityError(
                f"provider {self.provider}: every credential is disabled by an operator", kind=ErrorKind.UNAVAILABLE
            )
        wait = max(1, math.ceil(self.until - now))
        where = f"provider {self.provider}"
        if self.reason is OutageReason.MODEL_MISSING:
            said = f": {self.detail}" if self.detail else ""
            error = CapacityError(
                f"{where}: model {model!r} was not found by the provider ({self.status or 404}{said}); it is "
                f"checked again in {wait} s",
                kind=ErrorKind.NOT_FOUND,
            )
            error.param = "model"
            return error
        if self.reason is OutageReason.REFUSED:
            return CapacityError(
                f"{where}: every credential was refused by the provider ({self.status}); next retry in {wait} s",
                retry_after=wait, kind=ErrorKind.UNAVAILABLE,
            )
        if self.reason is OutageReason.BREAKER_OPEN:
            return CapacityError(
                f"{where}: circuit breaker open after {self.failures} consecutive failures (last: "
                f"{self.last_failure or 'unknown'}); next probe in {wait} s",
                retry_after=wait, kind=ErrorKind.UNAVAILABLE,
            )
        if self.reason is OutageReason.PROBING:
            return CapacityError(
                f"{where}: its credential is being re-probed after a failure; retry in {wait} s",
                retry_after=wait, kind=ErrorKind.UNAVAILABLE,
            )
        return CapacityError(
            f"{where}: every credential is rate-limited for model {model!r}; next retry in {wait} s",
            retry_after=wait,
        )


@dataclass(eq=False, slots=True)
class CredentialState:
    provider: str
    index: int
    key: str | None = field(repr=False)
    proxy_url: str | None = None
    in_flight: int = 0
    cooldown_until: dict[str, float] = field(default_factory=dict)  # rate limits, per model
    refused_until: dict[str, float] = field(default_factory=dict)  # refusals, per model or ALL_MODELS
    refusals: dict[str, int] = field(default_factory=dict)  # consecutive refusals (the cooldown ladder step)
    refusal_status: dict[str, int] = field(default_factory=dict)  # 401 or 403, per refusal scope
    rate_limits: int = 0  # consecutive 429s (sizes the backoff when the provider gives no hint)
    consecutive_failures: int = 0  # consecutive transient failures (the breaker's count)
    last_failure: str = ""  # error class of the last transient failure (for the breaker's reason)
    breaker: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    probe_in_flight: bool = False
    successes: int = 0
    failures: int = 0
    account: object | None = field(default=None, repr=False)  # an accounts.store.Account: the key is its token
    label: str | None = None
    retired: bool = False  # its account's token file is gone
    disabled: bool = False  # taken out by an operator (management API) until enabled; never by a failure
    disabled_reason: str = ""
    last_error: str = ""  # error class of the last failed attempt that said something about the credential
    in_flight_elsewhere: int = 0  # on the other live nodes (shared state, muxtrio.state.pools)
    probe_elsewhere: bool = False  # another node holds this credential's one probe (shared state)

    @property
    def name(self) -> str:
        return self.label or f"{self.provider}#{self.index}"

    def cooling_until(self, model: str, now: float) -> float:
        """When the rate-limit cooldown for ``model`` ends, or 0 when it is not cooling."""
        until = max(self.cooldown_until.get(model, 0.0), self.cooldown_until.get(ALL_MODELS, 0.0))
        return until if until > now else 0.0

    def refused_for(self, model: str, now: float) -> tuple[float, int]:
        """``(until, status)`` of the refusal that keeps this credential from ``model``, or ``(0, 0)``."""
        best = (0.0, 0)
        for scope in (model, ALL_MODELS):
            until = self.refused_until.get(scope, 0.0)
            if until > now and until > best[0]:
                best = (until, self.refusal_status.get(scope, 0))
        return best

    def on_probation(self, model: str, now: float) -> bool:
        """The next request is a probe: the breaker is half-open, or a refusal's cooldown just ended."""
        if self.breaker is BreakerState.HALF_OPEN:
            return True
        return any(self.refusals.get(scope, 0) > 0 and self.refused_until.get(scope, 0.0) <= now
                   for scope in (model, ALL_MODELS))


@dataclass(frozen=True, slots=True)
class CredentialStatistics:
    name: str
    in_flight: int
    breaker: str
    consecutive_failures: int
    successes: int
    failures: int
    cooling: dict[str, float]
    refused: dict[str, float]


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
        refusal_cooldowns: tuple[float, ...] = DEFAULT_REFUSAL_COOLDOWNS,
        missing_recheck_seconds: float = DEFAULT_MISSING_RECHECK_S,
    ) -> None:
        self.provider = provider
        self.credentials = [CredentialState(provider, i, key, proxy) for i, (key, proxy) in enumerate(keys)]
        self.strategy = strategy
        self.breaker_failures = breaker_failures
        self.breaker_open_seconds = breaker_open_seconds
        self.refusal_cooldowns = refusal_cooldowns or DEFAULT_REFUSAL_COOLDOWNS
        self.missing_recheck_seconds = missing_recheck_seconds
        self.missing_until: dict[str, float] = {}  # model -> when to ask the provider again
        self.missing_detail: dict[str, str] = {}  # model -> what the provider said (already scrubbed)
        self.missing_reported: set[str] = set()  # models whose 404 was already logged at WARNING
        self._cursor = 0

    def add(self, *, account: object, label: str, proxy_url: str | None = None) -> CredentialState:
        """A new credential backed by a subscription account (its token is fetched per request)."""
        cred = CredentialState(self.provider, len(self.credentials), None, proxy_url, account=account, label=label)
        self.credentials.append(cred)
        return cred

    def retire(self, cred: CredentialState) -> None:
        """The account behind ``cred`` is gone: no new requests (open ones finish)."""
        cred.retired = True
        cred.account = None

    def revive(self, cred: CredentialState, account: object, label: str) -> None:
        """The account behind ``cred`` changed on disk (a new login, or a token another process refreshed): its
        refusals end (new tokens), while rate-limit cooldowns and the breaker stay (a usage limit belongs to the
        account, not to its token)."""
        cred.account = account
        cred.label = label
        cred.retired = False
        cred.refused_until.clear()
        cred.refusals.clear()
        cred.refusal_status.clear()

    # ------------------------------------------------------------------ availability
    def _advance_breaker(self, cred: CredentialState, now: float) -> None:
        if cred.breaker is BreakerState.OPEN and now - cred.opened_at >= self.breaker_open_seconds:
            cred.breaker = BreakerState.HALF_OPEN
            cred.probe_in_flight = False

    def available(self, cred: CredentialState, model: str, now: float) -> bool:
        if cred.retired or cred.disabled:
            return False
        self._advance_breaker(cred, now)
        if cred.breaker is BreakerState.OPEN:
            return False
        if self.missing_until.get(model, 0.0) > now:
            return False
        if cred.cooling_until(model, now) or cred.refused_for(model, now)[0]:
            return False
        return not (cred.on_probation(model, now) and (cred.probe_in_flight or cred.probe_elsewhere))

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
            chosen = min(candidates, key=lambda c: c.in_flight + c.in_flight_elsewhere)
        self._cursor = chosen.index + 1
        return chosen

    def outage(self, model: str, now: float) -> Outage | None:
        """Why no credential can serve ``model`` now (None when one can): the reason of the credential that comes
        back first; among credentials back at the same time, the most serious reason."""
        if any(self.available(c, model, now) for c in self.credentials):
            return None
        missing = self.missing_until.get(model, 0.0)
        if missing > now:
            return Outage(self.provider, OutageReason.MODEL_MISSING, missing, status=404,
                          detail=self.missing_detail.get(model, ""))
        best: Outage | None = None
        for cred in self.credentials:
            if cred.retired:
                continue
            candidate = self._credential_outage(cred, model, now)
            if best is None or (candidate.until, _RANK[candidate.reason]) < (best.until, _RANK[best.reason]):
                best = candidate
        return best

    def _credential_outage(self, cred: CredentialState, model: str, now: float) -> Outage:
        if cred.disabled:
            return Outage(self.provider, OutageReason.DISABLED, math.inf)
        refused_until, status = cred.refused_for(model, now)
        if refused_until:
            return Outage(self.provider, OutageReason.REFUSED, refused_until, status=status)
        if cred.breaker is BreakerState.OPEN:
            return Outage(self.provider, OutageReason.BREAKER_OPEN, cred.opened_at + self.breaker_open_seconds,
                          failures=cred.consecutive_failures, last_failure=cred.last_failure)
        cooling = cred.cooling_until(model, now)
        if cooling:
            return Outage(self.provider, OutageReason.RATE_LIMITED, cooling, status=429)
        # Not cooling, refused or open, yet unavailable: its one probe is in flight.
        return Outage(self.provider, OutageReason.PROBING, now)

    # ------------------------------------------------------------------ bookkeeping
    def begin(self, cred: CredentialState, model: str, now: float) -> None:
        cred.in_flight += 1
        if cred.on_probation(model, now):
            cred.probe_in_flight = True

    def end(self, cred: CredentialState) -> None:
        cred.in_flight -= 1

    def on_success(self, cred: CredentialState, model: str) -> None:
        cred.successes += 1
        cred.consecutive_failures = 0
        cred.rate_limits = 0
        cred.breaker = BreakerState.CLOSED
        cred.probe_in_flight = False
        cred.cooldown_until.pop(model, None)
        for scope in (model, ALL_MODELS):
            cred.refusals.pop(scope, None)
            cred.refused_until.pop(scope, None)
            cred.refusal_status.pop(scope, None)
        self.missing_until.pop(model, None)
        self.missing_detail.pop(model, None)
        self.missing_reported.discard(model)

    def on_rate_limit(self, cred: CredentialState, model: str, now: float, cooldown: float) -> None:
        """A 429: cool (credential, model). Not a failure of the upstream: the breaker count is untouched."""
        cred.failures += 1
        cred.rate_limits += 1
        if cooldown > 0:
            cred.cooldown_until[model] = now + cooldown
        cred.probe_in_flight = False

    def on_refused(self, cred: CredentialState, model: str, now: float, status: int, *, model_scoped: bool) -> float:
        """A 401/403: take the credential out (for ``model`` only when ``model_scoped``) for the next step of the
        cooldown ladder. Returns that cooldown in seconds."""
        cred.failures += 1
        scope = model if model_scoped else ALL_MODELS
        step = cred.refusals.get(scope, 0)
        cooldown = self.refusal_cooldowns[min(step, len(self.refusal_cooldowns) - 1)]
        cred.refusals[scope] = step + 1
        cred.refused_until[scope] = now + cooldown
        cred.refusal_status[scope] = status
        cred.probe_in_flight = False
        return cooldown

    def on_model_missing(self, cred: CredentialState, model: str, now: float, detail: str = "") -> bool:
        """A 404 for ``model``: the provider does not serve it; ask again after ``missing_recheck_seconds``.
        ``detail`` is the provider's message (scrubbed, bounded). Returns True the first time (until the model is
        served again), so it is reported once."""
        self.on_neutral(cred)
        self.missing_until[model] = now + self.missing_recheck_seconds
        self.missing_detail[model] = detail[:MAX_DETAIL]
        first = model not in self.missing_reported
        self.missing_reported.add(model)
        return first

    def on_failure(self, cred: CredentialState, now: float, error_class: str) -> bool:
        """A transient failure (5xx, reset, timeout): counts toward the breaker. Returns True when this failure
        opened (or re-opened) the breaker."""
        cred.failures += 1
        cred.consecutive_failures += 1
        cred.last_failure = error_class
        cred.probe_in_flight = False
        if cred.breaker is BreakerState.HALF_OPEN or cred.consecutive_failures >= self.breaker_failures:
            opened = cred.breaker is not BreakerState.OPEN
            cred.breaker = BreakerState.OPEN
            cred.opened_at = now
            return opened
        return False

    def on_neutral(self, cred: CredentialState) -> None:
        """An attempt that says nothing about the credential (client error, cancellation): a probe slot frees."""
        cred.probe_in_flight = False

    # ------------------------------------------------------------------ operator actions and hot reload
    def find(self, label: str) -> CredentialState | None:
        return next((c for c in self.credentials if c.name == label), None)

    def reset(self, cred: CredentialState) -> None:
        """Forget the credential's rate-limit cooldowns, refusals, failure streak and breaker (an operator's "try it
        again now"). An operator's disable stays: that is :meth:`set_disabled`."""
        cred.cooldown_until.clear()
        cred.refused_until.clear()
        cred.refusals.clear()
        cred.refusal_status.clear()
        cred.rate_limits = 0
        cred.consecutive_failures = 0
        cred.breaker = BreakerState.CLOSED
        cred.probe_in_flight = False

    def set_disabled(self, cred: CredentialState, disabled: bool, reason: str = "") -> None:
        """Take the credential out of (or back into) selection; in-flight requests on it finish."""
        cred.disabled = disabled
        cred.disabled_reason = reason if disabled else ""

    def inherit(self, previous: CredentialPool) -> None:
        """Hot reload: take over ``previous``'s credentials whose key and proxy are unchanged — the same state
        objects, so in-flight counts, cooldowns, breaker and counters continue (their index follows the new list).
        Credentials ``previous`` has and this pool lacks stay with ``previous`` only: no new requests reach them."""
        unused = list(previous.credentials)
        for index, cred in enumerate(self.credentials):
            old = next((o for o in unused if o.account is None and (o.key, o.proxy_url) == (cred.key, cred.proxy_url)),
                       None)
            if old is not None:
                unused.remove(old)
                old.index = index
                self.credentials[index] = old
        self.missing_until.update(previous.missing_until)
        self.missing_detail.update(previous.missing_detail)
        self.missing_reported.update(previous.missing_reported)

    def statistics(self, now: float) -> list[CredentialStatistics]:
        return [
            CredentialStatistics(
                name=c.name,
                in_flight=c.in_flight,
                breaker=c.breaker.value,
                consecutive_failures=c.consecutive_failures,
                successes=c.successes,
                failures=c.failures,
                cooling={m: round(t - now, 3) for m, t in c.cooldown_until.items() if t > now},
                refused={m: round(t - now, 3) for m, t in c.refused_until.items() if t > now},
            )
            for c in self.credentials
        ]


_RANK = {reason: rank for rank, reason in enumerate(OutageReason)}

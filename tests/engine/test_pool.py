"""Credential selection, rate-limit cooldowns, refusals, missing models and the circuit breaker, with time as an
argument."""

from __future__ import annotations

from muxtrio.engine.pool import BreakerState, CredentialPool, OutageReason
from muxtrio.errors import ErrorKind


def pool(n: int = 3, strategy: str = "least-busy") -> CredentialPool:
    return CredentialPool("p", [(f"key-{i}", None) for i in range(n)], strategy=strategy,
                          breaker_failures=3, breaker_open_seconds=10.0, refusal_cooldowns=(60.0, 600.0, 3600.0))


def test_least_busy_prefers_the_idle_credential() -> None:
    p = pool()
    first = p.pick("m", 0.0)
    assert first is not None
    p.begin(first, "m", 0.0)
    second = p.pick("m", 0.0)
    assert second is not None and second.index != first.index


def test_round_robin_rotates() -> None:
    p = pool(strategy="round-robin")
    picked = [p.pick("m", 0.0) for _ in range(4)]
    assert [c.index for c in picked if c] == [0, 1, 2, 0]


def test_rate_limit_cooldown_is_per_model_and_expires() -> None:
    p = pool(1)
    cred = p.credentials[0]
    p.on_rate_limit(cred, "m", 100.0, 5.0)
    assert p.pick("m", 101.0) is None
    assert p.pick("other", 101.0) is cred
    outage = p.outage("m", 101.0)
    assert outage is not None and outage.reason is OutageReason.RATE_LIMITED and outage.until == 105.0
    error = outage.error("m", 101.0)
    assert error.status == 429 and error.retry_after == 4 and "provider p" in error.message
    assert p.pick("m", 105.0) is cred and p.outage("m", 105.0) is None


def test_rate_limits_never_count_toward_the_breaker() -> None:
    p = pool(1)
    cred = p.credentials[0]
    for t in range(4):
        p.on_rate_limit(cred, "m", float(t), 0.5)
    assert cred.consecutive_failures == 0
    assert not p.on_failure(cred, 10.0, "upstream")  # one 500 after four 429s: 1 of 3, still closed
    assert cred.breaker is BreakerState.CLOSED


def test_refusal_climbs_the_ladder_with_one_probe_each_time() -> None:
    p = pool(1)
    cred = p.credentials[0]
    assert p.on_refused(cred, "m", 0.0, 401, model_scoped=False) == 60.0
    assert p.pick("m", 59.0) is None and p.pick("other", 59.0) is None  # the whole credential is out
    outage = p.outage("m", 6.0)
    assert outage is not None and outage.reason is OutageReason.REFUSED
    error = outage.error("m", 6.0)
    assert error.status == 503 and error.kind is ErrorKind.UNAVAILABLE and error.retry_after == 54
    assert error.message == "provider p: every credential was refused by the provider (401); next retry in 54 s"
    probe = p.pick("m", 60.0)
    assert probe is cred
    p.begin(cred, "m", 60.0)
    assert p.pick("m", 60.5) is None  # one probe at a time
    assert p.outage("m", 60.5) is not None
    assert p.on_refused(cred, "m", 61.0, 401, model_scoped=False) == 600.0
    p.end(cred)
    assert p.pick("m", 660.0) is None and p.pick("m", 661.0) is cred
    assert p.on_refused(cred, "m", 661.0, 401, model_scoped=False) == 3600.0
    assert p.on_refused(cred, "m", 9000.0, 401, model_scoped=False) == 3600.0  # the last step repeats
    p.on_success(cred, "m")
    assert p.pick("m", 9000.0) is cred and not cred.refusals


def test_a_model_scoped_refusal_leaves_other_models_alone() -> None:
    p = pool(1)
    cred = p.credentials[0]
    p.on_refused(cred, "m", 0.0, 403, model_scoped=True)
    assert p.pick("m", 1.0) is None and p.pick("other", 1.0) is cred


def test_a_missing_model_is_rechecked_and_reported_once() -> None:
    p = CredentialPool("p", [("k", None)], missing_recheck_seconds=60.0)
    cred = p.credentials[0]
    assert p.on_model_missing(cred, "m", 0.0)
    outage = p.outage("m", 1.0)
    assert outage is not None and outage.reason is OutageReason.MODEL_MISSING
    assert outage.error("m", 1.0).status == 404 and outage.error("m", 1.0).retry_after is None
    assert p.pick("other", 1.0) is cred and p.pick("m", 59.0) is None and p.pick("m", 60.0) is cred
    assert not p.on_model_missing(cred, "m", 60.0)  # still missing: not reported again


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    p = pool(1)
    cred = p.credentials[0]
    opened = [p.on_failure(cred, float(t), "upstream") for t in range(3)]
    assert opened == [False, False, True] and cred.breaker is BreakerState.OPEN
    assert p.pick("m", 5.0) is None
    outage = p.outage("m", 5.0)
    assert outage is not None and outage.reason is OutageReason.BREAKER_OPEN
    error = outage.error("m", 5.0)
    assert error.status == 503 and error.retry_after == 7 and "circuit breaker open after 3" in error.message
    probe = p.pick("m", 12.5)
    assert probe is cred and cred.breaker is BreakerState.HALF_OPEN
    p.begin(cred, "m", 12.5)
    assert p.pick("m", 12.6) is None  # one probe at a time
    p.end(cred)
    p.on_success(cred, "m")
    assert cred.breaker is BreakerState.CLOSED and p.pick("m", 12.7) is cred


def test_failed_probe_reopens() -> None:
    p = pool(1)
    cred = p.credentials[0]
    for t in range(3):
        p.on_failure(cred, float(t), "upstream")
    assert p.pick("m", 13.0) is cred
    p.begin(cred, "m", 13.0)
    p.on_failure(cred, 13.0, "upstream")
    p.end(cred)
    assert cred.breaker is BreakerState.OPEN and p.pick("m", 20.0) is None and p.pick("m", 23.5) is cred


def test_statistics_never_show_keys() -> None:
    p = pool(2)
    stats = p.statistics(0.0)
    assert [s.name for s in stats] == ["p#0", "p#1"]
    assert "key-" not in repr(stats) and "key-" not in repr(p.credentials)

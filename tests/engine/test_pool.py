"""Credential selection, cooldowns and the circuit breaker, with time as an argument."""

from __future__ import annotations

from muxtrio.engine.pool import BreakerState, CredentialPool


def pool(n: int = 3, strategy: str = "least-busy") -> CredentialPool:
    return CredentialPool("p", [(f"key-{i}", None) for i in range(n)], strategy=strategy,
                          breaker_failures=3, breaker_open_seconds=10.0)


def test_least_busy_prefers_the_idle_credential() -> None:
    p = pool()
    first = p.pick("m", 0.0)
    assert first is not None
    p.begin(first)
    second = p.pick("m", 0.0)
    assert second is not None and second.index != first.index


def test_round_robin_rotates() -> None:
    p = pool(strategy="round-robin")
    picked = [p.pick("m", 0.0) for _ in range(4)]
    assert [c.index for c in picked if c] == [0, 1, 2, 0]


def test_cooldown_is_per_model_and_expires() -> None:
    p = pool(1)
    cred = p.credentials[0]
    p.on_failure(cred, "m", 100.0, cooldown=5.0)
    assert p.pick("m", 101.0) is None
    assert p.pick("other", 101.0) is cred
    assert p.next_available_at("m", 101.0) == 105.0
    assert p.pick("m", 105.0) is cred


def test_disabled_credential_never_returns() -> None:
    p = pool(1)
    p.on_failure(p.credentials[0], "m", 0.0, disable=True)
    assert p.pick("m", 1e9) is None
    assert p.next_available_at("m", 0.0) is None


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    p = pool(1)
    cred = p.credentials[0]
    for t in range(3):
        p.on_failure(cred, "m", float(t), breaker_failure=True)
    assert cred.breaker is BreakerState.OPEN
    assert p.pick("m", 5.0) is None
    probe = p.pick("m", 12.5)
    assert probe is cred and cred.breaker is BreakerState.HALF_OPEN
    p.begin(cred)
    assert p.pick("m", 12.6) is None  # one probe at a time
    p.end(cred)
    p.on_success(cred, "m")
    assert cred.breaker is BreakerState.CLOSED and p.pick("m", 12.7) is cred


def test_failed_probe_reopens() -> None:
    p = pool(1)
    cred = p.credentials[0]
    for t in range(3):
        p.on_failure(cred, "m", float(t), breaker_failure=True)
    assert p.pick("m", 13.0) is cred
    p.begin(cred)
    p.on_failure(cred, "m", 13.0, breaker_failure=True)
    p.end(cred)
    assert cred.breaker is BreakerState.OPEN and p.pick("m", 20.0) is None and p.pick("m", 23.5) is cred


def test_statistics_never_show_keys() -> None:
    p = pool(2)
    stats = p.statistics(0.0)
    assert [s.name for s in stats] == ["p#0", "p#1"]
    assert "key-" not in repr(stats) and "key-" not in repr(p.credentials)

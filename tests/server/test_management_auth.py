"""Management-key policy without a server: hashed and plain keys, loopback-only, remote lockout (``now`` is given,
nothing sleeps), and the key never equal to a gateway key."""

from __future__ import annotations

from typing import Any

import pytest

from muxtrio.config import parse_config
from muxtrio.errors import ConfigError
from muxtrio.server.management_auth import (
    BAN_SECONDS,
    MAX_FAILURES,
    Guard,
    ManagementKey,
    Refused,
    hash_key,
    management_key,
    verify,
)

KEY = "management-key-0123"


def scope(address: str, key: str | None = None, header: bytes = b"authorization") -> dict[str, Any]:
    headers = [] if key is None else [(header, (f"Bearer {key}" if header == b"authorization" else key).encode())]
    return {"client": (address, 50000), "headers": headers}


def test_plain_sha256_and_scrypt_forms_verify() -> None:
    import hashlib

    hashed = hash_key(KEY)
    assert hashed.startswith("scrypt:") and KEY not in hashed
    for stored in (KEY, "sha256:" + hashlib.sha256(KEY.encode()).hexdigest(), hashed):
        assert verify(stored, KEY)
        assert not verify(stored, KEY + "x")
        assert not verify(stored, "")
    assert not verify("scrypt:broken", KEY)


def test_key_sources_and_separation_from_gateway_keys() -> None:
    config = parse_config({"api-keys": ["gw-key"], "remote-management": {"secret-key": KEY}}, env={})
    assert management_key(config, env={}) == ManagementKey(KEY, "config remote-management.secret-key")
    found = management_key(config, env={"LLM_MUX_MANAGEMENT_KEY": "from-env"})
    assert found is not None and found.label == "env LLM_MUX_MANAGEMENT_KEY"
    assert management_key(parse_config({}, env={}), env={}) is None
    with pytest.raises(ValueError):
        management_key(config, env={"MUXTRIO_MANAGEMENT_KEY": "gw-key"})
    with pytest.raises(ConfigError, match=r"remote-management\.secret-key"):
        parse_config({"api-keys": ["same"], "remote-management": {"secret-key": "same"}}, env={})


async def test_loopback_only_unless_allowed() -> None:
    guard = Guard()
    key = ManagementKey(KEY, "test")
    assert await guard.check(scope("127.0.0.1", KEY), key, allow_remote=False, now=0) == "127.0.0.1"
    assert await guard.check(scope("::1", KEY, b"x-management-key"), key, allow_remote=False, now=0) == "::1"
    with pytest.raises(Refused) as refused:
        await guard.check(scope("203.0.113.7", KEY), key, allow_remote=False, now=0)
    assert refused.value.status == 403 and refused.value.code == "FORBIDDEN"
    assert await guard.check(scope("203.0.113.7", KEY), key, allow_remote=True, now=0) == "203.0.113.7"


async def test_five_failed_remote_attempts_ban_the_address_for_30_minutes() -> None:
    guard = Guard()
    key = ManagementKey(hash_key(KEY), "test")
    remote = "198.51.100.9"
    for attempt in range(MAX_FAILURES):
        with pytest.raises(Refused) as refused:
            await guard.check(scope(remote, "wrong"), key, allow_remote=True, now=attempt)
        assert refused.value.status == 401
    with pytest.raises(Refused) as refused:  # the right key, but the address is banned
        await guard.check(scope(remote, KEY), key, allow_remote=True, now=10)
    assert refused.value.status == 403 and refused.value.retry_after is not None
    # Another address is not affected; loopback failures never ban.
    assert await guard.check(scope("198.51.100.10", KEY), key, allow_remote=True, now=10)
    for attempt in range(MAX_FAILURES + 2):
        with pytest.raises(Refused):
            await guard.check(scope("127.0.0.1", "wrong"), key, allow_remote=True, now=attempt)
    assert await guard.check(scope("127.0.0.1", KEY), key, allow_remote=True, now=20)
    # After 30 minutes the address may try again.
    assert await guard.check(scope(remote, KEY), key, allow_remote=True, now=4 + BAN_SECONDS + 1) == remote

"""The account store on its own, against the fake OAuth server: a failed refresh backs off and keeps serving a
still-valid token, an expired one makes the account unavailable with a retry time, and a revoked one disables it."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2
import pytest
import trio

from muxtrio.accounts.store import BACKOFF_FIRST, AccountStore
from muxtrio.errors import ErrorKind, UpstreamError
from tests.accounts.conftest import endpoints, write_account
from tests.accounts.fakes import SubscriptionFake


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/oauth/token"


def _store(fake: SubscriptionFake, auth_dir: Path, token_url: str | None = None) -> AccountStore:
    ends = endpoints(fake.url)
    if token_url is not None:
        ends["claude"]["token-url"] = token_url
    return AccountStore(str(auth_dir), endpoints=ends, refresh_lead=60.0,
                        http=httpx2.AsyncClient(trust_env=False, timeout=5))  # fmt: skip


async def test_a_failed_refresh_backs_off_and_keeps_a_valid_token_serving(
    fake: SubscriptionFake, auth_dir: Path
) -> None:
    _, access, _ = write_account(fake, auth_dir, "claude", expires_in=30.0)  # due (lead 60 s), still valid
    store = _store(fake, auth_dir, _closed_port())
    [account] = store.scan().added
    token, _ = await store.access(account)
    assert token == access, "the old token still works while the refresh backs off"
    assert account.file.reason.startswith("could not reach") and account.file.failures == 1
    assert account.status(store._clock())["state"] == "out"
    first_retry = account.file.retry_at
    token, _ = await store.access(account)  # within the backoff: no new attempt
    assert account.file.failures == 1 and account.file.retry_at == first_retry
    assert first_retry - store._clock() <= BACKOFF_FIRST
    await store.http.aclose()


async def test_an_expired_token_that_cannot_refresh_is_unavailable_with_a_retry_time(
    fake: SubscriptionFake, auth_dir: Path
) -> None:
    write_account(fake, auth_dir, "claude", expires_in=-1.0)
    store = _store(fake, auth_dir, _closed_port())
    [account] = store.scan().added
    with pytest.raises(UpstreamError) as info:
        await store.access(account)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retry_after is not None
    assert "claude:user@example.com is out" in info.value.message
    with pytest.raises(UpstreamError):  # backing off: refused at once, no second refresh attempt
        await store.access(account)
    assert account.file.failures == 1
    await store.http.aclose()


async def test_a_revoked_refresh_token_disables_the_account(fake: SubscriptionFake, auth_dir: Path) -> None:
    _, _, refresh = write_account(fake, auth_dir, "qwen", expires_in=-1.0)
    fake.revoked.add(refresh)
    store = _store(fake, auth_dir)
    [account] = store.scan().added
    for _ in range(2):
        with pytest.raises(UpstreamError) as info:
            await store.access(account)
        assert info.value.kind is ErrorKind.AUTHENTICATION
        assert "run `muxtrio login qwen` again" in info.value.message
    assert fake.oauth.refreshes == 1, "a revoked account is not asked again"
    await store.http.aclose()


async def test_two_workers_refresh_an_account_once(fake: SubscriptionFake, auth_dir: Path) -> None:
    """Two stores on one directory (two ``--workers`` processes): the file lock makes the second adopt the token
    the first one refreshed; a second refresh with the rotated refresh token would have been refused."""
    write_account(fake, auth_dir, "codex", expires_in=-1.0)
    first, second = _store(fake, auth_dir), _store(fake, auth_dir)
    [a] = first.scan().added
    [b] = second.scan().added
    tokens: list[str] = []

    async def use(store: AccountStore, account: object) -> None:
        tokens.append((await store.access(account))[0])  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(use, first, a)
        nursery.start_soon(use, second, b)
    assert fake.oauth.refreshes == 1
    assert tokens[0] == tokens[1] and tokens[0] in fake.valid
    assert not a.file.revoked and not b.file.revoked
    for store in (first, second):
        await store.http.aclose()

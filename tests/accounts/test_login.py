"""The login flows against the fake OAuth server on loopback: PKCE with the verifier checked, the one-shot callback
(wrong state refused, provider error, timeout, cancel, pasted URL), the device flow (authorization_pending, then
slow_down, then tokens), Gemini CLI's project onboarding, and the token files they write."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
import trio

from muxtrio.accounts import oauth
from muxtrio.accounts.files import read_token_file
from muxtrio.accounts.login import LoginError, LoginManager, LoginSession
from muxtrio.accounts.store import AccountStore
from tests.accounts.conftest import endpoints, file_mode
from tests.accounts.fakes import ACCOUNT_ID, GITHUB_LOGIN, PROJECT, SubscriptionFake

PKCE_TYPES = ("claude", "codex", "gemini-cli")
DEVICE_TYPES = ("github-copilot", "qwen")


def _manager(fake: SubscriptionFake, auth_dir: Path, **kwargs: float) -> LoginManager:
    settings: dict[str, float] = {"onboard_poll_interval": 0.01, "slow_down_step": 0.01, **kwargs}
    return LoginManager(str(auth_dir), endpoints=endpoints(fake.url), **settings)  # type: ignore[arg-type]


async def _browser(url: str) -> httpx2.Response:
    """The user's browser: open the authorization URL and follow the redirect to the callback."""
    async with httpx2.AsyncClient(follow_redirects=True, trust_env=False, timeout=10) as client:
        return await client.get(url)


async def _finished(session: LoginSession) -> None:
    with trio.fail_after(10):  # hang guard
        await session.done.wait()


@pytest.mark.parametrize("provider", PKCE_TYPES)
async def test_pkce_login_writes_an_llm_mux_token_file(fake: SubscriptionFake, auth_dir: Path, provider: str) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, provider)
        assert session.status == "pending" and "code_challenge_method=S256" in session.url
        page = await _browser(session.url)
        assert page.status_code == 200 and b"Login complete" in page.content
        await _finished(session)
    assert session.status == "completed", session.error
    [path] = session.files
    assert file_mode(Path(path)) == 0o600
    token = read_token_file(path)
    assert token.provider == provider
    assert token.access_token in fake.valid
    [exchange] = [r for r in fake.oauth.token_requests if r["grant_type"] == "authorization_code"]
    assert exchange["code_verifier"], "the verifier went with the code (the fake checked it against the challenge)"
    if provider == "codex":
        assert (token.email, token.account_id) == ("new-user@example.com", ACCOUNT_ID)
    if provider == "gemini-cli":
        assert token.projects == (PROJECT,), "onboarding found the project after one pending round"
        assert fake.onboarding_pending == 0
        assert token.data["type"] == "gemini" and "token" in token.data


async def test_gemini_login_with_several_projects_gives_one_account_each(
    fake: SubscriptionFake, auth_dir: Path
) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "gemini-cli", project="team-a, team-b")
        await _browser(session.url)
        await _finished(session)
    assert session.status == "completed", session.error
    [path] = session.files
    assert Path(path).name == "gemini-new-user@example.com-all.json"
    store = AccountStore(str(auth_dir))
    labels = sorted(a.label for a in store.scan().added)
    assert labels == ["gemini-cli:new-user@example.com/team-a", "gemini-cli:new-user@example.com/team-b"]


async def test_a_wrong_pkce_verifier_is_refused(fake: SubscriptionFake, auth_dir: Path) -> None:
    verifier, challenge = oauth.pkce_pair()
    ends = oauth.endpoints_for("codex", endpoints(fake.url))
    url = oauth.authorize_url("codex", ends, state="s1", challenge=challenge, redirect_uri="http://127.0.0.1:9/cb")
    async with httpx2.AsyncClient(follow_redirects=False, trust_env=False) as client:
        location = (await client.get(url)).headers["location"]
        code = httpx2.URL(location).params["code"]
        with pytest.raises(oauth.OAuthError) as info:
            await oauth.exchange_code(client, "codex", ends, code=code, verifier=verifier + "x",
                                      redirect_uri="http://127.0.0.1:9/cb", state="s1")  # fmt: skip
    assert info.value.code == "invalid_grant" and "PKCE" in info.value.message


async def test_callback_with_a_wrong_state_is_refused_and_the_login_goes_on(
    fake: SubscriptionFake, auth_dir: Path
) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "claude")
        forged = session.redirect_uri + "?code=stolen&state=not-the-state"
        async with httpx2.AsyncClient(trust_env=False) as client:
            refused = await client.get(forged)
        assert refused.status_code == 400 and b"state mismatch" in refused.content
        assert session.status == "pending"
        await _browser(session.url)
        await _finished(session)
    assert session.status == "completed"
    assert not any(r.get("code") == "stolen" for r in fake.oauth.token_requests)


async def test_provider_error_on_the_callback_fails_the_login(fake: SubscriptionFake, auth_dir: Path) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "codex")
        async with httpx2.AsyncClient(trust_env=False) as client:
            await client.get(f"{session.redirect_uri}?error=access_denied&state={session.id}")
        await _finished(session)
    assert (session.status, session.error) == ("failed", "the provider refused the login: access_denied")
    assert list(auth_dir.iterdir()) == []


async def test_an_unfinished_login_times_out_and_closes_its_listener(fake: SubscriptionFake, auth_dir: Path) -> None:
    manager = _manager(fake, auth_dir, timeout=0.2)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "claude")
        await _finished(session)
    assert session.status == "failed" and "not finished within 0.2 s" in session.error
    async with httpx2.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(session.redirect_uri)


async def test_cancel_ends_a_pending_login(fake: SubscriptionFake, auth_dir: Path) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "gemini-cli")
        assert manager.cancel(session.id)
        await _finished(session)
    assert manager.status(session.id) is session and session.status == "cancelled"
    assert not manager.cancel(session.id), "a finished login cannot be cancelled again"


async def test_no_browser_login_with_a_pasted_url(fake: SubscriptionFake, auth_dir: Path) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, "codex")
        async with httpx2.AsyncClient(follow_redirects=False, trust_env=False) as client:
            landed = (await client.get(session.url)).headers["location"]  # the page the browser could not load
        with pytest.raises(LoginError, match="state does not match"):
            manager.submit_callback(session.id, landed.replace(session.id, "other"))
        manager.submit_callback(session.id, landed)
        await _finished(session)
    assert session.status == "completed"
    assert session.view()["files"] == [Path(session.files[0]).name]
    assert "verifier" not in str(session.view())


@pytest.mark.parametrize("provider", DEVICE_TYPES)
async def test_device_flow_waits_slows_down_and_saves(fake: SubscriptionFake, auth_dir: Path, provider: str) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        session = await manager.start(nursery, provider)
        assert (session.user_code, session.url) == ("ABCD-1234", "https://example.invalid/device")
        first_interval = session.interval
        await _finished(session)
    assert session.status == "completed", session.error
    assert session.polls == ["authorization_pending", "slow_down", "granted"]
    assert session.interval == pytest.approx(first_interval + 0.01), "slow_down lengthened the polling interval"
    token = read_token_file(session.files[0])
    assert token.provider == provider
    if provider == "github-copilot":
        assert token.email == GITHUB_LOGIN and token.access_token in fake.github_tokens
    else:
        assert token.resource_url == f"{fake.url}/qwen"
        polls = [r for r in fake.oauth.token_requests if r.get("device_code")]
        assert all(r.get("code_verifier") for r in polls), "Qwen's device flow carries a PKCE verifier"


async def test_unknown_account_type_is_refused(fake: SubscriptionFake, auth_dir: Path) -> None:
    manager = _manager(fake, auth_dir)
    async with trio.open_nursery() as nursery:
        with pytest.raises(LoginError, match="unknown account type"):
            await manager.start(nursery, "antigravity")

"""Subscription accounts through the real gateway with the official SDKs: every client format against every account
type, token refresh (before expiry, after a 401, single-flight, revoked), Codex's usage limit, the Copilot token
exchange, the Gemini CLI envelope, and the auth directory watched while the gateway runs."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from muxtrio.engine.engine import Engine
from muxtrio.engine.pool import ALL_MODELS, CredentialState
from tests.accounts.conftest import (
    ACCOUNT_TYPES,
    PER_ACCOUNT,
    WIRE,
    AccountStack,
    file_mode,
    write_account,
)
from tests.accounts.fakes import ACCOUNT_ID, CLAUDE_IDENTITY, PROJECT
from tests.e2e import clients
from tests.e2e.clients import PER_CLIENT, TOOL_RESULT, error_status
from tests.e2e.conftest import CLIENT_KEY, STREAM_OR_NOT, run_sync
from tests.e2e.fakes import COUNT_TOKENS, script_text

PATHS = {"claude": "/claude/v1/messages", "codex": "/codex/responses", "gemini-cli": "/v1internal:",
         "github-copilot": "/copilot-api/", "qwen": "/qwen/"}  # fmt: skip


def _engine(stack: AccountStack) -> Engine:
    assert stack.app.engine is not None
    return stack.app.engine


def _credentials(stack: AccountStack, account: str) -> list[CredentialState]:
    return [c for c in _engine(stack).pools[account].credentials if not c.retired]


async def _ask(stack: AccountStack, client: str, model: str, *, stream: bool = False) -> clients.Answer:
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    try:
        return await run_sync(sdk.ask, model, sdk.start(), stream=stream)
    finally:
        sdk.close()


async def _ask_error(stack: AccountStack, model: str) -> tuple[int, str | None, str]:
    sdk = clients.make("openai-chat", stack.url, CLIENT_KEY)
    try:
        await run_sync(sdk.ask, model, sdk.start())
    except Exception as exc:  # the SDK's own error class is checked by error_status
        status, retry_after = error_status(exc)
        return status, retry_after, str(exc)
    finally:
        sdk.close()
    raise AssertionError("the request succeeded")


async def _until(condition: Any, what: str) -> None:
    """Wait for the gateway's directory watcher (bounded: a hang guard, never a pass condition)."""
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.02)


# ------------------------------------------------------------------------------------------- the client matrix
@PER_ACCOUNT
@PER_CLIENT
@STREAM_OR_NOT
async def test_every_client_format_against_every_account(
    gateway: AccountStack, client: str, account: str, stream: bool
) -> None:
    answer = await _ask(gateway, client, gateway.model(account, "text"), stream=stream)
    assert answer.text == script_text("text", WIRE[account])
    [seen] = gateway.requests(PATHS[account])
    assert seen.key in gateway.fake.valid, "the backend must have received the account's access token"
    assert seen.model == "text"
    if account == "codex":
        assert seen.stream, "the Codex backend only streams: a whole answer is collected by the gateway"
    if account == "claude":
        system = seen.body["system"]
        assert (system if isinstance(system, str) else system[0]["text"]) == CLAUDE_IDENTITY
    if account == "gemini-cli":
        assert seen.stream is stream


@PER_ACCOUNT
@PER_CLIENT
async def test_tool_round_trip_through_every_account(gateway: AccountStack, client: str, account: str) -> None:
    sdk = clients.make(client, gateway.url, CLIENT_KEY)
    first, final = await run_sync(sdk.tool_round_trip, gateway.model(account, "tool"), stream=True)
    sdk.close()
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert final.text.startswith("The tool said: ") and TOOL_RESULT in final.text
    assert len(gateway.requests(PATHS[account])) == 2


async def test_an_account_token_echoed_by_the_provider_never_reaches_the_client(gateway: AccountStack) -> None:
    status, _, message = await _ask_error(gateway, "claude-leaktoken")
    assert status == 400 and "bad request for token" in message
    for token in gateway.fake.valid:
        assert token not in message


async def test_a_claude_rate_limit_cools_the_account_and_reaches_the_client(gateway: AccountStack) -> None:
    status, retry_after, _ = await _ask_error(gateway, "claude-ratelimit")
    assert status == 429 and retry_after is not None
    [cred] = _engine(gateway).pools["claude"].credentials
    assert cred.cooling_until("ratelimit", trio.current_time()) > 0


@PER_ACCOUNT
async def test_accounts_are_pooled_credentials_labelled_without_tokens(gateway: AccountStack, account: str) -> None:
    [cred] = _credentials(gateway, account)
    assert cred.key is None
    assert cred.name == f"{account}:" + ("octocat" if account == "github-copilot" else "user@example.com")
    stats = json.dumps(_engine(gateway).statistics(), default=str)
    for token in gateway.fake.valid | gateway.fake.github_tokens | set(gateway.fake.refresh_tokens):
        assert token not in stats


async def test_gemini_cli_envelope_and_count_tokens(gateway: AccountStack) -> None:
    from tests.e2e.clients import genai_client

    client = genai_client(gateway.url, CLIENT_KEY)
    counted = await run_sync(client.models.count_tokens, model="gemini-cli-text", contents="Say hello")
    assert counted.total_tokens == COUNT_TOKENS
    answer = await _ask(gateway, "gemini", "gemini-cli-text")
    assert answer.text == script_text("text", "gemini")
    count_seen, generate_seen = gateway.requests("/v1internal:")
    assert count_seen.path == "/v1internal:countTokens"
    assert generate_seen.path == "/v1internal:generateContent"
    raw = json.loads(generate_seen.raw)
    assert (raw["model"], raw["project"]) == ("text", PROJECT)
    assert raw["request"]["contents"][0]["parts"][0]["text"] == "Say hello"


async def test_codex_request_follows_the_backend_rules(gateway: AccountStack) -> None:
    sdk = clients.openai_client(gateway.url, CLIENT_KEY)
    reply = await run_sync(
        sdk.chat.completions.create, model="codex-text", messages=[{"role": "system", "content": "Be brief"},
                                                                   {"role": "user", "content": "Say hello"}],
        max_tokens=50, temperature=0.3,
    )  # fmt: skip
    assert reply.choices[0].message.content == script_text("text", "responses")
    [seen] = gateway.requests("/codex/responses")
    body = json.loads(seen.raw)
    assert (body["stream"], body["store"], body["instructions"]) == (True, False, "Be brief")
    assert "max_output_tokens" not in body and "temperature" not in body
    assert seen.headers["chatgpt-account-id"] == ACCOUNT_ID


# ------------------------------------------------------------------------------------------------- refreshing
@pytest.mark.empty_auth_dir
@pytest.mark.parametrize("account", ["claude", "codex", "gemini-cli", "qwen"])
async def test_token_expiring_within_the_lead_is_refreshed_and_saved(gateway: AccountStack, account: str) -> None:
    path, old, _ = write_account(gateway.fake, gateway.auth_dir, account, expires_in=5.0)  # lead is 60 s
    await _until(lambda: _credentials(gateway, account), "the account is loaded")
    answer = await _ask(gateway, "anthropic", gateway.model(account, "text"))
    assert answer.text == script_text("text", WIRE[account])
    assert gateway.fake.oauth.refreshes == 1
    [seen] = gateway.requests(PATHS[account])
    assert seen.key != old and seen.key in gateway.fake.valid
    saved = json.loads(path.read_text())
    token = saved["token"] if account == "gemini-cli" else saved
    assert token["access_token"] == seen.key
    assert file_mode(path) == 0o600
    assert saved["type"] == {"gemini-cli": "gemini"}.get(account, account), "the file keeps llm-mux's type"


@pytest.mark.empty_auth_dir
async def test_concurrent_requests_share_one_refresh(gateway: AccountStack) -> None:
    write_account(gateway.fake, gateway.auth_dir, "codex", expires_in=5.0)
    await _until(lambda: _credentials(gateway, "codex"), "the account is loaded")
    answers: list[str] = []

    async def one() -> None:
        answers.append((await _ask(gateway, "openai-chat", "codex-text")).text)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
    assert answers == [script_text("text", "responses")] * 5
    assert gateway.fake.oauth.refreshes == 1, "the refresh token rotates: a second refresh would have failed"


@PER_ACCOUNT
async def test_a_401_refreshes_once_and_retries(gateway: AccountStack, account: str) -> None:
    model = gateway.model(account, "text")
    first = await _ask(gateway, "openai-chat", model)
    for token in list(gateway.fake.valid):
        gateway.fake.expire(token)  # the provider stops accepting every token it gave out
    second = await _ask(gateway, "openai-chat", model)
    assert first.text == second.text == script_text("text", WIRE[account])
    seen = gateway.requests(PATHS[account])
    assert [s.status for s in seen] == [200, 401, 200]
    assert seen[1].key != seen[2].key
    if account == "github-copilot":
        assert gateway.fake.oauth.exchanges == 2
    else:
        assert gateway.fake.oauth.refreshes == 1


async def test_a_stream_outlives_its_token_and_the_next_request_refreshes(gateway: AccountStack) -> None:
    """The token expires while a stream is open: the stream finishes (the upstream already accepted it), and the
    next request gets a 401, refreshes and succeeds."""
    sdk = clients.make("anthropic", gateway.url, CLIENT_KEY)
    async with trio.open_nursery() as nursery:
        result: list[clients.Answer] = []

        async def stream() -> None:
            result.append(await run_sync(sdk.ask, "claude-hold", sdk.start(), stream=True))

        nursery.start_soon(stream)
        await _until(lambda: "provider:anthropic:held" in gateway.fake.events, "the stream is open")
        for token in list(gateway.fake.valid):
            gateway.fake.expire(token)
        gateway.fake.release.set()
    sdk.close()
    assert result[0].text == script_text("hold", "anthropic")
    after = await _ask(gateway, "anthropic", "claude-text")
    assert after.text == script_text("text", "anthropic")
    assert gateway.fake.oauth.refreshes == 1


@pytest.mark.empty_auth_dir
async def test_revoked_refresh_token_disables_the_account_with_a_clear_message(gateway: AccountStack) -> None:
    _, _, refresh = write_account(gateway.fake, gateway.auth_dir, "codex", expires_in=-10.0)
    gateway.fake.revoked.add(refresh)
    await _until(lambda: _credentials(gateway, "codex"), "the account is loaded")
    status, _, message = await _ask_error(gateway, "codex-text")
    assert status == 502, message
    assert "muxtrio login codex" in message
    assert gateway.requests("/codex/") == [], "an expired token is never sent"
    [state] = _engine(gateway).statistics()["accounts"]  # type: ignore[misc]
    assert state["state"] == "revoked"
    assert "invalid_grant" in state["reason"]
    [cred] = _credentials(gateway, "codex")
    assert cred.refused_until, "the account is out (refused) without asking the provider again"
    # A new login (the file rewritten) brings the account back without a restart.
    write_account(gateway.fake, gateway.auth_dir, "codex", name="codex-user@example.com")
    await _until(lambda: not cred.refused_until, "the account is back")
    answer = await _ask(gateway, "openai-chat", "codex-text")
    assert answer.text == script_text("text", "responses")


# ------------------------------------------------------------------------------------------------ provider limits
async def test_codex_usage_limit_cools_the_account_until_its_reset(gateway: AccountStack) -> None:
    status, retry_after, message = await _ask_error(gateway, "codex-usagelimit")
    assert status == 429
    assert retry_after is not None and 3500 < float(retry_after) <= 3600
    assert "usage limit" in message
    [cred] = _engine(gateway).pools["codex"].credentials
    assert cred.cooldown_until[ALL_MODELS] - trio.current_time() > 3500
    # Every model of the account is cooled: another model is refused without a request to the backend.
    status, _, _ = await _ask_error(gateway, "codex-text")
    assert status == 429
    assert [s.model for s in gateway.requests("/codex/")] == ["usagelimit"]


async def test_copilot_api_token_is_cached_until_it_is_due(gateway: AccountStack) -> None:
    for _ in range(3):
        await _ask(gateway, "openai-chat", "github-copilot-text")
    assert gateway.fake.oauth.exchanges == 1
    [cred] = _engine(gateway).pools["github-copilot"].credentials
    file = cred.account.file  # type: ignore[union-attr]
    first = file.copilot
    file.copilot = dataclasses.replace(first, expires_at=time.time() + 1)  # within the refresh lead: due
    await _ask(gateway, "openai-chat", "github-copilot-text")
    await _ask(gateway, "openai-chat", "github-copilot-text")
    assert gateway.fake.oauth.exchanges == 2, "one new exchange when due, then the new token is cached"
    assert file.copilot.token != first.token
    seen = gateway.requests("/copilot-api/")
    assert seen[-1].headers["editor-version"].startswith("vscode/")
    assert seen[-1].key.startswith("tid=")


# --------------------------------------------------------------------------------------------- the auth directory
@pytest.mark.empty_auth_dir
async def test_auth_dir_is_watched_add_change_remove(gateway: AccountStack) -> None:
    status, _, message = await _ask_error(gateway, "claude-text")
    assert status == 503 and "muxtrio login claude" in message
    path, _, _ = write_account(gateway.fake, gateway.auth_dir, "claude")
    await _until(lambda: _credentials(gateway, "claude"), "the new file is loaded")
    assert (await _ask(gateway, "anthropic", "claude-text")).text == script_text("text", "anthropic")
    second, _, _ = write_account(gateway.fake, gateway.auth_dir, "claude", email="second@example.com")
    await _until(lambda: len(_credentials(gateway, "claude")) == 2, "the second account is loaded")
    path.unlink()
    second.unlink()
    await _until(lambda: not _credentials(gateway, "claude"), "the removed files are gone")
    status, _, _ = await _ask_error(gateway, "claude-text")
    assert status == 503


@pytest.mark.empty_auth_dir
async def test_llm_mux_written_auth_dir_serves_as_is(gateway: AccountStack, tmp_path: Path) -> None:
    """A directory with llm-mux's file names, a multi-project Gemini file and types muxtrio does not serve."""
    write_account(gateway.fake, gateway.auth_dir, "claude", name="claude-user@example.com")
    path, _, _ = write_account(gateway.fake, gateway.auth_dir, "gemini-cli", name="gemini-user@example.com-all")
    data = json.loads(path.read_text())
    data["project_id"] = f"{PROJECT},other-project"
    path.write_text(json.dumps(data))
    (gateway.auth_dir / "antigravity-user@example.com.json").write_text(json.dumps({"type": "antigravity"}))
    (gateway.auth_dir / "notes.txt").write_text("not an account")
    await _until(lambda: len(_credentials(gateway, "gemini-cli")) == 2, "both projects are accounts")
    labels = sorted(c.name for c in _credentials(gateway, "gemini-cli"))
    assert labels == [f"gemini-cli:user@example.com/{p}" for p in sorted((PROJECT, "other-project"))]
    assert (await _ask(gateway, "anthropic", "claude-text")).text == script_text("text", "anthropic")
    assert set(ACCOUNT_TYPES) >= {"claude", "gemini-cli"}

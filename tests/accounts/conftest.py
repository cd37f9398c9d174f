"""The subscription-account stack: :class:`SubscriptionFake` (every subscription backend and OAuth server on one
loopback port), an auth directory of token files in llm-mux's layout, and the REAL gateway (``MuxApp`` under
Hypercorn's trio worker) whose account store reads that directory and whose OAuth endpoints point at the fake.

Each account type is a provider named after it that serves the e2e fakes' behaviours as ``<type>-<behaviour>``
(the backend receives the bare behaviour name), like tests/e2e. ``api_keys=("test-key",)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.trio import serve

from muxtrio.accounts.files import format_time
from muxtrio.config import AccountsConfig, Config, ModelConfig, ProviderConfig, ProviderType
from muxtrio.server.app import MuxApp
from muxtrio.server.runner import hypercorn_config
from tests.accounts.fakes import ACCOUNT_ID, GITHUB_LOGIN, PROJECT, SUB_BEHAVIOURS, SubscriptionFake, codex_id_token
from tests.e2e.conftest import CLIENT_KEY, _wait_healthy

ACCOUNT_TYPES = ("claude", "codex", "gemini-cli", "github-copilot", "qwen")
PER_ACCOUNT = pytest.mark.parametrize("account", ACCOUNT_TYPES, ids=[f"{a}-account" for a in ACCOUNT_TYPES])
# What each account's backend speaks, in the e2e fakes' vocabulary (for scripted answers and request checks).
WIRE = {"claude": "anthropic", "codex": "responses", "gemini-cli": "gemini", "github-copilot": "openai",
        "qwen": "openai"}  # fmt: skip


def endpoints(url: str) -> dict[str, dict[str, str]]:
    oauth = {"token-url": f"{url}/oauth/token", "authorize-url": f"{url}/oauth/authorize"}
    return {
        "claude": {**oauth, "redirect-uri": "http://127.0.0.1:0/callback"},
        "codex": {**oauth, "redirect-uri": "http://127.0.0.1:0/auth/callback"},
        "gemini-cli": {**oauth, "redirect-uri": "http://127.0.0.1:0/oauth2callback",
                       "code-assist-url": f"{url}/v1internal", "user-url": f"{url}/oauth/userinfo"},
        "github-copilot": {**oauth, "device-code-url": f"{url}/oauth/device/code",
                           "token-exchange-url": f"{url}/copilot/token", "user-url": f"{url}/user"},
        "qwen": {**oauth, "device-code-url": f"{url}/oauth/device/code"},
    }  # fmt: skip


def base_urls(url: str) -> dict[str, str]:
    return {"claude": f"{url}/claude", "codex": f"{url}/codex", "gemini-cli": url,
            "github-copilot": f"{url}/copilot-api", "qwen": f"{url}/qwen/v1"}  # fmt: skip


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def write_account(fake: SubscriptionFake, auth_dir: Path, account: str, *, email: str = "user@example.com",
                  expires_in: float = 3600.0, name: str = "") -> tuple[Path, str, str]:  # fmt: skip
    """A token file as llm-mux writes it for ``account``; returns (path, access token, refresh token)."""
    import time

    access, refresh = fake.issue(email)
    expired = format_time(time.time() + expires_in)
    stem = name or f"{account}-{email}"
    if account == "claude":
        data: dict[str, Any] = {"id_token": "", "access_token": access, "refresh_token": refresh,
                                "last_refresh": format_time(time.time()), "email": email, "type": "claude",
                                "expired": expired}  # fmt: skip
    elif account == "codex":
        data = {"id_token": codex_id_token(email), "access_token": access, "refresh_token": refresh,
                "account_id": ACCOUNT_ID, "last_refresh": format_time(time.time()), "email": email, "type": "codex",
                "expired": expired}  # fmt: skip
    elif account == "gemini-cli":
        data = {"token": {"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                          "expiry": expired}, "project_id": PROJECT, "email": email, "auto": True, "checked": True,
                "type": "gemini"}  # fmt: skip
    elif account == "github-copilot":
        github = f"gho_{stem}"
        fake.github_tokens.add(github)
        data = {"access_token": github, "token_type": "bearer", "scope": "read:user", "username": GITHUB_LOGIN,
                "type": "github-copilot"}  # fmt: skip
        access = github
    else:
        data = {"access_token": access, "refresh_token": refresh, "last_refresh": format_time(time.time()),
                "resource_url": f"{fake.url}/qwen", "email": email, "type": "qwen", "expired": expired}  # fmt: skip
    return write_json(auth_dir / f"{stem}.json", data), access, refresh


def account_config(fake: SubscriptionFake, auth_dir: Path, **overrides: Any) -> Config:
    urls = base_urls(fake.url)
    providers = tuple(
        ProviderConfig(
            type=ProviderType(account),
            name=account,
            base_url=urls[account],
            models=tuple(ModelConfig(name=b, alias=f"{account}-{b}") for b in SUB_BEHAVIOURS),
        )
        for account in ACCOUNT_TYPES
    )
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "api_keys": (CLIENT_KEY,),
        "providers": providers,
        "auth_dir": str(auth_dir),
        "accounts": AccountsConfig(refresh_lead=60.0, watch_interval=0.05, endpoints=endpoints(fake.url)),
        "shutdown_grace": 2.0,
        "echo_model": False,
    }
    settings.update(overrides)
    return Config(**settings)


@dataclass
class AccountStack:
    url: str
    fake: SubscriptionFake
    auth_dir: Path
    app: MuxApp

    @staticmethod
    def model(account: str, behaviour: str) -> str:
        return f"{account}-{behaviour}"

    def requests(self, path_prefix: str) -> list[Any]:
        return [s for s in self.fake.seen if s.path.startswith(path_prefix)]


@pytest.fixture
def auth_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "auth"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
async def fake() -> AsyncIterator[SubscriptionFake]:
    async with trio.open_nursery() as nursery:
        server = SubscriptionFake()
        await nursery.start(server.serve)
        yield server
        nursery.cancel_scope.cancel()


@pytest.fixture
async def gateway(
    request: pytest.FixtureRequest, fake: SubscriptionFake, auth_dir: Path
) -> AsyncIterator[AccountStack]:
    """The gateway over ``auth_dir``; token files for every account type are written first unless the test is
    marked ``@pytest.mark.empty_auth_dir``."""
    if request.node.get_closest_marker("empty_auth_dir") is None:
        for account in ACCOUNT_TYPES:
            write_account(fake, auth_dir, account)
    config = account_config(fake, auth_dir)
    hc = hypercorn_config(config)
    hc.bind = ["127.0.0.1:0"]
    hc.graceful_timeout = 2.0
    app = MuxApp(config)
    async with trio.open_nursery() as nursery:
        stopped = trio.Event()
        shutdown = trio.Event()

        async def run(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(app, hc, shutdown_trigger=shutdown.wait, task_status=task_status)
            finally:
                stopped.set()

        binds = await nursery.start(run)
        await _wait_healthy(binds[0])
        yield AccountStack(binds[0], fake, auth_dir, app)
        shutdown.set()
        with trio.move_on_after(10):
            await stopped.wait()
        nursery.cancel_scope.cancel()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "empty_auth_dir: start the account gateway with no token files")


def file_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777

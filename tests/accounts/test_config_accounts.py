"""Account settings in the config: where auth-dir comes from (llm-mux's $VARS, ~, relative paths, MUXTRIO_AUTH_DIR,
the default directory when it exists), the implicit providers and oauth-excluded-models in routing, endpoint
overrides and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from muxtrio.accounts.oauth import DEFAULT_ENDPOINTS, endpoints_for
from muxtrio.config import ConfigError, ProviderType, parse_config
from muxtrio.engine.routing import Router


def test_auth_dir_resolution(tmp_path: Path) -> None:
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg", "MY_DIR": "/data"}
    source = str(tmp_path / "muxtrio.yaml")
    assert parse_config({"auth-dir": "$XDG_CONFIG_HOME/llm-mux/auth"}, env=env).auth_dir == "/xdg/llm-mux/auth"
    assert parse_config({"auth-dir": "${MY_DIR}/auth"}, env=env).auth_dir == "/data/auth"
    assert parse_config({"auth-dir": "~/.cli-proxy-api"}, env=env).auth_dir == "/home/u/.cli-proxy-api"
    assert parse_config({"auth-dir": "auth"}, env=env, source=source).auth_dir == str(tmp_path / "auth")
    assert parse_config({"auth-dir": "/a"}, env={**env, "MUXTRIO_AUTH_DIR": "/b"}).auth_dir == "/b"
    assert parse_config({}, env={"HOME": str(tmp_path)}).auth_dir is None, "no default directory: no accounts"
    (tmp_path / ".config" / "muxtrio" / "auth").mkdir(parents=True)
    found = parse_config({}, env={"HOME": str(tmp_path)})
    assert found.auth_dir == os.path.join(tmp_path, ".config", "muxtrio", "auth")
    assert {p.name for p in found.providers} >= {"claude", "codex", "gemini-cli", "github-copilot", "qwen"}


def test_implicit_providers_and_oauth_excluded_models_in_routing() -> None:
    config = parse_config(
        {"auth-dir": "/auth", "oauth-excluded-models": {"claude": ["*opus*"]},
         "providers": [{"type": "codex", "models": ["gpt-5-codex"]}]},
        env={},
    )  # fmt: skip
    types = [p.type for p in config.providers if p.type in (ProviderType.CLAUDE, ProviderType.CODEX)]
    assert types.count(ProviderType.CODEX) == 1, "an explicit provider of a type replaces the implicit one"
    router = Router(config)
    # Copilot serves Claude and Gemini models too: both account types pool for those names.
    assert [d.provider.name for d in router.resolve("claude-sonnet-4-5")] == ["claude", "github-copilot"]
    assert [d.provider.name for d in router.resolve("claude-opus-4-1")] == ["github-copilot"], "excluded for claude"
    assert [d.provider.name for d in router.resolve("gemini-2.5-pro")] == ["gemini-cli", "github-copilot"]


def test_endpoint_overrides_and_their_errors() -> None:
    endpoints = {"codex": {"token-url": "http://t/x", "colour": "red"}}
    accounts = {"refresh-lead": "2m", "watch-interval": "500ms", "endpoints": endpoints}
    config = parse_config({"auth-dir": "/a", "accounts": accounts}, env={})
    assert (config.accounts.refresh_lead, config.accounts.watch_interval) == (120.0, 0.5)
    assert config.warnings == ("accounts.endpoints.codex.colour: unknown key; ignored",)
    ends = endpoints_for("codex", config.accounts.endpoints)
    assert ends.token_url == "http://t/x" and ends.client_id == DEFAULT_ENDPOINTS["codex"].client_id
    with pytest.raises(ConfigError, match=r"accounts\.endpoints\.kiro: expected one of claude, codex"):
        parse_config({"accounts": {"endpoints": {"kiro": {}}}}, env={})
    with pytest.raises(ConfigError, match=r"oauth-excluded-models\.claude"):
        parse_config({"oauth-excluded-models": {"claude": [""]}}, env={})

"""A CLIProxyAPI / older llm-mux config with the legacy credential lists routes real traffic.

The config is YAML text (parsed by ``parse_config``, as a file would be) whose ``claude-api-key``, ``gemini-api-key``,
``openai-compatibility``, ``codex-api-key`` and ``vertex-api-key`` entries point at the fake providers; the official
OpenAI SDK asks the real gateway for each entry's model, and the fakes record which key, path and headers arrived.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import pytest
import trio
import yaml

from muxtrio.config import Config, parse_config
from tests.e2e.clients import openai_async_client
from tests.e2e.fakes import FakeProvider, script_text
from tests.server.harness import serving

CLIENT_KEY = "legacy-client-key"
KEYS = {
    "anthropic": {"sk-ant-legacy-first", "sk-ant-legacy-second"},
    "gemini": {"AIzaLegacyGemini01", "vk-legacy-vertex-01"},
    "openai": {"sk-compat-legacy-01", "sk-codex-legacy-01"},
}


def legacy_yaml(urls: dict[str, str]) -> str:
    return textwrap.dedent(
        f"""
        api-keys: [{CLIENT_KEY}]
        claude-api-key:
          - api-key: sk-ant-legacy-first
            base-url: {urls["anthropic"]}
            headers: {{X-Legacy-Entry: claude}}
            models: [{{name: ratelimit, alias: legacy-claude}}]
          - api-key: sk-ant-legacy-second
            base-url: {urls["anthropic"]}
            headers: {{X-Legacy-Entry: claude}}
            models: [{{name: ratelimit, alias: legacy-claude}}]
          - api-key: sk-ant-legacy-second
            base-url: {urls["anthropic"]}
            models: [{{name: text, alias: legacy-claude-text}}]
        gemini-api-key:
          - api-key: AIzaLegacyGemini01
            base-url: {urls["gemini"]}
            excluded-models: ["*-preview"]
        openai-compatibility:
          - name: local-compat
            base-url: {urls["openai"]}/v1
            headers: {{X-Title: legacy}}
            api-key-entries:
              - api-key: sk-compat-legacy-01
            models: [{{name: text, alias: legacy-compat}}]
        codex-api-key:
          - api-key: sk-codex-legacy-01
            base-url: {urls["openai"]}/v1
            models: [{{name: text, alias: legacy-codex}}]
        vertex-api-key:
          - api-key: vk-legacy-vertex-01
            base-url: {urls["gemini"]}
            models: [{{name: text, alias: legacy-vertex}}]
        """
    )


@asynccontextmanager
async def legacy_gateway() -> AsyncIterator[tuple[str, dict[str, FakeProvider], Config]]:
    async with trio.open_nursery() as nursery:
        fakes = {kind: FakeProvider(kind, keys) for kind, keys in KEYS.items()}
        for fake in fakes.values():
            await nursery.start(fake.serve)
        config = parse_config(yaml.safe_load(legacy_yaml({k: f.url for k, f in fakes.items()})), env={})
        async with serving(config) as url:
            yield url, fakes, config
        nursery.cancel_scope.cancel()


async def ask(url: str, model: str) -> str:
    client = openai_async_client(url, CLIENT_KEY)
    answer = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


async def test_every_legacy_list_is_read_into_a_provider_that_serves_requests() -> None:
    async with legacy_gateway() as (url, fakes, config):
        assert [line.split(" -> ")[0] for line in config.legacy_mappings] == [
            "claude-api-key[0], claude-api-key[1]",
            "claude-api-key[2]",
            "gemini-api-key[0]",
            "openai-compatibility[0]",
            "codex-api-key[0]",
            "vertex-api-key[0]",
        ]
        assert await ask(url, "legacy-claude-text") == script_text("text", "anthropic")
        assert await ask(url, "legacy-compat") == script_text("text", "openai")
        assert await ask(url, "legacy-codex") == script_text("text", "responses")
        assert await ask(url, "legacy-vertex") == script_text("text", "gemini")
        # gemini-api-key has no model list: gemini-* names go upstream (the fake knows none: its 404), except the
        # excluded ones, which the gateway itself refuses.
        with pytest.raises(openai.NotFoundError, match=r"gemini-2\.5-flash is not found"):
            await ask(url, "gemini-2.5-flash")
        with pytest.raises(openai.NotFoundError, match="not served by this gateway"):
            await ask(url, "gemini-3-pro-preview")

    anthropic_seen = fakes["anthropic"].seen
    assert [(s.path, s.key) for s in anthropic_seen] == [("/v1/messages", "sk-ant-legacy-second")]
    openai_seen = [(s.path, s.key, s.headers.get("x-title")) for s in fakes["openai"].seen]
    assert openai_seen == [
        ("/v1/chat/completions", "sk-compat-legacy-01", "legacy"),
        ("/v1/responses", "sk-codex-legacy-01", None),
    ]
    gemini_seen = [(s.path, s.key) for s in fakes["gemini"].seen]
    assert gemini_seen == [
        ("/v1/publishers/google/models/text:generateContent", "vk-legacy-vertex-01"),  # Vertex express-mode path
        ("/v1beta/models/gemini-2.5-flash:generateContent", "AIzaLegacyGemini01"),
    ]


async def test_keys_of_one_legacy_group_are_one_pool_with_the_entry_headers() -> None:
    async with legacy_gateway() as (url, fakes, _config):
        client = openai_async_client(url, CLIENT_KEY)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="legacy-claude", messages=[{"role": "user", "content": "hi"}])
    seen = fakes["anthropic"].seen
    # Both keys of the group were tried (the first one's 429 moves on to the second), each with the entry's header.
    assert {s.key for s in seen} == {"sk-ant-legacy-first", "sk-ant-legacy-second"}
    assert {s.headers.get("x-legacy-entry") for s in seen} == {"claude"}

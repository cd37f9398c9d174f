"""The provider-type registry is the one table: every config type has an entry, and config, router and engine read
their facts from it."""

from __future__ import annotations

from muxtrio.codecs.base import Target
from muxtrio.codecs.registry import provider_codec
from muxtrio.config import DEFAULT_BASE_URLS, ProviderConfig, ProviderType
from muxtrio.ir.request import Message, Request, Role, Text
from muxtrio.provider_types import ACCOUNT_TYPES, PROVIDER_TYPES, default_patterns, info
from muxtrio.upstream.providers import kind_of


def test_every_config_type_has_exactly_one_entry() -> None:
    assert set(PROVIDER_TYPES) == {t.value for t in ProviderType}


def test_config_defaults_come_from_the_registry() -> None:
    for provider_type in ProviderType:
        entry = info(provider_type)
        assert DEFAULT_BASE_URLS.get(provider_type, "") == entry.default_base_url
        if entry.default_base_url:
            assert ProviderConfig(type=provider_type).base_url == entry.default_base_url


def test_router_and_engine_read_the_same_entry() -> None:
    for name, entry in PROVIDER_TYPES.items():
        kind = kind_of(name)
        assert (kind.format, kind.prefill, kind.account) == (entry.format, entry.prefill, entry.account)
        assert provider_codec(name, entry.format).format is entry.format


def test_auth_and_count_tokens_say_what_each_codec_does() -> None:
    request = Request(model="m", messages=(Message(Role.USER, (Text("hi"),)),))
    header = {"bearer": ("authorization", "Bearer KEY"), "x-api-key": ("x-api-key", "KEY"),
              "x-goog-api-key": ("x-goog-api-key", "KEY")}  # fmt: skip
    for name, entry in PROVIDER_TYPES.items():
        codec = provider_codec(name, entry.format)
        target = Target("m", "KEY", stream=False)
        if entry.auth != "none":
            assert header[entry.auth] in codec.emit_request(request, target).headers, name
        assert (codec.emit_count_request(request, target) is not None) is entry.count_tokens, name


def test_only_the_builtin_type_needs_no_base_url() -> None:
    assert [name for name, entry in PROVIDER_TYPES.items() if entry.builtin] == ["echo"]
    assert ProviderConfig(type=ProviderType.ECHO).base_url == ""


def test_account_types_are_the_five_subscriptions() -> None:
    assert ACCOUNT_TYPES == ("claude", "codex", "gemini-cli", "github-copilot", "qwen")
    assert all(ProviderConfig(type=t).requires_key for t in ACCOUNT_TYPES)


def test_openai_on_a_custom_url_serves_any_model_and_needs_no_key() -> None:
    assert default_patterns("openai", "http://127.0.0.1:8000/v1") == ("*",)
    assert not ProviderConfig(type=ProviderType.OPENAI, base_url="http://127.0.0.1:8000/v1").requires_key
    assert ProviderConfig(type=ProviderType.OPENAI).requires_key

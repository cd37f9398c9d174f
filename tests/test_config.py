"""muxtrio.config: defaults, llm-mux compatibility, path-exact errors, warnings, env overrides, lookup, masking."""

from __future__ import annotations

import os
import pickle
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import yaml

from muxtrio import cli
from muxtrio.cli import detect_local_ollama
from muxtrio.config import (
    DEFAULT_BASE_URLS,
    ECHO_MODEL,
    Config,
    Credential,
    ModelConfig,
    ModelRuleConfig,
    PartialTimeouts,
    PayloadMatch,
    ProviderConfig,
    ProviderType,
    RoutingStrategy,
    Timeouts,
    TLSConfig,
    default_config,
    load_config,
    parse_config,
    redact_url,
)
from muxtrio.config import reader as config_reader
from muxtrio.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "muxtrio.example.yaml"
ECHO = ProviderConfig(type=ProviderType.ECHO, name="echo", models=(ModelConfig(ECHO_MODEL),))


def write(tmp_path: Path, text: str, name: str = "muxtrio.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def parse_yaml(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(yaml.safe_load(textwrap.dedent(text)) or {}, env={} if env is None else env)


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, env)
    return str(info.value)


# ----------------------------------------------------------------------------------------------------------- defaults
def test_defaults() -> None:
    config = Config()
    assert (config.host, config.port, config.api_keys, config.disable_auth, config.debug) == (
        "127.0.0.1",
        8317,
        (),
        False,
        False,
    )
    assert (config.request_retry, config.max_retry_interval, config.proxy_url) == (3, 30.0, None)
    assert config.tls == TLSConfig(enable=False, cert=None, key=None)
    assert config.providers == (ECHO,)
    assert config.fallbacks == {}
    assert config.aliases == {}
    assert config.routing_strategy is RoutingStrategy.LEAST_BUSY
    assert config.timeouts == Timeouts(connect=10.0, first_byte=600.0, idle=300.0, total=None)
    assert config.stream_buffer_bytes == 262144
    assert config.keepalive_interval == 15.0
    assert config.shutdown_grace == 30.0
    assert config.max_request_bytes == 64 * 1024 * 1024
    assert config.max_event_bytes == 20 * 1024 * 1024
    assert (config.breaker_failures, config.breaker_open_seconds) == (5, 30.0)
    assert (config.workers, config.echo_model, config.source, config.warnings) == (1, True, None, ())


def test_empty_mapping_parses_to_the_defaults() -> None:
    config = parse_config({}, env={})
    assert config == Config()
    assert config.warnings == ()


def test_programmatic_construction_fills_every_other_field() -> None:
    provider = ProviderConfig(
        type=ProviderType.OPENAI, name="x", base_url="http://127.0.0.1:9999/v1", credentials=(Credential("k"),)
    )
    config = Config(providers=(provider,))
    assert config.providers == (provider, ECHO)
    assert provider.headers == {}
    assert (provider.proxy_url, provider.models, provider.excluded_models) == (None, (), ())
    assert (provider.http2, provider.max_connections, provider.max_keepalive) == (False, 1000, 32)
    assert (provider.timeouts, provider.enabled) == (None, True)


@pytest.mark.parametrize(
    ("provider_type", "base_url"),
    [
        (ProviderType.OPENAI, "https://api.openai.com/v1"),
        (ProviderType.OPENAI_RESPONSES, "https://api.openai.com/v1"),
        (ProviderType.ANTHROPIC, "https://api.anthropic.com"),
        (ProviderType.GEMINI, "https://generativelanguage.googleapis.com"),
        (ProviderType.OLLAMA, "http://127.0.0.1:11434"),
        (ProviderType.ECHO, ""),
    ],
)
def test_provider_defaults_per_type(provider_type: ProviderType, base_url: str) -> None:
    provider = ProviderConfig(type=provider_type)
    assert provider.name == provider_type.value
    assert provider.base_url == base_url
    assert DEFAULT_BASE_URLS.get(provider_type, "") == base_url


def test_provider_type_accepts_its_string_value_in_code() -> None:
    assert ProviderConfig(type="anthropic").type is ProviderType.ANTHROPIC


def test_invalid_values_in_code_raise_config_error_with_attribute_path() -> None:
    with pytest.raises(ConfigError, match=r"^base_url: required for type vertex-compat$"):
        ProviderConfig(type=ProviderType.VERTEX_COMPAT)
    with pytest.raises(ConfigError, match=r"^port: expected an integer between 0 and 65535, got 70000$"):
        Config(port=70000)
    with pytest.raises(ConfigError, match=r"^credentials\[0\]: expected a Credential, got 'sk-1'$"):
        ProviderConfig(type=ProviderType.OPENAI, credentials=("sk-1",))  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"^providers\[1\]\.name: duplicate provider name 'a' \(also providers\[0\]\)$"
    ):
        Config(providers=(ProviderConfig(type=ProviderType.OLLAMA, name="a"), ProviderConfig(type="openai", name="a")))


def test_config_is_hashable_picklable_and_read_only() -> None:
    config = parse_yaml(
        """
        providers:
          - {type: openai, api-key: sk-123456789, headers: {X-A: b}}
        routing: {aliases: {a: b}, fallbacks: {x: [y]}}
        """
    )
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config
    assert hash(clone) == hash(config)
    assert clone.fallbacks == {"x": ("y",)}
    with pytest.raises(TypeError):
        config.aliases["c"] = "d"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------- llm-mux samples
LLM_MUX_DOCS_SAMPLE = """
port: 8317
auth-dir: "$XDG_CONFIG_HOME/llm-mux/auth"
disable-auth: true
debug: false
logging-to-file: false
proxy-url: ""
request-retry: 3
max-retry-interval: 30
disable-cooling: false
tls:
  enable: false
  cert: ""
  key: ""
providers:
  - type: gemini
    api-key: "your-gemini-key"
    proxy-url: ""
    excluded-models: []
  - type: anthropic
    api-key: "sk-ant-0123456789"
    base-url: ""
    proxy-url: ""
  - type: openai
    name: "openai"
    base-url: "https://api.openai.com/v1"
    api-key: "sk-0123456789"
    proxy-url: ""
    models:
      - name: "gpt-4o"
      - name: "gpt-4-turbo"
        alias: "gpt4"
  - type: openai
    name: "deepseek"
    base-url: "https://api.deepseek.com/v1"
    api-key: "sk-deepseek-0123"
    models:
      - name: "deepseek-chat"
        alias: "deepseek"
  - type: openai
    name: "groq"
    base-url: "https://api.groq.com/openai/v1"
    api-keys:
      - "gsk_0123456789"
      - key: "gsk_9876543210"
        proxy-url: "socks5://user:pass@proxy.example.com:1080"
    models:
      - name: "llama-3.3-70b-versatile"
  - type: vertex-compat
    name: "zenmux"
    base-url: "https://zenmux.ai/api"
    api-key: "your-key"
    models:
      - name: "gemini-2.5-pro"
        alias: "zenmux-gemini"
remote-management:
  allow-remote: false
ws-auth: false
usage-statistics-enabled: false
routing:
  provider-priority: {claude: 1}
  aliases:
    claude-sonnet-4.5: claude-sonnet-4-5
  fallbacks:
    claude-opus-4-5: [claude-sonnet-4-5, gpt-4o]
"""


def test_llm_mux_documented_config_parses() -> None:
    config = parse_yaml(LLM_MUX_DOCS_SAMPLE)
    assert config.port == 8317
    assert config.disable_auth is True
    assert config.proxy_url is None
    assert config.tls == TLSConfig()
    names = [(p.name, p.type.value, p.base_url) for p in config.providers]
    assert names == [
        ("gemini", "gemini", "https://generativelanguage.googleapis.com"),
        ("anthropic", "anthropic", "https://api.anthropic.com"),
        ("openai", "openai", "https://api.openai.com/v1"),
        ("deepseek", "openai", "https://api.deepseek.com/v1"),
        ("groq", "openai", "https://api.groq.com/openai/v1"),
        ("zenmux", "vertex-compat", "https://zenmux.ai/api"),
        ("echo", "echo", ""),
        # auth-dir is set: one provider per subscription account type, its credentials the token files there
        ("claude", "claude", "https://api.anthropic.com"),
        ("codex", "codex", "https://chatgpt.com/backend-api/codex"),
        ("gemini-cli", "gemini-cli", "https://cloudcode-pa.googleapis.com"),
        ("github-copilot", "github-copilot", "https://api.githubcopilot.com"),
        ("qwen", "qwen", "https://portal.qwen.ai/v1"),
    ]
    assert config.auth_dir == os.path.join(str(Path.home()), ".config", "llm-mux", "auth")
    groq = config.providers[4]
    assert groq.credentials == (
        Credential("gsk_0123456789"),
        Credential("gsk_9876543210", proxy_url="socks5://user:pass@proxy.example.com:1080"),
    )
    assert config.providers[2].models == (ModelConfig("gpt-4o"), ModelConfig("gpt-4-turbo", alias="gpt4"))
    assert config.aliases == {"claude-sonnet-4.5": "claude-sonnet-4-5"}
    assert config.fallbacks == {"claude-opus-4-5": ("claude-sonnet-4-5", "gpt-4o")}
    assert config.warnings == (
        "disable-cooling: llm-mux setting not used by muxtrio; ignored",
        "ws-auth: llm-mux setting not used by muxtrio; ignored",
        "usage-statistics-enabled: llm-mux setting not used by muxtrio; ignored",
        "routing.provider-priority: llm-mux setting not used by muxtrio; ignored",
    )


# What llm-mux's GenerateDefaultConfigYAML writes (yaml.Marshal of NewDefaultConfig: every field, Go zero values).
LLM_MUX_GENERATED_DEFAULT = """
proxy-url: ""
request-log: false
api-keys: []
show-provider-prefixes: false
port: 8317
tls:
  enable: false
  cert: ""
  key: ""
remote-management:
  allow-remote: false
auth-dir: $XDG_CONFIG_HOME/llm-mux/auth
debug: false
logging-to-file: false
usage-statistics-enabled: false
usage-persistence:
  enabled: false
  db-path: ""
  batch-size: 0
  flush-interval: 0
  retention-days: 0
disable-cooling: false
request-retry: 3
max-retry-interval: 30
quota-exceeded:
  switch-project: true
  switch-preview-model: true
ws-auth: false
disable-auth: true
ampcode:
  upstream-url: ""
  upstream-api-key: ""
  restrict-management-to-localhost: true
  model-mappings: []
payload:
  default: []
  override: []
use-canonical-translator: true
stream-timeout: 0
"""


def test_llm_mux_generated_default_config_parses_with_warnings_only() -> None:
    config = parse_yaml(LLM_MUX_GENERATED_DEFAULT, {"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"})
    assert config == Config(disable_auth=True, auth_dir="/xdg/llm-mux/auth")
    assert config.timeouts.first_byte == 600.0  # stream-timeout: 0 is llm-mux's "unset"
    ignored = [w.split(":")[0] for w in config.warnings]
    assert ignored == [
        "show-provider-prefixes",
        "usage-statistics-enabled",
        "usage-persistence",
        "disable-cooling",
        "quota-exceeded",
        "ws-auth",
        "ampcode",
        "use-canonical-translator",
    ]


def test_parse_config_is_exported_at_the_top_level() -> None:
    import muxtrio

    assert muxtrio.parse_config is parse_config and "parse_config" in muxtrio.__all__
    assert muxtrio.parse_config({"port": 9001}, env={}).port == 9001


LEGACY_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy-config" / "cliproxyapi.yaml"


def test_legacy_credential_lists_become_providers() -> None:
    config = load_config(LEGACY_FIXTURE, env={})
    assert config.legacy_mappings == (
        "claude-api-key[0], claude-api-key[1] -> provider 'anthropic' (type anthropic, 2 keys)",
        "claude-api-key[2] -> provider 'anthropic-2' (type anthropic, 1 key)",
        "gemini-api-key[0], gemini-api-key[1] -> provider 'gemini' (type gemini, 2 keys)",
        "generative-language-api-key[0] -> provider 'gemini-2' (type gemini, 1 key)",
        "codex-api-key[0] -> provider 'codex' (type openai-responses, 1 key)",
        "openai-compatibility[0] -> provider 'openrouter' (type openai, 2 keys)",
        "openai-compatibility[1] -> provider 'old-style' (type openai, 1 key)",
        "vertex-api-key[0] -> provider 'vertex' (type vertex-compat, 1 key)",
        "vertex-api-key[1] -> provider 'vertex-2' (type vertex-compat, 1 key)",
    )
    providers = {p.name: p for p in config.providers}
    assert providers["anthropic"] == ProviderConfig(
        type=ProviderType.ANTHROPIC,
        name="anthropic",
        credentials=(Credential("sk-ant-legacy-0001"), Credential("sk-ant-legacy-0002", "socks5://127.0.0.1:1080")),
    )
    assert providers["anthropic-2"] == ProviderConfig(
        type=ProviderType.ANTHROPIC,
        name="anthropic-2",
        base_url="https://claude.example.com",
        credentials=(Credential("sk-ant-legacy-0003"),),
        headers={"X-Custom-Header": "custom-value"},
        models=(ModelConfig("claude-3-5-sonnet-20241022", alias="claude-sonnet-latest"),),
        excluded_models=("*haiku*",),
    )
    assert providers["gemini"].excluded_models == ("gemini-2.5-pro", "*-preview")
    assert providers["codex"].base_url == "https://codex.example.com/v1"
    assert providers["openrouter"].credentials == (
        Credential("sk-or-v1-legacy-0001", "socks5://127.0.0.1:1080"),
        Credential("sk-or-v1-legacy-0002"),
    )
    assert [m.client_name for m in providers["openrouter"].models] == ["kimi-k2", "claude-opus-4.66"]
    assert providers["old-style"].enabled is False
    assert providers["vertex"].base_url == "https://aiplatform.googleapis.com"  # CLIProxyAPI's default: express mode
    assert providers["vertex-2"].base_url == "https://zenmux.ai/api/vertex-ai"
    assert config.warnings == (
        "claude-api-key[2].prefix: model prefixes are not supported; its models are served under their own names",
        "codex-api-key[1]: no base-url; entry ignored (without one CLIProxyAPI targets the ChatGPT Codex backend, "
        "which needs a ChatGPT login, not an API key; set base-url, e.g. https://api.openai.com/v1)",
        "claude-api-key[2].headers.X-Session: copying a client header ($X-Claude-Code-Session-Id) is not supported; "
        "ignored",
        "claude-api-key[2].models[0].display-name: CLIProxyAPI setting not used by muxtrio; ignored",
        "openai-compatibility[0].models[2]: alias 'claude-opus-4.66' already maps to 'deepseek-v3.1' "
        "(openai-compatibility[0].models); ignored",
    )
    assert "legacy" not in repr(config.providers)  # keys stay masked


def test_legacy_entries_take_names_left_free_by_providers_and_skip_keyless_ones() -> None:
    config = parse_yaml(
        """
        providers: [{type: anthropic, api-key: sk-main}]
        claude-api-key:
          - api-key: sk-legacy
          - base-url: https://claude.example.com
          - api-key: sk-legacy
        openai-compatibility:
          - name: nobase
            api-key-entries: [{api-key: k}]
        """
    )
    assert [(p.name, [c.key for c in p.credentials]) for p in config.providers[:2]] == [
        ("anthropic", ["sk-main"]),
        ("anthropic-2", ["sk-legacy"]),
    ]
    assert config.warnings == (
        "claude-api-key[1]: no api-key; entry ignored",
        "openai-compatibility[0]: no base-url; entry ignored",
        "claude-api-key[2]: duplicate key ****gacy; ignored",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "claude-api-key: [{api-key: k, base-url: nope}]",
            "claude-api-key[0].base-url: expected an http(s) URL, got 'nope'",
        ),
        ("gemini-api-key: [AIza-plain-string]", "gemini-api-key[0]: expected a mapping, got 'AIza-plain-string'"),
        ("codex-api-key: {api-key: k}", "codex-api-key: expected a list of entries, got a mapping"),
        (
            "openai-compatibility: [{name: x, base-url: 'http://h/v1', api-key-entries: [{api-key: k, proxy-url: 'ftp://p'}]}]",
            "openai-compatibility[0].api-key-entries[0].proxy-url: expected an http(s) or socks5 proxy URL, got 'ftp://p'",
        ),
        ("vertex-api-key: [{api-key: k, models: [{alias: a}]}]", "vertex-api-key[0].models[0].name: required"),
        ("claude-api-key: [{api-key: 5}]", "claude-api-key[0].api-key: expected a non-empty string"),
    ],
)
def test_legacy_errors_name_the_legacy_key_path(text: str, message: str) -> None:
    assert error_of(text) == message


# ---------------------------------------------------------------------------------------------------- unknown keys
def test_unknown_keys_are_warnings_naming_the_key_path() -> None:
    config = parse_yaml(
        """
        prot: 9000
        tls: {enable: false, ca: x}
        routing: {stratgy: round-robin}
        timeouts: {first_byte: 5}
        circuit-breaker: {failure: 3}
        providers:
          - type: openai
            base-url: http://127.0.0.1:8000/v1
            modles: [a]
            api-keys: [{key: sk-1234567890, proxy: x}]
            models:
              - {name: m, alais: n, timeouts: {idel: 3}}
        """
    )
    assert config.warnings == (
        "prot: unknown key; ignored (did you mean 'port'?)",
        "tls.ca: unknown key; ignored",
        "timeouts.first_byte: unknown key; ignored (did you mean 'first-byte'?)",
        "routing.stratgy: unknown key; ignored (did you mean 'strategy'?)",
        "circuit-breaker.failure: unknown key; ignored (did you mean 'failures'?)",
        "providers[0].modles: unknown key; ignored (did you mean 'models'?)",
        "providers[0].api-keys[0].proxy: unknown key; ignored",
        "providers[0].models[0].alais: unknown key; ignored (did you mean 'alias'?)",
        "providers[0].models[0].timeouts.idel: unknown key; ignored (did you mean 'idle'?)",
    )
    # The known keys next to them still apply.
    assert config.routing_strategy is RoutingStrategy.LEAST_BUSY
    assert config.providers[0].models == (ModelConfig("m"),)


# -------------------------------------------------------------------------------------------------- invalid values
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: abc", "port: expected an integer, got 'abc'"),
        ("port: '8080'", "port: expected an integer, got '8080'"),
        ("port: 70000", "port: expected an integer between 0 and 65535, got 70000"),
        ("port: true", "port: expected an integer, got True"),
        ("host: ''", "host: expected a non-empty string, got ''"),
        ("debug: maybe", "debug: expected true or false, got 'maybe'"),
        ("workers: 0", "workers: expected an integer >= 1, got 0"),
        ("request-retry: -1", "request-retry: expected an integer >= 0, got -1"),
        (
            "max-retry-interval: soon",
            "max-retry-interval: expected seconds or a duration such as '30s', '500ms', '5m', got 'soon'",
        ),
        ("keepalive-interval: 0", "keepalive-interval: expected a number > 0 (seconds), got 0"),
        ("stream-timeout: -5", "stream-timeout: expected a number > 0 (seconds), got -5"),
        (
            "max-request-size: 12 parsecs",
            "max-request-size: expected bytes or a size such as '64MiB', '512k', got '12 parsecs'",
        ),
        ("stream-buffer-bytes: 10", "stream-buffer-bytes: expected an integer >= 1024, got 10"),
        ("proxy-url: ftp://proxy", "proxy-url: expected an http(s) or socks5 proxy URL, got 'ftp://proxy'"),
        ("api-keys: [ok-key, 12345]", "api-keys[1]: expected a non-empty string"),
        ("api-keys: key", "api-keys: expected a list of client keys, got 'key'"),
        ("tls: {enable: true}", "tls.cert: required when tls.enable is true"),
        ("tls: {enable: true, cert: c.pem}", "tls.key: required when tls.enable is true"),
        ("tls: yes", "tls: expected a mapping, got True"),
        ("timeouts: {connect: 0}", "timeouts.connect: expected a number > 0 (seconds), got 0"),
        ("timeouts: {idle: null}", "timeouts.idle: expected a number > 0 (seconds), got null"),
        ("timeouts: {total: -1}", "timeouts.total: expected a number > 0 (seconds), got -1"),
        ("circuit-breaker: {failures: 0}", "circuit-breaker.failures: expected an integer >= 1, got 0"),
        ("circuit-breaker: {open-seconds: 0}", "circuit-breaker.open-seconds: expected a number > 0 (seconds), got 0"),
        (
            "refused-credential-cooldowns: []",
            "refused-credential-cooldowns: expected a non-empty list of durations > 0 (seconds), got a list",
        ),
        (
            "refused-credential-cooldowns: [1m, soon]",
            "refused-credential-cooldowns[1]: expected seconds or a duration such as '30s', '500ms', '5m', got 'soon'",
        ),
        ("routing: {strategy: random}", "routing.strategy: expected one of least-busy, round-robin, got 'random'"),
        ("routing: {aliases: {a: 1}}", "routing.aliases.a: expected a non-empty string (quote it in YAML)"),
        ("fallbacks: {x: [y, 1]}", "fallbacks.x[1]: expected a model name, got 1"),
        ("fallbacks: {x: y}\nrouting: {fallbacks: {x: z}}", "fallbacks.x: also defined in routing.fallbacks"),
        ("providers: {type: openai}", "providers: expected a list of providers, got a mapping"),
        ("providers: [openai]", "providers[0]: expected a mapping, got 'openai'"),
        (
            "providers: [{name: x}]",
            "providers[0].type: required: one of openai, anthropic, gemini, ollama, "
            "openai-responses, vertex-compat, echo, claude, codex, gemini-cli, github-copilot, qwen",
        ),
        (
            "providers: [{type: claud}]",
            "providers[0].type: expected one of openai, anthropic, gemini, ollama, "
            "openai-responses, vertex-compat, echo, claude, codex, gemini-cli, github-copilot, qwen, got 'claud'",
        ),
        (
            "providers: [{type: echo}, {type: ollama}, {type: openai, base-url: localhost}]",
            "providers[2].base-url: expected an http(s) URL, got 'localhost'",
        ),
        (
            "providers: [{type: openai, base-url: 'https://user:secret@host:99999/v1'}]",
            "providers[0].base-url: expected an http(s) URL, got 'https://****@host:99999/v1'",
        ),
        ("providers: [{type: vertex-compat, api-key: k}]", "providers[0].base-url: required for type vertex-compat"),
        (
            "providers: [{type: openai, name: a}, {type: gemini, name: a}]",
            "providers[1].name: duplicate provider name 'a' (also providers[0])",
        ),
        ("providers: [{type: openai, api-key: 1234567890123}]", "providers[0].api-key: expected a non-empty string"),
        ("providers: [{type: openai, api-keys: [{proxy-url: 'http://p'}]}]", "providers[0].api-keys[0].key: required"),
        (
            "providers: [{type: openai, api-keys: [{key: sk-1234567890, proxy-url: 'ftp://x'}]}]",
            "providers[0].api-keys[0].proxy-url: expected an http(s) or socks5 proxy URL, got 'ftp://x'",
        ),
        (
            "providers: [{type: openai, headers: {Authorization: [a]}}]",
            "providers[0].headers.Authorization: expected a non-empty string (quote it in YAML)",
        ),
        ("providers: [{type: openai, models: [{alias: x}]}]", "providers[0].models[0].name: required"),
        (
            "providers: [{type: openai}, {type: gemini, api-key: k, models: [{name: ''}]}]",
            "providers[1].models[0].name: expected a non-empty string, got ''",
        ),
        (
            "providers: [{type: openai, models: [a, {name: 5}]}]",
            "providers[0].models[1].name: expected a string, got 5",
        ),
        (
            "providers: [{type: openai, models: [7]}]",
            "providers[0].models[0]: expected a model name or a mapping with name and alias, got 7",
        ),
        (
            "providers: [{type: openai, models: [a, {name: b, alias: a}]}]",
            "providers[0].models[1].alias: duplicate model 'a' (also models[0])",
        ),
        (
            "providers: [{type: openai, models: [{name: a, prefill: sometimes}]}]",
            "providers[0].models[0].prefill: expected true or false, got 'sometimes'",
        ),
        (
            "providers: [{type: openai, models: [{name: a, timeouts: {idle: -1}}]}]",
            "providers[0].models[0].timeouts.idle: expected a number > 0 (seconds), got -1",
        ),
        (
            "providers: [{type: openai, timeouts: {first-byte: 0}}]",
            "providers[0].timeouts.first-byte: expected a number > 0 (seconds), got 0",
        ),
        (
            "providers: [{type: openai, excluded-models: [a, '']}]",
            "providers[0].excluded-models[1]: expected a model name pattern, got ''",
        ),
        ("providers: [{type: openai, http2: 1}]", "providers[0].http2: expected true or false, got 1"),
        (
            "providers: [{type: openai, max-connections: 0}]",
            "providers[0].max-connections: expected an integer >= 1, got 0",
        ),
        ("providers: [{type: openai, enabled: 'no'}]", "providers[0].enabled: expected true or false, got 'no'"),
    ],
)
def test_invalid_value_names_the_exact_key_path(text: str, message: str) -> None:
    assert error_of(text) == message


def test_error_messages_never_quote_keys() -> None:
    message = error_of("providers: [{type: openai, api-keys: [sk-live-1234567890, 99999999999]}]")
    assert message == "providers[0].api-keys[1]: expected a non-empty string"
    message = error_of("providers: [{type: openai, headers: {x-api-key: [secret-value-123]}}]")
    assert "secret-value-123" not in message


# ------------------------------------------------------------------------------------------------- env overrides
def test_env_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "host: 0.0.0.0\nport: 9000\napi-keys: [file-key-1]\ndisable-auth: false\ndebug: false\n")
    env = {
        "MUXTRIO_HOST": "::1",
        "MUXTRIO_PORT": "9100",
        "MUXTRIO_API_KEYS": "env-key-1, env-key-2,",
        "MUXTRIO_DISABLE_AUTH": "yes",
        "MUXTRIO_DEBUG": "1",
    }
    config = load_config(path, env=env)
    assert (config.host, config.port, config.api_keys) == ("::1", 9100, ("env-key-1", "env-key-2"))
    assert (config.disable_auth, config.debug) == (True, True)
    assert load_config(path, env={}).port == 9000
    assert load_config(path, env={"MUXTRIO_PORT": ""}).port == 9000  # empty = unset


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MUXTRIO_PORT": "http"}, "MUXTRIO_PORT: expected an integer between 0 and 65535, got 'http'"),
        ({"MUXTRIO_PORT": "99999"}, "MUXTRIO_PORT: expected an integer between 0 and 65535, got 99999"),
        ({"MUXTRIO_DEBUG": "maybe"}, "MUXTRIO_DEBUG: expected one of 1, true, yes, 0, false, no, got 'maybe'"),
        ({"MUXTRIO_DISABLE_AUTH": "2"}, "MUXTRIO_DISABLE_AUTH: expected one of 1, true, yes, 0, false, no, got '2'"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], message: str) -> None:
    assert error_of("port: 1", env) == message


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("No", False), ("on", True), ("0", False)])
def test_env_booleans(value: str, expected: bool) -> None:
    assert parse_config({}, env={"MUXTRIO_DEBUG": value}).debug is expected


# --------------------------------------------------------------------------------------------------- credentials
def test_api_key_forms() -> None:
    config = parse_yaml(
        """
        providers:
          - {type: anthropic, api-key: " sk-ant-single "}
          - type: openai
            api-keys: [sk-aaaaaaaa1, {key: sk-bbbbbbbb2, proxy-url: "http://proxy:3128"}, {api-key: sk-cccccccc3}]
          - type: gemini
            api-key: g-first-key
            api-keys: [g-second-key, g-first-key, ""]
          - {type: openai-responses, api-key: ""}
        """
    )
    anthropic, openai, gemini, responses, _echo = config.providers
    assert anthropic.credentials == (Credential("sk-ant-single"),)
    assert openai.credentials == (
        Credential("sk-aaaaaaaa1"),
        Credential("sk-bbbbbbbb2", proxy_url="http://proxy:3128"),
        Credential("sk-cccccccc3"),
    )
    assert gemini.credentials == (Credential("g-first-key"), Credential("g-second-key"))
    assert responses.credentials == ()
    assert config.warnings == (
        "providers[2].api-keys[2]: empty key; ignored",
        "providers[2].api-keys[1]: duplicate key ****-key; ignored",
        "providers[3]: type openai-responses needs an api-key and has none; requests will not be routed to it",
    )


def test_missing_key_warns_only_where_the_upstream_needs_one() -> None:
    config = parse_yaml(
        """
        providers:
          - {type: openai}
          - {type: openai, base-url: "http://127.0.0.1:8000/v1"}
          - {type: anthropic, enabled: false}
          - {type: gemini}
          - {type: ollama}
          - {type: vertex-compat, base-url: "https://zenmux.ai/api"}
        """
    )
    assert config.warnings == (
        "providers[0]: type openai needs an api-key and has none; requests will not be routed to it",
        "providers[3]: type gemini needs an api-key and has none; requests will not be routed to it",
    )
    assert [p.requires_key for p in config.providers] == [True, False, True, True, False, False, False]


def test_default_names_are_deduplicated_around_explicit_ones() -> None:
    config = parse_yaml(
        """
        providers:
          - {type: openai, api-key: k1}
          - {type: openai, api-key: k2}
          - {type: openai, name: openai-2, base-url: "http://127.0.0.1:1/v1"}
          - {type: ollama, name: ""}
        """
    )
    assert [p.name for p in config.providers] == ["openai", "openai-3", "openai-2", "ollama", "echo"]


def test_headers_and_models_forms() -> None:
    config = parse_yaml(
        """
        providers:
          - type: anthropic
            api-key: k
            base-url: "https://proxy.example.com/anthropic/"
            headers: {anthropic-version: 2023-06-01, X-Priority: 2, X-Empty: ""}
            proxy-url: ""
            models: [claude-sonnet-4-5, {name: claude-opus-4-5, alias: opus, prefill: true, timeouts: {total: 0}}]
            excluded-models: ["*-haiku-*"]
        """
    )
    provider = config.providers[0]
    assert provider.base_url == "https://proxy.example.com/anthropic"
    assert provider.headers == {"anthropic-version": "2023-06-01", "X-Priority": "2"}
    assert provider.proxy_url is None
    assert provider.models == (
        ModelConfig("claude-sonnet-4-5"),
        ModelConfig("claude-opus-4-5", alias="opus", prefill=True, timeouts=PartialTimeouts(total=0.0)),
    )
    assert [m.client_name for m in provider.models] == ["claude-sonnet-4-5", "opus"]
    assert provider.excluded_models == ("*-haiku-*",)
    assert config.warnings == ("providers[0].headers.X-Empty: empty value; ignored",)


@pytest.mark.parametrize(
    ("pattern", "model", "excluded"),
    [
        ("gemini-2.5-pro", "gemini-2.5-pro", True),
        ("gemini-2.5-pro", "gemini-2.5-pro-preview", False),
        ("gemini-*", "Gemini-2.5-Flash", True),
        ("*-preview", "gemini-3-pro-preview", True),
        ("*-preview", "gemini-3-pro", False),
        ("*flash*", "gemini-2.5-flash-lite", True),
        ("gpt-4.?", "gpt-4.1", False),  # only '*' is special
        ("gpt-4.?", "gpt-4.?", True),
    ],
)
def test_excluded_model_wildcards(pattern: str, model: str, excluded: bool) -> None:
    provider = ProviderConfig(type=ProviderType.GEMINI, excluded_models=(pattern,))
    assert provider.is_excluded(model) is excluded


# ------------------------------------------------------------------------------------------------------- timeouts
def test_timeouts_precedence_model_over_provider_over_global() -> None:
    config = parse_yaml(
        """
        timeouts: {connect: 5, first-byte: 60, idle: 30, total: 900}
        providers:
          - type: ollama
            timeouts: {first-byte: 120, idle: null}
            models:
              - {name: slow, timeouts: {idle: 90, total: 0}}
              - fast
        """
    )
    provider = config.providers[0]
    slow, fast = provider.models
    assert config.timeouts == Timeouts(connect=5.0, first_byte=60.0, idle=30.0, total=900.0)
    assert provider.timeouts == PartialTimeouts(first_byte=120.0)
    assert config.timeouts_for(provider) == Timeouts(connect=5.0, first_byte=120.0, idle=30.0, total=900.0)
    assert config.timeouts_for(provider, slow) == Timeouts(connect=5.0, first_byte=120.0, idle=90.0, total=None)
    assert config.timeouts_for(provider, fast) == Timeouts(connect=5.0, first_byte=120.0, idle=30.0, total=900.0)
    assert config.timeouts.merged(None) is config.timeouts


def test_timeouts_accept_duration_strings() -> None:
    config = parse_yaml("timeouts: {connect: 500ms, first-byte: 2m, idle: '1.5s', total: 1h}\nshutdown-grace: 10s")
    assert config.timeouts == Timeouts(connect=0.5, first_byte=120.0, idle=1.5, total=3600.0)
    assert config.shutdown_grace == 10.0


@pytest.mark.parametrize("total", ["0", "null"])
def test_global_total_zero_or_null_means_no_limit(total: str) -> None:
    assert parse_yaml(f"timeouts: {{total: {total}}}").timeouts.total is None
    assert Timeouts(total=0).total is None


def test_stream_timeout_maps_onto_first_byte() -> None:
    config = parse_yaml("stream-timeout: 120\ntimeouts: {idle: 40}")
    assert config.timeouts == Timeouts(first_byte=120.0, idle=40.0)
    assert config.warnings == ()


def test_explicit_first_byte_wins_over_stream_timeout() -> None:
    config = parse_yaml("stream-timeout: 120\ntimeouts: {first-byte: 45}")
    assert config.timeouts.first_byte == 45.0
    assert config.warnings == ("stream-timeout: ignored because timeouts.first-byte is set",)


# ------------------------------------------------------------------------------------------------ sizes and misc
def test_sizes_and_the_rest_of_the_top_level_keys() -> None:
    config = parse_yaml(
        """
        max-request-size: 50MB
        max-event-size: 512k
        max-response-size: 128MiB
        stream-buffer-bytes: 65536
        keepalive-interval: 5
        workers: 4
        echo-model: true
        request-retry: 0
        max-retry-interval: 2.5
        proxy-url: "socks5h://127.0.0.1:1080"
        routing: {strategy: round-robin}
        circuit-breaker: {failures: 3, open-seconds: 1m}
        refused-credential-cooldowns: [30s, 5m, 2h]
        regenerate-on-cut: false
        recover-max-chars: 200000
        """
    )
    assert config.refused_credential_cooldowns == (30.0, 300.0, 7200.0) and config.regenerate_on_cut is False
    assert config.recover_max_chars == 200000
    assert (config.max_request_bytes, config.max_event_bytes, config.stream_buffer_bytes) == (
        50 * 1024 * 1024,
        512 * 1024,
        65536,
    )
    assert config.max_response_bytes == 128 * 1024 * 1024
    assert (config.keepalive_interval, config.workers, config.request_retry, config.max_retry_interval) == (
        5.0,
        4,
        0,
        2.5,
    )
    assert config.proxy_url == "socks5h://127.0.0.1:1080"
    assert config.routing_strategy is RoutingStrategy.ROUND_ROBIN
    assert (config.breaker_failures, config.breaker_open_seconds) == (3, 60.0)


def test_fallbacks_and_aliases_from_top_level_and_routing() -> None:
    config = parse_yaml(
        """
        fallbacks: {a: b}
        aliases: {x: y}
        routing:
          fallbacks: {c: [d, e]}
          aliases: {z: w}
        """
    )
    assert config.fallbacks == {"c": ("d", "e"), "a": ("b",)}
    assert config.aliases == {"z": "w", "x": "y"}


# -------------------------------------------------------------------------------------------------------- masking
def test_reprs_mask_secrets() -> None:
    config = parse_yaml(
        """
        api-keys: [client-secret-AAAA1111]
        proxy-url: "http://user:hunter2@proxy:3128"
        providers:
          - type: openai
            api-keys: [{key: sk-upstream-BBBB2222, proxy-url: "socks5://bob:pw123456@p:1080"}]
            headers: {Authorization: "Bearer tok-CCCC3333", X-Title: muxtrio}
        """
    )
    text = repr(config)
    for secret in ("client-secret", "hunter2", "sk-upstream", "pw123456", "tok-CCCC"):
        assert secret not in text
    assert "api_keys=('****1111',)" in text
    assert "Credential(key='****2222', proxy_url='socks5://****@p:1080')" in text
    assert "'Authorization': '****3333', 'X-Title': 'muxtrio'" in text
    assert "proxy_url='http://****@proxy:3128'" in text
    assert repr(Credential("short")) == "Credential(key='****', proxy_url=None)"


def test_redact_url() -> None:
    assert redact_url("https://host/v1") == "https://host/v1"
    assert redact_url("https://u:p@host:8443/v1?x=1") == "https://****@host:8443/v1?x=1"
    assert redact_url("socks5://token@host") == "socks5://****@host"


# ---------------------------------------------------------------------------------------------------- echo provider
def test_echo_provider_is_appended_to_a_config_file() -> None:
    config = parse_yaml("providers: [{type: ollama}]")
    assert config.providers == (ProviderConfig(type=ProviderType.OLLAMA), ECHO)


def test_echo_provider_is_not_duplicated_or_forced() -> None:
    own_echo = parse_yaml("providers: [{type: echo, name: mirror, models: [parrot]}]")
    assert [p.name for p in own_echo.providers] == ["mirror"]
    assert parse_yaml("echo-model: false").providers == ()
    assert Config(echo_model=False).providers == ()
    clash = parse_yaml("providers: [{type: ollama, name: echo}]")
    assert [(p.name, p.type.value) for p in clash.providers] == [("echo", "ollama"), ("echo-2", "echo")]


# --------------------------------------------------------------------------------------------------- example file
def test_example_file_parses_without_warnings() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.warnings == ()
    assert config.source == str(EXAMPLE)
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 8317, 1)
    assert len(config.api_keys) == 2
    assert [(p.name, p.type.value, len(p.credentials), p.enabled) for p in config.providers] == [
        ("openai", "openai", 2, True),
        ("openrouter", "openai", 1, True),
        ("anthropic", "anthropic", 1, True),
        ("gemini", "gemini", 1, True),
        ("local", "ollama", 0, True),
        ("zenmux", "vertex-compat", 1, False),
        ("echo", "echo", 0, True),
        *((name, name, 0, True) for name in ("claude", "codex", "gemini-cli", "github-copilot", "qwen")),
    ]
    claude = next(p for p in config.providers if p.name == "claude")
    assert claude.excluded_models == ("*-haiku-*",)
    assert config.accounts.refresh_lead == 300.0
    openai = config.providers[0]
    assert openai.credentials[1].proxy_url == "socks5://127.0.0.1:1080"
    assert openai.excluded_models == ("*-preview", "gpt-3.5-*")
    assert config.timeouts_for(openai, openai.models[2]).first_byte == 900.0
    assert config.timeouts == Timeouts(connect=10.0, first_byte=600.0, idle=300.0, total=None)
    local = config.providers[4]
    assert config.timeouts_for(local) == Timeouts(connect=2.0, first_byte=1200.0, idle=300.0, total=None)
    assert config.aliases == {"claude-sonnet-4.5": "claude-sonnet-4-5", "gpt4": "gpt-4o"}
    assert config.fallbacks == {"claude-opus-4-5": ("claude-sonnet-4-5", "gpt-4o"), "gpt-4o": ("gemini-2.5-pro",)}
    assert config.providers[1].headers == {"HTTP-Referer": "https://example.com", "X-Title": "muxtrio"}


def test_example_file_mentions_every_top_level_and_provider_key() -> None:
    text = EXAMPLE.read_text()
    for key in config_reader._TOP_KEYS + config_reader._PROVIDER_KEYS + config_reader._TIMEOUT_KEYS:
        assert f"{key}" in text, key
    for key in ("strategy", "aliases", "fallbacks", "failures", "open-seconds", "prefill", "alias"):
        assert f"{key}:" in text, key


# ---------------------------------------------------------------------------------------------------- files, YAML
def test_yaml_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 1\ndebug: false\nport: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: line 3: duplicate key 'port'"


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: line 2, column 1: invalid YAML: ")
    assert "\n" not in str(info.value)


def test_top_level_must_be_a_mapping_and_empty_file_is_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected a YAML mapping at the top level, got a list$"):
        load_config(write(tmp_path, "- 1\n"), env={})
    assert load_config(write(tmp_path, "", "empty.yaml"), env={}) == Config()


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert str(info.value) == f"cannot read config file '{tmp_path / 'nope.yaml'}': No such file or directory"


def test_dates_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: [{type: anthropic, api-key: k, headers: {anthropic-version: 2023-06-01}}]\n")
    assert load_config(path, env={}).providers[0].headers == {"anthropic-version": "2023-06-01"}


def test_tls_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "cert.pem").write_text("x")
    (tmp_path / "certs" / "key.pem").write_text("x")
    path = write(tmp_path, "tls: {enable: true, cert: certs/cert.pem, key: certs/key.pem}\n")
    config = load_config(path, env={})
    assert config.tls == TLSConfig(
        enable=True, cert=str(tmp_path / "certs/cert.pem"), key=str(tmp_path / "certs/key.pem")
    )
    missing = write(tmp_path, "tls: {enable: true, cert: certs/cert.pem, key: nokey.pem}\n", "other.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert str(info.value) == f"tls.key: file not found: '{tmp_path / 'nokey.pem'}'"


# ------------------------------------------------------------------------------------------------------ lookup order
@pytest.fixture
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def fake() -> bool:
        calls.append(1)
        return False

    monkeypatch.setattr(cli, "detect_local_ollama", fake)
    return calls


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_ollama: list[int]) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    (home / ".config" / "muxtrio").mkdir(parents=True)
    work.mkdir()
    monkeypatch.chdir(work)
    env = {"HOME": str(home)}

    config = load_config(env=env)  # nothing anywhere: the built-in default
    assert config.source is None
    assert no_ollama == []  # loading never touches the network; the CLI probes for Ollama

    user_file = write(home / ".config" / "muxtrio", "port: 1001\n", "config.yaml")
    assert load_config(env=env).port == 1001
    assert load_config(env=env).source == str(user_file)

    write(work, "port: 1002\n")
    assert load_config(env=env).port == 1002  # ./muxtrio.yaml before the user file
    assert load_config(env=env).source == str(work / "muxtrio.yaml")

    explicit = write(tmp_path, "port: 1003\n", "explicit.yaml")
    assert load_config(env={**env, "MUXTRIO_CONFIG": str(explicit)}).port == 1003  # $MUXTRIO_CONFIG first
    assert (
        load_config(write(tmp_path, "port: 1004\n", "arg.yaml"), env={**env, "MUXTRIO_CONFIG": str(explicit)}).port
        == 1004
    )


def test_lookup_honours_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_ollama: list[int]) -> None:
    monkeypatch.chdir(tmp_path)
    xdg_dir = tmp_path / "xdg" / "muxtrio"
    xdg_dir.mkdir(parents=True)
    write(xdg_dir, "port: 1005\n", "config.yaml")
    assert load_config(env={"HOME": str(tmp_path / "nohome"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}).port == 1005


def test_missing_muxtrio_config_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"MUXTRIO_CONFIG": str(tmp_path / "gone.yaml")})
    assert str(info.value) == f"MUXTRIO_CONFIG: no such file: '{tmp_path / 'gone.yaml'}'"


# ---------------------------------------------------------------------------------------------------- default config
def test_default_config_detects_providers_from_the_environment() -> None:
    env = {
        "OPENAI_API_KEY": "sk-openai-1234",
        "OPENAI_BASE_URL": "https://gateway.example.com/v1",
        "ANTHROPIC_API_KEY": "sk-ant-5678",
        "GOOGLE_API_KEY": "goog-9999",
        "MUXTRIO_PORT": "9999",
    }
    config = default_config(env, local_ollama=True)
    assert config.port == 9999
    assert config.source is None
    assert config.providers == (
        ProviderConfig(
            type=ProviderType.OPENAI,
            base_url="https://gateway.example.com/v1",
            credentials=(Credential("sk-openai-1234"),),
        ),
        ProviderConfig(type=ProviderType.ANTHROPIC, credentials=(Credential("sk-ant-5678"),)),
        ProviderConfig(type=ProviderType.GEMINI, credentials=(Credential("goog-9999"),)),
        ProviderConfig(type=ProviderType.OLLAMA),
        ECHO,
    )
    assert all(not p.models for p in config.providers[:4])
    assert config.warnings == ()


def test_default_config_gemini_key_wins_and_never_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> bool:
        raise AssertionError("config probed the network")

    monkeypatch.setattr(cli, "detect_local_ollama", boom)
    config = default_config({"GEMINI_API_KEY": "gem-1", "GOOGLE_API_KEY": "goog-2"})
    assert config.providers == (ProviderConfig(type=ProviderType.GEMINI, credentials=(Credential("gem-1"),)), ECHO)
    assert default_config({}) == Config()


def test_default_config_bad_base_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^OPENAI_BASE_URL: expected an http\(s\) URL, got 'api.example.com'$"):
        default_config({"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "api.example.com"})


# ------------------------------------------------------------------------------------------------- ollama detection
@pytest.fixture
def fake_server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield listener, []
    listener.close()


def _serve_once(listener: socket.socket, reply: bytes | None, seen: list[bytes]) -> threading.Thread:
    def handle() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(4096))
            if reply is None:
                time.sleep(1.0)  # never answers in time
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=handle, daemon=True)
    thread.start()
    return thread


def test_detect_local_ollama_true_on_a_version_answer(fake_server: tuple[socket.socket, list[bytes]]) -> None:
    listener, seen = fake_server
    reply = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{"version":"0.9.0"}'
    thread = _serve_once(listener, reply, seen)
    assert detect_local_ollama("127.0.0.1", listener.getsockname()[1], timeout=2.0) is True
    thread.join()
    assert seen[0].startswith(b"GET /api/version HTTP/1.0\r\n")


def test_detect_local_ollama_false_on_other_servers(fake_server: tuple[socket.socket, list[bytes]]) -> None:
    listener, seen = fake_server
    thread = _serve_once(listener, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", seen)
    assert detect_local_ollama("127.0.0.1", listener.getsockname()[1], timeout=2.0) is False
    thread.join()


def test_detect_local_ollama_gives_up_quickly(fake_server: tuple[socket.socket, list[bytes]]) -> None:
    listener, seen = fake_server
    _serve_once(listener, None, seen)
    started = time.monotonic()
    assert detect_local_ollama("127.0.0.1", listener.getsockname()[1], timeout=0.3) is False
    assert time.monotonic() - started < 0.9


def test_detect_local_ollama_false_when_nothing_listens() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    assert detect_local_ollama("127.0.0.1", port) is False


# ------------------------------------------------------------------------------------------- payload, model-rules
def test_llm_mux_payload_rules_are_read_with_protocols_mapped_to_formats() -> None:
    config = parse_yaml(
        """
        payload:
          default:
            - models:
                - name: "gemini-2.5-pro"
                  protocol: gemini-cli
                - gpt-5*
              params:
                "generationConfig.thinkingConfig.thinkingBudget": 32768
                "metadata": {tags: [a, b]}
          override:
            - models: [{name: "gpt-5*", protocol: Codex}]
              params: {"reasoning.effort": "high"}
          filter:
            - models: [{name: x}]
              params: [a]
        """
    )
    [default] = config.payload_default
    assert default.models == (
        PayloadMatch("gemini-2.5-pro", "gemini"), PayloadMatch("gpt-5*", None),
    )  # fmt: skip
    assert default.params == (
        ("generationConfig.thinkingConfig.thinkingBudget", "32768"), ("metadata", '{"tags": ["a", "b"]}'),
    )  # fmt: skip
    [override] = config.payload_override
    assert override.models[0].protocol == "openai-responses"
    assert config.warnings == ("payload.filter: llm-mux setting not used by muxtrio; ignored",)
    hash(config)
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("payload: {default: [{models: [{name: x, protocol: grpc}], params: {a: 1}}]}",
         "payload.default[0].models[0].protocol: expected one of"),
        ("payload: {override: [{models: [], params: {a: 1}}]}", "payload.override[0].models: required"),
        ("payload: {override: [{models: [x], params: {}}]}", "payload.override[0].params: required"),
        ("payload: {override: [{models: [x], params: {'a..b': 1}}]}",
         "payload.override[0].params.a..b: expected a dot path"),
        ("model-rules: [{models: [x], drop: [temprature]}]", "model-rules[0].drop[0]: expected one of"),
        ("model-rules: [{models: [x], output-limit-field: max_output_tokens}]",
         "model-rules[0].output-limit-field: expected one of"),
        ("model-rules: [{models: [x], thinking-budget-min: 10, thinking-budget-max: 5}]",
         "model-rules[0].thinking-budget-min: 10 is above thinking-budget-max 5"),
        ("model-rules: [{drop: [top_k]}]", "model-rules[0].models: expected at least one model name pattern"),
    ],
)
def test_bad_payload_and_model_rules_name_their_key(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text)
    assert str(info.value).startswith(error)


def test_model_rules_are_read() -> None:
    config = parse_yaml(
        """
        model-rules:
          - models: my-reasoner-*
            protocol: openai
            drop: [top_k]
            drop-with-reasoning: [temperature]
            reasoning-by-default: true
            one-of: [temperature, top_p]
            output-limit-field: max_completion_tokens
            thinking-budget-min: 1024
            thinking-budget-max: 32000
            thinking-off: false
            source: https://example.com
        """
    )
    assert config.model_rules == (
        ModelRuleConfig(
            models=("my-reasoner-*",), protocol="openai-chat", drop=("top_k",), drop_with_reasoning=("temperature",),
            reasoning_by_default=True, one_of=("temperature", "top_p"), output_limit_field="max_completion_tokens",
            thinking_budget_min=1024, thinking_budget_max=32000, thinking_off=False, source="https://example.com",
        ),
    )  # fmt: skip


# -------------------------------------------------------------------------------------------------------- compression
def test_compression_section_and_environment() -> None:
    from muxtrio.config import CompressionConfig

    assert parse_config({}, env={}).compression == CompressionConfig()
    config = parse_yaml(
        """
        compression:
          responses: false
          streams: true
          min-size: 2KiB
          algorithms: [gzip, zstd]
          gzip-level: 9
          zstd-level: 19
          br-level: 11
        """
    )
    assert config.compression == CompressionConfig(
        responses=False, streams=True, min_size=2048, algorithms=("gzip", "zstd"), gzip_level=9, zstd_level=19,
        br_level=11,
    )
    env = {"MUXTRIO_COMPRESS_RESPONSES": "no", "MUXTRIO_COMPRESS_STREAMS": "on"}
    assert parse_config({}, env=env).compression == CompressionConfig(responses=False, streams=True)
    assert "MUXTRIO_COMPRESS_STREAMS" in error_of("{}", {"MUXTRIO_COMPRESS_STREAMS": "sometimes"})
    assert error_of("compression: {algorithms: [deflate]}").startswith("compression.algorithms: expected a list")
    assert error_of("compression: {algorithms: [gzip, gzip]}").startswith("compression.algorithms:")
    assert error_of("compression: {gzip-level: 0}").startswith("compression.gzip-level: expected an integer")
    assert error_of("compression: {min-size: lots}").startswith("compression.min-size:")
    assert error_of("compression: {level: 3}") == "compression.level: unknown key"

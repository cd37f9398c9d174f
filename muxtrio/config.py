"""Configuration: a YAML file with llm-mux compatible keys, ``MUXTRIO_*`` overrides, and the typed, frozen result.

Role: turn a config file, the environment, or code into one immutable :class:`Config` that the engine and the server
read. Every problem is one :class:`~muxtrio.errors.ConfigError` whose path is the exact key path in the YAML
(``providers[2].models[0].name``) or the environment variable that carried the bad value (``MUXTRIO_PORT``); every key
that muxtrio does not use (llm-mux's ``auth-dir``, ``payload``... or a typo) becomes a warning in ``Config.warnings``.

How: a hand-written pass (:class:`_Reader`) walks the raw YAML mapping, warns about unknown keys and rewrites
llm-mux's shapes (``api-key``/``api-keys``, bare model strings, ``routing:``, ``stream-timeout``, sizes such as
``64MiB``) into a plain dict whose keys are the attrs field names, remembering where each value came from. cattrs then
structures that dict with strict scalar hooks (no silent ``"8080"`` -> 8080, no ``true`` -> 1), the attrs validators
check ranges, and a failure is turned back into one line that names the YAML key path.

Invariants:
- Every config class is ``@attrs.frozen`` (slotted, immutable, hashable, picklable for ``--workers``; mappings are
  read-only) and every field has a default, so embedders can write
  ``Config(providers=(ProviderConfig(type=ProviderType.OPENAI, ...),))``.
  Validation runs in the classes themselves, so a config built in code is checked exactly like one read from YAML.
- Precedence: CLI flags > ``MUXTRIO_*`` environment > file > defaults. Timeouts: model > provider > global.
- Whenever ``echo_model`` is true, ``providers`` contains the built-in echo provider (model ``muxtrio-echo``).
- Secrets never appear in a repr, an error or a warning: keys go through :func:`muxtrio.errors.mask_secret`, URL
  user-info and sensitive header values are hidden.
- Loading reads files and the environment only; the one network touch is :func:`detect_local_ollama`, a 0.3 s loopback
  probe used by :func:`default_config` when there is no config file.
- Imports: the standard library, attrs, cattrs, PyYAML and :mod:`muxtrio.errors`; never the engine, server or upstream.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeVar
from urllib.parse import urlsplit

import attrs
import cattrs
import yaml
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from muxtrio import provider_types
from muxtrio.accounts.files import default_auth_dir
from muxtrio.codecs.base import HostedToolPolicy
from muxtrio.errors import ConfigError, mask_secret
from muxtrio.provider_types import PROVIDER_TYPES
from muxtrio.wildcard import wildcard_match

__all__ = [
    "DEFAULT_BASE_URLS",
    "ECHO_MODEL",
    "AccountsConfig",
    "Config",
    "Credential",
    "HostedToolPolicy",
    "ModelConfig",
    "ModelRuleConfig",
    "PartialTimeouts",
    "PayloadMatch",
    "PayloadRuleConfig",
    "ProviderConfig",
    "ProviderType",
    "ResponseModel",
    "RoutingStrategy",
    "TLSConfig",
    "Timeouts",
    "config_secrets",
    "default_config",
    "detect_local_ollama",
    "load_config",
    "parse_config",
    "redact_headers",
    "redact_url",
]

Segment: TypeAlias = "str | int"
KeyPath: TypeAlias = "tuple[Segment, ...]"

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB


class ProviderType(StrEnum):
    """What an upstream speaks. ``openai`` is any OpenAI-compatible chat API (OpenAI, DeepSeek, Groq, vLLM...)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    OPENAI_RESPONSES = "openai-responses"
    VERTEX_COMPAT = "vertex-compat"
    ECHO = "echo"
    # Subscription accounts (docs/accounts.md): credentials are token files in ``auth-dir``.
    CLAUDE = "claude"
    CODEX = "codex"
    GEMINI_CLI = "gemini-cli"
    GITHUB_COPILOT = "github-copilot"
    QWEN = "qwen"


class RoutingStrategy(StrEnum):
    """How a credential is picked among the usable ones of a provider."""

    LEAST_BUSY = "least-busy"
    ROUND_ROBIN = "round-robin"


class ResponseModel(StrEnum):
    """Which model name answers carry (``response-model``): ``requested`` — the name the client asked for when its
    route served (an alias stays the alias), the fallback's configured name when a fallback served; ``upstream`` —
    the provider's model name."""

    REQUESTED = "requested"
    UPSTREAM = "upstream"


DEFAULT_BASE_URLS: Final[Mapping[ProviderType, str]] = MappingProxyType(
    {t: PROVIDER_TYPES[t.value].default_base_url for t in ProviderType if PROVIDER_TYPES[t.value].default_base_url}
)
"""Base URL per provider type when ``base-url`` is not given (from :mod:`muxtrio.provider_types`). ``vertex-compat``
has none (it is required); ``echo`` needs none."""

ECHO_MODEL: Final = "muxtrio-echo"
"""The model name the built-in echo provider serves."""

def _requires_key(provider_type: ProviderType, base_url: str) -> bool:
    return provider_types.requires_key(provider_type.value, base_url)


# --------------------------------------------------------------------------------------------------- paths and errors
def _format_path(segments: Iterable[Segment], base: str = "") -> str:
    out = base
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


class _InvalidField(ConfigError):
    """Raised by the attrs classes. ``segments`` is the path relative to the object being built, in attribute names;
    the loader re-roots it onto the YAML key path."""

    def __init__(self, segments: KeyPath, detail: str) -> None:
        super().__init__(_format_path(segments), detail)
        self.segments = segments
        self.detail = detail


def _show(value: object) -> str:
    """A value as error messages quote it: short, and never a whole nested structure."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # cattrs made -1 a float; quote what the user wrote
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def redact_url(url: str) -> str:
    """A URL as it may be printed: user-info (``user:password@``, or a token as user name) becomes ``****@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://****@{authority.rpartition('@')[2]}{slash}{tail}"


def _is_url(value: object, schemes: frozenset[str]) -> bool:
    if not isinstance(value, str) or any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in schemes and bool(parts.hostname)


_HTTP: Final = frozenset({"http", "https"})
_PROXY: Final = frozenset({"http", "https", "socks5", "socks5h"})


def _is_http_url(value: object) -> bool:
    return _is_url(value, _HTTP)


# --------------------------------------------------------------------------------------------------- attrs validators
_Validator: TypeAlias = "Callable[[Any, attrs.Attribute[Any], Any], None]"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(low: int, high: int | None = None) -> _Validator:
    expected = f"an integer >= {low}" if high is None else f"an integer between {low} and {high}"

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        in_range = isinstance(value, int) and low <= value and (high is None or value <= high)
        if not in_range or isinstance(value, bool):
            raise _InvalidField((attribute.name,), f"expected {expected}, got {_show(value)}")

    return check


def _number(*, positive: bool) -> _Validator:
    expected = "a number > 0" if positive else "a number >= 0"

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not (value > 0 if positive else value >= 0)
        ):
            raise _InvalidField((attribute.name,), f"expected {expected} (seconds), got {_show(value)}")

    return check


def _cooldown_ladder(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (
        isinstance(value, tuple)
        and value
        and all(_is_number(v) and v > 0 for v in value)
    ):
        raise _InvalidField(
            (attribute.name,), f"expected a non-empty list of durations > 0 (seconds), got {_show(value)}"
        )


def _optional(validator: _Validator) -> _Validator:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            validator(inst, attribute, value)

    return check


def _non_empty_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (isinstance(value, str) and value.strip()):
        raise _InvalidField((attribute.name,), f"expected a non-empty string, got {_show(value)}")


def _secret_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # The value is never quoted: it is a key.
    if not (isinstance(value, str) and value.strip()):
        raise _InvalidField((attribute.name,), "expected a non-empty string")


def _bool(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _InvalidField((attribute.name,), f"expected true or false, got {_show(value)}")


def _proxy_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_url(value, _PROXY):
        shown = redact_url(value) if isinstance(value, str) else value
        raise _InvalidField((attribute.name,), f"expected an http(s) or socks5 proxy URL, got {_show(shown)}")


def _tuple_of(kind: type, what: str) -> _Validator:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple):
            raise _InvalidField((attribute.name,), f"expected a tuple of {what}, got {_show(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, kind) or (kind is str and not item):
                raise _InvalidField((attribute.name, index), f"expected {what}, got {_show(item)}")

    return check


# ---------------------------------------------------------------------------------------------- attrs converters/reprs
_K = TypeVar("_K")
_V = TypeVar("_V")


class _FrozenMap(Mapping[_K, _V]):
    """A read-only, hashable mapping that pickles (``--workers`` sends the config to spawned processes, and
    ``MappingProxyType`` cannot be pickled). Compares equal to a dict with the same items."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[_K, _V]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)


def _frozen_str_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return _FrozenMap(value)


def _frozen_fallbacks(value: Mapping[str, Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    return _FrozenMap({model: tuple(chain) for model, chain in value.items()})


def _zero_is_none(value: float | None) -> float | None:
    return None if value == 0 and not isinstance(value, bool) else value


def _strip_slash(value: str) -> str:
    return value.rstrip("/") if isinstance(value, str) else value


def _provider_type(value: str) -> ProviderType:
    try:
        return ProviderType(value)
    except ValueError:
        raise _InvalidField(("type",), f"expected one of {_choices(ProviderType)}, got {_show(value)}") from None


def _routing_strategy(value: str) -> RoutingStrategy:
    try:
        return RoutingStrategy(value)
    except ValueError:
        raise _InvalidField(
            ("routing_strategy",), f"expected one of {_choices(RoutingStrategy)}, got {_show(value)}"
        ) from None


def _hosted_tools(value: str) -> HostedToolPolicy:
    try:
        return HostedToolPolicy(value)
    except ValueError:
        raise _InvalidField(
            ("hosted_tools",), f"expected one of {_choices(HostedToolPolicy)}, got {_show(value)}"
        ) from None


def _response_model(value: str) -> ResponseModel:
    try:
        return ResponseModel(value)
    except ValueError:
        raise _InvalidField(
            ("response_model",), f"expected one of {_choices(ResponseModel)}, got {_show(value)}"
        ) from None


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def _masked_repr(key: str) -> str:
    return repr(mask_secret(key))


def _masked_keys_repr(keys: tuple[str, ...]) -> str:
    return repr(tuple(mask_secret(key) for key in keys))


def _url_repr(url: str | None) -> str:
    return repr(None if url is None else redact_url(url))


_SENSITIVE_HEADER: Final = re.compile(r"auth|key|token|secret|cookie|session|password", re.IGNORECASE)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as they may be printed: values of credential-like headers (``Authorization``, ``*-Key``...) masked."""
    return {name: mask_secret(value) if _SENSITIVE_HEADER.search(name) else value for name, value in headers.items()}


def _headers_repr(headers: Mapping[str, str]) -> str:
    return repr(redact_headers(headers))


def _url_userinfo(url: str | None) -> list[str]:
    """The user-info of a proxy URL (``user:password``) and its parts: secrets a proxy error could echo."""
    if not url:
        return []
    authority = url.partition("://")[2].partition("/")[0]
    if "@" not in authority:
        return []
    userinfo = authority.rpartition("@")[0]
    return [userinfo, *userinfo.split(":", 1)]


def config_secrets(config: Config) -> tuple[str, ...]:
    """Every secret value in ``config``: provider keys, gateway ``api-keys``, values of credential-like provider
    headers, proxy user-info. :class:`muxtrio.redact.Scrubber` removes them from upstream text."""
    found: list[str] = list(config.api_keys)
    found += _url_userinfo(config.proxy_url)
    if config.remote_management.secret_key:
        found.append(config.remote_management.secret_key)
    for provider in config.providers:
        found += [c.key for c in provider.credentials]
        found += [v for name, v in provider.headers.items() if _SENSITIVE_HEADER.search(name)]
        found += _url_userinfo(provider.proxy_url)
        for credential in provider.credentials:
            found += _url_userinfo(credential.proxy_url)
    return tuple(dict.fromkeys(s for s in found if s))


# --------------------------------------------------------------------------------------------------------- the classes
@attrs.frozen
class PartialTimeouts:
    """Timeouts set on a provider or a model: ``None`` inherits the outer value. ``total=0`` lifts an inherited total
    limit."""

    connect: float | None = attrs.field(default=None, validator=_optional(_number(positive=True)))
    first_byte: float | None = attrs.field(default=None, validator=_optional(_number(positive=True)))
    idle: float | None = attrs.field(default=None, validator=_optional(_number(positive=True)))
    total: float | None = attrs.field(default=None, validator=_optional(_number(positive=False)))


@attrs.frozen
class Timeouts:
    """Upstream timeouts in seconds, each one a failover trigger: ``connect`` (TCP+TLS), ``first_byte`` (request sent
    -> first response byte), ``idle`` (longest gap between two chunks of a stream), ``total`` (whole attempt; ``None``
    = no limit, and 0 is read as ``None``)."""

    connect: float = attrs.field(default=10.0, validator=_number(positive=True))
    first_byte: float = attrs.field(default=600.0, validator=_number(positive=True))
    idle: float = attrs.field(default=300.0, validator=_number(positive=True))
    total: float | None = attrs.field(
        default=None, converter=_zero_is_none, validator=_optional(_number(positive=True))
    )

    def merged(self, override: PartialTimeouts | None) -> Timeouts:
        """These timeouts with every field that ``override`` sets replaced (``total=0`` -> no total limit)."""
        if override is None:
            return self
        return Timeouts(
            connect=self.connect if override.connect is None else override.connect,
            first_byte=self.first_byte if override.first_byte is None else override.first_byte,
            idle=self.idle if override.idle is None else override.idle,
            total=self.total if override.total is None else override.total,
        )


@attrs.frozen
class Credential:
    """One upstream API key. ``proxy_url`` overrides the provider's (and the global) proxy for this key only."""

    key: str = attrs.field(repr=_masked_repr, validator=_secret_str)
    proxy_url: str | None = attrs.field(default=None, repr=_url_repr, validator=_optional(_proxy_url))


@attrs.frozen
class ModelConfig:
    """A model a provider serves. ``name`` is what the upstream receives, ``alias`` what clients send (default:
    ``name``). ``prefill``: whether the model accepts an assistant prefill for mid-stream continuation (``None``: the
    provider type's default, decided by the engine). ``timeouts`` override the provider's, field by field."""

    name: str = attrs.field(validator=_non_empty_str)
    alias: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))
    prefill: bool | None = attrs.field(default=None, validator=_optional(_bool))
    timeouts: PartialTimeouts | None = None

    @property
    def client_name(self) -> str:
        """The name clients use for this model: its alias, or its upstream name."""
        return self.alias if self.alias is not None else self.name


def _default_name(provider: ProviderConfig) -> str:
    return provider.type.value


def _default_base_url(provider: ProviderConfig) -> str:
    return DEFAULT_BASE_URLS.get(provider.type, "")


def _base_url(inst: ProviderConfig, _attribute: attrs.Attribute[Any], value: object) -> None:
    if provider_types.info(inst.type).builtin and value == "":
        return
    if value == "":
        raise _InvalidField(("base_url",), f"required for type {inst.type.value}")
    if not _is_http_url(value):
        shown = redact_url(value) if isinstance(value, str) else value
        raise _InvalidField(("base_url",), f"expected an http(s) URL, got {_show(shown)}")


@attrs.frozen
class ProviderConfig:
    """One upstream account: where it is, how to authenticate, which models it serves and how to talk to it.

    ``models`` empty means "no list": the engine forwards whatever model name a client asks for. ``excluded_models``
    are llm-mux wildcards (``gpt-4-*``, ``*-preview``, ``*flash*``, case-insensitive). ``proxy_url`` overrides the
    global proxy; a credential's own ``proxy_url`` overrides both.
    """

    type: ProviderType = attrs.field(converter=_provider_type)
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True), validator=_non_empty_str)
    base_url: str = attrs.field(
        default=attrs.Factory(_default_base_url, takes_self=True), converter=_strip_slash, validator=_base_url
    )
    credentials: tuple[Credential, ...] = attrs.field(default=(), validator=_tuple_of(Credential, "a Credential"))
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map, repr=_headers_repr)
    proxy_url: str | None = attrs.field(default=None, repr=_url_repr, validator=_optional(_proxy_url))
    models: tuple[ModelConfig, ...] = attrs.field(default=(), validator=_tuple_of(ModelConfig, "a ModelConfig"))
    excluded_models: tuple[str, ...] = attrs.field(default=(), validator=_tuple_of(str, "a non-empty pattern"))
    http2: bool = attrs.field(default=False, validator=_bool)
    max_connections: int = attrs.field(default=1000, validator=_int_at_least(1))
    max_keepalive: int = attrs.field(default=32, validator=_int_at_least(0))
    timeouts: PartialTimeouts | None = None
    enabled: bool = attrs.field(default=True, validator=_bool)

    def __attrs_post_init__(self) -> None:
        seen: dict[str, int] = {}
        for index, model in enumerate(self.models):
            if model.client_name in seen:
                raise _InvalidField(
                    ("models", index, "alias" if model.alias is not None else "name"),
                    f"duplicate model {model.client_name!r} (also models[{seen[model.client_name]}])",
                )
            seen[model.client_name] = index

    @property
    def requires_key(self) -> bool:
        """Whether the upstream refuses requests without a key (routing skips such a provider with no credentials)."""
        return _requires_key(self.type, self.base_url)

    def is_excluded(self, model: str) -> bool:
        """Whether ``model`` (a client name or an upstream name) matches one of ``excluded_models``."""
        return any(wildcard_match(pattern, model) for pattern in self.excluded_models)


@attrs.frozen
class TLSConfig:
    """HTTPS for the listening socket. ``cert``/``key`` are PEM file paths (relative ones resolve against the config
    file's directory)."""

    enable: bool = attrs.field(default=False, validator=_bool)
    cert: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))
    key: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))

    def __attrs_post_init__(self) -> None:
        if self.enable:
            for name in ("cert", "key"):
                if getattr(self, name) is None:
                    raise _InvalidField((name,), "required when tls.enable is true")


def _builtin_echo(taken: set[str]) -> ProviderConfig:
    return ProviderConfig(type=ProviderType.ECHO, name=_unique_name("echo", taken), models=(ModelConfig(ECHO_MODEL),))


def _unique_name(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    counter = 2
    while f"{base}-{counter}" in taken:
        counter += 1
    return f"{base}-{counter}"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _log_format(value: str) -> LogFormat:
    try:
        return LogFormat(value)
    except ValueError:
        raise _InvalidField((), f"expected one of {_choices(LogFormat)}, got {_show(value)}") from None


_LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _log_level(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _LOG_LEVELS:
        raise _InvalidField((), f"expected one of {', '.join(_LOG_LEVELS)}, got {_show(value)}")


@attrs.frozen
class UsageConfig:
    """Persistent usage records (llm-mux's ``usage:``). ``dsn`` None means the embedded default (a SQLite file in the
    user's data directory); ``""`` turns persistence off; ``sqlite:///path`` or ``postgres://…`` choose a store."""

    dsn: str | None = attrs.field(default=None, repr=_url_repr)
    batch_size: int = attrs.field(default=100, validator=_int_at_least(1, 100_000))
    flush_interval: float = attrs.field(default=5.0, validator=_number(positive=True))
    retention_days: float = attrs.field(default=30.0, validator=_number(positive=False))
    queue_limit: int = attrs.field(default=10_000, validator=_int_at_least(1))

    @property
    def enabled(self) -> bool:
        return self.dsn != ""


class StateBackend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


def _state_backend(value: str) -> StateBackend:
    try:
        return StateBackend(value)
    except ValueError:
        raise _InvalidField(("backend",), f"expected one of memory, redis, got {_show(value)}") from None


def _redis_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (isinstance(value, str) and value.startswith(("redis://", "rediss://"))):
        raise _InvalidField(("url",), "expected a redis:// or rediss:// URL")


@attrs.frozen
class StateConfig:
    """Where workers and nodes share credential state, probes, in-flight counts and notifications
    (docs/deploy.md). ``memory``: this process only. ``redis``: the Redis at ``url``; a command slower than
    ``timeout`` falls back to local state; a node's in-flight counts expire ``lease_ttl`` after it stops renewing
    them; a half-open probe slot is held at most ``probe_ttl``; a Responses WebSocket turn is remembered for
    ``previous_response_id`` on every node for ``responses_ttl``; a node re-reads the shared credential state at most
    every ``refresh_interval`` (0: before every request)."""

    backend: StateBackend = attrs.field(default=StateBackend.MEMORY, converter=_state_backend)
    url: str | None = attrs.field(default=None, repr=_url_repr, validator=_redis_url)
    timeout: float = attrs.field(default=0.25, validator=_number(positive=True))
    lease_ttl: float = attrs.field(default=10.0, validator=_number(positive=True))
    probe_ttl: float = attrs.field(default=60.0, validator=_number(positive=True))
    responses_ttl: float = attrs.field(default=3600.0, validator=_number(positive=True))
    refresh_interval: float = attrs.field(default=0.05, validator=_number(positive=False))

    def __attrs_post_init__(self) -> None:
        if self.backend is StateBackend.REDIS and not self.url:
            raise _InvalidField(("url",), "state.backend redis needs state.url (redis://host:port/db)")


@attrs.frozen
class RemoteManagementConfig:
    """llm-mux's ``remote-management:``. ``secret_key`` is the management key as stored in the file: plain, or a
    ``scrypt:``/``sha256:`` hash (muxtrio writes the hash); the ``MUXTRIO_MANAGEMENT_KEY`` environment variable wins
    over it. ``allow_remote`` lets non-loopback addresses use the management API."""

    allow_remote: bool = attrs.field(default=False, validator=_bool)
    secret_key: str | None = attrs.field(default=None, repr=False, validator=_optional(_secret_str))


@attrs.frozen
class ReloadConfig:
    """Hot reload: ``watch`` polls the config file every ``poll_interval`` seconds and reloads it when its content
    changed (SIGHUP and the management API reload regardless)."""

    watch: bool = attrs.field(default=True, validator=_bool)
    poll_interval: float = attrs.field(default=1.0, validator=_number(positive=True))


@attrs.frozen
class MetricsConfig:
    """``GET /metrics`` in the Prometheus text format. Loopback scrapers need no key unless ``require_key``; other
    addresses need a gateway key."""

    enabled: bool = attrs.field(default=True, validator=_bool)
    require_key: bool = attrs.field(default=False, validator=_bool)


@attrs.frozen
class ClientKeysConfig:
    """Per-team client keys (``mx-…``) kept in the usage database (see ``docs/keys.md``). ``refresh-interval``: how
    often each worker reloads changed keys (revocations reach every worker within it); ``sync-interval``: how often
    each worker writes its batched counters, returns idle leased permits and records last-used times."""

    enabled: bool = attrs.field(default=True, validator=_bool)
    refresh_interval: float = attrs.field(default=2.0, validator=_number(positive=True))
    sync_interval: float = attrs.field(default=1.0, validator=_number(positive=True))


@attrs.frozen
class PriceConfig:
    """One ``prices:`` entry: a model name or ``*`` pattern and its prices per million tokens (any one currency)."""

    model: str = attrs.field(validator=_non_empty_str)
    input: float = attrs.field(default=0.0, validator=_number(positive=False))
    output: float = attrs.field(default=0.0, validator=_number(positive=False))
    cache_read: float = attrs.field(default=0.0, validator=_number(positive=False))
    cache_write: float = attrs.field(default=0.0, validator=_number(positive=False))


@attrs.frozen
class LoggingConfig:
    """Log lines (text or JSON, stderr and optionally a size-rotated file) and per-request log files."""

    format: LogFormat = attrs.field(default=LogFormat.TEXT, converter=_log_format)
    level: str = attrs.field(default="info", validator=_log_level)
    to_file: bool = attrs.field(default=False, validator=_bool)
    file: str = attrs.field(default="logs/main.log", validator=_non_empty_str)
    file_max_bytes: int = attrs.field(default=10 * MiB, validator=_int_at_least(1024))
    file_backups: int = attrs.field(default=5, validator=_int_at_least(0))
    request_log: bool = attrs.field(default=False, validator=_bool)
    request_log_dir: str = attrs.field(default="logs/requests", validator=_non_empty_str)
    request_log_max_files: int = attrs.field(default=1000, validator=_int_at_least(1))
    request_log_max_bytes: int = attrs.field(default=256 * MiB, validator=_int_at_least(1024))
    request_log_body_bytes: int = attrs.field(default=1 * MiB, validator=_int_at_least(0))


PROTOCOL_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "openai": "openai-chat", "openai-chat": "openai-chat", "openai-response": "openai-responses",
        "openai-responses": "openai-responses", "codex": "openai-responses", "claude": "anthropic",
        "anthropic": "anthropic", "gemini": "gemini", "gemini-cli": "gemini", "antigravity": "gemini",
        "aistudio": "gemini", "vertex": "gemini", "vertex-compat": "gemini", "ollama": "ollama",
    }
)  # fmt: skip
"""``protocol`` names in ``payload`` and ``model-rules`` entries (llm-mux's translator format names and muxtrio's
own format names, case-insensitive) -> the provider wire format they mean."""

SAMPLING_FIELD_NAMES: Final = frozenset(
    {"temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty", "seed"}
)
"""Sampling fields a model rule may name (the same set as ``codecs.model_rules.SAMPLING_FIELDS``; a test keeps them
equal: this module does not import the codecs)."""


@attrs.frozen
class PayloadMatch:
    """One ``models`` entry of a payload rule: a model name pattern (``*`` wildcards) and, optionally, the provider
    wire format (``openai-chat``, ``openai-responses``, ``anthropic``, ``gemini``, ``ollama``) it is limited to."""

    name: str = attrs.field(validator=_non_empty_str)
    protocol: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))


@attrs.frozen
class PayloadRuleConfig:
    """One llm-mux payload rule. ``params``: (dot path, value as JSON text) pairs in config order; JSON text keeps the
    config hashable and picklable whatever the value's shape."""

    models: tuple[PayloadMatch, ...] = attrs.field(validator=_tuple_of(PayloadMatch, "a PayloadMatch"))
    params: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class ModelRuleConfig:
    """An operator's model rule (``model-rules:``), tried before the built-in table of ``codecs/model_rules.py``.
    Field meanings are those of ``codecs.model_rules.ModelRule``; ``protocol`` limits it to one provider format."""

    models: tuple[str, ...] = attrs.field(validator=_tuple_of(str, "a non-empty pattern"))
    protocol: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))
    drop: tuple[str, ...] = ()
    drop_with_reasoning: tuple[str, ...] = ()
    reasoning_by_default: bool = attrs.field(default=False, validator=_bool)
    one_of: tuple[str, ...] = ()
    output_limit_field: str | None = None
    thinking_budget_min: int | None = attrs.field(default=None, validator=_optional(_int_at_least(0)))
    thinking_budget_max: int | None = attrs.field(default=None, validator=_optional(_int_at_least(1)))
    thinking_off: bool = attrs.field(default=True, validator=_bool)
    source: str | None = None

    def __attrs_post_init__(self) -> None:
        low, high = self.thinking_budget_min, self.thinking_budget_max
        if low is not None and high is not None and low > high:
            raise _InvalidField(("thinking_budget_min",), f"{low} is above thinking-budget-max {high}")
def _endpoint_overrides(value: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return _FrozenMap({provider: _FrozenMap(dict(keys)) for provider, keys in value.items()})


@attrs.frozen
class AccountsConfig:
    """Subscription accounts (docs/accounts.md): refresh an access token ``refresh_lead`` seconds before it expires,
    look for changed token files every ``watch_interval`` seconds, and ``endpoints`` overrides the OAuth/API
    endpoints per account type (``{codex: {token-url: ...}}``; keys in ``muxtrio.accounts.oauth.ENDPOINT_KEYS``)."""

    refresh_lead: float = attrs.field(default=300.0, validator=_number(positive=False))
    watch_interval: float = attrs.field(default=2.0, validator=_number(positive=True))
    endpoints: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, converter=_endpoint_overrides)


@attrs.frozen
class Config:
    """The whole gateway configuration. Build it in code, or with :func:`load_config` / :func:`parse_config`.

    ``aliases`` (llm-mux ``routing.aliases``) rewrite a requested model name before routing; ``fallbacks`` list, per
    model, the models to try next when every candidate for it failed. ``source`` is the file it came from,
    ``warnings`` the ignored keys found there and ``legacy_mappings`` one line per provider read from a CLIProxyAPI /
    older llm-mux credential list (``claude-api-key[0] -> provider 'anthropic' ...``); none takes part in equality.
    """

    host: str = attrs.field(default="127.0.0.1", validator=_non_empty_str)
    port: int = attrs.field(default=8317, validator=_int_at_least(0, 65535))
    api_keys: tuple[str, ...] = attrs.field(default=(), repr=_masked_keys_repr)
    disable_auth: bool = attrs.field(default=False, validator=_bool)
    debug: bool = attrs.field(default=False, validator=_bool)
    request_retry: int = attrs.field(default=3, validator=_int_at_least(0))
    max_retry_interval: float = attrs.field(default=30.0, validator=_number(positive=False))
    proxy_url: str | None = attrs.field(default=None, repr=_url_repr, validator=_optional(_proxy_url))
    tls: TLSConfig = attrs.field(factory=TLSConfig)
    providers: tuple[ProviderConfig, ...] = attrs.field(
        default=(), validator=_tuple_of(ProviderConfig, "a ProviderConfig")
    )
    fallbacks: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_frozen_fallbacks)
    aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map)
    routing_strategy: RoutingStrategy = attrs.field(default=RoutingStrategy.LEAST_BUSY, converter=_routing_strategy)
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    stream_buffer_bytes: int = attrs.field(default=256 * KiB, validator=_int_at_least(1024))
    keepalive_interval: float = attrs.field(default=15.0, validator=_number(positive=True))
    shutdown_grace: float = attrs.field(default=30.0, validator=_number(positive=False))
    max_request_bytes: int = attrs.field(default=64 * MiB, validator=_int_at_least(1))
    max_event_bytes: int = attrs.field(default=20 * MiB, validator=_int_at_least(1))
    max_response_bytes: int = attrs.field(default=64 * MiB, validator=_int_at_least(1))
    breaker_failures: int = attrs.field(default=5, validator=_int_at_least(1))
    breaker_open_seconds: float = attrs.field(default=30.0, validator=_number(positive=True))
    refused_credential_cooldowns: tuple[float, ...] = attrs.field(
        default=(60.0, 600.0, 3600.0), validator=_cooldown_ladder
    )
    regenerate_on_cut: bool = attrs.field(default=True, validator=_bool)
    workers: int = attrs.field(default=1, validator=_int_at_least(1))
    echo_model: bool = attrs.field(default=True, validator=_bool)
    usage: UsageConfig = attrs.field(factory=UsageConfig)
    state: StateConfig = attrs.field(factory=StateConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    logging: LoggingConfig = attrs.field(factory=LoggingConfig)
    client_keys: ClientKeysConfig = attrs.field(factory=ClientKeysConfig)
    prices: tuple[PriceConfig, ...] = attrs.field(default=(), validator=_tuple_of(PriceConfig, "a PriceConfig"))
    hosted_tools: HostedToolPolicy = attrs.field(default=HostedToolPolicy.MAP, converter=_hosted_tools)
    response_model: ResponseModel = attrs.field(default=ResponseModel.REQUESTED, converter=_response_model)
    thinking_cache_entries: int = attrs.field(default=4096, validator=_int_at_least(0))
    thinking_cache_bytes: int = attrs.field(default=32 * MiB, validator=_int_at_least(0))
    thinking_cache_ttl: float = attrs.field(default=3600.0, validator=_number(positive=True))
    payload_default: tuple[PayloadRuleConfig, ...] = attrs.field(
        default=(), validator=_tuple_of(PayloadRuleConfig, "a PayloadRuleConfig")
    )
    payload_override: tuple[PayloadRuleConfig, ...] = attrs.field(
        default=(), validator=_tuple_of(PayloadRuleConfig, "a PayloadRuleConfig")
    )
    model_rules: tuple[ModelRuleConfig, ...] = attrs.field(
        default=(), validator=_tuple_of(ModelRuleConfig, "a ModelRuleConfig")
    )
    http2: bool = attrs.field(default=False, validator=_bool)
    keep_alive_timeout: float = attrs.field(default=75.0, validator=_number(positive=True))
    auth_dir: str | None = attrs.field(default=None, validator=_optional(_non_empty_str))
    oauth_excluded_models: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_frozen_fallbacks)
    accounts: AccountsConfig = attrs.field(factory=lambda: AccountsConfig())
    remote_management: RemoteManagementConfig = attrs.field(factory=RemoteManagementConfig)
    reload: ReloadConfig = attrs.field(factory=ReloadConfig)
    source: str | None = attrs.field(default=None, eq=False)
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)
    legacy_mappings: tuple[str, ...] = attrs.field(default=(), eq=False)

    def __attrs_post_init__(self) -> None:
        names: dict[str, int] = {}
        for index, provider in enumerate(self.providers):
            if provider.name in names:
                raise _InvalidField(
                    ("providers", index, "name"),
                    f"duplicate provider name {provider.name!r} (also providers[{names[provider.name]}])",
                )
            names[provider.name] = index
        management_key = self.remote_management.secret_key
        if management_key is not None and management_key in self.api_keys:
            raise _InvalidField(
                ("remote_management", "secret_key"), "the management key must not also be a gateway api-keys entry"
            )
        if self.echo_model and not any(p.type is ProviderType.ECHO for p in self.providers):
            # Frozen class: attrs documents object.__setattr__ as the way to finish an instance in post-init.
            object.__setattr__(self, "providers", (*self.providers, _builtin_echo(set(names))))
        if self.auth_dir is not None:
            object.__setattr__(self, "providers", (*self.providers, *self._account_providers()))

    def _account_providers(self) -> list[ProviderConfig]:
        """One provider per subscription account type not configured explicitly (its credentials are the accounts
        in ``auth_dir``), with llm-mux's ``oauth-excluded-models`` for the type."""
        configured = {p.type for p in self.providers}
        taken = {p.name for p in self.providers}
        added: list[ProviderConfig] = []
        for name in provider_types.ACCOUNT_TYPES:
            provider_type = ProviderType(name)
            if provider_type in configured:
                continue
            provider = ProviderConfig(
                type=provider_type,
                name=_unique_name(name, taken),
                excluded_models=self.oauth_excluded_models.get(name, ()),
            )
            taken.add(provider.name)
            added.append(provider)
        return added

    def timeouts_for(self, provider: ProviderConfig, model: ModelConfig | None = None) -> Timeouts:
        """The effective timeouts of one attempt: model over provider over global, field by field."""
        merged = self.timeouts.merged(provider.timeouts)
        return merged.merged(model.timeouts) if model is not None else merged


# ------------------------------------------------------------------------------------------------------------- cattrs
def _structure_str(value: object, _type: object) -> str:
    if not isinstance(value, str):
        raise _InvalidField((), f"expected a string, got {_show(value)}")
    return value


def _structure_int(value: object, _type: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _InvalidField((), f"expected an integer, got {_show(value)}")


def _structure_float(value: object, _type: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _InvalidField((), f"expected a number, got {_show(value)}")


def _structure_bool(value: object, _type: object) -> bool:
    if not isinstance(value, bool):
        raise _InvalidField((), f"expected true or false, got {_show(value)}")
    return value


def _structure_enum(value: object, enum: type[StrEnum]) -> StrEnum:
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise _InvalidField((), f"expected one of {_choices(enum)}, got {_show(value)}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(ProviderType, _structure_enum)
    converter.register_structure_hook(RoutingStrategy, _structure_enum)
    converter.register_structure_hook(LogFormat, _structure_enum)
    converter.register_structure_hook(HostedToolPolicy, _structure_enum)
    converter.register_structure_hook(ResponseModel, _structure_enum)
    return converter


_CONVERTER: Final = _make_converter()


def _first_error(exc: BaseException, prefix: KeyPath) -> tuple[KeyPath, str]:
    """The first leaf of a cattrs error tree: its path (attribute names and indices) and a human message."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        if with_notes:
            inner, note = with_notes[0]
            segment: Segment = note.name if isinstance(note, AttributeValidationNote) else _note_index(note)
            return _first_error(inner, (*prefix, segment))
        if without_notes:
            return _first_error(without_notes[0], prefix)
        return prefix, str(exc)
    if isinstance(exc, _InvalidField):
        return (*prefix, *exc.segments), exc.detail
    if isinstance(exc, ForbiddenExtraKeysError):
        return (*prefix, sorted(exc.extra_fields)[0]), "unknown key"
    if isinstance(exc, KeyError):
        return prefix, "required"
    if isinstance(exc, ConfigError):
        return prefix, exc.message
    return prefix, str(exc)


def _note_index(note: IterableValidationNote) -> Segment:
    index: object = note.index
    return index if isinstance(index, int | str) else str(index)


# ------------------------------------------------------------------------------------------------------ the YAML pass
_TOP_KEYS: Final = (
    "host", "port", "api-keys", "disable-auth", "debug", "request-retry", "max-retry-interval", "stream-timeout",
    "proxy-url", "tls", "providers", "fallbacks", "aliases", "routing", "timeouts", "stream-buffer-bytes",
    "keepalive-interval", "shutdown-grace", "max-request-size", "max-event-size", "max-response-size",
    "circuit-breaker", "workers", "echo-model", "usage", "metrics", "logging", "log-format", "logging-to-file",
    "request-log", "hosted-tools", "response-model", "thinking-cache", "payload", "model-rules",
    "refused-credential-cooldowns", "regenerate-on-cut", "http2", "keep-alive-timeout",
    "auth-dir", "oauth-excluded-models", "accounts", "client-keys", "prices", "remote-management", "reload", "state",
)  # fmt: skip
_ACCOUNTS_KEYS: Final = ("refresh-lead", "watch-interval", "endpoints")
_ENDPOINT_KEYS: Final = (
    "client-id", "scope", "authorize-url", "token-url", "redirect-uri", "client-secret", "device-code-url",
    "token-exchange-url", "code-assist-url", "user-url",
)  # fmt: skip
_REMOTE_MANAGEMENT_KEYS: Final = ("allow-remote", "secret-key")
_RELOAD_KEYS: Final = ("watch", "poll-interval")
_USAGE_KEYS: Final = ("dsn", "batch-size", "flush-interval", "retention-days", "queue-limit")
_METRICS_KEYS: Final = ("enabled", "require-key")
_CLIENT_KEYS_KEYS: Final = ("enabled", "refresh-interval", "sync-interval")
_PRICE_KEYS: Final = ("input", "output", "cache-read", "cache-write")
_STATE_KEYS: Final = ("backend", "url", "timeout", "lease-ttl", "probe-ttl", "responses-ttl", "refresh-interval")
_LOGGING_KEYS: Final = (
    "format", "level", "to-file", "file", "file-max-bytes", "file-backups", "request-log", "request-log-dir",
    "request-log-max-files", "request-log-max-bytes", "request-log-body-bytes",
)  # fmt: skip
_PROVIDER_KEYS: Final = (
    "type", "name", "base-url", "api-key", "api-keys", "headers", "proxy-url", "models", "excluded-models", "http2",
    "max-connections", "max-keepalive", "timeouts", "enabled",
)  # fmt: skip
_MODEL_KEYS: Final = ("name", "alias", "prefill", "timeouts")
_TIMEOUT_KEYS: Final = ("connect", "first-byte", "idle", "total")
_TLS_KEYS: Final = ("enable", "cert", "key")
_ROUTING_KEYS: Final = ("strategy", "aliases", "fallbacks")
_BREAKER_KEYS: Final = ("failures", "open-seconds")
_THINKING_CACHE_KEYS: Final = ("entries", "max-size", "ttl")
_API_KEY_ENTRY_KEYS: Final = ("key", "api-key", "proxy-url")
_PAYLOAD_KEYS: Final = ("default", "override")
_LLM_MUX_IGNORED_PAYLOAD: Final = frozenset({"default-raw", "override-raw", "filter"})
_PAYLOAD_RULE_KEYS: Final = ("models", "params")
_PAYLOAD_MODEL_KEYS: Final = ("name", "protocol")
_MODEL_RULE_KEYS: Final = (
    "models", "protocol", "drop", "drop-with-reasoning", "reasoning-by-default", "one-of", "output-limit-field",
    "thinking-budget-min", "thinking-budget-max", "thinking-off", "source",
)  # fmt: skip
_OUTPUT_LIMIT_FIELDS: Final = ("max_tokens", "max_completion_tokens")

# llm-mux settings that muxtrio has no use for: a warning says so, rather than "unknown key".
_LLM_MUX_IGNORED: Final = frozenset(
    {
        "usage-statistics-enabled",
        "usage-persistence", "disable-cooling", "quota-exceeded", "quota-window", "ws-auth",
        "show-provider-prefixes", "use-canonical-translator", "ampcode", "auth",
    }
)  # fmt: skip
_LLM_MUX_IGNORED_ROUTING: Final = frozenset({"provider-priority"})
# The credential lists of CLIProxyAPI and of llm-mux before its `providers:` list, read into providers. Field names
# are those of CLIProxyAPI's config.example.yaml and llm-mux's internal/config (tests/fixtures/legacy-config/SOURCE.md):
# one list item is one key with its own base-url, proxy-url, headers, models and excluded-models;
# `openai-compatibility` items are one provider each, with `api-key-entries` (or the older plain `api-keys`).
_LEGACY_KEYED: Final[Mapping[str, tuple[ProviderType, str]]] = MappingProxyType(
    {
        "gemini-api-key": (ProviderType.GEMINI, "gemini"),
        "claude-api-key": (ProviderType.ANTHROPIC, "anthropic"),
        # CLIProxyAPI's codex executor posts to {base-url}/responses: the OpenAI Responses API.
        "codex-api-key": (ProviderType.OPENAI_RESPONSES, "codex"),
        "vertex-api-key": (ProviderType.VERTEX_COMPAT, "vertex"),
    }
)
_LEGACY_LISTS: Final = (*_LEGACY_KEYED, "generative-language-api-key", "openai-compatibility")
_LEGACY_ENTRY_KEYS: Final = ("api-key", "base-url", "proxy-url", "headers", "models", "excluded-models")
_LEGACY_COMPAT_KEYS: Final = ("name", "base-url", "api-key-entries", "api-keys", "models", "headers", "disabled")
_LEGACY_KEY_ENTRY_KEYS: Final = ("api-key", "proxy-url")
_LEGACY_MODEL_KEYS: Final = ("name", "alias")
VERTEX_EXPRESS_URL: Final = "https://aiplatform.googleapis.com"
"""Where a ``vertex-api-key`` entry without ``base-url`` goes, as in CLIProxyAPI: Vertex AI express mode, which takes
an API key (``x-goog-api-key``) on ``/v1/publishers/google/models/{model}:generateContent``."""

_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_DURATION_UNITS: Final[Mapping[str, float]] = MappingProxyType({"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0})
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|b)?\s*", re.IGNORECASE)
_SIZE_UNITS: Final[Mapping[str, int]] = MappingProxyType({"k": KiB, "m": MiB, "g": GiB})


@attrs.define
class _LegacyGroup:
    """Legacy list entries that become one provider: same type and shared settings (from ``entry``, found at
    ``where``), one credential per ``(key, proxy-url, YAML path)``."""

    type: ProviderType
    name: str
    entry: Mapping[str, object]
    where: str
    base_url: object
    sources: list[str] = attrs.Factory(list)
    keys: list[tuple[str, object, str]] = attrs.Factory(list)
    enabled: bool = True


class _Reader:
    """One pass over the raw YAML: warnings for unknown keys, llm-mux shapes rewritten into attrs field names, and
    ``origin``, which maps each normalised path (a tuple of field names and indices) to its YAML key path."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.warnings: list[str] = []
        self.origin: dict[KeyPath, str] = {}
        self.legacy_mappings: list[str] = []

    # -- helpers
    def _mapping(self, raw: object, ypath: str) -> dict[str, object]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(ypath, f"expected a mapping, got {_show(raw)}")
        return raw

    def _list(self, raw: object, ypath: str, what: str) -> list[object]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise ConfigError(ypath, f"expected a list of {what}, got {_show(raw)}")
        return raw

    def _check_keys(
        self,
        mapping: Mapping[Any, object],
        ypath: str,
        known: tuple[str, ...],
        llm_mux_only: frozenset[str] = frozenset(),
    ) -> None:
        for key in mapping:
            if key in known:
                continue
            where = _format_path((str(key),), ypath)
            if key in llm_mux_only:
                self.warnings.append(f"{where}: llm-mux setting not used by muxtrio; ignored")
            else:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.warnings.append(f"{where}: unknown key; ignored{hint}")

    def _put(self, target: dict[str, object], npath: KeyPath, field: str, value: object, ypath: str) -> None:
        target[field] = value
        self.origin[(*npath, field)] = ypath

    def _duration(self, raw: object, ypath: str) -> object:
        if not isinstance(raw, str):
            return raw  # numbers go on to the strict float hook
        match = _DURATION.fullmatch(raw)
        if match is None:
            raise ConfigError(ypath, f"expected seconds or a duration such as '30s', '500ms', '5m', got {_show(raw)}")
        return float(match[1]) * _DURATION_UNITS[(match[2] or "s").lower()]

    def _size(self, raw: object, ypath: str) -> object:
        if not isinstance(raw, str):
            return raw
        match = _SIZE.fullmatch(raw)
        if match is None:
            raise ConfigError(ypath, f"expected bytes or a size such as '64MiB', '512k', got {_show(raw)}")
        return round(float(match[1]) * (_SIZE_UNITS[match[2].lower()] if match[2] else 1))

    @staticmethod
    def _blank(raw: object) -> bool:
        # llm-mux writes unset strings as "" (Go zero values): they mean "not set", as there.
        return raw is None or raw == ""

    def _string_map(self, raw: object, ypath: str, npath: KeyPath, *, coerce_numbers: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self._mapping(raw, ypath).items():
            if not isinstance(key, str):
                raise ConfigError(ypath, f"expected string keys, got {_show(key)}")
            where = _format_path((key,), ypath)
            if coerce_numbers and _is_number(value):
                value = str(value)  # header values such as `X-Version: 2` are text on the wire
            elif coerce_numbers and isinstance(value, datetime.date):
                value = value.isoformat()  # `anthropic-version: 2023-06-01` read by a plain yaml.safe_load
            if value == "" and coerce_numbers:
                self.warnings.append(f"{where}: empty value; ignored")  # llm-mux drops these silently
                continue
            if not isinstance(value, str) or not value:
                # Not quoted: header values can be credentials.
                raise ConfigError(where, "expected a non-empty string (quote it in YAML)")
            out[key] = value
            self.origin[(*npath, key)] = where
        return out

    def _timeouts(self, raw: object, ypath: str, npath: KeyPath, *, partial: bool) -> dict[str, object]:
        mapping = self._mapping(raw, ypath)
        self._check_keys(mapping, ypath, _TIMEOUT_KEYS)
        out: dict[str, object] = {}
        for key in _TIMEOUT_KEYS:
            if key not in mapping:
                continue
            value = mapping[key]
            where = _format_path((key,), ypath)
            if value is None and (partial or key != "total"):
                if partial:
                    continue  # null in an override: inherit
                raise ConfigError(where, "expected a number > 0 (seconds), got null")
            self._put(out, npath, key.replace("-", "_"), self._duration(value, where), where)
        return out

    # -- sections
    def read(self, raw: object) -> dict[str, object]:
        top = self._mapping(raw, "")
        self._check_keys(top, "", (*_TOP_KEYS, *_LEGACY_LISTS), _LLM_MUX_IGNORED)
        out: dict[str, object] = {}
        for key in (
            "host", "port", "disable-auth", "debug", "request-retry", "workers", "echo-model", "hosted-tools",
            "response-model", "regenerate-on-cut", "http2",
        ):  # fmt: skip
            if key in top:
                self._put(out, (), key.replace("-", "_"), top[key], key)
        for key, field in (
            ("max-retry-interval", "max_retry_interval"),
            ("keepalive-interval", "keepalive_interval"),
            ("shutdown-grace", "shutdown_grace"),
            ("keep-alive-timeout", "keep_alive_timeout"),
        ):
            if key in top:
                self._put(out, (), field, self._duration(top[key], key), key)
        for key, field in (
            ("stream-buffer-bytes", "stream_buffer_bytes"),
            ("max-request-size", "max_request_bytes"),
            ("max-event-size", "max_event_bytes"),
            ("max-response-size", "max_response_bytes"),
        ):
            if key in top:
                self._put(out, (), field, self._size(top[key], key), key)
        if "api-keys" in top:
            client_keys: list[str] = []
            for index, client_key in enumerate(self._list(top["api-keys"], "api-keys", "client keys")):
                if not isinstance(client_key, str) or not client_key.strip():
                    raise ConfigError(f"api-keys[{index}]", "expected a non-empty string")
                client_keys.append(client_key.strip())
            self._put(out, (), "api_keys", tuple(client_keys), "api-keys")
        if not self._blank(top.get("proxy-url")):
            self._put(out, (), "proxy_url", top["proxy-url"], "proxy-url")
        if "tls" in top:
            self._put(out, (), "tls", self._tls(top["tls"]), "tls")
        self._read_timeouts(top, out)
        self._read_routing(top, out)
        if "circuit-breaker" in top:
            breaker = self._mapping(top["circuit-breaker"], "circuit-breaker")
            self._check_keys(breaker, "circuit-breaker", _BREAKER_KEYS)
            if "failures" in breaker:
                self._put(out, (), "breaker_failures", breaker["failures"], "circuit-breaker.failures")
            if "open-seconds" in breaker:
                where = "circuit-breaker.open-seconds"
                self._put(out, (), "breaker_open_seconds", self._duration(breaker["open-seconds"], where), where)
        if "thinking-cache" in top:
            cache = self._mapping(top["thinking-cache"], "thinking-cache")
            self._check_keys(cache, "thinking-cache", _THINKING_CACHE_KEYS)
            if "entries" in cache:
                self._put(out, (), "thinking_cache_entries", cache["entries"], "thinking-cache.entries")
            if "max-size" in cache:
                where = "thinking-cache.max-size"
                self._put(out, (), "thinking_cache_bytes", self._size(cache["max-size"], where), where)
            if "ttl" in cache:
                where = "thinking-cache.ttl"
                self._put(out, (), "thinking_cache_ttl", self._duration(cache["ttl"], where), where)
        if "refused-credential-cooldowns" in top:
            where = "refused-credential-cooldowns"
            steps = self._list(top[where], where, "durations")
            ladder = tuple(self._duration(step, f"{where}[{i}]") for i, step in enumerate(steps))
            self._put(out, (), "refused_credential_cooldowns", ladder, where)
        self._read_accounts(top, out)
        providers = self._providers(top["providers"]) if "providers" in top else []
        providers.extend(self._legacy(top, len(providers), {str(p["name"]) for p in providers}))
        if "providers" in top or providers:
            self._put(out, (), "providers", providers, "providers")
        self._read_observability(top, out)
        self._read_payload(top, out)
        if "model-rules" in top:
            rules = self._list(top["model-rules"], "model-rules", "model rules")
            parsed = [self._model_rule(rule, f"model-rules[{i}]", ("model_rules", i)) for i, rule in enumerate(rules)]
            self._put(out, (), "model_rules", parsed, "model-rules")
        return out

    def _protocol(self, raw: object, ypath: str) -> str | None:
        if self._blank(raw):
            return None
        name = raw.strip().lower() if isinstance(raw, str) else None
        if name is None or name not in PROTOCOL_NAMES:
            raise ConfigError(ypath, f"expected one of {', '.join(sorted(PROTOCOL_NAMES))}, got {_show(raw)}")
        return PROTOCOL_NAMES[name]

    def _patterns(self, raw: object, ypath: str) -> list[str]:
        items = [raw] if isinstance(raw, str) else self._list(raw, ypath, "model name patterns")
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{ypath}[{index}]", f"expected a model name pattern, got {_show(item)}")
        if not items:
            raise ConfigError(ypath, "expected at least one model name pattern")
        return [str(item).strip() for item in items]

    def _read_payload(self, top: Mapping[str, object], out: dict[str, object]) -> None:
        payload = self._mapping(top.get("payload"), "payload")
        self._check_keys(payload, "payload", _PAYLOAD_KEYS, _LLM_MUX_IGNORED_PAYLOAD)
        for key in _PAYLOAD_KEYS:
            ypath = f"payload.{key}"
            rules = self._list(payload.get(key), ypath, "payload rules")
            if rules:
                field = f"payload_{key}"
                parsed = [self._payload_rule(rule, f"{ypath}[{i}]", (field, i)) for i, rule in enumerate(rules)]
                self._put(out, (), field, parsed, ypath)

    def _payload_rule(self, raw: object, ypath: str, npath: KeyPath) -> dict[str, object]:
        rule = self._mapping(raw, ypath)
        self._check_keys(rule, ypath, _PAYLOAD_RULE_KEYS)
        self.origin[npath] = ypath
        models: list[dict[str, object]] = []
        entries = self._list(rule.get("models"), f"{ypath}.models", "{name, protocol} entries")
        if not entries:
            raise ConfigError(f"{ypath}.models", "required: at least one {name, protocol} entry")
        for index, entry in enumerate(entries):
            where = f"{ypath}.models[{index}]"
            if isinstance(entry, str):
                entry = {"name": entry}
            mapping = self._mapping(entry, where)
            self._check_keys(mapping, where, _PAYLOAD_MODEL_KEYS)
            name = mapping.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{where}.name", f"expected a model name pattern, got {_show(name)}")
            models.append(
                {"name": name.strip(), "protocol": self._protocol(mapping.get("protocol"), f"{where}.protocol")}
            )
        params: list[tuple[str, str]] = []
        for path, value in self._mapping(rule.get("params"), f"{ypath}.params").items():
            where = _format_path((str(path),), f"{ypath}.params")
            if (
                not isinstance(path, str)
                or not path.strip()
                or any(not s for s in re.split(r"(?<!\\)\.", path.strip()))
            ):
                raise ConfigError(
                    where,
                    f"expected a dot path such as generationConfig.thinkingConfig.thinkingBudget, got {_show(path)}",
                )
            try:
                text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise ConfigError(where, f"expected a JSON value, got {_show(value)}") from None
            params.append((path.strip(), text))
        if not params:
            raise ConfigError(f"{ypath}.params", "required: at least one path: value")
        return {"models": models, "params": tuple(params)}

    def _model_rule(self, raw: object, ypath: str, npath: KeyPath) -> dict[str, object]:
        rule = self._mapping(raw, ypath)
        self._check_keys(rule, ypath, _MODEL_RULE_KEYS)
        self.origin[npath] = ypath
        out: dict[str, object] = {"models": tuple(self._patterns(rule.get("models"), f"{ypath}.models"))}
        out["protocol"] = self._protocol(rule.get("protocol"), f"{ypath}.protocol")
        for key in ("drop", "drop-with-reasoning", "one-of"):
            if key not in rule:
                continue
            where = f"{ypath}.{key}"
            names = self._list(rule[key], where, "sampling field names")
            for index, name in enumerate(names):
                if name not in SAMPLING_FIELD_NAMES:
                    raise ConfigError(
                        f"{where}[{index}]",
                        f"expected one of {', '.join(sorted(SAMPLING_FIELD_NAMES))}, got {_show(name)}",
                    )
            self._put(out, npath, key.replace("-", "_"), tuple(str(n) for n in names), where)
        limit = rule.get("output-limit-field")
        if not self._blank(limit):
            if limit not in _OUTPUT_LIMIT_FIELDS:
                raise ConfigError(
                    f"{ypath}.output-limit-field",
                    f"expected one of {', '.join(_OUTPUT_LIMIT_FIELDS)}, got {_show(limit)}",
                )
            self._put(out, npath, "output_limit_field", limit, f"{ypath}.output-limit-field")
        for key in ("reasoning-by-default", "thinking-budget-min", "thinking-budget-max", "thinking-off", "source"):
            if rule.get(key) is not None:
                self._put(out, npath, key.replace("-", "_"), rule[key], f"{ypath}.{key}")
        return out


    def _read_observability(self, top: Mapping[str, object], out: dict[str, object]) -> None:
        """``usage:``, ``metrics:``, ``logging:`` and llm-mux's top-level ``log-format``, ``logging-to-file`` and
        ``request-log`` (the top-level spellings win over the section's)."""
        sizes = {"file-max-bytes", "request-log-max-bytes", "request-log-body-bytes"}
        for section, known, durations in (
            ("usage", _USAGE_KEYS, {"flush-interval"}),
            ("metrics", _METRICS_KEYS, set()),
            ("state", _STATE_KEYS, {"timeout", "lease-ttl", "probe-ttl", "responses-ttl", "refresh-interval"}),
            ("logging", _LOGGING_KEYS, set()),
            ("client-keys", _CLIENT_KEYS_KEYS, {"refresh-interval", "sync-interval"}),
            ("remote-management", _REMOTE_MANAGEMENT_KEYS, set()),
            ("reload", _RELOAD_KEYS, {"poll-interval"}),
        ):
            raw = self._mapping(top.get(section), section)
            self._check_keys(raw, section, known)
            values: dict[str, object] = {}
            for key, value in raw.items():
                where = f"{section}.{key}"
                field = key.replace("-", "_")
                if key in durations:
                    value = self._duration(value, where)
                elif key in sizes:
                    value = self._size(value, where)
                elif section == "logging" and key == "to-file":
                    field = "to_file"
                if section == "usage" and key == "dsn" and value is None:
                    continue
                self._put(values, (section.replace("-", "_"),), field, value, where)
            top_level = (("log-format", "format"), ("logging-to-file", "to_file"), ("request-log", "request_log"))
            for key, field in top_level:
                if section == "logging" and key in top:
                    self._put(values, (section,), field, top[key], key)
            if values:
                self._put(out, (), section.replace("-", "_"), values, section)
        self._read_prices(top.get("prices"), out)

    def _read_prices(self, raw: object, out: dict[str, object]) -> None:
        """``prices: {model-or-pattern: {input, output, cache-read, cache-write}}`` (per million tokens)."""
        entries: list[dict[str, object]] = []
        for index, (model, prices) in enumerate(self._mapping(raw, "prices").items()):
            where = _format_path((str(model),), "prices")
            if not isinstance(model, str) or not model:
                raise ConfigError(where, "expected a model name or pattern")
            mapping = self._mapping(prices, where)
            self._check_keys(mapping, where, _PRICE_KEYS)
            entry: dict[str, object] = {"model": model}
            self.origin[("prices", index, "model")] = where
            for key in _PRICE_KEYS:
                if key in mapping:
                    self._put(entry, ("prices", index), key.replace("-", "_"), mapping[key], f"{where}.{key}")
            entries.append(entry)
        if entries:
            self._put(out, (), "prices", entries, "prices")

    def _read_accounts(self, top: Mapping[str, object], out: dict[str, object]) -> None:
        if not self._blank(top.get("auth-dir")):
            raw = top["auth-dir"]
            if not isinstance(raw, str):
                raise ConfigError("auth-dir", f"expected a directory path, got {_show(raw)}")
            self._put(out, (), "auth_dir", raw, "auth-dir")  # resolved by parse_config, which has the environment
        if "oauth-excluded-models" in top:
            excluded: dict[str, tuple[str, ...]] = {}
            for provider, patterns in self._mapping(top["oauth-excluded-models"], "oauth-excluded-models").items():
                where = _format_path((str(provider),), "oauth-excluded-models")
                items = self._list(patterns, where, "model patterns")
                if not all(isinstance(p, str) and p.strip() for p in items):
                    raise ConfigError(where, "expected a list of model patterns")
                excluded[str(provider)] = tuple(str(p).strip() for p in items)
            self._put(out, (), "oauth_excluded_models", excluded, "oauth-excluded-models")
        if "accounts" in top:
            accounts = self._mapping(top["accounts"], "accounts")
            self._check_keys(accounts, "accounts", _ACCOUNTS_KEYS)
            normalized: dict[str, object] = {}
            for key in ("refresh-lead", "watch-interval"):
                if key in accounts:
                    where = f"accounts.{key}"
                    normalized[key.replace("-", "_")] = self._duration(accounts[key], where)
                    self.origin[("accounts", key.replace("-", "_"))] = where
            if "endpoints" in accounts:
                endpoints: dict[str, dict[str, str]] = {}
                for provider, keys in self._mapping(accounts["endpoints"], "accounts.endpoints").items():
                    where = _format_path((str(provider),), "accounts.endpoints")
                    if provider not in provider_types.ACCOUNT_TYPES:
                        raise ConfigError(where, f"expected one of {', '.join(provider_types.ACCOUNT_TYPES)}")
                    mapping = self._mapping(keys, where)
                    self._check_keys(mapping, where, _ENDPOINT_KEYS)
                    endpoints[str(provider)] = {
                        str(k): str(v) for k, v in mapping.items() if k in _ENDPOINT_KEYS and isinstance(v, str)
                    }
                normalized["endpoints"] = endpoints
            self._put(out, (), "accounts", normalized, "accounts")

    def _tls(self, raw: object) -> dict[str, object]:
        tls = self._mapping(raw, "tls")
        self._check_keys(tls, "tls", _TLS_KEYS)
        out: dict[str, object] = {}
        if "enable" in tls:
            self._put(out, ("tls",), "enable", tls["enable"], "tls.enable")
        for key in ("cert", "key"):
            value = tls.get(key)
            if self._blank(value):
                continue
            if isinstance(value, str) and self.source is not None and not os.path.isabs(os.path.expanduser(value)):
                value = os.path.join(os.path.dirname(self.source), value)
            elif isinstance(value, str):
                value = os.path.expanduser(value)
            self._put(out, ("tls",), key, value, f"tls.{key}")
        return out

    def _read_timeouts(self, top: Mapping[str, object], out: dict[str, object]) -> None:
        timeouts = self._timeouts(top.get("timeouts"), "timeouts", ("timeouts",), partial=False)
        stream_timeout = top.get("stream-timeout")
        # llm-mux's stream-timeout is its time to response headers, our first byte; 0 is its "use the default".
        if stream_timeout is not None and stream_timeout != 0:
            if "first_byte" in timeouts:
                self.warnings.append("stream-timeout: ignored because timeouts.first-byte is set")
            else:
                self._put(
                    timeouts, ("timeouts",), "first_byte", self._duration(stream_timeout, "stream-timeout"),
                    "stream-timeout",
                )  # fmt: skip
        if timeouts:
            self._put(out, (), "timeouts", timeouts, "timeouts")

    def _read_routing(self, top: Mapping[str, object], out: dict[str, object]) -> None:
        routing = self._mapping(top.get("routing"), "routing")
        self._check_keys(routing, "routing", _ROUTING_KEYS, _LLM_MUX_IGNORED_ROUTING)
        if "strategy" in routing:
            self._put(out, (), "routing_strategy", routing["strategy"], "routing.strategy")
        aliases: dict[str, str] = {}
        for ypath, raw in (("routing.aliases", routing.get("aliases")), ("aliases", top.get("aliases"))):
            for model, target in self._string_map(raw, ypath, ("aliases",), coerce_numbers=False).items():
                if model in aliases:
                    raise ConfigError(_format_path((model,), ypath), "also defined in routing.aliases")
                aliases[model] = target
        if aliases:
            out["aliases"] = aliases
        fallbacks: dict[str, tuple[str, ...]] = {}
        for ypath, raw in (("routing.fallbacks", routing.get("fallbacks")), ("fallbacks", top.get("fallbacks"))):
            for model, chain in self._mapping(raw, ypath).items():
                where = _format_path((str(model),), ypath)
                if not isinstance(model, str):
                    raise ConfigError(ypath, f"expected model names as keys, got {_show(model)}")
                if model in fallbacks:
                    raise ConfigError(where, "also defined in routing.fallbacks")
                items = [chain] if isinstance(chain, str) else self._list(chain, where, "model names")
                for index, item in enumerate(items):
                    if not isinstance(item, str) or not item.strip():
                        raise ConfigError(f"{where}[{index}]", f"expected a model name, got {_show(item)}")
                fallbacks[model] = tuple(str(item).strip() for item in items)
                self.origin[("fallbacks", model)] = where
        if fallbacks:
            out["fallbacks"] = fallbacks

    def _providers(self, raw: object) -> list[dict[str, object]]:
        items = self._list(raw, "providers", "providers")
        entries = [self._mapping(item, f"providers[{index}]") for index, item in enumerate(items)]
        # Explicit names first, so that a generated `openai-2` never takes a name written further down.
        taken = {name for entry in entries if isinstance(name := entry.get("name"), str) and name}
        return [self._provider(entry, index, taken) for index, entry in enumerate(entries)]

    def _provider(self, entry: dict[str, object], index: int, taken: set[str]) -> dict[str, object]:
        ypath = f"providers[{index}]"
        npath: KeyPath = ("providers", index)
        self.origin[npath] = ypath
        self._check_keys(entry, ypath, _PROVIDER_KEYS)
        raw_type = entry.get("type")
        if raw_type is None:
            raise ConfigError(f"{ypath}.type", f"required: one of {_choices(ProviderType)}")
        try:
            provider_type = ProviderType(raw_type) if isinstance(raw_type, str) else None
        except ValueError:
            provider_type = None
        if provider_type is None:
            raise ConfigError(f"{ypath}.type", f"expected one of {_choices(ProviderType)}, got {_show(raw_type)}")
        out: dict[str, object] = {}
        self._put(out, npath, "type", provider_type.value, f"{ypath}.type")

        if not self._blank(entry.get("name")):
            self._put(out, npath, "name", entry["name"], f"{ypath}.name")
        else:
            name = _unique_name(provider_type.value, taken)
            taken.add(name)
            self._put(out, npath, "name", name, ypath)
        if not self._blank(entry.get("base-url")):
            self._put(out, npath, "base_url", entry["base-url"], f"{ypath}.base-url")
        if not self._blank(entry.get("proxy-url")):
            self._put(out, npath, "proxy_url", entry["proxy-url"], f"{ypath}.proxy-url")

        credentials = self._credentials(entry, ypath, (*npath, "credentials"))
        out["credentials"] = credentials
        self.origin[(*npath, "credentials")] = f"{ypath}.api-keys"
        if "headers" in entry:
            headers = self._string_map(entry["headers"], f"{ypath}.headers", (*npath, "headers"), coerce_numbers=True)
            self._put(out, npath, "headers", headers, f"{ypath}.headers")
        if "models" in entry:
            models = [
                self._model(item, f"{ypath}.models[{i}]", (*npath, "models", i))
                for i, item in enumerate(self._list(entry["models"], f"{ypath}.models", "models"))
            ]
            self._put(out, npath, "models", models, f"{ypath}.models")
        if "excluded-models" in entry:
            where = f"{ypath}.excluded-models"
            patterns = self._list(entry["excluded-models"], where, "model name patterns")
            for i, pattern in enumerate(patterns):
                if not isinstance(pattern, str) or not pattern.strip():
                    raise ConfigError(f"{where}[{i}]", f"expected a model name pattern, got {_show(pattern)}")
            self._put(out, npath, "excluded_models", tuple(str(p).strip() for p in patterns), where)
        for key in ("http2", "max-connections", "max-keepalive", "enabled"):
            if key in entry:
                self._put(out, npath, key.replace("-", "_"), entry[key], f"{ypath}.{key}")
        if "timeouts" in entry:
            timeouts = self._timeouts(entry["timeouts"], f"{ypath}.timeouts", (*npath, "timeouts"), partial=True)
            if timeouts:  # an override that sets nothing is no override
                self._put(out, npath, "timeouts", timeouts, f"{ypath}.timeouts")

        base_url = entry.get("base-url")
        base = base_url if isinstance(base_url, str) and base_url else DEFAULT_BASE_URLS.get(provider_type, "")
        if entry.get("enabled", True) is not False and not credentials and _requires_key(provider_type, base):
            self.warnings.append(
                f"{ypath}: type {provider_type.value} needs an api-key and has none; requests will not be routed to it"
            )
        return out

    def _credentials(self, entry: Mapping[str, object], ypath: str, npath: KeyPath) -> list[dict[str, object]]:
        """``api-key`` (one string) and ``api-keys`` (strings or ``{key, proxy-url}``) -> credential dicts, in that
        order, duplicates dropped. Key values never appear in messages."""
        found: list[tuple[str, object, str]] = []  # key, proxy-url, YAML path
        single = entry.get("api-key")
        if not self._blank(single):
            if not isinstance(single, str) or not single.strip():
                raise ConfigError(f"{ypath}.api-key", "expected a non-empty string")
            found.append((single.strip(), None, f"{ypath}.api-key"))
        for index, item in enumerate(self._list(entry.get("api-keys"), f"{ypath}.api-keys", "keys")):
            where = f"{ypath}.api-keys[{index}]"
            proxy: object = None
            key: object = item
            key_path = where
            if isinstance(item, dict):
                self._check_keys(item, where, _API_KEY_ENTRY_KEYS)
                key = item.get("key", item.get("api-key"))  # llm-mux's older api-key-entries spelled it `api-key`
                key_path = f"{where}.key"
                if key is None:
                    raise ConfigError(key_path, "required")
                if not self._blank(item.get("proxy-url")):
                    proxy = item["proxy-url"]
            if not isinstance(key, str):
                raise ConfigError(key_path, "expected a non-empty string")
            if not key.strip():
                self.warnings.append(f"{key_path}: empty key; ignored")
                continue
            found.append((key.strip(), proxy, where))
        out: list[dict[str, object]] = []
        seen: set[str] = set()
        for key, proxy, where in found:
            if key in seen:
                self.warnings.append(f"{where}: duplicate key {mask_secret(key)}; ignored")
                continue
            seen.add(key)
            credential: dict[str, object] = {"key": key}
            self.origin[(*npath, len(out))] = where
            if proxy is not None:
                self._put(credential, (*npath, len(out)), "proxy_url", proxy, f"{where}.proxy-url")
            out.append(credential)
        return out

    def _model(self, raw: object, ypath: str, npath: KeyPath) -> dict[str, object]:
        self.origin[npath] = ypath
        if isinstance(raw, str):
            self.origin[(*npath, "name")] = ypath
            return {"name": raw.strip()}
        if not isinstance(raw, dict):
            raise ConfigError(ypath, f"expected a model name or a mapping with name and alias, got {_show(raw)}")
        self._check_keys(raw, ypath, _MODEL_KEYS)
        if "name" not in raw:
            raise ConfigError(f"{ypath}.name", "required")
        out: dict[str, object] = {}
        name = raw["name"]
        self._put(out, npath, "name", name.strip() if isinstance(name, str) else name, f"{ypath}.name")
        if not self._blank(raw.get("alias")):
            alias = raw["alias"]
            self._put(out, npath, "alias", alias.strip() if isinstance(alias, str) else alias, f"{ypath}.alias")
        if raw.get("prefill") is not None:
            self._put(out, npath, "prefill", raw["prefill"], f"{ypath}.prefill")
        if "timeouts" in raw:
            timeouts = self._timeouts(raw["timeouts"], f"{ypath}.timeouts", (*npath, "timeouts"), partial=True)
            if timeouts:
                self._put(out, npath, "timeouts", timeouts, f"{ypath}.timeouts")
        return out

    # -- CLIProxyAPI / older llm-mux credential lists
    def _legacy(self, top: Mapping[str, object], first: int, taken: set[str]) -> list[dict[str, object]]:
        """The legacy lists, in file order, as provider dicts numbered from ``first``; each mapping is recorded in
        ``legacy_mappings``. Entries those projects skip (no key; no base-url where one is needed) are skipped with a
        warning; their settings muxtrio has no use for are warnings too."""
        groups: list[_LegacyGroup] = []
        for key in top:
            if key not in _LEGACY_LISTS:
                continue
            items = self._list(top[key], str(key), "entries")
            if key == "openai-compatibility":
                groups.extend(self._legacy_compat(items))
            elif key == "generative-language-api-key":
                groups.extend(self._legacy_plain(items))
            else:
                groups.extend(self._legacy_keyed(str(key), items))
        out: list[dict[str, object]] = []
        for group in groups:
            name = _unique_name(group.name, taken)
            taken.add(name)
            provider, keys = self._legacy_provider(group, name, ("providers", first + len(out)))
            sources = ", ".join(group.sources)
            self.legacy_mappings.append(
                f"{sources} -> provider {name!r} (type {group.type.value}, {keys} key{'' if keys == 1 else 's'})"
            )
            out.append(provider)
        return out

    def _legacy_entry(self, item: object, where: str, known: tuple[str, ...]) -> dict[str, object]:
        if not isinstance(item, dict):
            raise ConfigError(where, f"expected a mapping, got {_show(item)}")
        for field in item:
            if field == "prefix":
                self.warnings.append(
                    f"{where}.prefix: model prefixes are not supported; its models are served under their own names"
                )
            elif field not in known:
                self.warnings.append(
                    f"{_format_path((str(field),), where)}: CLIProxyAPI setting not used by muxtrio; ignored"
                )
        return item

    def _legacy_key(self, raw: object, where: str) -> str | None:
        if self._blank(raw):
            return None
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(where, "expected a non-empty string")
        return raw.strip()

    def _legacy_proxy(self, raw: object, where: str) -> object:
        if self._blank(raw):
            return None
        if raw == "direct":  # CLIProxyAPI: bypass every proxy for this key
            self.warnings.append(f"{where}: 'direct' is not supported; the provider's or the global proxy applies")
            return None
        return raw

    def _legacy_keyed(self, key: str, items: list[object]) -> list[_LegacyGroup]:
        provider_type, base_name = _LEGACY_KEYED[key]
        groups: dict[str, _LegacyGroup] = {}
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            entry = self._legacy_entry(item, where, _LEGACY_ENTRY_KEYS)
            api_key = self._legacy_key(entry.get("api-key"), f"{where}.api-key")
            if api_key is None:
                self.warnings.append(f"{where}: no api-key; entry ignored")
                continue
            base_url = entry.get("base-url")
            if self._blank(base_url) and provider_type is ProviderType.OPENAI_RESPONSES:
                self.warnings.append(
                    f"{where}: no base-url; entry ignored (without one CLIProxyAPI targets the ChatGPT Codex backend, "
                    "which needs a ChatGPT login, not an API key; set base-url, e.g. https://api.openai.com/v1)"
                )
                continue
            if self._blank(base_url) and provider_type is ProviderType.VERTEX_COMPAT:
                base_url = VERTEX_EXPRESS_URL
            shape = repr((base_url, entry.get("headers"), entry.get("models"), entry.get("excluded-models")))
            group = groups.get(shape)
            if group is None:
                group = groups[shape] = _LegacyGroup(provider_type, base_name, entry, where, base_url)
            group.sources.append(where)
            group.keys.append((api_key, self._legacy_proxy(entry.get("proxy-url"), f"{where}.proxy-url"), where))
        return list(groups.values())

    def _legacy_plain(self, items: list[object]) -> list[_LegacyGroup]:
        group = _LegacyGroup(ProviderType.GEMINI, "gemini", {}, "generative-language-api-key", None)
        for index, item in enumerate(items):
            where = f"generative-language-api-key[{index}]"
            api_key = self._legacy_key(item, where)
            if api_key is None:
                self.warnings.append(f"{where}: empty key; ignored")
                continue
            group.sources.append(where)
            group.keys.append((api_key, None, where))
        return [group] if group.keys else []

    def _legacy_compat(self, items: list[object]) -> list[_LegacyGroup]:
        groups: list[_LegacyGroup] = []
        for index, item in enumerate(items):
            where = f"openai-compatibility[{index}]"
            entry = self._legacy_entry(item, where, _LEGACY_COMPAT_KEYS)
            if self._blank(entry.get("base-url")):
                self.warnings.append(f"{where}: no base-url; entry ignored")
                continue
            name = entry.get("name")
            if not self._blank(name) and not isinstance(name, str):
                raise ConfigError(f"{where}.name", f"expected a string, got {_show(name)}")
            group = _LegacyGroup(
                ProviderType.OPENAI, str(name or "openai-compatibility"), entry, where, entry["base-url"]
            )
            group.sources.append(where)
            group.enabled = entry.get("disabled", False) is not True
            for k, raw in enumerate(self._list(entry.get("api-key-entries"), f"{where}.api-key-entries", "keys")):
                key_where = f"{where}.api-key-entries[{k}]"
                key_entry = self._legacy_entry(raw, key_where, _LEGACY_KEY_ENTRY_KEYS)
                api_key = self._legacy_key(key_entry.get("api-key"), f"{key_where}.api-key")
                if api_key is None:
                    self.warnings.append(f"{key_where}: no api-key; ignored")
                    continue
                proxy = self._legacy_proxy(key_entry.get("proxy-url"), f"{key_where}.proxy-url")
                group.keys.append((api_key, proxy, key_where))
            for k, raw in enumerate(self._list(entry.get("api-keys"), f"{where}.api-keys", "keys")):
                api_key = self._legacy_key(raw, f"{where}.api-keys[{k}]")
                if api_key is not None:
                    group.keys.append((api_key, None, f"{where}.api-keys[{k}]"))
            groups.append(group)
        return groups

    def _legacy_provider(self, group: _LegacyGroup, name: str, npath: KeyPath) -> tuple[dict[str, object], int]:
        """The provider dict of one group, and how many distinct keys it got."""
        entry, where = group.entry, group.where
        self.origin[npath] = where
        out: dict[str, object] = {}
        self._put(out, npath, "type", group.type.value, where)
        self._put(out, npath, "name", name, where)
        if group.base_url is not None:
            self._put(out, npath, "base_url", group.base_url, f"{where}.base-url")
        if not group.enabled:
            self._put(out, npath, "enabled", False, f"{where}.disabled")
        credentials: list[dict[str, object]] = []
        seen: set[str] = set()
        for key, proxy, key_where in group.keys:
            if key in seen:
                self.warnings.append(f"{key_where}: duplicate key {mask_secret(key)}; ignored")
                continue
            seen.add(key)
            cpath = (*npath, "credentials", len(credentials))
            self.origin[cpath] = key_where
            credential: dict[str, object] = {"key": key}
            if proxy is not None:
                self._put(credential, cpath, "proxy_url", proxy, f"{key_where}.proxy-url")
            credentials.append(credential)
        self._put(out, npath, "credentials", credentials, where)
        if "headers" in entry:
            hpath = f"{where}.headers"
            headers = self._string_map(entry["headers"], hpath, (*npath, "headers"), coerce_numbers=True)
            for header, value in list(headers.items()):
                if value.startswith("$"):  # CLIProxyAPI copies the client's header of that name; muxtrio does not
                    self.warnings.append(
                        f"{hpath}.{header}: copying a client header ({value}) is not supported; ignored"
                    )
                    del headers[header]
            self._put(out, npath, "headers", headers, hpath)
        if "models" in entry:
            self._put(
                out, npath, "models", self._legacy_models(entry["models"], f"{where}.models", npath), f"{where}.models"
            )
        if "excluded-models" in entry:
            patterns_at = f"{where}.excluded-models"
            patterns = self._list(entry["excluded-models"], patterns_at, "model name patterns")
            for i, pattern in enumerate(patterns):
                if not isinstance(pattern, str) or not pattern.strip():
                    raise ConfigError(f"{patterns_at}[{i}]", f"expected a model name pattern, got {_show(pattern)}")
            self._put(out, npath, "excluded_models", tuple(str(p).strip() for p in patterns), patterns_at)
        return out, len(credentials)

    def _legacy_models(self, raw: object, ypath: str, npath: KeyPath) -> list[dict[str, object]]:
        models: list[dict[str, object]] = []
        served: dict[str, str] = {}
        for index, item in enumerate(self._list(raw, ypath, "models")):
            where = f"{ypath}[{index}]"
            entry = self._legacy_entry(item, where, _LEGACY_MODEL_KEYS)
            model = self._model(
                {k: entry[k] for k in _LEGACY_MODEL_KEYS if k in entry}, where, (*npath, "models", len(models))
            )
            client_name = str(model.get("alias", model["name"]))
            if client_name in served:
                # CLIProxyAPI pools upstream models under one repeated alias; muxtrio pools providers, not names.
                self.warnings.append(
                    f"{where}: alias {client_name!r} already maps to {served[client_name]!r} ({ypath}); ignored"
                )
                continue
            served[client_name] = str(model["name"])
            models.append(model)
        return models

    # -- structuring
    def yaml_path(self, npath: KeyPath) -> str:
        """The YAML key path of a normalised path: the longest recorded prefix, then the rest in kebab-case."""
        for cut in range(len(npath), 0, -1):
            base = self.origin.get(npath[:cut])
            if base is not None:
                rest = npath[cut:]
                return _format_path((s.replace("_", "-") if isinstance(s, str) else s for s in rest), base)
        return _format_path(s.replace("_", "-") if isinstance(s, str) else s for s in npath)

    def structure(self, normalized: Mapping[str, object]) -> Config:
        try:
            return _CONVERTER.structure(normalized, Config)
        except (ClassValidationError, IterableValidationError) as exc:
            npath, message = _first_error(exc, ())
        except _InvalidField as exc:  # raised by Config itself, outside any cattrs attribute
            npath, message = exc.segments, exc.detail
        raise ConfigError(self.yaml_path(npath), message)


# ------------------------------------------------------------------------------------------------------- environment
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _env_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected one of 1, true, yes, 0, false, no, got {value!r}")


def _apply_env(out: dict[str, object], origin: dict[KeyPath, str], env: Mapping[str, str]) -> None:
    """``MUXTRIO_*`` variables over the file's values. An empty variable counts as unset."""
    if value := env.get("MUXTRIO_HOST", "").strip():
        out["host"] = value
        origin[("host",)] = "MUXTRIO_HOST"
    if value := env.get("MUXTRIO_PORT", "").strip():
        if not value.isdigit():
            raise ConfigError("MUXTRIO_PORT", f"expected an integer between 0 and 65535, got {value!r}")
        out["port"] = int(value)
        origin[("port",)] = "MUXTRIO_PORT"
    if value := env.get("MUXTRIO_API_KEYS", "").strip():
        out["api_keys"] = tuple(key.strip() for key in value.split(",") if key.strip())
        origin[("api_keys",)] = "MUXTRIO_API_KEYS"
    for name in ("MUXTRIO_USAGE_DSN", "LLM_MUX_USAGE_DSN"):
        if name in env:  # an empty value is meaningful here: persistence off
            usage = dict(out.get("usage") or {})  # type: ignore[call-overload]
            usage["dsn"] = env[name].strip()
            out["usage"] = usage
            origin[("usage", "dsn")] = name
            break
    if value := env.get("MUXTRIO_STATE_URL", "").strip():
        state = dict(out.get("state") or {})  # type: ignore[call-overload]
        state["url"] = value
        out["state"] = state
        origin[("state", "url")] = "MUXTRIO_STATE_URL"
    if value := env.get("MUXTRIO_LOG_FORMAT", "").strip():
        logging_section = dict(out.get("logging") or {})  # type: ignore[call-overload]
        logging_section["format"] = value
        out["logging"] = logging_section
        origin[("logging", "format")] = "MUXTRIO_LOG_FORMAT"
    for name, field in (("MUXTRIO_DISABLE_AUTH", "disable_auth"), ("MUXTRIO_DEBUG", "debug")):
        if value := env.get(name, "").strip():
            out[field] = _env_bool(name, value)
            origin[(field,)] = name
    if env.get("MUXTRIO_AUTH_DIR", "").strip():
        out["auth_dir"] = default_auth_dir(env)
        origin[("auth_dir",)] = "MUXTRIO_AUTH_DIR"
    elif "auth_dir" not in out and os.path.isdir(default_auth_dir(env)):
        # Logged-in accounts are served without a config entry once `muxtrio login` created the directory.
        out["auth_dir"] = default_auth_dir(env)


# ------------------------------------------------------------------------------------------------------------ loading
class _YAMLLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently) and leaves dates as strings
    (``anthropic-version: 2023-06-01`` is a header value, not a date)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool):
                if key in seen:
                    raise ConfigError("", f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen.add(key)
        return super().construct_mapping(node, deep)


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {path!r} is not UTF-8 text") from None
    return _parse_yaml(text, path)


def _parse_yaml(text: str, path: str) -> object:
    try:
        return yaml.load(text, Loader=_YAMLLoader)
    except ConfigError as exc:
        raise ConfigError("", f"{path}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError("", f"{path}:{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path}: invalid YAML: {exc}") from None


def parse_config(
    data: Mapping[str, object], *, env: Mapping[str, str] | None = None, source: str | None = None
) -> Config:
    """A :class:`Config` from an already-loaded YAML mapping (llm-mux keys), with ``MUXTRIO_*`` overrides from ``env``
    (``os.environ`` when ``None``; pass ``{}`` for none). ``source`` is recorded, and relative TLS paths resolve
    against its directory. Raises :class:`ConfigError` naming the key path of the first invalid value."""
    env = os.environ if env is None else env
    reader = _Reader(source)
    normalized = reader.read(data)
    if isinstance(normalized.get("auth_dir"), str):
        normalized["auth_dir"] = _resolve_dir(str(normalized["auth_dir"]), env, source)
    _apply_env(normalized, reader.origin, env)
    normalized["source"] = source
    normalized["warnings"] = tuple(reader.warnings)
    normalized["legacy_mappings"] = tuple(reader.legacy_mappings)
    config = reader.structure(normalized)
    if config.tls.enable:
        for name in ("cert", "key"):
            path = getattr(config.tls, name)
            if not os.path.isfile(path):
                raise ConfigError(f"tls.{name}", f"file not found: {path!r}")
    return config


def _resolve_dir(raw: str, env: Mapping[str, str], source: str | None) -> str:
    """A directory setting as llm-mux reads it: ``$VAR``/``${VAR}`` from the environment (``XDG_CONFIG_HOME``
    defaults to ``~/.config``), ``~``, and relative to the config file's directory."""
    home = env.get("HOME") or str(Path.home())
    defaults = {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config")}

    def variable(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        return env.get(name) or defaults.get(name, "")

    path = re.sub(r"\$\{(\w+)\}|\$(\w+)", variable, raw)
    if path.startswith("~"):
        path = home + path[1:]
    if not os.path.isabs(path) and source is not None:
        path = os.path.join(os.path.dirname(source), path)
    return os.path.abspath(path)


def _lookup(env: Mapping[str, str]) -> str | None:
    explicit = env.get("MUXTRIO_CONFIG", "").strip()
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError("MUXTRIO_CONFIG", f"no such file: {explicit!r}")
        return explicit
    xdg = env.get("XDG_CONFIG_HOME", "").strip()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    candidates = [Path("muxtrio.yaml"), (Path(xdg) if xdg else home / ".config") / "muxtrio" / "config.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def load_config(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file at ``path``; when ``path`` is ``None`` look for ``$MUXTRIO_CONFIG``, then
    ``./muxtrio.yaml``, then ``~/.config/muxtrio/config.yaml`` (``$XDG_CONFIG_HOME`` when set), and fall back to
    :func:`default_config` when none exists. ``MUXTRIO_*`` variables in ``env`` (default ``os.environ``) override the
    file."""
    env = os.environ if env is None else env
    found = os.fspath(path) if path is not None else _lookup(env)
    if found is None:
        return default_config(env)
    return _config_from_data(_read_yaml(found), found, env)


def load_config_text(text: str, path: str, *, env: Mapping[str, str] | None = None) -> Config:
    """The :class:`Config` that ``text`` would give as the content of the file at ``path`` (hot reload and the
    management API validate a new file this way before it is written or applied)."""
    return _config_from_data(_parse_yaml(text, path), path, os.environ if env is None else env)


def _config_from_data(data: object, path: str, env: Mapping[str, str]) -> Config:
    if data is None:
        data = {}  # an empty file is an empty mapping
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: expected a YAML mapping at the top level, got {_show(data)}")
    return parse_config(data, env=env, source=os.path.abspath(path))


def detect_local_ollama(host: str = "127.0.0.1", port: int = 11434, timeout: float = 0.3) -> bool:
    """Whether an Ollama server answers ``GET /api/version`` on ``host:port`` within ``timeout`` seconds (in all).

    A plain blocking socket: it runs once, before any event loop, when there is no config file."""
    deadline = time.monotonic() + timeout
    received = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET /api/version HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            while len(received) < 65536:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return False
    status_line = received.split(b"\r\n", 1)[0].split()
    return len(status_line) >= 2 and status_line[1] == b"200" and b'"version"' in received


def default_config(env: Mapping[str, str] | None = None, *, detect_ollama: bool = True) -> Config:
    """The configuration used when there is no config file: 127.0.0.1:8317, a provider for each of
    ``OPENAI_API_KEY`` (``OPENAI_BASE_URL``), ``ANTHROPIC_API_KEY`` (``ANTHROPIC_BASE_URL``),
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY`` that is set, a local Ollama when :func:`detect_local_ollama` finds one
    (skipped with ``detect_ollama=False``), and the built-in echo model. ``MUXTRIO_*`` overrides apply."""
    env = os.environ if env is None else env
    providers: list[dict[str, object]] = []
    for provider_type, key_vars, url_var in (
        ("openai", ("OPENAI_API_KEY",), "OPENAI_BASE_URL"),
        ("anthropic", ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL"),
        ("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), None),
    ):
        key = next((env[var].strip() for var in key_vars if env.get(var, "").strip()), None)
        if key is None:
            continue
        entry: dict[str, object] = {"type": provider_type, "api-key": key}
        base_url = env.get(url_var, "").strip() if url_var else ""
        if base_url:
            if not _is_http_url(base_url):
                raise ConfigError(str(url_var), f"expected an http(s) URL, got {_show(redact_url(base_url))}")
            entry["base-url"] = base_url
        providers.append(entry)
    if detect_ollama and detect_local_ollama():
        providers.append({"type": "ollama"})
    return parse_config({"providers": providers}, env=env)

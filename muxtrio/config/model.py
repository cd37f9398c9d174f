"""The typed configuration: frozen attrs classes, their validators, converters and masked reprs.

Invariants: every class is ``@attrs.frozen`` with a default for every field; validation runs in the classes, so a
config built in code is checked exactly like one read from YAML; secrets never appear in a repr.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeVar
from urllib.parse import urlsplit

import attrs

from muxtrio import provider_types
from muxtrio.codecs.base import HostedToolPolicy
from muxtrio.errors import ConfigError, mask_secret
from muxtrio.provider_types import PROVIDER_TYPES
from muxtrio.wildcard import wildcard_match

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


COMPRESSION_CODINGS: Final = ("zstd", "gzip", "br")
"""The response content codings muxtrio can produce, in its default order of preference (``compression.algorithms``
picks and orders them): zstd costs a quarter of the CPU of the others for the same size; gzip and brotli at level 4
tie on whole answers and gzip costs half of brotli's CPU on streams flushed per event (``perf/README.md``)."""


def _codings(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (
        isinstance(value, tuple)
        and all(item in COMPRESSION_CODINGS for item in value)
        and len(set(value)) == len(value)
    ):
        expected = f"a list of distinct codings among {', '.join(COMPRESSION_CODINGS)}"
        raise _InvalidField((attribute.name,), f"expected {expected}, got {_show(value)}")


@attrs.frozen
class CompressionConfig:
    """Response compression (``docs/http.md``): ``responses`` compresses whole answers of at least ``min_size``
    bytes in a coding the client accepts; ``streams`` also compresses streamed answers (SSE, NDJSON), flushed at each
    write. ``algorithms``: the codings offered, in the server's order of preference for codings the client weighs
    equally; ``*_level``: each coding's level (gzip 1-9, zstd 1-22, brotli quality 0-11). Defaults measured in
    ``perf/compression.py``."""

    responses: bool = attrs.field(default=True, validator=_bool)
    streams: bool = attrs.field(default=False, validator=_bool)
    min_size: int = attrs.field(default=1024, validator=_int_at_least(0))
    algorithms: tuple[str, ...] = attrs.field(default=COMPRESSION_CODINGS, validator=_codings)
    gzip_level: int = attrs.field(default=4, validator=_int_at_least(1, 9))
    zstd_level: int = attrs.field(default=3, validator=_int_at_least(1, 22))
    br_level: int = attrs.field(default=4, validator=_int_at_least(0, 11))


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
    recover_max_chars: int = attrs.field(default=64 * 1024, validator=_int_at_least(0))
    pass_through: bool = attrs.field(default=True, validator=_bool)  # same-format streams forward provider bytes
    workers: int = attrs.field(default=1, validator=_int_at_least(1))
    echo_model: bool = attrs.field(default=True, validator=_bool)
    usage: UsageConfig = attrs.field(factory=UsageConfig)
    state: StateConfig = attrs.field(factory=StateConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    compression: CompressionConfig = attrs.field(factory=CompressionConfig)
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

"""The llm-mux reader: one pass over the raw YAML that warns about unknown keys, maps llm-mux's and CLIProxyAPI's
shapes (legacy credential lists included) onto attrs field names, remembers each value's YAML key path, and
structures the result with cattrs' strict hooks, so every error names the exact key path.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from muxtrio import provider_types
from muxtrio.codecs.base import HostedToolPolicy
from muxtrio.config.model import (
    DEFAULT_BASE_URLS,
    PROTOCOL_NAMES,
    SAMPLING_FIELD_NAMES,
    Config,
    GiB,
    KeyPath,
    KiB,
    LogFormat,
    MiB,
    ProviderType,
    ResponseModel,
    RoutingStrategy,
    Segment,
    _choices,
    _format_path,
    _InvalidField,
    _is_number,
    _requires_key,
    _show,
    _unique_name,
)
from muxtrio.errors import ConfigError, mask_secret


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


_TOP_KEYS: Final = (
    "host", "port", "api-keys", "disable-auth", "debug", "request-retry", "max-retry-interval", "stream-timeout",
    "proxy-url", "tls", "providers", "fallbacks", "aliases", "routing", "timeouts", "stream-buffer-bytes",
    "keepalive-interval", "shutdown-grace", "max-request-size", "max-event-size", "max-response-size",
    "circuit-breaker", "workers", "echo-model", "usage", "metrics", "logging", "log-format", "logging-to-file",
    "request-log", "hosted-tools", "response-model", "thinking-cache", "payload", "model-rules",
    "refused-credential-cooldowns", "regenerate-on-cut", "recover-max-chars", "http2", "keep-alive-timeout",
    "pass-through",
    "auth-dir", "oauth-excluded-models", "accounts", "client-keys", "prices", "remote-management", "reload", "state",
    "compression",
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
_COMPRESSION_KEYS: Final = ("responses", "streams", "min-size", "algorithms", "gzip-level", "zstd-level", "br-level")
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
            "response-model", "regenerate-on-cut", "recover-max-chars", "http2", "pass-through",
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
        sizes = {"file-max-bytes", "request-log-max-bytes", "request-log-body-bytes", "min-size"}
        for section, known, durations in (
            ("usage", _USAGE_KEYS, {"flush-interval"}),
            ("metrics", _METRICS_KEYS, set()),
            ("compression", _COMPRESSION_KEYS, set()),
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

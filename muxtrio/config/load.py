"""Loading: the config file lookup order, YAML parsing (strict: no implicit timestamps, duplicate keys refused),
:func:`parse_config` for mappings, :func:`load_config` for files, and the embedded default configuration.

Invariant: loading reads files and the environment only; it never touches the network (the CLI probes for a local
Ollama and passes the answer to :func:`default_config`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from muxtrio.config.env import _apply_env
from muxtrio.config.model import Config, _is_http_url, _show, redact_url
from muxtrio.config.reader import _Reader
from muxtrio.errors import ConfigError


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


def default_config(env: Mapping[str, str] | None = None, *, local_ollama: bool = False) -> Config:
    """The configuration used when there is no config file: 127.0.0.1:8317, a provider for each of
    ``OPENAI_API_KEY`` (``OPENAI_BASE_URL``), ``ANTHROPIC_API_KEY`` (``ANTHROPIC_BASE_URL``),
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY`` that is set, a local Ollama when ``local_ollama`` (the CLI probes
    for one: :func:`muxtrio.cli.detect_local_ollama`), and the built-in echo model. ``MUXTRIO_*`` overrides apply."""
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
    if local_ollama:
        providers.append({"type": "ollama"})
    return parse_config({"providers": providers}, env=env)

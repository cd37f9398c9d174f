"""Environment overrides: ``MUXTRIO_*`` (and llm-mux's ``LLM_MUX_*`` where muxtrio reads them) over the file's values.

Invariant: an empty variable counts as unset, except where emptiness is meaningful (``MUXTRIO_USAGE_DSN=""``: off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from muxtrio.accounts.files import default_auth_dir
from muxtrio.config.model import KeyPath
from muxtrio.errors import ConfigError

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
    for name, field in (("MUXTRIO_COMPRESS_RESPONSES", "responses"), ("MUXTRIO_COMPRESS_STREAMS", "streams")):
        if value := env.get(name, "").strip():
            compression = dict(out.get("compression") or {})  # type: ignore[call-overload]
            compression[field] = _env_bool(name, value)
            out["compression"] = compression
            origin[("compression", field)] = name
    if env.get("MUXTRIO_AUTH_DIR", "").strip():
        out["auth_dir"] = default_auth_dir(env)
        origin[("auth_dir",)] = "MUXTRIO_AUTH_DIR"
    elif "auth_dir" not in out and os.path.isdir(default_auth_dir(env)):
        # Logged-in accounts are served without a config entry once `muxtrio login` created the directory.
        out["auth_dir"] = default_auth_dir(env)

"""Token files: one JSON file per login in ``auth-dir``, as llm-mux and CLIProxyAPI write them, read as they are and
written back with the same fields (unknown fields kept).

Fields read (tests/fixtures/accounts/*.source.txt): ``type`` (``claude``/``anthropic``, ``codex``, ``gemini``/
``gemini-cli``, ``github-copilot``/``copilot``, ``qwen``); flat ``access_token``, ``refresh_token``, ``id_token``,
``expired`` (RFC 3339), ``email``, ``account_id`` (Codex; else read from the ``id_token``), ``resource_url`` (Qwen),
``username`` (Copilot); Gemini's nested ``token`` object (``access_token``, ``refresh_token``, ``expiry``) and
``project_id`` (several projects comma-separated: one account each); ``disabled: true`` skips the file.

Invariants: a file that cannot be read or has an unknown type is skipped with a reason, never fatal; writes are
atomic (temporary file in the same directory, fsync, rename) with mode 0600, the directory is created 0700.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

TYPE_ALIASES: Final = {
    "claude": "claude",
    "anthropic": "claude",
    "codex": "codex",
    "gemini": "gemini-cli",
    "gemini-cli": "gemini-cli",
    "github-copilot": "github-copilot",
    "copilot": "github-copilot",
    "qwen": "qwen",
}
"""``type`` values found in token files -> muxtrio provider type."""

FILE_TYPE: Final = {"claude": "claude", "codex": "codex", "gemini-cli": "gemini", "github-copilot": "github-copilot",
                    "qwen": "qwen"}  # fmt: skip
"""The ``type`` muxtrio writes, the one llm-mux and CLIProxyAPI write for the same provider."""

MAX_FILE_BYTES: Final = 1 << 20


class TokenFileError(Exception):
    """A token file that cannot be used (the message names the file, never a token)."""


@dataclass(frozen=True, slots=True)
class TokenFile:
    """One token file as read. ``data`` is the whole JSON object (written back with updates)."""

    path: str
    provider: str
    data: dict[str, Any]

    @property
    def _token(self) -> dict[str, Any]:
        nested = self.data.get("token")
        return nested if isinstance(nested, dict) else self.data

    @property
    def access_token(self) -> str:
        return _str(self._token.get("access_token"))

    @property
    def refresh_token(self) -> str:
        return _str(self._token.get("refresh_token")) or _str(self.data.get("refresh_token"))

    @property
    def id_token(self) -> str:
        return _str(self.data.get("id_token"))

    @property
    def expires_at(self) -> float | None:
        """Unix seconds when the access token expires (None: unknown or never)."""
        token = self._token
        for value in (token.get("expiry"), self.data.get("expired"), token.get("expires_at"), token.get("expiry_date")):
            when = parse_time(value)
            if when is not None:
                return when
        return None

    @property
    def email(self) -> str:
        return _str(self.data.get("email")) or _str(self.data.get("username"))

    @property
    def account_id(self) -> str:
        return _str(self.data.get("account_id")) or chatgpt_account_id(self.id_token)

    @property
    def plan(self) -> str:
        """The subscription plan where the file tells it (ChatGPT's ``chatgpt_plan_type`` in the id_token)."""
        auth = jwt_claims(self.id_token).get("https://api.openai.com/auth")
        return _str(auth.get("chatgpt_plan_type")) if isinstance(auth, dict) else ""

    @property
    def projects(self) -> tuple[str, ...]:
        raw = _str(self.data.get("project_id"))
        return tuple(p.strip() for p in raw.split(",") if p.strip())

    @property
    def resource_url(self) -> str:
        return _str(self.data.get("resource_url"))

    @property
    def disabled(self) -> bool:
        return self.data.get("disabled") is True

    def with_tokens(self, access_token: str, expires_at: float | None, refresh_token: str | None = None,
                    id_token: str | None = None, now: float | None = None) -> TokenFile:  # fmt: skip
        """This file with a refreshed access token (and rotated refresh/id tokens), in the file's own layout."""
        data = json.loads(json.dumps(self.data))
        stamp = format_time(now if now is not None else datetime.now(UTC).timestamp())
        if isinstance(data.get("token"), dict):
            token = data["token"]
            token["access_token"] = access_token
            if expires_at is not None:
                token["expiry"] = format_time(expires_at)
                token.pop("expires_at", None)
                token.pop("expiry_date", None)
            if refresh_token:
                token["refresh_token"] = refresh_token
        else:
            data["access_token"] = access_token
            if expires_at is not None:
                data["expired"] = format_time(expires_at)
            if refresh_token:
                data["refresh_token"] = refresh_token
            if id_token:
                data["id_token"] = id_token
        data["last_refresh"] = stamp
        return TokenFile(self.path, self.provider, data)


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_time(value: object) -> float | None:
    """RFC 3339 text, or unix seconds / milliseconds, as unix seconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds / 1000.0 if seconds > 1e11 else seconds if seconds > 0 else None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        # Go writes up to 9 fractional digits; Python reads 6.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    return None


def format_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the id_token came from the provider over TLS; only ids are read)."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def chatgpt_account_id(id_token: str) -> str:
    """The ChatGPT account id in an OpenAI id_token (claim ``https://api.openai.com/auth``)."""
    auth = jwt_claims(id_token).get("https://api.openai.com/auth")
    return _str(auth.get("chatgpt_account_id")) if isinstance(auth, dict) else ""


def read_token_file(path: str) -> TokenFile:
    """Read one token file; :class:`TokenFileError` when it is not a usable account file."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenFileError(f"{name}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise TokenFileError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise TokenFileError(f"{name}: not JSON") from None
    if not isinstance(data, dict):
        raise TokenFileError(f"{name}: not a JSON object")
    file_type = _str(data.get("type")).lower()
    provider = TYPE_ALIASES.get(file_type)
    if provider is None:
        raise TokenFileError(f"{name}: account type {file_type or '(none)'!r} is not served by muxtrio")
    token = TokenFile(path, provider, data)
    if not token.access_token and not token.refresh_token:
        raise TokenFileError(f"{name}: no access_token or refresh_token")
    return token


def write_token_file(token: TokenFile) -> None:
    """Write ``token`` atomically with mode 0600 (its directory is created with mode 0700)."""
    directory = os.path.dirname(token.path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = dict(token.data)
    data["type"] = data.get("type") or FILE_TYPE[token.provider]
    encoded = json.dumps(data, indent=2).encode()
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, token.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def file_name(provider: str, identity: str, project: str = "") -> str:
    """The file name muxtrio gives a new login, like llm-mux's: ``<type>-<email>[-<project>].json``."""
    parts = [FILE_TYPE[provider], identity or "account", *([project] if project else [])]
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", "-".join(parts)) + ".json"


def default_auth_dir(env: Mapping[str, str]) -> str:
    """``$MUXTRIO_AUTH_DIR``, else ``$XDG_CONFIG_HOME/muxtrio/auth``, else ``~/.config/muxtrio/auth``."""
    explicit = env.get("MUXTRIO_AUTH_DIR", "").strip()
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = env.get("XDG_CONFIG_HOME", "").strip()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return str((Path(xdg) if xdg else home / ".config") / "muxtrio" / "auth")

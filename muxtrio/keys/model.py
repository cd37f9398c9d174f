"""What a client key is: its record, its limits, its model allowlist, and how a new key is made.

Invariants:
- A clear key exists only in :func:`new_secret`'s return value and the one answer that shows it; everything stored
  or shown afterwards carries its id, name and :func:`hint` (``mx-…wxyz``), never the key.
- Keys are ``mx-`` followed by 43 URL-safe characters (256 bits from :mod:`secrets`).
- Pure: standard library only, no IO.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

from muxtrio.wildcard import wildcard_match

PREFIX = "mx-"
_KEY_SHAPE = re.compile(r"^mx-[A-Za-z0-9_-]{43}$")


def new_secret() -> str:
    """A fresh client key: ``mx-`` + 256 random bits, URL-safe base64."""
    return PREFIX + secrets.token_urlsafe(32)


def looks_like_client_key(text: str) -> bool:
    return text.startswith(PREFIX) and _KEY_SHAPE.match(text) is not None


def hint(secret: str) -> str:
    """How a key may be shown after creation: its prefix and last four characters."""
    return f"{PREFIX}…{secret[-4:]}"


def new_key_id() -> str:
    return "ck_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Limits:
    """Optional limits; None means unlimited. Token counts are input + output; cost is in the currency of
    ``prices:``. Windows are UTC-aligned: the minute, the day, the calendar month."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    budget_tokens_day: int | None = None
    budget_tokens_month: int | None = None
    budget_cost_day: float | None = None
    budget_cost_month: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}


LIMIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Limits))
_INT_LIMITS = frozenset({"rpm", "tpm", "max_concurrency", "budget_tokens_day", "budget_tokens_month"})


def limits_from(raw: dict[str, Any], base: Limits | None = None) -> Limits:
    """Limits from a mapping with kebab- or snake-case names; a value of None clears a limit. Raises ValueError
    naming the field for anything else than a positive number (integers for counts)."""
    changes: dict[str, int | float | None] = {}
    for name, value in raw.items():
        field_name = name.replace("-", "_")
        if field_name not in LIMIT_FIELDS:
            raise ValueError(f"unknown limit {name!r} (known: {', '.join(f.replace('_', '-') for f in LIMIT_FIELDS)})")
        if value is None:
            changes[field_name] = None
            continue
        if isinstance(value, str):
            value = parse_amount(value, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"{name}: expected a positive number or null, got {value!r}")
        if field_name in _INT_LIMITS:
            if value != int(value):
                raise ValueError(f"{name}: expected a whole number, got {value!r}")
            value = int(value)
        changes[field_name] = value
    return replace(base or Limits(), **changes)  # type: ignore[arg-type]


_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)\s*$")
_AMOUNT_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "b": 1_000_000_000}


def parse_amount(text: str, what: str = "value") -> float:
    """``50M`` -> 50_000_000, ``200k`` -> 200_000, ``12.5`` -> 12.5 (decimal units: token budgets are counts)."""
    match = _AMOUNT.match(text)
    if match is None:
        raise ValueError(f"{what}: expected a number such as 60, 200k or 50M, got {text!r}")
    return float(match[1]) * _AMOUNT_UNITS[match[2].lower()]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``30d`` -> seconds. Units s, m, h, d, w."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration such as 12h, 30d or 4w, got {text!r}")
    return float(match[1]) * _DURATION_UNITS[match[2]]


@dataclass(frozen=True, slots=True)
class ModelAccess:
    """A key's model allowlist: names, aliases and ``*`` wildcards (case-insensitive). Empty means every model.

    The rule, applied to each step of a request's resolution (the requested name, then each fallback name):
    the step's own name must be listed (exactly or by a wildcard); an exact entry grants what that name resolves to
    (an administrator named it on purpose), while a wildcard grants a step only when the model it resolves to —
    the alias target (:attr:`Deployment.alias`) or the provider's model name (:attr:`Deployment.upstream_model`) —
    matches an entry too. So ``claude-*`` admits ``claude-sonnet-4``, but not an alias ``claude-cheap`` that an
    administrator pointed at ``gpt-5-mini``, nor a fallback to ``gpt-5``.
    """

    patterns: tuple[str, ...] = ()

    @property
    def unrestricted(self) -> bool:
        return not self.patterns

    def _exact(self, name: str) -> bool:
        lowered = name.lower()
        return any("*" not in p and p.lower() == lowered for p in self.patterns)

    def names(self, name: str) -> bool:
        """Whether ``name`` itself is on the list."""
        return self.unrestricted or any(wildcard_match(p, name) for p in self.patterns)

    def permits(self, step: str, resolved: tuple[str, ...]) -> bool:
        """Whether a step named ``step`` may be served by a deployment known by the names ``resolved``."""
        if self.unrestricted:
            return True
        if not self.names(step):
            return False
        return self._exact(step) or any(self.names(name) for name in resolved)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A key's stored record (never the key itself: ``digest`` is its keyed hash, ``hint`` its last characters)."""

    id: str
    name: str
    digest: str
    hint: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None
    enabled: bool = True
    owner: str | None = None
    team: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    @property
    def access(self) -> ModelAccess:
        return ModelAccess(self.models)

    def state(self, now: float) -> str:
        """``active``, ``disabled``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if not self.enabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def view(self, now: float | None = None) -> dict[str, Any]:
        """The key as the management API and the CLI show it (no digest, no secret)."""
        return {
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "state": self.state(time.time() if now is None else now),
            "enabled": self.enabled,
            "owner": self.owner,
            "team": self.team,
            "metadata": dict(self.metadata),
            "models": list(self.models),
            "limits": self.limits.as_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }

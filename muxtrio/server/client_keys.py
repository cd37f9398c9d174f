"""``/v1/management/client-keys``: create, list, get, update, rotate and revoke client keys.

Routes (JSON in llm-mux's management envelope ``{"data": …, "meta": {"timestamp", "version"}}``, errors
``{"error": {"code", "message"}}``):

- ``GET  /client-keys``                  every key (never a secret: id, name, hint, state, models, limits, times)
- ``POST /client-keys``                  create: ``{"name", "models"?, "limits"?, "expires-in"?|"expires-at"?,
  "owner"?, "team"?, "metadata"?}`` -> 201 ``{"key": {…}, "secret": "mx-…"}`` (the only time the key is shown)
- ``GET  /client-keys/{ref}``            one key (by id or name) with its usage in the current windows
- ``PATCH /client-keys/{ref}``           change ``name``, ``models``, ``limits`` (merged; null clears one),
  ``enabled``, ``expires-in``/``expires-at`` (null: never), ``owner``, ``team``, ``metadata``
- ``POST /client-keys/{ref}/rotate``     a new secret for the same key -> ``{"key", "secret"}``; the old one stops
- ``POST /client-keys/{ref}/revoke`` or ``DELETE /client-keys/{ref}``   revoke (kept for the usage history)

Role: one small route module with one entry point, :func:`serve`, that the app mounts at :data:`PREFIX`; the
handlers (:data:`ROUTES`) take the gate and the parsed request and return data, so the management router of the
control-plane work can mount the same table. Auth until then: the management key from ``MUXTRIO_MANAGEMENT_KEY``
(or ``LLM_MUX_MANAGEMENT_KEY``) as ``Authorization: Bearer`` or ``X-Management-Key``, compared in constant time,
loopback clients only; with no management key set every route answers 404.

Invariants: a clear key appears only in the answer of create and rotate; every mutation is logged with the key's id
and name and the client address, never the key; bad input is a 400 naming the field.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from muxtrio import __version__
from muxtrio.errors import MuxError
from muxtrio.keys.gate import KeyGate
from muxtrio.keys.model import ClientKey, limits_from, parse_duration
from muxtrio.server.auth import is_loopback
from muxtrio.server.http import Receive, Scope, Send, header, read_body, send_whole

log = logging.getLogger("muxtrio.management")

PREFIX = "/v1/management/client-keys"
MAX_BODY = 1 << 20
_REF = r"(?P<ref>[^/]{1,200})"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", message)


@dataclass(frozen=True, slots=True)
class Call:
    ref: str | None
    body: dict[str, Any]
    address: str


Handler = Callable[[KeyGate, Call], Awaitable[tuple[int, Any]]]


def management_key(env: dict[str, str] | None = None) -> str | None:
    environ = os.environ if env is None else env
    return environ.get("MUXTRIO_MANAGEMENT_KEY") or environ.get("LLM_MUX_MANAGEMENT_KEY") or None


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"missing field {name!r}")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _invalid(f"{name}: expected a non-empty string of at most 200 characters")
    return value.strip()


def _models(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = body.get("models")
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() for m in value):
        raise _invalid("models: expected a list of model names or patterns (or one comma-separated string)")
    return tuple(m.strip() for m in value)


def _expiry(body: dict[str, Any], current: float | None) -> float | None:
    if "expires-in" in body and body["expires-in"] is not None:
        try:
            return time.time() + parse_duration(str(body["expires-in"]))
        except ValueError as exc:
            raise _invalid(f"expires-in: {exc}") from None
    if "expires-at" in body:
        value = body["expires-at"]
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise _invalid("expires-at: expected an ISO 8601 time or epoch seconds") from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        raise _invalid("expires-at: expected an ISO 8601 time or epoch seconds")
    if "expires-in" in body:
        return None
    return current


def _metadata(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid("metadata: expected a mapping of strings to strings")
    return dict(value)


def _limits_body(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("limits") or {}
    if not isinstance(value, dict):
        raise _invalid("limits: expected a mapping such as {\"rpm\": 60, \"tpm\": 200000}")
    return value


async def _found(gate: KeyGate, call: Call) -> ClientKey:
    assert call.ref is not None
    key = await gate.find(call.ref)
    if key is None:
        raise ApiError(404, "NOT_FOUND", f"no client key {call.ref!r}")
    return key


def _logged(call: Call, what: str, key: ClientKey) -> None:
    log.info("management: %s client key %s (%r) from %s", what, key.id, key.name, call.address)


async def list_keys(gate: KeyGate, call: Call) -> tuple[int, Any]:
    now = time.time()
    return 200, [key.view(now) for key in await gate.keys()]


async def create_key(gate: KeyGate, call: Call) -> tuple[int, Any]:
    body = call.body
    name = _text(body, "name", required=True)
    assert name is not None
    try:
        limits = limits_from(_limits_body(body))
    except ValueError as exc:
        raise _invalid(f"limits: {exc}") from None
    key, secret = await gate.create(
        name, models=_models(body) or (), limits=limits, expires_at=_expiry(body, None), owner=_text(body, "owner"),
        team=_text(body, "team"), metadata=_metadata(body),
    )  # fmt: skip
    _logged(call, "created", key)
    return 201, {"key": key.view(), "secret": secret}


async def get_key(gate: KeyGate, call: Call) -> tuple[int, Any]:
    key = await _found(gate, call)
    view = key.view()
    view["usage"] = await gate.usage_of(key)
    return 200, view


async def update_key(gate: KeyGate, call: Call) -> tuple[int, Any]:
    key = await _found(gate, call)
    body = call.body
    known = {"name", "models", "limits", "enabled", "expires-in", "expires-at", "owner", "team", "metadata"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _invalid(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        limits = limits_from(_limits_body(body), key.limits)
    except ValueError as exc:
        raise _invalid(f"limits: {exc}") from None
    enabled = body.get("enabled", key.enabled)
    if not isinstance(enabled, bool):
        raise _invalid("enabled: expected true or false")
    if enabled and key.revoked_at is not None:
        raise ApiError(409, "CONFLICT", f"client key {key.id!r} is revoked; create a new one")
    models = _models(body)
    changed = replace(
        key, name=_text(body, "name") or key.name, models=key.models if models is None else models, limits=limits,
        enabled=enabled, expires_at=_expiry(body, key.expires_at),
        owner=_text(body, "owner") if "owner" in body else key.owner,
        team=_text(body, "team") if "team" in body else key.team,
        metadata=key.metadata if (meta := _metadata(body)) is None else meta,
    )  # fmt: skip
    saved = await gate.save(changed)
    _logged(call, "updated", saved)
    return 200, saved.view()


async def rotate_key(gate: KeyGate, call: Call) -> tuple[int, Any]:
    key = await _found(gate, call)
    if key.revoked_at is not None:
        raise ApiError(409, "CONFLICT", f"client key {key.id!r} is revoked; create a new one")
    rotated, secret = await gate.rotate(key)
    _logged(call, "rotated", rotated)
    return 200, {"key": rotated.view(), "secret": secret}


async def revoke_key(gate: KeyGate, call: Call) -> tuple[int, Any]:
    key = await _found(gate, call)
    revoked = await gate.revoke(key)
    _logged(call, "revoked", revoked)
    return 200, revoked.view()


ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = (
    ("GET", re.compile(r"^$"), list_keys),
    ("POST", re.compile(r"^$"), create_key),
    ("GET", re.compile(rf"^/{_REF}$"), get_key),
    ("PATCH", re.compile(rf"^/{_REF}$"), update_key),
    ("DELETE", re.compile(rf"^/{_REF}$"), revoke_key),
    ("POST", re.compile(rf"^/{_REF}/rotate$"), rotate_key),
    ("POST", re.compile(rf"^/{_REF}/revoke$"), revoke_key),
)


def _envelope(data: Any) -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return orjson.dumps({"data": data, "meta": {"timestamp": stamp, "version": __version__}})


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": {"code": code, "message": message}})


def _authorized(scope: Scope, expected: str) -> bool:
    presented = header(scope, b"x-management-key")
    auth = header(scope, b"authorization")
    if presented is None and auth and auth[:7].lower() == "bearer ":
        presented = auth[7:].strip()
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


async def serve(gate: KeyGate, scope: Scope, receive: Receive, send: Send) -> int:
    """Answer one request under :data:`PREFIX`; returns the status sent."""
    status, body = await _answer(gate, scope, receive)
    await send_whole(send, status, body)
    return status


async def _answer(gate: KeyGate, scope: Scope, receive: Receive) -> tuple[int, bytes]:
    expected = management_key()
    if expected is None:
        return _error(404, "NOT_FOUND", f"no route for {scope['method']} {scope['path']}")
    if not is_loopback(scope):
        return _error(403, "FORBIDDEN", "the management API answers loopback clients only")
    if not _authorized(scope, expected):
        return _error(401, "UNAUTHORIZED", "missing or wrong management key")
    rest = scope["path"][len(PREFIX):].rstrip("/")
    method = scope["method"]
    matched = [(m, found, handler) for m, pattern, handler in ROUTES if (found := pattern.match(rest)) is not None]
    if not matched:
        return _error(404, "NOT_FOUND", f"no route for {method} {scope['path']}")
    route = next(((found, handler) for m, found, handler in matched if m == method), None)
    if route is None:
        allowed = ", ".join(sorted({m for m, _f, _h in matched}))
        return _error(405, "METHOD_NOT_ALLOWED", f"method {method} not allowed here; use {allowed}")
    found, handler = route
    try:
        raw = await read_body(receive, scope, MAX_BODY)
        body = orjson.loads(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise _invalid("expected a JSON object")
        client = scope.get("client")
        call = Call(found.groupdict().get("ref"), body, client[0] if client else "-")
        status, data = await handler(gate, call)
    except orjson.JSONDecodeError:
        return _error(400, "INVALID_REQUEST", "request body is not valid JSON")
    except ApiError as err:
        return _error(err.status, err.code, err.message)
    except MuxError as err:
        return _error(err.status, "UNAVAILABLE" if err.status == 503 else "INVALID_REQUEST", err.message)
    return status, _envelope(data)

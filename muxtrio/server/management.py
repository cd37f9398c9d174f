"""The management API under ``/v1/management``: config, keys, providers, credentials, usage, logs, status.

Role: route and answer management requests for :class:`muxtrio.server.app.MuxApp` (see ``docs/management.md`` and
the OpenAPI document in :mod:`muxtrio.server.management_openapi`, which lists exactly the routes of :data:`ROUTES`).

Invariants:
- Answers are llm-mux's envelope ``{"data": ..., "meta": {"timestamp", "version"}}``; errors are
  ``{"error": {"code", "message"}}`` with the matching status. Never a traceback, never a secret: keys are masked
  (last four characters), proxy user-info and credential-like header values hidden.
- No management key configured: every route answers 404 as if it did not exist (:mod:`management_auth`).
- Changes to the file go through one path (:meth:`Management._commit`): edit the text of one top-level block,
  validate the whole new file, write it atomically, reload. A file that fails validation is a 400 naming the key
  path, and nothing is written or changed.
- Every mutation is logged once: the client address, the key's label (never the key), what, and the result; and it
  reaches every worker (the file through each worker's watcher, credential actions through the workers' journal).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import attrs
import orjson
import trio
import yaml

from muxtrio import __version__, config_edit, logring
from muxtrio.config import (
    Config,
    Credential,
    RemoteManagementConfig,
    UsageConfig,
    redact_headers,
    redact_url,
)
from muxtrio.engine.pool import CredentialPool, CredentialState
from muxtrio.errors import ConfigError, mask_secret
from muxtrio.server import management_openapi
from muxtrio.server.http import ClientGone, Receive, Scope, Send, read_body, send_whole
from muxtrio.server.management_auth import Guard, Refused, hash_key, management_key, verify
from muxtrio.server.reload import Live, ReloadRecord, yaml_key
from muxtrio.usage.report import GROUPS, build_report
from muxtrio.usage.store import open_store

if TYPE_CHECKING:
    from muxtrio.server.app import MuxApp

log = logging.getLogger("muxtrio.management")

PREFIX = management_openapi.PREFIX
MAX_BODY = 4 << 20
LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX = 200, 1000
REQUEST_LOG_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[A-Za-z0-9._~+-]{1,128}\.json$")
_DURATION_BACK = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MASK = "****"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "CONFLICT", message)


@dataclass(slots=True)
class Call:
    """One management request, once authenticated."""

    scope: Scope
    receive: Receive
    params: dict[str, str]
    query: dict[str, str]
    address: str
    key_label: str
    live: Live
    outcome: str = ""  # what a mutation did, for its log line

    async def body(self) -> bytes:
        return await read_body(self.receive, self.scope, MAX_BODY)

    async def json(self) -> Any:
        raw = await self.body()
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise invalid("request body is not valid JSON") from None


@dataclass(frozen=True, slots=True)
class Raw:
    """A response that is not enveloped (the OpenAPI document, the YAML file, a request log)."""

    body: bytes
    content_type: bytes


Handler = Callable[["Management", Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str  # OpenAPI form, relative to PREFIX: /credentials/{label}/reset
    handler: Handler
    mutates: bool
    pattern: re.Pattern[str]


def _route(method: str, path: str, handler: Handler, *, mutates: bool = False) -> RouteSpec:
    regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
    return RouteSpec(method, path, handler, mutates, re.compile(regex))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(data: Any) -> bytes:
    meta = {"timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "version": __version__}
    return orjson.dumps({"data": data, "meta": meta}, default=str)


async def _send_error(send: Send, status: int, code: str, message: str, retry_after: float | None = None) -> int:
    extra = [(b"retry-after", str(max(1, round(retry_after))).encode())] if retry_after else []
    await send_whole(send, status, orjson.dumps({"error": {"code": code, "message": message}}), extra=extra)
    return status


# ------------------------------------------------------------------------------------------------ masked views
def _view(value: Any, owner: type | None = None, name: str = "") -> Any:
    if owner is Config and name == "api_keys":
        return [mask_secret(key) for key in value]
    if owner is Credential and name == "key":
        return mask_secret(value)
    if owner is RemoteManagementConfig and name == "secret_key":
        return None if value is None else ("(hashed)" if value.startswith(("scrypt:", "sha256:")) else _MASK)
    if owner is UsageConfig and name == "dsn" and value:
        base, query = str(value).partition("?")[::2]  # a DSN's query may carry a password
        return redact_url(base) + ("?****" if query else "")
    if name in ("proxy_url", "base_url"):
        return None if value is None else redact_url(str(value))
    if name == "headers":
        return redact_headers(value)
    if attrs.has(type(value)):
        cls = type(value)
        return {
            yaml_key(a.name): _view(getattr(value, a.name), cls, a.name)
            for a in attrs.fields(cls)
            if a.name not in ("source", "warnings", "legacy_mappings")
        }
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_view(v) for v in value]
    return value


def masked_config(config: Config) -> dict[str, Any]:
    """The effective configuration as JSON-ready data (YAML key names), every secret masked."""
    data: dict[str, Any] = _view(config)
    data["config-file"] = config.source
    return data


def _mask_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A raw ``providers:`` entry with its keys, header secrets and proxy user-info masked."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "api-key" and isinstance(value, str):
            out[key] = mask_secret(value)
        elif key == "api-keys" and isinstance(value, list):
            out[key] = [_mask_key_item(item) for item in value]
        elif key == "headers" and isinstance(value, dict):
            out[key] = redact_headers({str(k): str(v) for k, v in value.items()})
        elif key in ("proxy-url", "base-url") and isinstance(value, str):
            out[key] = redact_url(value)
        else:
            out[key] = value
    return out


def _mask_key_item(item: Any) -> Any:
    if isinstance(item, str):
        return mask_secret(item)
    if isinstance(item, dict):
        return {
            k: mask_secret(v) if k in ("key", "api-key") and isinstance(v, str) else
            (redact_url(v) if k == "proxy-url" and isinstance(v, str) else v)
            for k, v in item.items()
        }  # fmt: skip
    return item


def _entry_keys(entry: Mapping[str, Any]) -> list[str]:
    keys = [entry["api-key"]] if isinstance(entry.get("api-key"), str) else []
    for item in entry.get("api-keys") or []:
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, dict):
            keys += [v for k, v in item.items() if k in ("key", "api-key") and isinstance(v, str)]
    return keys


def _unmask_entry(entry: dict[str, Any], current: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """``entry`` with masked keys (as GET shows them) replaced by the current entry's keys they stand for."""
    known = _entry_keys(current or {})
    current_headers = (current or {}).get("headers") or {}

    def real(value: str, path: str) -> str:
        if not value.startswith(_MASK):
            return value
        match = [key for key in known if mask_secret(key) == value]
        if len(match) != 1:
            raise invalid(f"{path}: {value!r} is a masked key that matches no single current key of this provider")
        return match[0]

    out = dict(entry)
    if isinstance(out.get("api-key"), str):
        out["api-key"] = real(out["api-key"], f"{where}.api-key")
    if isinstance(out.get("api-keys"), list):
        items: list[Any] = []
        for index, item in enumerate(out["api-keys"]):
            path = f"{where}.api-keys[{index}]"
            if isinstance(item, str):
                items.append(real(item, path))
            elif isinstance(item, dict):
                items.append({k: real(v, f"{path}.{k}") if k in ("key", "api-key") and isinstance(v, str) else v
                              for k, v in item.items()})
            else:
                items.append(item)
        out["api-keys"] = items
    if isinstance(out.get("headers"), dict):
        headers: dict[str, Any] = {}
        for name, value in out["headers"].items():
            if isinstance(value, str) and value.startswith(_MASK) and isinstance(current_headers, dict):
                original = current_headers.get(name)
                if isinstance(original, str) and mask_secret(original) == value:
                    value = original
            headers[name] = value
        out["headers"] = headers
    return out


def _entry_name(entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return str(name) if isinstance(name, str) and name else str(entry.get("type", ""))


# ------------------------------------------------------------------------------------------------ parsing queries
def _parse_time(text: str, name: str, now: float) -> float:
    text = text.strip()
    match = _DURATION_BACK.fullmatch(text.lower())
    if match:
        return now - float(match[1]) * _UNIT_SECONDS[match[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name}: expected ISO 8601, Unix seconds or a duration such as 24h, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name}: expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise invalid(f"{name}: expected an integer from {low}" + (f" to {high}" if high is not None else ""))
    return value


# ------------------------------------------------------------------------------------------------ the API
class Management:
    """The management API of one worker; ``app`` gives the live state and the reloader."""

    def __init__(self, app: MuxApp) -> None:
        self.app = app
        self.guard = Guard()
        self.started = time.time()
        self._file_lock = trio.Lock()
        app.reloader.action_handler = self._apply_remote_action

    # -- dispatch
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Serve one management request; returns the status sent."""
        path = scope["path"][len(PREFIX) :] or "/"
        method = scope["method"]
        if not self.app.ready or self.app.reloader.live is None:
            return await _send_error(send, 503, "UNAVAILABLE", "the gateway is starting or stopping")
        live = self.app.reloader.acquire()
        try:
            try:
                key = management_key(live.config)
            except ValueError as exc:
                log.error("management API off: %s", exc)
                key = None
            if key is None:
                return await _send_error(send, 404, "NOT_FOUND", f"no route for {method} {scope['path']}")
            try:
                address = await self.guard.check(scope, key, live.config.remote_management.allow_remote)
            except Refused as refused:
                log.warning("management: refused %s %s from %s: %s", method, scope["path"],
                            (scope.get("client") or ("unknown",))[0], refused.message)
                return await _send_error(send, refused.status, refused.code, refused.message, refused.retry_after)
            return await self._serve(scope, receive, send, method, path, address, key.label, live)
        finally:
            await self.app.reloader.release(live)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, method: str, path: str, address: str, label: str, live: Live
    ) -> int:
        route, params = self._match(method, path)
        call = Call(scope, receive, params, dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
                    address, label, live)
        try:
            if route is None:
                raise params_error(params)
            result = await route.handler(self, call)
        except ApiError as err:
            if route is not None and route.mutates:
                where = scope["path"]
                log.warning("management: %s (%s) %s %s: refused: %s", address, label, method, where, err.message)
            return await _send_error(send, err.status, err.code, err.message)
        except ClientGone:
            return 499
        except Exception:
            log.exception("management: unexpected error on %s %s", method, scope["path"])
            return await _send_error(send, 500, "INTERNAL_ERROR", "internal error")
        if route.mutates:
            log.info("management: %s (%s) %s %s: %s", address, label, method, scope["path"], call.outcome or "ok")
        if isinstance(result, Raw):
            await send_whole(send, 200, result.body, result.content_type)
        else:
            await send_whole(send, 200, _envelope(result))
        return 200

    def _match(self, method: str, path: str) -> tuple[RouteSpec | None, dict[str, str]]:
        allowed: list[str] = []
        for route in ROUTES:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, found.groupdict()
            allowed.append(route.method)
        return None, {"allowed": ",".join(allowed)}

    # -- reads
    async def openapi(self, call: Call) -> Raw:
        return Raw(orjson.dumps(management_openapi.document()), b"application/json")

    async def status(self, call: Call) -> dict[str, Any]:
        reloader = self.app.reloader
        config = call.live.config
        scheme = "https" if config.tls.enable else "http"
        server = call.scope.get("server")
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": _iso(self.started),
            "uptime_seconds": round(time.time() - self.started, 3),
            "workers": config.workers,
            "listeners": [f"{scheme}://{config.host}:{config.port}"],
            "served_by": f"{scheme}://{server[0]}:{server[1]}" if server else None,
            "config_file": reloader.source,
            "config_hash": reloader.applied_hash,
            "watching": bool(reloader.source and config.reload.watch),
            "reloads": [record.as_json() for record in reloader.history],
            "last_reload_error": reloader.last_error,
            "engines_draining": len(reloader.draining),
        }

    async def config(self, call: Call) -> dict[str, Any]:
        return masked_config(call.live.config)

    async def config_yaml(self, call: Call) -> Raw:
        return Raw(self._read_file()[0].encode("utf-8"), b"application/yaml; charset=utf-8")

    async def metrics(self, call: Call) -> Any:
        return call.live.engine.statistics()

    async def logs(self, call: Call) -> dict[str, Any]:
        after = _int_param(call.query, "after", 0, 0)
        limit = _int_param(call.query, "limit", LOG_LIMIT_DEFAULT, 1, LOG_LIMIT_MAX)
        lines, last, dropped = logring.install().since(after, limit)
        return {
            "lines": [
                {"seq": ln.seq, "time": _iso(ln.created), "level": ln.level, "logger": ln.logger, "message": ln.message}
                for ln in lines
            ],
            "last_seq": last,
            "dropped": dropped,
        }

    async def usage(self, call: Call) -> Any:
        config = call.live.config
        if not config.usage.enabled:
            raise ApiError(503, "UNAVAILABLE", 'usage persistence is off (usage.dsn: "")')
        now = time.time()
        query = call.query
        if "days" in query:
            since = now - _int_param(query, "days", 1, 1) * 86400.0
        else:
            since = _parse_time(query.get("from") or "24h", "from", now)
        until = _parse_time(query["to"], "to", now) if query.get("to") else now
        if until < since:
            raise invalid("to: must not be before from")
        group = query.get("group-by") or query.get("group_by") or None
        if group is not None and group not in GROUPS:
            raise invalid(f"group-by: expected one of {', '.join(GROUPS)}, got {group!r}")
        dsn = config.usage.dsn if config.usage.dsn is not None else "sqlite://"
        retention = config.usage.retention_days

        def query_store() -> dict[str, Any]:
            store = open_store(dsn)
            try:
                return build_report(store, since=since, until=until, group_by=group, retention_days=retention)
            finally:
                store.close()

        try:
            return await trio.to_thread.run_sync(query_store)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        except Exception as exc:
            log.warning("management: usage query failed: %s", type(exc).__name__)
            raise ApiError(503, "UNAVAILABLE", f"the usage store did not answer ({type(exc).__name__})") from None

    def _request_log_dir(self, config: Config) -> str:
        return os.path.abspath(config.logging.request_log_dir)

    async def request_logs(self, call: Call) -> list[dict[str, Any]]:
        directory = self._request_log_dir(call.live.config)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        entries: list[dict[str, Any]] = []
        for name in names:
            if not REQUEST_LOG_NAME.fullmatch(name):
                continue
            try:
                st = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append({"name": name, "size": st.st_size, "modified": _iso(st.st_mtime)})
        entries.sort(key=lambda e: (e["modified"], e["name"]), reverse=True)
        return entries

    async def request_log(self, call: Call) -> Raw:
        name = call.params["name"]
        if not REQUEST_LOG_NAME.fullmatch(name):
            raise invalid("name: not a request log file name (YYYYmmddTHHMMSS-<request id>.json)")
        path = os.path.join(self._request_log_dir(call.live.config), name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            raise not_found(f"no request log {name!r}") from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise not_found(f"no request log {name!r}")
            return Raw(handle.read(), b"application/json")

    # -- credentials
    def _pools(self, live: Live) -> dict[str, CredentialPool]:
        return live.engine.pools

    def _credential_view(
        self, pool: CredentialPool, cred: CredentialState, now: float, removed: bool
    ) -> dict[str, Any]:
        wall = time.time()
        cooling = [
            {"model": model, "seconds_left": round(until - now, 3), "until": _iso(wall + until - now),
             "reason": "rate_limit"}
            for model, until in sorted(cred.cooldown_until.items()) if until > now
        ]  # fmt: skip
        refused = [
            {"model": model, "seconds_left": round(until - now, 3), "until": _iso(wall + until - now),
             "status": cred.refusal_status.get(model) or None, "refusals": cred.refusals.get(model, 0)}
            for model, until in sorted(cred.refused_until.items()) if until > now
        ]  # fmt: skip
        return {
            "label": cred.name,
            "provider": pool.provider,
            "index": cred.index,
            "key": mask_secret(cred.key) if cred.key else None,
            "in_flight": cred.in_flight,
            "cooling": cooling,
            "refused": refused,
            "disabled": cred.disabled,
            "disabled_reason": cred.disabled_reason or None,
            "breaker": cred.breaker.value,
            "last_error_class": cred.last_error or None,
            "successes": cred.successes,
            "failures": cred.failures,
            "consecutive_failures": cred.consecutive_failures,
            "removed": removed,
            "account": cred.account is not None,  # a subscription account (its label is the account's)
            "retired": cred.retired,  # its account's token file is gone
            "worker": os.getpid(),  # with several workers each answers with its own view
        }

    async def credentials(self, call: Call) -> list[dict[str, Any]]:
        now = trio.current_time()
        current = self._pools(call.live)
        seen: set[int] = set()
        out: list[dict[str, Any]] = []
        for pool in current.values():
            for cred in pool.credentials:
                seen.add(id(cred))
                out.append(self._credential_view(pool, cred, now, removed=False))
        for draining in self.app.reloader.draining:
            for pool in draining.engine.pools.values():
                for cred in pool.credentials:
                    if id(cred) not in seen and cred.in_flight > 0:
                        seen.add(id(cred))
                        out.append(self._credential_view(pool, cred, now, removed=True))
        return out

    def _find(self, live: Live, label: str) -> tuple[CredentialPool, CredentialState] | None:
        for pool in live.engine.pools.values():  # labels are provider#index, or an account's own label
            cred = pool.find(label)
            if cred is not None:
                return pool, cred
        return None

    def _act(self, live: Live, action: str, label: str, reason: str) -> tuple[CredentialPool, CredentialState] | None:
        found = self._find(live, label)
        if found is None:
            return None
        pool, cred = found
        if action == "reset":
            pool.reset(cred)
        elif action == "disable":
            pool.set_disabled(cred, True, f"operator: {reason or 'disabled through the management API'}")
        elif action == "enable":
            pool.set_disabled(cred, False)
        return found

    def _apply_remote_action(self, action: dict[str, object]) -> None:
        live = self.app.reloader.live
        name, label, reason = action.get("action"), action.get("label"), action.get("reason", "")
        if live is None or not isinstance(name, str) or not isinstance(label, str) or not isinstance(reason, str):
            return
        if self._act(live, name, label, reason) is not None:
            log.info("management: credential %s: %s (from worker %s)", label, name, action.get("pid"))

    async def credential_action(self, call: Call, action: str) -> dict[str, Any]:
        label = call.params["label"]
        body = await call.json()
        reason = ""
        if isinstance(body, dict) and body.get("reason") is not None:
            if not isinstance(body["reason"], str) or len(body["reason"]) > 200:
                raise invalid("reason: expected a string of at most 200 characters")
            reason = body["reason"]
        live = self.app.reloader.live or call.live
        found = self._act(live, action, label, reason)
        if found is None:
            raise not_found(f"no credential {label!r} (labels look like provider#0; see GET /credentials)")
        self.app.reloader.broadcast({"action": action, "label": label, "reason": reason})
        call.outcome = f"credential {label}: {action}"
        pool, cred = found
        return self._credential_view(pool, cred, trio.current_time(), removed=False)

    async def reset(self, call: Call) -> dict[str, Any]:
        return await self.credential_action(call, "reset")

    async def enable(self, call: Call) -> dict[str, Any]:
        return await self.credential_action(call, "enable")

    async def disable(self, call: Call) -> dict[str, Any]:
        return await self.credential_action(call, "disable")

    # -- the file
    def _read_file(self) -> tuple[str, dict[str, Any]]:
        source = self.app.reloader.source
        if source is None:
            raise conflict("the gateway runs without a config file (start it with --config PATH)")
        try:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise conflict(f"cannot read the config file: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError:
            raise conflict("the config file on disk is not valid YAML; replace it with PUT /config.yaml") from None
        if not isinstance(data, dict):
            raise conflict("the config file on disk is not a YAML mapping; replace it with PUT /config.yaml")
        return text, data

    async def _commit(self, call: Call, text: str, what: str) -> ReloadRecord:
        """Validate ``text`` whole, write it atomically, reload. Raises a 400 naming the key path when invalid."""
        reloader = self.app.reloader
        try:
            data = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            text = await trio.to_thread.run_sync(config_edit.hash_secret_key, text, data, hash_key)
        try:
            reloader.validate(text)
        except ConfigError as exc:
            raise invalid(str(exc)) from None
        assert reloader.source is not None
        await trio.to_thread.run_sync(config_edit.write_atomic, reloader.source, text)
        record = await reloader.reload("api")
        # The other workers reload now, watched or not; other nodes get the file itself.
        reloader.broadcast({"action": "reload"}, config_text=text)
        call.outcome = f"{what}; reload {record.result}" + (f" ({record.error})" if record.error else "")
        return record

    async def reload(self, call: Call) -> dict[str, object]:
        record = await self.app.reloader.reload("api")
        self.app.reloader.broadcast({"action": "reload"})
        call.outcome = f"reload {record.result}"
        return record.as_json()

    async def put_config_yaml(self, call: Call) -> dict[str, object]:
        raw = await call.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("the body is not UTF-8 text") from None
        async with self._file_lock:
            return (await self._commit(call, text, "config.yaml replaced")).as_json()

    # -- api-keys
    def _key_list(self, data: Mapping[str, Any]) -> list[str]:
        keys = data.get("api-keys") or []
        if not isinstance(keys, list):
            raise conflict("api-keys in the config file is not a list; fix it with PUT /config.yaml")
        return [str(k) for k in keys]

    def _keys_view(self, keys: list[str]) -> list[dict[str, Any]]:
        return [{"index": i, "key": mask_secret(k)} for i, k in enumerate(keys)]

    async def get_api_keys(self, call: Call) -> list[dict[str, Any]]:
        """The file's list (what every worker loads; a write is visible here at once), else the running one."""
        if self.app.reloader.source is None:
            return self._keys_view(list(call.live.config.api_keys))
        return self._keys_view(self._key_list(self._read_file()[1]))

    def _check_new_key(self, value: Any, where: str, live: Live) -> str:
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
            raise invalid(f"{where}: expected a non-empty key without spaces")
        if value.startswith(_MASK):
            raise invalid(f"{where}: that is a masked key; send the key itself")
        key = management_key(live.config)
        if key is not None and verify(key.stored, value.strip()):
            raise invalid(f"{where}: a gateway key must differ from the management key")
        return value.strip()

    async def _save_keys(self, call: Call, keys: list[str], what: str, created: str | None = None) -> dict[str, Any]:
        text, _ = self._read_file()
        record = await self._commit(call, config_edit.replace_block(text, "api-keys", keys), what)
        out: dict[str, Any] = {"keys": self._keys_view(keys), "reload": record.as_json()}
        if created is not None:
            out["created"] = created
        if os.environ.get("MUXTRIO_API_KEYS", "").strip():
            out["warning"] = "MUXTRIO_API_KEYS is set and overrides api-keys in the file"
        return out

    async def put_api_keys(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise invalid('expected a list of keys or {"items": [...]}')
        async with self._file_lock:
            keys = [self._check_new_key(v, f"items[{i}]", call.live) for i, v in enumerate(items)]
            return await self._save_keys(call, keys, f"api-keys replaced ({len(keys)} keys)")

    async def post_api_keys(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        if body is not None and not isinstance(body, dict):
            raise invalid('expected {"value": "..."} or {} to generate a key')
        value = (body or {}).get("value")
        created = None
        if value is None:
            value = created = "sk-mx-" + secrets.token_urlsafe(24)
        async with self._file_lock:
            key = self._check_new_key(value, "value", call.live)
            keys = self._key_list(self._read_file()[1])
            if key in keys:
                raise conflict("that key is already configured")
            return await self._save_keys(call, [*keys, key], f"api-key {mask_secret(key)} added", created)

    async def patch_api_keys(self, call: Call) -> dict[str, Any]:
        body = await call.json()
        if not isinstance(body, dict):
            raise invalid('expected {"old": ..., "new": ...} or {"index": n, "value": ...}')
        async with self._file_lock:
            keys = self._key_list(self._read_file()[1])
            if "index" in body:
                index = body["index"]
                if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(keys):
                    raise invalid(f"index: expected 0 to {len(keys) - 1}")
                new = self._check_new_key(body.get("value"), "value", call.live)
            else:
                old = body.get("old")
                if not isinstance(old, str) or old not in keys:
                    raise not_found("old: no such key")
                index = keys.index(old)
                new = self._check_new_key(body.get("new"), "new", call.live)
            if new in keys and keys.index(new) != index:
                raise conflict("that key is already configured")
            previous = keys[index]
            keys[index] = new
            what = f"api-key {mask_secret(previous)} replaced by {mask_secret(new)}"
            return await self._save_keys(call, keys, what)

    async def delete_api_keys(self, call: Call) -> dict[str, Any]:
        async with self._file_lock:
            keys = self._key_list(self._read_file()[1])
            if "index" in call.query:
                index = _int_param(call.query, "index", 0, 0, max(0, len(keys) - 1))
                if not keys:
                    raise not_found("there are no api-keys")
            elif "value" in call.query:
                if call.query["value"] not in keys:
                    raise not_found("value: no such key")
                index = keys.index(call.query["value"])
            else:
                raise invalid("pass ?index= or ?value=")
            removed = keys.pop(index)
            return await self._save_keys(call, keys, f"api-key {mask_secret(removed)} removed")

    # -- providers
    def _raw_providers(self, data: Mapping[str, Any]) -> list[Any]:
        providers = data.get("providers") or []
        if not isinstance(providers, list):
            raise conflict("providers in the config file is not a list; fix it with PUT /config.yaml")
        return list(providers)

    def _provider_views(self, live: Live, raw: list[Any]) -> list[dict[str, Any]]:
        by_name = {_entry_name(e): e for e in raw if isinstance(e, dict)}
        views: list[dict[str, Any]] = []
        for provider in live.config.providers:
            entry = by_name.get(provider.name)
            if entry is not None:
                defined = "providers"
            elif provider.type.value == "echo" and live.config.echo_model:
                defined = "built-in"
            else:
                defined = "legacy list"
            views.append({
                "name": provider.name,
                "type": provider.type.value,
                "base-url": redact_url(provider.base_url) if provider.base_url else None,
                "enabled": provider.enabled,
                "api-keys": [mask_secret(c.key) for c in provider.credentials],
                "models": [m.alias or m.name for m in provider.models],
                "defined-in": defined,
                "entry": _mask_entry(entry) if entry is not None else None,
            })  # fmt: skip
        return views

    def _raw_or_empty(self) -> list[Any]:
        if self.app.reloader.source is None:
            return []
        return self._raw_providers(self._read_file()[1])

    async def get_providers(self, call: Call) -> list[dict[str, Any]]:
        return self._provider_views(call.live, self._raw_or_empty())

    async def get_provider(self, call: Call) -> dict[str, Any]:
        name = call.params["name"]
        for view in self._provider_views(call.live, self._raw_or_empty()):
            if view["name"] == name:
                return view
        raise not_found(f"no provider {name!r}")

    async def _save_providers(self, call: Call, text: str, providers: list[Any], what: str) -> dict[str, object]:
        record = await self._commit(call, config_edit.replace_block(text, "providers", providers), what)
        return record.as_json()

    async def post_providers(self, call: Call) -> dict[str, object]:
        entry = await call.json()
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise invalid('expected one providers entry: {"type": ..., "name": ..., ...}')
        name = _entry_name(entry)
        async with self._file_lock:
            text, data = self._read_file()
            raw = self._raw_providers(data)
            if any(p.name == name for p in call.live.config.providers):
                raise conflict(f"a provider named {name!r} exists; use PUT /providers/{name}")
            entry = _unmask_entry(entry, None, f"providers[{len(raw)}]")
            return await self._save_providers(call, text, [*raw, entry], f"provider {name} added")

    async def put_providers(self, call: Call) -> dict[str, object]:
        entries = await call.json()
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise invalid("expected the whole providers list (a list of objects)")
        async with self._file_lock:
            text, data = self._read_file()
            current = {_entry_name(e): e for e in self._raw_providers(data) if isinstance(e, dict)}
            new = [_unmask_entry(e, current.get(_entry_name(e)), f"providers[{i}]") for i, e in enumerate(entries)]
            return await self._save_providers(call, text, new, f"providers replaced ({len(new)} entries)")

    def _locate(self, call: Call, raw: list[Any]) -> int:
        name = call.params["name"]
        for index, entry in enumerate(raw):
            if isinstance(entry, dict) and _entry_name(entry) == name:
                return index
        if any(p.name == name for p in call.live.config.providers):
            raise conflict(f"provider {name!r} is not in the providers: list (built-in or a legacy list); "
                           "edit it with PUT /config.yaml")
        raise not_found(f"no provider {name!r}")

    async def put_provider(self, call: Call) -> dict[str, object]:
        entry = await call.json()
        if not isinstance(entry, dict):
            raise invalid("expected one providers entry (an object)")
        name = call.params["name"]
        if "name" in entry and entry["name"] != name:
            raise invalid(f"name: the body names {entry['name']!r} but the path names {name!r}")
        async with self._file_lock:
            text, data = self._read_file()
            raw = self._raw_providers(data)
            index = self._locate(call, raw)
            if _entry_name(entry) != name:
                entry = {**entry, "name": name}
            raw[index] = _unmask_entry(entry, raw[index], f"providers[{index}]")
            return await self._save_providers(call, text, raw, f"provider {name} replaced")

    async def delete_provider(self, call: Call) -> dict[str, object]:
        async with self._file_lock:
            text, data = self._read_file()
            raw = self._raw_providers(data)
            index = self._locate(call, raw)
            removed = raw.pop(index)
            return await self._save_providers(call, text, raw, f"provider {_entry_name(removed)} removed")


def params_error(params: dict[str, str]) -> ApiError:
    allowed = params.get("allowed")
    if allowed:
        return ApiError(405, "METHOD_NOT_ALLOWED", f"method not allowed; use {allowed}")
    return not_found("no such management route")


ROUTES: tuple[RouteSpec, ...] = (
    _route("GET", "/openapi.json", Management.openapi),
    _route("GET", "/status", Management.status),
    _route("GET", "/config", Management.config),
    _route("GET", "/config.yaml", Management.config_yaml),
    _route("PUT", "/config.yaml", Management.put_config_yaml, mutates=True),
    _route("POST", "/reload", Management.reload, mutates=True),
    _route("GET", "/api-keys", Management.get_api_keys),
    _route("PUT", "/api-keys", Management.put_api_keys, mutates=True),
    _route("POST", "/api-keys", Management.post_api_keys, mutates=True),
    _route("PATCH", "/api-keys", Management.patch_api_keys, mutates=True),
    _route("DELETE", "/api-keys", Management.delete_api_keys, mutates=True),
    _route("GET", "/providers", Management.get_providers),
    _route("POST", "/providers", Management.post_providers, mutates=True),
    _route("PUT", "/providers", Management.put_providers, mutates=True),
    _route("GET", "/providers/{name}", Management.get_provider),
    _route("PUT", "/providers/{name}", Management.put_provider, mutates=True),
    _route("DELETE", "/providers/{name}", Management.delete_provider, mutates=True),
    _route("GET", "/credentials", Management.credentials),
    _route("POST", "/credentials/{label}/reset", Management.reset, mutates=True),
    _route("POST", "/credentials/{label}/enable", Management.enable, mutates=True),
    _route("POST", "/credentials/{label}/disable", Management.disable, mutates=True),
    _route("GET", "/usage", Management.usage),
    _route("GET", "/logs", Management.logs),
    _route("GET", "/request-logs", Management.request_logs),
    _route("GET", "/request-logs/{name}", Management.request_log),
    _route("GET", "/metrics", Management.metrics),
)

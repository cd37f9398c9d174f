"""The OpenAPI 3.1 document of the management API, served at ``GET /v1/management/openapi.json``.

Role: describe every management route (method, path, parameters, request body, responses) and the shapes it
answers with, for the dashboard, the CLI and operators' own tools.

Invariants: the set of (method, path) pairs here equals the management router's table
(``tests/server/test_management.py`` checks it); every success body is the envelope
``{"data": ..., "meta": {"timestamp", "version"}}`` and every error body ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

from muxtrio import __version__

PREFIX = "/v1/management"

_ERROR_CODES = [
    "INVALID_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED", "CONFLICT",
    "PAYLOAD_TOO_LARGE", "UNAVAILABLE", "INTERNAL_ERROR",
]  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "OK",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data", "meta"],
                    "properties": {"data": data, "meta": _ref("Meta")},
                }
            }
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "Invalid request (the message names the field or config key path)",
        401: "Missing or wrong management key",
        403: "Remote address not allowed, or refused after repeated failures",
        404: "Not found (every route answers 404 when no management key is configured)",
        409: "Conflict with the current state",
        413: "Body too large",
        503: "The gateway is starting or stopping, or the usage store is off",
    }
    out = {
        str(status): {
            "description": descriptions[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in (401, 403, 404, *statuses)
    }
    return out


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


_LABEL = {
    "name": "label",
    "in": "path",
    "required": True,
    "description": "credential label, ``<provider>#<index>`` (``#`` percent-encoded as ``%23``)",
    "schema": {"type": "string"},
}
_PROVIDER_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_REQUEST_LOG_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "a file name from GET /request-logs (``YYYYmmddTHHMMSS-<request id>.json``)",
    "schema": {"type": "string", "pattern": "^[0-9]{8}T[0-9]{6}-[A-Za-z0-9._~+-]{1,128}\\.json$"},
}
_CREDENTIAL_ACTION = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}
        },
    },
    "responses": {"200": _envelope(_ref("Credential")), **_errors(400)},
}

_PATHS: dict[str, dict[str, Any]] = {
    "/openapi.json": {
        "get": {"summary": "This document (not enveloped)", "responses": {"200": {"description": "OpenAPI 3.1"}}},
    },
    "/status": {
        "get": {
            "summary": "Version, uptime, workers, listeners, reload history",
            "responses": {"200": _envelope(_ref("Status")), **_errors()},
        }
    },
    "/config": {
        "get": {
            "summary": "The effective configuration as JSON, secrets masked",
            "responses": {"200": _envelope({"type": "object"}), **_errors()},
        }
    },
    "/config.yaml": {
        "get": {
            "summary": "The config file as it is on disk",
            "responses": {
                "200": {"description": "YAML text", "content": {"application/yaml": {"schema": {"type": "string"}}}},
                **_errors(409),
            },
        },
        "put": {
            "summary": "Validate, write atomically (temp file + rename) and reload. A bad file changes nothing.",
            "requestBody": {
                "required": True,
                "content": {"application/yaml": {"schema": {"type": "string"}}},
            },
            "responses": {"200": _envelope(_ref("Reload")), **_errors(400, 409, 413)},
        },
    },
    "/reload": {
        "post": {
            "summary": "Reload the config file now (skipped when its content is unchanged)",
            "responses": {"200": _envelope(_ref("Reload")), **_errors(409)},
        }
    },
    "/api-keys": {
        "get": {
            "summary": "Gateway client keys (masked), in file order",
            "responses": {"200": _envelope({"type": "array", "items": _ref("ApiKey")}), **_errors()},
        },
        "put": {
            "summary": "Replace the whole list",
            "requestBody": _json_body(
                {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object",
                 "properties": {"items": {"type": "array", "items": {"type": "string"}}}}]},
                "a list of keys, or {\"items\": [...]}",
            ),
            "responses": {"200": _envelope(_ref("KeyChange")), **_errors(400, 409)},
        },
        "post": {
            "summary": "Add one key; without ``value`` a new random key is generated and returned once",
            "requestBody": _json_body(
                {"type": "object", "properties": {"value": {"type": "string"}}}, "{\"value\": \"...\"} or {}"
            ),
            "responses": {"200": _envelope(_ref("KeyChange")), **_errors(400, 409)},
        },
        "patch": {
            "summary": "Replace one key: {\"old\", \"new\"} or {\"index\", \"value\"}",
            "requestBody": _json_body(
                {"type": "object"}, "{\"old\": ..., \"new\": ...} or {\"index\": n, \"value\": ...}"
            ),
            "responses": {"200": _envelope(_ref("KeyChange")), **_errors(400, 409)},
        },
        "delete": {
            "summary": "Remove one key: ?index= or ?value=",
            "parameters": [
                _query("index", "position in GET /api-keys", {"type": "integer"}),
                _query("value", "the key itself", {"type": "string"}),
            ],
            "responses": {"200": _envelope(_ref("KeyChange")), **_errors(400, 409)},
        },
    },
    "/providers": {
        "get": {
            "summary": "Every provider (keys masked) and where it is defined",
            "responses": {"200": _envelope({"type": "array", "items": _ref("Provider")}), **_errors()},
        },
        "post": {
            "summary": "Add a provider to the ``providers:`` list (YAML keys, e.g. type, name, base-url, api-keys)",
            "requestBody": _json_body({"type": "object"}, "one ``providers:`` entry"),
            "responses": {"200": _envelope(_ref("Reload")), **_errors(400, 409)},
        },
        "put": {
            "summary": "Replace the whole ``providers:`` list. A masked key equal to a current key's mask keeps it.",
            "requestBody": _json_body({"type": "array", "items": {"type": "object"}}, "the new list"),
            "responses": {"200": _envelope(_ref("Reload")), **_errors(400, 409)},
        },
    },
    "/providers/{name}": {
        "get": {
            "summary": "One provider",
            "parameters": [_PROVIDER_NAME],
            "responses": {"200": _envelope(_ref("Provider")), **_errors()},
        },
        "put": {
            "summary": "Replace one ``providers:`` entry. A masked key equal to a current key's mask keeps it.",
            "parameters": [_PROVIDER_NAME],
            "requestBody": _json_body({"type": "object"}, "the new entry"),
            "responses": {"200": _envelope(_ref("Reload")), **_errors(400, 409)},
        },
        "delete": {
            "summary": "Remove one ``providers:`` entry (its open streams finish)",
            "parameters": [_PROVIDER_NAME],
            "responses": {"200": _envelope(_ref("Reload")), **_errors(409)},
        },
    },
    "/credentials": {
        "get": {
            "summary": "Every credential of every provider with its live state (this worker's view)",
            "responses": {"200": _envelope({"type": "array", "items": _ref("Credential")}), **_errors()},
        }
    },
    "/credentials/{label}/reset": {
        "post": {
            "summary": "Clear cooldowns, failures and the breaker (all workers)",
            "parameters": [_LABEL],
            **_CREDENTIAL_ACTION,
        }
    },
    "/credentials/{label}/enable": {
        "post": {"summary": "Take new requests again (all workers)", "parameters": [_LABEL], **_CREDENTIAL_ACTION}
    },
    "/credentials/{label}/disable": {
        "post": {
            "summary": "Take no new requests until enabled or until the next restart (all workers)",
            "parameters": [_LABEL],
            **_CREDENTIAL_ACTION,
        }
    },
    "/usage": {
        "get": {
            "summary": "Usage report in llm-mux's shape",
            "parameters": [
                _query(
                    "from", "start: ISO 8601, Unix seconds, or a duration back from now (24h, 7d)", {"type": "string"}
                ),
                _query("to", "end: ISO 8601 or Unix seconds (default now)", {"type": "string"}),
                _query("days", "llm-mux's form: the last N days", {"type": "integer"}),
                _query("group-by", "only this grouping", {"enum": ["model", "provider", "key", "day", "hour"]}),
            ],
            "responses": {"200": _envelope(_ref("Usage")), **_errors(400, 503)},
        }
    },
    "/logs": {
        "get": {
            "summary": "Recent log lines of this worker (an in-memory ring), oldest first",
            "parameters": [
                _query("after", "only lines with a larger seq", {"type": "integer"}),
                _query("limit", "at most this many (default 200, at most 1000)", {"type": "integer"}),
            ],
            "responses": {"200": _envelope(_ref("Logs")), **_errors(400)},
        }
    },
    "/request-logs": {
        "get": {
            "summary": "Request log files, newest first",
            "responses": {"200": _envelope({"type": "array", "items": _ref("RequestLogFile")}), **_errors()},
        }
    },
    "/request-logs/{name}": {
        "get": {
            "summary": "Download one request log (JSON, secrets already masked when written)",
            "parameters": [_REQUEST_LOG_NAME],
            "responses": {"200": {"description": "the file", "content": {"application/json": {}}}, **_errors(400)},
        }
    },
    "/metrics": {
        "get": {
            "summary": "The engine's JSON statistics snapshot (this worker)",
            "responses": {"200": _envelope({"type": "object"}), **_errors()},
        }
    },
}

_SCHEMAS: dict[str, Any] = {
    "Meta": {
        "type": "object",
        "required": ["timestamp", "version"],
        "properties": {"timestamp": {"type": "string", "format": "date-time"}, "version": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"enum": _ERROR_CODES}, "message": {"type": "string"}},
            }
        },
    },
    "Reload": {
        "type": "object",
        "description": "One reload attempt",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "trigger": {"enum": ["startup", "watch", "signal", "api"]},
            "result": {"enum": ["applied", "unchanged", "rejected"]},
            "hash": {"type": "string", "description": "sha256 of the file content applied or rejected"},
            "changes": {"type": "array", "items": {"type": "string"}, "description": "top-level keys changed"},
            "needs_restart": {
                "type": "array",
                "items": {"type": "string"},
                "description": "changed keys that only take effect after a restart (host, port, workers, tls...)",
            },
            "error": {"type": ["string", "null"], "description": "why the file was rejected (names the key path)"},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "version": {"type": "string"},
            "pid": {"type": "integer"},
            "started_at": {"type": "string", "format": "date-time"},
            "uptime_seconds": {"type": "number"},
            "workers": {"type": "integer"},
            "listeners": {"type": "array", "items": {"type": "string"}},
            "config_file": {"type": ["string", "null"]},
            "config_hash": {"type": ["string", "null"]},
            "watching": {"type": "boolean"},
            "reloads": {"type": "array", "items": _ref("Reload")},
            "last_reload_error": {"type": ["string", "null"]},
            "engines_draining": {"type": "integer", "description": "older configurations still serving streams"},
        },
    },
    "ApiKey": {
        "type": "object",
        "properties": {"index": {"type": "integer"}, "key": {"type": "string", "description": "masked"}},
    },
    "KeyChange": {
        "type": "object",
        "properties": {
            "keys": {"type": "array", "items": _ref("ApiKey")},
            "created": {"type": "string", "description": "a generated key, shown once"},
            "reload": _ref("Reload"),
        },
    },
    "Provider": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string"},
            "base-url": {"type": "string"},
            "api-keys": {"type": "array", "items": {"type": "string"}, "description": "masked"},
            "defined-in": {"type": "string", "description": "providers, a legacy list, or built-in"},
            "entry": {"type": ["object", "null"], "description": "the YAML entry, keys masked"},
        },
    },
    "Credential": {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "provider": {"type": "string"},
            "index": {"type": "integer"},
            "key": {"type": "string", "description": "masked"},
            "in_flight": {"type": "integer"},
            "cooling": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "seconds_left": {"type": "number"},
                        "until": {"type": "string", "format": "date-time"},
                        "reason": {"type": "string"},
                    },
                },
            },
            "disabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]},
            "breaker": {"enum": ["closed", "open", "half_open"]},
            "last_error_class": {"type": ["string", "null"]},
            "successes": {"type": "integer"},
            "failures": {"type": "integer"},
            "consecutive_failures": {"type": "integer"},
            "refused": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string", "description": "a model, or * for every model"},
                        "seconds_left": {"type": "number"},
                        "until": {"type": "string", "format": "date-time"},
                        "status": {"type": ["integer", "null"]},
                        "refusals": {"type": "integer"},
                    },
                },
            },
            "removed": {"type": "boolean", "description": "no longer configured; finishing its open streams"},
            "account": {"type": "boolean", "description": "a subscription account (label = the account's)"},
            "retired": {"type": "boolean", "description": "its account's token file is gone"},
            "worker": {"type": "integer", "description": "pid of the worker that answered"},
        },
    },
    "Usage": {
        "type": "object",
        "description": "summary, by_provider, by_model, by_key (= by_account), timeline.by_day/by_hour, period",
    },
    "Logs": {
        "type": "object",
        "properties": {
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "time": {"type": "string", "format": "date-time"},
                        "level": {"type": "string"},
                        "logger": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
            "last_seq": {"type": "integer", "description": "pass as ?after= to get only newer lines"},
            "dropped": {"type": "integer", "description": "lines older than the ring that are gone"},
        },
    },
    "RequestLogFile": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "size": {"type": "integer"},
            "modified": {"type": "string", "format": "date-time"},
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "muxtrio management API",
            "version": __version__,
            "description": (
                "Authenticate with `Authorization: Bearer <management key>` or `X-Management-Key`. The key comes "
                "from MUXTRIO_MANAGEMENT_KEY / LLM_MUX_MANAGEMENT_KEY or remote-management.secret-key; without one "
                "every route answers 404. Loopback only unless remote-management.allow-remote is true. See "
                "docs/management.md."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}, {"managementKey": []}],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "managementKey": {"type": "apiKey", "in": "header", "name": "X-Management-Key"},
            },
        },
    }


def operations() -> set[tuple[str, str]]:
    """Every (METHOD, path) the document describes, paths relative to :data:`PREFIX`."""
    return {(method.upper(), path) for path, item in _PATHS.items() for method in item}

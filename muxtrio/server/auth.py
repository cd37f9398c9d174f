"""Client authentication: which key a request carries and whether it is accepted.

A key is read from ``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key`` or the ``key`` query parameter, and
compared against every configured key in constant time (``hmac.compare_digest``, all keys compared, no early exit).
With ``disable-auth`` everything passes. With no keys configured and auth not disabled, only loopback clients are
served (a fresh install is usable locally and closed to the network). Keys are never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qsl

from muxtrio.config import Config
from muxtrio.errors import ClientError, ErrorKind
from muxtrio.server.http import Scope, header


def presented_key(scope: Scope) -> str | None:
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    for name in (b"x-api-key", b"x-goog-api-key"):
        value = header(scope, name)
        if value:
            return value.strip()
    query = scope.get("query_string", b"")
    if query:
        for name, value in parse_qsl(query.decode("latin-1")):
            if name == "key":
                return str(value)
    return None


def is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def check(config: Config, scope: Scope) -> None:
    """Raise a 401/403 ``ClientError`` unless the request may be served."""
    if config.disable_auth:
        return
    if not config.api_keys:
        if is_loopback(scope):
            return
        raise ClientError(
            ErrorKind.PERMISSION,
            "no api-keys are configured: only loopback clients are served (set api-keys or disable-auth)",
        )
    key = presented_key(scope)
    if key is None:
        raise ClientError(ErrorKind.AUTHENTICATION, "missing API key")
    given = key.encode()
    ok = False
    for configured in config.api_keys:
        ok |= hmac.compare_digest(given, configured.encode())
    if not ok:
        raise ClientError(ErrorKind.AUTHENTICATION, "invalid API key")

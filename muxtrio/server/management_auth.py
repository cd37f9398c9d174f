"""Who may use the management API: the management key, its stored hash, loopback-only access and lockout.

Role: find the configured management key (``MUXTRIO_MANAGEMENT_KEY``, then ``LLM_MUX_MANAGEMENT_KEY``, then
``remote-management.secret-key``), check a request's key (``Authorization: Bearer`` or ``X-Management-Key``) and
address, and refuse an address that failed too often.

Invariants:
- No key configured: the management API does not exist (the caller answers 404 on every route).
- Comparison is constant-time (``hmac.compare_digest`` over fixed-length digests). A key stored as
  ``scrypt:N:r:p:salt:hash`` (what muxtrio writes) or ``sha256:<hex>`` is checked against its hash; scrypt runs in a
  worker thread, and a key that verified once is remembered by its SHA-256 so later requests cost microseconds.
- Non-loopback clients are refused (403) unless ``remote-management.allow-remote`` is true. After
  :data:`MAX_FAILURES` failed attempts from one remote address within :data:`BAN_SECONDS`, that address is refused
  for :data:`BAN_SECONDS` even with the right key.
- A management key is never a gateway key: gateway auth never consults it, and this module never accepts an
  ``api-keys`` entry (config loading refuses a file where they are equal; :func:`management_key` refuses an
  environment key equal to one).
- The key never appears in a log line or an answer; the key's *label* (where it came from) does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from muxtrio.config import Config
from muxtrio.server.auth import is_loopback
from muxtrio.server.http import Scope, header

MAX_FAILURES = 5
BAN_SECONDS = 30 * 60.0
ENV_KEYS = ("MUXTRIO_MANAGEMENT_KEY", "LLM_MUX_MANAGEMENT_KEY")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
HASH_PREFIXES = ("scrypt:", "sha256:")


class Refused(Exception):
    """The request may not use the management API: ``status`` 401 or 403 and an error ``code``."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ManagementKey:
    stored: str  # plain, or a scrypt:/sha256: hash
    label: str  # where it came from, for logs: "env MUXTRIO_MANAGEMENT_KEY" or "config remote-management.secret-key"


def management_key(config: Config, env: Mapping[str, str] | None = None) -> ManagementKey | None:
    env = os.environ if env is None else env
    for name in ENV_KEYS:
        value = env.get(name, "").strip()
        if value:
            if value in config.api_keys:
                raise ValueError(f"{name} must not also be a gateway api-keys entry")
            return ManagementKey(value, f"env {name}")
    stored = config.remote_management.secret_key
    if stored:
        return ManagementKey(stored.strip(), "config remote-management.secret-key")
    return None


def is_hashed(value: str) -> bool:
    return value.startswith(HASH_PREFIXES)


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """The scrypt form muxtrio writes for ``remote-management.secret-key``."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = base64.urlsafe_b64encode
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{encode(salt).decode()}:{encode(digest).decode()}"


def verify(stored: str, presented: str) -> bool:
    """Constant-time check of ``presented`` against a plain or hashed stored key (blocking for scrypt)."""
    given = presented.encode()
    if stored.startswith("sha256:"):
        expected = stored[len("sha256:") :].strip().lower()
        return hmac.compare_digest(hashlib.sha256(given).hexdigest(), expected)
    if stored.startswith("scrypt:"):
        try:
            _, n, r, p, salt, digest = stored.split(":")
            want = base64.urlsafe_b64decode(digest)
            got = hashlib.scrypt(
                given, salt=base64.urlsafe_b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(want),
                maxmem=256 << 20,
            )  # fmt: skip
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(got, want)
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(stored.encode()).digest())


def presented_management_key(scope: Scope) -> str | None:
    value = header(scope, b"x-management-key")
    if value:
        return value.strip()
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


class Guard:
    """Per-worker state of management authentication: verified-key cache and remote failure counts."""

    def __init__(self) -> None:
        self._verified: dict[str, bytes] = {}  # stored key -> sha256 of the presented key that matched it
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (count, first failure time)
        self._banned_until: dict[str, float] = {}

    async def check(self, scope: Scope, key: ManagementKey, allow_remote: bool, now: float | None = None) -> str:
        """The address of an accepted request; raises :class:`Refused` otherwise."""
        now = time.monotonic() if now is None else now
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        remote = not is_loopback(scope)
        if remote and not allow_remote:
            raise Refused(403, "FORBIDDEN", "the management API is loopback-only (remote-management.allow-remote)")
        if remote:
            until = self._banned_until.get(address, 0.0)
            if until > now:
                raise Refused(403, "FORBIDDEN", "too many failed attempts from this address", until - now)
            self._banned_until.pop(address, None)
        presented = presented_management_key(scope)
        if presented is None:
            self._fail(address, remote, now)
            raise Refused(401, "UNAUTHORIZED", "missing management key (Authorization: Bearer or X-Management-Key)")
        if not await self._matches(key.stored, presented):
            self._fail(address, remote, now)
            raise Refused(401, "UNAUTHORIZED", "invalid management key")
        self._failures.pop(address, None)
        return address

    async def _matches(self, stored: str, presented: str) -> bool:
        fingerprint = hashlib.sha256(presented.encode()).digest()
        known = self._verified.get(stored)
        if known is not None and hmac.compare_digest(known, fingerprint):
            return True
        if stored.startswith("scrypt:"):
            ok = await trio.to_thread.run_sync(verify, stored, presented)
        else:
            ok = verify(stored, presented)
        if ok:
            self._verified = {stored: fingerprint}  # one stored key at a time: a rotated key forgets the old one
        return ok

    def _fail(self, address: str, remote: bool, now: float) -> None:
        if not remote:
            return
        count, first = self._failures.get(address, (0, now))
        if now - first > BAN_SECONDS:
            count, first = 0, now
        count += 1
        self._failures[address] = (count, first)
        if count >= MAX_FAILURES:
            self._banned_until[address] = now + BAN_SECONDS
            self._failures.pop(address, None)

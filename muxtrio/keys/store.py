"""Client keys and their shared counters in the usage database (same DSN): SQLite by default, Postgres when set.

Tables (created on open, the same on both backends):
- ``client_keys``: one row per key; the key itself is never stored, only ``digest`` = HMAC-SHA256(secret, key).
- ``client_key_secret``: the one HMAC secret (32 random bytes, hex), made by whichever process opens the database
  first (insert-if-absent, then read back, so every worker and node sharing the DSN agrees on it).
- ``client_key_counters``: (key, kind, window start) -> units used, for the windows of the rate limits and budgets.
  Workers lease units from it atomically (:meth:`KeyStore.lease`) and write settlements back in batches
  (:meth:`KeyStore.adjust`).

Why the secret lives in the database rather than a 0600 file: every worker and every node that shares the DSN
needs the same secret, and the database is the one thing they already share; a file would have to be copied to
each node and kept in step. Keys carry 256 random bits, so the hash needs no secret to resist guessing; the keyed
hash adds that a copy of ``client_keys`` alone (a partial dump, a log of a query) cannot even confirm a candidate
key. SQLite files are created 0600.

Invariants:
- Blocking: callers run these methods in a worker thread; one lock serialises calls on the one connection.
- Every statement is parameterised; nothing from a client is formatted into SQL text.
- ``lease`` never grants more than ``limit - used`` (read and written in one transaction: ``BEGIN IMMEDIATE`` on
  SQLite, ``SELECT … FOR UPDATE`` on Postgres), so the sum of all workers' grants stays within the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from muxtrio.keys.model import ClientKey, limits_from
from muxtrio.usage.store import sqlite_path

T = TypeVar("T")

_KEY_COLUMNS = (
    "id", "name", "digest", "hint", "created_at", "updated_at", "expires_at", "last_used_at", "revoked_at",
    "enabled", "owner", "team", "metadata", "models", "limits",
)  # fmt: skip

SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS client_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE, "
    "hint TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
    "expires_at DOUBLE PRECISION, last_used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION, "
    "enabled BOOLEAN NOT NULL, owner TEXT, team TEXT, metadata TEXT NOT NULL, models TEXT NOT NULL, "
    "limits TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS client_keys_updated ON client_keys (updated_at)",
    "CREATE TABLE IF NOT EXISTS client_key_secret (id INTEGER PRIMARY KEY, secret TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS client_key_counters (key_id TEXT NOT NULL, kind TEXT NOT NULL, "
    "window_start BIGINT NOT NULL, used DOUBLE PRECISION NOT NULL, PRIMARY KEY (key_id, kind, window_start))",
)

COUNTER_RETENTION = 40 * 86400.0  # longer than the longest window (a month)
SLOTS = "slots@"  # kind prefix of a worker's concurrency-slot row: window_start is its heartbeat


def _row(key: ClientKey) -> tuple[object, ...]:
    return (
        key.id, key.name, key.digest, key.hint, key.created_at, key.updated_at, key.expires_at, key.last_used_at,
        key.revoked_at, key.enabled, key.owner, key.team, orjson.dumps(key.metadata).decode(),
        orjson.dumps(list(key.models)).decode(),
        orjson.dumps({name: value for name, value in key.limits.as_dict().items() if value is not None}).decode(),
    )  # fmt: skip


def _key(row: Sequence[Any]) -> ClientKey:
    values = dict(zip(_KEY_COLUMNS, row, strict=True))
    return ClientKey(
        id=values["id"], name=values["name"], digest=values["digest"], hint=values["hint"],
        created_at=values["created_at"], updated_at=values["updated_at"], expires_at=values["expires_at"],
        last_used_at=values["last_used_at"], revoked_at=values["revoked_at"], enabled=bool(values["enabled"]),
        owner=values["owner"], team=values["team"], metadata=orjson.loads(values["metadata"]),
        models=tuple(orjson.loads(values["models"])), limits=limits_from(orjson.loads(values["limits"])),
    )  # fmt: skip


class KeyStore(ABC):
    """The operations on both backends; a backend supplies the connection, the placeholder and transactions."""

    label = "keys"
    _ph = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secret = b""

    # -- backend hooks
    @abstractmethod
    def _transaction(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(cursor)`` in one transaction of this backend."""

    @abstractmethod
    def _upsert_add_sql(self) -> str:
        """The backend's "insert, or add to the existing row" statement for counters."""

    def _for_update(self) -> str:
        return ""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # -- helpers
    def _run(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            return self._transaction(fn)

    def _sql(self, text: str) -> str:
        return text.replace("?", self._ph)

    def _setup(self) -> None:
        def create(cur: Any) -> bytes:
            if self._ph == "%s":  # Postgres: concurrent CREATE TABLE IF NOT EXISTS races on the catalog
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('muxtrio-schema'))")
            for statement in SCHEMA:
                cur.execute(statement)
            cur.execute(
                self._sql("INSERT INTO client_key_secret (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING"),
                (secrets.token_hex(32),),
            )
            cur.execute("SELECT secret FROM client_key_secret WHERE id = 1")
            return bytes.fromhex(cur.fetchone()[0])

        self._secret = self._run(create)

    # -- hashing
    def digest(self, secret_key: str) -> str:
        """The stored form of a key: HMAC-SHA256 with the database's secret, hex."""
        return hmac.new(self._secret, secret_key.encode(), hashlib.sha256).hexdigest()

    # -- keys
    def insert(self, key: ClientKey) -> None:
        marks = ", ".join("?" for _ in _KEY_COLUMNS)
        sql = self._sql(f"INSERT INTO client_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({marks})")
        self._run(lambda cur: cur.execute(sql, _row(key)))

    def update(self, key: ClientKey) -> None:
        columns = ", ".join(f"{name} = ?" for name in _KEY_COLUMNS[1:])
        sql = self._sql(f"UPDATE client_keys SET {columns} WHERE id = ?")
        self._run(lambda cur: cur.execute(sql, (*_row(key)[1:], key.id)))

    def _select(self, where: str, params: tuple[object, ...]) -> list[ClientKey]:
        sql = self._sql(f"SELECT {', '.join(_KEY_COLUMNS)} FROM client_keys {where}")

        def query(cur: Any) -> list[ClientKey]:
            cur.execute(sql, params)
            return [_key(row) for row in cur.fetchall()]

        return self._run(query)

    def all(self) -> list[ClientKey]:
        return self._select("ORDER BY created_at", ())

    def get(self, key_id: str) -> ClientKey | None:
        found = self._select("WHERE id = ?", (key_id,))
        return found[0] if found else None

    def by_digest(self, digest: str) -> ClientKey | None:
        found = self._select("WHERE digest = ?", (digest,))
        return found[0] if found else None

    def changed_since(self, since: float) -> list[ClientKey]:
        return self._select("WHERE updated_at >= ? ORDER BY updated_at", (since,))

    def touch(self, last_used: dict[str, float]) -> None:
        """Record last-used times (a batch; never moves ``updated_at``, so refreshes stay small)."""
        if not last_used:
            return
        sql = self._sql(
            "UPDATE client_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"
        )
        rows = [(ts, key_id, ts) for key_id, ts in last_used.items()]
        self._run(lambda cur: cur.executemany(sql, rows))

    # -- counters
    def lease(
        self, key_id: str, kind: str, window: int, limit: float, want: float, minimum: float, spent: float = 0.0
    ) -> tuple[float, float]:
        """First add ``spent`` (units this worker used beyond its leases, not yet written), then take up to ``want``
        units of (key, kind, window), at least ``minimum`` or nothing, never past ``limit``. Returns (granted, used
        after)."""
        insert = self._sql(
            "INSERT INTO client_key_counters (key_id, kind, window_start, used) VALUES (?, ?, ?, 0) "
            "ON CONFLICT (key_id, kind, window_start) DO NOTHING"
        )
        select = self._sql(
            "SELECT used FROM client_key_counters WHERE key_id = ? AND kind = ? AND window_start = ?"
            + self._for_update()
        )
        update = self._sql(
            "UPDATE client_key_counters SET used = used + ? WHERE key_id = ? AND kind = ? AND window_start = ?"
        )

        def take(cur: Any) -> tuple[float, float]:
            cur.execute(insert, (key_id, kind, window))
            cur.execute(select, (key_id, kind, window))
            used = float(cur.fetchone()[0])
            if spent:
                cur.execute(update, (spent, key_id, kind, window))
                used += spent
            available = limit - used
            if available < minimum or available <= 0:
                return 0.0, used
            granted = min(want, available)
            cur.execute(update, (granted, key_id, kind, window))
            return granted, used + granted

        return self._run(take)

    def _lock_key(self, cur: Any, key_id: str) -> None:  # noqa: B027 (a hook with a default: nothing to do)
        """Serialise slot leases of one key (SQLite: ``BEGIN IMMEDIATE`` already does)."""

    def lease_slots(
        self, key_id: str, worker: str, limit: int, want: int, holding: int, now: float, stale_before: float
    ) -> tuple[int, int]:
        """Concurrency slots: this worker's row says ``holding`` slots; take up to ``want`` more if every worker's
        fresh rows (heartbeat at or after ``stale_before``) leave room under ``limit``. Returns (granted, every
        worker's slots after)."""
        kind = SLOTS + worker
        others = self._sql(
            "SELECT COALESCE(SUM(used), 0) FROM client_key_counters WHERE key_id = ? AND kind LIKE ? AND kind <> ? "
            "AND window_start >= ?"
        )

        def take(cur: Any) -> tuple[int, int]:
            self._lock_key(cur, key_id)
            cur.execute(others, (key_id, SLOTS + "%", kind, int(stale_before)))
            taken = int(cur.fetchone()[0])
            granted = max(0, min(want, limit - taken - holding))
            self._write_slots(cur, key_id, kind, holding + granted, now)
            return granted, taken + holding + granted

        return self._run(take)

    def write_slots(self, rows: list[tuple[str, str, int]], now: float) -> None:
        """Heartbeat: (key, worker, slots held) for this worker's rows."""
        if not rows:
            return

        def write(cur: Any) -> None:
            for key_id, worker, count in rows:
                self._write_slots(cur, key_id, SLOTS + worker, count, now)

        self._run(write)

    def _write_slots(self, cur: Any, key_id: str, kind: str, count: int, now: float) -> None:
        cur.execute(self._sql("DELETE FROM client_key_counters WHERE key_id = ? AND kind = ?"), (key_id, kind))
        if count > 0:
            cur.execute(
                self._sql("INSERT INTO client_key_counters (key_id, kind, window_start, used) VALUES (?, ?, ?, ?)"),
                (key_id, kind, int(now), float(count)),
            )

    def adjust(self, deltas: Iterable[tuple[str, str, int, float]]) -> None:
        """Add (or, negative, give back) units per (key, kind, window), never below zero: settlements and returned
        leases, written in one batch."""
        rows = [(key_id, kind, window, delta, delta) for key_id, kind, window, delta in deltas if delta]
        if not rows:
            return
        sql = self._upsert_add_sql()
        self._run(lambda cur: cur.executemany(sql, rows))

    def counters(self, key_id: str, windows: dict[str, int]) -> dict[str, float]:
        """Units used per kind in the given windows (for views; not on the request path)."""
        sql = self._sql("SELECT kind, window_start, used FROM client_key_counters WHERE key_id = ?")

        def query(cur: Any) -> dict[str, float]:
            cur.execute(sql, (key_id,))
            return {kind: float(used) for kind, window, used in cur.fetchall() if windows.get(kind) == window}

        return self._run(query)

    def delete_counters_before(self, ts: float) -> None:
        sql = self._sql("DELETE FROM client_key_counters WHERE window_start < ?")
        self._run(lambda cur: cur.execute(sql, (int(ts),)))


class SQLiteKeyStore(KeyStore):
    """A SQLite file shared by the workers of one host (WAL, busy timeout; the usage records' file)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.label = f"sqlite:{path}"
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        os.chmod(path, 0o600)
        self._setup()

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            result = fn(cur)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    def _upsert_add_sql(self) -> str:
        return (
            "INSERT INTO client_key_counters (key_id, kind, window_start, used) VALUES (?, ?, ?, MAX(0, ?)) "
            "ON CONFLICT (key_id, kind, window_start) DO UPDATE SET used = MAX(0, used + ?)"
        )

    def close(self) -> None:
        self._db.close()


class PostgresKeyStore(KeyStore):
    """Postgres through psycopg 3 (sync API, from a worker thread); reconnects after a failure."""

    _ph = "%s"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self.label = "postgres"
        self._conn: Any = None
        self._setup()

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                return fn(cur)
        except self._psycopg.OperationalError:
            self._conn.close()
            self._conn = None
            raise

    def _for_update(self) -> str:
        return " FOR UPDATE"

    def _lock_key(self, cur: Any, key_id: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key_id,))

    def _upsert_add_sql(self) -> str:
        return (
            "INSERT INTO client_key_counters (key_id, kind, window_start, used) VALUES (%s, %s, %s, GREATEST(0, %s)) "
            "ON CONFLICT (key_id, kind, window_start) DO UPDATE SET used = GREATEST(0, "
            "client_key_counters.used + %s)"
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def open_key_store(dsn: str) -> KeyStore:
    """Open the key store a usage DSN names (blocking: call it from a worker thread)."""
    path = sqlite_path(dsn)
    if path is not None:
        return SQLiteKeyStore(path)
    if dsn.startswith(("postgres://", "postgresql://")):
        return PostgresKeyStore(dsn)
    raise ValueError("usage.dsn must start with sqlite:// or postgres://")


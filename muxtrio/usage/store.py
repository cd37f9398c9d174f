"""Usage storage behind one small synchronous interface: SQLite (embedded default) or Postgres (shared, multi-node).

The DSN picks the backend (llm-mux's scheme): ``sqlite:///abs/path.db`` (``sqlite://relative.db`` and ``~`` work too),
``postgres://…`` / ``postgresql://…``. Stores are blocking; the writer calls them from a worker thread, one call at a
time, so the event loop never waits on a database.

Invariants:
- The schema is created on open and is the same on both backends; day/hour buckets are stored as UTC text so
  grouping needs no backend-specific date functions.
- SQLite runs in WAL mode with a busy timeout, so several worker processes can write to the same file.
- Every query is parameterised; nothing from a client is ever formatted into SQL text.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from muxtrio.paths import data_dir
from muxtrio.usage.record import COLUMNS, UsageRecord

_TYPES: dict[str, str] = {
    "request_id": "TEXT NOT NULL",
    "client_format": "TEXT NOT NULL",
    "requested_model": "TEXT NOT NULL",
    "status": "INTEGER NOT NULL",
    "ts": "DOUBLE PRECISION NOT NULL",
    "cost": "DOUBLE PRECISION",
    "ttft_ms": "DOUBLE PRECISION",
    "duration_ms": "DOUBLE PRECISION NOT NULL",
    "tokens_estimated": "BOOLEAN NOT NULL",
    "continued": "BOOLEAN NOT NULL",
    "regenerated": "BOOLEAN NOT NULL",
    "stream": "BOOLEAN NOT NULL",
    "attempts": "INTEGER NOT NULL",
    "failovers": "INTEGER NOT NULL",
}
_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens",
                  "total_tokens")
ALL_COLUMNS: tuple[str, ...] = (*COLUMNS, "day", "hour")


def _column_type(name: str) -> str:
    if name in _TYPES:
        return _TYPES[name]
    if name in _TOKEN_COLUMNS:
        return "BIGINT"
    return "TEXT"


SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS usage_records ("
    + ", ".join(f"{name} {_column_type(name)}" for name in ALL_COLUMNS)
    + ")",
    "CREATE INDEX IF NOT EXISTS usage_records_ts ON usage_records (ts)",
    "CREATE INDEX IF NOT EXISTS usage_records_key ON usage_records (client_key_id)",
    "CREATE INDEX IF NOT EXISTS usage_records_provider_model ON usage_records (provider, served_model)",
)

# Group keys a report may ask for, mapped to SQL expressions over fixed column names (never client text).
GROUP_KEYS: dict[str, str] = {
    "provider": "COALESCE(provider, '-')",
    "model": "COALESCE(served_model, requested_model)",
    "key": "COALESCE(client_key_name, client_key_id, '-')",
    "day": "day",
    "hour": "hour",
}


def buckets(ts: float) -> tuple[str, str]:
    """UTC day and hour buckets of a timestamp: ``('2026-12-06', '2026-12-06T08')``."""
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime(ts))
    return hour[:10], hour


class Store(Protocol):
    """What the writer and the reports need from a database."""

    label: str

    def write(self, records: Sequence[UsageRecord]) -> None: ...

    def aggregate(self, group: str | None, since: float, until: float) -> list[dict[str, Any]]: ...

    def delete_before(self, ts: float) -> int: ...

    def records(self, since: float, until: float) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def _aggregate_sql(group: str | None, placeholder: str) -> str:
    key = GROUP_KEYS[group] if group is not None else "'all'"
    tokens = ", ".join(f"SUM({name}) AS {name}" for name in _TOKEN_COLUMNS)
    return (
        f"SELECT {key} AS grp, COUNT(*) AS requests, "
        "SUM(CASE WHEN status < 400 AND error_class IS NULL THEN 1 ELSE 0 END) AS success, "
        f"{tokens}, SUM(cost) AS cost, AVG(duration_ms) AS avg_duration_ms, AVG(ttft_ms) AS avg_ttft_ms "
        f"FROM usage_records WHERE ts >= {placeholder} AND ts < {placeholder} GROUP BY grp ORDER BY grp"
    )


_RECORDS_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM usage_records WHERE ts >= {{0}} AND ts < {{0}} ORDER BY ts, request_id"
)


_FIELDS = attrgetter(*COLUMNS)  # flat field values in column order (dataclasses.astuple deep-copies: 3x slower)


def _rows(records: Iterable[UsageRecord]) -> list[tuple[object, ...]]:
    return [(*_FIELDS(record), *buckets(record.ts)) for record in records]


def _insert_sql(placeholder: str) -> str:
    marks = ", ".join(placeholder for _ in ALL_COLUMNS)
    return f"INSERT INTO usage_records ({', '.join(ALL_COLUMNS)}) VALUES ({marks})"


class SQLiteStore:
    """A SQLite file (WAL, busy timeout); safe to share between worker processes of one host."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.label = f"sqlite:{path}"
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            for statement in SCHEMA:
                self._db.execute(statement)
        os.chmod(path, 0o600)

    def write(self, records: Sequence[UsageRecord]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_insert_sql("?"), _rows(records))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def aggregate(self, group: str | None, since: float, until: float) -> list[dict[str, Any]]:
        cursor = self._db.execute(_aggregate_sql(group, "?"), (since, until))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def records(self, since: float, until: float) -> list[dict[str, Any]]:
        """Every record of the period, oldest first, one dict per row (column -> value; booleans as 0/1)."""
        cursor = self._db.execute(_RECORDS_SQL.format("?"), (since, until))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def delete_before(self, ts: float) -> int:
        return self._db.execute("DELETE FROM usage_records WHERE ts < ?", (ts,)).rowcount

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    """A Postgres database through psycopg 3 (sync API, called from a worker thread); reconnects after failures."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self.label = "postgres"
        self._conn: Any = None  # connected on first use: a database down at startup only delays the writes

    def _connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            with self._conn.transaction():
                # Nodes starting together would race on the catalog (CREATE TABLE IF NOT EXISTS is not atomic).
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('muxtrio-schema'))")
                for statement in SCHEMA:
                    self._conn.execute(statement)
        return self._conn

    def _run(self, fn: Any) -> Any:
        try:
            return fn(self._connect())
        except self._psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            raise

    def write(self, records: Sequence[UsageRecord]) -> None:
        rows = _rows(records)

        def insert(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_insert_sql("%s"), rows)

        self._run(insert)

    def aggregate(self, group: str | None, since: float, until: float) -> list[dict[str, Any]]:
        def query(conn: Any) -> list[dict[str, Any]]:
            cursor = conn.execute(_aggregate_sql(group, "%s"), (since, until))
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

        result: list[dict[str, Any]] = self._run(query)
        return result

    def records(self, since: float, until: float) -> list[dict[str, Any]]:
        """Every record of the period, oldest first, one dict per row (column -> value)."""

        def query(conn: Any) -> list[dict[str, Any]]:
            cursor = conn.execute(_RECORDS_SQL.format("%s"), (since, until))
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

        result: list[dict[str, Any]] = self._run(query)
        return result

    def delete_before(self, ts: float) -> int:
        def delete(conn: Any) -> int:
            return int(conn.execute("DELETE FROM usage_records WHERE ts < %s", (ts,)).rowcount)

        result: int = self._run(delete)
        return result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def default_sqlite_path() -> str:
    """``usage.db`` in the data directory (``$XDG_DATA_HOME/muxtrio``, else ``~/.local/share/muxtrio``)."""
    return os.path.join(data_dir(), "usage.db")


def sqlite_path(dsn: str) -> str | None:
    """The file path of a ``sqlite://`` DSN, or None for another scheme."""
    if not dsn.startswith("sqlite:"):
        return None
    rest = dsn[len("sqlite:"):]
    rest = rest[2:] if rest.startswith("//") else rest
    return os.path.expanduser(rest) if rest else default_sqlite_path()


def open_store(dsn: str) -> Store:
    """Open the store a DSN names (blocking: call it from a worker thread)."""
    path = sqlite_path(dsn)
    if path is not None:
        return SQLiteStore(path)
    if dsn.startswith(("postgres://", "postgresql://")):
        return PostgresStore(dsn)
    raise ValueError("usage.dsn must start with sqlite:// or postgres://")

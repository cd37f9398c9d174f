"""Usage store, writer and report against real SQLite files and a real throwaway Postgres cluster."""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest
import trio

from muxtrio.usage.record import UsageRecord
from muxtrio.usage.report import build_report
from muxtrio.usage.store import PostgresStore, SQLiteStore, Store, open_store, sqlite_path
from muxtrio.usage.writer import UsageWriter, open_writer
from tests.conftest import needs_postgres
from tests.services import Postgres, throwaway_dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def dsn(request: pytest.FixtureRequest, tmp_path: object) -> str:
    pg = request.getfixturevalue("pg") if request.param == "postgres" else None
    return throwaway_dsn(request.param, tmp_path, pg, ("usage_records",))


def record(i: int, **kw: object) -> UsageRecord:
    base: dict[str, object] = dict(
        request_id=f"r{i}", client_format="openai", requested_model="sonnet", status=200, ts=1_765_000_000.0 + i * 600,
        provider="anthropic", served_model="claude-x", credential="anthropic#1", client_key_name="team-a",
        input_tokens=10, output_tokens=5, total_tokens=15, duration_ms=12.5, ttft_ms=3.0, attempts=1, stream=True,
    )
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def test_dsn_paths() -> None:
    assert sqlite_path("sqlite:///var/x.db") == "/var/x.db"
    assert sqlite_path("sqlite://rel/x.db") == "rel/x.db"
    assert sqlite_path("postgres://h/db") is None
    with pytest.raises(ValueError, match="sqlite:// or postgres://"):
        open_store("mysql://x")


def test_write_and_report(dsn: str) -> None:
    store: Store = open_store(dsn)
    try:
        store.write([
            record(1),
            record(2, status=429, error_class="rate_limited", input_tokens=None, output_tokens=None, total_tokens=None),
            record(3, provider="openai", served_model="gpt-x", client_key_name="team-b", input_tokens=100,
                   output_tokens=50, total_tokens=150, reasoning_tokens=20, cost=0.25),
            record(200, requested_model="other"),  # outside the window below
        ])
        report = build_report(store, since=1_765_000_000.0, until=1_765_000_000.0 + 3600, retention_days=30)
    finally:
        store.close()
    summary = report["summary"]
    assert (summary["total_requests"], summary["success_count"], summary["failure_count"]) == (3, 2, 1)
    assert summary["tokens"] == {"input": 110, "output": 55, "reasoning": 20, "cache_read": None,
                                 "cache_write": None, "total": 165}
    assert summary["cost"] == 0.25
    providers = {row["provider"]: row for row in report["by_provider"]}
    assert providers["anthropic"]["requests"] == 2 and providers["anthropic"]["failure_count"] == 1
    assert providers["openai"]["tokens"]["reasoning"] == 20
    assert {row["model"] for row in report["by_model"]} == {"claude-x", "gpt-x"}
    assert {row["key"]: row["requests"] for row in report["by_key"]} == {"team-a": 2, "team-b": 1}
    assert report["by_account"] == report["by_key"]
    # 1_765_000_000 is 2025-12-06T05:46:40Z: records 1 (05:56) | 2, 3 (06:06, 06:16)
    assert [(row["hour"], row["requests"]) for row in report["timeline"]["by_hour"]] == [
        ("2025-12-06T05", 1), ("2025-12-06T06", 2)]
    assert [(row["day"], row["requests"]) for row in report["timeline"]["by_day"]] == [("2025-12-06", 3)]
    assert report["period"]["retention_days"] == 30
    only = build_report(open_store(dsn), since=0, group_by="model")
    assert set(only) == {"summary", "by_model", "period"}
    with pytest.raises(ValueError, match="group-by"):
        build_report(open_store(dsn), since=0, group_by="model; DROP TABLE usage_records")


def test_retention_delete(dsn: str) -> None:
    store = open_store(dsn)
    store.write([record(1), record(2)])
    assert store.delete_before(1_765_000_000.0 + 900) == 1
    assert build_report(store, since=0)["summary"]["requests"] == 1
    store.close()


async def test_writer_batches_and_flushes_on_close(tmp_path: object) -> None:
    dsn = f"sqlite://{tmp_path}/w.db"
    async with open_writer(dsn, batch_size=10, flush_interval=60, retention_days=0) as writer:
        for i in range(25):
            assert writer.submit(record(i))
        await trio.sleep(0.5)
        # two full batches went out without waiting for the interval; the rest waits for the interval or close
        assert writer.statistics.written == 20
    assert writer.statistics.written == 25 and writer.statistics.dropped == 0
    rows = sqlite3.connect(f"{tmp_path}/w.db").execute("SELECT COUNT(*) FROM usage_records").fetchone()
    assert rows == (25,)


async def test_writer_flushes_by_interval(tmp_path: object) -> None:
    async with open_writer(f"sqlite://{tmp_path}/i.db", batch_size=100, flush_interval=0.2, retention_days=0) as w:
        w.submit(record(1))
        with trio.fail_after(10):
            while w.statistics.written < 1:
                await trio.sleep(0.05)


class FlakyStore:
    """A real SQLite store whose writes fail while ``down`` is set (a database outage)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.label = "flaky"
        self.down = False

    def write(self, records: object) -> None:
        if self.down:
            raise ConnectionError("database down")
        self.inner.write(records)  # type: ignore[arg-type]

    def aggregate(self, group: str | None, since: float, until: float) -> list[dict[str, object]]:
        return self.inner.aggregate(group, since, until)

    def delete_before(self, ts: float) -> int:
        return self.inner.delete_before(ts)

    def close(self) -> None:
        self.inner.close()


async def test_writer_outage_drops_counted_then_recovers(tmp_path: object) -> None:
    flaky = FlakyStore(SQLiteStore(f"{tmp_path}/f.db"))
    flaky.down = True
    writer = UsageWriter(flaky, batch_size=5, flush_interval=0.05, retention_days=0, queue_limit=10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        accepted = sum(writer.submit(record(i)) for i in range(40))
        await trio.sleep(0.3)
        assert writer.statistics.written == 0
        assert writer.statistics.dropped == 40 - accepted > 0
        flaky.down = False
        with trio.fail_after(20):
            while writer.statistics.written < accepted:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    await writer.drain(1)
    assert build_report(flaky.inner, since=0)["summary"]["requests"] == accepted


@needs_postgres
async def test_postgres_stopped_then_restarted(pg: Postgres) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS usage_records")
    async with open_writer(pg.dsn, batch_size=1, flush_interval=0.05, retention_days=0) as writer:
        writer.submit(record(1))
        with trio.fail_after(10):
            while writer.statistics.written < 1:
                await trio.sleep(0.05)
        await trio.to_thread.run_sync(pg.stop)
        writer.submit(record(2))
        with trio.fail_after(10):
            while writer.statistics.failed_writes < 1:
                await trio.sleep(0.05)
        await trio.to_thread.run_sync(pg.start)
        with trio.fail_after(30):
            while writer.statistics.written < 2:
                await trio.sleep(0.1)
    store = PostgresStore(pg.dsn)
    assert build_report(store, since=0)["summary"]["requests"] == 2
    store.close()


def test_sqlite_file_is_private(tmp_path: object) -> None:
    import os
    import stat

    SQLiteStore(f"{tmp_path}/p.db").close()
    assert stat.S_IMODE(os.stat(f"{tmp_path}/p.db").st_mode) == 0o600
    assert time.time() > 0

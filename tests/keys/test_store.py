"""The client-key store against a real SQLite file and a real throwaway Postgres cluster: keys round-trip without
their secret, one HMAC secret per database, leases never pass the limit under concurrent workers, settlements and
returned leases add up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from muxtrio.keys.model import ClientKey, Limits, hint, new_key_id, new_secret
from muxtrio.keys.store import KeyStore, open_key_store
from tests.conftest import needs_postgres
from tests.services import throwaway_dsn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_postgres)])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    pg = request.getfixturevalue("pg") if request.param == "postgres" else None
    return throwaway_dsn(request.param, tmp_path, pg, ("client_keys", "client_key_secret", "client_key_counters"))


def make_key(store: KeyStore, name: str = "team-a") -> tuple[ClientKey, str]:
    secret = new_secret()
    key = ClientKey(id=new_key_id(), name=name, digest=store.digest(secret), hint=hint(secret),
                    models=("claude-*",), limits=Limits(rpm=60, budget_cost_month=12.5), metadata={"cost-center": "7"})
    return key, secret


def test_keys_round_trip_hashed(dsn: str, tmp_path: Path) -> None:
    store = open_key_store(dsn)
    other = open_key_store(dsn)  # a second worker: same secret, same digests
    try:
        key, secret = make_key(store)
        store.insert(key)
        assert other.digest(secret) == key.digest and len(key.digest) == 64 and secret not in key.digest
        assert other.by_digest(key.digest) == key
        assert store.get(key.id) == key and store.all() == [key]
        assert store.changed_since(key.updated_at + 1) == []
        store.touch({key.id: key.updated_at + 5})
        assert store.get(key.id).last_used_at == key.updated_at + 5  # type: ignore[union-attr]
        assert store.changed_since(key.updated_at + 1) == []  # last-used times do not count as changes
    finally:
        store.close()
        other.close()
    if dsn.startswith("sqlite"):
        path = tmp_path / "usage.db"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        for file in tmp_path.iterdir():
            assert secret.encode() not in file.read_bytes()


def test_leases_never_pass_the_limit_across_workers(dsn: str) -> None:
    stores = [open_key_store(dsn) for _ in range(4)]
    granted: list[float] = []
    lock = threading.Lock()

    def worker(store: KeyStore) -> None:
        for _ in range(40):
            amount, _used = store.lease("ck_x", "requests-minute", 600, 100.0, 3.0, 1.0)
            with lock:
                granted.append(amount)

    try:
        threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(granted) == 100.0  # 160 asks of 3: exactly the limit granted, never more
        # A lease that needs more than is left gets nothing; spent units are added before availability is judged.
        store = stores[0]
        assert store.lease("ck_y", "tokens-day", 0, 50.0, 10.0, 10.0, spent=45.0) == (0.0, 45.0)
        assert store.lease("ck_y", "tokens-day", 0, 50.0, 10.0, 1.0) == (5.0, 50.0)
        store.adjust([("ck_y", "tokens-day", 0, -20.0), ("ck_y", "tokens-day", 86400, 7.0)])
        assert store.counters("ck_y", {"tokens-day": 0}) == {"tokens-day": 30.0}
        assert store.counters("ck_y", {"tokens-day": 86400}) == {"tokens-day": 7.0}
        store.adjust([("ck_y", "tokens-day", 0, -100.0)])
        assert store.counters("ck_y", {"tokens-day": 0}) == {"tokens-day": 0.0}  # never below zero
        store.delete_counters_before(1000)
        assert store.counters("ck_y", {"tokens-day": 0}) == {}
    finally:
        for store in stores:
            store.close()

"""Usage records when things go wrong, through a real ``muxtrio serve``: the database stops mid-run (requests are
unaffected, records beyond the queue bound are dropped and counted, the rest land once it is back), and SIGTERM during
load (every request a client saw finish has its row)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from muxtrio.usage.store import open_store
from tests.e2e.clients import openai_client
from tests.observability.harness import GATEWAY_KEY, Fakes, scrape, serve, total, write_config
from tests.services import postgres_bin, postgres_cluster

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
QUEUE_LIMIT = 5


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with Fakes() as running:
        yield running


def _ask(sdk: openai.OpenAI) -> str:
    raw = sdk.chat.completions.with_raw_response.create(model="openai-text", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    return raw.headers["x-request-id"]


def _wait_for(url: str, name: str, value: float, seconds: float = 60.0, **labels: str) -> None:
    deadline = time.monotonic() + seconds  # hang guard, never a pass condition
    while total(scrape(url), name, **labels) < value:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {value}"
        time.sleep(0.1)


@pytest.mark.skipif(postgres_bin() is None, reason="the Debian postgresql package is not installed")
def test_database_down_mid_run_drops_counted_then_recovers(fakes: Fakes, tmp_path: Path) -> None:
    with postgres_cluster() as pg:
        config = write_config(tmp_path / "muxtrio.yaml", fakes, usage={
            "dsn": pg.dsn, "batch-size": 1, "flush-interval": "50ms", "queue-limit": QUEUE_LIMIT})
        with serve(config, tmp_path) as server:
            sdk = openai_client(server.url, GATEWAY_KEY)
            before = [_ask(sdk) for _ in range(3)]
            _wait_for(server.url, "muxtrio_usage_records_total", 3, state="written")
            pg.stop()
            during = [_ask(sdk) for _ in range(QUEUE_LIMIT + 6)]  # every request is answered while it is down
            samples = scrape(server.url)
            dropped = total(samples, "muxtrio_usage_records_total", state="dropped")
            queued = total(samples, "muxtrio_usage_records_total", state="queued")
            # The bound holds: the queue keeps QUEUE_LIMIT, the writer holds the one batch it retries.
            assert dropped >= len(during) - QUEUE_LIMIT - 1 and dropped > 0
            assert queued + dropped == len(before) + len(during)
            assert "usage queue is full" in server.log_text()
            pg.start()
            _wait_for(server.url, "muxtrio_usage_records_total", queued, state="written")
            after = [_ask(sdk) for _ in range(2)]
            _wait_for(server.url, "muxtrio_usage_records_total", queued + len(after), state="written")
            sdk.close()
        assert server.proc.returncode == 0, server.log_text()
        store = open_store(pg.dsn)
        try:
            ids = {row["request_id"] for row in store.records(0, 1e12)}
        finally:
            store.close()
        assert set(before) <= ids and set(after) <= ids
        assert len(ids & set(during)) == len(during) - dropped
        assert "writes recovered" in server.log_text()


def test_sigterm_during_load_loses_no_finished_request(fakes: Fakes, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'usage.db'}"
    config = write_config(tmp_path / "muxtrio.yaml", fakes, usage={"dsn": dsn, "flush-interval": "30s"})
    finished: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(url: str) -> None:
        sdk = openai_client(url, GATEWAY_KEY)
        try:
            for _ in range(300):  # bounded; ends at the first refused request once the server stops
                if stop.is_set():
                    return
                request_id = _ask(sdk)
                with lock:
                    finished.append(request_id)
        except (openai.APIConnectionError, openai.APIStatusError):
            return
        finally:
            sdk.close()

    with serve(config, tmp_path, "--workers", "2") as server:
        threads = [threading.Thread(target=load, args=(server.url,), daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(finished) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stop() == 0, server.log_text()  # SIGTERM while the clients keep sending
        stop.set()
        for thread in threads:
            thread.join(60)
    assert len(finished) >= 40
    store = open_store(dsn)
    try:
        ids = {row["request_id"] for row in store.records(0, 1e12)}
    finally:
        store.close()
    assert set(finished) <= ids, len(set(finished) - ids)

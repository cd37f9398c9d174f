"""Metrics and usage records through a real ``muxtrio serve --workers 2`` with the official SDKs: one scrape reports
both workers (parsed with prometheus-client's own parser), labels stay bounded, and every client request leaves
exactly one usage row with the right figures, in SQLite and in a real Postgres."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from muxtrio.usage.store import open_store
from tests.observability.harness import Fakes, scrape, serve, total, write_config
from tests.observability.workload import run_workload, settled
from tests.services import postgres_bin, postgres_cluster

INPUT_TOKENS = 11  # what every fake reports as input tokens


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with Fakes() as running:
        yield running


def _rows(dsn: str) -> list[dict[str, Any]]:
    store = open_store(dsn)
    try:
        return store.records(0, 1e12)
    finally:
        store.close()


def test_two_workers_one_scrape_every_series(fakes: Fakes, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'usage.db'}"
    config = write_config(tmp_path / "muxtrio.yaml", fakes, usage={"dsn": dsn, "flush-interval": "100ms"})
    with serve(config, tmp_path, "--workers", "2") as server:
        sent = run_workload(server.url)
        samples = settled(server.url, len(sent))
        again = [scrape(server.url) for _ in range(6)]  # consecutive scrapes land on either worker
        fakes.release()
    requests = Counter((s.format, s.model if s.provider else "other", s.status) for s in sent)
    for (fmt, model, status), count in requests.items():
        status_label = "client_closed" if status == 499 else f"{status // 100}xx"
        assert total(samples, "muxtrio_requests_total", format=fmt, model=model, status=status_label) == count, (
            fmt, model, status)
    for later in again:
        for name in ("muxtrio_requests_total", "muxtrio_upstream_attempts_total", "muxtrio_tokens_total"):
            assert total(later, name, route="generate") == total(samples, name, route="generate"), name
    # Bounded labels: the model nobody serves is "other", never the client's string.
    assert not [k for k in samples if ("model", "no-such-model-from-a-client") in k[1]]
    assert total(samples, "muxtrio_requests_total", model="other", status="4xx") == 1
    # Attempts by provider, credential label and outcome; recoveries.
    assert total(samples, "muxtrio_upstream_attempts_total", provider="openai-pool", outcome="429") == 1
    assert total(samples, "muxtrio_upstream_attempts_total", provider="openai-pool", outcome="ok") == 1
    assert total(samples, "muxtrio_upstream_attempts_total", provider="openai", outcome="5xx") == 1
    assert total(samples, "muxtrio_upstream_attempts_total", provider="openai", outcome="429") >= 1
    assert total(samples, "muxtrio_recoveries_total", kind="failover", provider="openai-pool") == 1
    credentials = {dict(k[1]).get("credential") for k in samples if k[0] == "muxtrio_upstream_attempts_total"}
    assert credentials and not credentials & {"sk-openai-pool-first", "sk-openai-pool-second", "sk-fake-openai-0001"}
    # Tokens: every answered generation reported INPUT_TOKENS input tokens.
    answered = [s for s in sent if s.status == 200 and s.route == "generate"]
    assert total(samples, "muxtrio_tokens_total", kind="input") == INPUT_TOKENS * len(answered)
    # Histograms: one observation per request of the workload.
    assert total(samples, "muxtrio_request_duration_seconds_count", route="generate") == len(
        [s for s in sent if s.route == "generate"])
    # Gauges: only the scrape itself is in flight; nothing is streaming or stalled.
    assert total(samples, "muxtrio_active_requests") == 1
    assert total(samples, "muxtrio_open_streams") == 0
    assert total(samples, "muxtrio_stalled_writers") == 0
    assert total(samples, "muxtrio_stream_buffer_bytes") == 0
    assert total(samples, "muxtrio_stream_buffer_high_water_bytes") > 0
    assert total(samples, "muxtrio_credential_cooling_seconds", provider="openai-pool") > 0
    # Usage records: one row per client request after the server stopped (SIGTERM drains), exact figures.
    assert server.proc.returncode == 0, server.log_text()
    rows = _rows(dsn)
    assert len(rows) == len(sent)
    assert total(samples, "muxtrio_usage_records_total", state="dropped") == 0
    _check_rows(rows, sent)


def _check_rows(rows: list[dict[str, Any]], sent: list[Any]) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["requested_model"], []).append(row)
    for s in sent:
        candidates = [r for r in by_model[s.model] if r["status"] == s.status and bool(r["stream"]) == s.stream
                      and r["client_format"] == s.format]
        assert candidates, s
        row = candidates[0]
        by_model[s.model].remove(row)
        assert row["provider"] == (s.provider if s.route == "generate" else None), (s, row)
        assert row["request_id"]
        if s.status == 200 and s.route == "generate":
            assert row["input_tokens"] == INPUT_TOKENS, (s, row)
            assert row["output_tokens"] and row["output_tokens"] > 0, (s, row)
            assert row["error_class"] is None
            assert row["attempts"] >= 1
        if s.model == "openai-pool":
            assert (row["attempts"], row["failovers"], row["credential"]) == (2, 1, row["credential"])
            assert row["credential"] not in ("sk-openai-pool-second", None)
        if s.status in (429, 404):
            assert row["error_class"], row
            assert row["input_tokens"] is None and row["total_tokens"] is None  # nothing reported: null, not 0
        if s.status == 499:
            assert row["error_class"] in (None, "client_closed") and row["stream"]


@pytest.mark.skipif(postgres_bin() is None, reason="the Debian postgresql package is not installed")
def test_usage_rows_in_postgres(fakes: Fakes, tmp_path: Path) -> None:
    with postgres_cluster() as pg:
        config = write_config(tmp_path / "muxtrio.yaml", fakes, usage={"dsn": pg.dsn, "flush-interval": "100ms"})
        with serve(config, tmp_path, "--workers", "2") as server:
            sent = run_workload(server.url)
            settled(server.url, len(sent))
            fakes.release()
        assert server.proc.returncode == 0, server.log_text()
        rows = _rows(pg.dsn)
        assert len(rows) == len(sent)
        _check_rows(rows, sent)

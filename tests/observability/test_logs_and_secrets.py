"""Logs an operator can use, through a real ``muxtrio serve``: JSON lines, the size-rotated file, one request log per
request (masked headers, client body, each upstream exchange with stream bodies cut at the configured size, timings,
the debug breakdown with buffer figures), failed requests always logged within the count bound, and no configured
secret anywhere — log lines, log files, request logs, usage rows (SQLite bytes and Postgres rows), metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from muxtrio.usage.store import open_store
from tests.e2e.clients import openai_client
from tests.observability.harness import GATEWAY_KEY, SECRETS, Fakes, serve, write_config
from tests.observability.workload import run_workload, settled
from tests.services import postgres_bin, postgres_cluster

MAX_REQUEST_LOGS = 5
BODY_BYTES = 64


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with Fakes() as running:
        yield running


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    for obj in objects:
        assert isinstance(obj, dict) and {"ts", "level", "logger", "msg"} <= obj.keys(), obj
    return objects


def test_json_lines_rotated_file_and_request_logs(fakes: Fakes, tmp_path: Path) -> None:
    config = write_config(tmp_path / "muxtrio.yaml", fakes, **{
        "log-format": "json", "logging-to-file": True, "request-log": True, "debug": True,
        "usage": {"dsn": ""},
        "logging": {"file-max-bytes": 4096, "file-backups": 2, "request-log-max-files": MAX_REQUEST_LOGS,
                    "request-log-body-bytes": BODY_BYTES},
    })  # fmt: skip
    with serve(config, tmp_path) as server:
        sent = run_workload(server.url)
        settled(server.url, len(sent))
        sdk = openai_client(server.url, GATEWAY_KEY)
        with sdk.chat.completions.create(model="openai-text", stream=True,
                                         messages=[{"role": "user", "content": "Say hello"}]) as chunks:
            assert [c for c in chunks]
        sdk.close()
        settled(server.url, len(sent) + 1)
        fakes.release()
    assert server.proc.returncode == 0
    messages = [str(o["msg"]) for o in _json_lines(server.log_text())]
    assert any(m.startswith("muxtrio listening on") for m in messages)
    assert any(m.startswith("provider openai-pool (openai): 2 credential(s)") for m in messages)
    assert any(m.startswith("usage records: off") for m in messages)
    assert messages[-1] == "stopped"
    assert any("fmt=openai-chat model=openai-text" in m and "status=200" in m for m in messages)  # access lines
    assert any("openai-pool" in m and "429" in m for m in messages), "no line for the failed attempt"
    assert any(m.startswith("timing id=") and "buffer_peak_bytes=" in m for m in messages)
    # The rotated file: main.log plus at most file-backups rotated files, every line JSON.
    logs = tmp_path / "muxtrio" / "logs"
    rotated = sorted(p.name for p in logs.glob("main.log*"))
    assert rotated == ["main.log", "main.log.1", "main.log.2"], rotated
    for path in logs.glob("main.log*"):
        assert path.stat().st_size <= 4096 + 2048
        _json_lines(path.read_text(encoding="utf-8"))
    # Request logs: the newest MAX_REQUEST_LOGS remain (oldest removed first), the last is the streamed request.
    files = sorted((logs / "requests").glob("*.json"))
    assert len(files) == MAX_REQUEST_LOGS
    entries = [json.loads(p.read_text(encoding="utf-8")) for p in files]
    last = max(entries, key=lambda e: e["debug"]["total_ms"] if e["path"] == "/v1/chat/completions" and e[
        "status"] == 200 and e["debug"]["stream_ms"] is not None else -1)
    assert last["headers"]["authorization"] == "[masked]"
    assert '"stream":true' in last["client_body"].replace(" ", "")
    (exchange,) = last["upstream"]
    assert exchange["request_headers"]["authorization"] == "[masked]"
    assert exchange["status"] == 200 and exchange["headers_ms"] is not None
    assert "more bytes not kept" in exchange["response_body"]  # the stream, cut at request-log-body-bytes
    assert exchange["response_body"].startswith("data: ")
    debug = last["debug"]
    assert debug["buffer_peak_bytes"] > 0 and debug["buffer_waits"] == 0
    assert {"routing_ms", "ttfb_ms", "stream_ms", "total_ms", "attempts"} <= debug.keys()
    assert "headers" in debug["attempts"][0] and "headers_ms" in debug["attempts"][0]


def test_no_secret_anywhere_and_failed_requests_always_logged(fakes: Fakes, tmp_path: Path) -> None:
    postgres = postgres_bin() is not None
    with postgres_cluster() if postgres else _no_postgres() as pg:
        dsn = pg.dsn if pg is not None else f"sqlite:///{tmp_path / 'usage.db'}"
        config = write_config(tmp_path / "muxtrio.yaml", fakes, **{
            "logging-to-file": True, "usage": {"dsn": dsn, "flush-interval": "100ms"}})
        with serve(config, tmp_path, "--workers", "2") as server:
            sent = run_workload(server.url)
            sdk = openai_client(server.url, GATEWAY_KEY)
            with pytest.raises(openai.BadRequestError) as refused:
                sdk.chat.completions.create(model="echo-leaky", messages=[{"role": "user", "content": "hi"}])
            sdk.close()
            assert ECHO_MARK in str(refused.value)  # the echo reached the client, minus the key
            for secret in SECRETS:
                assert secret not in str(refused.value)
            metrics = settled(server.url, len(sent) + 1)
            page = _metrics_page(server.url)
            fakes.release()
        assert server.proc.returncode == 0
        haystacks: dict[str, bytes] = {"stderr": server.log_text().encode(), "metrics": page.encode()}
        for path in (tmp_path / "muxtrio").rglob("*"):
            if path.is_file():
                haystacks[str(path)] = path.read_bytes()
        store = open_store(dsn)
        try:
            rows = store.records(0, 1e12)
        finally:
            store.close()
        haystacks["usage rows"] = repr(rows).encode()
        if pg is None:
            for path in tmp_path.glob("usage.db*"):
                haystacks[str(path)] = path.read_bytes()
    assert metrics and len(rows) == len(sent) + 1
    for where, data in haystacks.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, where)
    # Failed requests are logged even with request-log off: one file per failed request.
    failed = [s for s in sent if s.status >= 400] + ["echo"]
    request_logs = list((tmp_path / "muxtrio" / "logs" / "requests").glob("*.json"))
    assert len(request_logs) == len(failed), [p.name for p in request_logs]
    echo_logs = [json.loads(p.read_text()) for p in request_logs if b"echo-leaky" in p.read_bytes()]
    assert len(echo_logs) == 1 and echo_logs[0]["upstream"][0]["status"] == 400
    assert echo_logs[0]["upstream"][0]["response_headers"]["x-echo"] != ""


ECHO_MARK = "invalid request, you sent"


def _metrics_page(url: str) -> str:
    import httpx2

    return httpx2.get(url + "/metrics", timeout=10).text


class _no_postgres:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

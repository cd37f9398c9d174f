"""WebSocket generations count like HTTP ones, through a real ``muxtrio serve``: a Responses WebSocket turn (the
official ``openai`` SDK's ``responses.connect()``) and ``/v1/ws`` streams (:mod:`muxtrio.client`) each leave one usage
row and one ``muxtrio_requests_total`` sample with the tokens the provider reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import trio

import muxtrio.client
from muxtrio.usage.store import open_store
from tests.observability.harness import GATEWAY_KEY, Fakes, scrape, serve, total, write_config

INPUT_TOKENS = 11


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with Fakes() as running:
        yield running


def test_websocket_generations_have_usage_rows_and_metrics(fakes: Fakes, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'usage.db'}"
    config = write_config(tmp_path / "muxtrio.yaml", fakes, usage={"dsn": dsn, "flush-interval": "100ms"})
    with serve(config, tmp_path) as server:
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
        with sdk.responses.connect() as conn:
            conn.response.create(model="responses-text", input="Say hello")
            last = None
            for event in conn:
                if event.type in ("response.completed", "response.failed", "error"):
                    last = event
                    break
            assert last is not None and last.type == "response.completed"
        sdk.close()

        async def mux() -> None:
            ws = server.url.replace("http://", "ws://") + "/v1/ws"
            async with muxtrio.client.connect(ws, api_key=GATEWAY_KEY) as connection:
                body = {"model": "anthropic-text", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
                async with connection.stream("anthropic", body) as events:
                    assert [e async for e in events]

        trio.run(mux)
        samples = scrape(server.url)
    assert server.proc.returncode == 0
    assert total(samples, "muxtrio_requests_total", model="responses-text", status="2xx") == 1
    assert total(samples, "muxtrio_requests_total", model="anthropic-text", status="2xx") == 1
    assert total(samples, "muxtrio_tokens_total", kind="input") == 2 * INPUT_TOKENS
    store = open_store(dsn)
    try:
        rows = store.records(0, 1e12)
    finally:
        store.close()
    assert sorted((r["requested_model"], r["provider"], r["status"], bool(r["stream"]), r["input_tokens"])
                  for r in rows) == [("anthropic-text", "anthropic", 200, True, INPUT_TOKENS),
                                     ("responses-text", "responses", 200, True, INPUT_TOKENS)]
    assert all(r["output_tokens"] for r in rows)

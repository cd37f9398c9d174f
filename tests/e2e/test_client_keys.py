"""Client keys through the real gateway with the official SDKs: every limit type answered as the SDK's own
rate-limit error with its retry hint, budgets crossing while streams run, model allowlists with aliases and
fallbacks, rotation, revocation and expiry live, and no clear key in the database files or the logs.

Keys are made through ``/v1/management/client-keys`` (the management key comes from the environment); the store is
the default SQLite file, under a per-test ``XDG_DATA_HOME``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest
import trio
from google.genai import errors as genai_errors
from trio_websocket import ConnectionRejected, open_websocket_url

from muxtrio.cli import main
from muxtrio.config import PriceConfig, UsageConfig
from tests.e2e.clients import anthropic_client, genai_client, ollama_client, openai_client, raw_client
from tests.e2e.conftest import CLIENT_KEY, Stack, run_sync

MANAGEMENT_KEY = "mgmt-key-for-client-key-tests-0001"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(autouse=True)
def key_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("MUXTRIO_MANAGEMENT_KEY", MANAGEMENT_KEY)
    yield tmp_path


async def manage(stack: Stack, method: str, path: str = "", body: dict[str, Any] | None = None) -> Any:
    async with raw_client(stack.url, headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"}) as client:
        response = await client.request(method, "/v1/management/client-keys" + path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


async def new_key(stack: Stack, **body: Any) -> tuple[str, dict[str, Any]]:
    data = await manage(stack, "POST", "", {"name": "team-a", **body})
    return data["secret"], data["key"]


async def fresh_minute(margin: float = 15.0) -> None:
    """Start a per-minute test early in a minute, so the window cannot roll over under it (waits < margin s)."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        await trio.sleep(left + 0.05)


def chat(stack: Stack, key: str, model: str = "openai-text") -> Any:
    return openai_client(stack.url, key).chat.completions.with_raw_response.create(model=model, messages=HELLO)


def expected_retry_after(before: float, after: float) -> set[int]:
    return {math.ceil(60 - before % 60), math.ceil(60 - after % 60)}


async def test_requests_per_minute_openai_sdk(stack: Stack) -> None:
    await fresh_minute()
    secret, _ = await new_key(stack, limits={"rpm": 3})
    remaining = []
    for _ in range(3):
        raw = await run_sync(chat, stack, secret)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == [2, 1, 0]
    before = time.time()
    with pytest.raises(openai.RateLimitError) as caught:
        await run_sync(chat, stack, secret)
    after = time.time()
    response = caught.value.response
    assert int(response.headers["retry-after"]) in expected_retry_after(before, after)
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.code == "rate_limit_exceeded"
    assert "3 requests per minute" in caught.value.message
    # The flat api-keys list is untouched by the client key's limit.
    assert (await run_sync(chat, stack, CLIENT_KEY)).parse().choices[0].message.content


async def test_requests_per_minute_gemini_sdk(stack: Stack) -> None:
    await fresh_minute()
    secret, _ = await new_key(stack, limits={"rpm": 1})
    client = genai_client(stack.url, secret)
    answer = await run_sync(client.models.generate_content, model="gemini-text", contents="hello")
    assert answer.text
    with pytest.raises(genai_errors.ClientError) as caught:
        await run_sync(client.models.generate_content, model="gemini-text", contents="hello")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    details = caught.value.details["error"]["details"]
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo" and details[0]["retryDelay"].endswith("s")


async def test_tokens_per_minute_anthropic_sdk(stack: Stack) -> None:
    await fresh_minute()
    secret, _ = await new_key(stack, limits={"tpm": 40})
    client = anthropic_client(stack.url, secret)
    admitted = 0
    used = 0
    with pytest.raises(anthropic.RateLimitError) as caught:
        for _ in range(10):
            message = await run_sync(
                client.messages.create, model="anthropic-text", max_tokens=64, messages=HELLO
            )
            admitted += 1
            used += message.usage.input_tokens + message.usage.output_tokens
    # Settled with the provider's usage: once the reported tokens fill the minute, the next request is refused.
    assert admitted >= 1 and used >= 40 - 10
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.response.headers["x-ratelimit-limit-tokens"] == "40"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "40 tokens per minute" in caught.value.message


async def test_concurrency_cap(stack: Stack) -> None:
    secret, _ = await new_key(stack, limits={"max-concurrency": 1})
    client = openai_client(stack.url, secret)
    first_chunk = trio.Event()
    texts: list[str] = []

    def held_stream() -> None:
        stream = client.chat.completions.create(model="openai-hold", messages=HELLO, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                trio.from_thread.run_sync(first_chunk.set)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_sync, held_stream)
        with trio.fail_after(20):
            await first_chunk.wait()
        with pytest.raises(openai.RateLimitError) as caught:
            await run_sync(chat, stack, secret)
        assert "concurrency cap is 1" in caught.value.message
        assert caught.value.response.headers["retry-after"] == "1"
        stack.fake("openai").release.set()
    assert texts
    assert (await run_sync(chat, stack, secret)).parse().choices[0].message.content  # the slot came back


async def test_budget_crossed_mid_stream(stack: Stack) -> None:
    secret, _ = await new_key(stack, limits={"budget-tokens-day": 16})
    client = openai_client(stack.url, secret)
    started = [trio.Event(), trio.Event()]
    finished: list[str] = []

    def held_stream(index: int) -> None:
        stream = client.chat.completions.create(
            model="openai-hold", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        parts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                trio.from_thread.run_sync(started[index].set)
            if chunk.choices and chunk.choices[0].finish_reason:
                parts.append(f"<{chunk.choices[0].finish_reason}>")
        finished.append("".join(parts))

    async with trio.open_nursery() as nursery:
        for index in range(2):
            nursery.start_soon(run_sync, held_stream, index)
            with trio.fail_after(20):
                await started[index].wait()
        stack.fake("openai").release.set()
    # Both streams were admitted while budget was left; together they used more than all of it, and neither was cut.
    assert len(finished) == 2 and all(text.endswith("<stop>") for text in finished)
    with pytest.raises(openai.RateLimitError) as caught:
        await run_sync(chat, stack, secret)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert "daily token budget of 16 tokens" in caught.value.message and "resets at" in caught.value.message
    assert int(caught.value.response.headers["retry-after"]) >= 1
    data = await manage(stack, "GET", f"/{(await manage(stack, 'GET'))[0]['id']}")
    assert data["usage"]["tokens-day"] > 16


@pytest.mark.gateway_config(aliases={"anthropic-trick": "gemini-text", "anthropic-short": "anthropic-text"})
async def test_model_allowlist_with_aliases_and_fallbacks(stack: Stack) -> None:
    secret, _ = await new_key(stack, models=["openai-text", "anthropic-t*", "anthropic-short", "openai-ctxlimit"])
    assert (await run_sync(chat, stack, secret, "openai-text")).parse().choices[0].message.content
    assert (await run_sync(chat, stack, secret, "anthropic-text")).parse().choices[0].message.content
    assert (await run_sync(chat, stack, secret, "anthropic-short")).parse().choices[0].message.content  # exact alias
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await run_sync(chat, stack, secret, "gemini-text")
    assert "'gemini-text' is not allowed for client key 'team-a'" in caught.value.message
    # Named by the wildcard, but the alias resolves to a model the key may not use.
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await run_sync(chat, stack, secret, "anthropic-trick")
    assert caught.value.message.endswith(
        "model 'anthropic-trick' is not allowed for client key 'team-a': it resolves to gemini-text on gemini, which "
        "the key may not use"
    )
    # openai-ctxlimit falls back to anthropic-text: allowed here, so the fallback serves.
    raw = await run_sync(chat, stack, secret, "openai-ctxlimit")
    assert raw.parse().choices[0].message.content
    # A key that may use openai-ctxlimit but not its fallback gets the model's own failure, not the fallback.
    narrow, _ = await new_key(stack, name="team-b", models=["openai-ctxlimit"])
    served_by_fallback = len(stack.requests("anthropic"))
    with pytest.raises(openai.BadRequestError):
        await run_sync(chat, stack, narrow, "openai-ctxlimit")
    assert len(stack.requests("anthropic")) == served_by_fallback
    listed = {m.id for m in await run_sync(openai_client(stack.url, narrow).models.list)}
    assert listed == {"openai-ctxlimit"}


async def test_rotation_revocation_and_expiry_live(stack: Stack) -> None:
    secret, key = await new_key(stack)
    assert (await run_sync(chat, stack, secret)).parse().choices[0].message.content
    rotated = await manage(stack, "POST", f"/{key['id']}/rotate")
    new_secret = rotated["secret"]
    assert new_secret != secret and rotated["key"]["id"] == key["id"]
    with pytest.raises(openai.AuthenticationError):
        await run_sync(chat, stack, secret)
    assert (await run_sync(chat, stack, new_secret)).parse().choices[0].message.content
    await manage(stack, "PATCH", f"/{key['id']}", {"expires-at": time.time() - 1})
    with pytest.raises(anthropic.AuthenticationError) as expired:
        await run_sync(anthropic_client(stack.url, new_secret).messages.create, model="anthropic-text",
                       max_tokens=16, messages=HELLO)
    assert "expired at" in expired.value.message
    await manage(stack, "PATCH", f"/{key['id']}", {"expires-at": None})
    assert (await run_sync(chat, stack, new_secret)).parse().choices[0].message.content
    revoked = await manage(stack, "POST", f"/{key['id']}/revoke")
    assert revoked["state"] == "revoked"
    with pytest.raises(openai.AuthenticationError) as caught:
        await run_sync(chat, stack, new_secret)
    assert "has been revoked" in caught.value.message
    with pytest.raises(openai.AuthenticationError) as unknown:
        await run_sync(chat, stack, "mx-" + "A" * 43)
    assert "unknown client key" in unknown.value.message


async def test_management_api_shapes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw_client(stack.url, headers={"Authorization": "Bearer wrong"}) as client:
        refused = await client.get("/v1/management/client-keys")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
    async with raw_client(stack.url, headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"}) as client:
        bad = await client.post("/v1/management/client-keys", json={"name": "x", "limits": {"rpm": -1}})
        missing = await client.get("/v1/management/client-keys/ck_nope")
        wrong_method = await client.put("/v1/management/client-keys")
    assert bad.status_code == 400 and "rpm" in bad.json()["error"]["message"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert wrong_method.status_code == 405
    _secret, key = await new_key(stack, models="claude-*,gpt-5*", limits={"rpm": 60, "budget-tokens-month": "50M"},
                                 **{"expires-in": "30d", "team": "platform"})
    assert key["models"] == ["claude-*", "gpt-5*"] and key["limits"]["budget-tokens-month"] == 50_000_000
    assert key["team"] == "platform" and key["expires_at"] > time.time() + 29 * 86400
    listed = await manage(stack, "GET")
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0] and "digest" not in listed[0]
    monkeypatch.delenv("MUXTRIO_MANAGEMENT_KEY")
    async with raw_client(stack.url) as client:
        hidden = await client.get("/v1/management/client-keys")
    assert hidden.status_code == 404


async def test_keys_are_stored_hashed_and_never_logged(
    stack: Stack, key_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, key = await new_key(stack, limits={"rpm": 100, "tpm": 100000})
    assert (await run_sync(chat, stack, secret)).parse().choices[0].message.content
    rotated = (await manage(stack, "POST", f"/{key['id']}/rotate"))["secret"]
    with pytest.raises(openai.AuthenticationError):
        await run_sync(chat, stack, secret)
    assert (await run_sync(chat, stack, rotated)).parse().choices[0].message.content
    files = [p for p in key_store.rglob("*") if p.is_file()]
    assert any(p.name == "usage.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for clear in (secret, rotated):
            assert clear.encode() not in data and clear[3:].encode() not in data, path
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert key["id"] in logged  # the management log names the key by id
    for clear in (secret, rotated):
        assert clear not in logged and clear[3:] not in logged


async def test_cli_keys_commands(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--url", stack.url]

    async def muxtrio(*argv: str) -> tuple[int, str, str]:
        status = await run_sync(main, list(argv))
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = await muxtrio("keys", "create", *base, "--name", "team-a", "--models", "openai-*,gpt-5*",
                                   "--rpm", "60", "--tpm", "200000", "--max-concurrency", "8",
                                   "--budget-tokens-month", "50M", "--expires", "30d")
    assert status == 0 and "shown only now" in out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("mx-") and "rpm=60 tpm=200000 max-concurrency=8 budget-tokens-month=5e+07" in out
    assert (await run_sync(chat, stack, secret)).parse().choices[0].message.content
    status, out, _ = await muxtrio("keys", "list", *base)
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "KEY", "STATE"] and "team-a" in row and "active" in row
    assert secret not in out and secret[-4:] in out
    status, out, _ = await muxtrio("keys", "update", *base, "team-a", "--rpm", "none", "--models", "anthropic-*")
    assert status == 0 and "models:      anthropic-*" in out and "rpm=" not in out
    status, out, _ = await muxtrio("keys", "rotate", *base, "team-a")
    rotated = out.strip().splitlines()[-1]
    assert status == 0 and rotated.startswith("mx-") and rotated != secret
    status, out, _ = await muxtrio("keys", "revoke", *base, "team-a")
    assert status == 0 and "state:       revoked" in out
    with pytest.raises(openai.AuthenticationError):
        await run_sync(chat, stack, rotated, "anthropic-text")
    status, _, err = await muxtrio("keys", "get", *base, "nobody")
    assert status == 1 and err.strip() == "muxtrio: GET /client-keys/nobody: 404 no client key 'nobody'"
    status, _, err = await muxtrio("keys", "list", "--url", stack.url, "--management-key", "wrong")
    assert status == 1 and "management key was refused" in err and "missing or wrong management key" in err
    status, _, err = await muxtrio("keys", "list", "--url", "http://127.0.0.1:9")
    assert status == 1 and "cannot reach the gateway at http://127.0.0.1:9" in err


async def test_websocket_refuses_client_keys(stack: Stack) -> None:
    secret, _ = await new_key(stack, limits={"rpm": 1})
    ws_url = stack.url.replace("http://", "ws://") + "/v1/responses"
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(ws_url, extra_headers=[(b"authorization", f"Bearer {secret}".encode())]):
            pass
    assert rejected.value.status_code == 401
    assert b"not accepted on the WebSocket transport" in (rejected.value.body or b"")
    assert secret.encode() not in (rejected.value.body or b"")


async def test_client_disconnect_settles_with_what_was_streamed(stack: Stack) -> None:
    # The input estimate of HELLO is 7 tokens; "endless" streams "Hello " (2 tokens) and never ends or reports usage.
    secret, _ = await new_key(stack, limits={"budget-tokens-day": 8})
    client = openai_client(stack.url, secret)

    def read_one_chunk_and_leave() -> str:
        stream = client.chat.completions.create(model="openai-endless", messages=HELLO, stream=True)
        text = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text = chunk.choices[0].delta.content
                break
        stream.close()
        return text

    assert await run_sync(read_one_chunk_and_leave) == "Hello "
    with trio.fail_after(20):
        await stack.requests("openai")[-1].disconnected.wait()
    # Settled with 7 (input estimate) + 2 (streamed): past the budget of 8, where the estimate alone was not.
    with pytest.raises(openai.RateLimitError) as caught:
        await run_sync(chat, stack, secret)
    assert caught.value.code == "insufficient_quota"


@pytest.mark.gateway_config(prices=(PriceConfig("openai-*", input=1_000_000, output=1_000_000),))
async def test_cost_budget_with_prices(stack: Stack) -> None:
    # One unit of currency per token: the 7-token input estimate fits a budget of 10, the reported usage does not.
    secret, _ = await new_key(stack, limits={"budget-cost-day": 10})
    first = (await run_sync(chat, stack, secret)).parse()
    assert first.usage is not None and first.usage.total_tokens > 10
    with pytest.raises(openai.RateLimitError) as caught:
        await run_sync(chat, stack, secret)
    assert caught.value.code == "insufficient_quota" and "daily cost budget of 10" in caught.value.message
    # A model without a price cannot be charged: the spent budget still refuses it (nothing is left).
    with pytest.raises(openai.RateLimitError):
        await run_sync(chat, stack, secret, "anthropic-text")


async def test_requests_per_minute_ollama_client(stack: Stack) -> None:
    await fresh_minute()
    secret, _ = await new_key(stack, limits={"rpm": 1})
    client = ollama_client(stack.url, secret)
    answer = await run_sync(client.chat, model="ollama-text", messages=HELLO)
    assert answer.message.content
    with pytest.raises(ollama.ResponseError) as caught:
        await run_sync(client.chat, model="ollama-text", messages=HELLO)
    assert caught.value.status_code == 429 and "1 requests per minute" in caught.value.error


@pytest.mark.gateway_config(
    usage=UsageConfig(flush_interval=0.05), prices=(PriceConfig("openai-*", input=2.0, output=10.0),)
)
async def test_usage_records_carry_the_key_and_the_cost(stack: Stack, key_store: Path) -> None:
    secret, key = await new_key(stack)
    answer = (await run_sync(chat, stack, secret)).parse()
    assert answer.usage is not None
    database = key_store / "muxtrio" / "usage.db"
    query = "SELECT client_key_id, client_key_name, cost, input_tokens, output_tokens FROM usage_records"
    rows: list[tuple[Any, ...]] = []
    with trio.fail_after(20):
        while not rows:
            await trio.sleep(0.05)
            if database.exists():
                with sqlite3.connect(database) as db:
                    try:
                        rows = db.execute(query + " WHERE client_key_id IS NOT NULL").fetchall()
                    except sqlite3.OperationalError:
                        rows = []  # the table is created by the writer's first open
    key_id, key_name, cost, tokens_in, tokens_out = rows[0]
    assert (key_id, key_name) == (key["id"], "team-a")
    assert (tokens_in, tokens_out) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert cost == pytest.approx((tokens_in * 2.0 + tokens_out * 10.0) / 1_000_000)
    with sqlite3.connect(database) as db:
        flat = db.execute(query + " WHERE client_key_id IS NULL").fetchall()
    assert flat == []  # only the client key's request was made


async def test_metrics_count_requests_and_tokens_by_client_key_name(stack: Stack) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    secret, _key = await new_key(stack)
    answer = (await run_sync(chat, stack, secret)).parse()
    assert answer.usage is not None
    async with raw_client(stack.url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as client:
        text = (await client.get("/metrics")).text
    assert secret not in text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    requests = [s for s in samples if s.name == "muxtrio_requests_total" and s.labels.get("key") == "team-a"]
    assert sum(s.value for s in requests) == 1
    assert requests[0].labels["status"] == "2xx"
    tokens = {s.labels["kind"]: s.value for s in samples if s.name == "muxtrio_tokens_total"
              and s.labels.get("key") == "team-a"}
    assert tokens["input"] == answer.usage.prompt_tokens
    assert tokens["output"] == answer.usage.completion_tokens

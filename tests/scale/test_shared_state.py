"""Shared state across muxtrio nodes (``state.backend: redis``), each a real ``muxtrio serve`` process, with a real
``redis-server`` and a fake provider on loopback, through the official OpenAI SDK.

Each test has its control built in: what it asserts (the provider saw something once) is what two nodes without a
shared store would get wrong (they would each send it)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.scale.cluster import MODEL, FakeProvider, node, node_config
from tests.services import Redis, redis_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="Debian redis-server not installed")


@pytest.fixture
def redis() -> Iterator[Redis]:
    with redis_server() as server:
        yield server


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.close()


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0, timeout=30)


def ask(base: str) -> str:
    answer = client(base).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


def redis_cli(redis: Redis, *args: str) -> list[str]:
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "--raw", *args], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return [line for line in out.splitlines() if line]


def until(check: object, what: str, tries: int = 100) -> None:
    """Poll ``check()`` every 0.2 s (bounded); the assertion names ``what`` when it never holds."""
    for _ in range(tries):
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def test_a_429_through_one_node_cools_the_credential_for_the_other(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    config = node_config(provider, redis.url)
    with node(config, tmp_path, "a") as (a, _), node(config, tmp_path, "b") as (b, _):
        assert ask(a) == "hi" and ask(b) == "hi"
        provider.mode = "429"
        with pytest.raises(openai.RateLimitError):
            ask(a)
        with pytest.raises(openai.RateLimitError) as second:
            ask(b)
        assert "rate-limited" in str(second.value)
        assert provider.count("429") == 1  # node b never sent it: it knew


def test_breaker_half_open_lets_exactly_one_probe_through_across_two_nodes(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    config = node_config(provider, redis.url)
    with node(config, tmp_path, "a") as (a, _), node(config, tmp_path, "b") as (b, _):
        provider.mode = "500"
        for _ in range(2):  # circuit-breaker.failures: 2
            with pytest.raises(openai.InternalServerError):
                ask(a)
        with pytest.raises(openai.APIStatusError) as refused:
            ask(b)  # node b learnt the breaker is open: the provider is not asked
        assert "circuit breaker open" in str(refused.value)
        assert provider.count("500") == 2
        time.sleep(2.2)  # breaker open-seconds: 2 s, then half-open
        provider.mode = "slow"
        answers: list[str] = []
        probe = threading.Thread(target=lambda: answers.append(ask(a)))
        probe.start()
        until(lambda: provider.count("slow") == 1, "the probe reached the provider")
        for base in (b, a, b):
            with pytest.raises(openai.APIStatusError) as busy:
                ask(base)
            assert "re-probed" in str(busy.value)
        probe.join(timeout=30)
        assert answers == ["hi"]
        assert provider.count("slow") == 1  # exactly one probe while it was in flight
        provider.mode = "ok"
        until(lambda: _succeeds(b), "node b uses the recovered credential")


def _succeeds(base: str) -> bool:
    try:
        return ask(base) == "hi"
    except openai.APIStatusError:
        return False


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
def test_previous_response_id_chain_alternating_between_nodes_over_websocket(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    config = node_config(provider, redis.url)
    with node(config, tmp_path, "a") as (a, _), node(config, tmp_path, "b") as (b, _):
        previous: str | None = None
        for turn, base in enumerate((a, b, a, b)):
            with client(base).responses.connect() as conn:  # a new connection each turn, alternating nodes
                if previous is None:
                    conn.response.create(model=MODEL, input=f"turn {turn}")
                else:
                    conn.response.create(model=MODEL, input=f"turn {turn}", previous_response_id=previous)
                for event in conn:
                    if event.type in ("response.completed", "response.failed", "error"):
                        break
                assert event.type == "response.completed", event
                previous = event.response.id
        history = provider.bodies[-1]["messages"]
        assert isinstance(history, list)
        users = [m["content"] for m in history if m["role"] == "user"]
        assert users == ["turn 0", "turn 1", "turn 2", "turn 3"]  # node b continued node a's turns and back
        assert len([m for m in history if m["role"] == "assistant"]) == 3
        with client(b).responses.connect() as conn:
            conn.response.create(model=MODEL, input="x", previous_response_id="resp_never_was")
            for event in conn:
                if event.type in ("response.completed", "response.failed", "error"):
                    break
            assert event.type == "error"  # an unknown id is still an error, shared store or not


def test_kill_9_mid_stream_leases_expire_and_the_other_node_takes_traffic(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    config = node_config(provider, redis.url)
    provider.chunks, provider.hold = 40, 0.25
    with node(config, tmp_path, "a") as (a, proc_a), node(config, tmp_path, "b") as (b, _):
        stream = client(a).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                   stream=True)
        next(iter(stream))
        until(lambda: "1" in redis_cli(redis, "HVALS", "muxtrio:inflight:fake"), "node a's in-flight lease")
        proc_a.kill()  # SIGKILL: no clean-up runs
        proc_a.wait(timeout=10)
        provider.chunks, provider.hold = 2, 0.0
        assert ask(b) == "hi"
        until(lambda: all(v == "0" for v in redis_cli(redis, "HVALS", "muxtrio:inflight:fake")),
              "node a's lease expired and its in-flight count was removed")
        assert len(redis_cli(redis, "HKEYS", "muxtrio:inflight:fake")) == 1  # only node b's field is left
        assert ask(b) == "hi"


def test_redis_restarted_mid_run_requests_keep_flowing_and_state_resyncs(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    config = node_config(provider, redis.url)
    with node(config, tmp_path, "a") as (a, _), node(config, tmp_path, "b") as (b, _):
        assert ask(a) == "hi" and ask(b) == "hi"
        redis.stop()
        for _ in range(5):  # Redis down: both nodes answer from local state
            assert ask(a) == "hi" and ask(b) == "hi"
        redis.start()  # empty: everything shared was lost
        until(lambda: len(redis_cli(redis, "ZRANGE", "muxtrio:nodes", "0", "-1")) == 2,
              "both nodes re-published their leases")
        provider.mode = "429"
        with pytest.raises(openai.RateLimitError):
            ask(a)
        with pytest.raises(openai.RateLimitError):
            ask(b)
        assert provider.count("429") == 1  # shared again after the restart
        assert "unavailable" in (tmp_path / "a.log").read_text()  # the WARNING was logged


MANAGEMENT_KEY = "mgmt-key-for-the-control-topic-test"


def management(base: str, method: str, path: str, *, content: bytes | None = None, json: object = None) -> Any:
    headers = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    if content is not None:
        headers["content-type"] = "application/yaml"
    response = httpx.request(method, base + "/v1/management" + path, headers=headers, timeout=30, content=content,
                             json=json)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_config_put_and_credential_actions_on_one_node_reach_the_other(
        redis: Redis, provider: FakeProvider, tmp_path: Path) -> None:
    """Each node has its own config file (as on separate machines): a PUT /config.yaml through node a is validated,
    written and applied by node b too; a credential disabled through node a is disabled on node b."""
    config = node_config(provider, redis.url, **{"remote-management": {"secret-key": MANAGEMENT_KEY}})
    with node(config, tmp_path, "a") as (a, _), node(config, tmp_path, "b") as (b, _):
        assert ask(a) == "hi" and ask(b) == "hi"
        changed = dict(config, aliases={"peer-alias": MODEL})
        management(a, "PUT", "/config.yaml", content=yaml.safe_dump(changed).encode())

        def b_has_alias() -> bool:
            if "peer-alias" not in (tmp_path / "b.yaml").read_text():
                return False
            answer = client(b).chat.completions.create(model="peer-alias", messages=[{"role": "user", "content": "hi"}])
            return answer.choices[0].message.content == "hi"  # served: the alias exists on node b now

        until(b_has_alias, "node b applied the config PUT through node a")
        assert yaml.safe_load((tmp_path / "b.yaml").read_text())["aliases"] == {"peer-alias": MODEL}

        management(a, "POST", "/credentials/fake%230/disable", json={"reason": "rotating"})

        def b_disabled() -> bool:
            creds = management(b, "GET", "/credentials")
            entries = creds if isinstance(creds, list) else creds.get("credentials", [])
            return any(c.get("label") == "fake#0" and c.get("disabled") for c in entries)

        until(b_disabled, "node b disabled the credential disabled through node a")

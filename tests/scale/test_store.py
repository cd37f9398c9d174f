"""The state store's counters and notifications on a real ``redis-server`` (and the same calls in memory): atomic
across two store instances (two nodes), notifications reaching every node, and local fallback when Redis is down."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from muxtrio.state.store import MemoryStore, RedisStore, StateStore
from tests.services import Redis, redis_server

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="Debian redis-server not installed")


@pytest.fixture
def redis() -> Iterator[Redis]:
    with redis_server() as server:
        yield server


@asynccontextmanager
async def started(store: StateStore) -> AsyncIterator[StateStore]:
    async with AsyncExitStack() as stack:
        await store.start(stack)
        if isinstance(store, RedisStore):
            with trio.fail_after(10):
                while not store.shared:
                    await trio.sleep(0.02)
        yield store


async def _counters(one: StateStore, two: StateStore) -> None:
    counts = [await (one if i % 2 else two).incr_window("t:rpm", 1, 60) for i in range(10)]
    assert counts == list(range(1, 11))  # one window, whichever node counts
    assert await one.acquire_slot("t:conc", "r1", 2, 30)
    assert await two.acquire_slot("t:conc", "r2", 2, 30)
    assert not await one.acquire_slot("t:conc", "r3", 2, 30)  # the cap holds across nodes
    await two.release_slot("t:conc", "r2")
    with trio.fail_after(5):
        while not await one.acquire_slot("t:conc", "r3", 2, 30):  # the release is a background write
            await trio.sleep(0.01)
    assert await one.add("t:budget", 500, 3600) == 500
    assert await two.add("t:budget", 250, 3600) == 750


async def test_memory_store_counters_are_this_process() -> None:
    store = MemoryStore()
    async with started(store):
        await _counters(store, store)


@needs_redis
async def test_redis_counters_are_shared_and_atomic(redis: Redis) -> None:
    # Atomicity, not latency, is under test: 200 concurrent calls on a loaded 2-core box can outlast the default
    # 250 ms per-call timeout, and a timed-out call falls back to local counting by design (tested elsewhere).
    async with started(RedisStore(redis.url, timeout=5.0)) as one, started(RedisStore(redis.url, timeout=5.0)) as two:
        await _counters(one, two)
        async with trio.open_nursery() as nursery:  # concurrent increments from both nodes lose none
            for i in range(200):
                nursery.start_soon((one if i % 2 else two).incr_window, "t:many", 1, 60)
        assert await one.incr_window("t:many", 0, 60) == 200


@needs_redis
async def test_notifications_reach_every_node(redis: Redis) -> None:
    async with started(RedisStore(redis.url)) as one, started(RedisStore(redis.url)) as two:
        heard: list[tuple[str, bytes]] = []
        two.subscribe("config", lambda payload: heard.append(("two", payload)))
        unsubscribe = one.subscribe("config", lambda payload: heard.append(("one", payload)))
        one.subscribe("credentials", lambda payload: heard.append(("other topic", payload)))
        with trio.fail_after(10):  # the subscriber connection may still be subscribing: publish until heard
            while len(heard) < 2:
                heard.clear()
                await one.publish("config", b"reloaded")
                await trio.sleep(0.1)
        assert sorted(heard) == [("one", b"reloaded"), ("two", b"reloaded")]
        unsubscribe()
        heard.clear()
        await two.publish("config", b"again")
        with trio.fail_after(10):
            while not heard:
                await trio.sleep(0.02)
        assert heard == [("two", b"again")]


@needs_redis
async def test_redis_down_falls_back_to_local_counters_then_reconnects(redis: Redis) -> None:
    fallbacks: list[str] = []
    async with started(RedisStore(redis.url, timeout=0.2, on_fallback=fallbacks.append)) as store:
        assert await store.incr_window("t:w", 1, 60) == 1
        redis.stop()
        with trio.fail_after(10):
            assert await store.incr_window("t:w", 1, 60) == 1  # a local window: never an error
            assert await store.incr_window("t:w", 1, 60) == 2
        assert fallbacks and not store.shared
        assert await store.pipeline([["PING"]]) is None
        redis.start()
        with trio.fail_after(20):
            while not store.shared:
                await trio.sleep(0.05)
        assert await store.incr_window("t:w", 1, 60) == 1  # the new, empty Redis counts again


def test_state_config_keys_and_env() -> None:
    from muxtrio.config import ConfigError, StateBackend, parse_config

    config = parse_config({"state": {"backend": "redis", "url": "redis://:secret@127.0.0.1:6390/1", "timeout": "100ms",
                                     "lease-ttl": "3s", "responses-ttl": "10m"}})
    assert config.state.backend is StateBackend.REDIS and config.state.timeout == 0.1
    assert config.state.lease_ttl == 3.0 and config.state.responses_ttl == 600.0
    assert "secret" not in repr(config)
    env = parse_config({"state": {"backend": "redis"}}, env={"MUXTRIO_STATE_URL": "redis://127.0.0.1:6391/0"})
    assert env.state.url == "redis://127.0.0.1:6391/0"
    assert parse_config({}).state.backend is StateBackend.MEMORY
    for bad, where in (({"backend": "redis"}, "state.url"), ({"backend": "etcd"}, "state.backend"),
                       ({"backend": "redis", "url": "http://x"}, "state.url")):
        with pytest.raises(ConfigError) as err:
            parse_config({"state": bad})
        assert where in str(err.value)


@needs_redis
async def test_redis_down_at_start_is_local_state_with_a_warning_until_it_appears(
        caplog: pytest.LogCaptureFixture) -> None:
    from tests.services import Redis, free_port

    server = Redis(free_port(), tempfile.mkdtemp(prefix="muxtrio-redis-"))
    store = RedisStore(server.url, timeout=0.2)
    try:
        async with AsyncExitStack() as stack:
            await store.start(stack)  # nothing listens: it starts anyway
            assert await store.incr_window("t:start", 1, 60) == 1
            assert await store.incr_window("t:start", 1, 60) == 2  # counted here
            with trio.fail_after(10):
                while "unavailable" not in caplog.text:
                    await trio.sleep(0.05)
            assert f"127.0.0.1:{server.port}" in caplog.text
            server.start()
            with trio.fail_after(20):
                while not store.shared:
                    await trio.sleep(0.05)
            assert await store.incr_window("t:start", 1, 60) == 1  # now Redis counts
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)

"""Which Redis client under trio: valkey-glide's async client (trio through anyio) against redis-py's synchronous
client run off the event loop with ``trio.to_thread.run_sync``, on a real ``redis-server`` started here on loopback.

Per client it measures (1) sequential latency of one round trip (a pipelined admission: GET + INCR-with-expiry + SET
NX PX, as the request path does) — median and p99 — and (2) throughput with 32 concurrent trio tasks. Nothing here
asserts a timing; it prints a table. ``python -m perf.redis_clients [--calls N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import redis
import trio

from tests.services import free_port

CONCURRENCY = 32


def start_redis() -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    root = tempfile.mkdtemp(prefix="muxtrio-redis-bench-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", root], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    return proc, port, root


async def measure(name: str, call: Callable[[int], Awaitable[None]], calls: int) -> tuple[str, float, float, float]:
    """``(client, median µs, p99 µs, calls/s with CONCURRENCY tasks)``."""
    for i in range(200):  # warm-up
        await call(i)
    latencies = []
    for i in range(calls):
        start = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    done = 0
    start = time.perf_counter()

    async def worker(w: int) -> None:
        nonlocal done
        for i in range(calls // CONCURRENCY):
            await call(w * calls + i)
            done += 1

    async with trio.open_nursery() as nursery:
        for w in range(CONCURRENCY):
            nursery.start_soon(worker, w)
    elapsed = time.perf_counter() - start
    return (name, statistics.median(latencies) * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6, done / elapsed)


async def main(calls: int) -> None:
    from glide import (
        Batch,
        ConditionalChange,
        ExpirySet,
        ExpiryType,
        GlideClient,
        GlideClientConfiguration,
        NodeAddress,
    )

    proc, port, root = start_redis()
    try:
        glide = await GlideClient.create(GlideClientConfiguration([NodeAddress("127.0.0.1", port)]))

        async def glide_call(i: int) -> None:
            pipe = Batch(is_atomic=False)
            pipe.get("muxtrio:bench:cool")
            pipe.incr(f"muxtrio:bench:n:{i % 64}")
            pipe.set(f"muxtrio:bench:lease:{i}", "1", conditional_set=ConditionalChange.ONLY_IF_DOES_NOT_EXIST,
                     expiry=ExpirySet(ExpiryType.MILLSEC, 5000))
            await glide.exec(pipe, raise_on_error=True)

        pool = redis.ConnectionPool(port=port, max_connections=CONCURRENCY + 4)
        sync = redis.Redis(connection_pool=pool)

        def sync_call(i: int) -> None:
            pipe = sync.pipeline(transaction=False)
            pipe.get("muxtrio:bench:cool")
            pipe.incr(f"muxtrio:bench:n:{i % 64}")
            pipe.set(f"muxtrio:bench:lease:{i}", "1", nx=True, px=5000)
            pipe.execute()

        async def threaded_call(i: int) -> None:
            await trio.to_thread.run_sync(sync_call, i)

        rows = [await measure("valkey-glide (async, trio via anyio)", glide_call, calls),
                await measure("redis-py sync + trio.to_thread", threaded_call, calls)]
        await glide.close()
        print(f"{'client':40} {'median µs':>10} {'p99 µs':>10} {'calls/s (32 tasks)':>20}")
        for client, median, p99, rate in rows:
            print(f"{client:40} {median:10.0f} {p99:10.0f} {rate:20.0f}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    os.environ.setdefault("GLIDE_LOG", "off")
    trio.run(main, parser.parse_args().calls)

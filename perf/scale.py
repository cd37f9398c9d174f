"""Scale-out numbers (issue 18): through nginx, one muxtrio node against two (req/s and events/s), and the cost of
``state.backend: redis`` against ``memory`` on one node — all in one session, on the local cluster of
``deploy/local_cluster.py`` (nginx, Redis, Postgres from the Debian packages) and the fake provider of
:mod:`perf.fake_provider`. Nothing here asserts a timing; it prints a table and writes ``perf/results/scale-*.json``.

``python -m perf.scale [--seconds 10] [--conns 32] [--rounds 2]``

Method: wrk (one thread, pinned to cpu1 with the fake provider) drives closed-loop load; one-node and two-node
runs differ only in nginx's upstream list (the same two processes stay up); memory against redis is one node
started twice, A B A B, straight on its port (no nginx), so the difference is the store alone. ``fake`` answers a
whole chat completion; ``fake-n100`` streams 100 content events (events/s = responses/s * 100).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from deploy.local_cluster import Cluster
from perf import wrk
from perf.procs import wait_http
from tests.services import free_port

HERE = Path(__file__).resolve().parent
WHOLE = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {"model": "fake-n100", "messages": [{"role": "user", "content": "hi"}], "stream": True}
EVENTS_PER_STREAM = 100


def node_config(fake_port: int, backend: str, redis_url: str | None = None) -> str:
    state = f"state:\n  backend: {backend}\n" + (f"  url: {redis_url}\n" if redis_url else "")
    return (
        "host: 127.0.0.1\nworkers: 1\necho-model: false\nusage:\n  dsn: \"\"\n" + state
        + "providers:\n  - type: openai\n    name: fake\n"
        + f"    base-url: http://127.0.0.1:{fake_port}/v1\n    api-key: sk-fake\n    max-connections: 4000\n"
        + "    models: [fake, fake-n100]\n"
    )


def load(url: str, body: dict[str, Any], key: str, seconds: float, conns: int) -> dict[str, Any]:
    return wrk.run(url + "/v1/chat/completions", body, conns=conns, seconds=seconds, cpus="1",
                   headers={"Authorization": f"Bearer {key}"})


def single_node(run_dir: Path, config: Path, env: dict[str, str], key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(run_dir / f"single-{port}.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([sys.executable, "-m", "muxtrio", "serve", "--config", str(config), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    load(url, WHOLE, key, 1, 4)  # warm-up
    return proc, url


async def state_cost(calls: int = 20_000, tasks: int = 32) -> None:
    """CPU (all threads of this process, glide's Rust core included) and wall time that the request path's state
    work — ``refresh`` (one pipelined round trip), ``began`` and ``ended`` (background writes) — adds per request,
    for a pool of 2 credentials, with ``tasks`` concurrent requests; memory against a real redis-server."""
    from contextlib import AsyncExitStack

    from muxtrio.engine.pool import CredentialPool
    from muxtrio.state.pools import SharedPools
    from muxtrio.state.store import MemoryStore, RedisStore, StateStore
    from tests.services import redis_server

    with redis_server() as redis:
        for name, store, interval in (("memory", MemoryStore(), 0.0), ("redis", RedisStore(redis.url), 0.0),
                                      ("redis", RedisStore(redis.url), 0.05)):
            assert isinstance(store, StateStore)
            pool = CredentialPool("fake", [("k1", None), ("k2", None)])
            shared = SharedPools(store, {"fake": pool}, refresh_interval=interval)
            async with AsyncExitStack() as stack:
                await store.start(stack)
                await shared.start(stack)
                while store.backend == "redis" and not store.shared:
                    await trio.sleep(0.01)

                async def request(n: int, pool: CredentialPool = pool, shared: SharedPools = shared) -> None:
                    for _ in range(n):
                        await shared.refresh(["fake"])
                        cred = pool.credentials[0]
                        shared.began(pool, cred)
                        shared.ended(pool, cred)

                await request(500)
                cpu, wall = time.process_time(), time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for _ in range(tasks):
                        nursery.start_soon(request, calls // tasks)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(f"state {name:6} refresh-interval {interval * 1000:3.0f} ms: {cpu / calls * 1e6:7.1f} µs CPU, "
                      f"{wall / calls * 1e6:7.1f} µs wall per request ({tasks} concurrent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=("nodes", "state", "cost"), help="only one of the comparisons")
    args = parser.parse_args()
    if args.only == "cost":
        trio.run(state_cost)
        return
    if reason := wrk.available():
        raise SystemExit(reason)
    run_dir = Path(tempfile.mkdtemp(prefix="muxtrio-perf-scale-"))
    run_dir.chmod(0o755)
    fake_port = free_port()
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "perf.fake_provider", "--port",
                             str(fake_port)], stdout=subprocess.DEVNULL, cwd=str(HERE.parent))
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        wait_http(f"http://127.0.0.1:{fake_port}/healthz")
        redis_config = run_dir / "redis.yaml"
        memory_config = run_dir / "memory.yaml"
        redis_config.write_text(node_config(fake_port, "redis"))
        memory_config.write_text(node_config(fake_port, "memory"))
        cluster = Cluster(run_dir / "cluster", redis_config,
                          ports={name: free_port() for name in ("nginx", "muxtrio-1", "muxtrio-2", "redis",
                                                                "postgres")})
        cluster.start()
        try:
            for _ in range(args.rounds):
                for nodes in (["muxtrio-1"], ["muxtrio-1", "muxtrio-2"]) if args.only != "state" else ():
                    cluster.start_nginx(nodes)
                    label = f"{len(nodes)} node(s) via nginx"
                    load(cluster.url, WHOLE, cluster.api_key, 1, 4)
                    results.setdefault(f"{label}: whole", []).append(
                        load(cluster.url, WHOLE, cluster.api_key, args.seconds, args.conns))
                    results.setdefault(f"{label}: stream n100", []).append(
                        load(cluster.url, STREAM, cluster.api_key, args.seconds, args.conns))
                pairs = (("memory", memory_config), ("redis", redis_config)) if args.only != "nodes" else ()
                for name, config in pairs:
                    proc, url = single_node(run_dir, config, cluster.node_env(), cluster.api_key)
                    try:
                        results.setdefault(f"1 node direct, state {name}: whole", []).append(
                            load(url, WHOLE, cluster.api_key, args.seconds, args.conns))
                    finally:
                        proc.terminate()
                        proc.wait(timeout=30)
        finally:
            cluster.stop_all()
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        shutil.rmtree(run_dir, ignore_errors=True)
    rows = []
    print(f"{'scenario':48} {'req/s (median)':>15} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}  runs")
    for label, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        events = rps * EVENTS_PER_STREAM if "stream" in label else None
        p50 = statistics.median(r["p50_ms"] or 0 for r in runs)
        p99 = statistics.median(r["p99_ms"] or 0 for r in runs)
        errors = sum(r["non2xx"] for r in runs)
        rows.append({"scenario": label, "rps": rps, "events_per_s": events, "p50_ms": p50, "p99_ms": p99,
                     "runs": [r["rps"] for r in runs], "non2xx": errors})
        each = ", ".join(f"{r['rps']:.0f}" for r in runs)
        failed = f"  non-2xx {errors}" if errors else ""
        print(f"{label:48} {rps:15.0f} {events or 0:10.0f} {p50:8.1f} {p99:8.1f}  {each}{failed}")
    out = HERE / "results" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"seconds": args.seconds, "conns": args.conns, "rows": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()

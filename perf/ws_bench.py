"""WebSocket against SSE (issue 7): the same 1,000-event OpenAI streams from the same fake provider, over muxtrio's
multiplexed ``/v1/ws`` (one socket, the ``muxtrio.client`` library, credit windows, batched ``events`` messages)
and over plain HTTP SSE (wrk, one connection per stream).

Both numbers are also given per core of the gateway's own CPU time, which is the fair comparison: the WebSocket
client is a Python library on cpu1 (beside the fake), while the SSE client is wrk. Memory: RSS per open stream with
many slow streams held open over one socket, on a freshly started gateway, against the same streams over SSE (the
``streams_1000`` scenario, which also runs on a gateway whose heap has not yet grown for many streams).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from perf import wrk
from perf.procs import Procs, cpu_ticks, rss_kb
from perf.targets import MUX2_PORT, Target, start_muxtrio

BODY = {"model": "fake-n1000", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 1000}
WINDOW: int | None = None
"""The credit window the throughput run asks for (None: the client library's default)."""
SLOW = {"model": "fake-d1000-n60", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 60}


async def ws_throughput(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` streams at a time over one socket, for ``seconds``: chunks received per second."""
    from muxtrio import client

    chunks = 0
    streams = 0
    async with client.connect(url, window=client.DEFAULT_WINDOW if WINDOW is None else WINDOW) as mux:
        deadline = trio.current_time() + seconds

        async def worker() -> None:
            nonlocal chunks, streams
            while trio.current_time() < deadline:
                async with mux.stream("openai-chat", BODY) as events:
                    async for _ in events:
                        chunks += 1
                streams += 1

        t0 = time.perf_counter()
        with trio.move_on_after(seconds + 30):
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker)
        elapsed = time.perf_counter() - t0
    return {"chunks": chunks, "streams": streams, "seconds": round(elapsed, 2),
            "events_per_s": round(chunks / elapsed)}


async def ws_hold(url: str, n: int, hold_s: float, pid: int) -> dict[str, Any]:
    """Open ``n`` slow streams over one socket, wait for each one's first event, sample RSS, then leave."""
    from muxtrio import client

    started = 0
    all_started = trio.Event()
    samples: list[int] = []
    async with client.connect(url) as mux, trio.open_nursery() as nursery:

        async def one() -> None:
            nonlocal started
            async with mux.stream("openai-chat", SLOW) as events:
                first = True
                async for _ in events:
                    if first:
                        first = False
                        started += 1
                        if started == n:
                            all_started.set()

        t0 = time.perf_counter()
        for _ in range(n):
            nursery.start_soon(one)
        with trio.move_on_after(120):
            await all_started.wait()
        ramp = time.perf_counter() - t0
        end = trio.current_time() + hold_s
        while trio.current_time() < end:
            samples.append(rss_kb(pid))
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    return {"started": started, "ramp_s": round(ramp, 2), "rss_samples_kb": samples}


def _on_cpu1(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run the WebSocket client on cpu1, where wrk runs for SSE: left to float, it took cpu0 time from the gateway."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, before)


def run(target: Target, *, quick: bool, procs: Procs, workdir: Path) -> dict[str, Any]:
    secs = 3.0 if quick else 10.0
    url = f"ws://127.0.0.1:{target.port}/v1/ws"
    out: dict[str, Any] = {}
    with procs.only(target.proc):
        c0, t0 = cpu_ticks(target.pid), time.monotonic()
        ws = _on_cpu1(lambda: trio.run(ws_throughput, url, 8, secs))
        cpu = (cpu_ticks(target.pid) - c0) / 100 / (time.monotonic() - t0)
        ws["cpu_pct"] = round(100 * cpu, 1)
        ws["per_core"] = round(ws["events_per_s"] / cpu) if cpu > 0.01 else None
        out["ws"] = ws
        wrk.run(target.base + "/v1/chat/completions", BODY, conns=8, seconds=1)
        c0, t0 = cpu_ticks(target.pid), time.monotonic()
        sse = wrk.run(target.base + "/v1/chat/completions", BODY, conns=8, seconds=secs)
        cpu = (cpu_ticks(target.pid) - c0) / 100 / (time.monotonic() - t0)
        sse["events_per_s"] = round(sse["rps"] * 1002)  # role chunk + 1000 content + finish, as counted over WS
        sse["cpu_pct"] = round(100 * cpu, 1)
        sse["per_core"] = round(sse["events_per_s"] / cpu) if cpu > 0.01 else None
        out["sse"] = sse
    # Memory on a fresh gateway: a process whose heap already grew (e.g. for the SSE streams of `streams_1000`)
    # would reuse freed memory and show almost no growth.
    n = 200 if quick else 1000
    fresh = start_muxtrio(procs, workdir, MUX2_PORT)
    try:
        with procs.only(fresh.proc):
            time.sleep(1.0)
            rss0 = rss_kb(fresh.pid)
            held = trio.run(ws_hold, f"ws://127.0.0.1:{fresh.port}/v1/ws", n, secs, fresh.pid)
    finally:
        if fresh.proc is not None:
            procs.stop(fresh.proc)
    peak = max(held["rss_samples_kb"] or [rss0])
    held.update(n=n, rss_idle_kb=rss0, rss_per_stream_kb=round((peak - rss0) / max(held["started"], 1), 1))
    out["ws_hold"] = held
    out["ws_events_per_s"] = ws["events_per_s"]
    out["sse_events_per_s"] = sse["events_per_s"]
    out["note"] = (f"per core of gateway CPU: ws {ws['per_core']}, sse {sse['per_core']}; "
                   f"{held['started']}/{n} slow streams over one socket: {held['rss_per_stream_kb']} KB RSS each")
    return out

"""`/v1/ws` credit window A/B (issue 19, target 5): 8 concurrent 1,000-event streams over one socket with a 64- and a
1024-event credit window, and the same streams over SSE (wrk c=8), alternating on one gateway (cpu0; the fake, wrk
and this client on cpu1); events/s and events/s per core of the gateway's own CPU, best of the rounds.

Run: ``taskset -c 1 python -m perf.ws_window [seconds] [rounds]`` (pinned, so the client never takes cpu0).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from perf import targets, wrk, ws_bench
from perf.procs import Procs, cpu_ticks

WINDOWS = (64, 1024)


def measured(fn: Callable[[], dict[str, Any]], pid: int) -> tuple[float, float]:
    """Events/s of ``fn``'s run and the gateway's CPU (cores) meanwhile."""
    c0, t0 = cpu_ticks(pid), time.monotonic()
    events_per_s = float(fn()["events_per_s"])
    cpu = (cpu_ticks(pid) - c0) / 100 / (time.monotonic() - t0)
    return events_per_s, cpu


def main(seconds: float = 6.0, rounds: int = 3) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ws-window-"))
    procs = Procs(workdir)
    best: dict[str, float] = {}
    try:
        targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
        mux = targets.start_muxtrio(procs, workdir)
        url = f"ws://127.0.0.1:{mux.port}/v1/ws"
        trio.run(ws_bench.ws_throughput, url, 8, 2.0)
        wrk.run(mux.base + "/v1/chat/completions", ws_bench.BODY, conns=8, seconds=1)

        def sse() -> dict[str, Any]:
            r = wrk.run(mux.base + "/v1/chat/completions", ws_bench.BODY, conns=8, seconds=seconds)
            return {"events_per_s": r["rps"] * 1002}  # role chunk + 1000 content + finish, as counted over WS

        runs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        for window in WINDOWS:
            def ws(window: int = window) -> dict[str, Any]:
                ws_bench.WINDOW = window
                return trio.run(ws_bench.ws_throughput, url, 8, seconds)
            runs.append((f"/v1/ws window {window}", ws))
        runs.append(("SSE", sse))
        for _ in range(rounds):
            for name, fn in runs:
                events_per_s, cpu = measured(fn, mux.pid)
                per_core = events_per_s / cpu if cpu > 0.01 else 0.0
                best[name] = max(best.get(name, 0.0), per_core)
                print(f"{name}: {events_per_s:,.0f} events/s, gateway {cpu:.2f} cores, {per_core:,.0f} per core",
                      flush=True)
    finally:
        ws_bench.WINDOW = None
        procs.stop_all()
    for name, per_core in best.items():
        print(f"best {name}: {per_core:,.0f} events/s per core, {per_core / best['SSE']:.2f}x SSE")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(float(args[0]) if args else 6.0, int(args[1]) if len(args) > 1 else 3))

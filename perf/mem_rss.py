"""RSS per open stream from a cold start, A/B between source trees: the ``streams_1000`` measurement (a freshly
started gateway process, N slow streams held open, peak RSS growth over the idle RSS ÷ streams started) for each
tree in turn, alternating A B A B, a new gateway process for every measurement.

Each tree is a checkout of muxtrio (its ``muxtrio`` package wins through ``PYTHONPATH``); the gateway runs pinned to
cpu0, the fake provider and the driver on cpu1, on ports of their own (so it can run beside a ``perf run``).

    python -m perf.mem_rss --tree base=/tmp/base --tree after=. [--streams 200 --streams 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson
import trio

from perf import driver, targets
from perf.procs import Procs, rss_kb


def _one(procs: Procs, workdir: Path, tree: Path, port: int, fake_port: int, n: int, hold: float) -> dict[str, float]:
    cfg = workdir / f"muxtrio-{port}.yaml"
    cfg.write_text(targets.muxtrio_config(port, 1, fake_port, usage_db=workdir / f"usage-{port}-{time.time()}.db"))
    proc = procs.start(f"muxtrio-{port}", [sys.executable, "-m", "muxtrio", "serve", "--config", str(cfg)], "0",
                       env={"PYTHONPATH": str(tree)}, cwd=str(tree))
    try:
        targets.wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", data=targets.PROBE)
        time.sleep(1.0)
        rss0 = rss_kb(proc.pid)
        body = orjson.dumps({"model": "fake-d1000-n600", "stream": True, "max_tokens": 600,
                             "messages": [{"role": "user", "content": "hi"}]})
        held = trio.run(lambda: driver.hold_streams(port, "/v1/chat/completions", body, n, ramp_deadline=120,
                                                    hold_s=hold, sample=lambda: rss_kb(proc.pid)))
        peak = max(held.samples) if held.samples else rss0
        return {"started": held.started, "idle_mb": rss0 / 1024, "per_stream_kb": (peak - rss0) / max(held.started, 1)}
    finally:
        procs.stop(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cold RSS per open stream, A/B between source trees")
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--streams", type=int, action="append")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--port", type=int, default=8471)
    ap.add_argument("--fake-port", type=int, default=9171)
    args = ap.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)]
    counts = args.streams or [200, 1000]
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, args.fake_port, "1", "fake-provider")
            print("| streams | round | tree | started | idle RSS (MB) | RSS per stream (KB) |")
            print("|---:|---:|---|---:|---:|---:|")
            for n in counts:
                for round_no in range(1, args.rounds + 1):
                    for name, tree in trees:
                        r = _one(procs, Path(tmp), tree, args.port, args.fake_port, n, args.hold)
                        print(f"| {n} | {round_no} | {name} | {r['started']:.0f} | {r['idle_mb']:.1f} | "
                              f"{r['per_stream_kb']:.1f} |", flush=True)
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

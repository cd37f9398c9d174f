"""Where the memory of an open stream goes, server side included: the whole gateway (Hypercorn, the app, the
engine, httpx2) served in-process on loopback, N slow streams held open by the perf driver in the same process,
and tracemalloc's snapshot difference grouped by allocation site and by the layer that owns it.

:mod:`perf.mem_streams` covers the engine alone; this one adds what a real client connection costs (Hypercorn and
h11 per-connection state, the ASGI handler, the disconnect watcher). The driver's own allocations are filtered out
(any trace with a ``perf/driver.py`` frame), so what is left is the gateway's. Cold: the streams are the first
ones the process serves after one warm-up request.

    python -m perf.mem_server [--streams 200] [--top 20]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path

import trio

from muxtrio.config import load_config
from muxtrio.server import listener
from muxtrio.server.app import MuxApp
from muxtrio.server.runner import hypercorn_config
from perf import driver, targets
from perf.procs import Procs

_LAYERS = (
    ("hypercorn", "hypercorn/"),
    ("h11", "h11/"),
    ("httpx2/httpcore", "httpx2/"),
    ("httpcore", "httpcore/"),
    ("anyio", "anyio/"),
    ("muxtrio.server", "muxtrio/server/"),
    ("muxtrio.engine", "muxtrio/engine/"),
    ("muxtrio.upstream", "muxtrio/upstream/"),
    ("muxtrio.codecs", "muxtrio/codecs/"),
    ("muxtrio.wire", "muxtrio/wire/"),
    ("muxtrio (other)", "muxtrio/"),
    ("trio", "trio/"),
    ("stdlib", "/lib/python3"),
)


def _layer(trace: tracemalloc.Traceback) -> str:
    """The innermost non-stdlib, non-trio frame's package: who asked for the memory."""
    for frame in reversed(trace):  # tracemalloc orders frames oldest first
        for name, marker in _LAYERS[:-2]:
            if marker in frame.filename:
                return name
    for name, marker in _LAYERS[-2:]:
        if marker in trace[-1].filename:
            return name
    return "other"


def _types() -> dict[str, tuple[int, int]]:
    """Count and shallow size of the gc-tracked objects allocated since tracemalloc started, by type name, leaving
    out the driver's own (any ``perf/driver.py`` frame where it was allocated)."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for obj in gc.get_objects():
        where = tracemalloc.get_object_traceback(obj)
        if where is None or any(frame.filename.endswith("perf/driver.py") for frame in where):
            continue
        entry = found[type(obj).__qualname__]
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)
    return {name: (count, size) for name, (count, size) in found.items()}


async def _measure(n: int, top: int, config_path: Path, port: int, tracebacks: int) -> str:
    config = load_config(config_path)
    hc = hypercorn_config(config)
    app = MuxApp(config)
    stop, now = trio.Event(), trio.Event()
    body = driver.chat("fake-d1000-n60", stream=True, max_tokens=60)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: listener.serve(app, hc, http2=False, sockets=None, stop=stop, now=now))
        await trio.sleep(0.5)
        await driver.one_call(port, "/v1/chat/completions", driver.chat("fake-n5", stream=True))
        gc.collect()
        gc.freeze()
        snapshots: list[tracemalloc.Snapshot] = []
        types_after: list[dict[str, tuple[int, int]]] = []

        def sample() -> None:
            if len(snapshots) == 1:
                snapshots.append(tracemalloc.take_snapshot())
                types_after.append(_types())

        tracemalloc.start(16)
        snapshots.append(tracemalloc.take_snapshot())
        held = await driver.hold_streams(port, "/v1/chat/completions", body, n, ramp_deadline=120, hold_s=2.5,
                                         sample=sample, sample_every=1.0)
        tracemalloc.stop()
        stop.set()
        now.set()
        nursery.cancel_scope.cancel()
    before, after = snapshots
    skip = tracemalloc.Filter(False, "*/perf/driver.py", all_frames=True)
    before, after = before.filter_traces([skip]), after.filter_traces([skip])
    streams = max(held.started, 1)
    by_layer: dict[str, int] = defaultdict(int)
    old: dict[str, int] = defaultdict(int)
    for stat in before.statistics("traceback"):
        old[_layer(stat.traceback)] += stat.size
    for stat in after.statistics("traceback"):
        by_layer[_layer(stat.traceback)] += stat.size
    for name, size in old.items():
        by_layer[name] -= size
    total = sum(by_layer.values())
    lines = [f"{held.started}/{n} streams open: {total / 1024:.0f} KB traced Python memory, "
             f"{total / streams / 1024:.1f} KB per stream", "",
             "| layer (innermost non-stdlib frame) | KB per stream |", "|---|---:|"]
    for name, size in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {size / streams / 1024:.2f} |")
    lines += ["", "| allocation site | KB per stream |", "|---|---:|"]
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("/site-packages/")[-1].split("/muxtrio/", 1)[-1]
        lines.append(f"| `{where}:{frame.lineno}` | {stat.size_diff / streams / 1024:.2f} |")
    lines += ["", "| object type (gc-tracked, allocated while the streams opened, shallow size) | objects per stream "
              "| KB per stream |", "|---|---:|---:|"]
    for name, (count, size) in sorted(types_after[0].items(), key=lambda kv: -kv[1][1])[:top]:
        lines.append(f"| {name} | {count / streams:.1f} | {size / streams / 1024:.2f} |")
    lines += ["", "largest allocation paths (full traceback, innermost last):"]
    for stat in after.compare_to(before, "traceback")[:tracebacks]:
        lines.append(f"- {stat.size_diff / streams / 1024:.2f} KB per stream, {stat.count_diff / streams:.1f} blocks")
        lines += [f"    {f.filename.split('/site-packages/')[-1].split('/muxtrio/', 1)[-1]}:{f.lineno}"
                  for f in stat.traceback[-8:]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tracemalloc per open stream, whole gateway in-process")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--tracebacks", type=int, default=10, help="how many of the largest allocation paths to show")
    ap.add_argument("--port", type=int, default=targets.MUX_PORT, help="the gateway's port")
    ap.add_argument("--fake-port", type=int, default=targets.FAKE_PORT, help="the fake provider's port")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, args.fake_port, "1", "fake-provider")
            cfg = Path(tmp) / "muxtrio.yaml"
            cfg.write_text(targets.muxtrio_config(args.port, 1, args.fake_port))
            print(trio.run(_measure, args.streams, args.top, cfg, args.port, args.tracebacks))
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

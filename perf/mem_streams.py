"""Where the memory of an open stream goes: the Engine embedded in-process, N slow streams open at once against
the fake provider, and tracemalloc's snapshot difference grouped by allocation site.

RSS per stream (scenario ``streams_1000``) says *how much*; this says *which code* holds it (Python allocations
only: kernel socket buffers are not RSS of the process and C allocations outside the Python allocator are not
traced). It covers the engine and upstream side of a stream (the reader task, channel, pool, decoder, httpx2
connection); the server side (hypercorn connection, handler) is not in it.

    python -m perf.mem_streams [--streams 500] [--top 15]

The fake provider is started on cpu1 for the duration; the measurement itself runs where it is started.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from pathlib import Path

import trio

from muxtrio import Engine, load_config
from muxtrio.codecs.base import RequestHints
from muxtrio.codecs.registry import get_codec
from perf import targets
from perf.procs import Procs


async def hold(n: int, top: int, config_path: Path) -> str:
    config = load_config(config_path)
    codec = get_codec("openai-chat")
    body = b'{"model":"fake-d1000-n60","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":60}'
    started = 0
    all_started = trio.Event()
    async with Engine(config) as engine:

        async def one() -> None:
            nonlocal started
            request = codec.parse_request(body, RequestHints())
            async with engine.stream(request) as events:
                first = True
                async for _ in events:
                    if first:
                        first = False
                        started += 1
                        if started == n:
                            all_started.set()

        # One stream first, so one-time allocations (imports, caches, the client) are in the baseline.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            while started < 1:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        started = 0
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
            with trio.move_on_after(60):
                await all_started.wait()
            await trio.sleep(1.0)
            after = tracemalloc.take_snapshot()
            nursery.cancel_scope.cancel()
        tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [f"{started}/{n} streams open: {total / 1024:.0f} KB traced Python memory, "
             f"{total / max(started, 1) / 1024:.1f} KB per stream", "", "| allocation site | KB per stream |",
             "|---|---:|"]
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("/site-packages/")[-1].split("/work/main/")[-1]
        lines.append(f"| `{where}:{frame.lineno}` | {stat.size_diff / max(started, 1) / 1024:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tracemalloc per open stream, engine in-process")
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
            cfg = Path(tmp) / "muxtrio.yaml"
            cfg.write_text(targets.muxtrio_config(targets.MUX_PORT, 1))
            print(trio.run(hold, args.streams, args.top, cfg))
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

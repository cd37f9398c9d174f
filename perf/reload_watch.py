"""How the config-file watcher notices a change: ``os.stat`` polling (what muxtrio uses) vs ``watchfiles`` (inotify).

Reports the cost of one poll, the detection latency of each (the file replaced by rename, as editors do, at
different phases of the poll interval), and the idle CPU of each over 10 s. ``watchfiles`` is not a muxtrio
dependency: its half is skipped unless it is importable (``pip install --target /tmp/wf watchfiles`` and
``PYTHONPATH=/tmp/wf``). Asserts nothing; prints numbers (perf/README.md, "Config watcher").

    python -m perf.reload_watch
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable

import trio

INTERVAL_S = 1.0
ROUNDS = 6


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _signature(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


def _replace(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def stat_cost_us(path: str, n: int = 200_000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        _signature(path)
    return (time.perf_counter() - start) / n * 1e6


async def _latencies(path: str, watch: Callable[[Callable[[], None]], Awaitable[None]]) -> list[float]:
    latencies: list[float] = []
    written = [0.0]
    detected = [trio.Event()]

    def seen() -> None:
        if written[0]:
            latencies.append(time.perf_counter() - written[0])
            written[0] = 0.0
            detected[0].set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, seen)
        await trio.sleep(0.5)
        for i in range(ROUNDS):
            await trio.sleep(INTERVAL_S * (0.15 + 0.17 * i))  # write at a different phase of the poll each time
            detected[0] = trio.Event()
            written[0] = time.perf_counter()
            _replace(path, f"port: {i}\n")
            with trio.fail_after(10):
                await detected[0].wait()
        nursery.cancel_scope.cancel()
    return latencies


def _poller(path: str) -> Callable[[Callable[[], None]], Awaitable[None]]:
    async def watch(seen: Callable[[], None]) -> None:
        last = _signature(path)
        while True:
            await trio.sleep(INTERVAL_S)
            current = _signature(path)
            if current != last:
                last = current
                seen()

    return watch


def _inotify(path: str) -> Callable[[Callable[[], None]], Awaitable[None]]:
    import watchfiles  # type: ignore[import-not-found]

    async def watch(seen: Callable[[], None]) -> None:
        async for _ in watchfiles.awatch(os.path.dirname(path), debounce=50, step=10,
                                         watch_filter=lambda _change, changed: changed == path):
            seen()

    return watch


async def _idle_cpu(watch: Callable[[Callable[[], None]], Awaitable[None]], seconds: float = 10.0) -> float:
    before = _cpu()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, lambda: None)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return (_cpu() - before) / seconds * 100


async def main() -> None:
    path = os.path.join(tempfile.mkdtemp(), "muxtrio.yaml")
    _replace(path, "port: 1\n")
    print(f"os.stat poll: {stat_cost_us(path):.2f} us each")
    watchers = [("poll 1 s", _poller(path))]
    try:
        watchers.append(("watchfiles", _inotify(path)))
    except ImportError:
        print("watchfiles not importable: skipped")
    for name, watch in watchers:
        latencies = await _latencies(path, watch)
        shown = ", ".join(f"{x * 1000:.0f}" for x in latencies)
        print(f"{name}: detection latency ms [{shown}], max {max(latencies) * 1000:.0f}")
        print(f"{name}: idle CPU {await _idle_cpu(watch):.3f} %")


if __name__ == "__main__":
    trio.run(main)

"""What an open stream keeps alive, by structure rather than by allocation site: the gateway served in-process (as
in :mod:`perf.mem_server`), N slow streams held open by the perf driver, and at the hold point, from inside the trio
run, a walk of

- the task tree: every task's suspended coroutine chain (``cr_await`` / ``ag_await`` / ``gi_yieldfrom``), grouped by
  the chain's shape, with frames per stream and the bytes of those frames;
- the cancel scopes and cancel statuses alive (trio allocates two sets per status), and who owns the other sets and
  lists (the attribute of which object type holds them);
- the receive buffers the open connections hold (h11's, server side and upstream side) and their capacity.

The driver's own tasks (any frame in ``perf/driver.py``) are left out. Cold: the streams are the first ones the
process serves after one warm-up request.

    python -m perf.mem_tasks [--streams 200]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import tempfile
import tracemalloc
import types
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import trio

from muxtrio.config import load_config
from muxtrio.server import listener
from muxtrio.server.app import MuxApp
from muxtrio.server.runner import hypercorn_config
from perf import driver, targets
from perf.procs import Procs


def _short(code: types.CodeType) -> str:
    where = code.co_filename.split("/site-packages/")[-1].split("/muxtrio/", 1)[-1]
    return f"{where.rsplit('/', 1)[-1].removesuffix('.py')}.{code.co_qualname}"


def _chain(coro: Any) -> list[Any]:
    """The suspended awaitables of one task, outermost first."""
    out = []
    while coro is not None:
        out.append(coro)
        if type(coro).__name__ in ("async_generator_asend", "async_generator_athrow", "coroutine_wrapper"):
            # no public attribute leads on: the generator/coroutine is among its referents
            inner = [r for r in gc.get_referents(coro) if type(r).__name__ in ("async_generator", "coroutine")]
            coro = inner[0] if inner else None
            continue
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                or getattr(coro, "gi_yieldfrom", None))
    return out


def _code(obj: Any) -> types.CodeType | None:
    code = getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None) or getattr(obj, "gi_code", None)
    return code if isinstance(code, types.CodeType) else None


def _file(obj: Any) -> str:
    code = _code(obj)
    return code.co_filename if code is not None else ""


def _name(obj: Any) -> str:
    code = _code(obj)
    return _short(code) if code is not None else type(obj).__qualname__


def _tasks(root: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    found, todo = [], [root]
    while todo:
        task = todo.pop()
        found.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


def _owners() -> dict[int, str]:
    """id(set or list or bytearray) -> 'OwnerType.attribute' for containers held in an object's attributes."""
    owners: dict[int, str] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        attrs: dict[str, Any] = {}
        raw = getattr(obj, "__dict__", None)
        if isinstance(raw, dict):
            attrs.update(raw)
            if not isinstance(obj, type):
                owners.setdefault(id(raw), f"{kind.__module__.split('.')[0]}.{kind.__qualname__}.__dict__")
        for cls in kind.__mro__:
            for slot in cls.__dict__.get("__slots__", ()):
                with contextlib.suppress(AttributeError, TypeError):
                    attrs[slot] = getattr(obj, slot)
        for attr, value in attrs.items():
            if isinstance(value, (set, list, bytearray, dict, deque_type)):
                owners.setdefault(id(value), f"{kind.__module__.split('.')[0]}.{kind.__qualname__}.{attr}")
    return owners


deque_type = __import__("collections").deque


def _where(obj: Any) -> str:
    trace = tracemalloc.get_object_traceback(obj)
    if trace is None:
        return "?"
    for frame in reversed(trace):  # innermost first: the first frame outside trio and contextlib
        name = frame.filename
        if "/trio/" not in name and "contextlib" not in name and "<attrs" not in name:
            return f"{name.split('/site-packages/')[-1].split('/muxtrio/', 1)[-1]}:{frame.lineno}"
    return f"{trace[-1].filename.split('/site-packages/')[-1]}:{trace[-1].lineno}"


def _sites(n: int, baseline_ids: set[int]) -> list[str]:
    """Where the open streams' cancel scopes were made, and which generators the live ``@contextmanager``s run."""
    scopes: Counter[str] = Counter()
    managers: Counter[str] = Counter()
    for obj in gc.get_objects():
        if id(obj) in baseline_ids:
            continue
        name = type(obj).__name__
        if name == "CancelScope":
            scopes[_where(obj)] += 1
        elif name in ("_GeneratorContextManager", "_AsyncGeneratorContextManager"):
            gen = getattr(obj, "gen", None)
            code = getattr(gen, "gi_code", None) or getattr(gen, "ag_code", None)
            managers[_short(code) if code is not None else "?"] += 1
    lines = ["| cancel scope made at | per stream |", "|---|---:|"]
    lines += [f"| {site} | {count / n:.2f} |" for site, count in scopes.most_common() if count >= n / 10]
    lines += ["", "| live context manager (generator) | per stream |", "|---|---:|"]
    lines += [f"| {site} | {count / n:.2f} |" for site, count in managers.most_common() if count >= n / 10]
    return [*lines, ""]


def _analyse(n: int, baseline_ids: set[int]) -> str:
    root = trio.lowlevel.current_root_task()
    tasks = [t for t in _tasks(root)]
    chains: Counter[tuple[str, ...]] = Counter()
    frame_bytes = 0
    frames = 0
    driver_tasks = 0
    for task in tasks:
        chain = _chain(task.coro)
        names = tuple(_name(c) for c in chain)
        if any("perf/driver" in _file(c) for c in chain):
            driver_tasks += 1
            continue
        if id(task) in baseline_ids:
            continue
        chains[names] += 1
        for c in chain:
            frames += 1
            frame_bytes += sys.getsizeof(c)
    lines = [f"{n} streams; gateway tasks new since the warm-up: {sum(chains.values())} "
             f"({sum(chains.values()) / n:.2f} per stream), suspended coroutine/generator frames "
             f"{frames / n:.1f} per stream, ~{frame_bytes / n / 1024:.2f} KB per stream (sys.getsizeof)",
             "", "| tasks per stream | chain (outermost first) |", "|---:|---|"]
    for names, count in chains.most_common():
        if count < n / 10:
            continue
        lines.append(f"| {count / n:.2f} | {' → '.join(names)} |")
    # containers by owner
    owners = _owners()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    sizes: dict[str, Counter[str]] = defaultdict(Counter)
    scopes = statuses = 0
    for obj in gc.get_objects():
        if id(obj) in baseline_ids:
            continue
        kind = type(obj)
        if kind.__name__ == "CancelScope":
            scopes += 1
        elif kind.__name__ == "CancelStatus":
            statuses += 1
        if kind in (set, list, bytearray, dict, deque_type):
            owner = owners.get(id(obj), "(no attribute owner: locals, nested, weakref internals)")
            kinds[kind.__name__][owner] += 1
            sizes[kind.__name__][owner] += sys.getsizeof(obj)
    lines += ["", f"CancelScope {scopes / n:.2f} per stream, CancelStatus {statuses / n:.2f} per stream", ""]
    lines += _sites(n, baseline_ids)
    for kind_name in ("set", "list", "dict", "deque", "bytearray"):
        lines += [f"| {kind_name} owner | per stream | KB per stream |", "|---|---:|---:|"]
        for owner, count in sorted(kinds[kind_name].items(), key=lambda kv: -sizes[kind_name][kv[0]])[:14]:
            if count < n / 10:
                continue
            lines.append(f"| {owner} | {count / n:.2f} | {sizes[kind_name][owner] / n / 1024:.2f} |")
        lines.append("")
    # receive buffers: h11 connections (server side, upstream side)
    import h11
    buffers: dict[str, list[int]] = defaultdict(list)
    for obj in gc.get_objects():
        if isinstance(obj, h11.Connection) and id(obj) not in baseline_ids:
            side = "server (hypercorn)" if obj.our_role is h11.SERVER else "client (httpcore2 or driver)"
            data = obj._receive_buffer._data
            buffers[side].append(sys.getsizeof(data))
    lines += ["| h11 receive buffer | connections | mean capacity (bytes) | max |", "|---|---:|---:|---:|"]
    for side, caps in buffers.items():
        lines.append(f"| {side} | {len(caps)} | {sum(caps) / len(caps):.0f} | {max(caps)} |")
    return "\n".join(lines) + "\n"


async def _measure(n: int, config_path: Path, port: int) -> str:
    config = load_config(config_path)
    hc = hypercorn_config(config)
    app = MuxApp(config)
    stop, now = trio.Event(), trio.Event()
    body = driver.chat("fake-d1000-n600", stream=True, max_tokens=600)
    report: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: listener.serve(app, hc, http2=False, sockets=None, stop=stop, now=now))
        await trio.sleep(0.5)
        await driver.one_call(port, "/v1/chat/completions", driver.chat("fake-n5", stream=True))
        gc.collect()
        baseline_ids = {id(o) for o in gc.get_objects()}
        baseline_ids.update(id(t) for t in _tasks(trio.lowlevel.current_root_task()))
        token = trio.lowlevel.current_trio_token()
        tracemalloc.start(12)

        def sample() -> None:
            if not report:
                report.append(trio.from_thread.run_sync(lambda: _analyse(n, baseline_ids), trio_token=token))

        held = await driver.hold_streams(port, "/v1/chat/completions", body, n, ramp_deadline=120, hold_s=1.5,
                                         sample=sample, sample_every=1.0)
        stop.set()
        now.set()
        nursery.cancel_scope.cancel()
    status = f"driver: {held.opened} opened, {held.started} started, {held.failed} failed, ramp {held.ramp_s} s\n"
    return status + (report[0] if report else "no sample taken")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="task tree, cancel scopes, containers and buffers per open stream")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--port", type=int, default=targets.MUX_PORT, help="the gateway's port")
    ap.add_argument("--fake-port", type=int, default=targets.FAKE_PORT, help="the fake provider's port")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, args.fake_port, "1", "fake-provider")
            cfg = Path(tmp) / "muxtrio.yaml"
            cfg.write_text(targets.muxtrio_config(args.port, 1, args.fake_port))
            print(trio.run(_measure, args.streams, cfg, args.port))
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

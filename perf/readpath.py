"""The upstream read path (issue 19, target 4): one pass per socket read instead of one per provider chunk.

Three measurements, each an A/B in the same run on this box (the base is the muxtrio tree at ``--base``, default
``main``, extracted with ``git archive``; the candidate is this working tree):

``python -m perf.readpath server [--rounds 3] [--seconds 8]``
    Both gateways on cpu0 (the one not measured is paused), the fake provider and wrk on cpu1, alternating base,
    candidate, base, candidate on 1,000-event streams (wrk c=8) for OpenAI, Anthropic, Gemini and Ollama providers
    → an OpenAI client. Per target: events/s, events/s per core of the gateway's own CPU, and CPU per event (µs).
    Then py-spy on each gateway under the OpenAI and Anthropic streams: the share of busy samples inside
    ``UpstreamResponse.chunks`` (the read path: httpx2, httpcore2 and h11 under it), inside the wire line splitters,
    and inside the engine's read loop.
``python -m perf.readpath inprocess [--streams 40]``
    No gateway: the real :class:`UpstreamClient` in this process (cpu0) reads 1,000-event streams from the fake
    (cpu1), 8 at a time, and ``time.process_time`` is taken per layer: h11 + httpcore2 + httpx2's transport stream,
    + ``aiter_bytes``, + ``chunks`` (base: one piece per chunk; candidate: one piece per read), + the SSE/NDJSON line
    splitter (base and candidate modules) fed what ``chunks`` yields; and h11 alone, fed the same stream from memory.
``python -m perf.readpath pool``
    The seed's pooled buffers on the read side: joining the pieces of one read with ``b"".join`` against copying them
    into a pooled ``bytearray`` (4 KB kept, dropped past 64 KB, as llm-mux does) and handing out ``bytes`` of it;
    and splitting a read into lines with `bytes.splitlines`, a `find` loop of bytes slices, or memoryview slices;
    µs per read (best of rounds) and the traced memory one read's result holds.

Results go to ``perf/results/<date>-<host>-readpath-<what>.json`` and are printed as table rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import types
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import trio

from perf import targets, wrk
from perf.procs import Procs, measured, wait_http
from perf.profile import PYSPY, _frames

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FAKE_PORT = 9141
BASE_PORT, NEW_PORT = 8441, 8442
OPENAI = "/v1/chat/completions"
STREAMS = (  # label, model (its prefix picks the provider format)
    ("OpenAI → OpenAI", "fake-n1000"),
    ("Anthropic → OpenAI", "claude-fake-n1000"),
    ("Gemini → OpenAI", "gemini-fake-n1000"),
    ("Ollama → OpenAI", "llama-fake-n1000"),
)
EVENTS = 1000


def _out(what: str) -> Path:
    return RESULTS / f"{dt.date.today().isoformat()}-{socket.gethostname()}-readpath-{what}.json"


def extract_base(ref: str, into: Path) -> Path:
    """The ``muxtrio`` package of git ``ref``, extracted under ``into`` (which then goes first on PYTHONPATH)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(targets.ROOT), "archive", ref, "muxtrio"], capture_output=True,
                             check=True).stdout
    tar = into / "base.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as tf:
        tf.extractall(into, filter="data")
    tar.unlink()
    return into


def _commit(ref: str) -> str:
    return subprocess.run(["git", "-C", str(targets.ROOT), "rev-parse", "--short", ref], capture_output=True,
                          text=True, check=False).stdout.strip()


# ---------------------------------------------------------------------------------------------- server A/B
def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": EVENTS}


def _readpath_shares(raw: str) -> dict[str, float]:
    """Shares of busy samples (inclusive) in the read path's parts, from py-spy's collapsed stacks."""
    parts = {"chunks (httpx2 + httpcore2 + h11 below it)": 0, "h11": 0, "wire line splitting (sse/ndjson)": 0,
             "engine _stream_once (whole reader)": 0}
    busy = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = _frames(stack)
        if not frames or any(w in frames[-1][0] for w in ("epoll", "select", "poll", "get_events")):
            continue
        count = int(count_text)
        busy += count
        names = {(func.rsplit(".", 1)[-1], Path(file).name, pkg) for func, file, pkg in frames}
        if any(f == "chunks" and n == "client.py" for f, n, _ in names):
            parts["chunks (httpx2 + httpcore2 + h11 below it)"] += count
        if any(p == "h11" for _, _, p in names):
            parts["h11"] += count
        if any(f in ("feed", "_line") and n in ("sse.py", "ndjson.py") for f, n, _ in names):
            parts["wire line splitting (sse/ndjson)"] += count
        if any(f == "_stream_once" for f, _, _ in names):
            parts["engine _stream_once (whole reader)"] += count
    return {k: round(100 * v / max(busy, 1), 1) for k, v in parts.items()} | {"busy_samples": busy}


def server(args: argparse.Namespace) -> int:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = RESULTS / "raw" / f"readpath-{stamp}"
    base_tree = extract_base(args.base, workdir / "base")
    procs = Procs(workdir)
    report: dict[str, Any] = {"date": dt.date.today().isoformat(), "host": socket.gethostname(),
                              "base": f"{args.base} ({_commit(args.base)})",
                              "candidate": f"worktree ({_commit('HEAD')})", "rounds": args.rounds,
                              "seconds": args.seconds, "streams": {}, "profile": {}}
    try:
        targets.start_fake(procs, FAKE_PORT, "1", "fake-provider")
        gateways: dict[str, tuple[int, Any]] = {}
        exe = str(Path(sys.executable).with_name("muxtrio"))
        for name, port, tree in (("base", BASE_PORT, base_tree), ("candidate", NEW_PORT, targets.ROOT)):
            cfg = workdir / f"{name}.yaml"
            cfg.write_text(targets.muxtrio_config(port, 1, FAKE_PORT, observability=True,
                                                  usage_db=workdir / f"usage-{name}.db"))
            proc = procs.start(f"muxtrio-{name}", [exe, "serve", "--config", str(cfg)], "0",
                               env={"PYTHONPATH": str(tree)}, cwd=str(workdir))
            wait_http(f"http://127.0.0.1:{port}{OPENAI}", data=targets.PROBE)
            gateways[name] = (port, proc)
        for label, model in STREAMS:
            samples: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                for name, (port, proc) in gateways.items():
                    url = f"http://127.0.0.1:{port}{OPENAI}"
                    with procs.only(proc):
                        wrk.run(url, _chat(model), conns=8, seconds=1)
                        result, usage = measured(proc.pid, partial(wrk.run, url, _chat(model), conns=8,
                                                                   seconds=args.seconds))
                    events_s = result["rps"] * EVENTS
                    per_core = events_s / (usage.cpu_pct / 100) if usage.cpu_pct > 1 else 0.0
                    samples.append({"target": name, "events_s": round(events_s), "cpu_pct": usage.cpu_pct,
                                    "rss_max_mb": usage.rss_max_mb,
                                    "per_core": round(per_core), "us_per_event": round(1e6 / per_core, 2)
                                    if per_core else None, "non2xx": result["non2xx"],
                                    "errors": result["socket_errors"]})
            best = {name: max((s for s in samples if s["target"] == name), key=lambda s: s["per_core"])
                    for name in gateways}
            report["streams"][label] = {"samples": samples, "best": best}
            b, c = best["base"], best["candidate"]
            print(f"| {label} | {b['per_core']:,} | {c['per_core']:,} | {c['per_core'] / max(b['per_core'], 1):.2f}x"
                  f" | {b['us_per_event']} | {c['us_per_event']} | {b['events_s']:,} | {c['events_s']:,} |"
                  f" {b['rss_max_mb']} | {c['rss_max_mb']} |", flush=True)
        if PYSPY.exists():
            for label, model in STREAMS[:2]:
                for name, (port, proc) in gateways.items():
                    url = f"http://127.0.0.1:{port}{OPENAI}"
                    out = workdir / f"pyspy-{name}-{re.sub(r'[^a-z]+', '-', label.lower())}.txt"
                    with procs.only(proc):
                        load = threading.Thread(target=wrk.run, args=(url, _chat(model)),
                                                kwargs={"conns": 8, "seconds": args.seconds + 3})
                        load.start()
                        time.sleep(1.0)
                        subprocess.run([str(PYSPY), "record", "--pid", str(proc.pid), "--rate", "250", "--duration",
                                        str(int(args.seconds)), "--format", "raw", "--full-filenames",
                                        "--nonblocking", "-o", str(out)], capture_output=True,
                                       timeout=args.seconds + 60, check=False)
                        load.join()
                    shares = _readpath_shares(out.read_text() if out.exists() else "")
                    report["profile"].setdefault(label, {})[name] = shares
                    print(f"py-spy {label} {name}: {shares}", flush=True)
    finally:
        procs.stop_all()
    path = _out("server")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path.relative_to(targets.ROOT)}")
    return 0


# ---------------------------------------------------------------------------------------------- in-process layers
def _load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _wire(model: str) -> tuple[str, Any]:
    from muxtrio.codecs.base import WireRequest

    headers = (("content-type", "application/json"),)
    if model.startswith("claude"):
        body = {"model": model, "max_tokens": EVENTS, "stream": True, "messages": []}
        return "sse", WireRequest("POST", "/v1/messages", headers, orjson.dumps(body))
    if model.startswith("gemini"):
        return "sse", WireRequest("POST", f"/v1beta/models/{model}:streamGenerateContent?alt=sse", headers,
                                  orjson.dumps({"generationConfig": {"maxOutputTokens": EVENTS}}))
    if model.startswith("llama"):
        return "ndjson", WireRequest("POST", "/api/chat", headers, orjson.dumps({"model": model, "stream": True}))
    return "sse", WireRequest("POST", "/v1/chat/completions", headers, orjson.dumps({"model": model, "stream": True}))


async def _per_piece(response: Any) -> AsyncIterator[bytes]:
    """The base's ``chunks``: one piece per HTTP chunk (error mapping and capture left out, as they cost nothing
    per piece)."""
    async for piece in response._response.aiter_bytes():
        if piece:
            yield piece


async def _transport_only(response: Any) -> AsyncIterator[bytes]:
    async for piece in response._response.stream:
        yield piece


def h11_alone(rounds: int) -> float:
    """µs per event for h11 alone: a 1,000-event OpenAI stream, one HTTP chunk per event, fed from memory in 16 KB
    reads to a client connection (the floor of any read path built on h11)."""
    import h11

    from perf import fake_provider as fake

    events = list(fake.openai_stream("fake-n1000", fake.Shape(0.0, EVENTS, 0), False))
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    reads = [body[i : i + 16384] for i in range(0, len(body), 16384)]

    def once() -> int:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(head)
        conn.next_event()
        count = 0
        for read in reads:
            conn.receive_data(read)
            while isinstance(conn.next_event(), h11.Data):
                count += 1
        return count

    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        count = sum(once() for _ in range(20))
        best = min(best, (time.process_time() - t0) / count * 1e6)
    return round(best, 2)


def inprocess(args: argparse.Namespace) -> int:
    from muxtrio.upstream.client import ClientSettings, UpstreamClient

    workdir = RESULTS / "raw" / f"readpath-inprocess-{dt.datetime.now().strftime('%Y-%m-%dT%H%M%S')}"
    base_tree = extract_base(args.base, workdir / "base")
    splitters = {
        "base": (_load(base_tree / "muxtrio/wire/sse.py", "base_sse").SSEDecoder,
                 _load(base_tree / "muxtrio/wire/ndjson.py", "base_ndjson").NDJSONDecoder),
        "candidate": (_load(targets.ROOT / "muxtrio/wire/sse.py", "new_sse").SSEDecoder,
                      _load(targets.ROOT / "muxtrio/wire/ndjson.py", "new_ndjson").NDJSONDecoder),
    }
    os.sched_setaffinity(0, {0})
    procs = Procs(workdir)
    report: dict[str, Any] = {"date": dt.date.today().isoformat(), "host": socket.gethostname(),
                              "base": f"{args.base} ({_commit(args.base)})", "streams": args.streams, "rows": {}}
    layers: dict[str, tuple[Callable[[Any], AsyncIterator[bytes]], str | None]] = {
        "transport stream (h11 + httpcore2 + httpx2 transport)": (_transport_only, None),
        "+ aiter_bytes + per-chunk chunks()  [base]": (_per_piece, None),
        "+ per-read chunks()  [candidate]": (lambda r: r.chunks(), None),
        "base: per-chunk chunks() + base splitter": (_per_piece, "base"),
        "candidate: per-read chunks() + candidate splitter": (lambda r: r.chunks(), "candidate"),
    }
    report["h11_alone_us_per_event"] = h11_alone(args.rounds)
    print(f"h11 alone: {report['h11_alone_us_per_event']} µs/event")
    try:
        targets.start_fake(procs, FAKE_PORT, "1", "fake-provider")

        async def run(model: str, layer: Callable[[Any], AsyncIterator[bytes]], splitter: str | None) -> dict[str, Any]:
            kind, wire = _wire(model)
            client = UpstreamClient("fake", ClientSettings(base_url=f"http://127.0.0.1:{FAKE_PORT}"))
            decoder_type = None if splitter is None else splitters[splitter][0 if kind == "sse" else 1]
            counts = {"pieces": 0, "bytes": 0, "items": 0}

            async def one() -> None:
                response = await client.start(wire)
                decoder = decoder_type() if decoder_type is not None else None
                try:
                    async for piece in layer(response):
                        counts["pieces"] += 1
                        counts["bytes"] += len(piece)
                        if decoder is not None:
                            counts["items"] += len(decoder.feed(piece))
                finally:
                    await response.aclose()

            await one()  # connection and imports warm
            counts.update(pieces=0, bytes=0, items=0)
            t0 = time.process_time()
            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    async def loop() -> None:
                        for _ in range(max(1, args.streams // 8)):
                            await one()
                    nursery.start_soon(loop)
            cpu = time.process_time() - t0
            await client.aclose()
            events = max(1, args.streams // 8) * 8 * EVENTS
            return {"cpu_s": round(cpu, 4), "us_per_event": round(cpu / events * 1e6, 3),
                    "pieces_per_stream": round(counts["pieces"] / (events / EVENTS), 1), "lines_or_events":
                    counts["items"]}

        for label, model in STREAMS:
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in layers}
            for _ in range(args.rounds):
                for name, (layer, splitter) in layers.items():
                    rows[name].append(trio.run(run, model, layer, splitter))
            best = {name: min(samples, key=lambda s: s["us_per_event"]) for name, samples in rows.items()}
            report["rows"][label] = {"samples": rows, "best": best}
            print(f"## {label}")
            for name, b in best.items():
                print(f"| {name} | {b['us_per_event']} µs/event | {b['pieces_per_stream']} pieces/stream |", flush=True)
    finally:
        procs.stop_all()
    path = _out("inprocess")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path.relative_to(targets.ROOT)}")
    return 0


# ---------------------------------------------------------------------------------------------- pooled buffers
class BufferPool:
    """llm-mux's event-buffer pool in Python: ``bytearray``s handed out cleared, taken back unless they grew past
    ``drop_above`` (so one huge response does not bloat the pool)."""

    def __init__(self, size: int = 4096, drop_above: int = 64 * 1024, keep: int = 64) -> None:
        self._free: list[bytearray] = []
        self._size, self._drop_above, self._keep = size, drop_above, keep

    def take(self) -> bytearray:
        return self._free.pop() if self._free else bytearray(self._size)

    def give(self, buf: bytearray) -> None:
        if len(buf) <= self._drop_above and len(self._free) < self._keep:
            buf.clear()
            self._free.append(buf)


def pool(args: argparse.Namespace) -> int:
    from perf import fake_provider as fake

    shape = fake.Shape(0.0, 100, 0)
    events = list(fake.openai_stream("fake-n100", shape, False))  # ~100 events ≈ what one socket read carries
    report: dict[str, Any] = {"date": dt.date.today().isoformat(), "host": socket.gethostname(), "rows": {}}
    buffers = BufferPool()

    def joined(parts: list[bytes]) -> bytes:
        return b"".join(parts)

    def pooled(parts: list[bytes]) -> bytes:
        buf = buffers.take()
        for part in parts:
            buf += part
        out = bytes(buf)  # the decoder and everything after it keep bytes (immutable, hashable, orjson-ready)
        buffers.give(buf)
        return out

    def split_lines(parts: list[bytes]) -> object:  # the candidate decoder: one C call per read
        return b"".join(parts).splitlines()

    def find_slices(parts: list[bytes]) -> object:  # the base decoder: a find loop, a bytes copy per line
        data, out, start = b"".join(parts), [], 0
        while (nl := data.find(b"\n", start)) >= 0:
            out.append(data[start:nl])
            start = nl + 1
        return out

    def find_views(parts: list[bytes]) -> object:  # memoryview slices instead of copies (orjson reads them)
        data, out, start = b"".join(parts), [], 0
        view = memoryview(data)
        while (nl := data.find(b"\n", start)) >= 0:
            out.append(view[start:nl])
            start = nl + 1
        return out

    variants: tuple[tuple[str, Callable[[list[bytes]], object]], ...] = (
        ("join a read: b\"\".join", joined), ("join a read: pooled bytearray → bytes", pooled),
        ("split a read: bytes.splitlines", split_lines), ("split a read: find + bytes slices", find_slices),
        ("split a read: find + memoryview slices", find_views))
    for per_read in (10, 100):
        parts = events[:per_read]
        for name, fn in variants:
            n = 20_000
            best = float("inf")
            for _ in range(args.rounds):
                t0 = time.process_time()
                for _ in range(n):
                    fn(parts)
                best = min(best, time.process_time() - t0)
            tracemalloc.start()
            keep = [fn(parts) for _ in range(100)]
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del keep
            row = {"us_per_read": round(best / n * 1e6, 3), "peak_kb_per_read": round(peak / 1024 / 100, 2)}
            report["rows"][f"{per_read} events per read: {name}"] = row
            print(f"| {per_read} events/read | {name} | {row['us_per_read']} µs/read | "
                  f"{row['peak_kb_per_read']} KB held per read |", flush=True)
    path = _out("pool")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path.relative_to(targets.ROOT)}")
    return 0


def shares(args: argparse.Namespace) -> int:
    """Recompute the py-spy shares from a ``server`` run's raw directory (``--raw DIR``)."""
    out: dict[str, dict[str, float]] = {}
    for path in sorted(Path(args.raw).glob("pyspy-*.txt")):
        out[path.stem] = _readpath_shares(path.read_text())
        print(f"{path.stem}: {out[path.stem]}")
    report = _out("server")
    if report.exists():
        data = json.loads(report.read_text())
        data["profile_from_raw"] = {"dir": str(args.raw), "shares": out}
        report.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("server", "inprocess", "pool", "shares"), nargs="?", default="server")
    ap.add_argument("--raw", default="", help="shares: the raw directory of a server run")
    ap.add_argument("--base", default="main", help="git ref of the base tree (default: main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--streams", type=int, default=40)
    args = ap.parse_args(argv)
    if args.what == "server" and (shutil.which("wrk") is None):
        print("wrk not found (apt-get install wrk)")
        return 2
    return {"server": server, "inprocess": inprocess, "pool": pool, "shares": shares}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())

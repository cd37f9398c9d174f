"""The seed's buffer reuse on the write side, tried in Python (issue 19): does framing a batch of SSE events into a
pooled ``bytearray`` (llm-mux keeps 4 KB event buffers pooled and drops any that grew past 64 KB) beat today's
``SSEFramer.frame`` (one ``bytes.join`` over the batch)?

Variants, each framing the same batches of real OpenAI Chat chunk payloads (from the chat encoder) as the writer
does (one call per ready batch, the result handed to the transport and dropped):

- ``join``   — today: :meth:`muxtrio.wire.sse.SSEFramer.frame`, one ``bytes.join`` per batch (one output object of
  exactly the right size; the payload list is the only other allocation).
- ``pool``   — a pooled ``bytearray`` per batch (taken from a free list, 4 KB reserved, dropped when it grew past
  64 KB), the frames appended with ``+=``, then ``bytes(buf)`` because the ASGI ``body`` (Hypercorn, h11) and the
  WebSocket ``send_message`` need ``bytes``; the buffer goes back to the pool.
- ``pool-view`` — the same, but the batch handed over as a ``memoryview`` of the pooled buffer with no copy: the
  most pooling could give if the transport took buffers (trio's ``send_all`` does; Hypercorn's ASGI ``body`` does
  not, so this is an upper bound, not an option).

Measures per variant, best of rounds, alternating A B C A B C on one core: CPU per event (``time.process_time``)
and tracemalloc's peak while a 100K-event answer is framed. Allocations per batch are counted from the code (Python
exposes no count of freed allocations): ``join`` makes the payload list and the output (2 per batch, none per
event); ``pool`` makes the output copy and two memoryviews (3 per batch, none per event once the pool is warm);
``pool-view`` two memoryviews. RSS under load follows from the peak: a pool adds its buffers to every writer.

    python -m perf.buffer_reuse [--events 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from muxtrio.codecs.base import Format
from muxtrio.wire.framing import Frame
from muxtrio.wire.sse import SSEFramer
from perf import bench_codecs

POOL_RESERVE = 4 * 1024
POOL_DROP = 64 * 1024


class PooledFramer:
    """SSE data-only framing into pooled ``bytearray``s (the seed's technique)."""

    def __init__(self, copy_out: bool) -> None:
        self._free: list[bytearray] = []
        self._copy_out = copy_out

    def _take(self) -> bytearray:
        if self._free:
            return self._free.pop()
        return bytearray(POOL_RESERVE)

    def give_back(self, buf: bytearray) -> None:
        if len(buf) <= POOL_DROP and len(self._free) < 64:
            self._free.append(buf)

    def frame(self, frames: Sequence[Frame]) -> tuple[bytes | memoryview, bytearray]:
        """Fill a pooled buffer in place (slice assignments of equal length: no reallocation while it is big
        enough; it doubles when not), and hand over its used part."""
        buf = self._take()
        size = 0
        for _name, data in frames:
            end = size + 8 + len(data)
            if end > len(buf):
                buf.extend(bytes(max(end - len(buf), len(buf))))
            buf[size : size + 6] = b"data: "
            buf[size + 6 : end - 2] = data
            buf[end - 2 : end] = b"\n\n"
            size = end
        view = memoryview(buf)[:size]
        if self._copy_out:
            out: bytes | memoryview = bytes(view)
            view.release()
            return out, buf
        return view, buf


def batches(events: int, batch: int) -> list[list[Frame]]:
    """Real OpenAI Chat chunk payloads for an ``events``-token answer, grouped as the writer would get them."""
    from muxtrio.codecs.registry import get_codec

    encoder = get_codec(Format.OPENAI_CHAT).new_encoder(bench_codecs.info(Format.OPENAI_CHAT))
    frames: list[Frame] = []
    for event in bench_codecs.ir_events(events):
        frames.extend(encoder.frames(event))
    return [frames[i : i + batch] for i in range(0, len(frames), batch)]


def variants() -> dict[str, Callable[[list[list[Frame]]], int]]:
    def join(work: list[list[Frame]]) -> int:
        frame = SSEFramer().frame
        total = 0
        for frames in work:
            total += len(frame(frames))
        return total

    def pooled(copy_out: bool) -> Callable[[list[list[Frame]]], int]:
        def run(work: list[list[Frame]]) -> int:
            framer = PooledFramer(copy_out)
            total = 0
            for frames in work:
                out, buf = framer.frame(frames)
                total += len(out)
                if isinstance(out, memoryview):
                    out.release()  # the transport is done with it
                framer.give_back(buf)
            return total

        return run

    return {"join": join, "pool": pooled(True), "pool-view": pooled(False)}


def cpu_per_event(fn: Callable[[list[list[Frame]]], int], work: list[list[Frame]]) -> float:
    gc.collect()
    t0 = time.process_time()
    fn(work)
    return (time.process_time() - t0) / sum(len(b) for b in work)


def peak_bytes(fn: Callable[[list[list[Frame]]], int], work: list[list[Frame]]) -> int:
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    fn(work)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def run(events: int, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"events": events, "rounds": rounds, "batches": {}}
    for batch in (1, 8, 64):
        work = batches(events, batch)
        found: dict[str, dict[str, float]] = {}
        fns = variants()
        best: dict[str, float] = {name: float("inf") for name in fns}
        for _ in range(rounds):  # alternate A B C A B C
            for name, fn in fns.items():
                best[name] = min(best[name], cpu_per_event(fn, work))
        for name, fn in fns.items():
            found[name] = {"ns_per_event": best[name] * 1e9, "peak_bytes": peak_bytes(fn, work)}
        base = found["join"]["ns_per_event"]
        for name in found:
            found[name]["cpu_vs_join"] = found[name]["ns_per_event"] / base
        out["batches"][batch] = found
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"SSE framing of a {result['events']:,}-event OpenAI Chat answer, one core, best of {result['rounds']} "
             "alternating rounds.", "", "| batch (frames per write) | variant | ns per event | CPU vs join | "
             "tracemalloc peak (KB) |", "|---:|---|---:|---:|---:|"]
    for batch, found in result["batches"].items():
        for name, row in found.items():
            lines.append(f"| {batch} | {name} | {row['ns_per_event']:.0f} | {row['cpu_vs_join']:.2f}x | "
                         f"{row['peak_bytes'] / 1024:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pooled bytearray SSE framing vs bytes.join")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = run(args.events, args.rounds)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

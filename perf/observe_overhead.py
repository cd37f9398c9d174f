"""What metrics and usage records cost: the same load against muxtrio with observability on and off, same session,
alternating (on, off, on, off...), issue 14's target being at most 5 % fewer req/s and events/s.

Two muxtrio servers run side by side on cpu0 (the one not being measured is paused), the fake provider and wrk on
cpu1, as in every other scenario of this suite. "on" is the default configuration: Prometheus metrics kept, one
usage record per request into a SQLite file in the run's directory (batch writer, worker thread), the access line;
"off" sets ``metrics.enabled: false`` and ``usage.dsn: ""``. Each round measures non-stream req/s (c=16, c=64) and
1,000-event streams (OpenAI → OpenAI and Anthropic → OpenAI, c=8) on both. The report gives every sample, the median
and the best of each side, and the overhead from both, because the box is shared: a single pair proves nothing, the
spread across rounds says how far to trust the medians.

    python -m perf observe [--quick] [--rounds N]
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import statistics
from pathlib import Path
from typing import Any

from perf import targets
from perf.procs import Procs
from perf.scenarios import ANTHROPIC, OPENAI, Suite, _chat, _wrk_on

ON, OFF = "observability-on", "observability-off"
LOADS = (
    # label, path, body, connections, events per response (1: a request is the unit)
    ("non-stream req/s, c=16", OPENAI, _chat("fake"), 16, 1),
    ("non-stream req/s, c=64", OPENAI, _chat("fake"), 64, 1),
    ("stream OpenAI → OpenAI events/s, c=8", OPENAI, _chat("fake-n1000", stream=True, max_tokens=1000), 8, 1000),
    ("stream OpenAI → Anthropic events/s, c=8", ANTHROPIC, _chat("fake-n1000", stream=True, max_tokens=1000), 8, 1000),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(quick: bool, rounds: int) -> dict[str, Any]:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = targets.ROOT / "perf" / "results" / "raw" / f"observe-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(workdir)
    seconds = 3.0 if quick else 8.0
    results: dict[str, Any] = {"quick": quick, "rounds": rounds, "seconds": seconds, "loads": {}}
    try:
        # Ports from the OS: other runs of this suite on the same box hold the fixed ones.
        fake_port, on_port, off_port = (free_port() for _ in range(3))
        fake = targets.start_fake(procs, fake_port, "1", "fake-provider")
        on = targets.start_muxtrio(procs, workdir, on_port, name=ON, fake_port=fake_port)
        off = targets.start_muxtrio(procs, workdir, off_port, observability=False, name=OFF, fake_port=fake_port)
        suite = Suite(quick, procs, workdir, fake, fake, on, off)
        for label, path, body, conns, events in LOADS:
            samples: dict[str, list[float]] = {ON: [], OFF: []}
            per_core: dict[str, list[float]] = {ON: [], OFF: []}
            raw = []
            for index in range(rounds):
                order = (on, off) if index % 2 == 0 else (off, on)  # ABBA: neither side always goes first
                for target in order:
                    result = _wrk_on(suite, target, path, body, conns, seconds)
                    samples[target.name].append(result["rps"] * events)
                    cpu = result.get("cpu_pct") or 0
                    if cpu > 1:  # the rate per core of the server's own CPU time: the steadier number on a busy box
                        per_core[target.name].append(result["rps"] * events / (cpu / 100))
                    raw.append((target.name, result))
            summary = _summary(samples)
            if per_core[ON] and per_core[OFF]:
                summary.update({f"per_core_{k}": v for k, v in _summary(per_core).items()})
            results["loads"][label] = {"samples": samples, "per_core": per_core, "summary": summary, "raw": raw}
            print(f"  {label}: " + _line(summary), flush=True)
            if "per_core_on_median" in summary:
                print("    per core: " + _line({k[9:]: v for k, v in summary.items() if k.startswith("per_core_")}),
                      flush=True)
    finally:
        procs.stop_all()
    return results


def _summary(samples: dict[str, list[float]]) -> dict[str, float]:
    on, off = samples[ON], samples[OFF]
    return {
        "on_median": statistics.median(on), "off_median": statistics.median(off),
        "on_best": max(on), "off_best": max(off),
        "on_spread_pct": 100 * (max(on) - min(on)) / max(on), "off_spread_pct": 100 * (max(off) - min(off)) / max(off),
        "overhead_median_pct": 100 * (1 - statistics.median(on) / statistics.median(off)),
        "overhead_best_pct": 100 * (1 - max(on) / max(off)),
    }  # fmt: skip


def _line(s: dict[str, float]) -> str:
    return (f"on {s['on_median']:,.0f} (best {s['on_best']:,.0f}, spread {s['on_spread_pct']:.1f} %), "
            f"off {s['off_median']:,.0f} (best {s['off_best']:,.0f}, spread {s['off_spread_pct']:.1f} %), "
            f"overhead {s['overhead_median_pct']:+.1f} % median, {s['overhead_best_pct']:+.1f} % best")


def markdown(results: dict[str, Any]) -> str:
    lines = ["| load | on, median | off, median | overhead (median) | overhead (best) | spread on / off |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, load in results["loads"].items():
        for prefix, what in (("", ""), ("per_core_", " per core of server CPU")):
            s = {k[len(prefix):]: v for k, v in load["summary"].items() if k.startswith(prefix)}
            if "on_median" not in s:
                continue
            lines.append(f"| {label}{what} | {s['on_median']:,.0f} | {s['off_median']:,.0f} | "
                         f"{s['overhead_median_pct']:+.1f} % | {s['overhead_best_pct']:+.1f} % | "
                         f"{s['on_spread_pct']:.1f} % / {s['off_spread_pct']:.1f} % |")
    micro = results.get("micro")
    if micro:
        lines.append("")
        lines.append(f"In-process CPU per request: {micro['per_request_us']:.1f} µs on the request path "
                     f"(Observability.begin + end, usage record queued) + {micro['writes_per_request_us']:.1f} µs "
                     f"in the usage writer (batched SQLite inserts), {micro['requests']:,} requests.")
    return "\n".join(lines) + "\n"


def micro(requests: int = 20_000) -> dict[str, float]:
    """The CPU cost of observability per request, in process and pinned to one core: ``Observability.begin`` and
    ``end`` for a served streaming request (metrics, token counters, one usage record into the writer's queue,
    drained by the real writer into a SQLite file in a temporary directory). Deterministic where the A/B rates are
    not: it does not depend on what else the box runs, only on how fast the core is."""
    import os
    import tempfile
    import time as clock

    import trio

    from muxtrio.config import Config, UsageConfig
    from muxtrio.engine.stream import StreamMeta
    from muxtrio.ir.response import Usage
    from muxtrio.redact import Scrubber
    from muxtrio.server.handlers import RequestLog
    from muxtrio.server.observe import Observability

    os.sched_setaffinity(0, {0})
    directory = tempfile.mkdtemp(prefix="muxtrio-observe-micro-")
    config = Config(usage=UsageConfig(dsn=f"sqlite://{directory}/usage.db", queue_limit=requests + 1))
    observe = Observability(config, {"fake"}, Scrubber(()))
    result: dict[str, float] = {"requests": requests}

    async def main() -> None:
        begun = clock.process_time()
        async with observe.running():
            entries = []
            for i in range(requests):
                entry = RequestLog("POST", "/v1/chat/completions", "openai-chat", f"req{i:08d}")
                entry.kind, entry.model, entry.status, entry.stream, entry.ttfb = "generate", "fake", 200, True, 0.01
                entry.meta = StreamMeta(provider="fake-openai", model="fake", route="fake", credential="fake#0",
                                        attempts=1)
                entry.usage = Usage(input_tokens=11, output_tokens=1000)
                entries.append(entry)
            start = clock.process_time()
            for entry in entries:
                observe.begin()
                observe.end(entry, None, ())
            result["per_request_us"] = (clock.process_time() - start) / requests * 1e6
            start = clock.process_time()
        # Leaving drains the queue: every record written to SQLite (all threads' CPU counts in process_time).
        result["writes_per_request_us"] = (clock.process_time() - start) / requests * 1e6
        result["setup_s"] = start - begun

    trio.run(main)
    return result


def main(quick: bool, rounds: int) -> int:
    results = run(quick, rounds)
    results["micro"] = micro()
    print(f"  in-process: {results['micro']}", flush=True)
    name = f"{dt.date.today().isoformat()}-observe{'-quick' if quick else ''}.json"
    out = Path(targets.ROOT / "perf" / "results" / name)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results)
    out.with_suffix(".md").write_text(table)
    print()
    print(table)
    return 0

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
import statistics
from pathlib import Path
from typing import Any

from perf import targets
from perf.procs import Procs
from perf.scenarios import ANTHROPIC, OPENAI, Suite, _chat, _wrk_on

ON, OFF = "observability-on", "observability-off"
OFF_PORT = targets.MUX_PORT + 1
LOADS = (
    # label, path, body, connections, events per response (1: a request is the unit)
    ("non-stream req/s, c=16", OPENAI, _chat("fake"), 16, 1),
    ("non-stream req/s, c=64", OPENAI, _chat("fake"), 64, 1),
    ("stream OpenAI → OpenAI events/s, c=8", OPENAI, _chat("fake-n1000", stream=True, max_tokens=1000), 8, 1000),
    ("stream OpenAI → Anthropic events/s, c=8", ANTHROPIC, _chat("fake-n1000", stream=True, max_tokens=1000), 8, 1000),
)


def run(quick: bool, rounds: int) -> dict[str, Any]:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = targets.ROOT / "perf" / "results" / "raw" / f"observe-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(workdir)
    seconds = 3.0 if quick else 8.0
    results: dict[str, Any] = {"quick": quick, "rounds": rounds, "seconds": seconds, "loads": {}}
    try:
        fake = targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
        on = targets.start_muxtrio(procs, workdir, targets.MUX_PORT, name=ON)
        off = targets.start_muxtrio(procs, workdir, OFF_PORT, observability=False, name=OFF)
        suite = Suite(quick, procs, workdir, fake, fake, on, off)
        for label, path, body, conns, events in LOADS:
            samples: dict[str, list[float]] = {ON: [], OFF: []}
            raw = []
            for index in range(rounds):
                order = (on, off) if index % 2 == 0 else (off, on)  # ABBA: neither side always goes first
                for target in order:
                    result = _wrk_on(suite, target, path, body, conns, seconds)
                    samples[target.name].append(result["rps"] * events)
                    raw.append((target.name, result))
            summary = _summary(samples)
            results["loads"][label] = {"samples": samples, "summary": summary, "raw": raw}
            print(f"  {label}: " + _line(summary), flush=True)
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
        s = load["summary"]
        lines.append(f"| {label} | {s['on_median']:,.0f} | {s['off_median']:,.0f} | {s['overhead_median_pct']:+.1f} % "
                     f"| {s['overhead_best_pct']:+.1f} % | {s['on_spread_pct']:.1f} % / {s['off_spread_pct']:.1f} % |")
    return "\n".join(lines) + "\n"


def main(quick: bool, rounds: int) -> int:
    results = run(quick, rounds)
    name = f"{dt.date.today().isoformat()}-observe{'-quick' if quick else ''}.json"
    out = Path(targets.ROOT / "perf" / "results" / name)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results)
    out.with_suffix(".md").write_text(table)
    print()
    print(table)
    return 0

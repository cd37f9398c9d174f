"""The benchmark scenarios. Each one measures muxtrio and LiteLLM alternately (A B A B) against the same fake provider,
with the fake itself ("direct") as the floor, and returns table rows plus its raw numbers.

Conventions:
- The server under test runs on cpu0, alone: the other servers are paused (SIGSTOP) during its turn. Load (wrk or
  the Python driver) and the fake provider share cpu1.
- "events" are the provider's content events (the N text deltas of an N-event stream), whatever the client format
  turns them into, so a rate compares the same work on every target.
- Every run is bounded in time; the suite never waits on a target for more than a few minutes.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio

from perf import driver, wrk
from perf.procs import Procs, measured, rss_kb, wait_quiet
from perf.targets import (
    FAKE_PORT,
    LITELLM2_PORT,
    MUX2_PORT,
    ROOT,
    Target,
    start_litellm,
    start_muxtrio,
)

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"


@dataclass
class Row:
    """One line of the results table. ``higher`` says which direction is better (for the ratio's reading)."""

    scenario: str
    metric: str
    unit: str
    muxtrio: float | None = None
    litellm: float | None = None
    direct: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def ratio_litellm(self) -> float | None:
        if self.muxtrio is None or not self.litellm:
            return None
        return self.muxtrio / self.litellm

    def ratio_direct(self) -> float | None:
        if self.muxtrio is None or not self.direct:
            return None
        return self.muxtrio / self.direct


@dataclass
class Suite:
    quick: bool
    procs: Procs
    workdir: Path
    fake: Target
    direct: Target
    muxtrio: Target
    litellm: Target | None
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return 2  # A B A B, also in --quick (shorter runs, same alternation)

    def quiet(self) -> float:
        """Wait a little for the shared box to calm down before a measurement (see :func:`wait_quiet`)."""
        return wait_quiet(self.seconds(20, 5))

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def gateways(self) -> list[Target]:
        return [self.muxtrio] + ([self.litellm] if self.litellm is not None else [])

    def alternate(self) -> list[Target]:
        """muxtrio, LiteLLM, muxtrio, LiteLLM..."""
        return [t for _ in range(self.rounds) for t in self.gateways()]

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print("  " + format_row(row), flush=True)


def _by_target(samples: list[tuple[str, dict[str, Any]]], key: str,
               pick: Callable[[list[float]], float] = max) -> dict[str, float | None]:
    """One number per target from its rounds: the best one (``max`` for rates, ``min`` for latencies), because on a
    shared box interference only ever makes a sample worse. Every sample stays in the raw results."""
    out: dict[str, list[float]] = {}
    for name, result in samples:
        value = result.get(key)
        if isinstance(value, int | float):
            out.setdefault(name, []).append(float(value))
    return {name: pick(values) if values else None for name, values in out.items()}


def _per_core(samples: list[tuple[str, dict[str, Any]]], rate: float = 1.0) -> dict[str, float | None]:
    """Throughput per core of the server's own CPU time (rps x rate / cpu share), best round per target."""
    for _, result in samples:
        cpu = result.get("cpu_pct") or 0
        result["per_core"] = result.get("rps", 0) * rate / (cpu / 100) if cpu > 1 else None
    return _by_target(samples, "per_core")


def format_row(row: Row) -> str:
    def num(v: float | None) -> str:
        if v is None or v != v:
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    met = "" if row.met is None else ("met" if row.met else "**missed**")
    note = row.note.replace("|", "/")
    return (f"| {row.scenario} | {row.metric} ({row.unit}) | {num(row.muxtrio)} | {num(row.litellm)} | "
            f"{num(row.direct)} | {ratio(row.ratio_litellm())} | {ratio(row.ratio_direct())} | "
            f"{row.target} {met}".rstrip() + f" | {note} |".replace("|  |", "| |"))


TABLE_HEAD = ("| scenario | metric | muxtrio | LiteLLM | direct | muxtrio/LiteLLM | muxtrio/direct | target | note |\n"
              "|---|---|---:|---:|---:|---:|---:|---|---|")


def _wrk_on(suite: Suite, target: Target, path: str, body: dict[str, Any], conns: int, seconds: float,
            warmup: float = 1.0) -> dict[str, Any]:
    url = target.base + path
    with suite.procs.only(target.proc):
        wrk.run(url, body, conns=conns, seconds=warmup)
        quiet = suite.quiet()
        result, usage = measured(target.pid, lambda: wrk.run(url, body, conns=conns, seconds=seconds))
    result.update(cpu_pct=usage.cpu_pct, rss_mb=usage.rss_max_mb, foreign_before=quiet,
                  foreign_cpu_pct=usage.foreign_cpu_pct)
    return result


def _chat(model: str, stream: bool = False, max_tokens: int | None = None, content: str = "hi") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def _fake_stats(port: int = FAKE_PORT) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=5) as r:
        stats: dict[str, int] = json.loads(r.read())
    return stats


# ---------------------------------------------------------------------------------------------- scenarios
def fake_ceiling(suite: Suite) -> None:
    """The fake provider's own ceiling (on cpu0, load on cpu1): it must be far above what the gateways reach."""
    secs = suite.seconds(8, 3)
    d = suite.direct
    r = _wrk_on(suite, d, OPENAI, _chat("fake"), 64, secs)
    suite.raw["fake_ceiling"] = {"nonstream_c64": r}
    suite.add(Row("fake ceiling", "non-stream req/s, c=64", "req/s", direct=r["rps"]))
    for label, path, model in (("OpenAI", OPENAI, "fake-n1000"), ("Anthropic", ANTHROPIC, "fake-n1000"),
                               ("Gemini", OPENAI, "gemini-fake-n1000"), ("Ollama", "/api/chat", "llama-fake-n1000")):
        if label == "Gemini":
            path = "/v1beta/models/gemini-fake-n1000:streamGenerateContent?alt=sse"
        body = _chat(model, stream=True, max_tokens=1000)
        r = _wrk_on(suite, d, path, body, 8, secs)
        suite.raw["fake_ceiling"][label] = r
        suite.add(Row("fake ceiling", f"{label} stream, 1000 events, c=8", "events/s", direct=r["rps"] * 1000))


def nonstream(suite: Suite) -> None:
    """Non-streaming chat completions (OpenAI → OpenAI) at c=1, 16, 64; added latency at c=1."""
    secs = suite.seconds(10, 3)
    body = _chat("fake")
    raw: dict[str, Any] = {}
    for conns in (1, 16, 64):
        samples = [(t.name, _wrk_on(suite, t, OPENAI, body, conns, secs)) for t in suite.alternate()]
        direct = _wrk_on(suite, suite.direct, OPENAI, body, conns, secs)
        samples.append(("direct", direct))
        raw[f"c{conns}"] = samples
        rps = _by_target(samples, "rps")
        p50, p99 = _by_target(samples, "p50_ms", min), _by_target(samples, "p99_ms", min)
        core = _per_core(samples)
        per_core = core["muxtrio"] or 0
        target, met = "", None
        if conns == 64:
            ratio = (rps["muxtrio"] or 0) / (rps.get("litellm") or float("nan"))
            target, met = "≥ 6x LiteLLM", ratio >= 6 if rps.get("litellm") else None
        suite.add(Row("non-stream", f"req/s, c={conns}", "req/s", rps["muxtrio"], rps.get("litellm"), rps["direct"],
                      target, met))
        if conns == 64:
            suite.add(Row("non-stream", "req/s per core of gateway CPU, c=64", "req/s", per_core,
                          core.get("litellm"), core.get("direct"), "≥ 1,000", per_core >= 1000))
        suite.add(Row("non-stream", f"p50 latency, c={conns}", "ms", p50["muxtrio"], p50.get("litellm"), p50["direct"]))
        suite.add(Row("non-stream", f"p99 latency, c={conns}", "ms", p99["muxtrio"], p99.get("litellm"), p99["direct"]))
        if conns == 1:
            # p99 overhead is taken against the direct p50, not the direct p99: the fake's own rare outliers
            # (a few ms on this VM) would otherwise be subtracted from the gateway's tail and hide it.
            add50 = {k: (v or 0) - (p50["direct"] or 0) for k, v in p50.items() if k != "direct"}
            add99 = {k: (v or 0) - (p50["direct"] or 0) for k, v in p99.items() if k != "direct"}
            suite.add(Row("added latency", "p50 vs direct, c=1", "ms", add50["muxtrio"], add50.get("litellm"), None,
                          "≤ 1.0 ms", add50["muxtrio"] <= 1.0))
            suite.add(Row("added latency", "p99 - direct p50, c=1", "ms", add99["muxtrio"], add99.get("litellm"), None,
                          "≤ 2 ms", add99["muxtrio"] <= 2.0))
    suite.raw["nonstream"] = raw


STREAM_PAIRS = (
    # label, client path, model, direct path (the provider's own stream for the same model)
    ("OpenAI → OpenAI (same format)", OPENAI, "fake-n1000", OPENAI),
    ("Anthropic → OpenAI", OPENAI, "claude-fake-n1000", ANTHROPIC),
    ("OpenAI → Anthropic", ANTHROPIC, "fake-n1000", OPENAI),
    ("Gemini → OpenAI", OPENAI, "gemini-fake-n1000", "/v1beta/models/gemini-fake-n1000:streamGenerateContent?alt=sse"),
    ("Ollama → OpenAI", OPENAI, "llama-fake-n1000", "/api/chat"),
)


def stream(suite: Suite) -> None:
    """Events/s on 1,000-event streams (wrk c=8), same-format and cross-format; counted once with the driver."""
    secs = suite.seconds(10, 3)
    raw: dict[str, Any] = {}
    for label, path, model, direct_path in STREAM_PAIRS:
        body = _chat(model, stream=True, max_tokens=1000)
        checks = {t.name: _check_events(suite, t, path, body) for t in suite.gateways()}
        # wrk counts whole responses only: run long enough for ~10 streams per connection (8 at a time on one
        # core take ~8x one stream's time), so a slow target is not undercounted by the streams cut at the end.
        cap = suite.seconds(40, 20)
        dur = {n: min(cap, max(secs, 80 * c["seconds"])) for n, c in checks.items()}
        samples = [(t.name, _wrk_on(suite, t, path, body, 8, dur[t.name])) for t in suite.alternate()]
        samples.append(("direct", _wrk_on(suite, suite.direct, direct_path, body, 8, secs)))
        raw[label] = {"samples": samples, "check": checks}
        rps = _by_target(samples, "rps")
        core = _per_core(samples, 1000)
        ev = {k: (v or 0) * 1000 for k, v in rps.items()}
        cross = "same" not in label
        target, met = "", None
        if cross and ev.get("litellm"):
            target, met = "≥ 8x LiteLLM", ev["muxtrio"] / ev["litellm"] >= 8
        bad = [f"{n}: {c['events']} events, status {c['status']}" for n, c in checks.items() if not c["ok"]]
        suite.add(Row("stream 1000 ev", f"{label}, c=8", "events/s", ev["muxtrio"], ev.get("litellm"), ev["direct"],
                      target, met, note="; ".join(bad)))
        per_core = core["muxtrio"] or 0
        suite.add(Row("stream 1000 ev", f"{label}, per core of gateway CPU", "events/s", per_core,
                      core.get("litellm"), core.get("direct"), "≥ 20k", per_core >= 20000))
    suite.raw["stream"] = raw


def _check_events(suite: Suite, target: Target, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One stream through ``target`` with the driver: did it carry all 1,000 events and end properly?"""
    with suite.procs.only(target.proc):
        reply = trio.run(driver.one_call, target.port, path, orjson.dumps(body))
    ok = reply.status == 200 and reply.complete and reply.events >= 1000
    return {"status": reply.status, "events": reply.events, "bytes": reply.body_bytes, "ok": ok,
            "seconds": round(reply.total, 3)}


def ttft(suite: Suite) -> None:
    """Time to first token: sequential 5-event streams on one connection; overhead = gateway - direct."""
    n = 30 if suite.quick else 100
    raw: dict[str, Any] = {}
    for label, path, model, direct_path in STREAM_PAIRS[:2]:
        body = orjson.dumps(_chat(model.replace("n1000", "n5"), stream=True, max_tokens=5))
        samples: list[tuple[str, dict[str, Any]]] = []
        for t in [*suite.alternate(), suite.direct]:
            p = direct_path.replace("n1000", "n5") if t is suite.direct else path
            with suite.procs.only(t.proc):
                suite.quiet()
                samples.append((t.name, trio.run(driver.sequential, t.port, p, body, n)))
        raw[label] = samples
        p50, p99 = _by_target(samples, "ttft_p50_ms", min), _by_target(samples, "ttft_p99_ms", min)
        over = {k: (v or 0) - (p50["direct"] or 0) for k, v in p50.items() if k != "direct"}
        suite.add(Row("TTFT", f"{label} p50", "ms", p50["muxtrio"], p50.get("litellm"), p50["direct"]))
        suite.add(Row("TTFT", f"{label} p99", "ms", p99["muxtrio"], p99.get("litellm"), p99["direct"]))
        suite.add(Row("TTFT", f"{label} overhead p50", "ms", over["muxtrio"], over.get("litellm"), None,
                      "≤ 1 ms", over["muxtrio"] <= 1.0))
    suite.raw["ttft"] = raw


def streams_1000(suite: Suite) -> None:
    """RSS per open stream with 1,000 concurrent slow streams (1 event/s each; 200 in --quick); idle RSS."""
    n = 200 if suite.quick else 1000
    hold = suite.seconds(10, 5)
    body = orjson.dumps(_chat("fake-d1000-n60", stream=True, max_tokens=60))
    raw: dict[str, Any] = {}
    per: dict[str, float | None] = {}
    idle: dict[str, float] = {}
    for t in suite.gateways():  # once each: a second round would only repeat the same ramp
        with suite.procs.only(t.proc):
            suite.quiet()
            rss0 = rss_kb(t.pid)
            held = trio.run(lambda t=t: driver.hold_streams(
                t.port, OPENAI, body, n, ramp_deadline=120, hold_s=hold, sample=lambda: rss_kb(t.pid)))
            time.sleep(2.0)  # let the disconnects reach the provider
        peak = max(held.samples) if held.samples else rss0
        per[t.name] = (peak - rss0) / max(held.started, 1) if held.started else None
        idle[t.name] = rss0 / 1024
        raw[t.name] = {"n": n, "opened": held.opened, "started": held.started, "failed": held.failed,
                       "ramp_s": held.ramp_s, "rss_idle_kb": rss0, "rss_peak_kb": peak,
                       "rss_samples_kb": held.samples}
    stats = _fake_stats()
    raw["fake_after"] = stats
    notes = "; ".join(f"{k}: {v['started']}/{n} streams started in {v['ramp_s']} s" for k, v in raw.items()
                      if isinstance(v, dict) and "started" in v and v["started"] < n)
    suite.add(Row(f"{n} slow streams", "RSS per open stream", "KB", per["muxtrio"], per.get("litellm"), None,
                  "≤ 16 KB", per["muxtrio"] is not None and per["muxtrio"] <= 16, note=notes))
    suite.add(Row(f"{n} slow streams", "idle RSS before", "MB", idle["muxtrio"], idle.get("litellm"),
                  rss_kb(suite.direct.pid) / 1024, "≤ 60 MB", idle["muxtrio"] <= 60))
    suite.raw["streams_1000"] = raw


def stalled(suite: Suite) -> None:
    """A client that stops reading while the provider streams 100 MB: RSS growth, bytes the provider got out,
    and whether hanging up cancels the upstream."""
    secs = suite.seconds(10, 5)
    body = orjson.dumps(_chat("fake-s16384-n6400", stream=True, max_tokens=6400))
    raw: dict[str, Any] = {}
    growth: dict[str, float] = {}
    pushed: dict[str, float] = {}
    for t in suite.gateways():
        with suite.procs.only(t.proc):
            suite.quiet()
            before = _fake_stats()
            rss0 = rss_kb(t.pid)
            samples = trio.run(lambda t=t: driver.stalled(t.port, OPENAI, body, seconds=secs,
                                                          sample=lambda: rss_kb(t.pid)))
            mid = _fake_stats()
            time.sleep(2.0)
            after = _fake_stats()
        growth[t.name] = (max(samples or [rss0]) - rss0) / 1024
        pushed[t.name] = (mid["stream_bytes"] - before["stream_bytes"]) / 1e6
        raw[t.name] = {"rss_start_kb": rss0, "rss_samples_kb": samples, "provider_mb_sent": pushed[t.name],
                       "upstream_cancelled": after["aborted"] > before["aborted"],
                       "upstream_finished": after["finished"] > before["finished"]}
    suite.add(Row("stalled client, 100 MB stream", "RSS growth", "MB", growth["muxtrio"], growth.get("litellm"), None,
                  "≤ 5 MB", growth["muxtrio"] <= 5))
    cancelled = "; ".join(f"{k}: upstream {'cancelled' if v['upstream_cancelled'] else 'NOT cancelled'}"
                          for k, v in raw.items())
    suite.add(Row("stalled client, 100 MB stream", "provider bytes sent before backpressure", "MB",
                  pushed["muxtrio"], pushed.get("litellm"), None, note=cancelled))
    suite.raw["stalled"] = raw


def big_body(suite: Suite) -> None:
    """A 1 MB request body (≈250K tokens), non-streaming, sequential: latency and peak RSS."""
    n = 10 if suite.quick else 30
    body = orjson.dumps(_chat("fake", content="lorem " * 174763))  # ≈ 1 MiB of JSON
    raw: dict[str, Any] = {"body_bytes": len(body)}
    lat: dict[str, list[float]] = {}
    grow: dict[str, list[float]] = {}
    for t in [*suite.alternate(), suite.direct]:
        with suite.procs.only(t.proc):
            suite.quiet()
            result, usage = measured(t.pid, lambda t=t: trio.run(
                lambda: driver.sequential(t.port, OPENAI, body, n, warmup=2, marker=b"Hello")))
        lat.setdefault(t.name, []).append(result["total_p50_ms"] or float("nan"))
        grow.setdefault(t.name, []).append(usage.rss_max_mb - usage.rss_start_mb)
        raw.setdefault(t.name, []).append({**result, "rss_start_mb": usage.rss_start_mb,
                                           "rss_max_mb": usage.rss_max_mb})
    p50 = {k: min(v) for k, v in lat.items()}
    g = {k: max(v) for k, v in grow.items()}
    suite.add(Row("1 MB request body", "latency p50", "ms", p50["muxtrio"], p50.get("litellm"), p50["direct"]))
    suite.add(Row("1 MB request body", "peak RSS growth", "MB", g["muxtrio"], g.get("litellm"), g["direct"]))
    suite.raw["big_body"] = raw


def big_event(suite: Suite) -> None:
    """One 20 MB SSE event (OpenAI → OpenAI): does it pass intact, how much RSS the first one costs (a cold heap
    grows), and how long it takes once warm (best of 3 after that first one)."""
    body = orjson.dumps(_chat("fake-n1-s20000000", stream=True, max_tokens=1))
    raw: dict[str, Any] = {}
    first: dict[str, float] = {}
    warm: dict[str, float] = {}
    grow: dict[str, float] = {}
    notes = []

    def call(t: Target) -> driver.Reply:
        return trio.run(lambda: driver.one_call(t.port, OPENAI, body, deadline=120))

    for t in [*suite.gateways(), suite.direct]:
        with suite.procs.only(t.proc):
            suite.quiet()
            reply, usage = measured(t.pid, lambda t=t: call(t), interval=0.05)
            replies = [call(t) for _ in range(3)]
        ok = all(r.status == 200 and r.complete and r.body_bytes >= 20_000_000 for r in [reply, *replies])
        first[t.name] = reply.total * 1000
        warm[t.name] = min(r.total for r in replies) * 1000
        grow[t.name] = usage.rss_max_mb - usage.rss_start_mb
        raw[t.name] = {"status": reply.status, "complete": reply.complete, "bytes": reply.body_bytes,
                       "events": reply.events, "first_ms": round(first[t.name], 1),
                       "warm_ms": [round(r.total * 1000, 1) for r in replies], "rss_start_mb": usage.rss_start_mb,
                       "rss_max_mb": usage.rss_max_mb, "ok": ok}
        if not ok:
            notes.append(f"{t.name}: status {reply.status}, {reply.body_bytes} bytes, complete={reply.complete}")
    suite.add(Row("one 20 MB SSE event", "time to receive, first (cold)", "ms", first["muxtrio"],
                  first.get("litellm"), first["direct"], note="; ".join(notes)))
    suite.add(Row("one 20 MB SSE event", "time to receive, warm (best of 3)", "ms", warm["muxtrio"],
                  warm.get("litellm"), warm["direct"]))
    suite.add(Row("one 20 MB SSE event", "peak RSS growth, first", "MB", grow["muxtrio"], grow.get("litellm"),
                  grow["direct"]))
    suite.raw["big_event"] = raw


def websocket(suite: Suite) -> None:
    """Events/s over muxtrio's multiplexed /v1/ws against the same streams over SSE (issue 7)."""
    needed = [ROOT / "muxtrio" / "server" / "websocket.py", ROOT / "muxtrio" / "client.py"]
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.exists()]
    if missing:
        reason = f"skipped: {', '.join(missing)} not there yet (issue 7 in progress)"
        print(f"  websocket: {reason}", flush=True)
        suite.raw["websocket"] = {"skipped": reason}
        suite.add(Row("WebSocket vs SSE", "events/s", "events/s", note=reason))
        return
    from perf import ws_bench

    result = ws_bench.run(suite.muxtrio, quick=suite.quick, procs=suite.procs, workdir=suite.workdir)
    suite.raw["websocket"] = result
    ws, sse, hold = result["ws"], result["sse"], result["ws_hold"]
    suite.add(Row("WebSocket vs SSE", "/v1/ws events/s, 8 streams on one socket", "events/s", ws["events_per_s"]))
    suite.add(Row("WebSocket vs SSE", "SSE events/s, same streams, 8 connections", "events/s", sse["events_per_s"]))
    suite.add(Row("WebSocket vs SSE", "ws / SSE, per core of gateway CPU", "x",
                  (ws["per_core"] or 0) / (sse["per_core"] or float("nan"))))
    suite.add(Row("WebSocket vs SSE", f"RSS per slow stream, {hold['n']} on one socket", "KB",
                  hold["rss_per_stream_kb"], note=f"{hold['started']}/{hold['n']} started"))


def workers(suite: Suite) -> None:
    """1 vs 2 workers, non-stream c=64. The 2-worker servers may use both cores, which they share with wrk and the
    fake provider on this 2-core box, so the ratio understates what 2 dedicated cores would give."""
    secs = suite.seconds(10, 3)
    body = _chat("fake")
    raw: dict[str, Any] = {}
    two: list[Target] = []
    try:
        two.append(start_muxtrio(suite.procs, suite.workdir, MUX2_PORT, workers=2, cpus="0,1"))
        if suite.litellm is not None:
            two.append(start_litellm(suite.procs, suite.workdir, LITELLM2_PORT, workers=2, cpus="0,1"))
        rps: dict[str, dict[int, list[float]]] = {}
        for _ in range(suite.rounds):
            for t in [*suite.gateways(), *two]:
                r = _wrk_on(suite, t, OPENAI, body, 64, secs)
                rps.setdefault(t.name, {}).setdefault(t.workers, []).append(r["rps"])
                raw.setdefault(f"{t.name}-{t.workers}w", []).append(r)
    finally:
        for t in two:
            if t.proc is not None:
                suite.procs.stop(t.proc)
    ratio = {k: max(v.get(2, [0])) / max(v.get(1, [float("nan")])) for k, v in rps.items()}
    suite.add(Row("workers", "req/s, 1 worker (cpu0), c=64", "req/s", max(rps["muxtrio"][1]),
                  max(rps["litellm"][1]) if "litellm" in rps else None, None))
    suite.add(Row("workers", "req/s, 2 workers (cpu0+1), c=64", "req/s", max(rps["muxtrio"][2]),
                  max(rps["litellm"][2]) if "litellm" in rps else None, None))
    suite.add(Row("workers", "2 workers / 1 worker req/s", "x", ratio["muxtrio"], ratio.get("litellm"), None,
                  "≥ 1.8x", ratio["muxtrio"] >= 1.8, note="2 cores shared with wrk and the fake"))
    suite.raw["workers"] = raw


SCENARIOS: dict[str, Callable[[Suite], None]] = {
    "fake_ceiling": fake_ceiling,
    "nonstream": nonstream,
    "stream": stream,
    "ttft": ttft,
    "streams_1000": streams_1000,
    "stalled": stalled,
    "big_body": big_body,
    "big_event": big_event,
    "websocket": websocket,
    "workers": workers,
}

"""Client keys: what limits cost. ``python -m perf.bench_keys [--seconds 10] [--rounds 2] [--conns 32]``.

1. Gateway throughput, same session, same server process: wrk POSTs non-streaming chat completions to the built-in
   echo model with a key from the flat ``api-keys`` list, then with a client key that has every limit type set
   (rpm, tpm, max-concurrency, daily and monthly token budgets; set far above the load so nothing is refused, which
   is the common case the design keeps off the database), alternating A B A B. The server runs on cpu0, wrk on cpu1.
2. The cost of one admission decision, in-process (no HTTP): ``identify`` (HMAC + dict lookup), ``admit`` and
   ``settle`` on a :class:`~muxtrio.keys.gate.KeyGate` with a SQLite store, far from the limits (leases served
   locally) and at the limit (each request leases a single permit: one store transaction), with the number of store
   calls per 1,000 admissions.

Writes ``perf/results/<date>-keys.md`` and prints it. Reports numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import trio

from muxtrio.config import Config, UsageConfig
from muxtrio.engine.routing import Router
from muxtrio.ir.response import Usage
from muxtrio.keys.gate import KeyGate
from muxtrio.keys.model import Limits
from perf import wrk
from perf.procs import Procs, cpu_ticks, foreign_ticks, wait_http

FLAT_KEY = "flat-bench-key-0001"
MANAGEMENT_KEY = "bench-management-key-0001"
BODY = {"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hello from the benchmark"}]}
HIGH = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "max-concurrency": 1_000_000,
        "budget-tokens-day": 1_000_000_000_000, "budget-tokens-month": 1_000_000_000_000}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _create_key(base: str) -> str:
    request = urllib.request.Request(
        base + "/v1/management/client-keys", method="POST",
        data=json.dumps({"name": "bench", "limits": HIGH}).encode(),
        headers={"Authorization": f"Bearer {MANAGEMENT_KEY}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["data"]["secret"])


def throughput(seconds: float, rounds: int, conns: int, workdir: Path) -> list[dict[str, Any]]:
    port = _port()
    config = workdir / "muxtrio.yaml"
    config.write_text(f"api-keys: [{FLAT_KEY}]\nusage: {{dsn: 'sqlite://{workdir}/usage.db'}}\n")
    procs = Procs(workdir / "logs")
    base = f"http://127.0.0.1:{port}"
    server = procs.start(
        "muxtrio", ["python", "-m", "muxtrio", "serve", "--config", str(config), "--port", str(port)], cpus="0",
        env={"MUXTRIO_MANAGEMENT_KEY": MANAGEMENT_KEY, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        wait_http(base + "/healthz")
        secret = _create_key(base)
        url = base + "/v1/chat/completions"
        for label, key in (("warm-up flat", FLAT_KEY), ("warm-up keys", secret)):
            wrk.run(url, BODY, conns=conns, seconds=2, headers={"Authorization": f"Bearer {key}"})
            del label
        for round_ in range(rounds):
            for label, key in (("flat api-keys", FLAT_KEY), ("client key, all limits", secret)):
                before, server_before = foreign_ticks(), cpu_ticks(server.pid)
                result = wrk.run(url, BODY, conns=conns, seconds=seconds, headers={"Authorization": f"Bearer {key}"})
                server_ticks = cpu_ticks(server.pid) - server_before
                # The server's own CPU time per request: steady on a shared box, where req/s follows the neighbours.
                cpu_ms = server_ticks * 1000 / os.sysconf("SC_CLK_TCK") / max(1, result["requests"])
                result.update(label=label, round=round_ + 1, foreign_ticks=foreign_ticks() - before, cpu_ms=cpu_ms)
                rows.append(result)
    finally:
        procs.stop(server)
    return rows


async def _admissions(gate: KeyGate, router: Router, secret: str, count: int) -> tuple[float, float, int]:
    """(µs per identify, µs per admit + settle, store calls) over ``count`` requests."""
    usage = Usage(input_tokens=12, output_tokens=30)
    calls_before = gate.lease_calls
    identify_ns = admit_ns = 0
    for _ in range(count):
        t0 = time.perf_counter_ns()
        identity = await gate.identify(secret)
        t1 = time.perf_counter_ns()
        assert identity is not None
        ticket = await gate.admit(identity, "muxtrio-echo", 12, router)
        ticket.observe(usage, "muxtrio-echo")
        gate.settle(ticket)
        t2 = time.perf_counter_ns()
        identify_ns += t1 - t0
        admit_ns += t2 - t1
    return identify_ns / count / 1000, admit_ns / count / 1000, gate.lease_calls - calls_before


async def decision_cost(count: int, workdir: Path) -> dict[str, Any]:
    config = Config(usage=UsageConfig(dsn=f"sqlite://{workdir}/decisions.db"))
    router = Router(config)
    gate = KeyGate(config)
    far = Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6, budget_tokens_day=10**12, budget_tokens_month=10**12)
    _, far_secret = await gate.create("far", limits=far)
    _, none_secret = await gate.create("unlimited")
    await _admissions(gate, router, far_secret, 1000)  # warm caches
    out: dict[str, Any] = {"count": count}
    out["identify_us"], out["admit_settle_far_us"], out["store_calls_far"] = await _admissions(
        gate, router, far_secret, count
    )
    _, out["admit_settle_unlimited_us"], _ = await _admissions(gate, router, none_secret, count)
    # A whole window drained: rpm 1000, 1000 requests; the adaptive slices shrink from 125 to single permits.
    _, drain_secret = await gate.create("drain", limits=Limits(rpm=1000))
    _, out["admit_settle_drain_us"], out["store_calls_drain"] = await _admissions(gate, router, drain_secret, 1000)
    # One store transaction (a single-permit lease, with the worker-thread hop): the cost of an admission that
    # cannot be served from a lease.
    store = await gate.open()
    t0 = time.perf_counter_ns()
    for _ in range(1000):
        await gate._call(store.lease, "ck_bench", "requests-minute", 0, 10.0**12, 1.0, 1.0, 0.0)
    out["lease_us"] = (time.perf_counter_ns() - t0) / 1000 / 1000
    await gate.close()
    return out


def report(rows: list[dict[str, Any]], costs: dict[str, Any], seconds: float, conns: int) -> str:
    best: dict[str, float] = {}
    cheapest: dict[str, float] = {}
    for row in rows:
        best[row["label"]] = max(best.get(row["label"], 0.0), row["rps"])
        cheapest[row["label"]] = min(cheapest.get(row["label"], float("inf")), row["cpu_ms"])
    flat, keyed = best.get("flat api-keys", 0.0), best.get("client key, all limits", 0.0)
    overhead = (flat - keyed) / flat * 100 if flat else float("nan")
    flat_cpu, keyed_cpu = cheapest.get("flat api-keys", 0.0), cheapest.get("client key, all limits", 0.0)
    cpu_overhead = (keyed_cpu - flat_cpu) / flat_cpu * 100 if flat_cpu else float("nan")
    lines = [
        f"# Client keys — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Throughput: non-streaming chat to `muxtrio-echo`, wrk {conns} connections, {seconds:g} s per run, "
        "server on cpu0, wrk on cpu1, A B A B in one session; best round per target.",
        "",
        "| key | round | req/s | server CPU ms/request | p50 ms | p99 ms | non-2xx | foreign CPU ticks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['round']} | {row['rps']:.0f} | {row['cpu_ms']:.3f} | "
            f"{row.get('p50_ms') or float('nan'):.2f} | "
            f"{row.get('p99_ms') or float('nan'):.2f} | {row.get('non2xx', 0)} | {row['foreign_ticks']} |"
        )
    lines += [
        "",
        f"Best req/s: flat {flat:.0f}, client key {keyed:.0f}: overhead {overhead:.1f} %. Server CPU per request "
        f"(lowest round): flat {flat_cpu:.3f} ms, client key {keyed_cpu:.3f} ms: overhead **{cpu_overhead:.1f} %** "
        "(the same as the req/s overhead per core of server CPU).",
        "",
        f"Admission decision, in-process, {costs['count']} requests (SQLite store):",
        "",
        "| step | µs per request | store calls |",
        "|---|---|---|",
        f"| identify (HMAC-SHA256 + lookup) | {costs['identify_us']:.2f} | 0 |",
        f"| admit + settle, no limits | {costs['admit_settle_unlimited_us']:.2f} | 0 |",
        f"| admit + settle, every limit, far from it | {costs['admit_settle_far_us']:.2f} | "
        f"{costs['store_calls_far']} per {costs['count']} |",
        f"| admit + settle, rpm 1000 drained from 0 to the limit | {costs['admit_settle_drain_us']:.1f} | "
        f"{costs['store_calls_drain']} per 1000 |",
        f"| one store lease (SQLite transaction + thread hop) | {costs['lease_us']:.0f} | 1 |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.bench_keys")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    problem = wrk.available()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory(prefix="muxtrio-bench-keys-") as tmp:
        workdir = Path(tmp)
        costs = trio.run(decision_cost, args.decisions, workdir)
        rows = throughput(args.seconds, args.rounds, args.conns, workdir)
    text = report(rows, costs, args.seconds, args.conns)
    out = Path(__file__).parent / "results" / f"{time.strftime('%Y-%m-%d')}-keys.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

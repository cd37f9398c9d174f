"""Experiment for hot-path fix 1 of perf/README.md: what the streaming rate becomes when the engine's reader stops
switching to the writer after every event. Nothing in ``muxtrio/`` is changed: a second muxtrio process runs with
a patch applied at start-up, and both are measured alternately (A B A B) on cpu0 against the same fake provider.

The patch gives ``muxtrio.engine.engine`` a memory channel whose ``send`` tries ``send_nowait`` first and only
awaits (and so checkpoints) when the channel is full. The reader still yields whenever the upstream socket has
nothing buffered (every trio socket call is a checkpoint), the BytePool and the channel's capacity still bound
memory, and the writer's ``next_batch`` now finds several events to write at once.

    python -m perf.experiment_send_nowait   # prints rows, writes perf/results/<date>-<host>-send-nowait.json

Since commit d3f9403 ("Engine reader: no task switch per event") the engine does this itself, so on later commits
the experiment compares the fix with itself (plus the proxy's small cost); its result file records the 7216d33 run.
    python -m perf.experiment_send_nowait serve --config FILE   # (internal) the patched gateway
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import orjson
import trio

from perf import driver, targets
from perf.procs import Procs, wait_http
from perf.scenarios import ANTHROPIC, OPENAI, Row, Suite, _chat, _check_events, _per_core, _wrk_on, format_row

RESULTS = Path(__file__).resolve().parent / "results"


class _FastSend:
    """A MemorySendChannel whose ``send`` does not checkpoint when the value fits."""

    def __init__(self, inner: trio.MemorySendChannel[Any]) -> None:
        self._inner = inner

    async def send(self, value: Any) -> None:
        try:
            self._inner.send_nowait(value)
        except trio.WouldBlock:
            await self._inner.send(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> _FastSend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.aclose()


class _OpenChannel:
    def __getitem__(self, _item: object) -> _OpenChannel:
        return self

    def __call__(self, capacity: int) -> tuple[_FastSend, trio.MemoryReceiveChannel[Any]]:
        send, receive = trio.open_memory_channel[Any](capacity)
        return _FastSend(send), receive


class _TrioProxy(types.ModuleType):
    """``trio`` for the engine module only, with the patched ``open_memory_channel``."""

    open_memory_channel = _OpenChannel()

    def __getattr__(self, name: str) -> Any:
        return getattr(trio, name)


def patched_serve(argv: list[str]) -> int:
    from muxtrio import cli
    from muxtrio.engine import engine

    engine.trio = _TrioProxy("trio")  # type: ignore[assignment]
    return cli.main(argv)


def main() -> int:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = RESULTS / "raw" / f"send-nowait-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(workdir)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    try:
        fake = targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
        direct = targets.start_fake(procs, targets.DIRECT_PORT, "0", "fake-direct")
        base = targets.start_muxtrio(procs, workdir)
        cfg = workdir / "patched.yaml"
        cfg.write_text(targets.muxtrio_config(targets.MUX2_PORT, 1))
        proc = procs.start("muxtrio-patched", [sys.executable, "-m", "perf.experiment_send_nowait", "serve",
                                               "--config", str(cfg)], "0", cwd=str(targets.ROOT))
        patched = targets.Target("litellm", targets.MUX2_PORT, proc)  # shown in the LiteLLM column of the rows
        wait_http(f"{patched.base}/v1/chat/completions", data=targets.PROBE)
        suite = Suite(False, procs, workdir, fake, direct, base, patched)
        for label, path, model in (("OpenAI → OpenAI", OPENAI, "fake-n1000"),
                                   ("Anthropic → OpenAI", OPENAI, "claude-fake-n1000"),
                                   ("OpenAI → Anthropic", ANTHROPIC, "fake-n1000")):
            body = _chat(model, stream=True, max_tokens=1000)
            checks = {t.name: _check_events(suite, t, path, body) for t in suite.gateways()}
            samples = [(t.name, _wrk_on(suite, t, path, body, 8, 10)) for t in suite.alternate()]
            core = _per_core(samples, 1000)
            rate = {n: max(r["rps"] for m, r in samples if m == n) * 1000 for n in ("muxtrio", "litellm")}
            raw[label] = {"samples": samples, "checks": checks}
            bad = "; ".join(f"{'patched' if n == 'litellm' else 'baseline'}: {c['events']} events"
                            for n, c in checks.items() if not c["ok"])
            rows.append(Row("send_nowait", f"{label} events/s, c=8 (baseline | patched)", "events/s",
                            rate["muxtrio"], rate["litellm"], note=bad))
            rows.append(Row("send_nowait", f"{label} events/s per core (baseline | patched)", "events/s",
                            core["muxtrio"], core["litellm"]))
            for row in rows[-2:]:
                print(format_row(row), flush=True)
        # The first token must not get slower: sequential 5-event streams, as in the `ttft` scenario.
        ttft_body = orjson.dumps(_chat("claude-fake-n5", stream=True, max_tokens=5))
        ttft: list[tuple[str, dict[str, Any]]] = []
        for t in suite.alternate():
            with procs.only(t.proc):
                suite.quiet()
                ttft.append((t.name, trio.run(driver.sequential, t.port, OPENAI, ttft_body, 100)))
        raw["ttft"] = ttft
        p50 = {n: min(r["ttft_p50_ms"] for m, r in ttft if m == n) for n in ("muxtrio", "litellm")}
        rows.append(Row("send_nowait", "Anthropic → OpenAI TTFT p50 (baseline | patched)", "ms",
                        p50["muxtrio"], p50["litellm"]))
        print(format_row(rows[-1]), flush=True)
    finally:
        procs.stop_all()
    out = RESULTS / f"{dt.date.today().isoformat()}-{socket.gethostname()}-send-nowait.json"
    out.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "raw": raw}, indent=1, default=str) + "\n")
    print("columns: muxtrio = baseline, LiteLLM = patched (so muxtrio/LiteLLM = baseline/patched)")
    print(f"wrote {out.relative_to(targets.ROOT)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(patched_serve(sys.argv[1:]))
    sys.exit(main())

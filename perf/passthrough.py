"""Same-format pass-through (issue 19, target 3), measured A/B: CPU per event and events/s per core of gateway CPU,
the provider's bytes forwarded vs the same stream decoded and re-encoded.

Two parts, both alternating the two variants round by round and keeping each one's best round:

- ``codec``: in-process, one core, no sockets: where the per-event CPU of the same-format path goes without the
  server — decode (provider bytes -> IR), encode (IR -> frames), framing (frames -> bytes), and the pass-through
  reader (frame cutting + decode) with the encoder only advanced. ``time.process_time`` over whole streams.
- ``server``: a fake provider (cpu1) and two gateways (cpu0), one with ``pass-through: true``, one with ``false``;
  a client on cpu1 reads whole 1,000-event streams, c=1, from each in turn while the other is paused (SIGSTOP). The
  number is the gateway process's CPU (``/proc`` ticks) per event: everything it does per event (upstream read,
  decode, engine, writer, Hypercorn, socket writes).

    python -m perf.passthrough [--quick] [--json OUT]

Ports 9301-9303 (not the suite's), loopback only; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson

from muxtrio.codecs.base import Format, StreamInfo
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.passthrough import RawReader
from perf import fake_provider as fake
from perf.bench_codecs import client_request
from perf.procs import CLK, Procs, cpu_ticks, wait_http, wait_quiet
from perf.targets import ROOT, muxtrio_config

FAKE_PORT, ON_PORT, OFF_PORT = 9301, 9302, 9303
FORMATS = (Format.OPENAI_CHAT, Format.ANTHROPIC, Format.GEMINI, Format.OLLAMA)
SHORT = {Format.OPENAI_CHAT: "openai", Format.ANTHROPIC: "anthropic", Format.GEMINI: "gemini",
         Format.OLLAMA: "ollama"}  # fmt: skip


# ---------------------------------------------------------------------------------------------- in-process
def provider_chunks(fmt: Format, n: int) -> list[bytes]:
    """The perf fake's own stream for ``fmt``, one chunk per event (as it sends them)."""
    shape = fake.Shape(0.0, n, 0)
    if fmt is Format.OPENAI_CHAT:
        return list(fake.openai_stream("m", shape, usage=True))
    if fmt is Format.ANTHROPIC:
        return list(fake.anthropic_stream("m", shape))
    if fmt is Format.GEMINI:
        return list(fake.gemini_stream("m", shape))
    return list(fake.ollama_stream("m", shape, chat=True))


def _cpu(fn: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def codec_split(n: int, rounds: int, per_read: int = 1) -> dict[str, dict[str, float]]:
    """Per format, microseconds of CPU per event: decode, encode, framing, translated (all three), pass-through.
    ``per_read``: provider events per upstream chunk (1: one chunk per event; more: coalesced socket reads)."""
    return {SHORT[fmt]: _codec_row(fmt, n, rounds, per_read) for fmt in FORMATS}


def _codec_row(fmt: Format, n: int, rounds: int, per_read: int) -> dict[str, float]:
    codec = get_codec(fmt)
    single = provider_chunks(fmt, n)
    chunks = [b"".join(single[i : i + per_read]) for i in range(0, len(single), per_read)]
    request = client_request(fmt)
    info = StreamInfo("bench-id", "m", 1_700_000_000, request)
    batches = []
    decoder = codec.new_decoder("s")
    for chunk in chunks:
        batches.append(decoder.feed(chunk))
    batches.append(decoder.flush())
    events = sum(len(b) for b in batches)

    def decode() -> None:
        d = codec.new_decoder("s")
        for chunk in chunks:
            d.feed(chunk)
        d.flush()

    def encode() -> None:
        e = codec.new_encoder(info)
        for batch in batches:
            for event in batch:
                e.frames(event)

    frames = []
    encoder = codec.new_encoder(info)
    for batch in batches:
        frames.append([f for event in batch for f in encoder.frames(event)])

    def framing() -> None:
        frame = codec.new_encoder(info).framer.frame
        for group in frames:
            frame(group)

    def translated() -> None:
        d = codec.new_decoder("s")
        e = codec.new_encoder(info)
        frame = e.framer.frame
        for chunk in chunks:
            got: list[Any] = []
            for event in d.feed(chunk):
                got.extend(e.frames(event))
            frame(got)
        for event in d.flush():
            e.frames(event)

    def passed() -> None:
        reader = RawReader(codec.new_decoder("s"), fmt, request, 1 << 24)
        e = codec.new_encoder(info)
        advance = e.advance
        for chunk in chunks:
            for event in reader.feed(chunk)[0]:
                advance(event)
        for event in reader.flush()[0]:
            advance(event)

    row: dict[str, float] = {}
    for name, fn in (("decode", decode), ("encode", encode), ("framing", framing), ("translated", translated),
                     ("pass-through", passed)):
        row[name] = round(_cpu(fn, rounds) / events * 1e6, 3)
    row["events"] = events
    return row


# ---------------------------------------------------------------------------------------------- server A/B
def _client_call(fmt: Format, port: int) -> tuple[str, bytes]:
    """(url, body) of a same-format streaming request for the fake's 1,000-event model of ``fmt``."""
    base = f"http://127.0.0.1:{port}"
    hi = [{"role": "user", "content": "hi"}]
    if fmt is Format.OPENAI_CHAT:
        return base + "/v1/chat/completions", orjson.dumps({"model": "fake-n1000", "messages": hi, "stream": True})
    if fmt is Format.ANTHROPIC:
        body = {"model": "claude-fake-n1000", "max_tokens": 1000, "messages": hi, "stream": True}
        return base + "/v1/messages", orjson.dumps(body)
    if fmt is Format.GEMINI:
        url = base + "/v1beta/models/gemini-fake-n1000:streamGenerateContent?alt=sse"
        return url, orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    return base + "/api/chat", orjson.dumps({"model": "llama-fake-n1000", "messages": hi})


def _read_streams(client: httpx2.Client, url: str, body: bytes, streams: int) -> int:
    total = 0
    for _ in range(streams):
        with client.stream("POST", url, content=body, headers={"content-type": "application/json"}) as response:
            assert response.status_code == 200, response.status_code
            for part in response.iter_bytes():
                total += len(part)
    return total


def server_ab(rounds: int, streams: int, logdir: Path) -> dict[str, dict[str, Any]]:
    """Per format: the gateway's CPU microseconds per event and events/s per core, pass-through on and off (best
    round of each), and whether the on-variant's bytes equal the provider's."""
    procs = Procs(logdir)
    results: dict[str, dict[str, Any]] = {}
    try:
        procs.start("fake-pt", [sys.executable, "-m", "perf.fake_provider", "--port", str(FAKE_PORT)], "1",
                    cwd=str(ROOT))
        wait_http(f"http://127.0.0.1:{FAKE_PORT}/healthz")
        gateways = {}
        exe = Path(sys.executable).with_name("muxtrio")
        for label, port, flag in (("on", ON_PORT, "true"), ("off", OFF_PORT, "false")):
            cfg = logdir / f"muxtrio-{label}.yaml"
            text = muxtrio_config(port, 1, FAKE_PORT, observability=True, usage_db=logdir / f"usage-{label}.db")
            cfg.write_text(text + f"pass-through: {flag}\n")
            proc = procs.start(f"muxtrio-{label}", [str(exe), "serve", "--config", str(cfg)], "0", cwd=str(ROOT))
            probe = orjson.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
            wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", data=probe)
            gateways[label] = (port, proc)
        with httpx2.Client(timeout=60.0) as client:
            for fmt in FORMATS:
                best: dict[str, float] = {"on": float("inf"), "off": float("inf")}
                sizes: dict[str, int] = {}
                for turn in range(rounds):
                    for label in ("on", "off") if turn % 2 == 0 else ("off", "on"):  # A B, then B A
                        port, proc = gateways[label]
                        url, body = _client_call(fmt, port)
                        with procs.only(proc):
                            _read_streams(client, url, body, 2)  # warm
                            wait_quiet(2.0)
                            t0 = cpu_ticks(proc.pid)
                            sizes[label] = _read_streams(client, url, body, streams)
                            used = (cpu_ticks(proc.pid) - t0) / CLK
                        best[label] = min(best[label], used)
                events = 1000 * streams
                row: dict[str, Any] = {}
                for label in ("on", "off"):
                    row[f"us_per_event_{label}"] = round(best[label] / events * 1e6, 2)
                    row[f"events_per_core_{label}"] = round(events / best[label]) if best[label] else None
                row["cpu_ratio_off_over_on"] = round(best["off"] / best["on"], 2) if best["on"] else None
                row["bytes_on"], row["bytes_off"] = sizes["on"] // streams, sizes["off"] // streams
                results[SHORT[fmt]] = row
    finally:
        procs.stop_all()
    return results


def table(codecs: dict[int, dict[str, dict[str, float]]], server: dict[str, dict[str, Any]]) -> str:
    lines = ["In-process, µs of CPU per event (one core; best round):", "",
             "| format | events per read | decode | encode | framing | translated | pass-through "
             "| translated / pass-through |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for per_read, codec in codecs.items():
        for name, row in codec.items():
            ratio = row["translated"] / row["pass-through"] if row["pass-through"] else 0.0
            lines.append(f"| {name}→{name} | {per_read} | {row['decode']} | {row['encode']} | {row['framing']} "
                         f"| {row['translated']} | {row['pass-through']} | {ratio:.2f}x |")
    if server:
        lines += ["", "Gateway process, 1,000-event streams c=1 (gateway on cpu0; best round):", "",
                  "| format | µs/event translated | µs/event pass-through | events/s per core translated "
                  "| events/s per core pass-through | CPU ratio |", "|---|---:|---:|---:|---:|---:|"]
        for name, row in server.items():
            lines.append(f"| {name}→{name} | {row['us_per_event_off']} | {row['us_per_event_on']} "
                         f"| {row['events_per_core_off']} | {row['events_per_core_on']} "
                         f"| {row['cpu_ratio_off_over_on']}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-server", action="store_true", help="the in-process split only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    n = 2000 if args.quick else 10000
    codec = {per_read: codec_split(n, rounds, per_read) for per_read in (1, 16)}
    server: dict[str, dict[str, Any]] = {}
    if not args.no_server:
        with tempfile.TemporaryDirectory(prefix="muxtrio-passthrough-") as tmp:
            server = server_ab(min(rounds, 5), 5 if args.quick else 20, Path(tmp))
    print(table(codec, server))
    if args.json is not None:
        args.json.write_text(json.dumps({"codec": codec, "server": server}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

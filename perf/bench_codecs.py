"""In-process codec benchmark (issue 3): events/s for provider bytes → decoder → IR → encoder → client bytes over
every provider x client format pair, and the working memory (tracemalloc peak) to translate a 100K-token stream.

No sockets, no trio: this is the pure translation cost the gateway pays per event, on one core. Provider streams
are the fake provider's own wire bytes (one chunk per event, as the fake sends them); the OpenAI Responses stream,
which the fake does not serve, is produced by muxtrio's own Responses encoder from the same events.

    python -m perf.bench_codecs [--quick] [--json OUT]

Columns: ``decode`` (provider bytes → IR only), ``encode`` (IR → client bytes only) and ``pair`` (both, the number
that matters) in thousands of events/s. Memory: tracemalloc's peak above the baseline while one 100,000-event
stream is translated with its output discarded chunk by chunk (as the server writes and forgets it). A format whose
final event must repeat the whole answer (Responses' ``response.completed``) holds the answer by design.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from muxtrio.codecs.base import Format, RequestHints, StreamInfo
from muxtrio.codecs.registry import get_codec
from muxtrio.ir.events import Event
from muxtrio.ir.request import Request
from perf import fake_provider as fake

FORMATS = (Format.OPENAI_CHAT, Format.OPENAI_RESPONSES, Format.ANTHROPIC, Format.GEMINI, Format.OLLAMA)
SHORT = {Format.OPENAI_CHAT: "openai", Format.OPENAI_RESPONSES: "responses", Format.ANTHROPIC: "anthropic",
         Format.GEMINI: "gemini", Format.OLLAMA: "ollama"}

_MSG = [{"role": "user", "content": "hi"}]
CLIENT_REQUESTS: dict[Format, tuple[dict[str, Any], RequestHints]] = {
    Format.OPENAI_CHAT: ({"model": "m", "messages": _MSG, "stream": True}, RequestHints()),
    Format.OPENAI_RESPONSES: ({"model": "m", "input": "hi", "stream": True}, RequestHints()),
    Format.ANTHROPIC: ({"model": "m", "max_tokens": 1000, "messages": _MSG, "stream": True}, RequestHints()),
    Format.GEMINI: ({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, RequestHints(model="m", stream=True)),
    Format.OLLAMA: ({"model": "m", "messages": _MSG}, RequestHints(endpoint="chat")),
}


def client_request(fmt: Format) -> Request:
    body, hints = CLIENT_REQUESTS[fmt]
    return get_codec(fmt).parse_request(orjson.dumps(body), hints)


def info(fmt: Format) -> StreamInfo:
    return StreamInfo("bench-id", "m", 1_700_000_000, client_request(fmt))


def provider_chunks(fmt: Format, n: int) -> Iterator[bytes]:
    """The provider's stream of ``n`` content events, one chunk per event (lazily: no whole transcript in memory)."""
    shape = fake.Shape(0.0, n, 0)
    if fmt is Format.OPENAI_CHAT:
        yield from fake.openai_stream("m", shape, usage=True)
    elif fmt is Format.ANTHROPIC:
        yield from fake.anthropic_stream("m", shape)
    elif fmt is Format.GEMINI:
        yield from fake.gemini_stream("m", shape)
    elif fmt is Format.OLLAMA:
        yield from fake.ollama_stream("m", shape, chat=True)
    else:  # Responses: muxtrio's own encoder writes what an OpenAI Responses provider sends
        encoder = get_codec(Format.OPENAI_RESPONSES).new_encoder(info(Format.OPENAI_RESPONSES))
        for event in ir_events(n):
            out = encoder.encode(event)
            if out:
                yield out
        yield encoder.finish()


def ir_events(n: int) -> Iterator[Event]:
    """The IR of an ``n``-event answer, from the OpenAI decoder (so every format starts from the same events)."""
    decoder = get_codec(Format.OPENAI_CHAT).new_decoder("seed")
    for chunk in fake.openai_stream("m", fake.Shape(0.0, n, 0), usage=True):
        yield from decoder.feed(chunk)
    yield from decoder.flush()


def translate(provider: Format, client: Format, chunks: Iterator[bytes], sink: Callable[[bytes], None]) -> int:
    """Decode ``chunks`` and encode every event for ``client``; returns the number of IR events."""
    decoder = get_codec(provider).new_decoder("seed")
    encoder = get_codec(client).new_encoder(info(client))
    count = 0
    for chunk in chunks:
        for event in decoder.feed(chunk):
            sink(encoder.encode(event))
            count += 1
    for event in decoder.flush():
        sink(encoder.encode(event))
        count += 1
    sink(encoder.finish())
    return count


def _best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def throughput(n: int, repeat: int) -> dict[str, Any]:
    """events/s (content events of the provider stream) per pair, plus decode-only and encode-only."""
    out: dict[str, Any] = {"events": n, "pair": {}, "decode": {}, "encode": {}}
    drop: Callable[[bytes], None] = lambda b: None  # noqa: E731
    for provider in FORMATS:
        chunks = list(provider_chunks(provider, n))

        def decode_only(provider: Format = provider, chunks: list[bytes] = chunks) -> float:
            decoder = get_codec(provider).new_decoder("seed")
            t0 = time.perf_counter()
            for chunk in chunks:
                decoder.feed(chunk)
            decoder.flush()
            return time.perf_counter() - t0

        out["decode"][SHORT[provider]] = round(n / _best(decode_only, repeat))
        for client in FORMATS:

            def pair(provider: Format = provider, client: Format = client, chunks: list[bytes] = chunks) -> float:
                t0 = time.perf_counter()
                translate(provider, client, iter(chunks), drop)
                return time.perf_counter() - t0

            out["pair"][f"{SHORT[provider]}->{SHORT[client]}"] = round(n / _best(pair, repeat))
    events = list(ir_events(n))
    for client in FORMATS:

        def encode_only(client: Format = client) -> float:
            encoder = get_codec(client).new_encoder(info(client))
            t0 = time.perf_counter()
            for event in events:
                encoder.encode(event)
            encoder.finish()
            return time.perf_counter() - t0

        out["encode"][SHORT[client]] = round(n / _best(encode_only, repeat))
    return out


def memory(n: int, pairs: list[tuple[Format, Format]]) -> dict[str, int]:
    """tracemalloc peak (bytes above baseline) while translating an ``n``-event stream, per pair."""
    out: dict[str, int] = {}
    for provider, client in pairs:
        gc.collect()
        # The fake's templates are generated lazily and hold nothing; the Responses transcript comes from muxtrio's
        # own Responses encoder, which keeps the answer for response.completed, so it is made before tracing starts.
        chunks: Iterator[bytes] = provider_chunks(provider, n)
        if provider is Format.OPENAI_RESPONSES:
            chunks = iter(list(chunks))
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        translate(provider, client, chunks, lambda b: None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[f"{SHORT[provider]}->{SHORT[client]}"] = peak - base
    return out


def run(quick: bool) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    result: dict[str, Any] = {"throughput": throughput(n, repeat=2 if quick else 3)}
    all_pairs = [(p, c) for p in FORMATS for c in FORMATS]
    if quick:
        all_pairs = [(Format.OPENAI_CHAT, Format.OPENAI_CHAT), (Format.ANTHROPIC, Format.OPENAI_CHAT),
                     (Format.OPENAI_CHAT, Format.ANTHROPIC), (Format.GEMINI, Format.OPENAI_CHAT),
                     (Format.OPENAI_CHAT, Format.OPENAI_RESPONSES)]
    result["memory_tokens"] = 100_000
    result["memory_peak_bytes"] = memory(100_000, all_pairs)
    return result


def table(result: dict[str, Any]) -> str:
    tp = result["throughput"]
    names = [SHORT[f] for f in FORMATS]
    lines = [f"Pair events/s (thousands) on one core, {tp['events']:,}-event streams; rows: provider, columns: client.",
             "", "| provider \\ client | " + " | ".join(names) + " | decode only |",
             "|---|" + "---:|" * (len(names) + 1)]
    for p in names:
        cells = [f"{tp['pair'][f'{p}->{c}'] / 1000:.0f}" for c in names]
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {tp['decode'][p] / 1000:.0f} |")
    lines.append("| encode only | " + " | ".join(f"{tp['encode'][c] / 1000:.0f}" for c in names) + " | |")
    lines += ["", f"tracemalloc peak translating a {result['memory_tokens']:,}-token stream (KB):", "",
              "| pair | peak KB |", "|---|---:|"]
    lines += [f"| {k} | {v / 1024:.0f} |" for k, v in result["memory_peak_bytes"].items()]
    return "\n".join(lines) + "\n"


def rows(result: dict[str, Any]) -> list[Any]:
    from perf.scenarios import Row

    if "failed" in result:
        return [Row("codecs", "decode->IR->encode", "events/s", note=f"failed: {result['failed']}")]
    pair = result["throughput"]["pair"]
    cross = {k: v for k, v in pair.items() if k.split("->")[0] != k.split("->")[1]}
    worst = min(cross, key=lambda k: cross[k])
    median = sorted(cross.values())[len(cross) // 2]
    mem = result["memory_peak_bytes"]
    out = [
        Row("codecs (in-process)", "cross-format events/s per core, median pair", "events/s", median,
            target="≥ 150k", met=median >= 150_000),
        Row("codecs (in-process)", f"cross-format events/s, worst pair ({worst})", "events/s", cross[worst],
            target="≥ 150k", met=cross[worst] >= 150_000),
    ]
    # Responses is shown apart: its terminal response.completed repeats the whole answer, so an encoder must keep
    # the answer and a decoder must parse it at the end.
    groups = (("worst pair without Responses", lambda k: "responses" not in k, ""),
              ("Responses client, worst", lambda k: k.endswith("->responses"), "the encoder keeps the answer"),
              ("Responses provider, worst", lambda k: k.startswith("responses->") and not k.endswith("->responses"),
               "peak while parsing the terminal response.completed"))
    for label, keep, note in groups:
        sel = {k: v for k, v in mem.items() if keep(k)}
        if sel:
            k = max(sel, key=lambda k: sel[k])
            out.append(Row("codecs (in-process)", f"tracemalloc peak, 100K tokens, {label} ({k})", "KB",
                           sel[k] / 1024, target="≤ 256 KB", met=sel[k] <= 256 * 1024, note=note))
    return out


def run_pinned(quick: bool) -> dict[str, Any]:
    """Run in a fresh process pinned to cpu0 (the gateway's core in the other scenarios)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "perf.bench_codecs", "--json", str(out)]
    proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).resolve().parent.parent)
    try:
        result: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        result = {"failed": (proc.stderr or proc.stdout)[-2000:]}
    finally:
        out.unlink(missing_ok=True)
    print(proc.stdout, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="muxtrio codec benchmark (in-process)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    result = run(args.quick)
    print(table(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

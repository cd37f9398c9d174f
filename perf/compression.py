"""Response compression (issue 19): CPU per MB against bytes saved, per coding and level, on realistic LLM answers,
on SSE streams flushed per write, and the added latency of a compressed non-stream request through the real server.

1. Whole bodies: three answers built in the providers' real shapes from real text (this repository's docs as the
   prose, its source as tool-call arguments): a long Chat Completion (~40 KB), a tool-call-heavy Chat Completion
   (12 calls with file contents as arguments) and a Responses object (reasoning summary, message, function calls).
   For each coding and level: the compressed size (ratio = original / compressed) and ``time.process_time`` per MB
   of input, best of rounds (the box is shared: CPU time of this process, not wall time).
2. Streams: the long answer as OpenAI chat SSE chunks (a few characters per delta, as providers send them), written
   in batches of 1, 4, 16 and 64 events, each batch compressed and flushed (``muxtrio.server.compression``'s own
   stream compressors, as the gateway uses them): ratio achieved and CPU per MB per batch size.
3. Through the real server (Hypercorn + MuxApp on 127.0.0.1, in this process, the built-in echo model answering a
   ~16 KB prompt): sequential requests alternating identity, gzip, br and zstd; the median wall time per request
   and the process CPU per request (server + client, the client's decoding included), reported as the difference
   to identity.

    python -m perf.compression [--quick]      # writes perf/results/compression-<date>.json

The defaults of ``compression:`` come from these numbers (``perf/README.md``, "Response compression").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import brotli
import httpx2
import orjson
import trio
import zstandard
from hypercorn.config import Config as HypercornConfig

from muxtrio.config import CompressionConfig, Config
from muxtrio.server.app import MuxApp
from muxtrio.server.compression import Coding, compressing_send, stream_compressor
from muxtrio.server.listener import serve

ROOT = Path(__file__).resolve().parent.parent
LEVELS: dict[str, tuple[int, ...]] = {"gzip": (1, 4, 6, 9), "zstd": (1, 3, 6, 9), "br": (1, 4, 5, 6, 9)}
BATCHES = (1, 4, 16, 64)
SMALL_REPEAT = 2000


def _prose(chars: int) -> str:
    text = "\n\n".join((ROOT / "docs" / name).read_text() for name in ("design.md", "http.md", "resilience.md"))
    return (text * (chars // len(text) + 1))[:chars]


def _sources() -> list[str]:
    files = sorted((ROOT / "muxtrio" / "server").glob("*.py"))
    return [path.read_text()[:3000] for path in files[:12]]


def long_chat(text: str) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-4f8a9b2c1d3e5f6a7b8c9d0e", "object": "chat.completion", "created": 1765000000,
        "model": "gpt-5", "system_fingerprint": "fp_6b68a8204b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                             "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1523, "completion_tokens": len(text) // 4, "total_tokens": 1523 + len(text) // 4,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0}},
    })  # fmt: skip


def tool_chat(sources: list[str]) -> bytes:
    calls = [
        {"id": f"call_{index:02d}Xq7PzR2mKd9LwVb3", "type": "function",
         "function": {"name": "write_file", "arguments": orjson.dumps(
             {"path": f"muxtrio/server/module_{index}.py", "content": source}).decode()}}
        for index, source in enumerate(sources)
    ]  # fmt: skip
    return orjson.dumps({
        "id": "chatcmpl-tools-9b8a7c6d5e4f", "object": "chat.completion", "created": 1765000000, "model": "gpt-5",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": calls},
                     "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 8123, "completion_tokens": 9000, "total_tokens": 17123},
    })  # fmt: skip


def responses_object(text: str, sources: list[str]) -> bytes:
    output: list[dict[str, Any]] = [
        {"id": "rs_68c1f0a2b3", "type": "reasoning", "summary": [{"type": "summary_text", "text": text[:4000]}]},
        {"id": "msg_68c1f0a2b4", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": text[4000:24000], "annotations": []}]},
    ]  # fmt: skip
    for index, source in enumerate(sources[:4]):
        output.append({"id": f"fc_68c1f0a2c{index}", "type": "function_call", "status": "completed",
                       "call_id": f"call_{index}Rz8", "name": "apply_patch",
                       "arguments": orjson.dumps({"input": source}).decode()})  # fmt: skip
    return orjson.dumps({
        "id": "resp_68c1f0a2a1", "object": "response", "created_at": 1765000000, "status": "completed",
        "model": "gpt-5-codex", "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
        "reasoning": {"effort": "medium", "summary": "auto"}, "store": False, "temperature": 1.0, "top_p": 1.0,
        "usage": {"input_tokens": 9000, "input_tokens_details": {"cached_tokens": 8000}, "output_tokens": 7000,
                  "output_tokens_details": {"reasoning_tokens": 1200}, "total_tokens": 16000},
    })  # fmt: skip


def sse_events(text: str) -> list[bytes]:
    """The answer as OpenAI chat chunks of 3 to 6 characters (the size of a token or two), one SSE event each."""
    events: list[bytes] = []
    position, step = 0, 3
    while position < len(text):
        piece = text[position : position + step]
        position += step
        step = 3 + (step + 1) % 4
        chunk = {"id": "chatcmpl-4f8a9b2c1d3e", "object": "chat.completion.chunk", "created": 1765000000,
                 "model": "gpt-5", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def compressor(coding: str, level: int) -> Callable[[bytes], bytes]:
    if coding == "gzip":
        return partial(zlib.compress, level=level, wbits=31)
    if coding == "zstd":
        return zstandard.ZstdCompressor(level=level).compress
    return partial(brotli.compress, quality=level)


def _repeat(compress: Callable[[bytes], bytes], body: bytes, times: int) -> None:
    for _ in range(times):
        compress(body)


def _best_cpu(work: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def whole_bodies(rounds: int) -> dict[str, Any]:
    text, sources = _prose(40_000), _sources()
    bodies = {"long chat completion": long_chat(text), "tool-call-heavy chat completion": tool_chat(sources),
              "responses object": responses_object(text, sources)}  # fmt: skip
    out: dict[str, Any] = {}
    for name, body in bodies.items():
        rows: list[dict[str, Any]] = []
        repeat = max(1, 2_000_000 // len(body))  # ~2 MB of input per measurement: process_time's tick is coarse
        for coding, levels in LEVELS.items():
            for level in levels:
                compress = compressor(coding, level)
                size = len(compress(body))
                work = partial(_repeat, compress, body, repeat)
                cpu = _best_cpu(work, rounds)
                megabytes = len(body) * repeat / 1e6
                rows.append({"coding": coding, "level": level, "bytes": size, "ratio": round(len(body) / size, 2),
                             "cpu_ms_per_mb": round(cpu * 1000 / megabytes, 2),
                             "saved_kb_per_cpu_ms": round((len(body) - size) * repeat / 1000 / (cpu * 1000), 1)})
        out[name] = {"bytes": len(body), "rows": rows}
    return out


def streams(rounds: int) -> dict[str, Any]:
    events = sse_events(_prose(40_000))
    raw = sum(map(len, events))
    settings = CompressionConfig()
    out: dict[str, Any] = {"events": len(events), "bytes": raw, "rows": []}
    for coding in Coding:
        for batch in BATCHES:
            writes = [b"".join(events[i : i + batch]) for i in range(0, len(events), batch)]

            def run(coding: Coding = coding, writes: list[bytes] = writes) -> int:
                encoder = stream_compressor(coding, settings)
                sent = sum(len(encoder.flushed(write)) for write in writes[:-1])
                return sent + len(encoder.finished(writes[-1]))

            size = run()
            cpu = _best_cpu(run, rounds)
            out["rows"].append({"coding": coding.value, "batch": batch, "ratio": round(raw / size, 2),
                                "cpu_ms_per_mb": round(cpu * 1000 / (raw / 1e6), 2)})  # fmt: skip
    return out


def small_bodies(rounds: int) -> dict[str, Any]:
    """Where compression stops paying: short chat completions, bytes saved and CPU microseconds per body (a body
    is at least one TCP segment: saving under a few hundred bytes rarely saves a packet)."""
    text = _prose(8000)
    rows: list[dict[str, Any]] = []
    for chars in (64, 400, 900, 2000, 4000):
        body = long_chat(text[:chars])
        for coding, level in (("gzip", 4), ("zstd", 3), ("br", 4)):
            compress = compressor(coding, level)
            size = len(compress(body))
            cpu = _best_cpu(lambda compress=compress, body=body: [compress(body) for _ in range(SMALL_REPEAT)], rounds)
            rows.append({"bytes": len(body), "coding": coding, "level": level, "compressed": size,
                         "saved": len(body) - size, "cpu_us": round(cpu * 1e6 / SMALL_REPEAT, 1)})  # fmt: skip
    return {"rows": rows}


def wrapper_overhead(rounds: int) -> dict[str, Any]:
    """CPU of the send wrapper, per request, against none: on an answer it leaves alone (under ``min-size``), and on
    the long chat completion in each coding at the default levels (the server's whole cost of compressing it)."""
    settings = CompressionConfig()

    async def sink(message: Any) -> None:
        return None

    async def loop(wrap: bool, count: int, accept: bytes, data: bytes) -> None:
        scope = {"headers": [(b"accept-encoding", accept)], "method": "POST"}
        start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]}
        for _ in range(count):
            send = compressing_send(sink, scope, settings) if wrap else sink
            await send(start)
            await send({"type": "http.response.body", "body": data, "more_body": False})

    def per_request(wrap: bool, count: int, accept: bytes, data: bytes) -> float:
        return _best_cpu(lambda: trio.run(loop, wrap, count, accept, data), rounds) * 1e6 / count

    small = b"x" * 300
    bare = per_request(False, 20_000, b"gzip, deflate, br", small)
    untouched = per_request(True, 20_000, b"gzip, deflate, br", small) - bare
    long = long_chat(_prose(40_000))
    compressed = {coding: round(per_request(True, 200, coding.encode(), long) - bare, 1)
                  for coding in ("zstd", "gzip", "br")}  # fmt: skip
    return {"added_cpu_us_per_request": round(untouched, 2), "answer_bytes": len(long),
            "compress_cpu_us_per_answer": compressed}  # fmt: skip


async def _through_server(requests: int) -> dict[str, Any]:
    config = Config(port=0, api_keys=("bench-key",))
    app = MuxApp(config)
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    prompt = _prose(16_000)
    body = orjson.dumps({"model": "muxtrio-echo", "messages": [{"role": "user", "content": prompt}]})
    codings = ("identity", "gzip", "br", "zstd")
    wall: dict[str, list[float]] = {coding: [] for coding in codings}
    cpu: dict[str, list[float]] = {coding: [] for coding in codings}
    sizes: dict[str, int] = {}
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, hc, http2=False, stop=trio.Event()))
        headers = {"authorization": "Bearer bench-key", "content-type": "application/json"}
        async with httpx2.AsyncClient(base_url=binds[0], headers=headers) as client:
            for _ in range(200):
                if (await client.get("/healthz")).status_code == 200:
                    break
                await trio.sleep(0.01)
            for index in range(requests * len(codings) + len(codings)):
                coding = codings[index % len(codings)]
                start, start_cpu = time.perf_counter(), time.process_time()
                async with client.stream("POST", "/v1/chat/completions", content=body,
                                         headers={"accept-encoding": coding}) as response:  # fmt: skip
                    raw = b"".join([part async for part in response.aiter_raw()])
                    if coding == "gzip":
                        zlib.decompress(raw, wbits=31)
                    elif coding == "br":
                        brotli.decompress(raw)
                    elif coding == "zstd":
                        zstandard.ZstdDecompressor().decompress(raw)
                    assert response.headers.get("content-encoding", "identity") == coding, response.headers
                elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if index >= len(codings):  # the first round warms up
                    wall[coding].append(elapsed)
                    cpu[coding].append(elapsed_cpu)
                sizes[coding] = len(raw)
        nursery.cancel_scope.cancel()
    base_wall, base_cpu = statistics.median(wall["identity"]), statistics.median(cpu["identity"])
    return {
        "answer_bytes": sizes["identity"], "requests_per_coding": requests,
        "rows": [{"coding": coding, "bytes": sizes[coding],
                  "wall_p50_ms": round(statistics.median(wall[coding]) * 1000, 3),
                  "wall_min_ms": round(min(wall[coding]) * 1000, 3),
                  "added_wall_min_ms": round((min(wall[coding]) - min(wall["identity"])) * 1000, 3),
                  "added_wall_p50_ms": round((statistics.median(wall[coding]) - base_wall) * 1000, 3),
                  "cpu_p50_ms": round(statistics.median(cpu[coding]) * 1000, 3),
                  "added_cpu_p50_ms": round((statistics.median(cpu[coding]) - base_cpu) * 1000, 3)}
                 for coding in codings],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "whole": whole_bodies(rounds),
        "streams": streams(rounds),
        "small": small_bodies(rounds),
        "wrapper": wrapper_overhead(rounds),
        "server": trio.run(_through_server, 20 if args.quick else 100),
    }
    out = ROOT / "perf" / "results" / f"compression-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for name, data in results["whole"].items():
        print(f"\n{name} ({data['bytes']} bytes)")
        for row in data["rows"]:
            print(f"  {row['coding']:>4} {row['level']:>2}  ratio {row['ratio']:>6}  {row['cpu_ms_per_mb']:>7} ms/MB")
    print(f"\nSSE ({results['streams']['events']} events, {results['streams']['bytes']} bytes), flushed per write")
    for row in results["streams"]["rows"]:
        print(f"  {row['coding']:>4} batch {row['batch']:>3}  ratio {row['ratio']:>6}  {row['cpu_ms_per_mb']:>7} ms/MB")
    print("\nsmall bodies")
    for row in results["small"]["rows"]:
        print(f"  {row['bytes']:>5} B {row['coding']:>4} {row['level']}  -> {row['compressed']:>5} B  "
              f"saved {row['saved']:>5} B  {row['cpu_us']} us")
    wrapper = results["wrapper"]
    print(f"\nwrapper, answer left alone: +{wrapper['added_cpu_us_per_request']} us CPU per request")
    print(f"wrapper, {wrapper['answer_bytes']} B answer compressed: {wrapper['compress_cpu_us_per_answer']} us CPU")
    print(f"\nthrough the server ({results['server']['answer_bytes']} byte answer)")
    for row in results["server"]["rows"]:
        print(f"  {row['coding']:>8}  {row['bytes']:>6} B  wall p50 {row['wall_p50_ms']} ms "
              f"(+{row['added_wall_p50_ms']}), min {row['wall_min_ms']} (+{row['added_wall_min_ms']})  "
              f"cpu p50 {row['cpu_p50_ms']} ms (+{row['added_cpu_p50_ms']})")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

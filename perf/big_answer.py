"""Working memory of one large answer (issue 19, target 6): a 100K-token answer, streamed and not, per client format.

Two measures, each over provider format x client format pairs (every client format from the OpenAI provider, every
provider format to the OpenAI Chat client):

- ``inproc``: the whole gateway (Hypercorn, app, engine, decoder, encoder, the writer's framing) served in this
  process, a minimal raw-socket client in the same process reading the answer in 8 KB reads and dropping it (it
  keeps the response head and the last bytes, to check the answer ended properly). tracemalloc's peak above the
  traced memory before the request is the answer's working memory. ``--where`` also reports which allocation sites
  held the most at the largest of the snapshots taken every 2 MB of answer (what accumulates).
- ``rss``: a freshly started ``muxtrio serve`` (cpu0) per pair; after one short warm-up answer of the same pair,
  its RSS growth (peak, sampled every 20 ms) while the client streams the 100K-token answer.

The fake provider (cpu1, its own port) serves the answers: ``-n100000`` content events of ``tokN `` text (about
690 KB of text), non-stream answers carrying the same whole text. ``/v1/ws`` is measured with ``muxtrio.client``
(its window of parsed events counts in the in-process peak).

    python -m perf.big_answer [--mode inproc|rss|both] [--tokens 100000] [--where] [--only chat,ws] [--json OUT]

Budget: ≤ 256 KB for a streamed answer in every client format but OpenAI Responses (its ``response.completed``
repeats the whole answer: ≤ 2x the answer's size there); non-stream answers are reported against the answer size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import trio

from perf import fake_provider as fake
from perf import targets
from perf.procs import Procs, rss_kb, wait_http

FAKE_PORT = int(os.environ.get("BIG_ANSWER_FAKE_PORT", "9161"))  # own ports: other perf runs use targets' defaults
MUX_PORT = int(os.environ.get("BIG_ANSWER_PORT", "8461"))
BUDGET = 256 * 1024
READ = 8192
TAIL = 256

PROVIDER_PREFIX = {"openai": "fake", "anthropic": "claude-fake", "gemini": "gemini-fake", "ollama": "llama-fake"}
CLIENTS = ("chat", "completions", "responses", "anthropic", "gemini", "ollama", "ws")
# What the last bytes of a complete streamed answer hold, per client format (a whole answer must end its JSON).
ENDS: dict[str, bytes] = {
    "chat": b"data: [DONE]",
    "completions": b"data: [DONE]",
    "responses": b"response.completed",
    "anthropic": b"message_stop",
    "gemini": b'"finishReason":"STOP"',
    "ollama": b'"done":true',
}


def model_name(provider: str, tokens: int) -> str:
    return f"{PROVIDER_PREFIX[provider]}-n{tokens}"


def request(client: str, model: str, stream: bool) -> tuple[str, bytes]:
    """(path, body) of one request in the client's format."""
    msgs = [{"role": "user", "content": "hi"}]
    body: dict[str, Any]
    if client == "chat":
        path, body = "/v1/chat/completions", {"model": model, "messages": msgs, "stream": stream}
    elif client == "completions":
        path, body = "/v1/completions", {"model": model, "prompt": "hi", "stream": stream}
    elif client == "responses":
        path, body = "/v1/responses", {"model": model, "input": "hi", "stream": stream}
    elif client == "anthropic":
        path, body = "/v1/messages", {"model": model, "max_tokens": 1024, "messages": msgs, "stream": stream}
    elif client == "gemini":
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        path, body = f"/v1beta/models/{model}:{verb}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    elif client == "ollama":
        path, body = "/api/chat", {"model": model, "messages": msgs, "stream": stream}
    else:
        raise ValueError(client)
    return path, orjson.dumps(body)


@dataclass
class Answer:
    status: int = 0
    body_bytes: int = 0
    complete: bool = False


async def http_answer(port: int, client: str, model: str, stream: bool) -> Answer:
    """One request on a fresh connection (``connection: close``), the answer read to EOF and dropped."""
    path, body = request(client, model, stream)
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer sk-perf\r\nanthropic-version: 2023-06-01\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    answer = Answer()
    conn = await trio.open_tcp_stream("127.0.0.1", port)
    async with conn:
        await conn.send_all(head + body)
        first = b""
        tail = b""
        while True:
            data = await conn.receive_some(READ)
            if not data:
                break
            answer.body_bytes += len(data)
            if len(first) < 64:
                first += data[:64]
            tail = (tail + data)[-TAIL:]
    answer.status = int(first.split(b" ", 2)[1]) if first.startswith(b"HTTP/1.1 ") else 0
    answer.complete = answer.status == 200 and (ENDS[client] in tail if stream else tail.rstrip().endswith(b"}"))
    return answer


async def ws_answer(port: int, model: str) -> Answer:
    from muxtrio import client as mux_client

    answer = Answer(status=200)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with mux_client.connect(f"ws://127.0.0.1:{port}/v1/ws") as mux, mux.stream("openai-chat", body) as events:
        async for chunk in events:
            for choice in chunk.get("choices", ()):
                answer.body_bytes += len((choice.get("delta") or {}).get("content") or "")
        answer.complete = events.finished
    return answer


def answer_call(port: int, client: str, model: str, stream: bool) -> Callable[[], Awaitable[Answer]]:
    if client == "ws":
        return lambda: ws_answer(port, model)
    return lambda: http_answer(port, client, model, stream)


def pairs(only: set[str] | None) -> list[tuple[str, str, bool]]:
    """(provider, client, stream): the OpenAI provider to every client, every provider to OpenAI Chat."""
    out = [("openai", c, s) for c in CLIENTS for s in (True, False) if not (c == "ws" and not s)]
    out += [(p, "chat", s) for p in ("anthropic", "gemini", "ollama") for s in (True, False)]
    return [p for p in out if only is None or p[1] in only or p[0] in only]


def answer_bytes(tokens: int) -> int:
    return len(fake.answer_text(f"fake-n{tokens}"))


def budget_of(client: str, stream: bool, tokens: int) -> int:
    if stream and client != "responses":
        return BUDGET
    return 2 * answer_bytes(tokens)


# ---------------------------------------------------------------------------------------------- in-process
def _site(stat: tracemalloc.Statistic) -> str:
    frame = stat.traceback[0]
    return f"{frame.filename.split('/site-packages/')[-1].split('/muxtrio/', 1)[-1]}:{frame.lineno}"


async def _inproc(config_path: Path, cases: list[tuple[str, str, bool]], tokens: int,
                  where: bool) -> list[dict[str, Any]]:
    from muxtrio.config import load_config
    from muxtrio.server import listener
    from muxtrio.server.app import MuxApp
    from muxtrio.server.runner import hypercorn_config

    config = load_config(config_path)
    app = MuxApp(config)
    stop, now = trio.Event(), trio.Event()
    results: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: listener.serve(app, hypercorn_config(config), http2=False, sockets=None,
                                                  stop=stop, now=now))
        await trio.sleep(0.5)
        for provider, client, stream in cases:
            warm = await answer_call(MUX_PORT, client, model_name(provider, 5), stream)()
            if not warm.complete:
                raise RuntimeError(f"warm-up {provider}->{client} stream={stream} incomplete: {warm}")
            gc.collect()
            snapshots: list[tuple[int, tracemalloc.Snapshot]] = []
            stop_sampling = trio.Event()

            async def sample(stop_sampling: trio.Event = stop_sampling,
                             snapshots: list[tuple[int, tracemalloc.Snapshot]] = snapshots) -> None:
                while not stop_sampling.is_set():
                    with trio.move_on_after(0.25):
                        await stop_sampling.wait()
                    if not stop_sampling.is_set():
                        snapshots.append((tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()))

            tracemalloc.start(1)
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            async with trio.open_nursery() as inner:
                if where:
                    inner.start_soon(sample)
                answer = await answer_call(MUX_PORT, client, model_name(provider, tokens), stream)()
                stop_sampling.set()
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            row: dict[str, Any] = {"provider": provider, "client": client, "stream": stream, "peak": peak,
                                   "budget": budget_of(client, stream, tokens), "answer_bytes": answer.body_bytes,
                                   "complete": answer.complete, "seconds": round(seconds, 1)}
            if where and snapshots:
                traced, snap = max(snapshots, key=lambda s: s[0])
                row["where_traced"] = traced - base
                row["where"] = [(_site(s), s.size) for s in snap.statistics("lineno")[:20]]
            results.append(row)
            print(_line(row), flush=True)
        stop.set()
        now.set()
        nursery.cancel_scope.cancel()
    return results


def _line(row: dict[str, Any]) -> str:
    verdict = "ok" if row["peak"] <= row["budget"] else "OVER"
    text = (f"{row['provider']:>9} -> {row['client']:<11} {'stream' if row['stream'] else 'non-stream':<10} "
            f"peak {row['peak'] / 1024:8.0f} KB  budget {row['budget'] / 1024:6.0f} KB {verdict:<4} "
            f"answer {row['answer_bytes'] / 1024:6.0f} KB  complete={row['complete']}")
    for site, size in row.get("where", ()):
        text += f"\n      {size / 1024:8.0f} KB  {site}"
    return text


def run_inproc(cases: list[tuple[str, str, bool]], tokens: int, where: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, FAKE_PORT, "1", "fake-provider")
            cfg = Path(tmp) / "muxtrio.yaml"
            cfg.write_text(_config(tokens, Path(tmp)))
            return trio.run(_inproc, cfg, cases, tokens, where)
        finally:
            procs.stop_all()


def _config(tokens: int, tmp: Path) -> str:
    models = tuple(model_name(p, n) for p in PROVIDER_PREFIX for n in (5, tokens))
    return targets.muxtrio_config(MUX_PORT, 1, FAKE_PORT, usage_db=tmp / "usage.db", models=models)


# ---------------------------------------------------------------------------------------------- RSS
def run_rss(cases: list[tuple[str, str, bool]], tokens: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            targets.start_fake(procs, FAKE_PORT, "1", "fake-provider")
            cfg = Path(tmp) / "muxtrio.yaml"
            cfg.write_text(_config(tokens, Path(tmp)))
            exe = Path(sys.executable).with_name("muxtrio")
            for provider, client, stream in cases:
                proc = procs.start("muxtrio", [str(exe), "serve", "--config", str(cfg)], "0", cwd=str(targets.ROOT))
                try:
                    wait_http(f"http://127.0.0.1:{MUX_PORT}/v1/chat/completions",
                                      data=json.dumps({"model": model_name("openai", 5),
                                                       "messages": [{"role": "user", "content": "hi"}]}).encode())
                    trio.run(answer_call(MUX_PORT, client, model_name(provider, 5), stream))
                    time.sleep(0.5)
                    idle = rss_kb(proc.pid)
                    peak = [idle]
                    done = threading.Event()

                    def sampler(pid: int = proc.pid, peak: list[int] = peak, done: threading.Event = done) -> None:
                        while not done.wait(0.02):
                            peak[0] = max(peak[0], rss_kb(pid))

                    thread = threading.Thread(target=sampler, daemon=True)
                    thread.start()
                    answer = trio.run(answer_call(MUX_PORT, client, model_name(provider, tokens), stream))
                    time.sleep(0.1)
                    done.set()
                    thread.join()
                    row = {"provider": provider, "client": client, "stream": stream,
                           "peak": (peak[0] - idle) * 1024, "idle_rss": idle * 1024,
                           "budget": budget_of(client, stream, tokens), "answer_bytes": answer.body_bytes,
                           "complete": answer.complete}
                    results.append(row)
                    print(_line(row).replace("peak", "RSS growth"), flush=True)
                finally:
                    procs.stop(proc)
        finally:
            procs.stop_all()
    return results


def table(inproc: list[dict[str, Any]], rss: list[dict[str, Any]], tokens: int) -> str:
    def key(r: dict[str, Any]) -> tuple[str, str, bool]:
        return (r["provider"], r["client"], r["stream"])

    by_rss = {key(r): r for r in rss}
    rows = inproc or rss
    lines = [f"{tokens:,}-token answer ({answer_bytes(tokens) / 1024:.0f} KB of text); KB.", "",
             "| provider → client | mode | tracemalloc peak | RSS growth (fresh server) | budget | met |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        r2 = by_rss.get(key(r))
        peak = f"{r['peak'] / 1024:.0f}" if inproc else "-"
        grown = f"{r2['peak'] / 1024:.0f}" if r2 else "-"
        # The verdict is on resident memory when it was measured: tracemalloc also counts what orjson reserves and
        # never touches (see perf/README.md, "Large answers").
        judged = r2["peak"] if r2 else r["peak"]
        lines.append(f"| {r['provider']} → {r['client']} | {'stream' if r['stream'] else 'non-stream'} | {peak} | "
                     f"{grown} | {r['budget'] / 1024:.0f} | {'yes' if judged <= r['budget'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="working memory of a 100K-token answer per format")
    ap.add_argument("--mode", choices=("inproc", "rss", "both"), default="both")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--where", action="store_true", help="allocation sites at the largest snapshot (slow)")
    ap.add_argument("--only", help="comma-separated client or provider names")
    ap.add_argument("--stream-only", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cases = pairs(set(args.only.split(",")) if args.only else None)
    if args.stream_only:
        cases = [c for c in cases if c[2]]
    inproc = run_inproc(cases, args.tokens, args.where) if args.mode in ("inproc", "both") else []
    rss = run_rss(cases, args.tokens) if args.mode in ("rss", "both") else []
    print(table(inproc, rss, args.tokens))
    if args.json:
        args.json.write_text(json.dumps({"inproc": inproc, "rss": rss}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

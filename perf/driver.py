"""The Python load driver, for what wrk cannot express: time to first token, counted stream events, 1,000 slow
streams held open at once, a client that stops reading, a 1 MB request body and a 20 MB event.

trio sockets plus h11 for the HTTP/1.1 framing (client side only; it runs on cpu1 beside the fake provider, and the
scenarios that use it are not CPU-bound on the client). Every call is bounded by a deadline and all traffic goes to
127.0.0.1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import orjson
import trio

HOST = "127.0.0.1"


@dataclass
class Reply:
    status: int = 0
    content_type: str = ""
    first_token: float | None = None  # seconds from request start to the first content marker
    total: float = 0.0  # seconds from request start to the end of the body
    body_bytes: int = 0
    events: int = 0  # SSE `data:` lines, or NDJSON lines
    body: bytes = b""  # kept only when asked (small replies)
    complete: bool = False


class _Counter:
    """Counts a separator across chunk boundaries without joining the whole body."""

    def __init__(self, sep: bytes) -> None:
        self.sep = sep
        self.tail = b""
        self.count = 0

    def feed(self, data: bytes) -> None:
        buf = self.tail + data if self.tail else data
        self.count += buf.count(self.sep)
        self.tail = buf[-(len(self.sep) - 1) :] if len(self.sep) > 1 else b""


def _request_bytes(method: str, path: str, body: bytes) -> list[h11.Event]:
    headers = [("host", HOST), ("content-type", "application/json"), ("content-length", str(len(body))),
               ("authorization", "Bearer sk-perf")]
    return [h11.Request(method=method, target=path, headers=headers), h11.Data(data=body), h11.EndOfMessage()]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: trio.SocketStream | None = None
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 << 20)

    async def open(self) -> None:
        self.stream = await trio.open_tcp_stream(HOST, self.port)

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None

    async def send(self, method: str, path: str, body: bytes) -> None:
        if self.stream is None:
            await self.open()
        assert self.stream is not None
        out = b"".join(self.h11.send(e) or b"" for e in _request_bytes(method, path, body))
        await self.stream.send_all(out)

    async def _next(self) -> h11.Event:
        assert self.stream is not None
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(1 << 16))
                continue
            return event  # type: ignore[return-value]

    async def head(self, reply: Reply) -> None:
        """Read up to the response headers."""
        while True:
            event = await self._next()
            if isinstance(event, h11.Response):
                reply.status = event.status_code
                reply.content_type = dict(event.headers).get(b"content-type", b"").decode()
                return
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("connection closed before the response")

    async def body(self, reply: Reply, t0: float, marker: bytes, keep: bool,
                   on_first: Callable[[], None] | None = None) -> None:
        """Read the body to its end, counting events and timing the first ``marker``."""
        counter = _Counter(b"\n" if "ndjson" in reply.content_type else b"data:")
        marker_tail = b""
        kept: list[bytes] = []
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                data = bytes(event.data)
                reply.body_bytes += len(data)
                counter.feed(data)
                if reply.first_token is None and marker in marker_tail + data:
                    reply.first_token = time.perf_counter() - t0
                    if on_first is not None:
                        on_first()
                marker_tail = data[-len(marker) :]
                if keep:
                    kept.append(data)
            elif isinstance(event, h11.EndOfMessage):
                reply.complete = True
                break
            elif isinstance(event, h11.ConnectionClosed):
                break
        reply.total = time.perf_counter() - t0
        reply.events = counter.count
        if keep:
            reply.body = b"".join(kept)
        if reply.complete and self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        else:
            await self.aclose()
            self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 << 20)

    async def call(self, path: str, body: bytes, *, marker: bytes = b"tok0", keep: bool = False,
                   on_first: Callable[[], None] | None = None) -> Reply:
        reply = Reply()
        t0 = time.perf_counter()
        await self.send("POST", path, body)
        await self.head(reply)
        await self.body(reply, t0, marker, keep, on_first)
        return reply


def chat(model: str, *, stream: bool, max_tokens: int | None = None, content: str = "hi") -> bytes:
    obj: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    if max_tokens is not None:
        obj["max_tokens"] = max_tokens
    return orjson.dumps(obj)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------------------- scenarios
async def sequential(port: int, path: str, body: bytes, n: int, warmup: int = 5, *, marker: bytes = b"tok0",
                     deadline: float = 120.0, gap: float = 0.0) -> dict[str, Any]:
    """``n`` requests one after another on one keep-alive connection: first-token and total latency."""
    first: list[float] = []
    total: list[float] = []
    events: list[int] = []
    failures = 0
    conn = Conn(port)
    with trio.move_on_after(deadline) as scope:
        for i in range(n + warmup):
            reply = await conn.call(path, body, marker=marker)
            if reply.status != 200 or not reply.complete:
                failures += 1
            elif i >= warmup:
                total.append(reply.total * 1000)
                events.append(reply.events)
                if reply.first_token is not None:
                    first.append(reply.first_token * 1000)
            if gap:
                await trio.sleep(gap)
    await conn.aclose()
    r3 = {"n": len(total), "failures": failures, "timed_out": scope.cancelled_caught}
    for name, values in (("ttft", first), ("total", total)):
        r3[f"{name}_p50_ms"] = _round(pct(values, 50))
        r3[f"{name}_p99_ms"] = _round(pct(values, 99))
    r3["events_per_reply"] = events[0] if events else 0
    return r3


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


@dataclass
class Held:
    """Result of :func:`hold_streams`."""

    opened: int = 0
    started: int = 0
    failed: int = 0
    ramp_s: float = 0.0
    samples: list[Any] = field(default_factory=list)


async def hold_streams(port: int, path: str, body: bytes, n: int, *, ramp_deadline: float, hold_s: float,
                       sample: Callable[[], Any], sample_every: float = 0.5, marker: bytes = b"data:") -> Held:
    """Open ``n`` streams at once, wait until each got its first event, keep them open for ``hold_s`` while
    calling ``sample()`` (e.g. the server's RSS), then disconnect them all (which must cancel the upstreams)."""
    held = Held()
    all_started = trio.Event()

    def started() -> None:
        held.started += 1
        if held.started == n:
            all_started.set()

    async def one() -> None:
        conn = Conn(port)
        try:
            await conn.open()
            held.opened += 1
            await conn.call(path, body, marker=marker, on_first=started)
        except (OSError, trio.BrokenResourceError, h11.ProtocolError):
            held.failed += 1
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
        with trio.move_on_after(ramp_deadline):
            await all_started.wait()
        held.ramp_s = round(time.perf_counter() - t0, 2)
        end = trio.current_time() + hold_s
        while trio.current_time() < end:
            held.samples.append(await trio.to_thread.run_sync(sample))
            await trio.sleep(sample_every)
        nursery.cancel_scope.cancel()
    return held


async def stalled(port: int, path: str, body: bytes, *, seconds: float, sample: Callable[[], Any],
                  sample_every: float = 0.25) -> list[Any]:
    """Ask for a stream, read only its headers, then stop reading for ``seconds`` while sampling; then hang up."""
    conn = Conn(port)
    samples: list[Any] = []
    with trio.move_on_after(seconds + 30):
        await conn.send("POST", path, body)
        reply = Reply()
        await conn.head(reply)
        end = trio.current_time() + seconds
        while trio.current_time() < end:
            samples.append(await trio.to_thread.run_sync(sample))
            await trio.sleep(sample_every)
    await conn.aclose()
    return samples


async def one_call(port: int, path: str, body: bytes, *, keep: bool = False, deadline: float = 120.0) -> Reply:
    conn = Conn(port)
    reply = Reply()
    with trio.move_on_after(deadline):
        reply = await conn.call(path, body, keep=keep, marker=b"xxxx")
    await conn.aclose()
    return reply

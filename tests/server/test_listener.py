"""The connection supervisor of ``muxtrio.server.listener`` on real loopback sockets: whatever a connection's protocol
handling raises stays with that connection (closed, one escaped WARNING line), and the listener keeps accepting."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.worker_context import WorkerContext

from muxtrio.server import listener
from muxtrio.server.http import DisconnectSignal

GUARD_S = 10  # a hang fails the test instead of blocking the suite


class Exploding(listener.SupervisedConnection):
    """A connection whose protocol handling fails the way Hypercorn 0.18's h2 did (a KeyError, in a group)."""

    async def _serve(self) -> None:
        await self.stream.receive_some(1024)
        raise ExceptionGroup("connection", [KeyError("stream 1\nFORGED LINE")])


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("the app is never reached")


async def test_a_failing_connection_is_closed_alone_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    hc = HypercornConfig()
    handler = partial(Exploding, False, _app, hc, WorkerContext(None), {})
    with trio.fail_after(GUARD_S):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            for attempt in range(3):  # the listener outlives every failure
                with caplog.at_level(logging.WARNING, logger="muxtrio.server"):
                    client = await trio.open_tcp_stream("127.0.0.1", port)
                    async with client:
                        await client.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                        assert await client.receive_some(1024) == b""  # closed by the server, nothing written
                    while len(caplog.records) <= attempt:
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    for line in lines:
        assert line.startswith("closed the connection from 127.0.0.1:"), line
        assert "KeyError: 'stream 1\\nFORGED LINE'" in line and "\n" not in line, line


async def test_the_app_queue_is_bounded_fifo_and_signals_the_disconnect() -> None:
    """An HTTP request's messages reach the app in order; a full queue makes Hypercorn's put wait until the app takes
    one (its bound, as the memory channel had); ``http.disconnect`` fires the request's signal as it is queued."""
    signal = DisconnectSignal()
    queue = listener._AppQueue(signal, 2)
    with trio.fail_after(GUARD_S):
        await queue.put({"type": "http.request", "body": b"1", "more_body": True})
        await queue.put({"type": "http.request", "body": b"2", "more_body": True})
        third_queued = trio.Event()

        async def put_third() -> None:
            await queue.put({"type": "http.request", "body": b"3", "more_body": False})
            third_queued.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put_third)
            await trio.testing.wait_all_tasks_blocked()
            assert not third_queued.is_set(), "a full queue must make the put wait"
            assert (await queue.get())["body"] == b"1"
            await third_queued.wait()
        assert [(await queue.get())["body"] for _ in range(2)] == [b"2", b"3"]
        assert not signal.gone
        got: list[dict[str, object]] = []

        async def get_one() -> None:
            got.append(await queue.get())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get_one)
            await trio.testing.wait_all_tasks_blocked()
            assert not got, "an empty queue makes the app wait"
            await queue.put({"type": "http.disconnect"})
        assert got == [{"type": "http.disconnect"}]
        assert signal.gone


async def test_a_waiting_app_can_be_cancelled() -> None:
    queue = listener._AppQueue(DisconnectSignal(), 1)
    with trio.fail_after(GUARD_S):
        async with trio.open_nursery() as nursery:
            waiting = trio.CancelScope()

            async def wait() -> None:
                with waiting:
                    await queue.get()

            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            waiting.cancel()
        assert waiting.cancelled_caught
        await queue.put({"type": "http.disconnect"})  # the queue still works after a cancelled wait
        assert await queue.get() == {"type": "http.disconnect"}

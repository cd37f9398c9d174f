"""Upstream limits and bounded waits in the engine (issue 11, items 5 and 6), under trio's autojump clock.

A scripted httpx2 transport plays the provider; each test bounds itself with a ``fail_after`` that only detects a
hang (under the autojump clock a hang turns into a jump to that deadline), never a pass condition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import orjson
import pytest
import trio
import trio.testing

from muxtrio.codecs.base import Format
from muxtrio.codecs.registry import get_codec
from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType, Timeouts
from muxtrio.engine.engine import Engine
from muxtrio.engine.stream import Batch, BytePool, ConsumerStalled, EventStream, Failure, StreamMeta
from muxtrio.errors import EventTooLarge, MuxError, ResponseTooLarge, StreamTruncated
from muxtrio.ir import Finish, Message, Request, Role, Text, TextDelta
from tests.engine.fault_provider import FaultProvider, chunk, usage_chunk
from tests.fuzz.hostile_provider import gzip_bomb

HANG_GUARD_S = 10_000.0
KiB = 1024
MiB = 1024 * KiB


def engine_config(**kw: object) -> Config:
    base: dict[str, object] = {
        "providers": (
            ProviderConfig(
                type=ProviderType.OPENAI,
                name="p",
                base_url="http://p.test/v1",
                credentials=(Credential("sk-p-0-secret"),),
                models=(ModelConfig(name="up", alias="m"),),
            ),
        ),
        "echo_model": False,
        "request_retry": 2,
        "max_retry_interval": 1.0,
        "timeouts": Timeouts(connect=5, first_byte=30, idle=10),
    }
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def ask(stream: bool = True) -> Request:
    return Request(model="m", messages=(Message(Role.USER, (Text("hi"),)),), stream=stream)


GOOD = [chunk("up", {"role": "assistant", "content": ""}), chunk("up", {"content": "fine"}),
        chunk("up", {}, "stop"), usage_chunk("up", 1, 1), b"data: [DONE]\n\n"]


class _Pieces(httpx2.AsyncByteStream):
    def __init__(self, parts: list[bytes], script: Scripted) -> None:
        self._parts = parts
        self._script = script

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            self._script.pulled += len(part)
            yield part
            await trio.sleep(0)

    async def aclose(self) -> None:
        self._script.closed += 1


class Scripted(httpx2.AsyncBaseTransport):
    """Answer the n-th request with ``answers[n]`` (the last one repeats): body parts and extra headers."""

    def __init__(self, answers: list[tuple[list[bytes], dict[str, str]]]) -> None:
        self.answers = answers
        self.requests = 0
        self.pulled = 0  # raw body bytes the gateway read
        self.closed = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        parts, headers = self.answers[min(self.requests, len(self.answers) - 1)]
        self.requests += 1
        stream = orjson.loads(await request.aread()).get("stream")
        content_type = "text/event-stream" if stream else "application/json"
        return httpx2.Response(200, headers={"content-type": content_type, **headers}, stream=_Pieces(parts, self))


async def drain(events: EventStream) -> list[object]:
    return [event async for event in events]


async def test_a_refused_giant_event_gives_its_budget_back_and_the_retry_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One 64 KiB piece is larger than the whole 4 KiB pool (it takes all of it); the decoder refuses it (limit
    # 32 KiB). Before the fix that budget was never returned and the retry waited for it forever.
    giant = b"data: {" + b"g" * (64 * KiB)
    transport = Scripted([([giant], {}), (GOOD, {})])
    config = engine_config(stream_buffer_bytes=4096, max_event_bytes=32 * KiB)
    async with Engine(config, transports={"p": transport}) as engine:
        with trio.fail_after(HANG_GUARD_S):
            async with engine.stream(ask()) as events:
                got = await drain(events)
                assert events.pool.statistics().in_use == 0
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "fine"
    assert any(isinstance(e, Finish) for e in got)
    assert transport.requests == 2


async def test_a_giant_event_every_time_ends_with_the_typed_error(autojump_clock: trio.testing.MockClock) -> None:
    transport = Scripted([([b"data: {" + b"g" * (64 * KiB)], {})])
    config = engine_config(stream_buffer_bytes=4096, max_event_bytes=32 * KiB)
    async with Engine(config, transports={"p": transport}) as engine:
        with trio.fail_after(HANG_GUARD_S), pytest.raises(EventTooLarge):
            async with engine.stream(ask()) as events:
                await drain(events)
    assert transport.requests == 3  # retried like any malformed stream: request_retry=2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_gzip_bomb_stops_inflating_at_the_limit(stream: bool, autojump_clock: trio.testing.MockClock) -> None:
    bomb = gzip_bomb(256 * MiB)
    parts = [bomb[i : i + 16 * KiB] for i in range(0, len(bomb), 16 * KiB)]
    transport = Scripted([(parts, {"content-encoding": "gzip"})])
    config = engine_config(request_retry=0, max_event_bytes=MiB, max_response_bytes=2 * MiB)
    async with Engine(config, transports={"p": transport}) as engine:
        with trio.fail_after(HANG_GUARD_S):
            if stream:
                with pytest.raises(EventTooLarge):
                    async with engine.stream(ask()) as events:
                        await drain(events)
            else:
                with pytest.raises(ResponseTooLarge):
                    await engine.complete(ask(stream=False))
    # Decompression stopped at the limit: a few 16 KiB pieces (each inflates to ~16 MiB) of the ~250 KB bomb.
    assert transport.pulled < len(bomb) // 4
    assert transport.closed == 1


async def test_a_client_that_stops_reading_is_abandoned_after_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FaultProvider()
    big = ProviderConfig(type=ProviderType.OPENAI, name="p", base_url="http://p.test/v1",
                         credentials=(Credential("sk-p-0-secret"),), models=(ModelConfig(name="big4096", alias="m"),))
    cfg = engine_config(stream_buffer_bytes=4096, providers=(big,))
    async with Engine(cfg, transports={"p": fake}) as engine, engine.stream(ask()) as events:
        assert await events.next_batch()
        with trio.fail_after(HANG_GUARD_S):
            await fake.seen[0].closed.wait()  # the reader gave up on its consumer and closed the upstream
        assert trio.current_time() >= 10  # not before the idle timeout
        with pytest.raises(MuxError) as caught:
            while await events.next_batch() is not None:
                pass
        assert "read nothing" in caught.value.message or isinstance(caught.value, StreamTruncated)
    assert len(fake.seen) == 1  # a stalled client is not the provider's fault: no failover


async def test_a_channel_that_ends_without_completion_is_a_truncation() -> None:
    send, receive = trio.open_memory_channel[Batch | Failure](4)
    events = EventStream(receive, BytePool(4096), StreamMeta())
    await send.send(Batch([TextDelta(0, "partial")]))
    await send.aclose()  # the producer vanished without marking the stream completed or reporting a failure
    assert await events.next_batch() == [TextDelta(0, "partial")]
    with pytest.raises(StreamTruncated):
        await events.next_batch()


async def test_a_consumer_that_frees_nothing_stalls_the_pool_wait_with_a_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pool = BytePool(1024)
    assert pool.try_acquire(1024) == 1024
    with pytest.raises(ConsumerStalled):
        await pool.acquire(1, 7.0)
    assert trio.current_time() == pytest.approx(7.0)


@pytest.mark.parametrize("fmt", list(Format), ids=[f.value for f in Format])
def test_every_provider_decoder_takes_the_configured_event_limit(fmt: Format) -> None:
    decoder = get_codec(fmt).new_decoder("seed", max_event_bytes=1024)
    line = (b"" if fmt is Format.OLLAMA else b"data: ") + b'{"x":"' + b"x" * 2048
    with pytest.raises(EventTooLarge):
        decoder.feed(line)
    default = get_codec(fmt).new_decoder("seed")
    default.feed(line)  # the same line is fine under the default limit (20 MiB): the argument is what applies

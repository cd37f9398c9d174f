"""The pass-through reader (``engine/passthrough.py``) over every provider transcript of the pass-through formats
(``tests/fixtures/transcripts/wire``), cut into chunks at every position and at random positions.

Whatever the split: the events are the decoder's own for the whole stream; ``raw`` then ``tail`` put together are
the provider's bytes (less the OpenAI usage chunk a client did not ask for); the frame that ended the answer and all
after it are in ``tail`` only; nothing is forwarded before its frame is complete; and a provider's error frame is
never forwarded.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from muxtrio.codecs.base import Format, RequestHints
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.engine import Engine
from muxtrio.engine.passthrough import PassThrough, RawReader, offer
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import EventTooLarge, MuxError
from muxtrio.ir.events import Event, Finish, TextDelta
from muxtrio.ir.request import Request
from tests.engine.fault_provider import FaultProvider
from tests.engine.test_engine import ask, config, provider

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "wire"
FORMATS = {"openai": Format.OPENAI_CHAT, "anthropic": Format.ANTHROPIC, "gemini": Format.GEMINI,
           "ollama": Format.OLLAMA}  # fmt: skip
ANSWERS = ("text", "think", "tool_call", "think_tool_call", "two_tool_calls", "tool_answer")
CASES = [(api, name) for api in FORMATS for name in ANSWERS]


def _transcript(api: str, name: str) -> bytes:
    ext = "ndjson" if api == "ollama" else "sse"
    return (WIRE / api / f"{name}.{ext}").read_bytes()


def _request(fmt: Format, include_usage: bool = True) -> Request:
    """A client request (the reader reads only ``include_usage`` of it, which OpenAI Chat clients choose)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return get_codec(Format.OPENAI_CHAT).parse_request(orjson.dumps(body), RequestHints())


def _whole(fmt: Format, data: bytes) -> list[Event]:
    decoder = get_codec(fmt).new_decoder("seed")
    return [*decoder.feed(data), *decoder.flush()]


def _read(fmt: Format, chunks: list[bytes], include_usage: bool = True) -> tuple[list[Event], bytes, bytes]:
    reader = RawReader(get_codec(fmt).new_decoder("seed"), fmt, _request(fmt, include_usage), 1 << 20)
    events: list[Event] = []
    raw = tail = b""
    for chunk in chunks:
        got, frames, closing = reader.feed(chunk)
        assert frames is not None, "pass-through turned off on a clean stream"
        events += got
        raw += frames
        tail += closing
        if not tail:  # nothing of the answer's end was held back yet: then it has not ended
            assert not any(type(e) is Finish for e in events)
    got, frames, closing = reader.flush()
    assert frames is not None
    return [*events, *got], raw + frames, tail + closing


def _splits(data: bytes, seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 12))))
        out.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return out


@pytest.mark.parametrize(("api", "name"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_any_split_gives_the_providers_bytes_and_the_decoders_events(api: str, name: str) -> None:
    fmt = FORMATS[api]
    data = _transcript(api, name)
    expected = _whole(fmt, data)
    for chunks in _splits(data, hash((api, name)) & 0xFFFF):
        events, raw, tail = _read(fmt, chunks)
        assert events == expected
        assert raw + tail == data
        assert tail and data.endswith(tail)
        # The tail starts at the frame that ended the answer: before it, no Finish; with its first frame, Finish.
        head = data[: len(data) - len(tail)]
        separator = b"\n" if api == "ollama" else (b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n")
        first = tail[: tail.index(separator) + len(separator)]
        assert not any(type(e) is Finish for e in get_codec(fmt).new_decoder("seed").feed(head))
        assert any(type(e) is Finish for e in get_codec(fmt).new_decoder("seed").feed(head + first))


def test_a_partial_frame_waits_for_its_end() -> None:
    data = _transcript("anthropic", "text")
    reader = RawReader(get_codec(Format.ANTHROPIC).new_decoder("s"), Format.ANTHROPIC, _request(Format.ANTHROPIC),
                       1 << 20)
    first_end = data.index(b"\n\n") + 2
    _, raw, _ = reader.feed(data[: first_end + 5])
    assert raw == data[:first_end]
    _, raw, _ = reader.feed(data[first_end + 5 : data.index(b"\n\n", first_end) + 2])
    assert raw == data[first_end : data.index(b"\n\n", first_end) + 2]


def test_an_openai_client_that_did_not_ask_for_usage_does_not_get_the_usage_chunk() -> None:
    data = _transcript("openai", "text")
    events, raw, tail = _read(Format.OPENAI_CHAT, [data], include_usage=False)
    frames = [f + b"\n\n" for f in data.split(b"\n\n") if f]
    usage_frames = [f for f in frames if b'"usage"' in f]
    assert usage_frames and all(f not in raw + tail for f in usage_frames)
    assert raw + tail == b"".join(f for f in frames if f not in usage_frames)
    assert events == _whole(Format.OPENAI_CHAT, data)  # the gateway still sees the usage


@pytest.mark.parametrize("api", list(FORMATS))
def test_a_providers_error_frame_is_never_forwarded(api: str) -> None:
    fmt = FORMATS[api]
    data = _transcript(api, "midstream_error")
    for chunks in _splits(data, 7):
        reader = RawReader(get_codec(fmt).new_decoder("s"), fmt, _request(fmt), 1 << 20)
        forwarded = b""
        with pytest.raises(MuxError):
            for chunk in chunks:
                _, raw, tail = reader.feed(chunk)
                forwarded += (raw or b"") + tail
            reader.flush()
        assert b"error" not in forwarded
        assert data.startswith(forwarded)


def test_a_cut_stream_is_truncated_and_its_partial_frame_is_not_forwarded() -> None:
    data = _transcript("openai", "text")
    cut = data[: data.index(b"\n\n", 200) + 10]
    reader = RawReader(get_codec(Format.OPENAI_CHAT).new_decoder("s"), Format.OPENAI_CHAT,
                       _request(Format.OPENAI_CHAT), 1 << 20)
    _, raw, tail = reader.feed(cut)
    assert raw is not None and raw.endswith(b"\n\n") and len(raw) == len(cut) - 8 and tail == b""
    with pytest.raises(MuxError):  # the decoder refuses the partial frame (or, without one, says truncated)
        reader.flush()


def test_an_unexpected_line_ending_turns_pass_through_off_and_decoding_goes_on() -> None:
    data = _transcript("openai", "text")
    first_end = data.index(b"\n\n") + 2
    rest = data[first_end:].replace(b"\n", b"\r\n")
    reader = RawReader(get_codec(Format.OPENAI_CHAT).new_decoder("s"), Format.OPENAI_CHAT,
                       _request(Format.OPENAI_CHAT), 1 << 20)
    events, raw, _ = reader.feed(data[:first_end])
    assert raw == data[:first_end]
    more, raw, _ = reader.feed(rest)
    assert raw is None and not reader.passing
    assert [*events, *more, *reader.flush()[0]] == _whole(Format.OPENAI_CHAT, data)


def test_a_partial_frame_over_the_event_limit_ends_pass_through_and_the_decoder_refuses_it() -> None:
    reader = RawReader(get_codec(Format.OPENAI_CHAT).new_decoder("s", max_event_bytes=1000), Format.OPENAI_CHAT,
                       _request(Format.OPENAI_CHAT), 1000)
    with pytest.raises(EventTooLarge):
        reader.feed(b"data: " + orjson.dumps({"x": "y" * 2000}))


def test_offer_is_for_the_default_dialects_only() -> None:
    def shown(meta: StreamMeta) -> str:
        return meta.model

    chat = _request(Format.OPENAI_CHAT)
    assert offer(True, Format.OPENAI_CHAT, chat, shown) is not None
    assert offer(False, Format.OPENAI_CHAT, chat, shown) is None
    legacy = get_codec(Format.OPENAI_CHAT).parse_request(b'{"model":"m","prompt":"hi"}',
                                                         RequestHints(endpoint="completions"))
    assert offer(True, Format.OPENAI_CHAT, legacy, shown) is None
    responses = get_codec(Format.OPENAI_RESPONSES).parse_request(b'{"model":"m","input":"hi"}', RequestHints())
    assert offer(True, Format.OPENAI_RESPONSES, responses, shown) is None
    generate = get_codec(Format.OLLAMA).parse_request(b'{"model":"m","prompt":"hi"}', RequestHints(endpoint="generate"))
    assert offer(True, Format.OLLAMA, generate, shown) is None


async def test_a_slow_consumer_of_provider_bytes_bounds_memory_and_backpressures_the_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The engine's byte pool bounds a pass-through stream as it bounds a translated one: batches carry the
    provider's bytes, the reader stops while the consumer stalls, and the whole answer arrives once it reads."""
    fake = FaultProvider()
    cfg = config(provider("p", {"big1024": "big1024"}), stream_buffer_bytes=4096)
    passthrough = PassThrough(Format.OPENAI_CHAT, lambda meta: meta.model)
    async with Engine(cfg, transports={"p": fake}) as engine, engine.stream(
        ask("big1024"), passthrough=passthrough
    ) as events:
        first = await events.next_items()
        assert first and all(item.raw is not None for item in first)
        await trio.sleep(4)  # the consumer stalls (less than the idle timeout); the reader must stop
        stats = events.pool.statistics()
        sent_while_stalled = fake.seen[0].sent_tokens
        await trio.sleep(4)
        assert fake.seen[0].sent_tokens == sent_while_stalled
        assert stats.in_use <= stats.capacity and stats.waits >= 1
        assert sent_while_stalled < 16 * 1024
        frames = sum((item.raw or b"").count(b"data: ") for item in first)
        tail = b""
        while (items := await events.next_items()) is not None:
            assert all(item.raw is not None for item in items)
            frames += sum((item.raw or b"").count(b"data: ") for item in items)
            tail += b"".join(item.tail for item in items)
            assert events.pool.statistics().peak <= events.pool.capacity
    assert fake.seen[0].sent_tokens == 1024 * 1024 // 6
    # Every provider frame went through: the role chunk, one per token, the finish chunk (the usage chunk that
    # muxtrio asked for is not forwarded to a client that did not ask); [DONE] is held for the end.
    assert tail == b"data: [DONE]\n\n" and frames == 1024 * 1024 // 6 + 2


async def test_a_renamed_model_or_another_format_is_not_passed_through(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "ok"})), transports={"p": fake}) as engine:
        for passthrough in (
            PassThrough(Format.OPENAI_CHAT, lambda meta: "m"),  # the client must see its alias, not "ok"
            PassThrough(Format.ANTHROPIC, lambda meta: meta.model),  # the provider speaks OpenAI Chat
        ):
            async with engine.stream(ask("m"), passthrough=passthrough) as events:
                items = [item for batch in [await events.next_items()] if batch for item in batch]
                while (more := await events.next_items()) is not None:
                    items += more
            assert items and all(item.raw is None and not item.tail for item in items)


def test_a_large_frame_in_many_reads_is_joined_once_and_forwarded_whole() -> None:
    """A big event arriving in many reads is kept as the list of reads until its end comes (joining it on every
    read made a 20 MB event cost seconds), then forwarded whole and exact."""
    text = "x" * 300_000
    frame = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' + (
        b'"delta":{"content":"' + text.encode() + b'"},"finish_reason":null}]}\n\n'
    )
    reader = RawReader(get_codec(Format.OPENAI_CHAT).new_decoder("s"), Format.OPENAI_CHAT, _request(Format.OPENAI_CHAT),
                       1 << 20)  # fmt: skip
    pieces = [frame[i : i + 4096] for i in range(0, len(frame), 4096)]
    for piece in pieces[:-1]:
        assert reader.feed(piece) == ([], b"", b"")
    first = reader._rest
    assert len(first) == 4096 and reader._more_size == len(frame) - 4096 - len(pieces[-1])  # nothing re-joined
    events, raw, tail = reader.feed(pieces[-1])
    assert raw == frame and tail == b""
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text

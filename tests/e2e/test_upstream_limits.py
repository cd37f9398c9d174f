"""Upstream limits and decode errors through the real gateway (issue 11, items 5 and 6): an oversized event or line,
a gzip bomb and an oversized body end the attempt with a typed, retryable error and the client gets a clean error in
its own shape — never a hang, never keepalive pings forever, never a truncated answer that looks finished — and the
configured ``max-event-size`` / ``max-response-size`` are what is enforced.

The provider is :mod:`tests.fuzz.hostile_provider` (raw bytes on a loopback socket); the hang guard is a
``fail_after`` that only detects a hang, it is never what makes a test pass.
"""

from __future__ import annotations

import httpx2
import openai
import orjson
import pytest
import trio

from tests.e2e.clients import openai_async_client
from tests.fuzz.hostile_provider import (
    APIS,
    COMPLETE,
    ERROR,
    HANG,
    Seen,
    Step,
    chat_outcome,
    chat_text,
    chunked,
    close_delimited,
    gzip_bomb,
    gzip_bytes,
    hostile_gateway,
    model_for,
    split,
    stream_content_type,
    transcript,
    whole,
)

HANG_GUARD_S = 60.0
MiB = 1 << 20
PER_API = pytest.mark.parametrize("api", list(APIS))


def first_frame(api: str) -> bytes:
    body = transcript(api, stream=True)
    if APIS[api][2] == "ndjson":
        return body[: body.index(b"\n") + 1]
    sep = b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n"
    return body[: body.index(sep) + len(sep)]


def giant_line(api: str, size: int) -> bytes:
    """The start of one event (or NDJSON line) of ``size`` bytes that never ends."""
    return (b"" if APIS[api][2] == "ndjson" else b"data: ") + b'{"x":"' + b"x" * size


async def ask(url: str, api: str, *, stream: bool) -> tuple[int, bytes]:
    body = {"model": model_for(api), "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with trio.fail_after(HANG_GUARD_S):
        async with httpx2.AsyncClient(timeout=None) as client:
            response = await client.post(url + "/v1/chat/completions", content=orjson.dumps(body))
            return response.status_code, response.content


@PER_API
async def test_a_giant_line_then_a_good_answer_is_retried_and_never_hangs(api: str) -> None:
    """The issue's hang: the decoder refuses an oversized event while the reader holds the whole (small) stream
    buffer; the retry must not wait for budget that was never given back."""

    def script(seen: Seen) -> list[Step]:
        if len(provider.seen) == 1:
            parts = split(giant_line(api, 2 * MiB), 64 * 1024)
            return [*chunked(parts, stream_content_type(api), terminate=False), HANG]
        return chunked([transcript(api, stream=True)], stream_content_type(api))

    async with hostile_gateway(
        max_event_bytes=MiB, stream_buffer_bytes=4096, request_retry=1, max_retry_interval=0.1
    ) as (url, provider):
        provider.script = script
        status, body = await ask(url, api, stream=True)
        assert chat_outcome(status, body, stream=True) == COMPLETE
        assert chat_text(body) == f"Hello from the fake {api} provider."
        assert len(provider.seen) == 2
        # The gateway hung up on the refused stream (it did not keep reading the 2 MB line).
        with trio.fail_after(HANG_GUARD_S):
            await provider.seen[0].hung_up.wait()


@PER_API
async def test_a_giant_line_every_time_is_a_clean_error_with_the_sdk(api: str) -> None:
    async with hostile_gateway(max_event_bytes=MiB, stream_buffer_bytes=4096, request_retry=2,
                               max_retry_interval=0.1) as (url, provider):
        provider.script = lambda seen: chunked(
            [first_frame(api), *split(giant_line(api, 3 * MiB), 64 * 1024)], stream_content_type(api)
        )
        client = openai_async_client(url, "unused")
        with trio.fail_after(HANG_GUARD_S), pytest.raises(openai.APIError) as caught:
            stream = await client.chat.completions.create(
                model=model_for(api), messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for _ in stream:
                pass
        assert "max-event-size" in caught.value.message
        if isinstance(caught.value, openai.APIStatusError):
            # Nothing reached the client before the refusal: every attempt was made, then a real 502.
            assert caught.value.status_code == 502
            assert len(provider.seen) == 3
        else:
            # The first frame carried text (Gemini, Ollama): the stream had started, so it ends with an error
            # event after the first attempt (nothing to continue on), never with a finish.
            assert api in ("gemini", "ollama") and len(provider.seen) == 1


@pytest.mark.parametrize(("limit", "expected"), [(MiB, ERROR), (20 * MiB, COMPLETE)], ids=["1MiB", "20MiB"])
async def test_max_event_size_is_what_is_enforced(limit: int, expected: str) -> None:
    big = orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": [{"index": 0, "delta": {"content": "y" * (5 * MiB)}, "finish_reason": None}]})
    frames = transcript("openai", stream=True).split(b"\n\n")
    body = b"\n\n".join([frames[0], b"data: " + big, *frames[1:]])
    async with hostile_gateway(max_event_bytes=limit) as (url, provider):
        provider.script = lambda seen: close_delimited(split(body, 64 * 1024), b"text/event-stream")
        status, answer = await ask(url, "openai", stream=True)
    assert chat_outcome(status, answer, stream=True) == expected
    if expected == COMPLETE:
        assert chat_text(answer).count("y") == 5 * MiB


@pytest.mark.parametrize(("limit", "expected"), [(MiB, ERROR), (4 * MiB, COMPLETE)], ids=["1MiB", "4MiB"])
async def test_max_response_size_is_what_is_enforced(limit: int, expected: str) -> None:
    answer = orjson.loads(transcript("openai", stream=False))
    answer["choices"][0]["message"]["content"] = "z" * (2 * MiB)
    async with hostile_gateway(max_response_bytes=limit) as (url, provider):
        provider.script = lambda seen: whole(orjson.dumps(answer))
        status, body = await ask(url, "openai", stream=False)
    assert chat_outcome(status, body, stream=False) == expected
    if expected == ERROR:
        assert status == 502 and b"response body over 1048576 bytes" in body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_gzip_bomb_is_refused_at_the_limit(stream: bool) -> None:
    bomb = gzip_bomb(256 * MiB)  # ~250 KB on the wire
    async with hostile_gateway(max_event_bytes=MiB, max_response_bytes=2 * MiB) as (url, provider):
        if stream:
            provider.script = lambda seen: close_delimited(split(bomb, 64 * 1024), b"text/event-stream", b"gzip")
        else:
            provider.script = lambda seen: whole(bomb, encoding=b"gzip")
        status, body = await ask(url, "openai", stream=stream)
    assert chat_outcome(status, body, stream=stream) == ERROR
    assert status == 502
    message = orjson.loads(body)["error"]["message"]
    assert ("larger than 1048576" if stream else "over 2097152") in message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_gzipped_answer_is_relayed(stream: bool) -> None:
    """The bound on decompression does not break legitimate compressed answers."""
    answer = transcript("openai", stream=stream)
    async with hostile_gateway() as (url, provider):
        if stream:
            provider.script = lambda seen: close_delimited([gzip_bytes(answer)], b"text/event-stream", b"gzip")
        else:
            provider.script = lambda seen: whole(gzip_bytes(answer), encoding=b"gzip")
        status, body = await ask(url, "openai", stream=stream)
    assert chat_outcome(status, body, stream=stream) == COMPLETE


async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_clean_502() -> None:
    async with hostile_gateway() as (url, provider):
        provider.script = lambda seen: whole(b"\x1f\x8b this is not gzip at all", encoding=b"gzip")
        status, body = await ask(url, "openai", stream=False)
    assert chat_outcome(status, body, stream=False) == ERROR and status == 502
    assert "does not decode" in orjson.loads(body)["error"]["message"]

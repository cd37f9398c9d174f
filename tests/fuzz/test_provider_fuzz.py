"""Provider-side fuzz: whatever a provider sends, the client gets a complete answer or a clean error.

For every provider API (OpenAI Chat, OpenAI Responses, Anthropic, Gemini, Ollama) the hostile provider answers a
real gateway (Hypercorn on loopback) with a real-shaped transcript that is cut at every frame boundary and at
random byte offsets (by a clean close, a TCP reset, or a chunked body that never ends), corrupted with random bytes,
given a giant line, the wrong content type, random bytes instead of HTTP, or garbage under ``content-encoding``.
A raw HTTP client asks in the OpenAI Chat format, streaming and not.

Invariants, checked by :func:`tests.fuzz.hostile_provider.chat_outcome` on every answer:
- the answer is complete (``[DONE]`` after a finish reason; a JSON completion) or a clean error (the OpenAI error
  shape as a 4xx/5xx, or an error event with no ``[DONE]``), never a 5xx without that shape, never a traceback;
- an answer cut before the provider's last frame is always an error, never presented as finished;
- no hang: each request runs under a ``fail_after`` hang detector (never a pass condition);
- the gateway keeps serving: the untouched transcript still gets its complete answer after all the abuse.

Randomness is seeded (``random.Random(SEED + case)``), so a failure names a reproducible case; the case counts keep
the whole file well under 40 s.
"""

from __future__ import annotations

import random

import httpx2
import orjson
import pytest
import trio

from muxtrio.config import Timeouts
from tests.fuzz.hostile_provider import (
    APIS,
    COMPLETE,
    ERROR,
    HANG,
    RESET,
    Step,
    chat_outcome,
    chunked,
    close_delimited,
    gzip_bytes,
    head,
    hostile_gateway,
    model_for,
    split,
    stream_content_type,
    transcript,
    whole,
)

SEED = 20261206
HANG_GUARD_S = 30.0
RANDOM_CUTS = 12
CORRUPTIONS = 12
MAX_EVENT = 64 * 1024
PER_API = pytest.mark.parametrize("api", list(APIS))


def frame_ends(api: str, body: bytes) -> list[int]:
    """Offsets just after each frame (SSE event or NDJSON line) of ``body``."""
    sep = b"\n" if APIS[api][2] == "ndjson" else (b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n")
    ends: list[int] = []
    at = body.find(sep)
    while at >= 0:
        ends.append(at + len(sep))
        at = body.find(sep, at + len(sep))
    return ends


async def ask(client: httpx2.AsyncClient, url: str, api: str, stream: bool) -> str:
    request = {"model": model_for(api), "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with trio.fail_after(HANG_GUARD_S):
        response = await client.post(url + "/v1/chat/completions", content=orjson.dumps(request), timeout=None)
    return chat_outcome(response.status_code, response.content, stream)


def cut_stream(api: str, body: bytes, at: int, how: int) -> list[Step]:
    """``body`` cut after ``at`` bytes: a clean close (close-delimited body), a reset, or an unfinished chunked
    body followed by a close."""
    content_type = stream_content_type(api)
    parts: list[Step] = [body[:at]] if at else []
    if how == 0:
        return close_delimited(parts, content_type)
    if how == 1:
        return [*close_delimited(parts, content_type), RESET]
    return chunked(parts, content_type, terminate=False)


@PER_API
async def test_a_stream_cut_anywhere_is_complete_or_an_error_never_a_false_finish(api: str) -> None:
    body = transcript(api, stream=True)
    ends = frame_ends(api, body)
    last_frame_start = ends[-2] if len(ends) > 1 else 0
    rng = random.Random(SEED)
    cuts = sorted({0, *ends[:-1], *(rng.randrange(1, len(body)) for _ in range(RANDOM_CUTS))})
    async with hostile_gateway(max_event_bytes=MAX_EVENT) as (url, provider), httpx2.AsyncClient() as client:
        for n, at in enumerate(cuts):
            how = n % 3
            provider.script = lambda seen, at=at, how=how: cut_stream(api, body, at, how)
            outcome = await ask(client, url, api, stream=True)
            if at < last_frame_start:
                assert outcome == ERROR, f"cut at {at}/{len(body)} ({how=}) was presented as finished"
        provider.script = lambda seen: close_delimited([body], stream_content_type(api))
        assert await ask(client, url, api, stream=True) == COMPLETE  # still serving, and the baseline is complete


@PER_API
async def test_a_whole_answer_cut_or_corrupted_is_a_clean_error(api: str) -> None:
    body = transcript(api, stream=False)
    rng = random.Random(SEED + 1)
    async with hostile_gateway() as (url, provider), httpx2.AsyncClient() as client:
        for n in range(RANDOM_CUTS):
            at = rng.randrange(0, len(body))
            length = str(len(body)).encode()
            # Content-Length promises the whole body; the connection ends early (cleanly or by reset).
            steps: list[Step] = [head(200, {b"content-type": b"application/json", b"content-length": length}),
                                 body[:at]]
            if n % 2:
                steps.append(RESET)
            provider.script = lambda seen, steps=steps: steps
            assert await ask(client, url, api, stream=False) == ERROR
        for _ in range(CORRUPTIONS):
            corrupt = bytearray(body)
            for _ in range(rng.randrange(1, 8)):
                corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
            provider.script = lambda seen, data=bytes(corrupt): whole(data)
            await ask(client, url, api, stream=False)  # either outcome, but a clean one
        provider.script = lambda seen: whole(body)
        assert await ask(client, url, api, stream=False) == COMPLETE


@PER_API
async def test_random_bytes_in_a_stream_end_it_cleanly(api: str) -> None:
    body = transcript(api, stream=True)
    rng = random.Random(SEED + 2)
    async with hostile_gateway(max_event_bytes=MAX_EVENT) as (url, provider), httpx2.AsyncClient() as client:
        for n in range(CORRUPTIONS):
            at = rng.randrange(len(body))
            noise = rng.randbytes(rng.randrange(1, 64))
            if n % 3 == 0:
                noise = noise.replace(b"\n", b"") + b"\n\n"  # a whole garbage frame
            mutated = body[:at] + noise + body[at:]
            parts = split(mutated, rng.randrange(1, 200))
            provider.script = lambda seen, parts=parts: close_delimited(parts, stream_content_type(api))
            await ask(client, url, api, stream=True)
        provider.script = lambda seen: close_delimited([body], stream_content_type(api))
        assert await ask(client, url, api, stream=True) == COMPLETE


def _hostile_answers(api: str) -> dict[str, list[Step]]:
    stream_body = transcript(api, stream=True)
    sse = stream_content_type(api)
    giant = (b"" if APIS[api][2] == "ndjson" else b"data: ") + b"{" + b"g" * (4 * MAX_EVENT)
    return {
        "giant line": close_delimited(split(giant, 16 * 1024), sse),
        "giant line, then silence": [*chunked(split(giant, 16 * 1024), sse, terminate=False), HANG],
        "html instead of a stream": whole(b"<html><body>502 Bad Gateway</body></html>", b"text/html"),
        "json instead of a stream": whole(transcript(api, stream=False)),
        "random bytes, 200": close_delimited([random.Random(SEED + 3).randbytes(4096)], sse),
        "not HTTP at all": [random.Random(SEED + 4).randbytes(512)],
        "garbage under gzip": close_delimited([b"\x1f\x8b\x08\x00" + b"\xff" * 64], sse, b"gzip"),
        "a valid gzip stream cut in the middle": close_delimited([gzip_bytes(stream_body)[:200]], sse, b"gzip"),
        "an unknown content-encoding": close_delimited([stream_body], sse, b"x-muxtrio-unknown"),
        "reset before the status line": [RESET],
        "status then reset": [head(200, {b"content-type": sse}), RESET],
        "an HTML 500": whole(b"<html>oops</html>", b"text/html", status=500),
        "a 200 with an empty body": whole(b"", sse),
    }


# What each hostile answer must give (stream, whole); None where either clean outcome is right, SKIP where the case
# is not asked that way.
SKIP = "skip"
EXPECTED: dict[str, tuple[str | None, str | None]] = {
    "json instead of a stream": (ERROR, COMPLETE),  # a whole answer is the right answer to a non-stream request
    "an unknown content-encoding": (None, None),  # httpx2 passes encodings it does not know through untouched
    "giant line, then silence": (ERROR, SKIP),  # a whole body that never ends is the idle timeout's case (below)
}


@PER_API
async def test_hostile_answers_get_a_clean_error(api: str) -> None:
    async with hostile_gateway(max_event_bytes=MAX_EVENT) as (url, provider), httpx2.AsyncClient() as client:
        for name, steps in _hostile_answers(api).items():
            provider.script = lambda seen, steps=steps: steps
            expectations = EXPECTED.get(name, (ERROR, ERROR))
            if api == "ollama" and name == "json instead of a stream":
                expectations = (COMPLETE, COMPLETE)  # Ollama's whole answer is also a valid one-line NDJSON stream
            for stream, expected in zip((True, False), expectations, strict=True):
                if expected == SKIP:
                    continue
                outcome = await ask(client, url, api, stream)
                assert expected is None or outcome == expected, f"{name} ({stream=}) gave {outcome}"
        provider.script = lambda seen: close_delimited([transcript(api, stream=True)], stream_content_type(api))
        assert await ask(client, url, api, stream=True) == COMPLETE


@PER_API
async def test_a_provider_that_goes_silent_gives_a_timeout_error(api: str) -> None:
    body = transcript(api, stream=True)
    half = frame_ends(api, body)[0]
    silences: list[list[Step]] = [
        [HANG],  # nothing at all
        [head(200, {b"content-type": stream_content_type(api)}), HANG],  # a status line, then nothing
        [*chunked([body[:half]], stream_content_type(api), terminate=False), HANG],  # a first frame, then nothing
    ]
    async with hostile_gateway(timeouts=Timeouts(connect=5, first_byte=0.5, idle=0.5)) as (url, provider), \
            httpx2.AsyncClient() as client:
        for steps in silences:
            provider.script = lambda seen, steps=steps: steps
            assert await ask(client, url, api, stream=True) == ERROR

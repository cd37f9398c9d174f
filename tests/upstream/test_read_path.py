"""The upstream read path (issue 19, target 4): :meth:`UpstreamResponse.chunks` hands over everything one socket read
delivered as one piece, never waits for the network while it holds bytes, and still reads a provider cut mid-read as
a cut. The last test goes through the real gateway with the OpenAI SDK, the provider being
:mod:`tests.fuzz.hostile_provider`.

The provider of the other tests is a raw HTTP/1.1 server on 127.0.0.1 whose script is a list of socket writes; a
:class:`trio.Event` in the script holds the rest back until the test has seen the first piece, so a reader that waited
for more bytes before handing over what it had would deadlock (caught by a ``fail_after`` that only detects that
hang, never a pass condition). One write of a few KB on loopback arrives in one read, which is what "one read" means
here.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import openai
import pytest
import trio

from muxtrio.codecs.base import WireRequest
from muxtrio.errors import ResponseTooLarge, UpstreamError
from muxtrio.upstream.client import ClientSettings, UpstreamClient
from tests.e2e.clients import openai_async_client
from tests.fuzz.hostile_provider import APIS, Step, chunked, hostile_gateway, model_for, stream_content_type, transcript

HANG_GUARD_S = 30.0
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
EVENTS = [b'data: {"n":%d,"text":"token %d"}\n\n' % (i, i) for i in range(60)]
Script = list[bytes | trio.Event]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _serve(conn: trio.SocketStream, script: Script) -> None:
    received = b""
    async with conn:
        while b"\r\n\r\n" not in received:  # the request: headers, then a body sized by content-length
            data = await conn.receive_some(65536)
            if not data:
                return
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += await conn.receive_some(65536)
        for step in script:
            if isinstance(step, trio.Event):
                await step.wait()
            else:
                await conn.send_all(step)


@asynccontextmanager
async def provider(script: Script) -> AsyncIterator[UpstreamClient]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), partial(_serve, script=script), 0)
        port = listeners[0].socket.getsockname()[1]
        client = UpstreamClient("fake", ClientSettings(base_url=f"http://127.0.0.1:{port}"))
        try:
            yield client
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()


WIRE = WireRequest("POST", "/v1/chat/completions", (("content-type", "application/json"),), b"{}")


async def pieces_of(client: UpstreamClient, gate: trio.Event | None = None) -> list[bytes]:
    out: list[bytes] = []
    with trio.fail_after(HANG_GUARD_S):
        response = await client.start(WIRE)
        try:
            async for piece in response.chunks():
                out.append(piece)
                if gate is not None:
                    gate.set()
        finally:
            await response.aclose()
    return out


async def test_every_chunk_of_one_read_comes_as_one_piece() -> None:
    body = b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n"
    async with provider([HEAD + b"\r\n" + body]) as client:
        pieces = await pieces_of(client)
    assert pieces == [b"".join(EVENTS)]  # 60 HTTP chunks, one piece (one feed, one forward)


async def test_reads_are_never_merged_across_a_wait() -> None:
    first, second = b"".join(EVENTS[:10]), b"".join(EVENTS[10:])
    gate = trio.Event()
    script: Script = [HEAD + b"\r\n" + b"".join(chunk(e) for e in EVENTS[:10]), gate,
                      b"".join(chunk(e) for e in EVENTS[10:]) + b"0\r\n\r\n"]
    async with provider(script) as client:
        pieces = await pieces_of(client, gate)
    assert pieces == [first, second]


# Where a read may end: (bytes of the 4th chunk in the first read, the de-chunked bytes the first piece then holds).
_FOURTH = chunk(EVENTS[3])
CUTS = {
    "after a chunk's CRLF": (b"", 0),
    "between CR and LF of a chunk's end": (b"", 0),
    "inside a chunk-size line": (_FOURTH[:1], 0),
    "after a chunk-size line, before its data": (_FOURTH[: _FOURTH.index(b"\n") + 1], 0),
    "inside a chunk's data": (_FOURTH[: _FOURTH.index(b"\n") + 8], 7),
}


@pytest.mark.parametrize("cut", list(CUTS))
async def test_a_read_ending_anywhere_is_handed_over_before_the_rest_arrives(cut: str) -> None:
    extra, data_in_first = CUTS[cut]
    head = b"".join(chunk(e) for e in EVENTS[:3])
    if cut == "between CR and LF of a chunk's end":
        head = head[:-1]
        extra = b""
    rest = (b"\n" if cut == "between CR and LF of a chunk's end" else b"") + _FOURTH[len(extra):]
    gate = trio.Event()
    script: Script = [HEAD + b"\r\n" + head + extra, gate,
                      rest + b"".join(chunk(e) for e in EVENTS[4:]) + b"0\r\n\r\n"]
    async with provider(script) as client:
        pieces = await pieces_of(client, gate)
    assert pieces[0] == b"".join(EVENTS[:3]) + EVENTS[3][:data_in_first]
    assert b"".join(pieces) == b"".join(EVENTS)


async def test_a_provider_cut_mid_read_is_an_error_after_the_bytes_it_sent() -> None:
    gate = trio.Event()
    script: Script = [HEAD + b"\r\n" + b"".join(chunk(e) for e in EVENTS[:20]) + _FOURTH[:5]]  # then FIN
    async with provider(script) as client:
        with pytest.raises(UpstreamError) as caught:
            await pieces_of(client, gate)
    assert "fake" in caught.value.message
    assert gate.is_set()  # the complete events came first, then the cut surfaced as an error, not as an end


async def test_gzip_chunks_are_decoded_and_the_limit_counts_decoded_bytes() -> None:
    body = b"".join(EVENTS) * 50
    packed = gzip.compress(body)
    parts = [packed[i : i + 512] for i in range(0, len(packed), 512)]
    head = HEAD + b"content-encoding: gzip\r\n\r\n"
    wire = head + b"".join(chunk(p) for p in parts) + b"0\r\n\r\n"
    async with provider([wire]) as client:
        assert b"".join(await pieces_of(client)) == body
    async with provider([wire]) as client, client.open(WIRE) as response:
        with pytest.raises(ResponseTooLarge):
            await response.read(len(body) - 1)


# ---------------------------------------------------------------------------------------------- through the gateway
def _frames(api: str, body: bytes) -> list[bytes]:
    sep = b"\n" if APIS[api][2] == "ndjson" else (b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n")
    return [frame + sep for frame in body.split(sep) if frame]


def _one_write(api: str, frames: list[bytes], *, terminate: bool) -> list[Step]:
    """Every frame its own HTTP chunk, as providers write them, all in one socket write."""
    return [b"".join(step for step in chunked(frames, stream_content_type(api), terminate=terminate)
                     if isinstance(step, bytes))]


async def _sdk_text(url: str, api: str) -> str:
    client = openai_async_client(url, "unused")
    text: list[str] = []
    with trio.fail_after(HANG_GUARD_S):
        stream = await client.chat.completions.create(
            model=model_for(api), messages=[{"role": "user", "content": "hi"}], stream=True)
        async for event in stream:
            text += [choice.delta.content or "" for choice in event.choices]
    return "".join(text)


@pytest.mark.parametrize("api", list(APIS))
async def test_a_whole_stream_in_one_read_is_relayed_and_a_cut_one_is_an_error(api: str) -> None:
    frames = _frames(api, transcript(api, stream=True))
    async with hostile_gateway() as (url, provider):
        provider.script = lambda seen: _one_write(api, frames, terminate=True)
        assert await _sdk_text(url, api) == f"Hello from the fake {api} provider."
        # The same frames cut inside the one before last, in one read, then FIN: an error, never a finish.
        cut = [*frames[:-2], frames[-2][: len(frames[-2]) // 2]]
        provider.script = lambda seen: _one_write(api, cut, terminate=False)
        with pytest.raises(openai.APIError):
            await _sdk_text(url, api)

"""The compression wrapper alone, on ASGI messages: what it must leave untouched (statuses without a body, bodies
already encoded, images, a body its compression would not shrink, requests without ``Accept-Encoding``), and a whole
body sent in slices (as ``send_whole`` does past 1 MiB) compressed into one body with its compressed length.
Client-visible behaviour is tested through the real server in ``tests/e2e/test_compression.py``."""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest

from muxtrio.config import CompressionConfig
from muxtrio.server.compression import compressing_send
from muxtrio.server.http import Message

SETTINGS = CompressionConfig(min_size=0, streams=True)
JSON = b'{"text": "' + b"compressible " * 400 + b'"}'


def scope(accept: str | None = "gzip") -> dict[str, Any]:
    headers = [] if accept is None else [(b"accept-encoding", accept.encode())]
    return {"type": "http", "method": "POST", "headers": headers}


async def answer(messages: list[Message], accept: str | None = "gzip") -> list[Message]:
    sent: list[Message] = []

    async def sink(message: Message) -> None:
        sent.append(message)

    send = compressing_send(sink, scope(accept), SETTINGS)
    for message in messages:
        await send(message)
    return sent


def start(status: int = 200, content_type: bytes = b"application/json", length: int | None = None,
          extra: tuple[tuple[bytes, bytes], ...] = ()) -> Message:
    headers = [(b"content-type", content_type), *extra]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def headers_of(message: Message) -> dict[bytes, bytes]:
    return dict(message["headers"])


@pytest.mark.parametrize(
    ("first", "data"),
    [
        (start(204, length=0), b""),
        (start(304, length=0), b""),
        (start(length=len(JSON), extra=((b"content-encoding", b"br"),)), JSON),
        (start(content_type=b"image/png", length=len(JSON)), JSON),
        (start(content_type=b"application/octet-stream"), JSON),  # a stream of a type never compressed
    ],
    ids=["204", "304", "already-encoded", "image", "binary-stream"],
)
async def test_left_untouched(first: Message, data: bytes) -> None:
    sent = await answer([first, body(data)])
    assert sent == [first, body(data)]


async def test_a_request_without_accept_encoding_is_not_wrapped() -> None:
    first = start(length=len(JSON))
    assert await answer([first, body(JSON)], accept=None) == [first, body(JSON)]


async def test_a_body_that_would_not_shrink_goes_out_as_it_is() -> None:
    noise = os.urandom(4096)
    sent = await answer([start(length=len(noise)), body(noise)])
    assert headers_of(sent[0])[b"content-length"] == b"4096" and b"content-encoding" not in headers_of(sent[0])
    assert headers_of(sent[0])[b"vary"] == b"Accept-Encoding"
    assert sent[1]["body"] == noise


async def test_a_sliced_whole_body_becomes_one_compressed_body_with_its_length() -> None:
    parts = [JSON[:1000], JSON[1000:3000], JSON[3000:]]
    sent = await answer([start(length=len(JSON)), body(parts[0], True), body(parts[1], True), body(parts[2])])
    assert len(sent) == 2
    headers = headers_of(sent[0])
    assert headers[b"content-encoding"] == b"gzip" and int(headers[b"content-length"]) == len(sent[1]["body"])
    assert zlib.decompress(sent[1]["body"], wbits=31) == JSON and sent[1]["more_body"] is False


async def test_an_existing_vary_is_extended_once() -> None:
    first = start(length=len(JSON), extra=((b"vary", b"Origin"),))
    sent = await answer([first, body(JSON)])
    assert headers_of(sent[0])[b"vary"] == b"Origin, Accept-Encoding"


async def test_a_stream_is_flushed_per_message_and_finished_by_the_last() -> None:
    events = [b"data: " + bytes([65 + i]) * 50 + b"\n\n" for i in range(3)]
    sent = await answer([start(content_type=b"text/event-stream"), body(events[0], True), body(b"", True),
                         body(events[1], True), body(events[2])])
    assert headers_of(sent[0])[b"content-encoding"] == b"gzip" and b"content-length" not in headers_of(sent[0])
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(sent[1]["body"]) == events[0]  # decodable at once: flushed
    assert sent[2] == body(b"", True)  # an empty write stays empty
    assert decoder.decompress(sent[3]["body"]) == events[1]
    assert not decoder.eof
    assert decoder.decompress(sent[4]["body"]) == events[2] and decoder.eof and sent[4]["more_body"] is False

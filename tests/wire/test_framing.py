"""SSE and NDJSON framing: line endings, comments, multi-line data, [DONE] only as a whole payload, size limits,
and split invariance."""

from __future__ import annotations

import random

import pytest

from muxtrio.errors import CodecError
from muxtrio.wire.ndjson import NDJSONDecoder
from muxtrio.wire.sse import SSEDecoder, SSEEvent

STREAM = (
    b": comment\r\n"
    b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
    b"data: line one\ndata: line two\n\n"
    b"id: 7\nretry: 100\ndata: {\"text\": \"contains [DONE] inside\"}\n\n"
    b"data:nospace\r\rdata: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("message_start", b'{"a":1}'),
    SSEEvent(None, b"line one\nline two"),
    SSEEvent(None, b'{"text": "contains [DONE] inside"}'),
    SSEEvent(None, b"nospace"),
    SSEEvent(None, b"[DONE]"),
]


def sse_events(chunks: list[bytes], limit: int = 1 << 20) -> list[SSEEvent]:
    decoder = SSEDecoder(limit)
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.flush()


def test_sse_events_and_split_invariance() -> None:
    assert sse_events([STREAM]) == EXPECTED
    assert sse_events([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    rng = random.Random(3)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(STREAM)), 6))
        chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)])]
        assert sse_events(chunks) == EXPECTED


def test_sse_final_event_without_blank_line_is_flushed() -> None:
    assert sse_events([b"data: last"]) == [SSEEvent(None, b"last")]


def test_sse_oversized_event_is_an_error_also_when_it_arrives_in_pieces() -> None:
    with pytest.raises(CodecError):
        sse_events([b"data: " + b"x" * 2000 + b"\n\n"], limit=1000)
    with pytest.raises(CodecError):
        sse_events([b"data: "] + [b"x" * 100] * 20, limit=1000)


def test_sse_large_event_in_many_reads_is_linear_and_exact() -> None:
    payload = b"y" * (4 << 20)
    data = b"data: " + payload + b"\n\n"
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert sse_events(chunks, limit=8 << 20) == [SSEEvent(None, payload)]


def test_ndjson_lines_limits_and_flush() -> None:
    decoder = NDJSONDecoder(100)
    data = b'{"a":1}\r\n\n{"b":2}\n{"c":'
    lines = [line for i in range(len(data)) for line in decoder.feed(data[i : i + 1])]
    assert lines == [b'{"a":1}', b'{"b":2}']
    assert decoder.feed(b"3}") == []
    assert decoder.flush() == [b'{"c":3}']
    with pytest.raises(CodecError):
        NDJSONDecoder(10).feed(b"x" * 11)
    with pytest.raises(CodecError):
        small = NDJSONDecoder(10)
        small.feed(b"x" * 6)
        small.feed(b"x" * 6)


def test_sse_many_events_per_read_with_the_read_ending_anywhere() -> None:
    many = STREAM * 20
    for cut in range(1, 2 * len(STREAM)):
        assert sse_events([many[:cut], many[cut:]]) == EXPECTED * 20, cut


def test_sse_a_read_ending_in_cr_then_a_read_without_line_end() -> None:
    # The LF that may follow a CR belongs to the CR only when it opens the very next read.
    assert sse_events([b"data: x\r", b"data: y", b"\n\ndata: z\n\n"]) == [SSEEvent(None, b"x\ny"),
                                                                           SSEEvent(None, b"z")]
    assert sse_events([b"data: x\r", b"\n", b"\ndata: z\n\n"]) == [SSEEvent(None, b"x"), SSEEvent(None, b"z")]


def test_ndjson_many_lines_per_read_with_the_read_ending_anywhere() -> None:
    data = b"".join(b'{"n":%d}\r\n' % i if i % 2 else b'{"n":%d}\n\n' % i for i in range(40))
    expected = [b'{"n":%d}' % i for i in range(40)]
    for cut in range(1, 60):
        decoder = NDJSONDecoder(100)
        assert decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.flush() == expected, cut
    with pytest.raises(CodecError):  # a whole line over the limit inside one read
        NDJSONDecoder(10).feed(b'{"a":1}\n' + b"x" * 11 + b"\n")

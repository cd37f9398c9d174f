"""The contract every client-format codec keeps, checked once over the codec registry (``registry.all_formats``)
instead of once per codec: its identity, how its decoder ends and limits events, how it reads a client's body
(the shared ``wire.jsonutil`` readers: a ClientError naming the field path, integral floats accepted), and the
shape of the errors it writes and reads. Format-specific behaviour stays in each codec's own test module."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from muxtrio.codecs.base import Format, RequestHints
from muxtrio.codecs.registry import all_formats, get_codec
from muxtrio.errors import ClientError, CodecError, ErrorKind, StreamTruncated
from muxtrio.ir.request import Request
from tests.codecs.helpers import FIXTURES, decode_all

FORMATS = all_formats()

USER = {"role": "user", "content": "hi"}
MINIMAL: dict[Format, dict[str, Any]] = {
    Format.OPENAI_CHAT: {"model": "m", "messages": [USER]},
    Format.OPENAI_RESPONSES: {"model": "m", "input": "hi"},
    Format.ANTHROPIC: {"model": "m", "max_tokens": 16, "messages": [USER]},
    Format.GEMINI: {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    Format.OLLAMA: {"model": "m", "messages": [USER]},
}
"""The smallest valid body of each format (Gemini takes its model from the URL)."""

HINTS: dict[Format, RequestHints] = {Format.GEMINI: RequestHints(model="m")}

MAX_TOKENS: dict[Format, tuple[tuple[str, ...], str]] = {
    Format.OPENAI_CHAT: (("max_tokens",), "max_tokens"),
    Format.OPENAI_RESPONSES: (("max_output_tokens",), "max_output_tokens"),
    Format.ANTHROPIC: (("max_tokens",), "max_tokens"),
    Format.GEMINI: (("generationConfig", "maxOutputTokens"), "generationConfig.maxOutputTokens"),
    Format.OLLAMA: (("options", "num_predict"), "options.num_predict"),
}
"""Where each format puts the output-token limit (the body keys, and the path a 400 names)."""


def parse(fmt: Format, body: dict[str, Any]) -> Request:
    # The standard json module writes integers of any size, as a hostile client may.
    return get_codec(fmt).parse_request(json.dumps(body).encode(), HINTS.get(fmt, RequestHints()))


def with_max_tokens(fmt: Format, value: object) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(MINIMAL[fmt]))
    keys, _ = MAX_TOKENS[fmt]
    target = body
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return body


def test_the_registry_lists_every_client_format() -> None:
    assert set(FORMATS) == set(Format) == set(MINIMAL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_codec_is_registered_under_its_own_format(fmt: Format) -> None:
    assert get_codec(fmt).format is fmt
    assert get_codec(fmt.value) is get_codec(fmt)


def test_an_unknown_format_is_a_400_naming_the_format() -> None:
    with pytest.raises(ClientError) as caught:
        get_codec("nonsense")
    assert (caught.value.kind, caught.value.param) == (ErrorKind.INVALID_REQUEST, "format")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_stream_that_ends_before_anything_arrived_is_truncated(fmt: Format) -> None:
    with pytest.raises(StreamTruncated):
        get_codec(fmt).new_decoder("seed").flush()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_event_over_the_limit_is_a_codec_error(fmt: Format) -> None:
    decoder = get_codec(fmt).new_decoder("seed", max_event_bytes=1024)
    with pytest.raises(CodecError):
        for _ in range(4):  # without a line end: SSE and NDJSON decoders alike must refuse to buffer it
            decoder.feed(b'data: {"x":"' + b"x" * 1024)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_minimal_body_parses(fmt: Format) -> None:
    request = parse(fmt, MINIMAL[fmt])
    assert request.model == "m" and len(request.messages) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"{"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_body_that_is_not_a_json_object_is_a_400(fmt: Format, body: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        get_codec(fmt).parse_request(body, HINTS.get(fmt, RequestHints()))
    assert caught.value.kind is ErrorKind.INVALID_REQUEST and caught.value.status == 400


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_integral_float_is_an_integer_everywhere(fmt: Format) -> None:
    assert parse(fmt, with_max_tokens(fmt, 64.0)).sampling.max_tokens == 64


@pytest.mark.parametrize("value", [2.5, "64", True, [64], 2**64, -(2**64), 1e300])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_wrongly_typed_integer_is_a_400_naming_its_path(fmt: Format, value: object) -> None:
    with pytest.raises(ClientError) as caught:
        parse(fmt, with_max_tokens(fmt, value))
    path = MAX_TOKENS[fmt][1]
    assert (caught.value.kind, caught.value.status, caught.value.param) == (ErrorKind.INVALID_REQUEST, 400, path)
    assert caught.value.message == f"`{path}` must be an integer (64-bit)"  # one message style in every codec


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_client_error_is_written_in_the_format_with_its_status(fmt: Format) -> None:
    status, body = get_codec(fmt).emit_error(ClientError(ErrorKind.INVALID_REQUEST, "`x` is wrong", param="x"))
    assert status == 400
    assert "`x` is wrong" in repr(orjson.loads(body))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_provider_error_that_is_not_json_keeps_its_status_and_text(fmt: Format) -> None:
    error = get_codec(fmt).parse_error(502, {}, b"<html>Bad Gateway</html>")
    assert (error.kind, error.status) == (ErrorKind.UPSTREAM, 502)
    assert "Bad Gateway" in error.message


WIRE_DIRS = {Format.OPENAI_CHAT: "openai", Format.OPENAI_RESPONSES: "responses", Format.ANTHROPIC: "anthropic",
             Format.GEMINI: "gemini", Format.OLLAMA: "ollama"}


@pytest.mark.parametrize("fmt", list(WIRE_DIRS))
@pytest.mark.parametrize("name", ["text", "think_tool_call"])
def test_a_whole_stream_in_two_reads_cut_anywhere_decodes_the_same(fmt: Format, name: str) -> None:
    """The upstream reader hands the decoder everything one socket read delivered: many events at once, the read
    ending anywhere (mid-line, between CR and LF, inside a field name). Every two-read cut gives the same events."""
    ext = "ndjson" if fmt is Format.OLLAMA else "sse"
    data = (FIXTURES / "transcripts" / "wire" / WIRE_DIRS[fmt] / f"{name}.{ext}").read_bytes()
    codec = get_codec(fmt)
    whole = decode_all(codec, data)
    assert whole
    for cut in range(1, len(data)):
        assert decode_all(codec, data, chunks=[data[:cut], data[cut:]]) == whole, cut

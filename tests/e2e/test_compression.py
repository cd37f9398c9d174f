"""Response compression through the real gateway: ``Accept-Encoding`` negotiated per RFC 9110, each coding decoded by
its real decoder (stdlib zlib, ``zstandard``, Google's ``brotli``) or by the official SDKs (httpx decodes what it
advertises), thresholds and exclusions honoured, and compressed streams that still deliver each event at once and
never look finished when they were not.

Per-event delivery is gated on order, never on time: the fake provider sends its first chunk and holds the rest until
the client, decoding the compressed bytes it has so far, sees the first event and releases it.
"""

from __future__ import annotations

import zlib
from typing import Any

import brotli
import orjson
import pytest
import zstandard

from muxtrio.config import CompressionConfig
from muxtrio.server.compression import Coding, negotiate, parse_accept_encoding
from tests.e2e import clients, test_resilience, test_streaming
from tests.e2e.clients import PER_CLIENT
from tests.e2e.conftest import CLIENT_KEY, PER_UPSTREAM, Stack, run_sync

EVERYTHING = CompressionConfig(min_size=0)
STREAMS = CompressionConfig(min_size=0, streams=True)
CODINGS = ("gzip", "br", "zstd")
ALL = tuple(Coding(name) for name in CompressionConfig().algorithms)  # the default order: zstd, gzip, br
HI = [{"role": "user", "content": "hi"}]


class Decoder:
    """An incremental decoder of one coding, and whether the coding's end was seen."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        if coding == "gzip":
            self._gzip = zlib.decompressobj(31)
        elif coding == "zstd":
            self._zstd = zstandard.ZstdDecompressor().decompressobj()
        else:
            self._br = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "gzip":
            return self._gzip.decompress(data)
        if self.coding == "zstd":
            return bytes(self._zstd.decompress(data))
        return bytes(self._br.process(data))

    @property
    def finished(self) -> bool:
        if self.coding == "gzip":
            return self._gzip.eof
        if self.coding == "zstd":
            return bool(self._zstd.eof)
        return bool(self._br.is_finished())


def decode(coding: str, data: bytes) -> bytes:
    decoder = Decoder(coding)
    out = decoder.feed(data)
    assert decoder.finished, f"the {coding} body has no end"
    return out


def chat_body(text: str = "hi", *, model: str = "openai-text", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


async def post_raw(stack: Stack, accept: str | bytes | None, body: dict[str, Any], path: str = "/v1/chat/completions",
                   ) -> tuple[int, dict[str, str], bytes]:
    headers: dict[str, str | bytes] = {"authorization": f"Bearer {CLIENT_KEY}"}
    if accept is not None:
        headers["accept-encoding"] = accept
    async with clients.raw_client(stack.url) as client:
        # httpx2 would send its own Accept-Encoding when none is given: "identity" stands for "no header" there.
        async with client.stream("POST", path, json=body, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            return response.status_code, dict(response.headers), raw


# -- negotiation (RFC 9110 §12.5.3)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, None),
        ("", None),  # an empty field: identity only
        ("gzip", Coding.GZIP),
        ("GZip", Coding.GZIP),
        ("x-gzip", Coding.GZIP),
        ("zstd,gzip", Coding.ZSTD),  # Codex CLI: equal weights, the server's preference
        ("gzip, deflate", Coding.GZIP),  # the Python SDKs (httpx without brotli/zstandard)
        ("gzip, deflate, br, zstd", Coding.ZSTD),
        ("gzip;q=1.0, br;q=0.9, zstd;q=0.5", Coding.GZIP),
        ("gzip;q=0.5, br;q=0.9", Coding.BR),
        ("gzip;q=0, zstd;q=0, br;q=0", None),
        ("*", Coding.ZSTD),
        ("*;q=0.5, zstd;q=0", Coding.GZIP),
        ("*;q=0.5, zstd;q=0, gzip;q=0", Coding.BR),
        ("br, gzip", Coding.GZIP),  # equal weights: the server's order
        ("*;q=0", None),
        ("*;q=0, identity", None),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),  # identity weighed above every coding
        ("identity;q=0, gzip;q=0.1", Coding.GZIP),
        ("deflate, compress", None),
        ("gzip;q=2", None),  # an invalid weight: the element is skipped
        ("gzip;q=0.1234", None),
        ("gzip;q=abc, br", Coding.BR),
        ("gzip ; q = 0.8 , br;q=0.7", Coding.GZIP),
        ("gzip;level=9", Coding.GZIP),  # an unknown parameter is ignored
    ],
)
def test_negotiation_follows_rfc_9110(accept: str | None, chosen: Coding | None) -> None:
    assert negotiate(accept, ALL) == chosen


def test_negotiation_honours_the_configured_order_and_set() -> None:
    assert ALL == (Coding.ZSTD, Coding.GZIP, Coding.BR)
    assert negotiate("zstd, gzip, br", (Coding.GZIP, Coding.ZSTD)) == Coding.GZIP
    assert negotiate("zstd, gzip, br", (Coding.BR, Coding.ZSTD)) == Coding.BR
    assert negotiate("zstd", (Coding.GZIP,)) is None
    assert negotiate("gzip", ()) is None


def test_a_hostile_header_is_read_boundedly_and_never_raises() -> None:
    huge = ",".join(["gzip;q=0.5"] * 10_000)
    assert len(parse_accept_encoding(huge)) == 1
    assert negotiate(";;;,,,=,q=1,\x00\x7f\xff,\"gzip\", (br), gzip;;q=;q", ALL) in (None, Coding.GZIP)
    many = ",".join(f"coding{index}" for index in range(1000)) + ",gzip"
    assert negotiate(many, ALL) is None  # past MAX_ELEMENTS: not read


# -- whole responses


@pytest.mark.gateway_config(compression=EVERYTHING)
@pytest.mark.parametrize("coding", CODINGS)
async def test_each_coding_is_negotiated_and_decodes(stack: Stack, coding: str) -> None:
    status, headers, raw = await post_raw(stack, f"{coding}, deflate;q=0.9", chat_body())
    assert status == 200
    assert headers["content-encoding"] == coding
    assert headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(raw)
    answer = orjson.loads(decode(coding, raw))
    assert answer["choices"][0]["message"]["content"] == "Hello from the fake openai provider."


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_openai_sdk_decodes_what_it_is_sent(stack: Stack) -> None:
    client = clients.openai_client(stack.url, CLIENT_KEY)
    sent = client._client.headers["accept-encoding"]  # what the SDK's httpx advertises
    raw = await run_sync(
        client.chat.completions.with_raw_response.create,
        model="openai-text", messages=[{"role": "user", "content": "hi"}],
    )
    assert raw.headers["content-encoding"] == negotiate(sent, ALL).value  # type: ignore[union-attr]
    assert raw.parse().choices[0].message.content == "Hello from the fake openai provider."
    # The SDK's httpx2 decodes gzip, deflate and (with brotli installed) br, and says so; "gzip, deflate" is what it
    # sends without brotli. (httpx2 has no zstd decoder: a zstd answer reaches it only if a caller forces the header.)
    for accept in ("gzip, deflate", "br"):
        raw = await run_sync(
            client.chat.completions.with_raw_response.create,
            model="openai-text", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"accept-encoding": accept},
        )
        assert raw.headers["content-encoding"] == negotiate(accept, ALL).value  # type: ignore[union-attr]
        assert raw.parse().choices[0].message.content == "Hello from the fake openai provider."
    client.close()


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_anthropic_sdk_decodes_what_it_is_sent(stack: Stack) -> None:
    client = clients.anthropic_client(stack.url, CLIENT_KEY)
    raw = await run_sync(
        client.messages.with_raw_response.create,
        model="anthropic-text", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    )
    assert raw.headers["content-encoding"] in CODINGS
    assert raw.parse().content[0].text == "Hello from the fake anthropic provider."  # type: ignore[union-attr]
    client.close()


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_refusals_and_unknown_codings_get_identity(stack: Stack) -> None:
    for accept in ("gzip;q=0, zstd;q=0, br;q=0", "*;q=0", "deflate", "identity", ""):
        status, headers, raw = await post_raw(stack, accept, chat_body())
        assert status == 200
        assert "content-encoding" not in headers, accept
        assert headers["vary"] == "Accept-Encoding"
        assert orjson.loads(raw)["choices"][0]["message"]["content"] == "Hello from the fake openai provider."


async def test_default_threshold_leaves_small_bodies_alone_and_compresses_large_ones(stack: Stack) -> None:
    status, headers, raw = await post_raw(stack, "gzip", chat_body())
    assert status == 200 and len(raw) < stack.config.compression.min_size
    assert "content-encoding" not in headers and "vary" not in headers
    long_prompt = "tell me everything about compression " * 200
    status, headers, raw = await post_raw(stack, "gzip", chat_body(long_prompt, model="muxtrio-echo"))
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert long_prompt.strip() in orjson.loads(decode("gzip", raw))["choices"][0]["message"]["content"]
    assert len(raw) * 4 < len(long_prompt)


async def test_small_errors_are_untouched_and_large_errors_decode_in_the_clients_format(stack: Stack) -> None:
    status, headers, raw = await post_raw(stack, "gzip", chat_body(model="no-such-model"))
    assert status == 404 and "content-encoding" not in headers
    assert orjson.loads(raw)["error"]["type"]


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_errors_above_the_threshold_reach_each_sdk_in_its_format(stack: Stack) -> None:
    import anthropic
    import openai

    status, headers, raw = await post_raw(stack, "zstd", chat_body(model="no-such-model"))
    assert status == 404 and headers["content-encoding"] == "zstd"
    assert "no-such-model" in orjson.loads(decode("zstd", raw))["error"]["message"]
    client = clients.openai_client(stack.url, CLIENT_KEY)
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        await run_sync(client.chat.completions.create, model="no-such-model", messages=HI)
    client.close()
    sdk = clients.anthropic_client(stack.url, CLIENT_KEY)
    with pytest.raises(anthropic.NotFoundError, match="no-such-model"):
        await run_sync(sdk.messages.create, model="no-such-model", max_tokens=8, messages=HI)
    sdk.close()


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_head_and_listings(stack: Stack) -> None:
    async with clients.raw_client(stack.url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as client:
        listing = await client.get("/v1/models", headers={"accept-encoding": "gzip"})
        assert listing.status_code == 200 and listing.headers["content-encoding"] == "gzip"
        assert listing.json()["data"]  # httpx2 decodes gzip
        head = await client.head("/v1/models", headers={"accept-encoding": "gzip"})
        assert head.status_code == 200 and "content-encoding" not in head.headers and head.content == b""


@pytest.mark.gateway_config(compression=EVERYTHING)
async def test_hostile_accept_encoding_never_breaks_a_request(stack: Stack) -> None:
    for accept in (
        ",".join(["gzip;q=0.5"] * 700),  # ~7 KB
        ";;;,,,=,q=1,\"gzip\", (br), gzip;;q=;q",
        "gzip;q=NaN, br;q=-1, zstd;q=1e9, *;q=0.0001",
        "br" + "," * 3000 + " ;q=0",
        b"gzip;q=0.5, \xe9\xff\x80, br;q=0.\xe9",  # obs-text bytes
    ):
        status, headers, raw = await post_raw(stack, accept, chat_body())
        assert status == 200, accept
        body = decode(headers["content-encoding"], raw) if "content-encoding" in headers else raw
        assert orjson.loads(body)["choices"][0]["message"]["content"] == "Hello from the fake openai provider."


@pytest.mark.gateway_config(compression=CompressionConfig(responses=False, streams=False))
async def test_compression_off(stack: Stack) -> None:
    status, headers, _ = await post_raw(stack, "gzip", chat_body("x" * 5000, model="muxtrio-echo"))
    assert status == 200 and "content-encoding" not in headers and "vary" not in headers


# -- streams


async def test_streams_are_not_compressed_by_default(stack: Stack) -> None:
    status, headers, raw = await post_raw(stack, "gzip", chat_body(stream=True))
    assert status == 200 and "content-encoding" not in headers
    assert raw.endswith(b"data: [DONE]\n\n")


@pytest.mark.gateway_config(compression=STREAMS)
@pytest.mark.parametrize("coding", CODINGS)
async def test_a_compressed_stream_delivers_each_event_at_once(stack: Stack, coding: str) -> None:
    fake = stack.fake("openai")
    decoder = Decoder(coding)
    text = b""
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "accept-encoding": coding}
    async with clients.raw_client(stack.url) as client:
        body = chat_body(model="openai-hold", stream=True)
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            assert response.headers["content-encoding"] == coding
            assert response.headers["vary"] == "Accept-Encoding"
            assert "content-length" not in response.headers
            async for chunk in response.aiter_raw():
                text += decoder.feed(chunk)
                if b'"content":"Hello "' in text and not fake.release.is_set():
                    stack.events.append("client:first-event")
                    fake.release.set()
    assert decoder.finished
    assert text.endswith(b"data: [DONE]\n\n")
    assert "provider:openai:hang-guard" not in stack.events, stack.events
    assert stack.events.index("client:first-event") < stack.events.index("provider:openai:finished"), stack.events


@pytest.mark.gateway_config(compression=STREAMS)
@pytest.mark.parametrize("coding", CODINGS)
async def test_an_error_frame_mid_stream_decodes_and_ends_the_coding(stack: Stack, coding: str) -> None:
    status, headers, raw = await post_raw(stack, coding, chat_body(model="openai-midstream", stream=True))
    assert status == 200 and headers["content-encoding"] == coding
    events = decode(coding, raw)
    assert b'"content":"Hello ' in events
    assert b'"error"' in events and not events.endswith(b"data: [DONE]\n\n")


@pytest.mark.gateway_config(compression=STREAMS, keepalive_interval=0.05)
async def test_keepalives_of_a_compressed_stream_decode_at_once(stack: Stack) -> None:
    """While the provider holds its answer the gateway writes keepalive comments: each one decodes when it arrives
    (the provider is released only once the client decoded a keepalive after the first event)."""
    fake = stack.fake("openai")
    decoder = Decoder("gzip")
    text = b""
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "accept-encoding": "gzip"}
    async with clients.raw_client(stack.url) as client:
        body = chat_body(model="openai-hold", stream=True)
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            async for chunk in response.aiter_raw():
                text += decoder.feed(chunk)
                first = text.find(b'"content":"Hello "')
                if first >= 0 and b": ping\n\n" in text[first:] and not fake.release.is_set():
                    stack.events.append("client:keepalive")
                    fake.release.set()
    assert decoder.finished and text.endswith(b"data: [DONE]\n\n")
    assert "provider:openai:hang-guard" not in stack.events, stack.events
    assert stack.events.index("client:keepalive") < stack.events.index("provider:openai:finished"), stack.events


# The stream guarantees, re-run through every SDK with compressed streams (the SDKs' httpx advertises and decodes
# gzip, br and zstd): per-event delivery, a provider's error event, a cut never looking finished.


@pytest.mark.gateway_config(compression=STREAMS)
@PER_UPSTREAM
@PER_CLIENT
async def test_sdk_first_chunk_before_provider_finishes_compressed(stack: Stack, client: str, upstream: str) -> None:
    await test_streaming.test_first_chunk_reaches_client_before_provider_finishes(stack, client, upstream)


@pytest.mark.gateway_config(compression=STREAMS)
@PER_UPSTREAM
@PER_CLIENT
async def test_sdk_error_event_mid_stream_compressed(stack: Stack, client: str, upstream: str) -> None:
    await test_resilience.test_provider_error_event_mid_stream_ends_with_an_error(stack, client, upstream)


@pytest.mark.gateway_config(compression=STREAMS)
@PER_UPSTREAM
@PER_CLIENT
async def test_sdk_cut_never_looks_finished_compressed(stack: Stack, client: str, upstream: str) -> None:
    await test_resilience.test_mid_stream_cut_ends_with_an_error_never_a_normal_end(stack, client, upstream)



async def test_an_answer_over_one_send_slice_is_compressed_whole(stack: Stack) -> None:
    """Past 1 MiB the gateway hands its body to the server in slices: the client still gets one compressed body with
    the compressed length, and the same answer decoded."""
    prompt = "an answer longer than one send slice " * 40_000  # ~1.5 MB echoed back
    for coding in CODINGS:
        status, headers, raw = await post_raw(stack, coding, chat_body(prompt, model="muxtrio-echo"))
        assert status == 200 and headers["content-encoding"] == coding
        assert int(headers["content-length"]) == len(raw) < 200_000
        assert prompt.strip() in orjson.loads(decode(coding, raw))["choices"][0]["message"]["content"]


# -- request bodies with a Content-Encoding (Codex CLI signed in with ChatGPT sends zstd level 3)

CODEX_BODY = orjson.dumps({
    "model": "responses-text", "stream": False, "instructions": "You are Codex. " * 200,
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "compressed hello"}]}],
})  # fmt: skip
REQUEST_ENCODERS: dict[str, Any] = {
    "zstd": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
    "gzip": lambda data: zlib.compress(data, 6, wbits=31),
    "x-gzip": lambda data: zlib.compress(data, 6, wbits=31),
    "deflate": zlib.compress,  # the zlib format (RFC 9110)
    "br": brotli.compress,
}


async def post_encoded(stack: Stack, encoding: str, data: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json",
               "content-encoding": encoding, "accept-encoding": "identity"}
    async with clients.raw_client(stack.url) as client:
        response = await client.post("/v1/responses", content=data, headers=headers)
        return response.status_code, response.json()


@pytest.mark.parametrize("encoding", REQUEST_ENCODERS)
async def test_a_compressed_request_body_is_decoded(stack: Stack, encoding: str) -> None:
    status, answer = await post_encoded(stack, encoding, REQUEST_ENCODERS[encoding](CODEX_BODY))
    assert status == 200, answer
    assert answer["output"][0]["content"][0]["text"] == "Hello from the fake responses provider."
    [seen] = stack.requests("responses")
    assert seen.model == "text" and "compressed hello" in seen.raw.decode()
    assert "content-encoding" not in seen.headers  # the provider gets plain JSON


async def test_raw_deflate_and_identity_are_read_too(stack: Stack) -> None:
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = raw_deflate.compress(CODEX_BODY) + raw_deflate.flush()
    assert (await post_encoded(stack, "deflate", data))[0] == 200
    assert (await post_encoded(stack, "identity", CODEX_BODY))[0] == 200


async def test_bad_request_codings_are_refused_in_the_clients_format(stack: Stack) -> None:
    status, answer = await post_encoded(stack, "zstd", CODEX_BODY)  # says zstd, is plain JSON
    assert status == 400 and "does not decode as zstd" in answer["error"]["message"]
    truncated = zlib.compress(CODEX_BODY, 6, wbits=31)[:-20]
    status, answer = await post_encoded(stack, "gzip", truncated)
    assert status == 400 and "does not decode as gzip" in answer["error"]["message"]
    for encoding in ("compress", "gzip, zstd", "snappy"):
        status, answer = await post_encoded(stack, encoding, CODEX_BODY)
        assert status == 415, encoding
        assert "zstd, gzip, deflate, br" in answer["error"]["message"]
    assert stack.requests("responses") == []


@pytest.mark.gateway_config(max_request_bytes=64 * 1024)
@pytest.mark.parametrize("encoding", ["zstd", "gzip", "br"])
async def test_a_decompression_bomb_is_a_413(stack: Stack, encoding: str) -> None:
    bomb = REQUEST_ENCODERS[encoding](b'{"model": "responses-text", "input": "' + b"A" * (8 << 20) + b'"}')
    assert len(bomb) < 64 * 1024
    status, answer = await post_encoded(stack, encoding, bomb)
    assert status == 413 and "once decoded" in answer["error"]["message"]
    assert stack.requests("responses") == []

"""Request bodies sent with a ``Content-Encoding``: decoded before anything parses them.

Codex CLI compresses its ``/v1/responses`` request bodies with zstd (``Content-Encoding: zstd``, level 3) when it is
signed in with ChatGPT and its provider is ``openai``, which is how a user pointing ``openai_base_url`` at muxtrio runs
it; other clients may send gzip, deflate or br. :func:`muxtrio.server.http.read_body` calls :func:`decode_body` on
every body it reads.

Invariants: no header or ``identity``: the bytes as they came. One coding of ``zstd``, ``gzip`` (``x-gzip``),
``deflate`` (zlib, or raw deflate as some clients send) or ``br`` is decoded; the decoded body is bounded by the same
limit as the raw one (a decompression bomb is a 413 without ever holding more than ``limit`` + one buffer); bytes that
do not decode are a 400; any other coding, or several layered, a 415 naming those muxtrio reads (RFC 9110 §15.5.16).
"""

from __future__ import annotations

import io
import zlib
from typing import Final

import brotli
import zstandard

from muxtrio.errors import ClientError, ErrorKind

READ_CODINGS: Final = ("zstd", "gzip", "deflate", "br")
_CHUNK: Final = 1 << 16


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` decoded from ``content_encoding`` (the request header, or ``None``), at most ``limit`` bytes."""
    if content_encoding is None:
        return body
    codings = [part.strip().lower() for part in content_encoding.split(",") if part.strip()]
    codings = [coding for coding in codings if coding != "identity"]
    if not codings:
        return body
    if len(codings) > 1 or codings[0] not in (*READ_CODINGS, "x-gzip"):
        shown = content_encoding.strip()[:64]
        raise ClientError(
            ErrorKind.UNSUPPORTED,
            f"unsupported request Content-Encoding {shown!r}; send one of {', '.join(READ_CODINGS)} or none",
            status=415,
        )
    coding = "gzip" if codings[0] == "x-gzip" else codings[0]
    try:
        decoded = _decode(coding, body, limit)
    except (zlib.error, zstandard.ZstdError, brotli.error):
        raise ClientError(ErrorKind.INVALID_REQUEST, f"the request body does not decode as {coding}") from None
    if len(decoded) > limit:
        raise ClientError(ErrorKind.REQUEST_TOO_LARGE, f"request body larger than {limit} bytes once decoded")
    return decoded


def _decode(coding: str, body: bytes, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes (or one buffer more, for brotli) of the decoded body; a longer output is cut, and
    so found too large by the caller."""
    if coding == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
        return bytes(reader.read(limit + 1))
    if coding == "br":
        decompressor = brotli.Decompressor()
        out = bytes(decompressor.process(body, output_buffer_limit=limit + 1))
        if len(out) <= limit and not decompressor.is_finished():
            raise brotli.error("truncated brotli stream")
        return out
    wbits = 31 if coding == "gzip" else (15 if body[:1] and (body[0] & 0x0F) == 8 else -15)  # zlib header, or raw
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(body, limit + 1)
    if len(out) <= limit and not decompressor.eof:
        raise zlib.error("truncated stream")
    return out

"""Shared checks for codec tests: split invariance of decoders, and fixture loading."""

from __future__ import annotations

import random
from pathlib import Path

from muxtrio.codecs.base import Codec
from muxtrio.ir.events import Event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def decode_all(codec: Codec, data: bytes, seed: str = "seed", chunks: list[bytes] | None = None) -> list[Event]:
    decoder = codec.new_decoder(seed)
    events: list[Event] = []
    for chunk in chunks if chunks is not None else [data]:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 64)
        out.append(data[i : i + n])
        i += n
    return out


def assert_split_invariant(codec: Codec, data: bytes, seed: str = "seed", rounds: int = 20) -> list[Event]:
    """Decoding whole, byte by byte, and in random chunkings gives the same events. Returns them."""
    whole = decode_all(codec, data, seed)
    bytewise = decode_all(codec, data, seed, [data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole
    rng = random.Random(1234)
    for _ in range(rounds):
        assert decode_all(codec, data, seed, split_randomly(data, rng)) == whole
    return whole

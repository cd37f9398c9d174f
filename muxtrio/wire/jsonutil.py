"""The one JSON library choice (orjson) and the helpers codecs share for reading untrusted JSON.

Invariants: ``dumps`` returns compact UTF-8 bytes; ``loads`` accepts bytes or str. Readers (``get_str`` and friends)
raise :class:`CodecError`/``ClientError`` with the offending field path rather than ``KeyError``/``TypeError``.
Whatever :func:`loads_object` accepts can be serialized again by :func:`dumps` after the codecs wrap it (nesting at
most :data:`MAX_DEPTH` levels, so a translated body stays under orjson's 255-level limit), and :func:`integral`
accepts only integers that ``dumps`` can write (64-bit), so a hostile body is a 400, never a 500 at encode time.
Pure: orjson and the standard library only.
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from muxtrio.errors import ClientError, ErrorKind
from muxtrio.ir.request import JSON, JSONObject

JSONDecodeError = orjson.JSONDecodeError

MAX_DEPTH = 200
"""The deepest nesting accepted in a client body; the codecs add a few levels and orjson writes at most 255."""

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers orjson can write (signed and unsigned 64-bit)."""


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def loads_object(data: bytes | str, *, what: str = "request body") -> JSONObject:
    """Parse a client's JSON body that must be an object; a clear 400 otherwise."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ClientError(ErrorKind.INVALID_REQUEST, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ClientError(ErrorKind.INVALID_REQUEST, f"{what} must be a JSON object")
    check_nesting(value, data, what=what)
    return cast(JSONObject, value)


def check_nesting(value: object, data: bytes | str, *, what: str = "request body") -> None:
    """A 400 when ``value`` (parsed from ``data``) nests deeper than :data:`MAX_DEPTH`."""
    # A small body with fewer opening brackets than the limit cannot nest deeper (counting bytes is cheaper than
    # walking there); a large body is walked directly, which costs per container, not per byte.
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) <= _COUNT_BELOW and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    if nesting_depth(value, stop_after=MAX_DEPTH) > MAX_DEPTH:
        raise ClientError(ErrorKind.INVALID_REQUEST, f"{what} is nested more than {MAX_DEPTH} levels deep")


_COUNT_BELOW = 256 * 1024


def nesting_depth(value: object, *, stop_after: int | None = None) -> int:
    """How many arrays/objects deep ``value`` nests (0 for a scalar), level by level, so any depth is safe to
    measure; with ``stop_after``, the walk ends as soon as the depth exceeds it."""
    level: list[Any] = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level and (stop_after is None or depth <= stop_after):
        depth += 1
        deeper: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return depth


def integral(value: object) -> int | None:
    """``value`` as an integer when it is one that ``dumps`` can write (an int, or an integral float such as
    ``40.0``, within 64 bits); None otherwise (booleans, fractions, infinities, ``1e300``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and INT_MIN <= value <= INT_MAX:
        return value
    return None


def as_json(value: object) -> JSON:
    """Narrow a value that came from ``loads`` to the IR's JSON type (no copy)."""
    return cast(JSON, value)

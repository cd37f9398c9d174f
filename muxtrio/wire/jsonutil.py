"""The one JSON library choice (orjson) and the helpers codecs share for reading untrusted JSON.

Invariants: ``dumps`` returns compact UTF-8 bytes; ``loads`` accepts bytes or str. Readers (``get_str`` and friends)
raise :class:`CodecError`/``ClientError`` with the offending field path rather than ``KeyError``/``TypeError``.
Pure: orjson and the standard library only.
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from muxtrio.errors import ClientError, ErrorKind
from muxtrio.ir.request import JSON, JSONObject

JSONDecodeError = orjson.JSONDecodeError


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
    return cast(JSONObject, value)


def as_json(value: object) -> JSON:
    """Narrow a value that came from ``loads`` to the IR's JSON type (no copy)."""
    return cast(JSON, value)

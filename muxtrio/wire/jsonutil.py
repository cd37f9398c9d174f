"""The one JSON library choice (orjson) and the helpers codecs share for reading untrusted JSON.

Invariants: ``dumps`` returns compact UTF-8 bytes; ``loads`` accepts bytes or str. The typed field readers are the
only ones the codecs use on the parse side (a client's body): ``as_*`` check a value, ``opt_*`` a value that may be
absent (None), ``get_*``/``require_*`` a field of an object. Every reader raises :class:`ClientError`
(``INVALID_REQUEST``) whose ``param`` is the offending field's full path and whose message has one style:
``"`path` must be a string"``, ``"`path` is required"``; :func:`unsupported` is the parse side's ``UNSUPPORTED``
error, also a ``ClientError``. Integers are read by :func:`integral` everywhere (``3.0`` is ``3``; 64-bit only).
Whatever :func:`loads_object` accepts can be serialized again by :func:`dumps` after the codecs wrap it (nesting at
most :data:`MAX_DEPTH` levels, so a translated body stays under orjson's 255-level limit), and :func:`integral`
accepts only integers that ``dumps`` can write (64-bit), so a hostile body is a 400, never a 500 at encode time.
Pure: orjson and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
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


# ------------------------------------------------------------------------------------------- typed field readers
def invalid(message: str, path: str) -> ClientError:
    """The 400 for a client field that is wrong; ``message`` should name ``path`` in backticks."""
    return ClientError(ErrorKind.INVALID_REQUEST, message, param=path)


def unsupported(message: str, path: str) -> ClientError:
    """The 400 for a client field this gateway understands but does not carry out."""
    return ClientError(ErrorKind.UNSUPPORTED, message, param=path)


def _wrong(path: str, expected: str) -> ClientError:
    return invalid(f"`{path}` must be {expected}", path)


def as_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(path, "an object")
    return value


def as_array(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _wrong(path, "an array")
    return value


def as_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, "a string")
    return value


def as_int(value: object, path: str) -> int:
    number = integral(value)
    if number is None:
        raise _wrong(path, "an integer (64-bit)")
    return number


def as_number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(path, "a number")
    return float(value)


def as_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, "a boolean")
    return value


def opt_object(value: object, path: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise _wrong(path, "an object")


def opt_array(value: object, path: str) -> list[Any] | None:
    if value is None or isinstance(value, list):
        return value
    raise _wrong(path, "an array")


def opt_str(value: object, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _wrong(path, "a string")


def opt_int(value: object, path: str) -> int | None:
    return None if value is None else as_int(value, path)


def opt_number(value: object, path: str) -> float | None:
    return None if value is None else as_number(value, path)


def opt_bool(value: object, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(path, "a boolean")


# The get_* readers repeat the opt_* checks instead of calling them: they run for every field of every request.
def get_object(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _wrong(path, "an object")


def get_array(obj: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise _wrong(path, "an array")


def get_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(path, "a string")


def get_int(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    return None if value is None else as_int(value, path)


def get_number(obj: Mapping[str, Any], key: str, path: str) -> float | None:
    value = obj.get(key)
    return None if value is None else as_number(value, path)


def get_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(path, "a boolean")


def require_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    """A string field that must be present: ``is required`` when absent, ``must be a string`` otherwise."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if value is None:
        raise invalid(f"`{path}` is required", path)
    raise _wrong(path, "a string")


def require_int(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = obj.get(key)
    if value is None:
        raise invalid(f"`{path}` is required", path)
    return as_int(value, path)

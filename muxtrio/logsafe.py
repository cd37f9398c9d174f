"""Make text from clients and providers safe to write into a log line.

Role: one function, :func:`escape_controls`, used wherever client- or provider-supplied text (a path, a model name,
an error message, a header value) is logged, and by the log formatter for every line the gateway writes.

Invariants: the result contains no control character (C0, DEL, C1) and no Unicode line or paragraph separator, so
one log record is always one line and nobody can forge a second record; each such character becomes a visible
``\\xNN``/``\\uNNNN`` escape; printable text (including non-ASCII) is returned unchanged and without copying.
Pure: the standard library only.
"""

from __future__ import annotations

_ESCAPES: dict[int, str] = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}
_ESCAPES[0x09] = "\\t"
_ESCAPES[0x0A] = "\\n"
_ESCAPES[0x0D] = "\\r"


def escape_controls(text: str) -> str:
    """``text`` with every control character and line separator replaced by a visible escape."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)

"""The one scrubber for text that came from outside the gateway (upstream error messages above all): it removes every
configured secret and anything shaped like a credential before the text reaches a client, a log line, a metric or a
stored record, and keeps the rest of the message readable.

What is removed (each replaced by ``[redacted]``, keeping a recognisable prefix where one tells the reader what kind
of value it was):
- every configured secret, as an exact substring (provider keys, gateway ``api-keys``, secret header values, proxy
  passwords; see :func:`muxtrio.config.config_secrets`), longest first so that a key containing another is removed
  whole; secrets shorter than :data:`MIN_SECRET_LENGTH` are skipped (they would shred ordinary words);
- key-shaped tokens: ``sk-…`` (OpenAI, DeepSeek...), ``sk-ant-…`` (Anthropic), ``AIza…`` (Google), the token after
  ``Bearer``/``Basic``, ``key=``/``api_key=``/``token=`` values, long hex runs (32+) and long base64/base64url tokens
  (32+ characters holding a run of 20+ mixed letters and digits: JWT parts and most opaque keys, but not model
  names or hyphenated words).

Invariants: pure (standard library only: codecs, errors and the engine may all call it); idempotent (scrubbing
scrubbed text changes nothing); never raises on any ``str``.

API for other modules: ``scrub(text, secrets=())`` for one-off use, :class:`Scrubber` (secrets compiled once, call it
with the text) where the same secrets are applied many times, and :func:`scrub_error` to clean a ``MuxError`` in
place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, TypeVar

from muxtrio.errors import MuxError

REDACTED: Final = "[redacted]"
MIN_SECRET_LENGTH: Final = 4

# Order matters: the specific prefixes run before the generic long-token rules, so ``sk-ant-…`` keeps its prefix.
_KEY_SHAPES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\b(Bearer|Basic)(\s+)(?!\[redacted\])[^\s\"',;]+", re.IGNORECASE), r"\1\2" + REDACTED),
    (re.compile(r"\bsk-ant-(?!\[redacted\])[A-Za-z0-9_\-*]{4,}"), "sk-ant-" + REDACTED),
    (re.compile(r"\bsk-(?!ant-\[redacted\])(?!\[redacted\])[A-Za-z0-9_\-*]{6,}"), "sk-" + REDACTED),
    (re.compile(r"\bAIza(?!\[redacted\])[A-Za-z0-9_\-]{8,}"), "AIza" + REDACTED),
    (
        re.compile(
            r"\b((?:api[_-]?key|key|token|access[_-]?token|secret)=)(?!\[redacted\])"
            r"[^\s&\"',;]+?(?=\.?(?:[\s&\"',;]|$))",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), REDACTED),
)
# A long opaque token: 32+ characters of the base64/base64url alphabet with a run of 20+ letters and digits (mixed)
# between separators. Model names (``claude-3-5-sonnet-20241022``) and hyphenated words have short runs and stay.
_TOKEN: Final = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}")
_RUN: Final = re.compile(r"[A-Za-z0-9]{20,}")


def _opaque(match: re.Match[str]) -> str:
    token = match.group(0)
    for run in _RUN.findall(token):
        if any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
            return REDACTED
    return token

E = TypeVar("E", bound=MuxError)


def _scrub_shapes(text: str) -> str:
    for pattern, replacement in _KEY_SHAPES:
        text = pattern.sub(replacement, text)
    return _TOKEN.sub(_opaque, text)


class Scrubber:
    """Removes a fixed set of secrets (and every key-shaped token) from text. Build it once per configuration."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in wanted)) if wanted else None

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _scrub_shapes(text)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` and without key-shaped tokens."""
    return Scrubber(secrets)(text)


def scrub_error(error: E, scrubber: Scrubber) -> E:
    """Clean ``error``'s message (and its ``args``, which tracebacks print) in place; returns the same error."""
    cleaned = scrubber(error.message)
    if cleaned != error.message:
        error.message = cleaned
        error.args = (cleaned,)
    return error

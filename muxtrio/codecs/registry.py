"""Format name -> codec instance. Unknown formats raise; there is no default. Pure.

Codec modules are imported on first use, so a process that serves two formats loads two codecs.
"""

from __future__ import annotations

import importlib

from muxtrio.codecs.base import Codec, Format
from muxtrio.errors import ClientError, ErrorKind

_MODULES: dict[Format, str] = {
    Format.OPENAI_CHAT: "muxtrio.codecs.openai_chat",
    Format.OPENAI_RESPONSES: "muxtrio.codecs.openai_responses",
    Format.ANTHROPIC: "muxtrio.codecs.anthropic",
    Format.GEMINI: "muxtrio.codecs.gemini",
    Format.OLLAMA: "muxtrio.codecs.ollama",
}
_CODECS: dict[Format, Codec] = {}


def get_codec(fmt: Format | str) -> Codec:
    try:
        key = Format(fmt)
    except ValueError:
        raise ClientError(ErrorKind.INVALID_REQUEST, f"unknown format {fmt!r}", param="format") from None
    codec = _CODECS.get(key)
    if codec is None:
        codec = _CODECS[key] = importlib.import_module(_MODULES[key]).CODEC
    return codec


def all_formats() -> tuple[Format, ...]:
    return tuple(_MODULES)

"""Format name -> codec instance. Unknown formats raise; there is no default. Pure."""

from __future__ import annotations

from muxtrio.codecs import anthropic, gemini, ollama, openai_chat, openai_responses
from muxtrio.codecs.base import Codec, Format
from muxtrio.errors import ClientError, ErrorKind

_CODECS: dict[Format, Codec] = {
    Format.OPENAI_CHAT: openai_chat.CODEC,
    Format.OPENAI_RESPONSES: openai_responses.CODEC,
    Format.ANTHROPIC: anthropic.CODEC,
    Format.GEMINI: gemini.CODEC,
    Format.OLLAMA: ollama.CODEC,
}


def get_codec(fmt: Format | str) -> Codec:
    try:
        return _CODECS[Format(fmt)]
    except ValueError:
        raise ClientError(ErrorKind.INVALID_REQUEST, f"unknown format {fmt!r}", param="format") from None


def all_formats() -> tuple[Format, ...]:
    return tuple(_CODECS)

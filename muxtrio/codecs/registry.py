"""Format name -> codec instance. Unknown formats raise; there is no default. Pure.

``provider_codec`` gives the provider side for a provider type whose API moves the same format to other paths
(``vertex-compat``: Gemini's wire on Vertex AI's paths) or with its own quirks (the subscription account types of
``codecs/subscription.py``).

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


# Provider types whose upstream speaks a format with other paths: (module, codec attribute).
_PROVIDER_VARIANTS: dict[str, tuple[str, str]] = {
    "vertex-compat": ("muxtrio.codecs.gemini", "VERTEX_CODEC"),
    # Subscription accounts: the base format plus each backend's wire quirks (codecs/subscription.py).
    "claude": ("muxtrio.codecs.subscription", "CLAUDE_CODEC"),
    "codex": ("muxtrio.codecs.subscription", "CODEX_CODEC"),
    "gemini-cli": ("muxtrio.codecs.subscription", "GEMINI_CLI_CODEC"),
    "github-copilot": ("muxtrio.codecs.subscription", "COPILOT_CODEC"),
    "qwen": ("muxtrio.codecs.subscription", "QWEN_CODEC"),
}


def provider_codec(provider_type: str, fmt: Format) -> Codec:
    """The codec that talks to a provider of this type: ``get_codec(fmt)``, or the type's variant of it."""
    variant = _PROVIDER_VARIANTS.get(str(provider_type))
    if variant is None:
        return get_codec(fmt)
    module, attribute = variant
    codec: Codec = getattr(importlib.import_module(module), attribute)
    return codec


def all_formats() -> tuple[Format, ...]:
    return tuple(_MODULES)

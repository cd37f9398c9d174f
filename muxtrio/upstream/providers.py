"""Provider types as data: which wire format each speaks, its default base URL, whether it accepts an assistant
prefill (for mid-stream continuation), and which model names it serves when its config lists none.

Prefill defaults (override per model with ``prefill: true|false``):
- anthropic: yes — a trailing assistant message is continued (documented "prefill" behaviour).
- ollama: yes — a trailing assistant message is continued by the chat template.
- echo: yes (built-in, so the continuation path can be tried offline).
- openai, openai-responses, gemini, vertex-compat: no — OpenAI's API does not continue a trailing assistant
  message, and Gemini's behaviour with a trailing model turn is not guaranteed. A cut stream from these providers
  is restarted on another candidate only when nothing reached the client yet; otherwise it ends with an error.

Model patterns for providers configured without a ``models`` list (``*`` wildcards, case-insensitive): an
OpenAI-compatible provider on a custom base URL and Ollama serve any name; the official OpenAI, Anthropic and Gemini
endpoints serve their own families only. **Decision (deliberate, documented in docs/config.md):** with keys for
several official providers in the environment, each name must go to the one provider that has it; passing every
unknown name to every list-less provider would pool them (``llama3`` sent to OpenAI with its key, then to
Anthropic...) and turn a typo into paid upstream 404s. A name outside every family is a gateway 404 that lists the
families and shows how to force it (``openai/llama3``: forcing a list-less provider passes any name through).
"""

from __future__ import annotations

from dataclasses import dataclass

from muxtrio.codecs.base import Format

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class ProviderKind:
    format: Format
    prefill: bool
    patterns: tuple[str, ...]


_KINDS: dict[str, ProviderKind] = {
    "openai": ProviderKind(
        Format.OPENAI_CHAT, False, ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "codex-*", "text-*", "davinci*", "ft:*")
    ),
    "openai-responses": ProviderKind(Format.OPENAI_RESPONSES, False, ("gpt-*", "o1*", "o3*", "o4*", "codex-*", "ft:*")),
    "anthropic": ProviderKind(Format.ANTHROPIC, True, ("claude-*",)),
    "gemini": ProviderKind(Format.GEMINI, False, ("gemini-*", "gemma-*", "learnlm-*")),
    "vertex-compat": ProviderKind(Format.GEMINI, False, ("gemini-*",)),
    "ollama": ProviderKind(Format.OLLAMA, True, ("*",)),
    "echo": ProviderKind(Format.OPENAI_CHAT, True, ()),
}


def kind_of(provider_type: str) -> ProviderKind:
    return _KINDS[str(provider_type)]


def default_patterns(provider_type: str, base_url: str) -> tuple[str, ...]:
    """Model patterns a provider with no model list serves."""
    if provider_type in ("openai", "openai-responses") and base_url.rstrip("/") != OPENAI_DEFAULT_URL:
        return ("*",)
    return kind_of(provider_type).patterns

"""The provider-type registry: one entry per provider type, pure data, read by the config (default base URL,
whether a key is required), the upstream layer (format, model patterns) and the engine (prefill, accounts).

A new provider type is one :class:`ProviderTypeInfo` entry here plus, where its wire differs from its base format,
a provider-side codec variant in :mod:`muxtrio.codecs.registry`.

Fields:
- ``format``: the wire format the upstream speaks (its provider-side codec).
- ``default_base_url``: used when the config gives no ``base-url`` (``""``: none; ``base-url`` is then required,
  except for the built-in echo provider).
- ``auth``: how a credential travels: ``bearer`` (``Authorization: Bearer``), ``x-api-key`` (Anthropic),
  ``x-goog-api-key`` (Gemini), ``none``. Account types send their OAuth access token as a Bearer token.
- ``prefill``: whether a trailing assistant message is continued (mid-stream continuation; docs/resilience.md).
- ``count_tokens``: whether the upstream has a token-count endpoint the engine uses.
- ``patterns``: model names served when the provider's config lists none (``*`` wildcards, case-insensitive).
- ``requires_key``: the upstream refuses requests without a credential.
- ``account``: credentials are subscription accounts logged in with ``muxtrio login`` (token files in ``auth-dir``),
  not API keys from the config.
- ``builtin``: served in process (:mod:`muxtrio.upstream.echo`), never over the network; needs no ``base-url``.

``auth`` and ``count_tokens`` describe what the type's provider-side codec does; tests/test_provider_types.py checks
that they agree, so this table stays the one place to read them.

Prefill defaults (override per model with ``prefill: true|false``): Anthropic and Claude accounts continue a
trailing assistant message (documented "prefill"), Ollama's chat template does too, echo does (so continuation can
be tried offline). OpenAI's APIs do not continue a trailing assistant message, and Gemini's behaviour with a trailing
model turn is not guaranteed, so a cut stream from those is only restarted when nothing reached the client yet.

Model patterns for providers configured without a ``models`` list: an OpenAI-compatible provider on a custom base URL
and Ollama serve any name; the official OpenAI, Anthropic and Gemini endpoints serve their own families only.
**Decision (deliberate, documented in docs/config.md):** with keys for several official providers in the environment,
each name must go to the one provider that has it; passing every unknown name to every list-less provider would pool
them (``llama3`` sent to OpenAI with its key, then to Anthropic...) and turn a typo into paid upstream 404s. A name
outside every family is a gateway 404 that lists the families and shows how to force it (``openai/llama3``: forcing a
list-less provider passes any name through).

Invariants: pure (no IO); every ``config.ProviderType`` value has exactly one entry (tests/test_provider_types.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from muxtrio.codecs.base import Format

AuthStyle = Literal["bearer", "x-api-key", "x-goog-api-key", "none"]

OPENAI_DEFAULT_URL: Final = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class ProviderTypeInfo:
    name: str
    format: Format
    default_base_url: str
    auth: AuthStyle
    prefill: bool
    count_tokens: bool
    patterns: tuple[str, ...]
    requires_key: bool
    account: bool = False
    builtin: bool = False


_OPENAI_FAMILY = ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "codex-*", "text-*", "davinci*", "ft:*")

_ENTRIES: Final = (
    ProviderTypeInfo("openai", Format.OPENAI_CHAT, OPENAI_DEFAULT_URL, "bearer", False, False, _OPENAI_FAMILY, False),
    ProviderTypeInfo(
        "openai-responses", Format.OPENAI_RESPONSES, OPENAI_DEFAULT_URL, "bearer", False, True,
        ("gpt-*", "o1*", "o3*", "o4*", "codex-*", "ft:*"), True,
    ),
    ProviderTypeInfo(
        "anthropic", Format.ANTHROPIC, "https://api.anthropic.com", "x-api-key", True, True, ("claude-*",), True
    ),
    ProviderTypeInfo(
        "gemini", Format.GEMINI, "https://generativelanguage.googleapis.com", "x-goog-api-key", False, True,
        ("gemini-*", "gemma-*", "learnlm-*"), True,
    ),
    ProviderTypeInfo("vertex-compat", Format.GEMINI, "", "x-goog-api-key", False, True, ("gemini-*",), False),
    ProviderTypeInfo("ollama", Format.OLLAMA, "http://127.0.0.1:11434", "bearer", True, False, ("*",), False),
    ProviderTypeInfo("echo", Format.OPENAI_CHAT, "", "none", True, False, (), False, builtin=True),
    # Subscription accounts (docs/accounts.md); sources in tests/fixtures/accounts/*.source.txt.
    ProviderTypeInfo(
        "claude", Format.ANTHROPIC, "https://api.anthropic.com", "bearer", True, True, ("claude-*",), True,
        account=True,
    ),
    ProviderTypeInfo(
        "codex", Format.OPENAI_RESPONSES, "https://chatgpt.com/backend-api/codex", "bearer", False, False,
        ("gpt-5*", "codex-*"), True, account=True,
    ),
    ProviderTypeInfo(
        "gemini-cli", Format.GEMINI, "https://cloudcode-pa.googleapis.com", "bearer", False, True, ("gemini-*",),
        True, account=True,
    ),
    ProviderTypeInfo(
        "github-copilot", Format.OPENAI_CHAT, "https://api.githubcopilot.com", "bearer", False, False,
        ("gpt-*", "claude-*", "gemini-*", "o3*", "o4*", "grok-*"), True, account=True,
    ),
    ProviderTypeInfo(
        "qwen", Format.OPENAI_CHAT, "https://portal.qwen.ai/v1", "bearer", False, False, ("qwen*", "coder-model"),
        True, account=True,
    ),
)  # fmt: skip

PROVIDER_TYPES: Final = MappingProxyType({entry.name: entry for entry in _ENTRIES})
"""Provider type name -> its entry."""

ACCOUNT_TYPES: Final = tuple(entry.name for entry in _ENTRIES if entry.account)
"""The subscription account types, in login-menu order."""


def info(provider_type: str) -> ProviderTypeInfo:
    """The entry of ``provider_type`` (a ``ProviderType`` or its string); KeyError for an unknown type."""
    return PROVIDER_TYPES[str(provider_type)]


def requires_key(provider_type: str, base_url: str) -> bool:
    """Whether the upstream refuses requests without a credential. ``openai`` only when it points at OpenAI
    itself: a local vLLM or llama.cpp server behind ``type: openai`` usually needs no key."""
    entry = info(provider_type)
    if entry.name == "openai":
        return base_url.rstrip("/") == OPENAI_DEFAULT_URL
    return entry.requires_key


def default_patterns(provider_type: str, base_url: str) -> tuple[str, ...]:
    """Model patterns a provider with no model list serves: an OpenAI-compatible provider on a custom base URL
    serves any name; the official endpoints serve their own families, so auto-detected providers coexist."""
    entry = info(provider_type)
    if entry.name in ("openai", "openai-responses") and base_url.rstrip("/") != OPENAI_DEFAULT_URL:
        return ("*",)
    return entry.patterns

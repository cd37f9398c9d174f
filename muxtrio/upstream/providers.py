"""Provider kinds for the engine and the router: the parts of :mod:`muxtrio.provider_types` (the one registry of
provider types) that decide how a request travels — the wire format, whether an assistant prefill is continued, and
the model patterns a provider with no model list serves."""

from __future__ import annotations

from dataclasses import dataclass

from muxtrio.codecs.base import Format
from muxtrio.provider_types import OPENAI_DEFAULT_URL, default_patterns, info

__all__ = ["OPENAI_DEFAULT_URL", "ProviderKind", "default_patterns", "kind_of"]


@dataclass(frozen=True, slots=True)
class ProviderKind:
    format: Format
    prefill: bool
    patterns: tuple[str, ...]
    account: bool


def kind_of(provider_type: str) -> ProviderKind:
    entry = info(provider_type)
    return ProviderKind(entry.format, entry.prefill, entry.patterns, entry.account)

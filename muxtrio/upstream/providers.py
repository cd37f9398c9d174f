"""Provider kinds for the engine and the router, read from :mod:`muxtrio.provider_types` (the one registry of
provider types): the wire format, whether an assistant prefill is continued, the model patterns a provider with no
model list serves, whether credentials are accounts and whether the provider is served in process."""

from __future__ import annotations

from muxtrio.provider_types import OPENAI_DEFAULT_URL, ProviderTypeInfo, default_patterns, info

__all__ = ["OPENAI_DEFAULT_URL", "ProviderTypeInfo", "default_patterns", "kind_of"]


def kind_of(provider_type: str) -> ProviderTypeInfo:
    """The registry entry of ``provider_type``."""
    return info(provider_type)

"""The one model-name wildcard matcher: ``excluded-models``, a provider type's default patterns, the routing table,
payload rules, model rules, client-key allowlists and prices all match names with it.

Semantics (llm-mux's ``matchWildcard``): the whole name must match, case-insensitively; ``*`` matches any run of
characters (also none); nothing else is special. Pure: standard library only; compiled patterns are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def wildcard_match(pattern: str, name: str) -> bool:
    """Whether ``name`` is one of the names ``pattern`` stands for."""
    return _compiled(pattern).fullmatch(name) is not None

"""Tool names across formats: how a namespaced tool (OpenAI Responses ``namespace`` tools, which Codex CLI sends)
becomes one function name for formats that only know flat function names.

Invariants:
- ``namespaced_tool_name`` is deterministic, so the client side (parsing the tool list) and the provider side
  (reading a Responses provider's ``function_call`` with a ``namespace``) derive the same name independently.
- The result fits every provider's function-name rule (``[A-Za-z0-9_-]``, at most 64 characters: OpenAI, Anthropic
  and Gemini all accept it): other characters become ``_``, and a name too long keeps its head and gets a short
  digest of the whole, so different namespaced tools never share a name.
- Pure: standard library only.
"""

from __future__ import annotations

import hashlib

NAMESPACE_SEPARATOR = "__"
MAX_TOOL_NAME = 64
_DIGEST_CHARS = 10


def namespaced_tool_name(namespace: str, name: str) -> str:
    """``<namespace>__<name>``, made safe for every provider's function-name rule."""
    joined = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
    safe = "".join(c if (c.isascii() and (c.isalnum() or c in "_-")) else "_" for c in joined)
    if len(safe) <= MAX_TOOL_NAME and safe == joined:
        return safe
    digest = hashlib.sha256(joined.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{safe[: MAX_TOOL_NAME - _DIGEST_CHARS - 1]}_{digest}"

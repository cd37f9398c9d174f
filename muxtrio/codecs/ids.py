"""Invented identifiers for formats that have none (Gemini and Ollama tool calls, response ids).

Invariant: ids derive from the caller's ``seed`` (unique per response, chosen by the engine) and a counter, so
they are stable across replays of the same bytes and unique across responses. Pure.
"""

from __future__ import annotations


def tool_call_id(seed: str, n: int) -> str:
    return f"call_{seed}_{n}"


def anthropic_tool_id(call_id: str) -> str:
    """Anthropic accepts any ``[a-zA-Z0-9_-]+`` id; keep the client's id when it fits, else make it fit."""
    if call_id and all(c.isalnum() or c in "_-" for c in call_id):
        return call_id
    return "toolu_" + "".join(c if (c.isalnum() or c in "_-") else "_" for c in call_id)

"""Every client generation/count endpoint with a valid body, where its fields live, and a checker of its error shape.

Shared by the hostile-input tests (``test_hostile_input.py``) and the fuzz suite (``tests/fuzz``). Bodies name the
model ``openai-text`` (the fake OpenAI provider's ``text`` behaviour); Gemini names it in the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Body = dict[str, Any]
MODEL = "openai-text"
USER = [{"role": "user", "content": "hi"}]
GEMINI_CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    shape: str  # openai | anthropic | gemini | ollama: the error shape of this route
    body: Body
    # Where a hostile value goes: the max-tokens and seed fields, and how a tool with a JSON schema is declared.
    max_tokens: tuple[str, ...]
    seed: tuple[str, ...] | None
    tool: Callable[[Any], Body]
    extra: Body = field(default_factory=dict)

    def with_value(self, where: tuple[str, ...], value: Any) -> Body:
        """The valid body with ``value`` placed at the (possibly nested) field ``where``."""
        body = orjson.loads(orjson.dumps(self.body))
        target = body
        for key in where[:-1]:
            target = target.setdefault(key, {})
        target[where[-1]] = value
        return body  # type: ignore[no-any-return]

    def with_tool_schema(self, schema: Any) -> Body:
        return {**self.body, **self.tool(schema)}


def _openai_tool(schema: Any) -> Body:
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}


def _responses_tool(schema: Any) -> Body:
    return {"tools": [{"type": "function", "name": "f", "parameters": schema}]}


def _anthropic_tool(schema: Any) -> Body:
    return {"tools": [{"name": "f", "input_schema": schema}]}


def _gemini_tool(schema: Any) -> Body:
    return {"tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}]}


def _ollama_format(schema: Any) -> Body:
    return {"format": schema}


_GEMINI_MAX = ("generationConfig", "maxOutputTokens")
_GEMINI_SEED = ("generationConfig", "seed")
_GEMINI_BODY = {"contents": GEMINI_CONTENTS}

ENDPOINTS = [
    Endpoint("chat", "/v1/chat/completions", "openai", {"model": MODEL, "messages": USER},
             ("max_tokens",), ("seed",), _openai_tool),
    Endpoint("chat-stream", "/v1/chat/completions", "openai", {"model": MODEL, "messages": USER, "stream": True},
             ("max_completion_tokens",), ("seed",), _openai_tool),
    Endpoint("completions", "/v1/completions", "openai", {"model": MODEL, "prompt": "hi"},
             ("max_tokens",), ("seed",), _openai_tool),
    Endpoint("responses", "/v1/responses", "openai", {"model": MODEL, "input": "hi"},
             ("max_output_tokens",), None, _responses_tool),
    Endpoint("responses-count", "/v1/responses/input_tokens", "openai", {"model": MODEL, "input": "hi"},
             ("max_output_tokens",), None, _responses_tool),
    Endpoint("messages", "/v1/messages", "anthropic", {"model": MODEL, "max_tokens": 64, "messages": USER},
             ("max_tokens",), None, _anthropic_tool),
    Endpoint("messages-count", "/v1/messages/count_tokens", "anthropic", {"model": MODEL, "messages": USER},
             ("max_tokens",), None, _anthropic_tool),
    Endpoint("gemini", f"/v1beta/models/{MODEL}:generateContent", "gemini", _GEMINI_BODY,
             _GEMINI_MAX, _GEMINI_SEED, _gemini_tool),
    Endpoint("gemini-stream", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", "gemini", _GEMINI_BODY,
             _GEMINI_MAX, _GEMINI_SEED, _gemini_tool),
    Endpoint("gemini-count", f"/v1beta/models/{MODEL}:countTokens", "gemini", _GEMINI_BODY,
             _GEMINI_MAX, _GEMINI_SEED, _gemini_tool),
    Endpoint("ollama-chat", "/api/chat", "ollama", {"model": MODEL, "messages": USER, "stream": False},
             ("options", "num_predict"), ("options", "seed"), _ollama_format),
    Endpoint("ollama-generate", "/api/generate", "ollama", {"model": MODEL, "prompt": "hi", "stream": False},
             ("options", "num_predict"), ("options", "seed"), _ollama_format),
]  # fmt: skip
IDS = [e.name for e in ENDPOINTS]


def error_message(shape: str, status: int, content: bytes) -> str:
    """The message of an error body in ``shape``; an AssertionError when the body is not in that shape."""
    body = orjson.loads(content)
    if shape == "openai":
        error = body["error"]
        assert isinstance(error["type"], str) and error["type"], body
        message = error["message"]
    elif shape == "anthropic":
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str), body
        message = body["error"]["message"]
    elif shape == "gemini":
        error = body["error"]
        assert error["code"] == status and isinstance(error["status"], str) and error["status"].isupper(), body
        message = error["message"]
    else:
        assert shape == "ollama" and set(body) == {"error"}, body
        message = body["error"]
    assert isinstance(message, str) and message, body
    return message


def nested(levels: int) -> bytes:
    """The JSON text of a schema that nests ``levels`` arrays/objects deep (each property adds two). Text, because
    JSON libraries refuse to write such depths."""
    inner = b'{"type":"string"}' if levels % 2 else b'{"enum":["x"]}'
    count = (levels - 1) // 2
    return b'{"type":"object","properties":{"a":' * count + inner + b"}}" * count


MARKER = "__raw_json__"


def with_raw(body: Body, raw: bytes) -> bytes:
    """``body`` serialized with the raw JSON text ``raw`` wherever the string :data:`MARKER` stands."""
    return orjson.dumps(body).replace(f'"{MARKER}"'.encode(), raw)

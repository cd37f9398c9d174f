"""Model listings and model metadata in each client format's own shape (OpenAI, Anthropic, Gemini, Ollama).

The ids listed are the aliases clients may send (from the router). Nothing secret is listed: no keys, no base URLs.
Fields a format requires but muxtrio cannot know (model sizes, token limits) get fixed values: 0 for sizes, and
Gemini's largest published limits (1,048,576 input / 65,536 output tokens) for token limits.
"""

from __future__ import annotations

import hashlib

import orjson

from muxtrio.engine.routing import ModelEntry

CREATED = 1_700_000_000
CREATED_AT = "2023-11-14T22:13:20Z"
GEMINI_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
OLLAMA_VERSION = "0.12.10"


def openai_model(entry: ModelEntry) -> dict[str, object]:
    return {"id": entry.id, "object": "model", "created": CREATED, "owned_by": entry.provider}


def openai_list(entries: list[ModelEntry]) -> bytes:
    return orjson.dumps({"object": "list", "data": [openai_model(e) for e in entries]})


def anthropic_model(entry: ModelEntry) -> dict[str, object]:
    return {"type": "model", "id": entry.id, "display_name": entry.id, "created_at": CREATED_AT}


def anthropic_list(entries: list[ModelEntry]) -> bytes:
    data = [anthropic_model(e) for e in entries]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


def gemini_model(entry: ModelEntry) -> dict[str, object]:
    return {
        "name": f"models/{entry.id}",
        "baseModelId": entry.id,
        "version": "001",
        "displayName": entry.id,
        "description": f"served by muxtrio provider {entry.provider}",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": GEMINI_METHODS,
    }


def gemini_list(entries: list[ModelEntry]) -> bytes:
    return orjson.dumps({"models": [gemini_model(e) for e in entries]})


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _ollama_details() -> dict[str, object]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "muxtrio",
        "families": ["muxtrio"],
        "parameter_size": "",
        "quantization_level": "",
    }


def ollama_tags(entries: list[ModelEntry]) -> bytes:
    return orjson.dumps(
        {
            "models": [
                {
                    "name": e.id,
                    "model": e.id,
                    "modified_at": CREATED_AT,
                    "size": 0,
                    "digest": _digest(e.id),
                    "details": _ollama_details(),
                }
                for e in entries
            ]
        }
    )


def ollama_show(entry: ModelEntry) -> bytes:
    return orjson.dumps(
        {
            "modelfile": f"# served by muxtrio provider {entry.provider}\nFROM {entry.id}\n",
            "parameters": "",
            "template": "",
            "details": _ollama_details(),
            "model_info": {},
            "capabilities": ["completion", "tools", "thinking"],
            "modified_at": CREATED_AT,
        }
    )


def ollama_version() -> bytes:
    return orjson.dumps({"version": OLLAMA_VERSION})


def ollama_ps() -> bytes:
    return orjson.dumps({"models": []})

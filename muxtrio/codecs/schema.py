"""JSON Schema for tool parameters and structured output, made acceptable to each target.

- :func:`normalize_schema`: lower-cases ``type`` values (the google-genai SDK sends ``OBJECT``/``STRING``, which
  OpenAI and Anthropic reject) and drops ``null`` entries; used toward every target.
- :func:`gemini_schema`: keeps only the OpenAPI 3.0 subset Gemini accepts (it rejects ``$schema``,
  ``additionalProperties``, ``strict``, ``$ref``...), inlines local ``$ref``/``$defs``, and turns ``type: [x, "null"]``
  into ``type: x, nullable: true``. Source: ai.google.dev/api/caching#Schema (the Schema fields list).
Pure; returns new dicts, never mutates its input.
"""

from __future__ import annotations

from muxtrio.ir.request import JSON, JSONObject

_GEMINI_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def normalize_schema(schema: JSON) -> JSON:
    if isinstance(schema, list):
        return [normalize_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: JSONObject = {}
    for key, value in schema.items():
        if value is None:
            continue
        if key == "type":
            if isinstance(value, str):
                out[key] = value.lower()
            elif isinstance(value, list):
                out[key] = [v.lower() if isinstance(v, str) else v for v in value]
            else:
                out[key] = value
        elif key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: normalize_schema(sub) for name, sub in value.items()}
        else:
            out[key] = normalize_schema(value)
    return out


def _resolve_ref(ref: str, root: JSONObject) -> JSON:
    if not ref.startswith("#/"):
        return {}
    node: JSON = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node if node is not None else {}


def gemini_schema(schema: JSON, root: JSONObject | None = None, depth: int = 0) -> JSON:
    if depth > 32:  # a cyclic $ref: Gemini cannot express recursion, stop expanding
        return {"type": "object"}
    if isinstance(schema, list):
        return [gemini_schema(item, root, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if root is None:
        root = schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return gemini_schema(_resolve_ref(ref, root), root, depth + 1)
    out: JSONObject = {}
    for key, value in schema.items():
        if key not in _GEMINI_KEYS or value is None:
            continue
        if key == "type":
            if isinstance(value, list):
                types = [t for t in value if isinstance(t, str) and t.lower() != "null"]
                if len(types) < len(value):
                    out["nullable"] = True
                out["type"] = types[0].upper() if types else "STRING"
            elif isinstance(value, str):
                out["type"] = value.upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub, root, depth + 1) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = gemini_schema(value, root, depth + 1)
        elif key == "enum" and isinstance(value, list):
            out[key] = [str(v) for v in value if v is not None]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "STRING"
    return out


def object_or_empty(schema: JSON) -> JSONObject:
    return schema if isinstance(schema, dict) else {}

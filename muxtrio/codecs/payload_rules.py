"""llm-mux payload rules: operator-written edits of the provider request body, applied after translation.

Config (``payload:``, llm-mux's shape)::

    payload:
      default:                       # set only where the field is absent
        - models: [{name: "gemini-2.5-pro", protocol: gemini}]
          params: {"generationConfig.thinkingConfig.thinkingBudget": 32768}
      override:                      # always set
        - models: [{name: "gpt-*", protocol: openai}]
          params: {"reasoning.effort": "high"}

Semantics (llm-mux ``applyPayloadConfigWithRoot``):
- A rule applies when one of its ``models`` entries matches: ``name`` is a ``*`` wildcard pattern (case-insensitive
  here, as every model pattern in muxtrio) tried against the upstream model name and the name the client asked for;
  ``protocol``, when given, must be the provider's format (the config maps llm-mux's names — ``openai``, ``claude``,
  ``codex``... — to muxtrio formats).
- Paths are dot paths into the JSON body (gjson/sjson style): ``a.b.c``; a numeric segment indexes an array (``-1``
  appends when setting); ``\\.`` is a literal dot in a key. Missing (or null) objects on the way are created.
- Defaults run first, in order, and never replace a value that exists (so across rules the first default wins);
  overrides run next and always set (so the last override wins).
- A path that cannot be set (it runs through a string, or indexes past an array's end) is skipped and reported.

Pure: standard library, ``wire.jsonutil`` and ``codecs.base``; the rules come in already parsed
(:class:`PayloadRule`); the engine decides when to call :func:`apply_payload_rules` and logs the notes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from muxtrio.codecs.base import Format, WireRequest
from muxtrio.wildcard import wildcard_match
from muxtrio.wire import jsonutil

_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class PayloadModel:
    """One ``models`` entry: a name pattern and, optionally, the provider format it is limited to."""

    name: str
    protocol: Format | None = None


@dataclass(frozen=True, slots=True)
class PayloadRule:
    models: tuple[PayloadModel, ...]
    params: tuple[tuple[str, Any], ...]  # (dot path, JSON value), in config order

    def matches(self, names: Sequence[str], provider_format: Format) -> bool:
        return any(
            (entry.protocol is None or entry.protocol is provider_format)
            and any(wildcard_match(entry.name.strip(), name) for name in names)
            for entry in self.models
        )


@dataclass(frozen=True, slots=True)
class PayloadRules:
    default: tuple[PayloadRule, ...] = ()
    override: tuple[PayloadRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.default or self.override)


# ---------------------------------------------------------------------------------------------------- paths
def split_path(path: str) -> tuple[str, ...]:
    """``a.b\\.c.0`` -> ``("a", "b.c", "0")``. Raises ValueError for an empty path or segment."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(path.strip())
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    if any(not segment for segment in segments):
        raise ValueError(f"invalid payload path {path!r}: empty segment")
    return tuple(segments)


def _index(segment: str, length: int, *, for_set: bool) -> int | None:
    if segment == "-1" and for_set:
        return length
    if not segment.isdigit():
        return None
    index = int(segment)
    if index < length or (for_set and index == length):
        return index
    return None


def get_path(body: Any, segments: Sequence[str]) -> Any:
    """The value at ``segments``, or the module's missing marker."""
    node = body
    for segment in segments:
        if isinstance(node, dict):
            node = node.get(segment, _MISSING)
        elif isinstance(node, list):
            index = _index(segment, len(node), for_set=False)
            node = node[index] if index is not None else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def exists(body: Any, segments: Sequence[str]) -> bool:
    return get_path(body, segments) is not _MISSING


def set_path(body: Any, segments: Sequence[str], value: Any) -> bool:
    """Set ``value`` at ``segments``, creating objects on the way. False when the path cannot be set."""
    node = body
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if isinstance(node, dict):
            if last:
                node[segment] = copy.deepcopy(value)
                return True
            child = node.get(segment)
            if child is None:  # absent or null: created
                child = {}
                node[segment] = child
            elif not isinstance(child, dict | list):
                return False  # a scalar on the way is not replaced
            node = child
        elif isinstance(node, list):
            index = _index(segment, len(node), for_set=True)
            if index is None:
                return False
            if index == len(node):
                node.append(copy.deepcopy(value) if last else {})
                if last:
                    return True
            elif last:
                node[index] = copy.deepcopy(value)
                return True
            node = node[index]
        else:
            return False
    return False


# ---------------------------------------------------------------------------------------------------- application
def matching(rules: PayloadRules, names: Iterable[str], provider_format: Format) -> PayloadRules:
    """The rules that apply to a request for ``names`` (upstream and requested model) on ``provider_format``."""
    candidates = tuple(dict.fromkeys(name for name in names if name))
    return PayloadRules(
        tuple(rule for rule in rules.default if rule.matches(candidates, provider_format)),
        tuple(rule for rule in rules.override if rule.matches(candidates, provider_format)),
    )


def apply_to_body(body: dict[str, Any], rules: PayloadRules) -> list[str]:
    """Apply ``rules`` (already filtered by :func:`matching`) to a parsed body in place; returns notes."""
    notes: list[str] = []
    for rule in rules.default:
        for path, value in rule.params:
            segments = split_path(path)
            if exists(body, segments):
                continue
            notes.append(f"default {path}" if set_path(body, segments, value) else f"default {path}: cannot be set")
    for rule in rules.override:
        for path, value in rule.params:
            segments = split_path(path)
            notes.append(f"override {path}" if set_path(body, segments, value) else f"override {path}: cannot be set")
    return notes


def apply_payload_rules(wire: WireRequest, rules: PayloadRules) -> tuple[WireRequest, list[str]]:
    """``wire`` with ``rules`` applied to its JSON body. Bodies that are not a JSON object are left alone."""
    if not rules:
        return wire, []
    try:
        body = jsonutil.loads(wire.body)
    except jsonutil.JSONDecodeError:
        return wire, ["body is not JSON; payload rules skipped"]
    if not isinstance(body, dict):
        return wire, ["body is not a JSON object; payload rules skipped"]
    notes = apply_to_body(body, rules)
    if not notes:
        return wire, notes
    return WireRequest(wire.method, wire.path, wire.headers, jsonutil.dumps(body)), notes


__all__ = [
    "PayloadModel",
    "PayloadRule",
    "PayloadRules",
    "apply_payload_rules",
    "apply_to_body",
    "exists",
    "get_path",
    "matching",
    "set_path",
    "split_path",
]

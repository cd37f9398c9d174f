"""The IR request: what a client asked for, independent of any wire format.

Invariants:
- Frozen, slotted dataclasses; closed sets are StrEnums; no ``Any``. JSON-shaped values (tool schemas, opaque
  per-format extras) are typed as :data:`JSON`.
- Content parts are shared by requests and responses (``Message.parts`` and ``Response.parts``).
- Opaque provider data (reasoning signatures, redacted thinking, tool-call signatures) is kept as the exact string the
  provider sent, so that it round-trips byte for byte.
- Pure: imports nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


# --------------------------------------------------------------------------------------------------- content parts
@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image by URL (``url``, which may be a ``data:`` URL) or inline base64 (``data`` + ``mime_type``)."""

    url: str | None = None
    data: str | None = None
    mime_type: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class File:
    """A document: by provider file id, URL, or inline base64 data."""

    file_id: str | None = None
    url: str | None = None
    data: str | None = None
    mime_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Model thinking. ``signature`` is opaque (Anthropic ``signature``, Gemini ``thoughtSignature``, Responses
    ``encrypted_content``) and must reach the provider again byte-exact."""

    text: str
    signature: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RedactedReasoning:
    """Anthropic ``redacted_thinking``: opaque data only; round-trips byte-exact."""

    data: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made. ``arguments`` is the JSON text exactly as produced (may be ``""`` for no arguments).
    ``signature`` carries Gemini's ``thoughtSignature`` on a ``functionCall`` part."""

    id: str
    name: str
    arguments: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of a tool call, sent back by the client. ``name`` is known in some formats only."""

    call_id: str
    content: tuple[Text | Image, ...]
    name: str | None = None
    is_error: bool = False


Part: TypeAlias = Text | Image | File | Reasoning | RedactedReasoning | ToolCall | ToolResult


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    name: str | None = None


# --------------------------------------------------------------------------------------------------- request options
@dataclass(frozen=True, slots=True)
class Tool:
    """A function tool. ``parameters`` is a JSON Schema object as the client sent it; codecs sanitise it per target."""

    name: str
    description: str | None = None
    parameters: JSONObject | None = None
    strict: bool | None = None


class HostedToolKind(StrEnum):
    """Tools that a provider runs itself and that more than one format can express."""

    WEB_SEARCH = "web_search"


@dataclass(frozen=True, slots=True)
class HostedTool:
    """A provider-run tool in neutral form (Responses ``web_search``, Anthropic ``web_search_20250305``, Gemini
    ``googleSearch``). A client codec puts it here only when the request goes to another format that can run the
    same kind (``Codec.adapt_to_target``); the same-format path keeps the client's own JSON in its extensions.
    Domain filters are kept where the target has them (Anthropic: one of the two lists)."""

    kind: HostedToolKind
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()


class ToolChoiceMode(StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"  # the model must call some tool
    TOOL = "tool"  # the model must call ``ToolChoice.name``


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode
    name: str | None = None


class Effort(StrEnum):
    NONE = "none"
    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"


@dataclass(frozen=True, slots=True)
class Thinking:
    """Reasoning configuration. ``enabled=None`` means the client said nothing (provider default).

    ``budget_tokens`` and ``effort`` may both be set; codecs translate whichever the target understands through the
    table in :mod:`muxtrio.ir.thinking`. ``budget_tokens=-1`` means "dynamic" (Gemini)."""

    enabled: bool | None = None
    budget_tokens: int | None = None
    effort: Effort | None = None
    include_thoughts: bool | None = None


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    n: int | None = None


class ResponseFormatType(StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: ResponseFormatType
    schema: JSONObject | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One generation request.

    ``system`` holds the system prompt as text parts (all formats' system/developer/instructions forms end here).
    ``extensions`` maps a format name to that format's own extras, read only by that format's codec.
    """

    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    tools: tuple[Tool, ...] = ()
    hosted_tools: tuple[HostedTool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    sampling: Sampling = field(default_factory=Sampling)
    thinking: Thinking = field(default_factory=Thinking)
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    service_tier: str | None = None
    previous_response_id: str | None = None
    extensions: Mapping[str, JSONObject] = field(default_factory=dict)


def has_signatures(request: Request) -> bool:
    """Whether the conversation carries opaque provider data (reasoning signatures, redacted thinking, signed
    tool calls) that only the provider which produced it can verify."""
    return any(
        isinstance(part, RedactedReasoning) or (isinstance(part, Reasoning | ToolCall) and part.signature)
        for message in request.messages
        for part in message.parts
    )


def without_signatures(request: Request) -> Request:
    """The request with that opaque data removed: reasoning and redacted reasoning dropped from the history, tool
    calls kept without their signatures, messages left empty removed. Used when a provider rejects signatures that
    another provider made (a conversation that moved between providers)."""
    messages: list[Message] = []
    for message in request.messages:
        parts: list[Part] = []
        for part in message.parts:
            if isinstance(part, Reasoning | RedactedReasoning):
                continue
            if isinstance(part, ToolCall) and part.signature:
                part = ToolCall(part.id, part.name, part.arguments)
            parts.append(part)
        if parts:
            messages.append(Message(message.role, tuple(parts), message.name))
    return replace(request, messages=tuple(messages))

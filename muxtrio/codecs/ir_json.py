"""The ``"ir"`` format: muxtrio's own IR as JSON, spoken on the multiplexed WebSocket protocol (``/v1/ws``) by the
server and by :mod:`muxtrio.client`, which both import it from here.

An IR event is ``{"type": <tag>, <its dataclass fields>}`` where the tag is the class name in snake_case
(``text_delta``, ``tool_call_start``, ``usage_update``...), ``Usage`` is an object of its counters (plus
``total_tokens`` on the way out) and enums are their values. An IR request is the dataclass tree as JSON with content
parts tagged by ``type`` (``text``, ``image``, ``file``, ``reasoning``, ``redacted_reasoning``, ``tool_call``,
``tool_result``). ``docs/websocket.md`` has the full table.

Invariants: ``*_from_json`` reads untrusted JSON with the shared :mod:`muxtrio.wire.jsonutil` readers, so a bad
field is a ``ClientError`` naming its path, never a ``KeyError``/``TypeError``; a request read here always streams;
``event_from_json(event_to_json(e)) == e`` and ``request_from_json(request_to_json(r)) == r`` for every IR value.
Pure: IR, errors, ``wire`` and the codec contract (:mod:`muxtrio.codecs.base`) only.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from muxtrio.codecs.base import StreamEncoder
from muxtrio.errors import MuxError
from muxtrio.ir.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoningBlock,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
)
from muxtrio.ir.request import (
    Effort,
    File,
    Image,
    JSONObject,
    Message,
    Part,
    Reasoning,
    RedactedReasoning,
    Request,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Sampling,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
)
from muxtrio.ir.response import FinishReason, Usage
from muxtrio.wire.framing import Frame
from muxtrio.wire.jsonutil import (
    as_array,
    as_object,
    as_str,
    dumps,
    get_array,
    get_bool,
    get_int,
    get_number,
    get_object,
    get_str,
    invalid,
    require_int,
    require_str,
)
from muxtrio.wire.ndjson import NDJSONFramer

FORMAT = "ir"
"""The format name a ``/v1/ws`` request message gives to speak IR JSON."""

EVENT_TAGS: dict[type[Event], str] = {
    Start: "start",
    TextDelta: "text_delta",
    ReasoningDelta: "reasoning_delta",
    ReasoningSignature: "reasoning_signature",
    RedactedReasoningBlock: "redacted_reasoning_block",
    ToolCallStart: "tool_call_start",
    ToolCallDelta: "tool_call_delta",
    ToolCallEnd: "tool_call_end",
    UsageUpdate: "usage_update",
    Finish: "finish",
}
"""IR event class -> its ``type`` tag in the ``"ir"`` format (the class name in snake_case)."""

PART_TAGS: dict[type[Part], str] = {
    Text: "text",
    Image: "image",
    File: "file",
    Reasoning: "reasoning",
    RedactedReasoning: "redacted_reasoning",
    ToolCall: "tool_call",
    ToolResult: "tool_result",
}
"""IR content part class -> its ``type`` tag in an ``"ir"`` request."""

USAGE_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens")


def usage_to_json(usage: Usage) -> dict[str, int]:
    out = {name: int(getattr(usage, name)) for name in USAGE_FIELDS}
    out["total_tokens"] = usage.total_tokens
    return out


def usage_from_json(value: Any, path: str = "usage") -> Usage:
    obj = as_object(value, path)
    counts: dict[str, int] = {}
    for name in USAGE_FIELDS:
        got = get_int(obj, name, f"{path}.{name}")
        if got is not None:
            counts[name] = got
    return Usage(**counts)


def event_to_json(event: Event) -> dict[str, Any]:
    """An IR event as the ``data`` of an ``"ir"`` stream's ``event`` message."""
    match event:
        case Start(id=id_, model=model):
            return {"type": "start", "id": id_, "model": model}
        case TextDelta(index=index, text=text):
            return {"type": "text_delta", "index": index, "text": text}
        case ReasoningDelta(index=index, text=text):
            return {"type": "reasoning_delta", "index": index, "text": text}
        case ReasoningSignature(index=index, signature=signature):
            return {"type": "reasoning_signature", "index": index, "signature": signature}
        case RedactedReasoningBlock(index=index, data=data):
            return {"type": "redacted_reasoning_block", "index": index, "data": data}
        case ToolCallStart(index=index, id=id_, name=name, signature=signature):
            return {"type": "tool_call_start", "index": index, "id": id_, "name": name, "signature": signature}
        case ToolCallDelta(index=index, arguments=arguments):
            return {"type": "tool_call_delta", "index": index, "arguments": arguments}
        case ToolCallEnd(index=index):
            return {"type": "tool_call_end", "index": index}
        case UsageUpdate(usage=usage):
            return {"type": "usage_update", "usage": usage_to_json(usage)}
        case Finish(reason=reason, stop_sequence=stop_sequence):
            return {"type": "finish", "reason": reason.value, "stop_sequence": stop_sequence}
    raise TypeError(f"not an IR event: {event!r}")


class IRStreamEncoder(StreamEncoder):
    """IR events -> their ``"ir"`` JSON, one frame each (a ``/v1/ws`` stream in format ``"ir"``). No final or error
    frames: the protocol's own ``done`` / ``error`` messages end such a stream. Framed as NDJSON where bytes are
    needed."""

    content_type = "application/x-ndjson"
    keepalive = None

    def __init__(self) -> None:
        self.framer = NDJSONFramer()

    def frames(self, event: Event) -> tuple[Frame, ...]:
        return ((None, dumps(event_to_json(event))),)

    def final_frames(self) -> tuple[Frame, ...]:
        return ()

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        return ()


def event_from_json(value: Any) -> Event:
    """The inverse of :func:`event_to_json`. Raises ``ClientError`` naming the bad field."""
    obj = as_object(value, "event")
    tag = obj.get("type")

    def index() -> int:
        return require_int(obj, "index", "event.index")

    def text(key: str) -> str:
        return require_str(obj, key, f"event.{key}")

    if tag == "start":
        return Start(text("id"), text("model"))
    if tag == "text_delta":
        return TextDelta(index(), text("text"))
    if tag == "reasoning_delta":
        return ReasoningDelta(index(), text("text"))
    if tag == "reasoning_signature":
        return ReasoningSignature(index(), text("signature"))
    if tag == "redacted_reasoning_block":
        return RedactedReasoningBlock(index(), text("data"))
    if tag == "tool_call_start":
        return ToolCallStart(index(), text("id"), text("name"), get_str(obj, "signature", "event.signature"))
    if tag == "tool_call_delta":
        return ToolCallDelta(index(), text("arguments"))
    if tag == "tool_call_end":
        return ToolCallEnd(index())
    if tag == "usage_update":
        return UsageUpdate(usage_from_json(obj.get("usage"), "event.usage"))
    if tag == "finish":
        reason = _enum(FinishReason, obj.get("reason"), "event.reason")
        return Finish(reason, get_str(obj, "stop_sequence", "event.stop_sequence"))
    raise invalid(f"unknown IR event type {tag!r}", "event.type")


# ------------------------------------------------------------------------------------------------ requests
_REQUEST_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "sampling",
        "thinking",
        "response_format",
        "stream",
        "include_usage",
        "user",
        "metadata",
        "service_tier",
        "previous_response_id",
        "extensions",
    }
)


def request_to_json(request: Request) -> dict[str, Any]:
    """An IR request as the ``body`` of an ``"ir"`` request message (``None`` fields and empty defaults left out)."""
    out: dict[str, Any] = {
        "model": request.model,
        "messages": [_message_to_json(m) for m in request.messages],
    }
    if request.system:
        out["system"] = [_part_to_json(p) for p in request.system]
    if request.tools:
        out["tools"] = [_plain(t) for t in request.tools]
    for key in (
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "service_tier",
        "previous_response_id",
    ):
        value = getattr(request, key)
        if value is not None:
            out[key] = _plain(value)
    for key in ("sampling", "thinking"):
        plain = _plain(getattr(request, key))
        if plain:
            out[key] = plain
    if request.include_usage:
        out["include_usage"] = True
    if request.metadata:
        out["metadata"] = dict(request.metadata)
    if request.extensions:
        out["extensions"] = {k: dict(v) for k, v in request.extensions.items()}
    return out


def request_from_json(value: Any) -> Request:
    """An ``"ir"`` request body -> ``ir.Request`` (always streaming). Raises ``ClientError`` naming the bad field."""
    body = as_object(value, "body")
    unknown = sorted(set(body) - _REQUEST_KEYS)
    if unknown:
        raise invalid(f"unknown IR request field(s): {', '.join(unknown)}", f"body.{unknown[0]}")
    model = require_str(body, "model", "body.model")
    if not model:
        raise invalid("`body.model` must not be empty", "body.model")
    messages = tuple(
        _message_from_json(m, f"body.messages[{i}]")
        for i, m in enumerate(as_array(body.get("messages"), "body.messages"))
    )
    system_raw = body.get("system")
    system: tuple[Text, ...]
    if system_raw is None:
        system = ()
    elif isinstance(system_raw, str):
        system = (Text(system_raw),)
    else:
        system = tuple(
            _text_part(p, f"body.system[{i}]") for i, p in enumerate(as_array(body.get("system"), "body.system"))
        )
    tools = tuple(
        _tool_from_json(t, f"body.tools[{i}]") for i, t in enumerate(get_array(body, "tools", "body.tools") or [])
    )
    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice_from_json(body.get("tool_choice")),
        parallel_tool_calls=get_bool(body, "parallel_tool_calls", "body.parallel_tool_calls"),
        sampling=_sampling_from_json(body.get("sampling")),
        thinking=_thinking_from_json(body.get("thinking")),
        response_format=_response_format_from_json(body.get("response_format")),
        stream=True,
        include_usage=bool(get_bool(body, "include_usage", "body.include_usage")),
        user=get_str(body, "user", "body.user"),
        metadata=_str_map(body.get("metadata"), "body.metadata"),
        service_tier=get_str(body, "service_tier", "body.service_tier"),
        previous_response_id=get_str(body, "previous_response_id", "body.previous_response_id"),
        extensions=_extensions(body.get("extensions")),
    )


def _plain(value: Any) -> Any:
    """A small IR value (dataclass, enum, tuple) as JSON, ``None`` fields left out."""
    if isinstance(value, Role | ToolChoiceMode | Effort | ResponseFormatType | FinishReason):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    slots = getattr(type(value), "__dataclass_fields__", None)
    if slots is not None:
        return {name: _plain(v) for name in slots if (v := getattr(value, name)) is not None and v != ()}
    return value


def _part_to_json(part: Part) -> dict[str, Any]:
    out: dict[str, Any] = {"type": PART_TAGS[type(part)]}
    if isinstance(part, ToolResult):
        out["call_id"] = part.call_id
        out["content"] = [_part_to_json(p) for p in part.content]
        if part.name is not None:
            out["name"] = part.name
        if part.is_error:
            out["is_error"] = True
        return out
    out.update(_plain(part))
    return out


def _message_to_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role.value, "parts": [_part_to_json(p) for p in message.parts]}
    if message.name is not None:
        out["name"] = message.name
    return out


def _message_from_json(value: Any, path: str) -> Message:
    obj = as_object(value, path)
    role = _enum(Role, obj.get("role"), f"{path}.role")
    parts = tuple(
        _part_from_json(p, f"{path}.parts[{i}]") for i, p in enumerate(as_array(obj.get("parts"), f"{path}.parts"))
    )
    return Message(role, parts, name=get_str(obj, "name", f"{path}.name"))


def _text_part(value: Any, path: str) -> Text:
    if isinstance(value, str):
        return Text(value)
    part = _part_from_json(value, path)
    if not isinstance(part, Text):
        raise invalid(f"`{path}` must be a text part", path)
    return part


def _part_from_json(value: Any, path: str) -> Part:
    obj = as_object(value, path)
    tag = obj.get("type")
    if tag == "text":
        return Text(require_str(obj, "text", f"{path}.text"))
    if tag == "image":
        image = Image(
            url=get_str(obj, "url", f"{path}.url"),
            data=get_str(obj, "data", f"{path}.data"),
            mime_type=get_str(obj, "mime_type", f"{path}.mime_type"),
            detail=get_str(obj, "detail", f"{path}.detail"),
        )
        if image.url is None and image.data is None:
            raise invalid(f"`{path}` needs `url` or `data`", path)
        return image
    if tag == "file":
        return File(
            file_id=get_str(obj, "file_id", f"{path}.file_id"),
            url=get_str(obj, "url", f"{path}.url"),
            data=get_str(obj, "data", f"{path}.data"),
            mime_type=get_str(obj, "mime_type", f"{path}.mime_type"),
            filename=get_str(obj, "filename", f"{path}.filename"),
        )
    if tag == "reasoning":
        return Reasoning(
            require_str(obj, "text", f"{path}.text"),
            get_str(obj, "signature", f"{path}.signature"),
            get_str(obj, "id", f"{path}.id"),
        )
    if tag == "redacted_reasoning":
        return RedactedReasoning(require_str(obj, "data", f"{path}.data"))
    if tag == "tool_call":
        arguments = obj.get("arguments", "")
        if isinstance(arguments, dict):
            arguments = dumps(arguments).decode()
        if not isinstance(arguments, str):
            raise invalid(f"`{path}.arguments` must be a JSON text (string)", f"{path}.arguments")
        return ToolCall(
            require_str(obj, "id", f"{path}.id"),
            require_str(obj, "name", f"{path}.name"),
            arguments,
            get_str(obj, "signature", f"{path}.signature"),
        )
    if tag == "tool_result":
        content: list[Text | Image] = []
        for i, raw in enumerate(as_array(obj.get("content"), f"{path}.content")):
            part = _part_from_json(raw, f"{path}.content[{i}]")
            if not isinstance(part, Text | Image):
                raise invalid(f"`{path}.content[{i}]` must be a text or image part", f"{path}.content[{i}]")
            content.append(part)
        return ToolResult(
            require_str(obj, "call_id", f"{path}.call_id"),
            tuple(content),
            name=get_str(obj, "name", f"{path}.name"),
            is_error=bool(get_bool(obj, "is_error", f"{path}.is_error")),
        )
    raise invalid(f"unknown part type {tag!r}", f"{path}.type")


def _tool_from_json(value: Any, path: str) -> Tool:
    obj = as_object(value, path)
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid(f"`{path}.parameters` must be a JSON schema object", f"{path}.parameters")
    return Tool(
        name=require_str(obj, "name", f"{path}.name"),
        description=get_str(obj, "description", f"{path}.description"),
        parameters=cast("JSONObject | None", parameters),
        strict=get_bool(obj, "strict", f"{path}.strict"),
    )


def _tool_choice_from_json(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ToolChoice(_enum(ToolChoiceMode, value, "body.tool_choice"))
    obj = as_object(value, "body.tool_choice")
    mode = _enum(ToolChoiceMode, obj.get("mode"), "body.tool_choice.mode")
    return ToolChoice(mode, get_str(obj, "name", "body.tool_choice.name"))


def _sampling_from_json(value: Any) -> Sampling:
    if value is None:
        return Sampling()
    path = "body.sampling"
    obj = as_object(value, path)
    stop = obj.get("stop")
    if isinstance(stop, str):
        stops: tuple[str, ...] = (stop,)
    else:
        stops = tuple(
            as_str(s, f"{path}.stop[{i}]") for i, s in enumerate(get_array(obj, "stop", f"{path}.stop") or [])
        )
    return Sampling(
        temperature=get_number(obj, "temperature", f"{path}.temperature"),
        top_p=get_number(obj, "top_p", f"{path}.top_p"),
        top_k=get_int(obj, "top_k", f"{path}.top_k"),
        max_tokens=get_int(obj, "max_tokens", f"{path}.max_tokens"),
        stop=stops,
        seed=get_int(obj, "seed", f"{path}.seed"),
        frequency_penalty=get_number(obj, "frequency_penalty", f"{path}.frequency_penalty"),
        presence_penalty=get_number(obj, "presence_penalty", f"{path}.presence_penalty"),
        n=get_int(obj, "n", f"{path}.n"),
    )


def _thinking_from_json(value: Any) -> Thinking:
    if value is None:
        return Thinking()
    path = "body.thinking"
    obj = as_object(value, path)
    effort = obj.get("effort")
    return Thinking(
        enabled=get_bool(obj, "enabled", f"{path}.enabled"),
        budget_tokens=get_int(obj, "budget_tokens", f"{path}.budget_tokens"),
        effort=_enum(Effort, effort, f"{path}.effort") if effort is not None else None,
        include_thoughts=get_bool(obj, "include_thoughts", f"{path}.include_thoughts"),
    )


def _response_format_from_json(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    path = "body.response_format"
    obj = as_object(value, path)
    schema = get_object(obj, "schema", f"{path}.schema")
    return ResponseFormat(
        type=_enum(ResponseFormatType, obj.get("type"), f"{path}.type"),
        schema=cast("JSONObject | None", schema),
        name=get_str(obj, "name", f"{path}.name"),
        strict=get_bool(obj, "strict", f"{path}.strict"),
    )


def _str_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    obj = as_object(value, path)
    for key, item in obj.items():
        as_str(item, f"{path}.{key}")
    return cast(dict[str, str], obj)


def _extensions(value: Any) -> dict[str, JSONObject]:
    if value is None:
        return {}
    obj = as_object(value, "body.extensions")
    for key, item in obj.items():
        as_object(item, f"body.extensions.{key}")
    return cast("dict[str, JSONObject]", obj)


# ------------------------------------------------------------------------------------------------ enums
E = TypeVar("E", Role, ToolChoiceMode, Effort, ResponseFormatType, FinishReason)


def _enum(cls: type[E], value: Any, path: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise invalid(f"`{path}` must be one of: {allowed}", path) from None

"""The trio client of muxtrio's multiplexed WebSocket protocol (``/v1/ws``), and the protocol's ``"ir"`` JSON mapping.

Use::

    async with muxtrio.client.connect("ws://127.0.0.1:8080/v1/ws", api_key=KEY) as mux:
        async with mux.stream("openai-chat", {"model": "m", "messages": [...]}) as events:
            async for chunk in events:      # that format's stream objects (dicts)
                ...
            print(events.usage)             # from the server's ``done`` message

        async with mux.stream("ir", ir.Request(...)) as events:
            async for event in events:      # ir.Event objects
                ...

Many streams run concurrently over one socket (open them from tasks of one nursery). See ``docs/websocket.md`` for
the protocol itself.

Invariants:
- Structured concurrency: :func:`connect` is a context manager that owns one nursery with one reader task; leaving
  it cancels the reader and closes the socket. :meth:`Mux.stream` starts no task. Nothing outlives its block.
- Flow control: a stream is opened with a credit window ``W``; credit is granted back (``credit`` message) once the
  consumer has *taken* ``max(1, W // 2)`` events, so at most ``W`` events of a stream are ever buffered here. The
  reader never blocks on a slow consumer (other streams keep flowing); a server that overruns the window fails
  that stream with a protocol error instead of growing memory.
- Leaving a stream's block before its ``done``/``error`` sends ``cancel`` (shielded, with a short timeout, so it is
  sent even when the block is left by cancellation); messages for that id that arrive later are dropped.
- Stream ids are unique per connection (a counter); they are never reused.
- Errors: a stream's ``error`` message is raised from iteration as :class:`MuxError` with the server's kind,
  status and message; a lost connection is ``MuxError(UNAVAILABLE)``; a refused upgrade is raised by ``connect``
  as ``MuxError`` with the HTTP status. The API key is sent as ``Authorization: Bearer`` and appears in no error.

The ``"ir"`` JSON mapping (shared with the server, which imports it from here: this module imports nothing from
``muxtrio.server``): an IR event is ``{"type": <tag>, <its dataclass fields>}`` where the tag is the class name in
snake_case (``text_delta``, ``tool_call_start``, ``usage_update``...), ``Usage`` is an object of its counters
(plus ``total_tokens`` on the way out) and enums are their values. An IR request is the dataclass tree as JSON
with content parts tagged by ``type`` (``text``, ``image``, ``file``, ``reasoning``, ``redacted_reasoning``,
``tool_call``, ``tool_result``). ``docs/websocket.md`` has the full table.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, Literal, NoReturn, TypeAlias, TypeVar, cast, overload
from urllib.parse import urlsplit, urlunsplit

import orjson
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, WebSocketConnection, open_websocket_url

from muxtrio.errors import DEFAULT_STATUS, ClientError, ErrorKind, MuxError
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

log = logging.getLogger("muxtrio.client")

DEFAULT_WINDOW = 64
"""Events a stream may have in flight (sent by the server, not yet taken by the consumer)."""
MAX_WINDOW = 4096
"""The largest window the server accepts for one stream."""
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
"""Largest server message the client accepts (a Responses ``response.completed`` carries the whole answer)."""
CANCEL_TIMEOUT = 2.0

WireFormat: TypeAlias = Literal["openai-chat", "openai-responses", "anthropic", "gemini", "ollama"]

# =============================================================================================== IR <-> JSON
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
    obj = _obj(value, path)
    counts: dict[str, int] = {}
    for name in USAGE_FIELDS:
        got = _opt_int(obj, name, path)
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


def event_from_json(value: Any) -> Event:
    """The inverse of :func:`event_to_json`. Raises ``ClientError`` naming the bad field."""
    obj = _obj(value, "event")
    tag = obj.get("type")

    def index() -> int:
        return _int(obj, "index", "event")

    def text(key: str) -> str:
        return _str(obj, key, "event")

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
        return ToolCallStart(index(), text("id"), text("name"), _opt_str(obj, "signature", "event"))
    if tag == "tool_call_delta":
        return ToolCallDelta(index(), text("arguments"))
    if tag == "tool_call_end":
        return ToolCallEnd(index())
    if tag == "usage_update":
        return UsageUpdate(usage_from_json(obj.get("usage"), "event.usage"))
    if tag == "finish":
        reason = _enum(FinishReason, obj.get("reason"), "event.reason")
        return Finish(reason, _opt_str(obj, "stop_sequence", "event"))
    raise _invalid(f"unknown IR event type {tag!r}", "event.type")


# ------------------------------------------------------------------------------------------------ requests
_REQUEST_KEYS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "parallel_tool_calls", "sampling", "thinking",
     "response_format", "stream", "include_usage", "user", "metadata", "service_tier", "previous_response_id",
     "extensions"}
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
    for key in ("tool_choice", "parallel_tool_calls", "response_format", "user", "service_tier",
                "previous_response_id"):
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
    body = _obj(value, "body")
    unknown = sorted(set(body) - _REQUEST_KEYS)
    if unknown:
        raise _invalid(f"unknown IR request field(s): {', '.join(unknown)}", f"body.{unknown[0]}")
    model = _str(body, "model", "body")
    if not model:
        raise _invalid("`body.model` must not be empty", "body.model")
    messages = tuple(
        _message_from_json(m, f"body.messages[{i}]") for i, m in enumerate(_list(body, "messages", "body"))
    )
    system_raw = body.get("system")
    system: tuple[Text, ...]
    if system_raw is None:
        system = ()
    elif isinstance(system_raw, str):
        system = (Text(system_raw),)
    else:
        system = tuple(_text_part(p, f"body.system[{i}]") for i, p in enumerate(_list(body, "system", "body")))
    tools = tuple(_tool_from_json(t, f"body.tools[{i}]") for i, t in enumerate(_list(body, "tools", "body", True)))
    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice_from_json(body.get("tool_choice")),
        parallel_tool_calls=_opt_bool(body, "parallel_tool_calls", "body"),
        sampling=_sampling_from_json(body.get("sampling")),
        thinking=_thinking_from_json(body.get("thinking")),
        response_format=_response_format_from_json(body.get("response_format")),
        stream=True,
        include_usage=bool(_opt_bool(body, "include_usage", "body")),
        user=_opt_str(body, "user", "body"),
        metadata=_str_map(body.get("metadata"), "body.metadata"),
        service_tier=_opt_str(body, "service_tier", "body"),
        previous_response_id=_opt_str(body, "previous_response_id", "body"),
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
    obj = _obj(value, path)
    role = _enum(Role, obj.get("role"), f"{path}.role")
    parts = tuple(_part_from_json(p, f"{path}.parts[{i}]") for i, p in enumerate(_list(obj, "parts", path)))
    return Message(role, parts, name=_opt_str(obj, "name", path))


def _text_part(value: Any, path: str) -> Text:
    if isinstance(value, str):
        return Text(value)
    part = _part_from_json(value, path)
    if not isinstance(part, Text):
        raise _invalid(f"`{path}` must be a text part", path)
    return part


def _part_from_json(value: Any, path: str) -> Part:
    obj = _obj(value, path)
    tag = obj.get("type")
    if tag == "text":
        return Text(_str(obj, "text", path))
    if tag == "image":
        image = Image(
            url=_opt_str(obj, "url", path),
            data=_opt_str(obj, "data", path),
            mime_type=_opt_str(obj, "mime_type", path),
            detail=_opt_str(obj, "detail", path),
        )
        if image.url is None and image.data is None:
            raise _invalid(f"`{path}` needs `url` or `data`", path)
        return image
    if tag == "file":
        return File(
            file_id=_opt_str(obj, "file_id", path),
            url=_opt_str(obj, "url", path),
            data=_opt_str(obj, "data", path),
            mime_type=_opt_str(obj, "mime_type", path),
            filename=_opt_str(obj, "filename", path),
        )
    if tag == "reasoning":
        return Reasoning(_str(obj, "text", path), _opt_str(obj, "signature", path), _opt_str(obj, "id", path))
    if tag == "redacted_reasoning":
        return RedactedReasoning(_str(obj, "data", path))
    if tag == "tool_call":
        arguments = obj.get("arguments", "")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        if not isinstance(arguments, str):
            raise _invalid(f"`{path}.arguments` must be a JSON text (string)", f"{path}.arguments")
        return ToolCall(_str(obj, "id", path), _str(obj, "name", path), arguments, _opt_str(obj, "signature", path))
    if tag == "tool_result":
        content: list[Text | Image] = []
        for i, raw in enumerate(_list(obj, "content", path)):
            part = _part_from_json(raw, f"{path}.content[{i}]")
            if not isinstance(part, Text | Image):
                raise _invalid(f"`{path}.content[{i}]` must be a text or image part", f"{path}.content[{i}]")
            content.append(part)
        return ToolResult(
            _str(obj, "call_id", path),
            tuple(content),
            name=_opt_str(obj, "name", path),
            is_error=bool(_opt_bool(obj, "is_error", path)),
        )
    raise _invalid(f"unknown part type {tag!r}", f"{path}.type")


def _tool_from_json(value: Any, path: str) -> Tool:
    obj = _obj(value, path)
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise _invalid(f"`{path}.parameters` must be a JSON schema object", f"{path}.parameters")
    return Tool(
        name=_str(obj, "name", path),
        description=_opt_str(obj, "description", path),
        parameters=cast("JSONObject | None", parameters),
        strict=_opt_bool(obj, "strict", path),
    )


def _tool_choice_from_json(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ToolChoice(_enum(ToolChoiceMode, value, "body.tool_choice"))
    obj = _obj(value, "body.tool_choice")
    mode = _enum(ToolChoiceMode, obj.get("mode"), "body.tool_choice.mode")
    return ToolChoice(mode, _opt_str(obj, "name", "body.tool_choice"))


def _sampling_from_json(value: Any) -> Sampling:
    if value is None:
        return Sampling()
    path = "body.sampling"
    obj = _obj(value, path)
    stop = obj.get("stop")
    if isinstance(stop, str):
        stops: tuple[str, ...] = (stop,)
    else:
        stops = tuple(_item_str(s, f"{path}.stop[{i}]") for i, s in enumerate(_list(obj, "stop", path, True)))
    return Sampling(
        temperature=_opt_float(obj, "temperature", path),
        top_p=_opt_float(obj, "top_p", path),
        top_k=_opt_int(obj, "top_k", path),
        max_tokens=_opt_int(obj, "max_tokens", path),
        stop=stops,
        seed=_opt_int(obj, "seed", path),
        frequency_penalty=_opt_float(obj, "frequency_penalty", path),
        presence_penalty=_opt_float(obj, "presence_penalty", path),
        n=_opt_int(obj, "n", path),
    )


def _thinking_from_json(value: Any) -> Thinking:
    if value is None:
        return Thinking()
    path = "body.thinking"
    obj = _obj(value, path)
    effort = obj.get("effort")
    return Thinking(
        enabled=_opt_bool(obj, "enabled", path),
        budget_tokens=_opt_int(obj, "budget_tokens", path),
        effort=_enum(Effort, effort, f"{path}.effort") if effort is not None else None,
        include_thoughts=_opt_bool(obj, "include_thoughts", path),
    )


def _response_format_from_json(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    path = "body.response_format"
    obj = _obj(value, path)
    schema = obj.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise _invalid(f"`{path}.schema` must be an object", f"{path}.schema")
    return ResponseFormat(
        type=_enum(ResponseFormatType, obj.get("type"), f"{path}.type"),
        schema=cast("JSONObject | None", schema),
        name=_opt_str(obj, "name", path),
        strict=_opt_bool(obj, "strict", path),
    )


def _str_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    obj = _obj(value, path)
    for key, item in obj.items():
        if not isinstance(item, str):
            raise _invalid(f"`{path}.{key}` must be a string", f"{path}.{key}")
    return cast(dict[str, str], obj)


def _extensions(value: Any) -> dict[str, JSONObject]:
    if value is None:
        return {}
    obj = _obj(value, "body.extensions")
    for key, item in obj.items():
        _obj(item, f"body.extensions.{key}")
    return cast("dict[str, JSONObject]", obj)


# ------------------------------------------------------------------------------------------------ readers
def _invalid(message: str, param: str) -> ClientError:
    return ClientError(ErrorKind.INVALID_REQUEST, message, param=param)


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"`{path}` must be an object", path)
    return value


def _list(obj: Mapping[str, Any], key: str, path: str, optional: bool = False) -> list[Any]:
    value = obj.get(key)
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise _invalid(f"`{path}.{key}` must be an array", f"{path}.{key}")
    return value


def _str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _invalid(f"`{path}.{key}` must be a string", f"{path}.{key}")
    return value


def _item_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"`{path}` must be a string", path)
    return value


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"`{path}.{key}` must be a string", f"{path}.{key}")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"`{path}.{key}` must be an integer", f"{path}.{key}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, path)


def _opt_float(obj: Mapping[str, Any], key: str, path: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"`{path}.{key}` must be a number", f"{path}.{key}")
    return float(value)


def _opt_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(f"`{path}.{key}` must be a boolean", f"{path}.{key}")
    return value


E = TypeVar("E", Role, ToolChoiceMode, Effort, ResponseFormatType, FinishReason)


def _enum(cls: type[E], value: Any, path: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise _invalid(f"`{path}` must be one of: {allowed}", path) from None


# =============================================================================================== the client
T = TypeVar("T")


def error_from_json(value: Any) -> MuxError:
    """A server ``error`` object (``{"kind", "status", "message", "param", "retry_after"}``) as a ``MuxError``."""
    obj = value if isinstance(value, dict) else {}
    try:
        kind = ErrorKind(str(obj.get("kind")))
    except ValueError:
        kind = ErrorKind.INTERNAL
    status = obj.get("status")
    retry_after = obj.get("retry_after")
    param = obj.get("param")
    return MuxError(
        kind,
        str(obj.get("message") or "stream failed"),
        status=status if isinstance(status, int) and not isinstance(status, bool) else DEFAULT_STATUS[kind],
        param=param if isinstance(param, str) else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )


@dataclass(slots=True)
class _Item:
    kind: Literal["events", "done", "error"]
    payload: Any  # events: a list of event data; done: the message; error: its error object


class Stream(Generic[T]):
    """One generation on a :class:`Mux`: ``async for event in stream``. After the end, ``usage`` and
    ``finish_reason`` hold what the server's ``done`` message said."""

    def __init__(self, mux: Mux, stream_id: str, window: int, convert: Callable[[Any], T]) -> None:
        self.id = stream_id
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self._mux = mux
        self._window = window
        self._grant_every = max(1, window // 2)
        self._taken = 0  # events taken since the last grant
        self._convert = convert
        # Capacity: the window (every item holds at least one event), plus the terminal message. Filling it means
        # the server ignored the window.
        self._send, self._receive = trio.open_memory_channel[_Item](window + 1)
        self._pending: deque[Any] = deque()  # events of the last item not yet taken
        self._ended = False  # done/error received (or the stream was failed locally)
        self._error: MuxError | None = None

    # ------------------------------------------------------------------ reader side (never blocks)
    def _deliver(self, item: _Item) -> None:
        if self._ended:
            return
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self._fail(MuxError(ErrorKind.UPSTREAM, f"protocol error: the server overran stream {self.id}'s window"))
            return
        except trio.ClosedResourceError:
            return
        if item.kind != "events":
            self._ended = True
            self._send.close()

    def _fail(self, error: MuxError) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._send.close()

    # ------------------------------------------------------------------ consumer side
    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._pending:
            try:
                item = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if self._error is not None:
                    raise self._error from None
                raise StopAsyncIteration from None
            if item.kind != "events":
                return self._end(item)
            self._pending.extend(item.payload)
        data = self._pending.popleft()
        self._taken += 1
        if self._taken >= self._grant_every:
            granted, self._taken = self._taken, 0
            await self._mux._send({"type": "credit", "id": self.id, "events": granted})
        return self._convert(data)

    def _end(self, item: _Item) -> NoReturn:
        self._receive.close()
        if item.kind == "done":
            done = item.payload
            self.usage = usage_from_json(done.get("usage") or {})
            reason = done.get("finish_reason")
            self.finish_reason = reason if isinstance(reason, str) else None
            model = done.get("model")
            self.model = model if isinstance(model, str) else None
            raise StopAsyncIteration
        self._error = error_from_json(item.payload)
        raise self._error

    @property
    def finished(self) -> bool:
        """The server ended this stream (``done`` or ``error``) or the connection was lost."""
        return self._ended


class Mux:
    """A connection to ``/v1/ws``: open streams with :meth:`stream`. Made by :func:`connect`."""

    def __init__(self, ws: WebSocketConnection, window: int, batch: bool = True) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be between 1 and {MAX_WINDOW}")
        self._ws = ws
        self._window = window
        self._batch = batch
        self._ids = itertools.count(1)
        self._streams: dict[str, Stream[Any]] = {}
        self._closed: MuxError | None = None
        self.connection_errors: list[MuxError] = []  # errors the server sent with no stream id

    @overload
    def stream(
        self, format: Literal["ir"], body: Request | Mapping[str, Any], *, window: int | None = None
    ) -> AbstractAsyncContextManager[Stream[Event]]: ...

    @overload
    def stream(
        self,
        format: WireFormat,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[dict[str, Any]]]: ...

    @overload
    def stream(
        self,
        format: str,
        body: Request | Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[Any]]: ...

    def stream(
        self,
        format: str,
        body: Request | Mapping[str, Any],
        *,
        model: str | None = None,
        endpoint: str | None = None,
        window: int | None = None,
    ) -> AbstractAsyncContextManager[Stream[Any]]:
        """Start a generation in ``format`` (a client wire format, or ``"ir"``). ``model`` is for formats that
        name it outside the body (Gemini); ``endpoint`` picks a dialect (``"generate"`` for Ollama,
        ``"completions"`` for legacy OpenAI). Leaving the block before the end cancels the generation."""
        return self._stream(format, body, model, endpoint, window or self._window)

    @asynccontextmanager
    async def _stream(
        self, format: str, body: Request | Mapping[str, Any], model: str | None, endpoint: str | None, window: int
    ) -> AsyncIterator[Stream[Any]]:
        if self._closed is not None:
            raise self._closed
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be between 1 and {MAX_WINDOW}")
        stream_id = str(next(self._ids))
        convert: Callable[[Any], Any] = event_from_json if format == "ir" else _identity
        stream: Stream[Any] = Stream(self, stream_id, window, convert)
        message: dict[str, Any] = {
            "type": "request",
            "id": stream_id,
            "format": format,
            "body": request_to_json(body) if isinstance(body, Request) else dict(body),
            "credit": window,
            "batch": self._batch,
        }
        if model is not None:
            message["model"] = model
        if endpoint is not None:
            message["endpoint"] = endpoint
        self._streams[stream_id] = stream
        try:
            await self._send(message)
            yield stream
        finally:
            self._streams.pop(stream_id, None)
            if not stream.finished and self._closed is None:
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_TIMEOUT), suppress(MuxError):
                    await self._send({"type": "cancel", "id": stream_id})
            stream._fail(MuxError(ErrorKind.INVALID_REQUEST, "the stream was closed"))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            await self._ws.send_message(orjson.dumps(message).decode())
        except ConnectionClosed:
            raise self._lost() from None

    def _lost(self) -> MuxError:
        if self._closed is None:
            reason = self._ws.closed
            detail = f" (code {reason.code})" if reason is not None else ""
            self._closed = MuxError(ErrorKind.UNAVAILABLE, f"the muxtrio connection was closed{detail}")
        return self._closed

    async def _read(self) -> None:
        """The reader task: dispatch every server message to its stream, never waiting on a consumer."""
        try:
            while True:
                raw = await self._ws.get_message()
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("ignoring a non-JSON message from the server")
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            error = self._lost()
            for stream in list(self._streams.values()):
                stream._fail(error)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        stream_id = message.get("id")
        if kind == "error" and stream_id is None:
            self.connection_errors.append(error_from_json(message.get("error")))
            return
        stream = self._streams.get(stream_id) if isinstance(stream_id, str) else None
        if stream is None:
            return  # a stream we left (its late messages), or not ours
        if kind == "events":
            data = message.get("data")
            if isinstance(data, list) and data:
                stream._deliver(_Item("events", data))
        elif kind == "event":
            stream._deliver(_Item("events", [message.get("data")]))
        elif kind == "done":
            self._streams.pop(stream.id, None)
            stream._deliver(_Item("done", message))
        elif kind == "error":
            self._streams.pop(stream.id, None)
            stream._deliver(_Item("error", message.get("error")))

    @property
    def active(self) -> int:
        """Streams open on this connection."""
        return len(self._streams)


def _identity(value: Any) -> Any:
    return value


def ws_url(url: str) -> str:
    """``http(s)://host[:port]`` -> ``ws(s)://host[:port]/v1/ws``; a ``ws(s)://`` URL with a path is kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket or HTTP URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/v1/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@asynccontextmanager
async def connect(
    url: str,
    *,
    api_key: str | None = None,
    window: int = DEFAULT_WINDOW,
    batch: bool = True,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    connect_timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Mux]:
    """Open a multiplexed connection to a muxtrio gateway (``ws://host:port/v1/ws``, or its ``http://`` base URL).

    ``window`` is each stream's default credit window (events in flight). ``batch`` asks the server to send the
    events that are ready together as one ``events`` message (far fewer WebSocket frames when a consumer falls
    behind or a provider sends bursts; the events seen here are the same). Raises ``MuxError`` when the gateway
    refuses the upgrade (401/403 for a bad key) or cannot be reached.
    """
    headers = [(b"authorization", b"Bearer " + api_key.encode())] if api_key else []
    target = ws_url(url)
    try:
        async with open_websocket_url(
            target,
            ssl_context,
            extra_headers=headers,
            max_message_size=max_message_bytes,
            connect_timeout=connect_timeout,
            message_queue_size=16,
        ) as ws:
            mux = Mux(ws, window, batch)
            error: BaseException | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mux._read)
                try:
                    yield mux
                except BaseException as exc:
                    # Re-raised as itself below, not wrapped in an ExceptionGroup by this nursery.
                    error = exc
                finally:
                    nursery.cancel_scope.cancel()
            if error is not None:
                raise error
    except ConnectionRejected as exc:
        raise _rejected(exc) from None
    except HandshakeError as exc:
        # Opening (connect error, timeout) or closing (DisconnectionTimeout) handshake.
        raise MuxError(ErrorKind.UNAVAILABLE, f"WebSocket handshake with {_safe(target)} failed: {exc!r}") from None


def _rejected(exc: ConnectionRejected) -> MuxError:
    status = exc.status_code
    message = f"the gateway refused the WebSocket upgrade with HTTP {status}"
    with suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        detail = orjson.loads(exc.body or b"{}").get("error", {}).get("message")
        if isinstance(detail, str):
            message += f": {detail}"
    kind = {401: ErrorKind.AUTHENTICATION, 403: ErrorKind.PERMISSION, 404: ErrorKind.NOT_FOUND}.get(
        status, ErrorKind.UNAVAILABLE
    )
    return MuxError(kind, message, status=status)


def _safe(url: str) -> str:
    """A URL for an error message: scheme, host and path only (a ``?key=`` never leaks)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


__all__ = [
    "DEFAULT_WINDOW",
    "EVENT_TAGS",
    "MAX_WINDOW",
    "PART_TAGS",
    "Mux",
    "Stream",
    "connect",
    "error_from_json",
    "event_from_json",
    "event_to_json",
    "request_from_json",
    "request_to_json",
    "usage_from_json",
    "usage_to_json",
    "ws_url",
]

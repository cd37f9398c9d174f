"""OpenAI Responses API codec (``/v1/responses``, what Codex CLI speaks), both directions.

Role
- Client side: a Responses ``create`` body -> IR request; an IR answer -> a ``response`` object, or its SSE stream
  (``event: <type>`` / ``data: <json>``; every event carries ``type`` and a ``sequence_number`` counting from 0;
  the stream ends with ``response.completed`` / ``response.incomplete`` / ``response.failed``, no ``[DONE]``).
- Provider side: IR request -> ``POST /responses`` of an OpenAI(-compatible) server whose base URL ends in ``/v1``;
  its JSON answer and SSE stream -> IR.
- Token counting: ``POST /responses/input_tokens`` both ways.

Invariants
- Pure: ``wire.jsonutil`` (orjson), ``wire.sse`` framing and the IR only; no IO, clocks, randomness or logging.
- One output item per IR block, in order, never interleaved. Output item ids derive from the response id:
  ``msg_<base>_<n>``, ``rs_<base>_<n>``, ``fc_<base>_<n>`` (``<base>`` = the id without ``resp_``, ``<n>`` = the
  item's ``output_index``), so the same answer always gets the same ids.
- Opaque data round-trips byte-exact through a reasoning item's ``encrypted_content``: a ``Reasoning`` signature as
  is; an Anthropic ``RedactedReasoning`` as ``muxtrio.redacted:<data>``; a Gemini tool-call ``thoughtSignature`` as
  ``muxtrio.tool-signature:<sig>`` in a summary-less reasoning item just before its ``function_call`` (clients such
  as Codex send reasoning items back verbatim, so the signature reaches the next turn). These carriers are
  muxtrio's own and never go to a provider.
- The decoder raises ``UpstreamError`` for ``error`` / ``response.failed`` events, ``CodecError`` for malformed
  bytes or oversized events, and ``StreamTruncated`` from ``flush()`` when no terminal event came.
- A field the target cannot express raises ``CodecError(kind=UNSUPPORTED)`` naming it (``custom`` tools,
  built-in tool call items in the input, ``item_reference``, ``stop`` sequences, ``n > 1``, ``background``,
  ``conversation``, ``prompt`` templates).
- ``namespace`` tools (Codex CLI's tool groups): each member becomes an IR function named
  ``<namespace>__<name>`` (:func:`muxtrio.ir.tools.namespaced_tool_name`; the namespace's description leads the
  member's), and the client's tool list is kept as ``extensions["openai-responses"]["tool_layout"]``. Calls of a
  member are shown to the client as the Responses API shows them (``function_call`` with the member's ``name`` and
  its ``namespace``); history items with a ``namespace`` read back to the flattened name. Toward a Responses
  provider the layout is sent back as the client sent it, and a provider's namespaced call reads as the flattened
  name.
- Provider-run tools (``web_search``, ``file_search``, ``code_interpreter``, ``mcp``...) go to a Responses provider
  as sent; toward another format ``adapt_to_target`` applies the ``hosted-tools`` policy (a web search becomes the
  neutral hosted tool, others are dropped with a warning). The client's ``OpenAI-Beta`` header reaches a Responses
  provider.

Deliberate losses (documented, not silent for anything a client relies on)
- Sampling hints the Responses API has no field for (``top_k``, ``seed``, frequency/presence penalties) are not
  sent upstream; ``ToolResult.is_error`` has no Responses field (the result text still says what failed).
- A ``Reasoning`` part without a signature is not sent upstream unless ``store`` is on and it has an ``id`` (then
  the provider holds it): without either, the provider cannot use it. ``RedactedReasoning`` (Anthropic data) and
  tool-call signatures (Gemini data) are not sent to a Responses provider, which could not read them.
- Reasoning item ids go upstream only with ``store: true``; stateless requests carry ``encrypted_content``
  instead, as Codex does.
- ``function_call`` item ids (``fc_...``) from a client are not kept: the IR identifies calls by ``call_id``.
- An ``input_image`` by ``file_id`` becomes ``File(file_id, mime_type="image/*")`` (the IR ``Image`` has no file
  id) and goes back out as ``input_image``; its ``detail`` is not kept.

Ground truth: openai-python ``openai/types/responses/`` (``Response``, ``ResponseStreamEvent``, the input item
params, ``InputTokenCountParams``) and ``openai/_streaming.py`` (a stream event whose JSON has a truthy top-level
``error`` raises ``APIError``); streaming lifecycle per
https://platform.openai.com/docs/api-reference/responses-streaming.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

from muxtrio.codecs.base import (
    Adaptation,
    Codec,
    Format,
    HostedToolPolicy,
    RequestHints,
    StreamDecoder,
    StreamEncoder,
    StreamInfo,
    Target,
    WireRequest,
    client_protocol_headers,
    record_client_headers,
)
from muxtrio.codecs.hosted import translate_hosted
from muxtrio.codecs.media import data_url, parse_data_url
from muxtrio.codecs.openai_chat import parse_openai_error, upstream_error_from_object
from muxtrio.codecs.schema import normalize_schema, object_or_empty
from muxtrio.errors import CodecError, ErrorKind, MuxError, StreamTruncated, UpstreamError
from muxtrio.ir.accumulate import accumulate
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
    JSON,
    Effort,
    File,
    HostedTool,
    HostedToolKind,
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
from muxtrio.ir.response import FinishReason, Response, Usage
from muxtrio.ir.thinking import effort_for
from muxtrio.ir.tools import namespaced_tool_name
from muxtrio.wire.framing import Frame
from muxtrio.wire.jsonutil import (
    JSONDecodeError,
    as_array,
    as_object,
    as_str,
    dumps,
    get_bool,
    get_int,
    get_number,
    get_str,
    invalid,
    loads,
    loads_object,
    require_str,
    unsupported,
)
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEFramer

EXT = Format.OPENAI_RESPONSES.value
"""Key of this format's extras in ``Request.extensions``."""

# ------------------------------------------------------------------------------------------------ mapping tables
INPUT_ROLES: dict[str, Role] = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
}
"""Responses message role -> IR role. Leading system/developer messages join ``Request.system``."""

OUTPUT_ROLES: dict[Role, str] = {
    Role.USER: "user",
    Role.ASSISTANT: "assistant",
    Role.SYSTEM: "system",
    Role.TOOL: "user",  # only loose text of a tool message; its ToolResults become function_call_output items
}
"""IR role -> Responses message role (provider side)."""

FINISH_STATUS: dict[FinishReason, tuple[str, str | None]] = {
    FinishReason.STOP: ("completed", None),
    FinishReason.TOOL_CALLS: ("completed", None),
    FinishReason.STOP_SEQUENCE: ("completed", None),
    FinishReason.LENGTH: ("incomplete", "max_output_tokens"),
    FinishReason.CONTENT_FILTER: ("incomplete", "content_filter"),
    FinishReason.ERROR: ("failed", None),
}
"""IR finish reason -> (response ``status``, ``incomplete_details.reason``)."""

INCOMPLETE_FINISH: dict[str, FinishReason] = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
"""``incomplete_details.reason`` -> IR finish reason (other reasons: ``length``). A ``completed`` response finishes
with ``tool_calls`` when it holds a ``function_call`` item, else ``stop``."""

USAGE_FIELDS: dict[tuple[str, ...], str] = {
    ("input_tokens",): "input_tokens",
    ("output_tokens",): "output_tokens",
    ("output_tokens_details", "reasoning_tokens"): "reasoning_tokens",
    ("input_tokens_details", "cached_tokens"): "cache_read_tokens",
    ("input_tokens_details", "cache_write_tokens"): "cache_write_tokens",
}
"""Responses usage path -> IR ``Usage`` field. Same semantics: ``input_tokens`` includes cached tokens and
``output_tokens`` includes reasoning tokens; ``total_tokens`` is their sum."""

EFFORTS_IN: dict[str, Effort] = {
    "none": Effort.NONE,
    "minimal": Effort.MINIMAL,
    "low": Effort.LOW,
    "medium": Effort.MEDIUM,
    "high": Effort.HIGH,
    "xhigh": Effort.XHIGH,
    "max": Effort.XHIGH,  # the IR's highest level; sent back upstream as "xhigh"
}
"""``reasoning.effort`` -> IR effort. Back out: ``Effort.value`` (via ``ir.thinking.effort_for``)."""

SUMMARY_MODES = ("auto", "concise", "detailed")
"""``reasoning.summary`` values. Any of them -> ``Thinking.include_thoughts=True``; ``include_thoughts`` goes out as
the client's own mode when it was a Responses client, else ``"auto"``."""

ERROR_SHAPES: dict[ErrorKind, tuple[str, str | None]] = {
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorKind.AUTHENTICATION: ("invalid_request_error", "invalid_api_key"),
    ErrorKind.PERMISSION: ("permission_error", "permission_denied"),
    ErrorKind.NOT_FOUND: ("invalid_request_error", "not_found"),
    ErrorKind.METHOD_NOT_ALLOWED: ("invalid_request_error", "method_not_allowed"),
    ErrorKind.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorKind.CONTEXT_LENGTH: ("invalid_request_error", "context_length_exceeded"),
    ErrorKind.CONTENT_FILTER: ("invalid_request_error", "content_policy_violation"),
    ErrorKind.UNSUPPORTED: ("invalid_request_error", "unsupported_parameter"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.OVERLOADED: ("server_error", "server_is_overloaded"),
    ErrorKind.TIMEOUT: ("server_error", "timeout"),
    ErrorKind.UPSTREAM: ("server_error", "upstream_error"),
    ErrorKind.UNAVAILABLE: ("server_error", "service_unavailable"),
    ErrorKind.INTERNAL: ("server_error", "internal_error"),
}
"""Error kind -> OpenAI ``error.type`` and ``error.code`` (client side). Codex keys on ``context_length_exceeded``
and ``server_is_overloaded``."""

FAILED_CODES: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMIT: "rate_limit_exceeded",
    ErrorKind.INVALID_REQUEST: "invalid_prompt",
    ErrorKind.CONTEXT_LENGTH: "invalid_prompt",
    ErrorKind.CONTENT_FILTER: "invalid_prompt",
    ErrorKind.UNSUPPORTED: "invalid_prompt",
}
"""Error kind -> ``response.error.code`` of ``response.failed`` (a closed set in the SDK's ``ResponseError``; any
other kind is ``server_error``). The ``error`` event sent just before it carries the full ``ERROR_SHAPES`` code."""

COUNT_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "text",
        "previous_response_id",
        "truncation",
    }
)
"""The fields of a ``create`` body that ``/responses/input_tokens`` accepts (openai-python
``InputTokenCountParams``); OpenAI rejects unknown parameters, so sampling, ``store``, ``include``... are left out."""

UNSUPPORTED_BODY_FIELDS: dict[str, str] = {
    "conversation": "server-side conversations are not supported by this gateway; send the items in `input`",
    "prompt": "prompt templates are not supported by this gateway; send `instructions` and `input`",
}

REDACTED_MARKER = "muxtrio.redacted:"
TOOL_SIGNATURE_MARKER = "muxtrio.tool-signature:"
_FINISHED_WITH_ERROR: dict[str, Any] = {"code": "server_error", "message": "the model stopped with an error"}
_SUMMARY_SEPARATOR = "\n\n"  # between summary parts when they are joined into one Reasoning text
_IMAGE_FILE_MIME = "image/*"  # marks a File that is an image referenced by file id


# ------------------------------------------------------------------------------------------------ client-side readers
def _unsupported(message: str, param: str) -> CodecError:
    """IR that a Responses request cannot express (the provider side; the client side raises ``unsupported``)."""
    return CodecError(message, kind=ErrorKind.UNSUPPORTED, param=param)


def _array_form(value: Any, param: str) -> list[Any]:
    """The array form of a field that may also be a plain string (``input``, ``content``, ``output``)."""
    if not isinstance(value, list):
        raise invalid(f"`{param}` must be a string or an array", param)
    return value


# ------------------------------------------------------------------------------------------------ parse_request
def _parse_request(body: dict[str, Any], hints: RequestHints) -> Request:
    for field, why in UNSUPPORTED_BODY_FIELDS.items():
        if body.get(field) is not None:
            raise unsupported(f"`{field}`: {why}", field)
    if body.get("background") is True:
        raise unsupported("`background` responses are not supported by this gateway", "background")

    model = body.get("model", hints.model)
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required and must be a string", "model")
    previous_response_id = get_str(body, "previous_response_id", "previous_response_id")

    system: list[Text] = []
    instructions = get_str(body, "instructions", "instructions")
    if instructions is not None:
        system.append(Text(instructions))
    if "input" in body:
        messages = _parse_input(body["input"], system)
    elif previous_response_id is not None:
        messages = ()  # the provider continues its stored conversation
    else:
        raise invalid("`input` is required", "input")

    stream = get_bool(body, "stream", "stream")
    tools, layout = _parse_tools(body.get("tools"))
    extensions = _parse_extensions(body, hints)
    if layout is not None:
        extensions["tool_layout"] = layout
    return Request(
        model=model,
        messages=messages,
        system=tuple(system),
        tools=tools,
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=get_bool(body, "parallel_tool_calls", "parallel_tool_calls"),
        sampling=Sampling(
            temperature=get_number(body, "temperature", "temperature"),
            top_p=get_number(body, "top_p", "top_p"),
            max_tokens=get_int(body, "max_output_tokens", "max_output_tokens"),
        ),
        thinking=_parse_reasoning(body.get("reasoning")),
        response_format=_parse_text_format(body.get("text")),
        stream=stream if stream is not None else bool(hints.stream),
        include_usage=True,  # a Responses stream always ends with usage
        user=get_str(body, "user", "user") or get_str(body, "safety_identifier", "safety_identifier"),
        metadata=_parse_metadata(body.get("metadata")),
        service_tier=get_str(body, "service_tier", "service_tier"),
        previous_response_id=previous_response_id,
        extensions={EXT: extensions},
    )


def _parse_extensions(body: dict[str, Any], hints: RequestHints) -> JSONObject:
    """The Responses-only fields, read back by this codec's encoders and ``emit_request``."""
    ext: JSONObject = {}
    store = get_bool(body, "store", "store")
    if store is not None:
        ext["store"] = store
    for key in ("truncation", "prompt_cache_key", "safety_identifier"):
        value = get_str(body, key, key)
        if value is not None:
            ext[key] = value
    include = body.get("include")
    if include is not None:
        ext["include"] = [as_str(v, f"include[{i}]") for i, v in enumerate(as_array(include, "include"))]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        summary = reasoning.get("summary") or reasoning.get("generate_summary")
        if isinstance(summary, str):
            ext["reasoning_summary"] = summary
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("verbosity"), str):
        ext["verbosity"] = text["verbosity"]
    if hints.endpoint is not None:
        ext["endpoint"] = hints.endpoint
    record_client_headers(ext, hints)
    return ext


def _parse_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    metadata = as_object(value, "metadata")
    for key, item in metadata.items():
        if not isinstance(item, str):
            raise invalid("`metadata` values must be strings", f"metadata.{key}")
    return metadata


class _History:
    """Groups the flat Responses item list into IR messages.

    An assistant turn is every consecutive assistant message, reasoning item and function call (Chat and Anthropic
    keep a turn's text and tool calls in one message); each ``function_call_output`` is its own tool message.
    System/developer messages before anything else join ``Request.system``.
    """

    def __init__(self, system: list[Text]) -> None:
        self.system = system
        self.messages: list[Message] = []
        self._assistant: list[Part] | None = None
        self._tool_names: dict[str, str] = {}
        self._tool_signature: str | None = None

    def add_message(self, role: Role, parts: tuple[Part, ...]) -> None:
        if role is Role.ASSISTANT:
            self._assistant_parts().extend(parts)
            return
        self._close_turn()
        if role is Role.SYSTEM and not self.messages and all(isinstance(p, Text) for p in parts):
            self.system.extend(p for p in parts if isinstance(p, Text))
        else:
            self.messages.append(Message(role, parts))

    def add_reasoning(self, part: Reasoning | RedactedReasoning) -> None:
        self._assistant_parts().append(part)

    def add_tool_signature(self, signature: str) -> None:
        self._assistant_parts()  # the carrier belongs to this assistant turn, like the call that follows it
        self._tool_signature = signature

    def add_tool_call(self, call: ToolCall) -> None:
        if self._tool_signature is not None:
            call = ToolCall(call.id, call.name, call.arguments, signature=self._tool_signature)
            self._tool_signature = None
        self._tool_names[call.id] = call.name
        self._assistant_parts().append(call)

    def add_tool_result(self, call_id: str, content: tuple[Text | Image, ...], name: str | None) -> None:
        self._close_turn()
        name = name if name is not None else self._tool_names.get(call_id)
        self.messages.append(Message(Role.TOOL, (ToolResult(call_id, content, name=name),)))

    def finish(self) -> tuple[Message, ...]:
        self._close_turn()
        return tuple(self.messages)

    def _assistant_parts(self) -> list[Part]:
        if self._assistant is None:
            self._assistant = []
        return self._assistant

    def _close_turn(self) -> None:
        if self._assistant is not None:
            if self._assistant:
                self.messages.append(Message(Role.ASSISTANT, tuple(self._assistant)))
            self._assistant = None
            self._tool_signature = None  # a carrier only binds to a call in its own turn


def _parse_input(value: Any, system: list[Text]) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message(Role.USER, (Text(value),)),)
    history = _History(system)
    for i, raw in enumerate(_array_form(value, "input")):
        param = f"input[{i}]"
        item = as_object(raw, param)
        kind = item.get("type") or "message"  # EasyInputMessage may leave out `type`
        parse = _ITEM_PARSERS.get(kind)
        if parse is None:
            raise _unknown_item(kind, param)
        parse(item, param, history)
    return history.finish()


def _unknown_item(kind: Any, param: str) -> MuxError:
    if kind == "item_reference":
        return unsupported(
            "`item_reference` input items are not supported: this gateway keeps no stored items. Send the item "
            "itself, or use `previous_response_id` with a provider that stores responses",
            param,
        )
    if isinstance(kind, str) and (kind.endswith("_call") or kind.endswith("_call_output")):
        return unsupported(f"input items of type `{kind}` (built-in tools) are not supported", f"{param}.type")
    return invalid(f"unknown input item type {kind!r}", f"{param}.type")


def _parse_message_item(item: dict[str, Any], param: str, history: _History) -> None:
    role_name = require_str(item, "role", f"{param}.role")
    role = INPUT_ROLES.get(role_name)
    if role is None:
        raise invalid(f"unknown role {role_name!r}", f"{param}.role")
    history.add_message(role, _parse_content(item.get("content"), f"{param}.content"))


def _parse_function_call_item(item: dict[str, Any], param: str, history: _History) -> None:
    call_id = require_str(item, "call_id", f"{param}.call_id")
    name = require_str(item, "name", f"{param}.name")
    namespace = get_str(item, "namespace", f"{param}.namespace")
    if namespace:
        name = namespaced_tool_name(namespace, name)
    arguments = require_str(item, "arguments", f"{param}.arguments")
    history.add_tool_call(ToolCall(id=call_id, name=name, arguments=arguments))


def _parse_function_output_item(item: dict[str, Any], param: str, history: _History) -> None:
    call_id = require_str(item, "call_id", f"{param}.call_id")
    output = item.get("output")
    content: tuple[Text | Image, ...]
    if isinstance(output, str):
        content = (Text(output),) if output else ()
    else:
        content = tuple(
            _parse_tool_output_part(p, f"{param}.output[{j}]")
            for j, p in enumerate(_array_form(output, f"{param}.output"))
        )
    name = get_str(item, "name", f"{param}.name")
    namespace = get_str(item, "namespace", f"{param}.namespace")
    if name is not None and namespace:
        name = namespaced_tool_name(namespace, name)
    history.add_tool_result(call_id, content, name)


def _parse_tool_output_part(raw: Any, param: str) -> Text | Image:
    part = _parse_content_part(raw, param)
    if isinstance(part, Text | Image):
        return part
    raise unsupported("only text and images are supported in `function_call_output.output`", param)


def _parse_reasoning_item(item: dict[str, Any], param: str, history: _History) -> None:
    encrypted = get_str(item, "encrypted_content", f"{param}.encrypted_content")
    if encrypted is not None and encrypted.startswith(REDACTED_MARKER):
        history.add_reasoning(RedactedReasoning(encrypted[len(REDACTED_MARKER) :]))
        return
    if encrypted is not None and encrypted.startswith(TOOL_SIGNATURE_MARKER):
        history.add_tool_signature(encrypted[len(TOOL_SIGNATURE_MARKER) :])
        return
    text = _reasoning_item_text(item)
    history.add_reasoning(Reasoning(text, signature=encrypted, id=get_str(item, "id", f"{param}.id")))


_ITEM_PARSERS: dict[str, Callable[[dict[str, Any], str, _History], None]] = {
    "message": _parse_message_item,
    "function_call": _parse_function_call_item,
    "function_call_output": _parse_function_output_item,
    "reasoning": _parse_reasoning_item,
}


def _reasoning_item_text(item: Mapping[str, Any]) -> str:
    """The summary parts joined; the raw ``content`` (reasoning_text) when there is no summary."""
    for key in ("summary", "content"):
        parts = item.get(key)
        if isinstance(parts, list):
            texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]
            if texts:
                return _SUMMARY_SEPARATOR.join(texts)
    return ""


def _parse_content(value: Any, param: str) -> tuple[Part, ...]:
    if isinstance(value, str):
        return (Text(value),)
    parts = _array_form(value, param)
    return tuple(_parse_content_part(raw, f"{param}[{j}]") for j, raw in enumerate(parts))


def _parse_content_part(raw: Any, param: str) -> Part:
    part = as_object(raw, param)
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return Text(require_str(part, "text", f"{param}.text"))
    if kind == "refusal":
        # An assistant refusal in history: the IR has no refusal part, the text is what the model said.
        return Text(require_str(part, "refusal", f"{param}.refusal"))
    if kind == "input_image":
        return _parse_image(part, param)
    if kind == "input_file":
        return _parse_file(part, param)
    if kind == "input_audio":
        raise unsupported("`input_audio` content is not supported", f"{param}.type")
    raise invalid(f"unknown content type {kind!r}", f"{param}.type")


def _parse_image(part: dict[str, Any], param: str) -> Image | File:
    detail = get_str(part, "detail", f"{param}.detail")
    url = get_str(part, "image_url", f"{param}.image_url")
    if url is not None:
        return Image(url=url, detail=None if detail == "auto" else detail)
    file_id = get_str(part, "file_id", f"{param}.file_id")
    if file_id is not None:
        return File(file_id=file_id, mime_type=_IMAGE_FILE_MIME)
    raise invalid("`input_image` needs `image_url` or `file_id`", param)


def _parse_file(part: dict[str, Any], param: str) -> File:
    filename = get_str(part, "filename", f"{param}.filename")
    file_id = get_str(part, "file_id", f"{param}.file_id")
    if file_id is not None:
        return File(file_id=file_id, filename=filename)
    file_data = get_str(part, "file_data", f"{param}.file_data")
    if file_data is not None:
        parsed = parse_data_url(file_data)
        if parsed is None:
            return File(data=file_data, filename=filename)
        return File(data=parsed[1], mime_type=parsed[0], filename=filename)
    file_url = get_str(part, "file_url", f"{param}.file_url")
    if file_url is not None:
        return File(url=file_url, filename=filename)
    raise invalid("`input_file` needs `file_id`, `file_data` or `file_url`", param)


def _parse_tools(value: Any) -> tuple[tuple[Tool, ...], list[JSON] | None]:
    """Function tools (namespace members flattened to ``<namespace>__<name>``, see :mod:`muxtrio.ir.tools`), and
    the tool list's layout when it holds more than plain functions: one entry per client tool, in order —
    ``{"function": name}``, ``{"namespace": ..., "description": ..., "tools": [[flat, name], ...]}`` or
    ``{"hosted": <the client's JSON>}`` — so a Responses provider gets the list exactly as sent and answers map back
    into their namespace."""
    if value is None:
        return (), None
    tools: list[Tool] = []
    layout: list[JSON] = []
    plain = True
    for i, raw in enumerate(as_array(value, "tools")):
        param = f"tools[{i}]"
        tool = as_object(raw, param)
        kind = tool.get("type")
        if kind == "function":
            parsed = _parse_function_tool(tool, param)
            tools.append(parsed)
            layout.append({"function": parsed.name})
        elif kind == "namespace":
            plain = False
            namespace = require_str(tool, "name", f"{param}.name")
            members: list[JSON] = []
            for j, member_raw in enumerate(as_array(tool.get("tools"), f"{param}.tools")):
                member_param = f"{param}.tools[{j}]"
                member = as_object(member_raw, member_param)
                if member.get("type") != "function":
                    raise unsupported(
                        f"namespace tools of type {member.get('type')!r} are not supported (only `function` ones are)",
                        f"{member_param}.type",
                    )
                parsed = _parse_function_tool(member, member_param)
                flat = namespaced_tool_name(namespace, parsed.name)
                tools.append(
                    Tool(flat, _namespaced_description(tool, parsed), parsed.parameters, parsed.strict)
                )
                members.append([flat, parsed.name, parsed.description])
            layout.append({"namespace": namespace, "description": tool.get("description"), "tools": members})
        elif isinstance(kind, str) and kind not in _CLIENT_RUN_TYPES:
            plain = False
            layout.append({"hosted": tool})
        else:
            raise unsupported(
                f"tool type {kind!r} is not supported (`function`, `namespace` and provider-run tools are)",
                f"{param}.type",
            )
    return tuple(tools), (None if plain else layout)


_CLIENT_RUN_TYPES = frozenset({"custom"})
"""Non-function tool types that the *client* runs (their calls come back as other item types): not provider-run
tools, and not translatable to a function; refused with a clear 400."""

WEB_SEARCH_TYPES = frozenset(
    {"web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26"}
)
"""Responses tool types that run a web search on OpenAI's side (openai-python ``WebSearchToolParam``,
``WebSearchPreviewToolParam``)."""


def _parse_function_tool(tool: dict[str, Any], param: str) -> Tool:
    parameters = tool.get("parameters")
    return Tool(
        name=require_str(tool, "name", f"{param}.name"),
        description=get_str(tool, "description", f"{param}.description"),
        parameters=as_object(parameters, f"{param}.parameters") if parameters is not None else None,
        strict=tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
    )


def _namespaced_description(namespace: dict[str, Any], tool: Tool) -> str | None:
    """A flattened member's description: its own, after the namespace's (which the model would otherwise lose)."""
    group = namespace.get("description")
    if isinstance(group, str) and group:
        return f"{group}\n\n{tool.description}" if tool.description else group
    return tool.description


def _hosted_neutral(tool: Mapping[str, Any]) -> HostedTool | None:
    """A Responses provider-run tool in neutral form, when another format has the same kind."""
    if tool.get("type") not in WEB_SEARCH_TYPES:
        return None
    filters = tool.get("filters")
    allowed = filters.get("allowed_domains") if isinstance(filters, dict) else None
    domains = tuple(d for d in allowed if isinstance(d, str)) if isinstance(allowed, list) else ()
    return HostedTool(HostedToolKind.WEB_SEARCH, allowed_domains=domains)


def _layout(request: Request) -> list[dict[str, Any]]:
    layout = request.extensions.get(EXT, {}).get("tool_layout")
    return [entry for entry in layout if isinstance(entry, dict)] if isinstance(layout, list) else []


def client_tool_names(request: Request) -> dict[str, tuple[str, str]]:
    """Flattened tool name -> (namespace, name inside it), for the namespaces of a Responses client's request."""
    names: dict[str, tuple[str, str]] = {}
    for entry in _layout(request):
        namespace = entry.get("namespace")
        members = entry.get("tools")
        if isinstance(namespace, str) and isinstance(members, list):
            for member in members:
                if isinstance(member, list) and len(member) >= 2 and isinstance(member[0], str):
                    names[member[0]] = (namespace, str(member[1]))
    return names


def _parse_tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            mode = ToolChoiceMode(value)
        except ValueError:
            raise invalid(f"unknown `tool_choice` {value!r}", "tool_choice") from None
        if mode is ToolChoiceMode.TOOL:
            raise invalid(f"unknown `tool_choice` {value!r}", "tool_choice")
        return ToolChoice(mode)
    choice = as_object(value, "tool_choice")
    if choice.get("type") == "function":
        return ToolChoice(ToolChoiceMode.TOOL, name=require_str(choice, "name", "tool_choice.name"))
    raise unsupported(f"`tool_choice` of type {choice.get('type')!r} is not supported", "tool_choice.type")


def _parse_reasoning(value: Any) -> Thinking:
    if value is None:
        return Thinking()
    reasoning = as_object(value, "reasoning")
    effort_name = get_str(reasoning, "effort", "reasoning.effort")
    effort = None
    if effort_name is not None:
        effort = EFFORTS_IN.get(effort_name)
        if effort is None:
            raise invalid(f"unknown `reasoning.effort` {effort_name!r}", "reasoning.effort")
    summary = reasoning.get("summary") or reasoning.get("generate_summary")
    if summary is not None and summary not in SUMMARY_MODES:
        raise invalid(f"unknown `reasoning.summary` {summary!r}", "reasoning.summary")
    return Thinking(
        enabled=None if effort is None else effort is not Effort.NONE,
        effort=effort,
        include_thoughts=summary is not None,
    )


def _parse_text_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    fmt = as_object(value, "text").get("format")
    if fmt is None:
        return None
    fmt = as_object(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    if kind == "json_schema":
        return ResponseFormat(
            ResponseFormatType.JSON_SCHEMA,
            schema=as_object(fmt.get("schema"), "text.format.schema"),
            name=get_str(fmt, "name", "text.format.name"),
            strict=fmt.get("strict") if isinstance(fmt.get("strict"), bool) else None,
        )
    raise invalid(f"unknown `text.format.type` {kind!r}", "text.format.type")


# ------------------------------------------------------------------------------------------------ answers (client side)
def _item_base(response_id: str) -> str:
    return response_id.removeprefix("resp_")


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [_output_text_part(text)] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _reasoning_item(item_id: str, summary: str | None, encrypted: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": summary}] if summary is not None else [],
    }
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def _function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str, names: Mapping[str, tuple[str, str]]
) -> dict[str, Any]:
    """A ``function_call`` item; a call of a namespace member is shown as the Responses API shows it: the
    member's own ``name`` and the ``namespace`` it belongs to."""
    item: dict[str, Any] = {"id": item_id, "type": "function_call", "call_id": call_id}
    if name in names:
        namespace, name = names[name]
        item["namespace"] = namespace
    item["name"] = name
    item["arguments"] = arguments
    item["status"] = status
    return item


def _output_items(parts: Iterable[Part], base: str, names: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """An answer's parts as output items: one item per part, in order (what the stream encoder produces too)."""
    items: list[dict[str, Any]] = []
    for part in parts:
        n = len(items)
        match part:
            case Text(text=text):
                items.append(_message_item(f"msg_{base}_{n}", text))
            case Reasoning(text=text, signature=signature):
                items.append(_reasoning_item(f"rs_{base}_{n}", text or None, signature))
            case RedactedReasoning(data=data):
                items.append(_reasoning_item(f"rs_{base}_{n}", None, REDACTED_MARKER + data))
            case ToolCall(id=call_id, name=name, arguments=arguments, signature=signature):
                if signature is not None:
                    items.append(_reasoning_item(f"rs_{base}_{n}", None, TOOL_SIGNATURE_MARKER + signature))
                    n += 1
                items.append(_function_call_item(f"fc_{base}_{n}", call_id, name, arguments, "completed", names))
            case Image() | File() | ToolResult():
                pass  # input-only parts; an answer never carries them
            case _:
                assert_never(part)
    return items


def _response_object(
    info: StreamInfo,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object, echoing the client's request parameters as OpenAI does."""
    request = info.request
    ext = request.extensions.get(EXT, {})
    return {
        "id": info.id,
        "object": "response",
        "created_at": info.created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason is not None else None,
        "instructions": request.system[0].text if request.system else None,
        "max_output_tokens": request.sampling.max_tokens,
        "model": info.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": ext.get("prompt_cache_key"),
        "reasoning": _reasoning_echo(request),
        "safety_identifier": ext.get("safety_identifier"),
        "service_tier": request.service_tier if request.service_tier in _SERVICE_TIERS else None,
        "store": ext.get("store") is True,
        "temperature": request.sampling.temperature,
        "text": {"format": _text_format_json(request.response_format)},
        "tool_choice": _tool_choice_json(request.tool_choice) if request.tool_choice is not None else "auto",
        "tools": _tools_json(request, strict_default=None, echo=True),
        "top_p": request.sampling.top_p,
        "truncation": ext.get("truncation", "disabled"),
        "usage": _usage_json(usage) if usage is not None else None,
        "user": request.user,
        "metadata": dict(request.metadata),
    }


_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast", "ultrafast"})


def _reasoning_echo(request: Request) -> dict[str, Any]:
    effort = effort_for(request.thinking)
    return {"effort": effort.value if effort is not None else None, "summary": _summary_mode(request)}


def _summary_mode(request: Request) -> str | None:
    if not request.thinking.include_thoughts:
        return None
    mode = request.extensions.get(EXT, {}).get("reasoning_summary")
    return mode if isinstance(mode, str) else "auto"


def _text_format_json(fmt: ResponseFormat | None) -> dict[str, Any]:
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return {"type": "text"}
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        return {"type": "json_object"}
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": fmt.name or "response",
        "schema": normalize_schema(fmt.schema) if fmt.schema is not None else {},
    }
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


def _tool_choice_json(choice: ToolChoice) -> JSON:
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "name": choice.name or ""}
    return choice.mode.value


def _tool_json(tool: Tool, *, strict_default: bool | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "function",
        "name": tool.name,
        "parameters": _EMPTY_SCHEMA if tool.parameters is None else object_or_empty(normalize_schema(tool.parameters)),
        "strict": tool.strict if tool.strict is not None else strict_default,
    }
    if tool.description is not None:
        out["description"] = tool.description
    return out


_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def _tools_json(request: Request, *, strict_default: bool | None, echo: bool = False) -> list[dict[str, Any]]:
    """The request's tools as a Responses ``tools`` list: in the client's own layout when it was a Responses client
    with namespaces or provider-run tools (members back under their namespace), else one function per IR tool; IR
    tools the layout does not name (added after parsing) follow. Neutral hosted tools (from another format) are
    appended as Responses ``web_search``."""
    by_name = {tool.name: tool for tool in request.tools}
    used: set[str] = set()

    def function(tool: Tool, name: str) -> dict[str, Any]:
        used.add(tool.name)
        out = _tool_json(tool, strict_default=tool.strict if echo else strict_default)
        out["name"] = name
        return out

    tools: list[dict[str, Any]] = []
    for entry in _layout(request):
        if "hosted" in entry and isinstance(entry["hosted"], dict):
            tools.append(dict(entry["hosted"]))
        elif isinstance(entry.get("function"), str) and entry["function"] in by_name:
            tools.append(function(by_name[entry["function"]], entry["function"]))
        elif isinstance(entry.get("namespace"), str):
            members: list[dict[str, Any]] = []
            for member in entry.get("tools") or []:
                if isinstance(member, list) and len(member) >= 2 and member[0] in by_name:
                    out = function(by_name[member[0]], str(member[1]))
                    description = member[2] if len(member) > 2 else None
                    out.pop("description", None)
                    if isinstance(description, str):
                        out["description"] = description
                    members.append(out)
            if members:
                namespace: dict[str, Any] = {"type": "namespace", "name": entry["namespace"]}
                if isinstance(entry.get("description"), str):
                    namespace["description"] = entry["description"]
                namespace["tools"] = members
                tools.append(namespace)
    tools.extend(function(tool, tool.name) for tool in request.tools if tool.name not in used)
    for hosted in request.hosted_tools:
        if hosted.kind is HostedToolKind.WEB_SEARCH:
            search: dict[str, Any] = {"type": "web_search"}
            if hosted.allowed_domains:
                search["filters"] = {"allowed_domains": list(hosted.allowed_domains)}
            tools.append(search)
    return tools


def _emit_response(response: Response, info: StreamInfo) -> bytes:
    status, reason = FINISH_STATUS[response.finish_reason]
    body = _response_object(
        info,
        status=status,
        output=_output_items(response.parts, _item_base(info.id), client_tool_names(info.request)),
        usage=response.usage,
        incomplete_reason=reason,
        error=_FINISHED_WITH_ERROR if status == "failed" else None,
    )
    return dumps(body)


# ------------------------------------------------------------------------------------------------ stream encoder
@dataclass(slots=True)
class _OpenItem:
    """The output item the encoder is writing: one IR block."""

    block: int
    kind: str  # message | reasoning | function_call
    output_index: int
    item_id: str
    chunks: list[str]  # joined pieces, then the deltas since the last join
    signature: str | None = None
    joined: int = 0  # how many leading entries of ``chunks`` are joined pieces
    summary_open: bool = False
    call_id: str = ""
    name: str = ""

    def add(self, text: str) -> None:
        """Keep a delta for the final response object. The latest deltas are joined into one piece every few
        hundred, so a long answer costs about a byte per character rather than a string object per token, and each
        character is copied once here (joining everything each time copied the answer over and over)."""
        chunks = self.chunks
        chunks.append(text)
        if len(chunks) - self.joined >= 256:
            chunks[self.joined :] = ["".join(chunks[self.joined :])]
            self.joined += 1


class ResponsesStreamEncoder(StreamEncoder):
    """IR events -> Responses SSE events. Each IR block opens one output item (``output_item.added`` and, for text
    and summaries, a content part), its deltas follow, and it is closed (``*.done`` events) when the next block
    starts or the answer finishes. ``finish()`` sends the full response object, as ``emit_response`` builds it."""

    def __init__(self, info: StreamInfo) -> None:
        self.framer = SSEFramer()
        self._info = info
        self._names = client_tool_names(info.request)
        self._base = _item_base(info.id)
        self._seq = 0
        self._started = False
        self._open: _OpenItem | None = None
        self._output: list[dict[str, Any]] = []
        self._usage = Usage()
        self._finish: Finish | None = None

    # ---------------------------------------------------------------- framing
    def _frame(self, event_type: str, fields: dict[str, Any]) -> tuple[Frame, ...]:
        fields["type"] = event_type
        fields["sequence_number"] = self._seq
        self._seq += 1
        return ((event_type, dumps(fields)),)

    def _lifecycle(self, event_type: str, status: str, **extra: Any) -> tuple[Frame, ...]:
        response = _response_object(self._info, status=status, output=list(self._output), **extra)
        return self._frame(event_type, {"response": response})

    def _start(self) -> tuple[Frame, ...]:
        if self._started:
            return ()
        self._started = True
        return self._lifecycle("response.created", "in_progress", usage=None) + self._lifecycle(
            "response.in_progress", "in_progress", usage=None
        )

    # ---------------------------------------------------------------- events
    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case Start():
                return self._start()
            case TextDelta(index=index, text=text):
                return self._text_delta(index, text)
            case ReasoningDelta(index=index, text=text):
                return self._reasoning_delta(index, text)
            case ReasoningSignature(index=index, signature=signature):
                out, item = self._item_for(index, "reasoning")
                item.signature = signature
                return out
            case RedactedReasoningBlock(data=data):
                return self._start() + self._close() + self._whole_reasoning_item(REDACTED_MARKER + data)
            case ToolCallStart(index=index, id=call_id, name=name, signature=signature):
                out = self._start() + self._close()
                if signature is not None:
                    out += self._whole_reasoning_item(TOOL_SIGNATURE_MARKER + signature)
                return out + self._open_item(index, "function_call", call_id=call_id, name=name)
            case ToolCallDelta(index=index, arguments=arguments):
                return self._arguments_delta(index, arguments)
            case ToolCallEnd(index=index):
                if self._open is not None and self._open.block == index:
                    return self._close()
                return ()
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish():
                self._finish = event
                return self._start() + self._close()
            case _:
                assert_never(event)

    def _text_delta(self, index: int, text: str) -> tuple[Frame, ...]:
        out, item = self._item_for(index, "message")
        item.add(text)
        return out + self._frame(
            "response.output_text.delta",
            {
                "item_id": item.item_id,
                "output_index": item.output_index,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            },
        )

    def _reasoning_delta(self, index: int, text: str) -> tuple[Frame, ...]:
        out, item = self._item_for(index, "reasoning")
        if not item.summary_open:
            item.summary_open = True
            out += self._frame("response.reasoning_summary_part.added", self._summary_fields(item, ""))
        item.add(text)
        return out + self._frame(
            "response.reasoning_summary_text.delta",
            {"item_id": item.item_id, "output_index": item.output_index, "summary_index": 0, "delta": text},
        )

    def _arguments_delta(self, index: int, arguments: str) -> tuple[Frame, ...]:
        item = self._open
        if item is None or item.block != index or item.kind != "function_call":
            raise CodecError(f"ToolCallDelta for block {index} before its ToolCallStart", kind=ErrorKind.INTERNAL)
        item.add(arguments)
        return self._frame(
            "response.function_call_arguments.delta",
            {"item_id": item.item_id, "output_index": item.output_index, "delta": arguments},
        )

    def final_frames(self) -> tuple[Frame, ...]:
        out = self._start() + self._close()
        reason = self._finish.reason if self._finish is not None else FinishReason.STOP
        status, incomplete = FINISH_STATUS[reason]
        if status == "failed":
            return out + self._lifecycle("response.failed", status, usage=self._usage, error=_FINISHED_WITH_ERROR)
        event_type = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._lifecycle(event_type, status, usage=self._usage, incomplete_reason=incomplete)

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        """An ``error`` event (with the error also nested under ``error``, so that openai-python's stream raises
        ``APIError`` on it), then ``response.failed`` for clients that wait for a terminal response (Codex)."""
        error_type, code = ERROR_SHAPES[error.kind]
        detail = {"type": error_type, "code": code, "message": error.message, "param": error.param}
        out = self._start()
        out += self._frame("error", {"code": code, "message": error.message, "param": error.param, "error": detail})
        failed = {"code": FAILED_CODES.get(error.kind, "server_error"), "message": error.message}
        return out + self._lifecycle("response.failed", "failed", usage=self._usage, error=failed)

    # ---------------------------------------------------------------- output items
    def _item_for(self, block: int, kind: str) -> tuple[tuple[Frame, ...], _OpenItem]:
        item = self._open
        if item is not None and item.block == block and item.kind == kind:
            return (), item
        out = self._start() + self._close() + self._open_item(block, kind)
        assert self._open is not None
        return out, self._open

    def _open_item(self, block: int, kind: str, *, call_id: str = "", name: str = "") -> tuple[Frame, ...]:
        index = len(self._output)
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        item = _OpenItem(block, kind, index, f"{prefix}_{self._base}_{index}", [], call_id=call_id, name=name)
        self._open = item
        if kind == "message":
            added = _message_item(item.item_id, "", status="in_progress")
            return self._frame("response.output_item.added", {"output_index": index, "item": added}) + self._frame(
                "response.content_part.added",
                {"item_id": item.item_id, "output_index": index, "content_index": 0, "part": _output_text_part("")},
            )
        if kind == "reasoning":
            added = _reasoning_item(item.item_id, None, None)
        else:
            added = _function_call_item(item.item_id, call_id, name, "", "in_progress", self._names)
        return self._frame("response.output_item.added", {"output_index": index, "item": added})

    def _close(self) -> tuple[Frame, ...]:
        item = self._open
        if item is None:
            return ()
        self._open = None
        text = "".join(item.chunks)
        if item.kind == "message":
            return self._close_message(item, text)
        if item.kind == "reasoning":
            return self._close_reasoning(item, text)
        return self._close_function_call(item, text)

    def _close_message(self, item: _OpenItem, text: str) -> tuple[Frame, ...]:
        where = {"item_id": item.item_id, "output_index": item.output_index, "content_index": 0}
        out = self._frame("response.output_text.done", {**where, "text": text, "logprobs": []})
        out += self._frame("response.content_part.done", {**where, "part": _output_text_part(text)})
        return out + self._item_done(item.output_index, _message_item(item.item_id, text))

    def _close_reasoning(self, item: _OpenItem, text: str) -> tuple[Frame, ...]:
        out: tuple[Frame, ...] = ()
        if item.summary_open:
            out += self._frame(
                "response.reasoning_summary_text.done",
                {"item_id": item.item_id, "output_index": item.output_index, "summary_index": 0, "text": text},
            )
            out += self._frame("response.reasoning_summary_part.done", self._summary_fields(item, text))
        done = _reasoning_item(item.item_id, text if item.summary_open else None, item.signature)
        return out + self._item_done(item.output_index, done)

    def _close_function_call(self, item: _OpenItem, arguments: str) -> tuple[Frame, ...]:
        out = self._frame(
            "response.function_call_arguments.done",
            {"item_id": item.item_id, "output_index": item.output_index, "arguments": arguments},
        )
        done = _function_call_item(item.item_id, item.call_id, item.name, arguments, "completed", self._names)
        return out + self._item_done(item.output_index, done)

    def _whole_reasoning_item(self, encrypted: str) -> tuple[Frame, ...]:
        """A reasoning item with only ``encrypted_content`` (a carrier): added and done at once."""
        index = len(self._output)
        item = _reasoning_item(f"rs_{self._base}_{index}", None, encrypted)
        added = self._frame("response.output_item.added", {"output_index": index, "item": item})
        return added + self._item_done(index, item)

    def _item_done(self, output_index: int, item: dict[str, Any]) -> tuple[Frame, ...]:
        self._output.append(item)
        return self._frame("response.output_item.done", {"output_index": output_index, "item": item})

    @staticmethod
    def _summary_fields(item: _OpenItem, text: str) -> dict[str, Any]:
        return {
            "item_id": item.item_id,
            "output_index": item.output_index,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": text},
        }


# ------------------------------------------------------------------------------------------------ errors
def _emit_error(error: MuxError) -> tuple[int, bytes]:
    error_type, code = ERROR_SHAPES[error.kind]
    if error.code is not None:
        error_type = code = error.code
    body = {"error": {"message": error.message, "type": error_type, "param": error.param, "code": code}}
    return error.status, dumps(body)


def _parse_error(status: int, body: bytes) -> UpstreamError:
    # One OpenAI error format, read in one place (the Chat codec's reader and its code table).
    return parse_openai_error(status, body)


def _stream_error(error: Any) -> UpstreamError:
    """An ``error`` event or a failed response's ``error`` (the HTTP status was 200, so the code decides)."""
    return upstream_error_from_object(error if error is not None else "unknown error", 0)


# ------------------------------------------------------------------------------------------------ emit_request
def _request_body(request: Request, model: str, *, stream: bool) -> dict[str, Any]:
    ext = request.extensions.get(EXT, {})
    store = ext.get("store") is True
    body: dict[str, Any] = {"model": model}
    if request.system:
        body["instructions"] = request.system[0].text
    body["input"] = _input_items(request, store=store)
    # Responses treats an unset `strict` as true; tools from other formats are not written for strict mode.
    tools = _tools_json(request, strict_default=None if EXT in request.extensions else False)
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice_json(request.tool_choice)
    _set(body, "parallel_tool_calls", request.parallel_tool_calls)
    _set(body, "temperature", request.sampling.temperature)
    _set(body, "top_p", request.sampling.top_p)
    _set(body, "max_output_tokens", request.sampling.max_tokens)
    reasoning = _reasoning_json(request)
    if reasoning:
        body["reasoning"] = reasoning
    text = _text_json(request, ext)
    if text:
        body["text"] = text
    include = _include_list(request, ext, store=store)
    if include:
        body["include"] = include
    body["store"] = store
    body["stream"] = stream
    _set(body, "previous_response_id", request.previous_response_id)
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    _set_user(body, request, ext)
    _set(body, "service_tier", request.service_tier)
    _set(body, "prompt_cache_key", ext.get("prompt_cache_key"))
    _set(body, "truncation", ext.get("truncation"))
    return body


def _set(body: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        body[key] = value


def _set_user(body: dict[str, Any], request: Request, ext: Mapping[str, JSON]) -> None:
    """``safety_identifier`` goes back as itself; ``user`` only when it is not just that identifier again."""
    safety = ext.get("safety_identifier")
    _set(body, "safety_identifier", safety)
    if request.user is not None and request.user != safety:
        body["user"] = request.user


def _check_expressible(request: Request) -> None:
    sampling = request.sampling
    if sampling.stop:
        raise _unsupported("the OpenAI Responses API has no stop sequences", "stop")
    if sampling.n is not None and sampling.n > 1:
        raise _unsupported("the OpenAI Responses API returns one answer per request (n > 1)", "n")


def _reasoning_json(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    effort = effort_for(request.thinking)
    if effort is not None:
        out["effort"] = effort.value
    summary = _summary_mode(request)
    if summary is not None:
        out["summary"] = summary
    return out


def _text_json(request: Request, ext: Mapping[str, JSON]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.response_format is not None and request.response_format.type is not ResponseFormatType.TEXT:
        out["format"] = _text_format_json(request.response_format)
    if isinstance(ext.get("verbosity"), str):
        out["verbosity"] = ext["verbosity"]
    return out


def _thinking_on(thinking: Thinking) -> bool:
    effort = effort_for(thinking)
    return bool(thinking.include_thoughts) or (effort is not None and effort is not Effort.NONE)


def _include_list(request: Request, ext: Mapping[str, JSON], *, store: bool) -> list[str]:
    raw = ext.get("include")
    include = [v for v in raw if isinstance(v, str)] if isinstance(raw, list) else []
    # Stateless requests carry reasoning forward as encrypted content, so ask for it whenever thinking is on.
    if not store and _thinking_on(request.thinking) and "reasoning.encrypted_content" not in include:
        include.append("reasoning.encrypted_content")
    return include


class _InputWriter:
    """IR messages -> Responses input items, keeping part order: content parts gather into a message item, and
    reasoning, tool calls and tool results become items of their own."""

    def __init__(self, *, store: bool, names: Mapping[str, tuple[str, str]]) -> None:
        self.items: list[dict[str, Any]] = []
        self._names = names
        self._store = store
        self._content: list[dict[str, Any]] = []
        self._role = ""

    def message(self, index: int, message: Message) -> None:
        self._role = OUTPUT_ROLES[message.role]
        for j, part in enumerate(message.parts):
            self._part(part, f"messages[{index}].parts[{j}]")
        self._flush()

    def _part(self, part: Part, param: str) -> None:
        match part:
            case Text(text=text):
                kind = "output_text" if self._role == "assistant" else "input_text"
                self._content.append(
                    {"type": kind, "text": text, "annotations": []}
                    if kind == "output_text"
                    else {"type": kind, "text": text}
                )
            case Image() | File():
                if self._role == "assistant":
                    raise _unsupported("assistant messages cannot carry images or files in the Responses API", param)
                self._content.append(_media_json(part))
            case Reasoning():
                self._reasoning(part)
            case RedactedReasoning():
                pass  # Anthropic's opaque data: a Responses provider cannot read it
            case ToolCall(id=call_id, name=name, arguments=arguments):
                item: dict[str, Any] = {"type": "function_call", "call_id": call_id}
                if name in self._names:
                    item["namespace"], name = self._names[name]
                item["name"] = name
                item["arguments"] = arguments
                self._item(item)
            case ToolResult():
                self._item(_function_output_json(part))
            case _:
                assert_never(part)

    def _reasoning(self, part: Reasoning) -> None:
        if part.signature is None and not (self._store and part.id is not None):
            return  # nothing the provider could use (see the module docstring)
        item: dict[str, Any] = {"type": "reasoning"}
        if self._store and part.id is not None:
            item["id"] = part.id
        item["summary"] = [{"type": "summary_text", "text": part.text}] if part.text else []
        if part.signature is not None:
            item["encrypted_content"] = part.signature
        self._item(item)

    def _item(self, item: dict[str, Any]) -> None:
        self._flush()
        self.items.append(item)

    def _flush(self) -> None:
        if self._content:
            self.items.append({"type": "message", "role": self._role, "content": self._content})
            self._content = []


def _media_json(part: Image | File) -> dict[str, Any]:
    if isinstance(part, Image):
        url = part.url if part.url is not None else data_url(part.mime_type or "image/png", part.data or "")
        return {"type": "input_image", "image_url": url, "detail": part.detail or "auto"}
    if part.file_id is not None and part.mime_type == _IMAGE_FILE_MIME:
        return {"type": "input_image", "file_id": part.file_id, "detail": "auto"}
    out: dict[str, Any] = {"type": "input_file"}
    if part.file_id is not None:
        out["file_id"] = part.file_id
    elif part.data is not None:
        out["file_data"] = data_url(part.mime_type, part.data) if part.mime_type else part.data
    elif part.url is not None:
        out["file_url"] = part.url
    if part.filename is not None:
        out["filename"] = part.filename
    return out


def _function_output_json(result: ToolResult) -> dict[str, Any]:
    output: JSON
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        output = result.content[0].text
    elif not result.content:
        output = ""
    else:
        output = [
            {"type": "input_text", "text": p.text} if isinstance(p, Text) else _media_json(p) for p in result.content
        ]
    return {"type": "function_call_output", "call_id": result.call_id, "output": output}


def _input_items(request: Request, *, store: bool) -> list[dict[str, Any]]:
    writer = _InputWriter(store=store, names=client_tool_names(request))
    # `instructions` holds the first system text; further ones lead the input so each stays a separate part.
    for text in request.system[1:]:
        writer.items.append(
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text.text}]}
        )
    for i, message in enumerate(request.messages):
        writer.message(i, message)
    return writer.items


def _wire_request(path: str, body: dict[str, Any], target: Target, request: Request) -> WireRequest:
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    if target.api_key:
        headers.append(("authorization", f"Bearer {target.api_key}"))
    headers.extend(client_protocol_headers(request, Format.OPENAI_RESPONSES))
    return WireRequest("POST", path, tuple(headers), dumps(body))


# ------------------------------------------------------------------------------------------------ provider answers
def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    values: dict[str, int] = {}
    for path, field in USAGE_FIELDS.items():
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int) and not isinstance(node, bool):
            values[field] = node
    return Usage(**values)


def _message_text(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, dict):
            text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


@dataclass(slots=True)
class _UpstreamItem:
    """What the decoder knows about one provider output item."""

    kind: str
    block: int | None = None
    text_seen: bool = False
    text_key: tuple[str, int] | None = None


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CodecError(f"OpenAI Responses stream: {what} is not a string")
    return value


class ResponsesStreamDecoder(StreamDecoder):
    """Provider SSE -> IR events. IR blocks are allocated on an item's first IR event, so items that carry
    nothing (an empty message, a reasoning item without summary or encrypted content) leave no gap."""

    def __init__(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self._seed = seed
        self._started = False
        self._done = False
        self._items: dict[Any, _UpstreamItem] = {}
        self._next_block = 0
        self._saw_items = False
        self._saw_tool_call = False
        self._tool_signature: str | None = None
        self._handlers: dict[str, Callable[[dict[str, Any], list[Event]], None]] = {
            "response.created": self._on_lifecycle,
            "response.queued": self._on_lifecycle,
            "response.in_progress": self._on_lifecycle,
            "response.output_item.added": self._on_item_added,
            "response.output_item.done": self._on_item_done,
            "response.output_text.delta": self._on_text_delta,
            "response.refusal.delta": self._on_text_delta,
            "response.reasoning_summary_text.delta": self._on_summary_delta,
            "response.reasoning_text.delta": self._on_reasoning_text_delta,
            "response.function_call_arguments.delta": self._on_arguments_delta,
            "response.completed": self._on_terminal,
            "response.incomplete": self._on_terminal,
            "response.failed": self._on_failed,
            "error": self._on_error,
        }

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for sse in self._sse.feed(data):
            self._dispatch(sse.event, sse.data, events)
        return events

    def flush(self) -> list[Event]:
        events: list[Event] = []
        for sse in self._sse.flush():
            self._dispatch(sse.event, sse.data, events)
        if not self._done:
            raise StreamTruncated("OpenAI Responses stream ended before response.completed")
        return events

    def replay(self, response: dict[str, Any]) -> list[Event]:
        """The events of a complete (non-stream) response object, exactly as its stream would decode."""
        events: list[Event] = []
        self._on_terminal({"type": f"response.{response.get('status')}", "response": response}, events)
        return events

    # ---------------------------------------------------------------- dispatch
    def _dispatch(self, name: str | None, data: bytes, events: list[Event]) -> None:
        if self._done or not data or data == b"[DONE]":
            return  # some compatible servers append [DONE]; nothing after the terminal event matters
        try:
            payload = loads(data)
        except JSONDecodeError as exc:
            raise CodecError(f"OpenAI Responses stream: malformed JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise CodecError("OpenAI Responses stream: event data is not a JSON object")
        event_type = payload.get("type") or name
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            return  # unknown and purely informational events (content_part.*, *.done texts...)
        try:
            handler(payload, events)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CodecError(f"OpenAI Responses stream: malformed {event_type} event ({exc!r})") from None

    def _ensure_start(self, response: Any, events: list[Event]) -> None:
        if self._started:
            return
        self._started = True
        response = response if isinstance(response, dict) else {}
        response_id = response.get("id")
        model = response.get("model")
        events.append(
            Start(
                response_id if isinstance(response_id, str) and response_id else self._seed,
                model if isinstance(model, str) else "",
            )
        )

    def _block(self, item: _UpstreamItem) -> int:
        if item.block is None:
            item.block = self._next_block
            self._next_block += 1
        return item.block

    @staticmethod
    def _key(payload: Mapping[str, Any], item: Mapping[str, Any] | None = None) -> Any:
        index = payload.get("output_index")
        if isinstance(index, int):
            return index
        if item is not None and item.get("id") is not None:
            return item["id"]
        return payload.get("item_id")

    def _item(self, payload: Mapping[str, Any], kind: str) -> _UpstreamItem:
        self._saw_items = True
        key = self._key(payload)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _UpstreamItem(kind)
        return item

    # ---------------------------------------------------------------- handlers
    def _on_lifecycle(self, payload: dict[str, Any], events: list[Event]) -> None:
        self._ensure_start(payload.get("response"), events)

    def _on_item_added(self, payload: dict[str, Any], events: list[Event]) -> None:
        self._ensure_start(None, events)
        raw = payload["item"]
        kind = raw["type"]
        self._saw_items = True
        item = self._items[self._key(payload, raw)] = _UpstreamItem(kind)
        if kind == "function_call":
            self._start_tool_call(item, raw, events)
            arguments = raw.get("arguments")
            if arguments:
                item.text_seen = True
                events.append(ToolCallDelta(self._block(item), _require_str(arguments, "arguments")))

    def _start_tool_call(self, item: _UpstreamItem, raw: Mapping[str, Any], events: list[Event]) -> None:
        self._saw_tool_call = True
        signature, self._tool_signature = self._tool_signature, None
        call_id = raw.get("call_id") or raw.get("id")
        name = _require_str(raw["name"], "name")
        namespace = raw.get("namespace")
        if isinstance(namespace, str) and namespace:
            name = namespaced_tool_name(namespace, name)
        events.append(ToolCallStart(self._block(item), _require_str(call_id, "call_id"), name, signature))

    def _on_text_delta(self, payload: dict[str, Any], events: list[Event]) -> None:
        delta = _require_str(payload["delta"], "delta")
        item = self._item(payload, "message")
        if delta:
            self._ensure_start(None, events)
            item.text_seen = True
            events.append(TextDelta(self._block(item), delta))

    def _on_summary_delta(self, payload: dict[str, Any], events: list[Event]) -> None:
        self._reasoning_delta(payload, ("summary", payload.get("summary_index", 0)), events)

    def _on_reasoning_text_delta(self, payload: dict[str, Any], events: list[Event]) -> None:
        self._reasoning_delta(payload, ("content", payload.get("content_index", 0)), events)

    def _reasoning_delta(self, payload: dict[str, Any], key: tuple[str, int], events: list[Event]) -> None:
        delta = _require_str(payload["delta"], "delta")
        item = self._item(payload, "reasoning")
        if not delta:
            return
        self._ensure_start(None, events)
        block = self._block(item)
        if item.text_seen and item.text_key != key:
            events.append(ReasoningDelta(block, _SUMMARY_SEPARATOR))  # as the joined non-stream summary has
        item.text_seen = True
        item.text_key = key
        events.append(ReasoningDelta(block, delta))

    def _on_arguments_delta(self, payload: dict[str, Any], events: list[Event]) -> None:
        delta = _require_str(payload["delta"], "delta")
        item = self._items.get(self._key(payload))
        if item is None or item.block is None:
            raise CodecError("OpenAI Responses stream: function_call_arguments.delta before its output_item.added")
        if delta:
            item.text_seen = True
            events.append(ToolCallDelta(item.block, delta))

    def _on_item_done(self, payload: dict[str, Any], events: list[Event]) -> None:
        """Close an item. Anything the deltas did not carry (servers that only send finished items, or the
        encrypted content) is taken from the finished item itself."""
        self._ensure_start(None, events)
        raw = payload["item"]
        kind = raw["type"]
        self._saw_items = True
        key = self._key(payload, raw)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _UpstreamItem(kind)
        if kind == "message":
            if not item.text_seen:
                text = _message_text(raw)
                if text:
                    events.append(TextDelta(self._block(item), text))
        elif kind == "reasoning":
            self._reasoning_done(item, raw, events)
        elif kind == "function_call":
            if item.block is None:
                self._start_tool_call(item, raw, events)
            arguments = raw.get("arguments")
            if not item.text_seen and arguments:
                events.append(ToolCallDelta(self._block(item), _require_str(arguments, "arguments")))
            events.append(ToolCallEnd(self._block(item)))

    def _reasoning_done(self, item: _UpstreamItem, raw: Mapping[str, Any], events: list[Event]) -> None:
        encrypted = raw.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted.startswith(REDACTED_MARKER):
            events.append(RedactedReasoningBlock(self._block(item), encrypted[len(REDACTED_MARKER) :]))
            return
        if isinstance(encrypted, str) and encrypted.startswith(TOOL_SIGNATURE_MARKER):
            self._tool_signature = encrypted[len(TOOL_SIGNATURE_MARKER) :]
            return
        if not item.text_seen:
            text = _reasoning_item_text(raw)
            if text:
                events.append(ReasoningDelta(self._block(item), text))
        if isinstance(encrypted, str):
            events.append(ReasoningSignature(self._block(item), encrypted))

    def _on_terminal(self, payload: dict[str, Any], events: list[Event]) -> None:
        response = payload["response"]
        if not isinstance(response, dict):
            raise CodecError("OpenAI Responses stream: terminal event without a response object")
        self._ensure_start(response, events)
        if not self._saw_items:
            # A server that streamed no items (or a non-stream body being replayed): the final output is the answer.
            output = response.get("output") or []
            for index, raw in enumerate(output):
                if isinstance(raw, dict) and isinstance(raw.get("type"), str):
                    self._on_item_done({"output_index": index, "item": raw}, events)
        usage = _usage_from(response.get("usage"))
        if usage is not None:
            events.append(UsageUpdate(usage))
        events.append(Finish(self._finish_reason(payload["type"], response)))
        self._done = True

    def _finish_reason(self, event_type: str, response: Mapping[str, Any]) -> FinishReason:
        if event_type == "response.incomplete" or response.get("status") == "incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            return (
                INCOMPLETE_FINISH.get(reason, FinishReason.LENGTH) if isinstance(reason, str) else FinishReason.LENGTH
            )
        return FinishReason.TOOL_CALLS if self._saw_tool_call else FinishReason.STOP

    def _on_failed(self, payload: dict[str, Any], events: list[Event]) -> None:
        response = payload.get("response")
        raise _stream_error(response.get("error") if isinstance(response, dict) else None)

    def _on_error(self, payload: dict[str, Any], events: list[Event]) -> None:
        nested = payload.get("error")
        raise _stream_error(nested if isinstance(nested, dict) else payload)


def _parse_response(body: bytes, seed: str) -> Response:
    try:
        obj = loads(body)
    except JSONDecodeError as exc:
        raise CodecError(f"OpenAI Responses answer is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CodecError("OpenAI Responses answer is not a JSON object")
    if obj.get("status") == "failed" or obj.get("error"):
        raise _stream_error(obj.get("error"))
    status = obj.get("status")
    if status is None:
        obj["status"] = "completed"  # some compatible servers leave it out of finished answers
    elif status not in ("completed", "incomplete"):
        raise CodecError(f"OpenAI Responses answer has status {status!r}, not a finished response")
    events = ResponsesStreamDecoder(seed).replay(obj)
    created = obj.get("created_at")
    return accumulate(events, created=int(created) if isinstance(created, int | float) else 0)


# ------------------------------------------------------------------------------------------------ the codec
class OpenAIResponsesCodec(Codec):
    format = Format.OPENAI_RESPONSES

    # ------------------------------------------------------------------ client side
    def parse_request(self, body: bytes, hints: RequestHints) -> Request:
        return _parse_request(loads_object(body), hints)

    def emit_response(self, response: Response, info: StreamInfo) -> bytes:
        return _emit_response(response, info)

    def new_encoder(self, info: StreamInfo) -> StreamEncoder:
        return ResponsesStreamEncoder(info)

    def emit_error(self, error: MuxError) -> tuple[int, bytes]:
        return _emit_error(error)

    # ------------------------------------------------------------------ provider side
    def emit_request(self, request: Request, target: Target) -> WireRequest:
        _check_expressible(request)  # counting tokens needs no stop sequences, so only generation checks
        body = _request_body(request, target.model, stream=target.stream)
        return _wire_request("/responses", body, target, request)

    def parse_response(self, body: bytes, seed: str) -> Response:
        return _parse_response(body, seed)

    def adapt_to_target(self, request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
        """Provider-run tools of the client's layout become neutral hosted tools or are dropped (per ``policy``);
        the layout itself is only read by this codec, so namespaces need nothing: their members are plain
        functions in the IR already, and the client encoder maps calls back."""
        hosted = [entry["hosted"] for entry in _layout(request) if isinstance(entry.get("hosted"), dict)]
        if not hosted:
            return Adaptation(request)
        candidates = [(f"{tool.get('type')}", _hosted_neutral(tool)) for tool in hosted]
        mapped, dropped = translate_hosted(candidates, target, policy)
        return Adaptation(replace(request, hosted_tools=(*request.hosted_tools, *mapped)), dropped=tuple(dropped))

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return ResponsesStreamDecoder(seed, max_event_bytes=max_event_bytes)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return _parse_error(status, body)

    # ------------------------------------------------------------------ token counting
    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        body = _request_body(request, target.model, stream=False)
        count_body = {key: value for key, value in body.items() if key in COUNT_FIELDS}
        return _wire_request("/responses/input_tokens", count_body, target, request)

    def parse_count_response(self, body: bytes) -> int:
        try:
            obj = loads(body)
        except JSONDecodeError as exc:
            raise CodecError(f"OpenAI input_tokens answer is not valid JSON ({exc})") from None
        tokens = obj.get("input_tokens") if isinstance(obj, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise CodecError("OpenAI input_tokens answer has no integer `input_tokens`")
        return tokens

    def emit_count_response(self, tokens: int) -> bytes:
        return dumps({"object": "response.input_tokens", "input_tokens": tokens})


CODEC = OpenAIResponsesCodec()

__all__ = ["CODEC", "OpenAIResponsesCodec", "ResponsesStreamDecoder", "ResponsesStreamEncoder"]

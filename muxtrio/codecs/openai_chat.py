"""OpenAI Chat Completions codec (``/v1/chat/completions``) and the legacy ``/v1/completions`` dialect, both ways.

Client side: a client (Cursor, Aider, Continue, the openai SDK...) speaks Chat Completions to muxtrio.
Provider side: muxtrio speaks Chat Completions to any OpenAI-compatible upstream (OpenAI, DeepSeek, vLLM, Groq,
OpenRouter, the built-in echo provider); the provider's base URL includes ``/v1``, so the path is ``/chat/completions``.

Invariants:
- Pure: no IO, clocks or randomness. Ids and times come from ``StreamInfo``/``seed``; tool-call ids an upstream
  omits are invented from ``seed`` (``codecs.ids.tool_call_id``).
- The decoder never lets IR blocks interleave (``ir/events.py``): the block that appeared first streams live; blocks
  that appear later are buffered until it is complete. A tool call is complete once a later block exists and its
  arguments parse as JSON (OpenAI streams parallel calls one after another, so they all stream live); otherwise the
  later blocks are released at the finish chunk, which closes every block. ``Finish`` itself is held back until
  ``[DONE]`` (or EOF after a ``finish_reason``) so that the usage chunk, which OpenAI sends after the finish chunk,
  precedes it (encoders such as Anthropic's put the usage in their closing event).
- ``[DONE]`` is recognised only as a whole ``data`` payload. A stream with neither ``[DONE]`` nor a
  ``finish_reason`` raises ``StreamTruncated`` at ``flush()``; one with a ``finish_reason`` but no ``[DONE]`` is
  accepted (some compatible servers close without it).
- A data event with an ``error`` object raises ``UpstreamError`` (after the events decoded before it in the same
  ``feed`` call have been returned: it is then raised by the next ``feed``/``flush``).
- The legacy dialect (``RequestHints.endpoint == "completions"``) is recorded as
  ``request.extensions["openai-chat"]["endpoint"] = "completions"``; ``emit_response``/``new_encoder`` then produce
  ``text_completion`` objects with ``choices[].text``. Upstream requests are always Chat Completions.

``request.extensions["openai-chat"]`` (written by ``parse_request``, read by this codec only):
    ``endpoint``          "completions" for the legacy dialect.
    ``reasoning_effort``  the client's raw value when the IR cannot say it exactly ("max" -> XHIGH, "none").
    ``max_tokens_field``  "max_completion_tokens" when the client used it (o-series models reject ``max_tokens``);
                          ``Target.max_tokens_field`` (the model's rule, ``codecs/model_rules.py``) takes precedence.
    ``passthrough``       OpenAI-only fields (``_PASSTHROUGH_FIELDS``) re-sent verbatim to OpenAI-compatible upstreams;
                          ``check_target`` refuses a non-empty ``logit_bias`` toward other provider formats.

What the format cannot express, and what happens (client side / provider side):
- ``n > 1``: the IR answer has one choice; ``emit_request`` raises UNSUPPORTED, and a decoder that meets a second
  choice raises UNSUPPORTED rather than drop it.
- ``logprobs``/``top_logprobs``, audio (``input_audio`` parts, ``audio``, ``modalities`` with audio), legacy
  ``functions``/``function_call``/``role: function``, non-function tools, legacy ``suffix``/``echo``/``best_of``/
  several prompts: UNSUPPORTED (``ClientError``) at ``parse_request``.
- Reasoning parts in assistant history are dropped upstream: OpenAI-compatible APIs do not take them back (DeepSeek
  documents that ``reasoning_content`` must not be sent in input: api-docs.deepseek.com/guides/reasoning_model).
  Reasoning signatures and redacted reasoning never reach a Chat client (the format has no field for them).
- Images inside tool results: a ``tool`` message takes text only, so the images move to one ``user`` message right
  after the run of ``tool`` messages, each group introduced by a line naming its call id; an image-only result says so
  in its ``tool`` message. ``ToolResult.is_error`` has no field: the result's content is sent as it is.
- Gemini thought signatures on tool calls travel as ``tool_calls[].extra_content.google.thought_signature`` (the
  shape of Gemini's OpenAI-compatible endpoint) to and from Chat clients; upstream they are sent to Gemini models
  only (``_takes_signatures``), since OpenAI rejects unknown message fields.
- A ``File`` given by URL: UNSUPPORTED (the ``file`` part takes ``file_id`` or ``file_data`` only).
- ``sampling.top_k`` from other formats is not sent: the official API rejects unknown fields, and it is only a
  sampling hint. A Chat client's own ``top_k``/``min_p``... reach an OpenAI-compatible upstream via ``passthrough``.
- ``Thinking`` -> ``reasoning_effort`` through ``ir.thinking.effort_for``; effort ``none`` is sent only when a Chat
  client asked for it itself (most OpenAI models reject ``reasoning_effort: none``, and off is their default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, assert_never, cast

from muxtrio.codecs.base import (
    Codec,
    Format,
    RequestHints,
    StreamDecoder,
    StreamEncoder,
    StreamInfo,
    Target,
    WireRequest,
    client_protocol_headers,
    client_status,
    is_context_length_message,
    kind_for_status,
    record_client_headers,
)
from muxtrio.codecs.ids import tool_call_id
from muxtrio.codecs.media import data_url, parse_data_url
from muxtrio.codecs.schema import normalize_schema
from muxtrio.errors import (
    DEFAULT_STATUS,
    CodecError,
    ErrorKind,
    MuxError,
    StreamTruncated,
    UpstreamError,
)
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
from muxtrio.ir.response import FinishReason, Response, Usage
from muxtrio.ir.thinking import effort_for
from muxtrio.wire import jsonutil
from muxtrio.wire.framing import Frame
from muxtrio.wire.jsonutil import (
    as_object,
    get_array,
    get_bool,
    get_int,
    get_number,
    get_object,
    get_str,
    invalid,
    opt_array,
    require_str,
    unsupported,
)
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEFramer

FORMAT_KEY: Final = Format.OPENAI_CHAT.value
LEGACY_ENDPOINT: Final = "completions"
CHAT_PATH: Final = "/chat/completions"
LEGACY_DEFAULT_MAX_TOKENS: Final = 16  # platform.openai.com/docs/api-reference/completions/create (max_tokens)

# ---------------------------------------------------------------------------------------------------- mapping tables
ROLE_FROM_OPENAI: Final[dict[str, Role]] = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}
ROLE_TO_OPENAI: Final[dict[Role, str]] = {
    Role.SYSTEM: "system",  # "developer" is not accepted by every compatible server; OpenAI maps system to it
    Role.USER: "user",
    Role.ASSISTANT: "assistant",
    Role.TOOL: "tool",
}

FINISH_FROM_OPENAI: Final[dict[str, FinishReason]] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "function_call": FinishReason.TOOL_CALLS,  # deprecated spelling of tool_calls
    # Seen from compatible servers, not from OpenAI: vLLM/llama.cpp "eos", servers fronting Anthropic "end_turn",
    # "max_tokens", "stop_sequence", "tool_use"; "error" from some routers when generation failed.
    "eos": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "tool_use": FinishReason.TOOL_CALLS,
    "error": FinishReason.ERROR,
}
FINISH_TO_OPENAI: Final[dict[FinishReason, str]] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.STOP_SEQUENCE: "stop",
    FinishReason.ERROR: "stop",  # the SDK's finish_reason Literal has no error value; the stream did end
}
LEGACY_FINISH_TO_OPENAI: Final[dict[FinishReason, str]] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "stop",  # no tools in the legacy dialect; listed for completeness
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.STOP_SEQUENCE: "stop",
    FinishReason.ERROR: "stop",
}

# reasoning_effort values: openai/types/shared/reasoning_effort.py. The IR has no "max": it is the top level, XHIGH.
EFFORT_FROM_OPENAI: Final[dict[str, Effort]] = {
    "none": Effort.NONE,
    "minimal": Effort.MINIMAL,
    "low": Effort.LOW,
    "medium": Effort.MEDIUM,
    "high": Effort.HIGH,
    "xhigh": Effort.XHIGH,
    "max": Effort.XHIGH,
}
EFFORT_TO_OPENAI: Final[dict[Effort, str]] = {
    Effort.NONE: "none",
    Effort.MINIMAL: "minimal",
    Effort.LOW: "low",
    Effort.MEDIUM: "medium",
    Effort.HIGH: "high",
    Effort.XHIGH: "xhigh",
}

# Usage: OpenAI wire path -> IR Usage field. prompt_tokens already includes cached tokens and completion_tokens
# includes reasoning tokens, which is the IR's convention (ir/response.py). DeepSeek reports cache hits as
# prompt_cache_hit_tokens (api-docs.deepseek.com/api/create-chat-completion); a field-wise max merges the aliases.
USAGE_FROM_OPENAI: Final[dict[tuple[str, ...], str]] = {
    ("prompt_tokens",): "input_tokens",
    ("completion_tokens",): "output_tokens",
    ("prompt_tokens_details", "cached_tokens"): "cache_read_tokens",
    ("prompt_tokens_details", "cache_write_tokens"): "cache_write_tokens",
    ("completion_tokens_details", "reasoning_tokens"): "reasoning_tokens",
    ("prompt_cache_hit_tokens",): "cache_read_tokens",
}

# Error kind -> OpenAI error (type, code) for clients. Types as in platform.openai.com/docs/guides/error-codes.
ERROR_TYPE_FOR_KIND: Final[dict[ErrorKind, tuple[str, str | None]]] = {
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorKind.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    ErrorKind.PERMISSION: ("permission_error", None),
    ErrorKind.NOT_FOUND: ("not_found_error", None),
    ErrorKind.METHOD_NOT_ALLOWED: ("invalid_request_error", "method_not_allowed"),
    ErrorKind.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorKind.CONTEXT_LENGTH: ("invalid_request_error", "context_length_exceeded"),
    ErrorKind.CONTENT_FILTER: ("invalid_request_error", "content_filter"),
    ErrorKind.UNSUPPORTED: ("invalid_request_error", "unsupported_parameter"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.OVERLOADED: ("server_error", "overloaded"),
    ErrorKind.TIMEOUT: ("server_error", "timeout"),
    ErrorKind.UPSTREAM: ("server_error", "upstream_error"),
    ErrorKind.UNAVAILABLE: ("server_error", "service_unavailable"),
    ErrorKind.INTERNAL: ("server_error", None),
}

# Provider error -> kind. ``code`` is the most specific signal, then the HTTP status, then ``type`` (which is all a
# mid-stream error object carries).
# Shared by the Chat and Responses codecs (one OpenAI error format, read in one place).
KIND_FOR_ERROR_CODE: Final[dict[str, ErrorKind]] = {
    "context_length_exceeded": ErrorKind.CONTEXT_LENGTH,
    "string_above_max_length": ErrorKind.CONTEXT_LENGTH,
    "content_filter": ErrorKind.CONTENT_FILTER,
    "content_policy_violation": ErrorKind.CONTENT_FILTER,
    "image_content_policy_violation": ErrorKind.CONTENT_FILTER,
    "bio_policy": ErrorKind.CONTENT_FILTER,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,
    "server_is_overloaded": ErrorKind.OVERLOADED,
    "slow_down": ErrorKind.OVERLOADED,
    "server_error": ErrorKind.UPSTREAM,
    "invalid_api_key": ErrorKind.AUTHENTICATION,
    "model_not_found": ErrorKind.NOT_FOUND,
}
KIND_FOR_ERROR_TYPE: Final[dict[str, ErrorKind]] = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,
    "tokens": ErrorKind.RATE_LIMIT,  # OpenAI's rate-limit errors use type "tokens"/"requests"
    "requests": ErrorKind.RATE_LIMIT,
    "overloaded_error": ErrorKind.OVERLOADED,
    "server_error": ErrorKind.UPSTREAM,
    "api_error": ErrorKind.UPSTREAM,
}

# Chat fields that only OpenAI-compatible upstreams understand and that change nothing in the answer's shape: kept
# verbatim in extensions and re-sent when the upstream is OpenAI-compatible too. top_k/min_p/repetition_penalty are
# vLLM/OpenRouter sampling extensions (docs.vllm.ai: "Extra parameters"); the rest are OpenAI's.
_PASSTHROUGH_FIELDS: Final = (
    "logit_bias",
    "store",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
    "top_k",
    "min_p",
    "repetition_penalty",
)

# Fields whose meaning the IR cannot carry back to the client: rejected instead of silently ignored.
_UNSUPPORTED_CHAT_FIELDS: Final[dict[str, str]] = {
    "functions": "legacy `functions` are not supported; use `tools`",
    "function_call": "legacy `function_call` is not supported; use `tool_choice`",
    "audio": "audio output is not supported",
    "logprobs": "`logprobs` are not supported by this gateway",
    "top_logprobs": "`top_logprobs` are not supported by this gateway",
}


# ---------------------------------------------------------------------------------------------------- signatures
def _signature_of(call: Mapping[str, Any]) -> str | None:
    """Gemini's thought signature on a tool call, as its OpenAI-compatible endpoint carries it
    (``extra_content.google.thought_signature``: ai.google.dev/gemini-api/docs/thought-signatures)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _signature_json(signature: str) -> dict[str, Any]:
    return {"google": {"thought_signature": signature}}


def _takes_signatures(model: str) -> bool:
    """Whether an upstream model is Gemini, whose OpenAI-compatible endpoint needs tool-call signatures back.
    Others are not sent them: OpenAI rejects unknown message fields."""
    return "gemini" in model.lower()


# ---------------------------------------------------------------------------------------------------- client request
def _parse_text_parts(content: Any, param: str) -> tuple[Text, ...]:
    """Content that may only be text: a string or a list of ``text`` parts (system, developer, tool messages)."""
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of text parts", param)
    texts: list[Text] = []
    for i, raw in enumerate(content):
        part = as_object(raw, f"{param}[{i}]")
        if part.get("type") != "text":
            raise invalid(f"`{param}[{i}].type` must be 'text' here", f"{param}[{i}].type")
        texts.append(Text(require_str(part, "text", f"{param}[{i}].text")))
    return tuple(texts)


def _parse_image_part(part: Mapping[str, Any], param: str) -> Image:
    image_url = as_object(part.get("image_url"), f"{param}.image_url")
    url = require_str(image_url, "url", f"{param}.image_url.url")
    detail = get_str(image_url, "detail", f"{param}.image_url.detail")
    inline = parse_data_url(url)
    if inline is not None:
        mime_type, data = inline
        return Image(data=data, mime_type=mime_type, detail=detail)
    return Image(url=url, detail=detail)


def _parse_file_part(part: Mapping[str, Any], param: str) -> File:
    file = as_object(part.get("file"), f"{param}.file")
    filename = get_str(file, "filename", f"{param}.file.filename")
    file_id = get_str(file, "file_id", f"{param}.file.file_id")
    file_data = get_str(file, "file_data", f"{param}.file.file_data")
    if file_id is not None:
        return File(file_id=file_id, filename=filename)
    if file_data is None:
        raise invalid(f"`{param}.file` needs `file_id` or `file_data`", f"{param}.file")
    inline = parse_data_url(file_data)
    if inline is not None:  # the documented form: "data:application/pdf;base64,..."
        mime_type, data = inline
        return File(data=data, mime_type=mime_type, filename=filename)
    return File(data=file_data, filename=filename)


def _parse_content_part(raw: Any, param: str) -> Part:
    part = as_object(raw, param)
    kind = part.get("type")
    if kind == "text":
        return Text(require_str(part, "text", f"{param}.text"))
    if kind == "image_url":
        return _parse_image_part(part, param)
    if kind == "file":
        return _parse_file_part(part, param)
    if kind == "input_audio":
        raise unsupported("audio input (`input_audio`) is not supported", f"{param}.type")
    raise invalid(f"unknown content part type {kind!r}", f"{param}.type")


def _parse_user_content(content: Any, param: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (Text(content),)
    if isinstance(content, list):
        return tuple(_parse_content_part(raw, f"{param}[{i}]") for i, raw in enumerate(content))
    raise invalid(f"`{param}` must be a string or an array of content parts", param)


def _parse_assistant_content(content: Any, param: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string, an array of parts or null", param)
    parts: list[Part] = []
    for i, raw in enumerate(content):
        part = as_object(raw, f"{param}[{i}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(Text(require_str(part, "text", f"{param}[{i}].text")))
        elif kind == "refusal":
            parts.append(Text(require_str(part, "refusal", f"{param}[{i}].refusal")))
        else:
            raise invalid(f"assistant content parts must be text or refusal, not {kind!r}", f"{param}[{i}].type")
    return parts


def _parse_tool_calls(raw: Any, param: str) -> list[Part]:
    calls: list[Part] = []
    for i, item in enumerate(opt_array(raw, param) or []):
        call = as_object(item, f"{param}[{i}]")
        kind = call.get("type", "function")
        if kind != "function":
            raise unsupported(f"tool calls of type {kind!r} are not supported", f"{param}[{i}].type")
        function = as_object(call.get("function"), f"{param}[{i}].function")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some clients send an object; the wire form is JSON text
            arguments = jsonutil.dumps(arguments).decode()
        elif arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            raise invalid(f"`{param}[{i}].function.arguments` must be a string", f"{param}[{i}].function.arguments")
        calls.append(
            ToolCall(
                id=require_str(call, "id", f"{param}[{i}].id"),
                name=require_str(function, "name", f"{param}[{i}].function.name"),
                arguments=arguments,
                signature=_signature_of(call),
            )
        )
    return calls


def _parse_assistant(message: Mapping[str, Any], param: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    # DeepSeek/vLLM return reasoning_content (newer vLLM: reasoning); clients may echo it back in history.
    reasoning = get_str(message, "reasoning_content", f"{param}.reasoning_content")
    if reasoning is None:
        reasoning = get_str(message, "reasoning", f"{param}.reasoning")
    if reasoning:
        parts.append(Reasoning(reasoning))
    parts.extend(_parse_assistant_content(message.get("content"), f"{param}.content"))
    refusal = get_str(message, "refusal", f"{param}.refusal")
    if refusal:
        parts.append(Text(refusal))
    parts.extend(_parse_tool_calls(message.get("tool_calls"), f"{param}.tool_calls"))
    return tuple(parts)


def _parse_tool_message(message: Mapping[str, Any], param: str) -> tuple[Part, ...]:
    call_id = require_str(message, "tool_call_id", f"{param}.tool_call_id")
    content = message.get("content")
    result: tuple[Text | Image, ...]
    if isinstance(content, list):
        # The SDK types allow text parts only; images are accepted too (some clients send them) and kept.
        items: list[Text | Image] = []
        for i, raw in enumerate(content):
            part = _parse_content_part(raw, f"{param}.content[{i}]")
            if not isinstance(part, (Text, Image)):
                raise invalid("tool message content must be text or images", f"{param}.content[{i}].type")
            items.append(part)
        result = tuple(items)
    elif content is None:
        result = ()
    else:
        result = _parse_text_parts(content, f"{param}.content")
    return (ToolResult(call_id=call_id, content=result),)


def _parse_message(raw: Any, param: str) -> Message:
    message = as_object(raw, param)
    role_name = require_str(message, "role", f"{param}.role")
    if role_name == "function":
        raise unsupported("legacy `function` messages are not supported; use `tool` messages", f"{param}.role")
    role = ROLE_FROM_OPENAI.get(role_name)
    if role is None:
        raise invalid(f"unknown role {role_name!r}", f"{param}.role")
    name = get_str(message, "name", f"{param}.name")
    parts: tuple[Part, ...]
    if role is Role.SYSTEM:
        parts = _parse_text_parts(message.get("content"), f"{param}.content")
    elif role is Role.USER:
        parts = _parse_user_content(message.get("content"), f"{param}.content")
    elif role is Role.ASSISTANT:
        parts = _parse_assistant(message, param)
    else:
        parts = _parse_tool_message(message, param)
    return Message(role=role, parts=parts, name=name)


def _parse_messages(raw: Any) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    if raw is None:
        raise invalid("`messages` is required", "messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("`messages` must be a non-empty array", "messages")
    messages = [_parse_message(item, f"messages[{i}]") for i, item in enumerate(raw)]
    system: list[Text] = []
    start = 0
    # Leading system/developer messages are the system prompt; later ones stay in place as SYSTEM messages.
    while start < len(messages) and messages[start].role is Role.SYSTEM:
        system.extend(cast(tuple[Text, ...], messages[start].parts))
        start += 1
    return tuple(system), tuple(messages[start:])


def _parse_tool(raw: Any, param: str) -> Tool:
    tool = as_object(raw, param)
    kind = tool.get("type")
    if kind != "function":
        raise unsupported(f"tools of type {kind!r} are not supported; only function tools", f"{param}.type")
    function = as_object(tool.get("function"), f"{param}.function")
    parameters = get_object(function, "parameters", f"{param}.function.parameters")
    return Tool(
        name=require_str(function, "name", f"{param}.function.name"),
        description=get_str(function, "description", f"{param}.function.description"),
        parameters=cast("JSONObject | None", parameters),
        strict=get_bool(function, "strict", f"{param}.function.strict"),
    )


def _parse_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            mode = ToolChoiceMode(raw)
        except ValueError:
            raise invalid(f"unknown tool_choice {raw!r}", "tool_choice") from None
        if mode is ToolChoiceMode.TOOL:
            raise invalid("unknown tool_choice 'tool'", "tool_choice")
        return ToolChoice(mode)
    choice = as_object(raw, "tool_choice")
    if choice.get("type") != "function":
        raise unsupported(f"tool_choice of type {choice.get('type')!r} is not supported", "tool_choice.type")
    function = as_object(choice.get("function"), "tool_choice.function")
    return ToolChoice(ToolChoiceMode.TOOL, require_str(function, "name", "tool_choice.function.name"))


def _parse_response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = as_object(raw, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return ResponseFormat(ResponseFormatType.TEXT)
    if kind == "json_object":
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    if kind != "json_schema":
        raise invalid(f"unknown response_format type {kind!r}", "response_format.type")
    spec = as_object(fmt.get("json_schema"), "response_format.json_schema")
    schema = get_object(spec, "schema", "response_format.json_schema.schema")
    return ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        schema=cast("JSONObject | None", schema),
        name=get_str(spec, "name", "response_format.json_schema.name"),
        strict=get_bool(spec, "strict", "response_format.json_schema.strict"),
    )


def _parse_thinking(raw: Any, extension: JSONObject) -> Thinking:
    if raw is None:
        return Thinking()
    if not isinstance(raw, str) or raw not in EFFORT_FROM_OPENAI:
        raise invalid(f"unknown reasoning_effort {raw!r}", "reasoning_effort")
    effort = EFFORT_FROM_OPENAI[raw]
    if EFFORT_TO_OPENAI[effort] != raw or effort is Effort.NONE:
        extension["reasoning_effort"] = raw  # "max" (IR: XHIGH) and "none" go back upstream exactly as sent
    return Thinking(enabled=effort is not Effort.NONE, effort=effort)


def _parse_stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return tuple(raw)
    raise invalid("`stop` must be a string or an array of strings", "stop")


def _parse_metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    metadata = as_object(raw, "metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise invalid("`metadata` values must be strings", f"metadata.{key}")
    return cast(dict[str, str], metadata)


def _parse_sampling(body: Mapping[str, Any], max_tokens: int | None) -> Sampling:
    n = get_int(body, "n", "n")
    if n is not None and n < 1:
        raise invalid("`n` must be at least 1", "n")
    return Sampling(
        temperature=get_number(body, "temperature", "temperature"),
        top_p=get_number(body, "top_p", "top_p"),
        top_k=get_int(body, "top_k", "top_k"),
        max_tokens=max_tokens,
        stop=_parse_stop(body.get("stop")),
        seed=get_int(body, "seed", "seed"),
        frequency_penalty=get_number(body, "frequency_penalty", "frequency_penalty"),
        presence_penalty=get_number(body, "presence_penalty", "presence_penalty"),
        n=n,
    )


def _parse_model(body: Mapping[str, Any], hints: RequestHints) -> str:
    model = get_str(body, "model", "model") or hints.model
    if not model:
        raise invalid("`model` is required", "model")
    return model


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = get_object(body, "stream_options", "stream_options") or {}
    return bool(get_bool(options, "include_usage", "stream_options.include_usage"))


def _is_stream(body: Mapping[str, Any], hints: RequestHints) -> bool:
    return bool(get_bool(body, "stream", "stream")) or bool(hints.stream)


def _passthrough(body: Mapping[str, Any]) -> JSONObject:
    return {key: jsonutil.as_json(body[key]) for key in _PASSTHROUGH_FIELDS if body.get(key) is not None}


def _reject_unsupported_chat_fields(body: Mapping[str, Any]) -> None:
    for key, message in _UNSUPPORTED_CHAT_FIELDS.items():
        value = body.get(key)
        # Absent, null, false, 0 and [] all mean "not asked for"; only a real request for the feature is refused.
        if value is not None and value is not False and value != 0 and value != []:
            raise unsupported(message, key)
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise unsupported("only text output is supported", "modalities")


def _parse_chat_request(body: JSONObject, hints: RequestHints) -> Request:
    _reject_unsupported_chat_fields(body)
    extension: JSONObject = {}
    max_tokens = get_int(body, "max_completion_tokens", "max_completion_tokens")
    if max_tokens is not None:
        extension["max_tokens_field"] = "max_completion_tokens"
    else:
        max_tokens = get_int(body, "max_tokens", "max_tokens")
    system, messages = _parse_messages(body.get("messages"))
    tools = get_array(body, "tools", "tools") or []
    thinking = _parse_thinking(body.get("reasoning_effort"), extension)
    passthrough = _passthrough(body)
    if passthrough:
        extension["passthrough"] = passthrough
    record_client_headers(extension, hints)
    return Request(
        model=_parse_model(body, hints),
        messages=messages,
        system=system,
        tools=tuple(_parse_tool(raw, f"tools[{i}]") for i, raw in enumerate(tools)),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=get_bool(body, "parallel_tool_calls", "parallel_tool_calls"),
        sampling=_parse_sampling(body, max_tokens),
        thinking=thinking,
        response_format=_parse_response_format(body.get("response_format")),
        stream=_is_stream(body, hints),
        include_usage=_include_usage(body),
        user=get_str(body, "user", "user"),
        metadata=_parse_metadata(body.get("metadata")),
        service_tier=get_str(body, "service_tier", "service_tier"),
        extensions={FORMAT_KEY: extension} if extension else {},
    )


def _parse_prompt(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        if len(raw) == 1 and isinstance(raw[0], str):
            return raw[0]
        if all(isinstance(p, str) for p in raw) and raw:
            raise unsupported("several prompts in one request are not supported; send one prompt", "prompt")
        if raw and all(isinstance(p, (int, list)) and not isinstance(p, bool) for p in raw):
            raise unsupported("token-id prompts are not supported; send the prompt as text", "prompt")
    if raw is None:
        raise invalid("`prompt` is required", "prompt")
    raise invalid("`prompt` must be a string", "prompt")


def _reject_unsupported_legacy_fields(body: Mapping[str, Any]) -> None:
    if body.get("suffix") is not None:
        raise unsupported("`suffix` (insertion) is not supported", "suffix")
    if body.get("echo"):
        raise unsupported("`echo` is not supported", "echo")
    best_of = body.get("best_of")
    if best_of is not None and best_of != 1:
        raise unsupported("`best_of` is not supported", "best_of")
    if body.get("logprobs") is not None:
        raise unsupported("`logprobs` are not supported by this gateway", "logprobs")


def _parse_legacy_request(body: JSONObject, hints: RequestHints) -> Request:
    _reject_unsupported_legacy_fields(body)
    prompt = _parse_prompt(body.get("prompt"))
    max_tokens = get_int(body, "max_tokens", "max_tokens")
    extension: JSONObject = {"endpoint": LEGACY_ENDPOINT}
    passthrough = _passthrough(body)
    if passthrough:
        extension["passthrough"] = passthrough
    return Request(
        model=_parse_model(body, hints),
        messages=(Message(Role.USER, (Text(prompt),)),),
        sampling=_parse_sampling(body, LEGACY_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens),
        stream=_is_stream(body, hints),
        include_usage=_include_usage(body),
        user=get_str(body, "user", "user"),
        extensions={FORMAT_KEY: extension},
    )


def _is_legacy(request: Request) -> bool:
    extension = request.extensions.get(FORMAT_KEY)
    return extension is not None and extension.get("endpoint") == LEGACY_ENDPOINT


# ---------------------------------------------------------------------------------------------------- client answers
def _usage_json(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call_json(call: ToolCall, *, with_signature: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if with_signature and call.signature is not None:
        out["extra_content"] = _signature_json(call.signature)
    return out


def _chat_message_json(parts: tuple[Part, ...]) -> dict[str, Any]:
    texts = [p.text for p in parts if isinstance(p, Text)]
    reasoning = [p.text for p in parts if isinstance(p, Reasoning)]
    calls = [_tool_call_json(p) for p in parts if isinstance(p, ToolCall)]
    content: str | None = "".join(texts) if texts else (None if calls else "")
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return message


def _chat_completion_json(response: Response, info: StreamInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "chat.completion",
        "created": info.created,
        "model": info.model,
        "choices": [
            {
                "index": 0,
                "message": _chat_message_json(response.parts),
                "finish_reason": FINISH_TO_OPENAI[response.finish_reason],
                "logprobs": None,
            }
        ],
        "usage": _usage_json(response.usage),
    }


def _text_completion_json(response: Response, info: StreamInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "text_completion",
        "created": info.created,
        "model": info.model,
        "choices": [
            {
                "text": "".join(p.text for p in response.parts if isinstance(p, Text)),
                "index": 0,
                "logprobs": None,
                "finish_reason": LEGACY_FINISH_TO_OPENAI[response.finish_reason],
            }
        ],
        "usage": _usage_json(response.usage),
    }


def _error_json(error: MuxError) -> dict[str, Any]:
    kind_type, kind_code = ERROR_TYPE_FOR_KIND[error.kind]
    if error.code is not None:
        kind_type = kind_code = error.code  # OpenAI's own quota error: type and code are both insufficient_quota
    return {"error": {"message": error.message, "type": kind_type, "param": error.param, "code": kind_code}}


# ---------------------------------------------------------------------------------------------------- client streams
class _ChunkEncoder(StreamEncoder):
    """Shared by both dialects: the chunk head (id, object, created, model) is built once per stream; each event
    then costs one ``orjson.dumps`` of its variable part. Frames are ``data:`` payloads; ``[DONE]`` ends a normal
    stream (the framer's terminator)."""

    __slots__ = ("_head", "_include_usage", "_usage", "framer")

    def __init__(self, info: StreamInfo, object_name: bytes) -> None:
        self.framer = SSEFramer(done=b"[DONE]")
        self._head = (
            b'{"id":'
            + jsonutil.dumps(info.id)
            + b',"object":"'
            + object_name
            + b'","created":'
            + str(int(info.created)).encode()
            + b',"model":'
            + jsonutil.dumps(info.model)
            + b","
        )
        self._include_usage = info.request.include_usage
        self._usage = Usage()

    def final_frames(self) -> tuple[Frame, ...]:
        if not self._include_usage:
            return ()
        usage = jsonutil.dumps(_usage_json(self._usage))
        return ((None, self._head + b'"choices":[],"usage":' + usage + b"}"),)

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        # The openai SDK raises APIError for a data event whose JSON has an "error" key (openai/_streaming.py), and
        # no [DONE] follows, so the stream cannot be mistaken for a finished one.
        return ((None, jsonutil.dumps(_error_json(error))),)


class _ChatEncoder(_ChunkEncoder):
    """IR events -> ``chat.completion.chunk`` payloads, ending with the optional usage chunk (and ``[DONE]``)."""

    __slots__ = ("_content_prefix", "_content_suffix", "_delta_prefix", "_open_suffix", "_started", "_tool_slots")

    def __init__(self, info: StreamInfo) -> None:
        super().__init__(info, b"chat.completion.chunk")
        self._delta_prefix = self._head + b'"choices":[{"index":0,"delta":'
        self._open_suffix = b',"logprobs":null,"finish_reason":null}]}'
        self._content_prefix = self._delta_prefix + b'{"content":'
        self._content_suffix = b"}" + self._open_suffix
        self._started = False
        # IR part index -> the tool call's position among this answer's calls (the SDK indexes its list by it).
        self._tool_slots: dict[int, int] = {}

    def _chunk(self, delta: bytes) -> tuple[Frame, ...]:
        frame = (None, self._delta_prefix + delta + self._open_suffix)
        if self._started:
            return (frame,)
        self._started = True
        return (self._role_chunk(), frame)

    def _role_chunk(self) -> Frame:
        return (None, self._delta_prefix + b'{"role":"assistant","content":""}' + self._open_suffix)

    def advance(self, event: Event) -> None:
        if self._started and type(event) in (TextDelta, ReasoningDelta):
            return  # nothing to remember of a delta once the role chunk is out
        if type(event) is ToolCallDelta and event.index in self._tool_slots:
            return
        self.frames(event)

    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case TextDelta(text=text):
                if self._started:  # the hot path: one dumps and two concatenations per token
                    return ((None, self._content_prefix + jsonutil.dumps(text) + self._content_suffix),)
                return self._chunk(b'{"content":' + jsonutil.dumps(text) + b"}")
            case ReasoningDelta(text=text):
                return self._chunk(b'{"reasoning_content":' + jsonutil.dumps(text) + b"}")
            case ToolCallStart(index=index, id=call_id, name=name, signature=signature):
                slot = self._tool_slots[index] = len(self._tool_slots)
                call: dict[str, Any] = {
                    "index": slot,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                if signature is not None:
                    call["extra_content"] = _signature_json(signature)
                return self._chunk(b'{"tool_calls":[' + jsonutil.dumps(call) + b"]}")
            case ToolCallDelta(index=index, arguments=arguments):
                known = self._tool_slots.get(index)
                if known is None:  # a delta without its start breaks the event contract; give it a slot anyway
                    known = self._tool_slots[index] = len(self._tool_slots)
                fragment = b'{"index":' + str(known).encode() + b',"function":{"arguments":'
                return self._chunk(b'{"tool_calls":[' + fragment + jsonutil.dumps(arguments) + b"}}]}")
            case Start():
                if self._started:
                    return ()
                self._started = True
                return (self._role_chunk(),)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish(reason=reason):
                reason_json = b'"' + FINISH_TO_OPENAI[reason].encode() + b'"'
                tail = b',"logprobs":null,"finish_reason":' + reason_json + b"}]}"
                finish = (None, self._delta_prefix + b"{}" + tail)
                if self._started:
                    return (finish,)
                self._started = True
                return (self._role_chunk(), finish)
            case ToolCallEnd() | ReasoningSignature() | RedactedReasoningBlock():
                return ()  # nothing in the Chat format carries these
            case _:
                assert_never(event)


class _LegacyEncoder(_ChunkEncoder):
    """IR events -> ``text_completion`` payloads (the legacy ``/v1/completions`` stream): text only."""

    __slots__ = ("_text_prefix",)

    _OPEN_SUFFIX: Final = b',"index":0,"logprobs":null,"finish_reason":null}]}'

    def __init__(self, info: StreamInfo) -> None:
        super().__init__(info, b"text_completion")
        self._text_prefix = self._head + b'"choices":[{"text":'

    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case TextDelta(text=text):
                return ((None, self._text_prefix + jsonutil.dumps(text) + self._OPEN_SUFFIX),)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish(reason=reason):
                reason_json = b'"' + LEGACY_FINISH_TO_OPENAI[reason].encode() + b'"'
                tail = b'"","index":0,"logprobs":null,"finish_reason":' + reason_json + b"}]}"
                return ((None, self._text_prefix + tail),)
            case (
                Start()
                | ReasoningDelta()
                | ReasoningSignature()
                | RedactedReasoningBlock()
                | ToolCallStart()
                | ToolCallDelta()
                | ToolCallEnd()
            ):
                return ()  # the legacy format has text only (no tools are offered to it)
            case _:
                assert_never(event)


# ---------------------------------------------------------------------------------------------------- upstream request
def _text_content(texts: list[Text]) -> str | list[dict[str, Any]]:
    """One text part is a plain string (what every compatible server accepts); several stay separate parts."""
    if len(texts) == 1:
        return texts[0].text
    return [{"type": "text", "text": t.text} for t in texts]


def _image_part_json(image: Image) -> dict[str, Any]:
    if image.data is not None:
        url = data_url(image.mime_type or "image/png", image.data)
    elif image.url is not None:
        url = image.url
    else:
        raise CodecError("an image has neither data nor url", kind=ErrorKind.INVALID_REQUEST, param="messages")
    image_url: dict[str, Any] = {"url": url}
    if image.detail is not None:
        image_url["detail"] = image.detail
    return {"type": "image_url", "image_url": image_url}


def _file_part_json(file: File) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if file.file_id is not None:
        spec["file_id"] = file.file_id
    elif file.data is not None:
        spec["file_data"] = data_url(file.mime_type or "application/pdf", file.data)
    else:
        raise CodecError(
            "OpenAI Chat file parts take a file id or inline data, not a URL", kind=ErrorKind.UNSUPPORTED, param="file"
        )
    if file.filename is not None:
        spec["filename"] = file.filename
    return {"type": "file", "file": spec}


def _content_json(parts: list[Part]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, Text) for p in parts):
        return _text_content(cast(list[Text], parts)) if parts else ""
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            out.append(_image_part_json(part))
        elif isinstance(part, File):
            out.append(_file_part_json(part))
    return out


def _assistant_json(message: Message, signatures: bool) -> dict[str, Any]:
    texts: list[Text] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, Text):
            texts.append(part)
        elif isinstance(part, ToolCall):
            # An empty argument string is not JSON; OpenAI-compatible servers parse it, so send the empty object.
            call = ToolCall(part.id, part.name, part.arguments or "{}", part.signature)
            calls.append(_tool_call_json(call, with_signature=signatures))
        elif isinstance(part, (Image, File, ToolResult)):
            raise CodecError(
                f"an assistant message cannot carry {type(part).__name__} parts in OpenAI Chat",
                kind=ErrorKind.UNSUPPORTED,
                param="messages",
            )
        # Reasoning and RedactedReasoning are dropped: see the module docstring.
    out: dict[str, Any] = {"role": "assistant", "content": _text_content(texts) if texts else (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    if message.name is not None:
        out["name"] = message.name
    return out


class _MessageWriter:
    """IR messages -> OpenAI messages. Tool results become one ``tool`` message each; images they carry are held
    and sent in one ``user`` message after the run of tool messages (OpenAI requires every ``tool`` message to follow
    the assistant's ``tool_calls`` directly)."""

    def __init__(self, signatures: bool) -> None:
        self.out: list[dict[str, Any]] = []
        self._held_images: list[dict[str, Any]] = []
        self._signatures = signatures

    def write(self, message: Message) -> None:
        if message.role is Role.ASSISTANT:
            self._release_images()
            self.out.append(_assistant_json(message, self._signatures))
            return
        others: list[Part] = []
        for part in message.parts:
            if isinstance(part, ToolResult):
                self._write_tool_result(part)
            elif isinstance(part, ToolCall):
                raise CodecError(
                    "only assistant messages carry tool calls", kind=ErrorKind.UNSUPPORTED, param="messages"
                )
            elif not isinstance(part, (Reasoning, RedactedReasoning)):
                others.append(part)
        if others or not message.parts:
            self._release_images()
            role = "user" if message.role is Role.TOOL else ROLE_TO_OPENAI[message.role]
            entry: dict[str, Any] = {"role": role, "content": _content_json(others)}
            if message.name is not None:
                entry["name"] = message.name
            self.out.append(entry)

    def _write_tool_result(self, result: ToolResult) -> None:
        texts = [p for p in result.content if isinstance(p, Text)]
        images = [p for p in result.content if isinstance(p, Image)]
        content: str | list[dict[str, Any]]
        if texts:
            content = _text_content(texts)
        elif images:
            content = "(the tool returned only images; they follow in the next user message)"
        else:
            content = ""
        self.out.append({"role": "tool", "tool_call_id": result.call_id, "content": content})
        if images:
            self._held_images.append({"type": "text", "text": f"Images returned by tool call {result.call_id}:"})
            self._held_images.extend(_image_part_json(image) for image in images)

    def _release_images(self) -> None:
        if self._held_images:
            self.out.append({"role": "user", "content": self._held_images})
            self._held_images = []

    def finish(self) -> list[dict[str, Any]]:
        self._release_images()
        return self.out


def _tools_json(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = normalize_schema(tool.parameters)
        if tool.strict is not None:
            function["strict"] = tool.strict
        out.append({"type": "function", "function": function})
    return out


def _tool_choice_json(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.name or ""}}
    return choice.mode.value


def _response_format_json(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type is not ResponseFormatType.JSON_SCHEMA:
        return {"type": fmt.type.value}
    # OpenAI requires a name; "response" is a neutral default for formats that have none (Gemini, Ollama).
    spec: dict[str, Any] = {"name": fmt.name or "response"}
    if fmt.schema is not None:
        spec["schema"] = normalize_schema(fmt.schema)
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def _reasoning_effort(request: Request, extension: Mapping[str, Any]) -> str | None:
    raw = extension.get("reasoning_effort")
    if isinstance(raw, str):
        return raw
    effort = effort_for(request.thinking)
    if effort is None or effort is Effort.NONE:
        return None
    return EFFORT_TO_OPENAI[effort]


def _sampling_json(
    body: dict[str, Any], sampling: Sampling, extension: Mapping[str, Any], max_tokens_field: str | None
) -> None:
    if sampling.n is not None and sampling.n > 1:
        raise CodecError(
            "muxtrio answers with one choice; n > 1 is not supported", kind=ErrorKind.UNSUPPORTED, param="n"
        )
    fields: tuple[tuple[str, object], ...] = (
        ("temperature", sampling.temperature),
        ("top_p", sampling.top_p),
        ("seed", sampling.seed),
        ("frequency_penalty", sampling.frequency_penalty),
        ("presence_penalty", sampling.presence_penalty),
        ("n", sampling.n),
    )
    for key, value in fields:
        if value is not None:
            body[key] = value
    if sampling.max_tokens is not None:
        field = max_tokens_field or extension.get("max_tokens_field")
        body[field if field == "max_completion_tokens" else "max_tokens"] = sampling.max_tokens
    if sampling.stop:
        body["stop"] = list(sampling.stop)


def _request_body(request: Request, target: Target) -> dict[str, Any]:
    extension: Mapping[str, Any] = request.extensions.get(FORMAT_KEY) or {}
    writer = _MessageWriter(signatures=_takes_signatures(target.model))
    if request.system:
        writer.out.append({"role": "system", "content": _text_content(list(request.system))})
    for message in request.messages:
        writer.write(message)
    body: dict[str, Any] = {"model": target.model, "messages": writer.finish()}
    if request.tools:
        body["tools"] = _tools_json(request.tools)
        if request.parallel_tool_calls is not None:  # OpenAI rejects it without tools
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice_json(request.tool_choice)
    _sampling_json(body, request.sampling, extension, target.max_tokens_field)
    effort = _reasoning_effort(request, extension)
    if effort is not None:
        body["reasoning_effort"] = effort
    if request.response_format is not None:
        body["response_format"] = _response_format_json(request.response_format)
    if request.user is not None:
        body["user"] = request.user
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    if request.service_tier is not None:
        body["service_tier"] = request.service_tier
    passthrough = extension.get("passthrough")
    if isinstance(passthrough, dict):
        body.update(passthrough)
    if target.stream:
        # Always ask for the usage chunk, whatever the client asked: the engine needs the counts.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# ---------------------------------------------------------------------------------------------------- upstream answers
def _usage_from_json(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    values: dict[str, int] = {}
    for path, field in USAGE_FROM_OPENAI.items():
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int) and not isinstance(node, bool):
            values[field] = max(values.get(field, 0), node)
    return Usage(**values)


def _finish_reason(raw: Any, saw_tool_call: bool) -> FinishReason:
    reason = FINISH_FROM_OPENAI.get(raw, FinishReason.STOP) if isinstance(raw, str) else FinishReason.STOP
    # Gemini's OpenAI-compatible endpoint and some vLLM versions say "stop" after tool calls; clients decide whether
    # to run tools from the finish reason (Anthropic stop_reason "tool_use"), so say what happened.
    if reason is FinishReason.STOP and saw_tool_call:
        return FinishReason.TOOL_CALLS
    return reason


def upstream_error_from_object(error: Any, provider_status: int) -> UpstreamError:
    """An OpenAI error object (``{"message", "type", "param", "code"}``, or a bare string) -> UpstreamError."""
    if isinstance(error, dict):
        message = error.get("message")
        message = message if isinstance(message, str) and message else "upstream error"
        err_type = error.get("type") if isinstance(error.get("type"), str) else None
        code = error.get("code")
        param = error.get("param") if isinstance(error.get("param"), str) else None
    else:
        message, err_type, code, param = (str(error) or "upstream error"), None, None, None
    if provider_status == 0 and isinstance(code, int) and 400 <= code <= 599:
        provider_status = code  # OpenRouter puts the HTTP status of a mid-stream error in "code"
    code_name = code if isinstance(code, str) else None
    kind = _error_kind(provider_status, message, err_type, code_name)
    status = client_status(provider_status or DEFAULT_STATUS[kind], kind)
    result = UpstreamError(
        kind, message, provider_status=provider_status, provider_type=err_type or code_name, status=status
    )
    result.param = param
    return result


_SIZED: Final = (ErrorKind.INVALID_REQUEST, ErrorKind.REQUEST_TOO_LARGE)


def _error_kind(status: int, message: str, err_type: str | None, code: str | None) -> ErrorKind:
    if status == 429:
        return ErrorKind.RATE_LIMIT  # including code insufficient_quota
    by_code = KIND_FOR_ERROR_CODE.get(code) if code else None
    if by_code is not None:
        return by_code
    if code == "invalid_prompt" and "usage policy" in message.lower():
        return ErrorKind.CONTENT_FILTER  # OpenAI's wording when a prompt is flagged (observed)
    if status:
        kind = kind_for_status(status)
    else:
        kind = KIND_FOR_ERROR_TYPE.get(err_type or "", ErrorKind.UPSTREAM)
    # A mid-stream error (no HTTP status) about the prompt's size is a context-length error too.
    sized = _SIZED if status else (*_SIZED, ErrorKind.UPSTREAM)
    if kind in sized and is_context_length_message(message):
        return ErrorKind.CONTEXT_LENGTH
    if kind is ErrorKind.UPSTREAM and err_type == "overloaded_error":
        return ErrorKind.OVERLOADED
    return kind


def _load_chunk(data: bytes) -> dict[str, Any]:
    try:
        value = jsonutil.loads(data)
    except jsonutil.JSONDecodeError as exc:
        raise CodecError(f"malformed OpenAI chunk: {exc}") from None
    if not isinstance(value, dict):
        raise CodecError("malformed OpenAI chunk: not a JSON object")
    return value


def _the_choice(choices: Any) -> dict[str, Any] | None:
    """The one choice of an answer. A second choice (n > 1) cannot be carried by the IR: refuse, do not drop it."""
    if not choices:
        return None
    if not isinstance(choices, list):
        raise CodecError("malformed OpenAI answer: `choices` is not an array")
    choice = choices[0]
    if len(choices) > 1 or not isinstance(choice, dict) or choice.get("index", 0) != 0:
        raise CodecError(
            "the upstream returned several choices (n > 1); muxtrio carries one", kind=ErrorKind.UNSUPPORTED
        )
    return choice


def _text_of_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers (Mistral) answer with text parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return ""
    return jsonutil.dumps(arguments).decode()  # an object instead of JSON text (seen from some local servers)


def _response_parts(message: Mapping[str, Any], seed: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(reasoning))
    text = _text_of_content(message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        text += refusal
    if text:
        parts.append(Text(text))
    calls = message.get("tool_calls")
    for n, raw in enumerate(calls if isinstance(calls, list) else []):
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise CodecError("malformed OpenAI answer: a tool call has no `function`")
        call_id = raw.get("id")
        parts.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else tool_call_id(seed, n),
                name=str(function.get("name") or ""),
                arguments=_arguments_text(function.get("arguments")),
                signature=_signature_of(raw),
            )
        )
    return tuple(parts)


def _parse_answer(body: bytes, seed: str) -> Response:
    try:
        value = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise CodecError(f"malformed OpenAI answer: {exc}") from None
    if not isinstance(value, dict):
        raise CodecError("malformed OpenAI answer: not a JSON object")
    if value.get("error"):  # some routers answer 200 with an error body
        raise upstream_error_from_object(value["error"], 0)
    choice = _the_choice(value.get("choices"))
    if choice is None:
        raise CodecError("malformed OpenAI answer: no choices")
    message = choice.get("message")
    parts = _response_parts(message if isinstance(message, dict) else {}, seed)
    answer_id = value.get("id")
    created = value.get("created")
    return Response(
        id=answer_id if isinstance(answer_id, str) and answer_id else f"chatcmpl-{seed}",
        model=str(value.get("model") or ""),
        parts=parts,
        finish_reason=_finish_reason(choice.get("finish_reason"), any(isinstance(p, ToolCall) for p in parts)),
        usage=_usage_from_json(value.get("usage")),
        created=created if isinstance(created, int) else 0,
    )


# ---------------------------------------------------------------------------------------------------- upstream streams
_TEXT: Final = 0
_REASONING: Final = 1
_TOOL: Final = 2


class _Block:
    """One IR part being streamed. ``held`` buffers its events while an earlier block is still live (None: live)."""

    __slots__ = ("args", "held", "index", "kind")

    def __init__(self, kind: int, index: int, live: bool) -> None:
        self.kind = kind
        self.index = index
        self.held: list[Event] | None = None if live else []
        self.args: list[str] = []


class _ChatDecoder(StreamDecoder):
    """``chat.completion.chunk`` SSE -> IR events. See the module docstring for block ordering and termination."""

    def __init__(self, seed: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self._seed = seed
        self._started = False
        self._blocks: list[_Block] = []
        self._live = 0  # position in _blocks of the block that streams live; earlier ones are closed
        self._tools: dict[object, _Block] = {}  # the provider's tool-call index -> its block
        self._last_tool_key: object = None
        self._finish_raw: Any = None
        self._saw_finish = False
        self._done = False
        self._usage: Usage | None = None
        self._pending_error: UpstreamError | None = None

    # ------------------------------------------------------------------ feeding
    def feed(self, data: bytes) -> list[Event]:
        self._raise_pending_error()
        out: list[Event] = []
        for sse in self._sse.feed(data):
            if self._on_event(sse.event, sse.data, out):
                break
        return out

    def flush(self) -> list[Event]:
        self._raise_pending_error()
        out: list[Event] = []
        for sse in self._sse.flush():
            if self._on_event(sse.event, sse.data, out):
                break
        self._raise_pending_error()
        if self._done:
            return out
        if not self._saw_finish:
            raise StreamTruncated("OpenAI stream ended without a finish_reason or [DONE]")
        self._finish(out)
        return out

    def _raise_pending_error(self) -> None:
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error

    def _on_event(self, event_name: str | None, data: bytes, out: list[Event]) -> bool:
        """Handle one SSE event; True when an error is pending and decoding must stop."""
        if self._done or not data:
            return False
        if data == b"[DONE]":
            self._finish(out)
            return False
        chunk = _load_chunk(data)
        error = chunk.get("error")
        if error or event_name == "error":
            upstream = upstream_error_from_object(error if error else chunk, 0)
            if not out:
                raise upstream
            self._pending_error = upstream  # return what was decoded first; raise on the next call
            return True
        self._on_chunk(chunk, out)
        return False

    def _on_chunk(self, chunk: dict[str, Any], out: list[Event]) -> None:
        if not self._started:
            self._started = True
            chunk_id = chunk.get("id")
            model = chunk.get("model")
            out.append(
                Start(
                    chunk_id if isinstance(chunk_id, str) and chunk_id else f"chatcmpl-{self._seed}",
                    model if isinstance(model, str) else "",
                )
            )
        choice = _the_choice(chunk.get("choices"))
        if choice is not None:
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._on_delta(delta, out)
            self._advance(out)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:  # some servers send "" on every chunk
                self._finish_raw = finish
                self._saw_finish = True
                self._close_all(out)  # the content is over; Finish itself waits for [DONE] (usage comes first)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            parsed = _usage_from_json(usage)
            if parsed != self._usage:  # some servers repeat usage on every chunk
                self._usage = parsed
                out.append(UsageUpdate(parsed))

    def _on_delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # vLLM may send both, same text
        if isinstance(reasoning, str) and reasoning:
            self._content(_REASONING, reasoning, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._content(_TEXT, content, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._content(_TEXT, refusal, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_call(call, out)

    # ------------------------------------------------------------------ blocks
    def _new_block(self, kind: int) -> _Block:
        block = _Block(kind, len(self._blocks), live=self._live == len(self._blocks))
        self._blocks.append(block)
        return block

    @staticmethod
    def _emit(block: _Block, event: Event, out: list[Event]) -> None:
        if block.held is None:
            out.append(event)
        else:
            block.held.append(event)

    def _content(self, kind: int, text: str, out: list[Event]) -> None:
        last = self._blocks[-1] if self._blocks else None
        if last is None or last.kind != kind or self._is_closed(last):
            last = self._new_block(kind)
        event: Event = TextDelta(last.index, text) if kind == _TEXT else ReasoningDelta(last.index, text)
        self._emit(last, event, out)

    def _tool_call(self, call: dict[str, Any], out: list[Event]) -> None:
        key: object = call.get("index")
        call_id = call.get("id")
        if not isinstance(key, int):
            # Some compatible servers omit the index: a new id starts a call, anything else continues the last one.
            key = ("id", call_id) if isinstance(call_id, str) and call_id else self._last_tool_key
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        block = self._tools.get(key)
        if block is None:
            block = self._new_block(_TOOL)
            self._tools[key] = block
            name = function.get("name")
            real_id = (
                call_id if isinstance(call_id, str) and call_id else tool_call_id(self._seed, len(self._tools) - 1)
            )
            start = ToolCallStart(block.index, real_id, name if isinstance(name, str) else "", _signature_of(call))
            self._emit(block, start, out)
        self._last_tool_key = key
        arguments = _arguments_text(function.get("arguments"))
        if not arguments:
            return
        if self._is_closed(block):
            if arguments.strip():
                raise CodecError(f"tool call {block.index}: arguments arrived after the call was complete")
            return
        block.args.append(arguments)
        self._emit(block, ToolCallDelta(block.index, arguments), out)

    def _is_closed(self, block: _Block) -> bool:
        return block.index < self._live

    def _advance(self, out: list[Event]) -> None:
        """Close the live block while a later one exists and the live one is complete; release the next one."""
        blocks = self._blocks
        while self._live < len(blocks) - 1:
            live = blocks[self._live]
            if live.kind == _TOOL:
                if not _is_complete_json(live.args):
                    return
                out.append(ToolCallEnd(live.index))
            self._live += 1
            self._release(blocks[self._live], out)

    @staticmethod
    def _release(block: _Block, out: list[Event]) -> None:
        if block.held is not None:
            out.extend(block.held)
            block.held = None

    def _close_all(self, out: list[Event]) -> None:
        """Release every held block in order and close them all."""
        for block in self._blocks[self._live :]:
            self._release(block, out)
            if block.kind == _TOOL:
                out.append(ToolCallEnd(block.index))
        self._live = len(self._blocks)

    def _finish(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(Start(f"chatcmpl-{self._seed}", ""))
        self._close_all(out)
        out.append(Finish(_finish_reason(self._finish_raw, bool(self._tools))))
        self._done = True


def _is_complete_json(chunks: list[str]) -> bool:
    """Whether a tool call's argument text so far is a whole JSON value (so no more fragments can belong to it)."""
    if not chunks or not chunks[-1].rstrip().endswith(("}", "]")):
        return False
    try:
        jsonutil.loads("".join(chunks))
    except jsonutil.JSONDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- the codec
class OpenAIChatCodec(Codec):
    format = Format.OPENAI_CHAT

    # ------------------------------------------------------------------ client side
    def parse_request(self, body: bytes, hints: RequestHints) -> Request:
        obj = jsonutil.loads_object(body)
        if hints.endpoint == LEGACY_ENDPOINT:
            return _parse_legacy_request(obj, hints)
        return _parse_chat_request(obj, hints)

    def emit_response(self, response: Response, info: StreamInfo) -> bytes:
        if _is_legacy(info.request):
            return jsonutil.dumps(_text_completion_json(response, info))
        return jsonutil.dumps(_chat_completion_json(response, info))

    def new_encoder(self, info: StreamInfo) -> StreamEncoder:
        if _is_legacy(info.request):
            return _LegacyEncoder(info)
        return _ChatEncoder(info)

    def emit_error(self, error: MuxError) -> tuple[int, bytes]:
        return error.status, jsonutil.dumps(_error_json(error))

    # ------------------------------------------------------------------ provider side
    def emit_request(self, request: Request, target: Target) -> WireRequest:
        headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
        if target.api_key is not None:
            headers = (("authorization", f"Bearer {target.api_key}"), *headers)
        headers = (*headers, *client_protocol_headers(request, Format.OPENAI_CHAT))
        body = jsonutil.dumps(_request_body(request, target))
        return WireRequest("POST", CHAT_PATH, headers, body)

    def parse_response(self, body: bytes, seed: str) -> Response:
        return _parse_answer(body, seed)

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return _ChatDecoder(seed, max_event_bytes)

    def check_target(self, request: Request, target: Format) -> None:
        # Of the passthrough fields only logit_bias changes what the model may say (clients ban tokens with it);
        # the others are hints that another format may go without.
        if target is Format.OPENAI_CHAT:
            return
        extension = request.extensions.get(FORMAT_KEY) or {}
        passthrough = extension.get("passthrough")
        if isinstance(passthrough, dict) and passthrough.get("logit_bias"):
            raise CodecError(
                f"`logit_bias` cannot be sent to a {target.value} provider",
                kind=ErrorKind.UNSUPPORTED,
                param="logit_bias",
            )

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return parse_openai_error(status, body)


def parse_openai_error(status: int, body: bytes) -> UpstreamError:
    """An OpenAI-shaped error response (Chat, Responses and compatible servers) -> UpstreamError."""
    try:
        value: Any = jsonutil.loads(body) if body else None
    except jsonutil.JSONDecodeError:
        value = None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]  # some servers wrap the error object in an array
    if isinstance(value, dict) and value.get("error") is not None:
        return upstream_error_from_object(value["error"], status)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return upstream_error_from_object(value, status)  # a bare error object (some vLLM versions)
    text = body.decode("utf-8", "replace").strip()[:1000] or f"upstream answered HTTP {status}"
    return upstream_error_from_object(text, status)


CODEC: Final = OpenAIChatCodec()

__all__ = [
    "CODEC",
    "FORMAT_KEY",
    "LEGACY_ENDPOINT",
    "OpenAIChatCodec",
    "parse_openai_error",
    "upstream_error_from_object",
]

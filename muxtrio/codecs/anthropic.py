"""The Anthropic Messages codec (``/v1/messages``, ``/v1/messages/count_tokens``), both directions.

Client side: an Anthropic client (Claude Code, the ``anthropic`` SDK) talks to muxtrio. Provider side: muxtrio talks to
``https://api.anthropic.com`` (or an Anthropic-compatible server).

Invariants:
- Pure: no IO, clocks or randomness; ids and times come from ``StreamInfo`` / the engine. JSON through
  :mod:`muxtrio.wire.jsonutil` only. Must not import trio, httpx, sockets, time, random or uuid.
- Stream output follows Anthropic's strict block order: ``message_start``, then per block ``content_block_start`` /
  ``content_block_delta``* / ``content_block_stop`` with indices 0..n, then ``message_delta`` and ``message_stop``
  (written by ``finish()`` only). Every SSE event carries an ``event:`` line: the SDK skips events without one
  (``anthropic/_streaming.py``).
- The decoder's IR block indices are Anthropic's indices, except that blocks the IR cannot hold (server-tool blocks,
  and text/thinking blocks that never carry content) take no index, so IR indices stay 0, 1, 2... without holes.
- A provider stream is complete only after ``message_stop``; EOF before it raises :class:`StreamTruncated`. An
  ``error`` event raises :class:`UpstreamError` (malformed bytes :class:`CodecError`); events decoded before it in the
  same chunk are returned first and the error is raised by the next ``feed``/``flush``, so any split gives the same
  events and then the error.
- Reasoning signatures and redacted-thinking data travel byte-exact. A thinking block without a signature cannot be
  sent to Anthropic (it rejects unsigned thinking), so :meth:`AnthropicCodec.emit_request` drops it; an empty
  signature from a client means "none".

Mapping tables (the dicts below are the source of truth):
- ``STOP_REASON_TO_IR`` / ``IR_TO_STOP_REASON``: ``pause_turn`` (server tools paused a long turn) becomes ``stop``
  because the IR has no "paused" reason; ``model_context_window_exceeded`` becomes ``length``; an unknown stop reason
  becomes ``stop``. Back: the IR's ``error`` becomes ``end_turn`` (Anthropic has no such reason; an engine that knows a
  stream broke ends it with ``StreamEncoder.error`` instead).
- ``ROLE_TO_IR``: a user message holding only ``tool_result`` blocks becomes one ``Role.TOOL`` message; mixed content
  keeps its order, split into TOOL and USER messages. Back, consecutive turns of the same role are merged and
  ``tool_result`` blocks go first in their user turn (Anthropic requires it).
- Usage (``ir/response.py`` semantics): IR ``input_tokens`` = Anthropic ``input_tokens`` +
  ``cache_creation_input_tokens`` + ``cache_read_input_tokens``; ``cache_write_tokens`` =
  ``cache_creation_input_tokens``; ``cache_read_tokens`` = ``cache_read_input_tokens``; ``output_tokens`` =
  ``output_tokens`` (it includes thinking); ``reasoning_tokens`` = ``output_tokens_details.thinking_tokens``.
  Back: Anthropic ``input_tokens`` = IR input minus both cache counters.
- Thinking (``THINKING_TYPES``): ``{type: enabled, budget_tokens}`` -> enabled with that budget; ``disabled`` -> off;
  ``adaptive`` / ``between_tools`` -> enabled, no budget; ``output_config.effort`` -> ``Thinking.effort``
  (``EFFORT_FROM_WIRE``, ``max`` -> ``xhigh``); ``display`` -> ``include_thoughts``. Toward Anthropic the budget comes
  from :func:`muxtrio.ir.thinking.budget_for` (``dynamic`` -> the default budget), unless the client was itself an
  Anthropic client whose ``thinking`` / ``output_config`` still describe the IR: those are sent back verbatim.
  A model that takes adaptive thinking only (``Target.adaptive_thinking``, from ``codecs/model_rules.py``) gets
  ``{type: adaptive}`` instead of a budget, with the effort in ``output_config.effort`` (``EFFORT_TO_WIRE``).
- Errors: ``ERROR_TYPE_TO_KIND`` (provider bodies) and ``KIND_TO_ERROR_TYPE`` (what clients see).

Provider-side choices (see :meth:`AnthropicCodec.emit_request`):
- ``max_tokens`` is required by Anthropic: the client's, else ``DEFAULT_MAX_TOKENS``; always raised above the thinking
  budget (to budget + ``THINKING_HEADROOM``) because Anthropic requires ``max_tokens > budget_tokens``.
- With thinking on, ``temperature`` and ``top_k`` are dropped and ``top_p`` is raised to at least 0.95 (Anthropic
  rejects other values with thinking: platform.claude.com/docs/en/build-with-claude/extended-thinking). Thinking is
  dropped when ``tool_choice`` forces a tool (Anthropic rejects the pair; the forced call is the client's contract,
  thinking only a quality knob) and inside a tool loop whose last assistant turn has no signed thinking block (calls
  made by another provider; Anthropic rejects that history with thinking on). ``output_config.effort`` alone from an
  Anthropic client stays alone (no thinking object is added). ``temperature`` is clamped to Anthropic's 0..1 range.
- ``response_format`` json_schema -> ``output_config.format`` (Anthropic structured outputs); ``json_object`` without
  a schema has no Anthropic form -> UNSUPPORTED. ``n > 1`` and ``previous_response_id`` -> UNSUPPORTED. ``seed`` and
  the penalties have no Anthropic knob and are dropped (sampling hints, not contracts). ``service_tier`` passes only
  Anthropic's values (``auto``, ``standard_only``; OpenAI's ``default`` -> ``standard_only``).
- Empty text blocks are dropped (Anthropic rejects them), and so is a message left with no blocks.

Anthropic-only extras ride in ``request.extensions["anthropic"]`` (only this codec reads them):
``endpoint`` (``"count_tokens"``), ``server_tools`` ([{index, tool}]: typed tools such as ``web_search_20250305``),
``opaque_blocks`` ([{message, part, block}]: content blocks the IR cannot hold, e.g. ``server_tool_use`` or an image
by file id, re-inserted before IR part ``part`` of IR message ``message``), ``cache_control`` ([{system|tool|message,
part, value}]), ``top_cache_control``, ``thinking`` and ``output_config`` (raw), ``extra_body`` (unknown top-level
keys, forwarded to Anthropic only), ``client_headers`` (the client's ``anthropic-beta`` / ``anthropic-version``,
sent to an Anthropic provider: beta body fields such as ``context_management`` are refused without their beta
header). Toward another format :func:`adapt_anthropic_request` applies the ``hosted-tools`` policy (``web_search_*``
becomes the neutral web-search tool; other server tools and opaque blocks are dropped with a warning, or refused
under ``reject``) and reports ``extra_body`` keys as ignored; :func:`require_anthropic_target` then refuses what is
left that only Anthropic can run. A neutral web search from another client format is sent as the
``web_search_20250305`` server tool.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, assert_never, cast

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
    client_status,
    is_context_length_message,
    kind_for_status,
    record_client_headers,
)
from muxtrio.codecs.hosted import translate_hosted
from muxtrio.codecs.ids import anthropic_tool_id
from muxtrio.codecs.media import parse_data_url
from muxtrio.codecs.schema import normalize_schema
from muxtrio.errors import ClientError, CodecError, ErrorKind, MuxError, StreamTruncated, UpstreamError
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
from muxtrio.ir.thinking import DEFAULT_THINKING_BUDGET, DYNAMIC_BUDGET, budget_for, effort_for
from muxtrio.wire import jsonutil
from muxtrio.wire.framing import Frame
from muxtrio.wire.jsonutil import (
    as_array,
    as_object,
    as_str,
    get_bool,
    get_int,
    get_number,
    get_str,
    invalid,
    require_str,
)
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEFramer

Wire = dict[str, Any]
"""A JSON object as orjson reads or writes it."""

# ----------------------------------------------------------------------------------------------------- constants
FORMAT_KEY: Final = Format.ANTHROPIC.value
MESSAGES_PATH: Final = "/v1/messages"
COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"
COUNT_TOKENS_ENDPOINT: Final = "count_tokens"
ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 8192
THINKING_HEADROOM: Final = 4096
MIN_TOP_P_WITH_THINKING: Final = 0.95
MAX_TEMPERATURE: Final = 1.0

# ----------------------------------------------------------------------------------------------------- mapping tables
STOP_REASON_TO_IR: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.STOP,
    "model_context_window_exceeded": FinishReason.LENGTH,
}

IR_TO_STOP_REASON: dict[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.STOP_SEQUENCE: "stop_sequence",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.ERROR: "end_turn",
}

ROLE_TO_IR: dict[str, Role] = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,  # the SDK's SystemMessageParam (anthropic/types/system_message_param.py)
}

IR_TO_ROLE: dict[Role, str] = {
    Role.USER: "user",
    Role.TOOL: "user",
    Role.ASSISTANT: "assistant",
    Role.SYSTEM: "system",
}

# IR Usage field <- Anthropic usage field(s); see the module docstring for the arithmetic on input tokens.
USAGE_FIELDS: dict[str, str] = {
    "input_tokens": "input_tokens + cache_creation_input_tokens + cache_read_input_tokens",
    "output_tokens": "output_tokens",
    "reasoning_tokens": "output_tokens_details.thinking_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_write_tokens": "cache_creation_input_tokens",
}

# thinking.type -> Thinking.enabled
THINKING_TYPES: dict[str, bool] = {
    "enabled": True,
    "adaptive": True,
    "between_tools": True,
    "disabled": False,
}

EFFORT_FROM_WIRE: dict[str, Effort] = {
    "low": Effort.LOW,
    "medium": Effort.MEDIUM,
    "high": Effort.HIGH,
    "xhigh": Effort.XHIGH,
    "max": Effort.XHIGH,
}

DISPLAY_TO_INCLUDE_THOUGHTS: dict[str, bool] = {"summarized": True, "omitted": False}

# IR effort -> output_config.effort, for models that take adaptive thinking only (Target.adaptive_thinking)
EFFORT_TO_WIRE: dict[Effort, str] = {
    Effort.MINIMAL: "low",
    Effort.LOW: "low",
    Effort.MEDIUM: "medium",
    Effort.HIGH: "high",
    Effort.XHIGH: "xhigh",
}

TOOL_CHOICE_FROM_WIRE: dict[str, ToolChoiceMode] = {
    "auto": ToolChoiceMode.AUTO,
    "any": ToolChoiceMode.REQUIRED,
    "tool": ToolChoiceMode.TOOL,
    "none": ToolChoiceMode.NONE,
}

TOOL_CHOICE_TO_WIRE: dict[ToolChoiceMode, str] = {mode: wire for wire, mode in TOOL_CHOICE_FROM_WIRE.items()}

# Service tiers Anthropic accepts (message_create_params.py); OpenAI's "default" is Anthropic's standard tier.
SERVICE_TIER_TO_WIRE: dict[str, str] = {"auto": "auto", "standard_only": "standard_only", "default": "standard_only"}

# Provider error ``type`` -> kind (docs.claude.com/en/api/errors; timeout_error and billing_error from the SDK's
# error objects in anthropic/types/beta_*_error_object.py).
ERROR_TYPE_TO_KIND: dict[str, ErrorKind] = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "billing_error": ErrorKind.PERMISSION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "timeout_error": ErrorKind.TIMEOUT,
    "api_error": ErrorKind.UPSTREAM,
    "overloaded_error": ErrorKind.OVERLOADED,
}

# The HTTP status Anthropic pairs with each error type; used for errors that arrive inside a 200 stream.
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

KIND_TO_ERROR_TYPE: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    # "We may also use this error type for other 4XX status codes" (docs.claude.com/en/api/errors).
    ErrorKind.METHOD_NOT_ALLOWED: "invalid_request_error",
    ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.CONTEXT_LENGTH: "invalid_request_error",
    ErrorKind.CONTENT_FILTER: "invalid_request_error",
    ErrorKind.UNSUPPORTED: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.UNAVAILABLE: "api_error",
    ErrorKind.INTERNAL: "api_error",
}

# Anthropic's 400 message when its output classifier blocks a request (observed API behaviour).
_CONTENT_FILTER_PHRASE = "content filtering policy"

# Top-level request keys this codec maps; anything else is kept in extensions["anthropic"]["extra_body"].
_KNOWN_REQUEST_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "service_tier",
        "output_config",
        "cache_control",
    }
)

# Keys a /v1/messages/count_tokens body may carry (anthropic/types/message_count_tokens_params.py).
_COUNT_TOKENS_KEYS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control"}
)

# ============================================================================ client -> IR request
@dataclass(slots=True)
class _RequestExtras:
    """Anthropic-only details collected while parsing, stored in ``extensions["anthropic"]``."""

    server_tools: list[JSON]
    opaque_blocks: list[JSON]
    cache_control: list[JSON]

    def record_cache_control(self, block: Wire, **where: int) -> None:
        value = block.get("cache_control")
        if isinstance(value, dict):
            self.cache_control.append({**where, "value": jsonutil.as_json(value)})


def _parse_system(value: object, extras: _RequestExtras) -> tuple[Text, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Text(value),) if value else ()
    parts: list[Text] = []
    for i, item in enumerate(as_array(value, "system")):
        path = f"system[{i}]"
        block = as_object(item, path)
        if block.get("type") != "text":
            raise invalid(f"`{path}.type`: system blocks must be text blocks", f"{path}.type")
        extras.record_cache_control(block, system=len(parts))
        parts.append(Text(require_str(block, "text", f"{path}.text")))
    return tuple(parts)


def _parse_image(block: Wire, path: str) -> Image | None:
    """An image block, or None when its source has no IR form (a Files API id)."""
    source = as_object(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        return Image(
            data=require_str(source, "data", f"{path}.source.data"),
            mime_type=require_str(source, "media_type", f"{path}.source.media_type"),
        )
    if kind == "url":
        return Image(url=require_str(source, "url", f"{path}.source.url"))
    if kind == "file":
        return None
    raise invalid(f"`{path}.source.type`: unknown image source {kind!r}", f"{path}.source.type")


def _parse_document(block: Wire, path: str) -> File | None:
    """A document block, or None when its source has no IR form (custom ``content`` documents)."""
    source = as_object(block.get("source"), f"{path}.source")
    title = get_str(block, "title", f"{path}.title")
    kind = source.get("type")
    if kind == "base64":
        return File(
            data=require_str(source, "data", f"{path}.source.data"),
            mime_type=require_str(source, "media_type", f"{path}.source.media_type"),
            filename=title,
        )
    if kind == "text":
        # IR File data is base64; a plain-text document is encoded so that it can travel as a file anywhere.
        text = require_str(source, "data", f"{path}.source.data")
        encoded = base64.b64encode(text.encode()).decode("ascii")
        return File(data=encoded, mime_type="text/plain", filename=title)
    if kind == "url":
        return File(url=require_str(source, "url", f"{path}.source.url"), mime_type="application/pdf", filename=title)
    if kind == "file":
        return File(file_id=require_str(source, "file_id", f"{path}.source.file_id"), filename=title)
    if kind == "content":
        return None
    raise invalid(f"`{path}.source.type`: unknown document source {kind!r}", f"{path}.source.type")


def _parse_tool_result(block: Wire, path: str) -> ToolResult | None:
    """A tool_result block, or None when its content holds blocks the IR cannot (documents, search results)."""
    call_id = require_str(block, "tool_use_id", f"{path}.tool_use_id")
    is_error = get_bool(block, "is_error", f"{path}.is_error") or False
    content = block.get("content")
    parts: list[Text | Image] = []
    if isinstance(content, str):
        parts.append(Text(content))
    elif content is not None:
        for i, item in enumerate(as_array(content, f"{path}.content")):
            inner_path = f"{path}.content[{i}]"
            inner = as_object(item, inner_path)
            kind = inner.get("type")
            if kind == "text":
                parts.append(Text(require_str(inner, "text", f"{inner_path}.text")))
            elif kind == "image":
                image = _parse_image(inner, inner_path)
                if image is None:
                    return None
                parts.append(image)
            else:
                return None
    return ToolResult(call_id=call_id, content=tuple(parts), is_error=is_error)


def _parse_tool_use(block: Wire, path: str) -> ToolCall:
    tool_input = as_object(block.get("input"), f"{path}.input")
    return ToolCall(
        id=require_str(block, "id", f"{path}.id"),
        name=require_str(block, "name", f"{path}.name"),
        arguments=jsonutil.dumps(tool_input).decode(),
    )


def _parse_block(block: Wire, path: str, role: str) -> Part | None:
    """One content block as an IR part; None for a block that only Anthropic understands (kept opaque)."""
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid(f"`{path}.type` is required", f"{path}.type")
    if kind == "text":
        return Text(require_str(block, "text", f"{path}.text"))
    if kind == "image":
        return _parse_image(block, path)
    if kind == "document":
        return _parse_document(block, path)
    if kind == "thinking":
        signature = get_str(block, "signature", f"{path}.signature")
        return Reasoning(require_str(block, "thinking", f"{path}.thinking"), signature=signature or None)
    if kind == "redacted_thinking":
        return RedactedReasoning(require_str(block, "data", f"{path}.data"))
    if kind == "tool_use":
        if role != "assistant":
            raise invalid(f"`{path}`: tool_use blocks belong in assistant messages", path)
        return _parse_tool_use(block, path)
    if kind == "tool_result":
        if role != "user":
            raise invalid(f"`{path}`: tool_result blocks belong in user messages", path)
        return _parse_tool_result(block, path)
    return None


@dataclass(slots=True)
class _Segment:
    """IR parts of one IR message under construction, with the opaque blocks found between them."""

    role: Role
    parts: list[Part]
    opaque: list[tuple[int, Wire]]
    cache: list[tuple[int, Wire]]


def _segments_of(message: Wire, path: str) -> list[_Segment]:
    role_name = message.get("role")
    if not isinstance(role_name, str) or role_name not in ROLE_TO_IR:
        raise invalid(f"`{path}.role`: expected 'user', 'assistant' or 'system'", f"{path}.role")
    role = ROLE_TO_IR[role_name]
    content = message.get("content")
    if isinstance(content, str):
        return [_Segment(role, [Text(content)], [], [])]
    blocks = as_array(content, f"{path}.content")
    segments: list[_Segment] = []
    for j, item in enumerate(blocks):
        block_path = f"{path}.content[{j}]"
        block = as_object(item, block_path)
        if role is Role.SYSTEM and block.get("type") != "text":
            raise invalid(f"`{block_path}`: system messages hold text blocks only", block_path)
        part = _parse_block(block, block_path, role_name)
        # A user turn that answers tool calls becomes a TOOL message; other user content stays USER, in order.
        part_role = Role.TOOL if isinstance(part, ToolResult) else role
        if part is None and block.get("type") == "tool_result":
            part_role = Role.TOOL
        if not segments or segments[-1].role is not part_role:
            segments.append(_Segment(part_role, [], [], []))
        segment = segments[-1]
        if part is None:
            segment.opaque.append((len(segment.parts), block))
            continue
        if isinstance(block.get("cache_control"), dict):
            segment.cache.append((len(segment.parts), block["cache_control"]))
        segment.parts.append(part)
    if not segments:
        segments.append(_Segment(role, [], [], []))
    return segments


def _parse_messages(value: object, extras: _RequestExtras) -> tuple[Message, ...]:
    messages: list[Message] = []
    for i, item in enumerate(as_array(value, "messages")):
        for segment in _segments_of(as_object(item, f"messages[{i}]"), f"messages[{i}]"):
            index = len(messages)
            for position, block in segment.opaque:
                extras.opaque_blocks.append({"message": index, "part": position, "block": jsonutil.as_json(block)})
            for position, cache in segment.cache:
                extras.cache_control.append({"message": index, "part": position, "value": jsonutil.as_json(cache)})
            messages.append(Message(segment.role, tuple(segment.parts)))
    return tuple(messages)


def _parse_tools(value: object, extras: _RequestExtras) -> tuple[Tool, ...]:
    if value is None:
        return ()
    tools: list[Tool] = []
    for i, item in enumerate(as_array(value, "tools")):
        path = f"tools[{i}]"
        tool = as_object(item, path)
        extras.record_cache_control(tool, tool=i)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            # An Anthropic-defined tool (web_search_20250305, bash_20250124...): no schema, Anthropic only.
            extras.server_tools.append({"index": i, "tool": jsonutil.as_json(tool)})
            continue
        schema = tool.get("input_schema")
        tools.append(
            Tool(
                name=require_str(tool, "name", f"{path}.name"),
                description=get_str(tool, "description", f"{path}.description"),
                parameters=cast(JSONObject, as_object(schema, f"{path}.input_schema")),
                strict=get_bool(tool, "strict", f"{path}.strict"),
            )
        )
    return tuple(tools)


def _parse_tool_choice(value: object) -> tuple[ToolChoice | None, bool | None]:
    """``(tool_choice, parallel_tool_calls)``."""
    if value is None:
        return None, None
    choice = as_object(value, "tool_choice")
    kind = choice.get("type")
    mode = TOOL_CHOICE_FROM_WIRE.get(kind) if isinstance(kind, str) else None
    if mode is None:
        raise invalid(f"`tool_choice.type`: expected one of {sorted(TOOL_CHOICE_FROM_WIRE)}", "tool_choice.type")
    name = require_str(choice, "name", "tool_choice.name") if mode is ToolChoiceMode.TOOL else None
    disable_parallel = get_bool(choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use")
    parallel = None if disable_parallel is None else not disable_parallel
    return ToolChoice(mode, name), parallel


def _parse_thinking(value: object, output_config: Wire | None) -> Thinking:
    effort = _parse_effort(output_config)
    if value is None:
        return Thinking(effort=effort)
    thinking = as_object(value, "thinking")
    kind = require_str(thinking, "type", "thinking.type")
    if kind not in THINKING_TYPES:
        raise invalid(f"`thinking.type`: expected one of {sorted(THINKING_TYPES)}", "thinking.type")
    display = get_str(thinking, "display", "thinking.display")
    budget = get_int(thinking, "budget_tokens", "thinking.budget_tokens")
    if kind == "enabled" and budget is None:
        raise invalid("`thinking.budget_tokens` is required", "thinking.budget_tokens")
    return Thinking(
        enabled=THINKING_TYPES[kind],
        budget_tokens=budget if kind == "enabled" else None,
        effort=effort,
        include_thoughts=DISPLAY_TO_INCLUDE_THOUGHTS.get(display) if display is not None else None,
    )


def _parse_effort(output_config: Wire | None) -> Effort | None:
    if output_config is None:
        return None
    effort = get_str(output_config, "effort", "output_config.effort")
    if effort is None:
        return None
    if effort not in EFFORT_FROM_WIRE:
        raise invalid(f"`output_config.effort`: expected one of {sorted(EFFORT_FROM_WIRE)}", "output_config.effort")
    return EFFORT_FROM_WIRE[effort]


def _parse_response_format(output_config: Wire | None) -> ResponseFormat | None:
    if output_config is None or output_config.get("format") is None:
        return None
    fmt = as_object(output_config["format"], "output_config.format")
    if fmt.get("type") != "json_schema":
        raise invalid("`output_config.format.type`: expected 'json_schema'", "output_config.format.type")
    schema = as_object(fmt.get("schema"), "output_config.format.schema")
    return ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=cast(JSONObject, schema))


def _parse_sampling(body: Wire, count_only: bool) -> Sampling:
    max_tokens = get_int(body, "max_tokens", "max_tokens")
    if max_tokens is None and not count_only:
        raise invalid("`max_tokens` is required", "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise invalid("`max_tokens` must be at least 1", "max_tokens")
    stops = body.get("stop_sequences")
    stop: tuple[str, ...] = ()
    if stops is not None:
        stop = tuple(_stop_sequence(item, i) for i, item in enumerate(as_array(stops, "stop_sequences")))
    return Sampling(
        temperature=get_number(body, "temperature", "temperature"),
        top_p=get_number(body, "top_p", "top_p"),
        top_k=get_int(body, "top_k", "top_k"),
        max_tokens=max_tokens,
        stop=stop,
    )


def _stop_sequence(item: object, i: int) -> str:
    return as_str(item, f"stop_sequences[{i}]")


def _parse_user(body: Wire) -> str | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    return get_str(as_object(metadata, "metadata"), "user_id", "metadata.user_id")


def _extensions(body: Wire, extras: _RequestExtras, hints: RequestHints) -> dict[str, JSONObject]:
    ext: JSONObject = {}
    if hints.endpoint:
        ext["endpoint"] = hints.endpoint
    record_client_headers(ext, hints)
    if extras.server_tools:
        ext["server_tools"] = extras.server_tools
    if extras.opaque_blocks:
        ext["opaque_blocks"] = extras.opaque_blocks
    if extras.cache_control:
        ext["cache_control"] = extras.cache_control
    if isinstance(body.get("cache_control"), dict):
        ext["top_cache_control"] = body["cache_control"]
    if isinstance(body.get("thinking"), dict):
        ext["thinking"] = body["thinking"]
    if isinstance(body.get("output_config"), dict):
        ext["output_config"] = body["output_config"]
    extra_body = {key: value for key, value in body.items() if key not in _KNOWN_REQUEST_KEYS}
    if extra_body:
        ext["extra_body"] = extra_body
    return {FORMAT_KEY: ext} if ext else {}


def parse_request_body(body: bytes, hints: RequestHints) -> Request:
    obj = jsonutil.loads_object(body)
    count_only = hints.endpoint == COUNT_TOKENS_ENDPOINT
    model = require_str(obj, "model", "model")
    if "messages" not in obj:
        raise invalid("`messages` is required", "messages")
    extras = _RequestExtras([], [], [])
    output_config = as_object(obj["output_config"], "output_config") if obj.get("output_config") is not None else None
    tool_choice, parallel = _parse_tool_choice(obj.get("tool_choice"))
    stream = get_bool(obj, "stream", "stream") or False
    return Request(
        model=model,
        messages=_parse_messages(obj["messages"], extras),
        system=_parse_system(obj.get("system"), extras),
        tools=_parse_tools(obj.get("tools"), extras),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        sampling=_parse_sampling(obj, count_only),
        thinking=_parse_thinking(obj.get("thinking"), output_config),
        response_format=_parse_response_format(output_config),
        stream=hints.stream if hints.stream is not None else stream,
        user=_parse_user(obj),
        service_tier=get_str(obj, "service_tier", "service_tier"),
        extensions=_extensions(obj, extras, hints),
    )


# ========================================================================== IR -> provider request
def _unsupported(message: str, param: str) -> CodecError:
    return CodecError(message, kind=ErrorKind.UNSUPPORTED, param=param)


def _anthropic_extensions(request: Request) -> Mapping[str, JSON]:
    return request.extensions.get(FORMAT_KEY, {})


def _ext_list(ext: Mapping[str, JSON], key: str) -> list[Wire]:
    value = ext.get(key)
    return [cast(Wire, item) for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _emit_image(image: Image, path: str) -> Wire:
    if image.data is not None:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": image.mime_type or "image/png", "data": image.data},
        }
    if image.url is None:
        raise _unsupported("an image needs a URL or inline data", path)
    inline = parse_data_url(image.url)
    if inline is not None:
        mime, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": image.url}}


def _decoded_text(data: str, path: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _unsupported("a text/plain file must be base64 of UTF-8 text", path) from None


def _emit_file(file: File, path: str) -> Wire:
    if file.file_id is not None:
        # Files API ids are per provider: an id from another provider is rejected by Anthropic, not translated.
        source: Wire = {"type": "file", "file_id": file.file_id}
    elif file.url is not None:
        inline = parse_data_url(file.url)
        if inline is None:
            source = {"type": "url", "url": file.url}
        else:
            return _emit_file(File(data=inline[1], mime_type=inline[0], filename=file.filename), path)
    elif file.data is not None:
        mime = file.mime_type or "application/pdf"
        if mime.startswith("image/"):
            return _emit_image(Image(data=file.data, mime_type=mime), path)
        if mime == "text/plain":
            source = {"type": "text", "media_type": "text/plain", "data": _decoded_text(file.data, path)}
        elif mime == "application/pdf":
            source = {"type": "base64", "media_type": mime, "data": file.data}
        else:
            raise _unsupported(f"Anthropic documents are PDF or plain text, not {mime}", path)
    else:
        raise _unsupported("a file needs an id, a URL or inline data", path)
    block: Wire = {"type": "document", "source": source}
    if file.filename:
        block["title"] = file.filename
    return block


def _tool_input(call: ToolCall, path: str) -> Wire:
    if not call.arguments:
        return {}
    try:
        value = jsonutil.loads(call.arguments)
    except jsonutil.JSONDecodeError:
        raise _unsupported(f"tool call {call.id!r} ({call.name}) has arguments that are not JSON", path) from None
    if not isinstance(value, dict):
        raise _unsupported(f"tool call {call.id!r} ({call.name}) has arguments that are not a JSON object", path)
    return cast(Wire, value)


def _emit_tool_result(result: ToolResult, path: str) -> Wire:
    block: Wire = {"type": "tool_result", "tool_use_id": anthropic_tool_id(result.call_id)}
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        block["content"] = result.content[0].text
    elif result.content:
        block["content"] = [
            {"type": "text", "text": item.text} if isinstance(item, Text) else _emit_image(item, f"{path}.content[{k}]")
            for k, item in enumerate(result.content)
            if not (isinstance(item, Text) and not item.text)
        ]
    if result.is_error:
        block["is_error"] = True
    return block


def _emit_part(part: Part, path: str) -> Wire | None:
    """One IR part as an Anthropic block, or None for a part Anthropic must not see (empty text, unsigned thinking)."""
    match part:
        case Text(text=text):
            return {"type": "text", "text": text} if text else None
        case Image():
            return _emit_image(part, path)
        case File():
            return _emit_file(part, path)
        case Reasoning(text=text, signature=signature):
            # Anthropic verifies signatures and rejects unsigned thinking blocks: only signed ones go back.
            return {"type": "thinking", "thinking": text, "signature": signature} if signature else None
        case RedactedReasoning(data=data):
            return {"type": "redacted_thinking", "data": data}
        case ToolCall():
            return {
                "type": "tool_use",
                "id": anthropic_tool_id(part.id),
                "name": part.name,
                "input": _tool_input(part, path),
            }
        case ToolResult():
            return _emit_tool_result(part, path)
        case _:
            assert_never(part)


def _placed(entries: list[Wire], key: str, index: int) -> dict[int, list[Wire]]:
    """Entries for one container (``key`` == ``index``), grouped by their ``part`` position."""
    out: dict[int, list[Wire]] = {}
    for entry in entries:
        if entry.get(key) == index and isinstance(entry.get("part"), int):
            out.setdefault(entry["part"], []).append(entry)
    return out


def _message_blocks(message: Message, i: int, opaque: list[Wire], cache: list[Wire]) -> list[Wire]:
    opaque_here = _placed(opaque, "message", i)
    cache_here = _placed(cache, "message", i)
    blocks: list[Wire] = []
    for j, part in enumerate(message.parts):
        blocks.extend(cast(Wire, entry["block"]) for entry in opaque_here.pop(j, ()))
        block = _emit_part(part, f"messages[{i}].content[{j}]")
        if block is None:
            continue
        for entry in cache_here.get(j, ()):
            block["cache_control"] = entry["value"]
        blocks.append(block)
    for j in sorted(opaque_here):
        blocks.extend(cast(Wire, entry["block"]) for entry in opaque_here[j])
    return blocks


def _tool_results_first(blocks: list[Wire]) -> list[Wire]:
    results = [block for block in blocks if block.get("type") == "tool_result"]
    if not results or len(results) == len(blocks):
        return blocks
    return results + [block for block in blocks if block.get("type") != "tool_result"]


def _emit_messages(request: Request, ext: Mapping[str, JSON]) -> tuple[list[Text], list[Wire]]:
    """``(extra system parts lifted from leading system messages, wire messages)``."""
    opaque = _ext_list(ext, "opaque_blocks")
    cache = _ext_list(ext, "cache_control")
    lifted: list[Text] = []
    turns: list[Wire] = []
    leading = True
    for i, message in enumerate(request.messages):
        if message.role is Role.SYSTEM and leading:
            lifted.extend(part for part in message.parts if isinstance(part, Text))
            continue
        leading = False
        blocks = _message_blocks(message, i, opaque, cache)
        if not blocks:
            continue
        role = IR_TO_ROLE[message.role]
        # Anthropic wants alternating turns; a system message stands alone, as the SDK's SystemMessageParam does.
        if turns and turns[-1]["role"] == role and role != "system":
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"] = _tool_results_first(turn["content"])
        turn["content"] = _compact_content(turn["content"])
    return lifted, turns


def _compact_content(blocks: list[Wire]) -> str | list[Wire]:
    """A lone plain text block as the string form, as clients write it (same prompt, smaller body)."""
    if len(blocks) == 1 and blocks[0].get("type") == "text" and len(blocks[0]) == 2:
        return cast(str, blocks[0]["text"])
    return blocks


def _emit_system(parts: list[Text], cache: list[Wire]) -> str | list[Wire] | None:
    cached = {entry["system"]: entry["value"] for entry in cache if isinstance(entry.get("system"), int)}
    if len(parts) == 1 and not cached:
        return parts[0].text or None
    blocks: list[Wire] = []
    for j, part in enumerate(parts):
        if not part.text:
            continue
        block: Wire = {"type": "text", "text": part.text}
        if j in cached:
            block["cache_control"] = cached[j]
        blocks.append(block)
    return blocks or None


def _emit_tools(request: Request, ext: Mapping[str, JSON]) -> list[Wire]:
    function_tools: list[Wire] = []
    for tool in request.tools:
        schema = normalize_schema(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
        wire: Wire = {"name": tool.name}
        if tool.description:
            wire["description"] = tool.description
        wire["input_schema"] = schema
        if tool.strict:
            wire["strict"] = True
        function_tools.append(wire)
    server = {
        entry["index"]: entry["tool"] for entry in _ext_list(ext, "server_tools") if isinstance(entry.get("index"), int)
    }
    # Back to the client's order: tools are part of Anthropic's prompt-cache prefix.
    tools = function_tools
    for position, tool in sorted(server.items()):
        tools.insert(min(position, len(tools)), dict(cast(Wire, tool)))
    names = {tool.get("name") for tool in tools}
    for hosted in request.hosted_tools:
        if hosted.kind is HostedToolKind.WEB_SEARCH and WEB_SEARCH_TOOL["name"] not in names:
            search: Wire = dict(WEB_SEARCH_TOOL)
            if hosted.allowed_domains:
                search["allowed_domains"] = list(hosted.allowed_domains)
            elif hosted.blocked_domains:  # Anthropic takes one of the two lists, never both
                search["blocked_domains"] = list(hosted.blocked_domains)
            tools.append(search)
    for entry in _ext_list(ext, "cache_control"):
        position = entry.get("tool")
        if isinstance(position, int) and position < len(tools):
            tools[position]["cache_control"] = entry["value"]
    return tools


def _emit_tool_choice(request: Request) -> Wire | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is False:
        choice = ToolChoice(ToolChoiceMode.AUTO)
    if choice is None:
        return None
    wire: Wire = {"type": TOOL_CHOICE_TO_WIRE[choice.mode]}
    if choice.mode is ToolChoiceMode.TOOL:
        if not choice.name:
            raise _unsupported("tool_choice 'tool' needs a tool name", "tool_choice.name")
        wire["name"] = choice.name
    if choice.mode is not ToolChoiceMode.NONE and request.parallel_tool_calls is not None:
        wire["disable_parallel_tool_use"] = not request.parallel_tool_calls
    return wire


def _raw_object(ext: Mapping[str, JSON], key: str) -> Wire | None:
    value = ext.get(key)
    return cast(Wire, value) if isinstance(value, dict) else None


def _emit_thinking(request: Request, ext: Mapping[str, JSON]) -> Wire | None:
    raw = _raw_object(ext, "thinking")
    if raw is not None and _raw_still_describes(raw, ext, request.thinking):
        return raw
    if raw is None and _effort_only_from_client(ext, request.thinking):
        # An Anthropic client that set output_config.effort alone: the effort travels there, thinking stays unset.
        return None
    budget = budget_for(request.thinking)
    if budget is None:
        return None
    if budget == 0:
        return {"type": "disabled"}
    # Anthropic has no "dynamic" budget for manual thinking: use the default one.
    return {"type": "enabled", "budget_tokens": DEFAULT_THINKING_BUDGET if budget == DYNAMIC_BUDGET else budget}


def _effort_only_from_client(ext: Mapping[str, JSON], thinking: Thinking) -> bool:
    raw_config = _raw_object(ext, "output_config")
    if raw_config is None:
        return False
    try:
        return thinking == Thinking(effort=_parse_effort(raw_config))
    except ClientError:
        return False


def _raw_still_describes(raw: Wire, ext: Mapping[str, JSON], thinking: Thinking) -> bool:
    """Whether the client's own ``thinking`` object still says what the IR says (nobody changed the request)."""
    try:
        return _parse_thinking(raw, _raw_object(ext, "output_config")) == thinking
    except ClientError:
        return False


def _emit_output_config(request: Request, ext: Mapping[str, JSON]) -> Wire | None:
    raw = _raw_object(ext, "output_config")
    if raw is not None:
        try:
            unchanged = _parse_effort(raw) == request.thinking.effort and (
                _parse_response_format(raw) == request.response_format
            )
        except ClientError:
            unchanged = False
        if unchanged:
            return raw
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    if fmt.type is ResponseFormatType.JSON_OBJECT or fmt.schema is None:
        raise _unsupported(
            "Anthropic structured output needs a JSON schema; plain JSON mode has no equivalent", "response_format"
        )
    return {"format": {"type": "json_schema", "schema": normalize_schema(fmt.schema)}}


def _forces_tool(request: Request) -> bool:
    choice = request.tool_choice
    return choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL)


def _unsigned_tool_loop(messages: list[Wire]) -> bool:
    """Whether the conversation is inside a tool loop (the last assistant turn is answered by tool results) whose
    assistant turn does not start with a thinking block.

    With thinking on, Anthropic rejects such a history ("Expected `thinking` or `redacted_thinking`, but found
    `tool_use`": platform.claude.com/docs/en/build-with-claude/extended-thinking#preserving-thinking-blocks). It
    happens when the calls came from another provider, whose reasoning carries no Anthropic signature.
    """
    last = next((k for k in range(len(messages) - 1, -1, -1) if messages[k]["role"] == "assistant"), None)
    if last is None or last + 1 >= len(messages):
        return False
    answer = messages[last + 1]["content"]
    if isinstance(answer, str) or not any(block.get("type") == "tool_result" for block in answer):
        return False
    blocks = messages[last]["content"]
    return isinstance(blocks, str) or blocks[0].get("type") not in ("thinking", "redacted_thinking")


def _thinking_for(request: Request, ext: Mapping[str, JSON], messages: list[Wire]) -> Wire | None:
    """The thinking object to send, after the combinations Anthropic rejects: a forced tool (the forced call is
    the client's contract, thinking only a quality knob) and an unsigned tool loop both turn thinking off."""
    thinking = _emit_thinking(request, ext)
    if thinking is None or thinking.get("type") == "disabled":
        return thinking
    if _forces_tool(request) or _unsigned_tool_loop(messages):
        return None
    return thinking


def _check_expressible(request: Request) -> None:
    if request.sampling.n is not None and request.sampling.n > 1:
        raise _unsupported("Anthropic returns one answer per request (n > 1)", "n")
    if request.previous_response_id is not None:
        raise _unsupported("Anthropic keeps no server-side conversation state", "previous_response_id")


def _adaptive(thinking: Wire | None, request: Request, output_config: Wire | None) -> tuple[Wire | None, Wire | None]:
    """``thinking`` and ``output_config`` for a model that takes adaptive thinking only (Claude Opus 4.7 answers 400
    to ``{type: enabled, budget_tokens}``: platform.claude.com/docs/en/about-claude/models/migration-guide
    #migrating-to-claude-opus-4-7): ``{type: adaptive}``, the effort in ``output_config.effort``."""
    if thinking is None or thinking.get("type") != "enabled":
        return thinking, output_config
    adaptive: Wire = {"type": "adaptive"}
    if request.thinking.include_thoughts is not None:
        adaptive["display"] = "summarized" if request.thinking.include_thoughts else "omitted"
    effort = effort_for(request.thinking)
    config: Wire = dict(output_config) if output_config is not None else {}
    if effort in EFFORT_TO_WIRE and "effort" not in config:
        config["effort"] = EFFORT_TO_WIRE[effort]
    return adaptive, config or None


def _request_body(request: Request, model: str, *, count_only: bool, adaptive_thinking: bool = False) -> Wire:
    _check_expressible(request)
    ext = _anthropic_extensions(request)
    lifted, messages = _emit_messages(request, ext)
    body: Wire = {"model": model}
    thinking = _thinking_for(request, ext, messages)
    output_config = _emit_output_config(request, ext)
    if adaptive_thinking:
        thinking, output_config = _adaptive(thinking, request, output_config)
    thinking_on = thinking is not None and thinking.get("type") != "disabled"
    if not count_only:
        body["max_tokens"] = _max_tokens(request, thinking)
    system = _emit_system([*request.system, *lifted], _ext_list(ext, "cache_control"))
    if system is not None:
        body["system"] = system
    body["messages"] = messages
    tools = _emit_tools(request, ext)
    if tools:
        body["tools"] = tools
        tool_choice = _emit_tool_choice(request)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    top_cache = _raw_object(ext, "top_cache_control")
    if top_cache is not None:
        body["cache_control"] = top_cache
    if count_only:
        return body
    _emit_sampling(body, request.sampling, thinking_on)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.service_tier in SERVICE_TIER_TO_WIRE:
        body["service_tier"] = SERVICE_TIER_TO_WIRE[request.service_tier]
    extra = _raw_object(ext, "extra_body")
    if extra:
        body.update((key, value) for key, value in extra.items() if key not in body)
    return body


def _max_tokens(request: Request, thinking: Wire | None) -> int:
    max_tokens = request.sampling.max_tokens or DEFAULT_MAX_TOKENS
    budget = thinking.get("budget_tokens") if thinking is not None else None
    if isinstance(budget, int) and max_tokens <= budget:
        # Anthropic requires max_tokens > budget_tokens; leave room for the visible answer.
        return budget + THINKING_HEADROOM
    return max_tokens


def _emit_sampling(body: Wire, sampling: Sampling, thinking_on: bool) -> None:
    if sampling.temperature is not None and not thinking_on:
        body["temperature"] = min(max(sampling.temperature, 0.0), MAX_TEMPERATURE)
    if sampling.top_p is not None:
        body["top_p"] = max(sampling.top_p, MIN_TOP_P_WITH_THINKING) if thinking_on else sampling.top_p
    if sampling.top_k is not None and not thinking_on:
        body["top_k"] = sampling.top_k
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)


WEB_SEARCH_TOOL: Final[Wire] = {"type": "web_search_20250305", "name": "web_search"}
"""Anthropic's web search server tool: what a neutral web-search hosted tool becomes."""


def _headers(target: Target, request: Request) -> tuple[tuple[str, str], ...]:
    """The API key, the client's ``anthropic-version`` (else ours) and ``anthropic-beta`` when the client was an
    Anthropic client: its beta body fields (``context_management``...) are only accepted with their beta header.
    The transport merges ``anthropic-beta`` with the provider's configured one."""
    client = dict(client_protocol_headers(request, Format.ANTHROPIC))
    headers = [("anthropic-version", client.get("anthropic-version", ANTHROPIC_VERSION))]
    if "anthropic-beta" in client:
        headers.append(("anthropic-beta", client["anthropic-beta"]))
    headers.append(("content-type", "application/json"))
    if target.api_key:
        headers.insert(0, ("x-api-key", target.api_key))
    return tuple(headers)


def _hosted_neutral(tool: Wire) -> HostedTool | None:
    """An Anthropic server tool in neutral form, when another format has the same kind (web search)."""
    kind = tool.get("type")
    if not (isinstance(kind, str) and kind.startswith("web_search_")):
        return None

    def domains(key: str) -> tuple[str, ...]:
        value = tool.get(key)
        return tuple(d for d in value if isinstance(d, str)) if isinstance(value, list) else ()

    return HostedTool(
        HostedToolKind.WEB_SEARCH,
        allowed_domains=domains("allowed_domains"),
        blocked_domains=domains("blocked_domains"),
    )


def adapt_anthropic_request(request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
    """An Anthropic client's request made fit for another format: server tools become neutral hosted tools or are
    dropped (``policy``); content blocks the IR cannot hold (server tool results in the history...) are dropped
    with them (their effect is in the text around them); body fields only Anthropic reads are reported as
    ignored (``context_management`` and other beta fields: no other format has them)."""
    ext = dict(_anthropic_extensions(request))
    candidates = [
        (str(cast(Wire, entry.get("tool", {})).get("type")), _hosted_neutral(cast(Wire, entry.get("tool", {}))))
        for entry in _ext_list(ext, "server_tools")
    ]
    candidates += [
        (f"{cast(Wire, entry.get('block', {})).get('type')} content block", None)
        for entry in _ext_list(ext, "opaque_blocks")
    ]
    mapped, dropped = translate_hosted(candidates, target, policy)
    extra = _raw_object(ext, "extra_body") or {}
    ignored = tuple(sorted(extra))
    if not candidates:
        return Adaptation(request, ignored=ignored)
    ext.pop("server_tools", None)
    ext.pop("opaque_blocks", None)
    adapted = replace(
        request,
        hosted_tools=(*request.hosted_tools, *mapped),
        extensions={**request.extensions, FORMAT_KEY: ext},
    )
    return Adaptation(adapted, dropped=tuple(dropped), ignored=ignored)


def require_anthropic_target(request: Request, target_format: Format) -> None:
    """Raise UNSUPPORTED when a request from an Anthropic client uses what only Anthropic can run (server tools,
    content blocks the IR cannot hold) and is about to go to another format. For the engine's routing step."""
    if target_format is Format.ANTHROPIC:
        return
    ext = _anthropic_extensions(request)
    server_tools = _ext_list(ext, "server_tools")
    if server_tools:
        first = server_tools[0]
        tool = cast(Wire, first.get("tool", {}))
        raise _unsupported(
            f"{target_format} cannot run Anthropic tool {tool.get('type')!r}", f"tools[{first.get('index')}]"
        )
    opaque = _ext_list(ext, "opaque_blocks")
    if opaque:
        block = cast(Wire, opaque[0].get("block", {}))
        raise _unsupported(f"{target_format} cannot take Anthropic {block.get('type')!r} content blocks", "messages")


# ============================================================================= usage and responses
def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage_from_wire(usage: Wire) -> Usage:
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    cache_read = _int(usage.get("cache_read_input_tokens"))
    details = usage.get("output_tokens_details")
    return Usage(
        input_tokens=_int(usage.get("input_tokens")) + cache_write + cache_read,
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(details.get("thinking_tokens")) if isinstance(details, dict) else 0,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _usage_to_wire(usage: Usage) -> Wire:
    wire: Wire = {
        "input_tokens": max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
    if usage.reasoning_tokens:
        wire["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return wire


def _finish_reason(stop_reason: object) -> FinishReason:
    # Unknown (newer) stop reasons end the answer normally rather than failing a finished generation.
    return STOP_REASON_TO_IR.get(stop_reason, FinishReason.STOP) if isinstance(stop_reason, str) else FinishReason.STOP


def _str_or_empty(value: object) -> str:
    return value if isinstance(value, str) else ""


def _malformed(what: str) -> CodecError:
    return CodecError(f"malformed Anthropic response: {what}")


def _response_part(block: Wire) -> Part | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _malformed("text block without text")
        return Text(text) if text else None
    if kind == "thinking":
        text, signature = block.get("thinking"), block.get("signature")
        if not isinstance(text, str):
            raise _malformed("thinking block without thinking")
        if not text and not signature:
            return None
        return Reasoning(text, signature=signature if isinstance(signature, str) and signature else None)
    if kind == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            raise _malformed("redacted_thinking block without data")
        return RedactedReasoning(data)
    if kind == "tool_use":
        call_id, name, tool_input = block.get("id"), block.get("name"), block.get("input")
        if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(tool_input, dict):
            raise _malformed("tool_use block needs id, name and input")
        return ToolCall(id=call_id, name=name, arguments=jsonutil.dumps(tool_input).decode())
    # Server-tool blocks (server_tool_use, web_search_tool_result...) have no IR form; their effect is in the text.
    return None


def parse_response_body(body: bytes) -> Response:
    try:
        obj = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise _malformed(f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("content"), list):
        raise _malformed("expected a message object with content")
    parts: list[Part] = []
    for block in obj["content"]:
        if not isinstance(block, dict):
            raise _malformed("content block is not an object")
        part = _response_part(block)
        if part is not None:
            parts.append(part)
    usage = obj.get("usage")
    stop_sequence = obj.get("stop_sequence")
    return Response(
        id=_str_or_empty(obj.get("id")),
        model=_str_or_empty(obj.get("model")),
        parts=tuple(parts),
        finish_reason=_finish_reason(obj.get("stop_reason")),
        usage=_usage_from_wire(usage) if isinstance(usage, dict) else Usage(),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )


def _client_tool_input(call: ToolCall) -> Wire:
    if not call.arguments:
        return {}
    try:
        value = jsonutil.loads(call.arguments)
    except jsonutil.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        # Anthropic's tool_use.input is an object: broken arguments from the provider cannot be shown as one.
        raise CodecError(f"tool call {call.id!r} ({call.name}) arguments are not a JSON object")
    return cast(Wire, value)


def _client_block(part: Part) -> Wire | None:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text} if text else None
        case Reasoning(text=text, signature=signature):
            # The SDK's ThinkingBlock requires a signature string; "" marks reasoning another provider left unsigned.
            return {"type": "thinking", "thinking": text, "signature": signature or ""}
        case RedactedReasoning(data=data):
            return {"type": "redacted_thinking", "data": data}
        case ToolCall():
            return {"type": "tool_use", "id": part.id, "name": part.name, "input": _client_tool_input(part)}
        case Image() | File() | ToolResult():
            return None  # input-only parts; an answer never carries them
        case _:
            assert_never(part)


def emit_response_body(response: Response, info: StreamInfo) -> bytes:
    content = [block for block in map(_client_block, response.parts) if block is not None]
    return jsonutil.dumps(
        {
            "id": info.id,
            "type": "message",
            "role": "assistant",
            "model": info.model,
            "content": content,
            "stop_reason": IR_TO_STOP_REASON[response.finish_reason],
            "stop_sequence": response.stop_sequence,
            "usage": _usage_to_wire(response.usage),
        }
    )


# ========================================================================================== errors
def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """``(error type, message)`` from an Anthropic error body, Nones where it is not one."""
    try:
        obj = jsonutil.loads(body)
    except jsonutil.JSONDecodeError:
        return None, None
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)


def _refine_kind(kind: ErrorKind, message: str) -> ErrorKind:
    if kind is ErrorKind.INVALID_REQUEST:
        if is_context_length_message(message):
            return ErrorKind.CONTEXT_LENGTH
        if _CONTENT_FILTER_PHRASE in message.lower():
            return ErrorKind.CONTENT_FILTER
    return kind


def upstream_error(status: int, error_type: str | None, message: str) -> UpstreamError:
    kind = ERROR_TYPE_TO_KIND.get(error_type, kind_for_status(status)) if error_type else kind_for_status(status)
    kind = _refine_kind(kind, message)
    return UpstreamError(
        kind,
        message,
        provider_status=status,
        provider_type=error_type,
        status=client_status(status, kind),
    )


def parse_error_body(status: int, body: bytes) -> UpstreamError:
    error_type, message = _error_fields(body)
    if message is None:
        # Not Anthropic's shape (a proxy's HTML page, Cloudflare's 413): show the start of what came.
        message = body[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return upstream_error(status, error_type, message)


def _stream_error(event: Wire) -> UpstreamError:
    error = event.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    error_type = error_type if isinstance(error_type, str) else None
    # The stream's HTTP status was 200; use the status Anthropic pairs with the error type.
    status = ERROR_TYPE_STATUS.get(error_type or "", 500)
    return upstream_error(status, error_type, message if isinstance(message, str) else "error event in stream")


def error_body(error: MuxError) -> bytes:
    return jsonutil.dumps(
        {"type": "error", "error": {"type": KIND_TO_ERROR_TYPE[error.kind], "message": error.message}}
    )


# ================================================================================== stream decoder
_TEXT, _THINKING, _REDACTED, _TOOL, _IGNORED = range(5)

_BLOCK_KINDS: dict[str, int] = {
    "text": _TEXT,
    "thinking": _THINKING,
    "redacted_thinking": _REDACTED,
    "tool_use": _TOOL,
}


class _Block:
    """A provider content block: its kind, its IR index once it emitted something (-1 before), and for tool
    calls whether any argument text arrived."""

    __slots__ = ("args_seen", "ir_index", "kind")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.ir_index = -1
        self.args_seen = False


class AnthropicStreamDecoder(StreamDecoder):
    """Anthropic SSE -> IR events. See the module docstring for the index and termination rules."""

    __slots__ = ("_blocks", "_done", "_error", "_finished", "_next_index", "_sse", "_started", "_usage")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self._blocks: dict[int, _Block] = {}
        self._next_index = 0
        self._started = False
        self._finished = False
        self._done = False
        self._usage: Wire = {}
        self._error: MuxError | None = None

    def feed(self, data: bytes) -> list[Event]:
        if self._error is not None:
            raise self._error
        out: list[Event] = []
        try:
            for sse in self._sse.feed(data):
                if sse.data and not self._done:
                    self._event(sse.data, out)
        except MuxError as exc:
            return self._defer(exc, out)
        return out

    def flush(self) -> list[Event]:
        if self._error is not None:
            raise self._error
        out: list[Event] = []
        try:
            for sse in self._sse.flush():
                if sse.data and not self._done:
                    self._event(sse.data, out)
        except MuxError as exc:
            return self._defer(exc, out)
        if not self._done:
            raise StreamTruncated("Anthropic stream ended before message_stop")
        return out

    def _defer(self, error: MuxError, out: list[Event]) -> list[Event]:
        """Hand out the events decoded before ``error`` in the same chunk (the engine may keep a partial answer),
        and raise it on the next call; with nothing to hand out, raise now. Either way every split of the input
        yields the same events, then the error."""
        self._error = error
        if out:
            return out
        raise error

    # ------------------------------------------------------------------ dispatch
    def _event(self, data: bytes, out: list[Event]) -> None:
        try:
            event = jsonutil.loads(data)
        except jsonutil.JSONDecodeError as exc:
            raise CodecError(f"malformed Anthropic stream event: {exc}") from None
        if not isinstance(event, dict):
            raise CodecError("malformed Anthropic stream event: not an object")
        kind = event.get("type")
        # Ordered by frequency: deltas are nearly every event.
        if kind == "content_block_delta":
            self._delta(event, out)
        elif kind == "content_block_start":
            self._block_start(event, out)
        elif kind == "content_block_stop":
            self._block_stop(event, out)
        elif kind == "message_start":
            self._message_start(event, out)
        elif kind == "message_delta":
            self._message_delta(event, out)
        elif kind == "message_stop":
            if not self._finished:
                raise CodecError("malformed Anthropic stream: message_stop without a stop_reason")
            self._done = True
        elif kind == "error":
            raise _stream_error(event)
        # ping and unknown (newer) event types carry nothing the IR needs.

    def _require_started(self, kind: str) -> None:
        if not self._started:
            raise CodecError(f"malformed Anthropic stream: {kind} before message_start")

    def _block(self, event: Wire) -> _Block:
        index = event.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None:
            raise CodecError(
                f"malformed Anthropic stream: {event.get('type')} for unknown index {event.get('index')!r}"
            )
        return block

    def _ir_index(self, block: _Block) -> int:
        if block.ir_index < 0:
            block.ir_index = self._next_index
            self._next_index += 1
        return block.ir_index

    # ------------------------------------------------------------------ message events
    def _message_start(self, event: Wire, out: list[Event]) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            raise CodecError("malformed Anthropic stream: message_start without message")
        self._started = True
        out.append(Start(_str_or_empty(message.get("id")), _str_or_empty(message.get("model"))))
        self._update_usage(message.get("usage"), out)

    def _message_delta(self, event: Wire, out: list[Event]) -> None:
        self._require_started("message_delta")
        self._update_usage(event.get("usage"), out)
        delta = event.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None or self._finished:
            return
        self._finished = True
        stop_sequence = cast(Wire, delta).get("stop_sequence")
        out.append(Finish(_finish_reason(stop_reason), stop_sequence if isinstance(stop_sequence, str) else None))

    def _update_usage(self, usage: object, out: list[Event]) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta counts are cumulative and may omit fields: keep the last value seen for each.
        self._usage.update((key, value) for key, value in usage.items() if value is not None)
        out.append(UsageUpdate(_usage_from_wire(self._usage)))

    # ------------------------------------------------------------------ content blocks
    def _block_start(self, event: Wire, out: list[Event]) -> None:
        self._require_started("content_block_start")
        index, content = event.get("index"), event.get("content_block")
        if not isinstance(index, int) or not isinstance(content, dict):
            raise CodecError("malformed Anthropic stream: content_block_start needs index and content_block")
        type_name = content.get("type")
        kind = _BLOCK_KINDS.get(type_name, _IGNORED) if isinstance(type_name, str) else _IGNORED
        block = self._blocks[index] = _Block(kind)
        if kind == _TEXT:
            text = content.get("text")
            if isinstance(text, str) and text:
                out.append(TextDelta(self._ir_index(block), text))
        elif kind == _THINKING:
            text, signature = content.get("thinking"), content.get("signature")
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(self._ir_index(block), text))
            if isinstance(signature, str) and signature:
                out.append(ReasoningSignature(self._ir_index(block), signature))
        elif kind == _REDACTED:
            data = content.get("data")
            if not isinstance(data, str):
                raise CodecError("malformed Anthropic stream: redacted_thinking without data")
            out.append(RedactedReasoningBlock(self._ir_index(block), data))
        elif kind == _TOOL:
            self._tool_start(block, content, out)

    def _tool_start(self, block: _Block, content: Wire, out: list[Event]) -> None:
        call_id, name, tool_input = content.get("id"), content.get("name"), content.get("input")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise CodecError("malformed Anthropic stream: tool_use block needs id and name")
        index = self._ir_index(block)
        out.append(ToolCallStart(index, call_id, name))
        if isinstance(tool_input, dict) and tool_input:
            block.args_seen = True
            out.append(ToolCallDelta(index, jsonutil.dumps(tool_input).decode()))

    def _delta(self, event: Wire, out: list[Event]) -> None:
        block = self._block(event)
        delta = event.get("delta")
        if not isinstance(delta, dict):
            raise CodecError("malformed Anthropic stream: content_block_delta without delta")
        kind = delta.get("type")
        if kind == "text_delta" and block.kind == _TEXT:
            text = _delta_str(delta, "text")
            if text:
                out.append(TextDelta(self._ir_index(block), text))
        elif kind == "input_json_delta" and block.kind == _TOOL:
            fragment = _delta_str(delta, "partial_json")
            if fragment:
                block.args_seen = True
                out.append(ToolCallDelta(block.ir_index, fragment))
        elif kind == "thinking_delta" and block.kind == _THINKING:
            text = _delta_str(delta, "thinking")
            if text:
                out.append(ReasoningDelta(self._ir_index(block), text))
        elif kind == "signature_delta" and block.kind == _THINKING:
            signature = _delta_str(delta, "signature")
            if signature:
                out.append(ReasoningSignature(self._ir_index(block), signature))
        # citations_delta, deltas of ignored (server-tool) blocks and unknown delta types carry nothing for the IR.

    def _block_stop(self, event: Wire, out: list[Event]) -> None:
        block = self._block(event)
        if block.kind != _TOOL:
            return
        if not block.args_seen:
            # A call without arguments streams no JSON at all; the non-stream answer says input {}.
            out.append(ToolCallDelta(block.ir_index, "{}"))
        out.append(ToolCallEnd(block.ir_index))


def _delta_str(delta: Wire, key: str) -> str:
    value = delta.get(key)
    if not isinstance(value, str):
        raise CodecError(f"malformed Anthropic stream: {delta.get('type')} without {key}")
    return value


# ================================================================================== stream encoder
def _sse(event: str, payload: Wire) -> tuple[Frame, ...]:
    return ((event, jsonutil.dumps(payload)),)


class AnthropicStreamEncoder(StreamEncoder):
    """IR events -> Anthropic SSE for a client.

    ``message_start`` is written just before the first content (or the finish), so that usage which the provider
    reports right after its start (Anthropic's own ``message_start``) is already in it. One block is open at a time;
    a new IR index closes it. Anthropic indices are this stream's own 0..n, whatever the IR indices were.
    """

    __slots__ = ("_finish", "_info", "_next_index", "_open", "_open_ir", "_open_kind", "_started", "_usage", "framer")

    def __init__(self, info: StreamInfo) -> None:
        self.framer = SSEFramer()
        self._info = info
        self._started = False
        self._open = -1  # Anthropic index of the open block, -1 when none
        self._open_ir = -1
        self._open_kind = _IGNORED
        self._next_index = 0
        self._usage = Usage()
        self._finish: Finish | None = None

    def advance(self, event: Event) -> None:
        kind = type(event)
        delta = kind is TextDelta or kind is ReasoningDelta or (kind is ToolCallDelta and self._open_kind == _TOOL)
        if delta and self._open >= 0 and cast(TextDelta, event).index == self._open_ir:
            return  # a delta of the open block changes nothing the encoder keeps
        self.frames(event)

    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case TextDelta(index=i, text=text):
                return self._delta(i, _TEXT, {"type": "text_delta", "text": text})
            case ReasoningDelta(index=i, text=text):
                return self._delta(i, _THINKING, {"type": "thinking_delta", "thinking": text})
            case ReasoningSignature(index=i, signature=signature):
                return self._delta(i, _THINKING, {"type": "signature_delta", "signature": signature})
            case ToolCallDelta(index=i, arguments=fragment):
                if i != self._open_ir or self._open_kind != _TOOL:
                    raise CodecError("ToolCallDelta without ToolCallStart", kind=ErrorKind.INTERNAL)
                return self._delta(i, _TOOL, {"type": "input_json_delta", "partial_json": fragment})
            case ToolCallStart(index=i, id=call_id, name=name):
                block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
                return self._open_block(i, _TOOL, block)
            case ToolCallEnd(index=i):
                return self._close() if i == self._open_ir else ()
            case RedactedReasoningBlock(index=i, data=data):
                return self._open_block(i, _REDACTED, {"type": "redacted_thinking", "data": data}) + self._close()
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish():
                self._finish = event
                return self._start() + self._close()
            case Start():
                return ()
            case _:
                assert_never(event)

    def final_frames(self) -> tuple[Frame, ...]:
        if self._finish is None:
            raise CodecError("finish() before a Finish event", kind=ErrorKind.INTERNAL)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": IR_TO_STOP_REASON[self._finish.reason],
                "stop_sequence": self._finish.stop_sequence,
            },
            "usage": _usage_to_wire(self._usage),
        }
        return (
            self._start()
            + self._close()
            + _sse("message_delta", delta)
            + _sse("message_stop", {"type": "message_stop"})
        )

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        # The SDK raises on an `error` event wherever it comes (anthropic/_streaming.py); no block is closed first,
        # so that a cut answer cannot be taken for a complete one.
        return (("error", error_body(error)),)

    # ------------------------------------------------------------------ blocks
    def _start(self) -> tuple[Frame, ...]:
        if self._started:
            return ()
        self._started = True
        message: Wire = {
            "id": self._info.id,
            "type": "message",
            "role": "assistant",
            "model": self._info.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_to_wire(self._usage),
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close(self) -> tuple[Frame, ...]:
        if self._open < 0:
            return ()
        index, self._open, self._open_kind = self._open, -1, _IGNORED
        return _sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _open_block(self, ir_index: int, kind: int, content_block: Wire) -> tuple[Frame, ...]:
        out = self._start() + self._close()
        self._open = self._next_index
        self._open_ir = ir_index
        self._open_kind = kind
        self._next_index += 1
        return out + _sse(
            "content_block_start", {"type": "content_block_start", "index": self._open, "content_block": content_block}
        )

    def _delta(self, ir_index: int, kind: int, delta: Wire) -> tuple[Frame, ...]:
        out: tuple[Frame, ...] = ()
        if ir_index != self._open_ir or self._open < 0:
            if kind == _TEXT:
                out = self._open_block(ir_index, _TEXT, {"type": "text", "text": ""})
            else:
                out = self._open_block(ir_index, _THINKING, {"type": "thinking", "thinking": "", "signature": ""})
        return out + _sse("content_block_delta", {"type": "content_block_delta", "index": self._open, "delta": delta})


# ======================================================================================= the codec
class AnthropicCodec(Codec):
    format = Format.ANTHROPIC

    def check_target(self, request: Request, target: Format) -> None:
        require_anthropic_target(request, target)

    def adapt_to_target(self, request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
        return adapt_anthropic_request(request, target, policy)

    # ------------------------------------------------------------------ client side
    def parse_request(self, body: bytes, hints: RequestHints) -> Request:
        return parse_request_body(body, hints)

    def emit_response(self, response: Response, info: StreamInfo) -> bytes:
        return emit_response_body(response, info)

    def new_encoder(self, info: StreamInfo) -> StreamEncoder:
        return AnthropicStreamEncoder(info)

    def emit_error(self, error: MuxError) -> tuple[int, bytes]:
        return error.status, error_body(error)

    # ------------------------------------------------------------------ provider side
    def emit_request(self, request: Request, target: Target) -> WireRequest:
        body = _request_body(request, target.model, count_only=False, adaptive_thinking=target.adaptive_thinking)
        if target.stream:
            body["stream"] = True
        return WireRequest("POST", MESSAGES_PATH, _headers(target, request), jsonutil.dumps(body))

    def parse_response(self, body: bytes, seed: str) -> Response:
        return parse_response_body(body)

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return AnthropicStreamDecoder(max_event_bytes)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return parse_error_body(status, body)

    # ------------------------------------------------------------------ token counting
    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        body = _request_body(request, target.model, count_only=True, adaptive_thinking=target.adaptive_thinking)
        body = {key: value for key, value in body.items() if key in _COUNT_TOKENS_KEYS}
        return WireRequest("POST", COUNT_TOKENS_PATH, _headers(target, request), jsonutil.dumps(body))

    def parse_count_response(self, body: bytes) -> int:
        try:
            obj = jsonutil.loads(body)
        except jsonutil.JSONDecodeError:
            obj = None
        tokens = obj.get("input_tokens") if isinstance(obj, dict) else None
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise _malformed("count_tokens answer without input_tokens")
        return tokens

    def emit_count_response(self, tokens: int) -> bytes:
        return jsonutil.dumps({"input_tokens": tokens})


CODEC = AnthropicCodec()

__all__ = [
    "CODEC",
    "ERROR_TYPE_TO_KIND",
    "IR_TO_STOP_REASON",
    "KIND_TO_ERROR_TYPE",
    "ROLE_TO_IR",
    "STOP_REASON_TO_IR",
    "THINKING_TYPES",
    "USAGE_FIELDS",
    "AnthropicCodec",
    "AnthropicStreamDecoder",
    "AnthropicStreamEncoder",
    "require_anthropic_target",
]

"""The Ollama wire format: ``/api/chat`` and ``/api/generate`` (client side), ``/api/chat`` (provider side).

Role: translate between Ollama's native API and the IR in both directions. Sources: the API reference
(github.com/ollama/ollama ``docs/api.md``, docs.ollama.com/api/chat, docs.ollama.com/capabilities/thinking), the Go
types in ``api/types.go``, and the official python SDK (``ollama/_types.py``, ``ollama/_client.py``), whose typed
models validate every payload this module emits.

Wire facts this module relies on:
- Framing is NDJSON (``application/x-ndjson``): one JSON object per line, no start event, no keepalive. Every line
  carries ``model``, ``created_at`` and ``done``; the last line has ``done: true``, ``done_reason`` and the counters.
  A stream that ends without that line was cut (:class:`StreamTruncated`). An error mid-stream is a line
  ``{"error": "..."}`` (the SDK raises ``ResponseError`` for it, ``_client.py``).
- ``stream`` absent means *true*: Ollama streams by default (``api/types.go``: "true by default").
- Tool calls arrive complete, one line each, with ``arguments`` as a JSON *object*. Ollama >= 0.12.10 adds an ``id``
  ("call_p7o2gz50") and ``function.index``; older servers send neither, so ids are invented from ``seed``. A tool
  result carries ``tool_name`` (and ``tool_call_id`` on new servers), never a required id: results without an id are
  matched to the preceding assistant's calls by name, else in order, and both sides get the same position-derived id.
- ``/api/chat`` answers with ``message.content``/``message.thinking``; ``/api/generate`` with ``response``/``thinking``.
  The client's dialect comes from ``RequestHints.endpoint`` and is recorded in ``request.extensions["ollama"]``.
- ``created_at`` is RFC 3339 in UTC as Go's ``time.RFC3339Nano`` prints it; muxtrio only knows whole seconds, for
  which Go prints no fraction ("2023-08-04T19:22:45Z"). Durations are nanoseconds; muxtrio has none and sends 0.

What Ollama cannot express (raised as ``CodecError(kind=UNSUPPORTED)``, never dropped): image URLs that are not
``data:`` URLs, files, ``n > 1``, a required/named ``tool_choice``, ``previous_response_id``, non-object tool-call
arguments; from clients: ``/api/generate`` ``suffix`` (fill-in-the-middle), ``raw: true`` and a non-empty ``context``
(pre-tokenized history), and ``logprobs``. Dropped on purpose, documented: reasoning signatures and redacted reasoning
(opaque to every Ollama model), ``parallel_tool_calls`` (Ollama has no switch; models call tools as they will),
``user``/``metadata``/``service_tier`` (bookkeeping only), ``/api/generate`` ``template`` (the upstream model's own
template applies), a tool result's ``is_error`` becomes an ``"Error: "`` prefix on its content.

Invariants: pure (no IO, clocks or randomness; ``datetime`` only formats the ``created`` number it is given); JSON via
:mod:`muxtrio.wire.jsonutil`; stream code works on plain dicts and pre-built byte prefixes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import assert_never, cast

from muxtrio.codecs import ids
from muxtrio.codecs.base import (
    Codec,
    Format,
    RequestHints,
    StreamDecoder,
    StreamEncoder,
    StreamInfo,
    Target,
    WireRequest,
    client_status,
    is_context_length_message,
    kind_for_status,
)
from muxtrio.codecs.media import parse_data_url
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
    ToolChoiceMode,
    ToolResult,
)
from muxtrio.ir.response import FinishReason, Response, Usage
from muxtrio.ir.thinking import DYNAMIC_BUDGET, effort_for
from muxtrio.wire import jsonutil
from muxtrio.wire.framing import Frame
from muxtrio.wire.jsonutil import get_int, get_number, get_str, invalid, require_str, unsupported
from muxtrio.wire.ndjson import NDJSONDecoder, NDJSONFramer
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES

EXTENSION_KEY = Format.OLLAMA.value
CHAT_PATH = "/api/chat"
CONTENT_TYPE = "application/x-ndjson"

# --------------------------------------------------------------------------------------------------- mapping tables
ROLES: dict[str, Role] = {
    "system": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}

DONE_REASON_TO_FINISH: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,  # becomes TOOL_CALLS when the answer called tools (Ollama says "stop" then)
    "length": FinishReason.LENGTH,
    # A bare load/unload request (empty messages) finishes with these; nothing was cut, the answer is just empty.
    "load": FinishReason.STOP,
    "unload": FinishReason.STOP,
    # Servers before done_reason existed (docs/api.md 2023 examples) end with ``done: true`` only.
    "": FinishReason.STOP,
}
# The runner stopped because its connection closed (llm/server.go ``DoneReasonConnectionClosed``): a cut answer.
TRUNCATED_DONE_REASONS = frozenset({"connection_closed"})

FINISH_TO_DONE_REASON: dict[FinishReason, str] = {
    FinishReason.STOP: "stop",
    FinishReason.STOP_SEQUENCE: "stop",  # Ollama does not say which stop sequence matched
    FinishReason.TOOL_CALLS: "stop",  # what Ollama itself sends after tool calls
    FinishReason.LENGTH: "length",
    # Ollama has no such reasons; clients read done_reason as an opaque string, and "stop" would hide a filter.
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.ERROR: "error",
}

# ``options`` keys that the IR carries; every other option travels in ``extensions["ollama"]["options"]``.
OPTION_TO_SAMPLING: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# num_predict -1 = "until the model stops", -2 = "until the context is full": no limit in IR terms.
UNLIMITED_NUM_PREDICT = frozenset({-1, -2})

USAGE_FIELDS: dict[str, str] = {
    "prompt_eval_count": "input_tokens",  # the whole prompt, cached part included
    "eval_count": "output_tokens",  # the whole answer, thinking included
    "prompt_eval_cached_count": "cache_read_tokens",  # newer servers; observed <= prompt_eval_count
}

# ``think``: Ollama takes true/false, or a level ("low"/"medium"/"high") for models with levels (gpt-oss).
THINK_LEVEL_TO_EFFORT: dict[str, Effort] = {
    "low": Effort.LOW,
    "medium": Effort.MEDIUM,
    "high": Effort.HIGH,
    # Not Ollama's own levels, accepted so that any IR effort name a client sends still means something.
    "minimal": Effort.MINIMAL,
    "xhigh": Effort.XHIGH,
}
EFFORT_TO_THINK: dict[Effort, bool | str] = {
    Effort.NONE: False,
    Effort.MINIMAL: "low",
    Effort.LOW: "low",
    Effort.MEDIUM: "medium",
    Effort.HIGH: "high",
    Effort.XHIGH: "high",
}

# Magic bytes of the image types Ollama's vision models take; Ollama sends bare base64 without a media type.
IMAGE_SIGNATURES: dict[bytes, str] = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"RIFF": "image/webp",
}
DEFAULT_IMAGE_MIME = "image/png"

HISTORY_TEXT_SEPARATOR = "\n"  # several IR text parts in one request message become one ``content``
ERROR_RESULT_PREFIX = "Error: "
MAX_ERROR_MESSAGE = 2000


# --------------------------------------------------------------------------------------------------- small helpers
def _unsupported(message: str, param: str) -> CodecError:
    """An answer or IR request that Ollama's wire cannot express (the client side raises ``unsupported``)."""
    return CodecError(message, kind=ErrorKind.UNSUPPORTED, param=param)


def created_at(created: int) -> str:
    """Unix seconds as Ollama's ``created_at`` (Go ``RFC3339Nano``, which prints no fraction for whole seconds)."""
    return datetime.fromtimestamp(created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_text(value: JSON) -> str:
    return jsonutil.dumps(value).decode()


def _sniff_image_mime(data: str) -> str:
    try:
        head = base64.b64decode(data[:16] + "=" * (-len(data[:16]) % 4))
    except (binascii.Error, ValueError):
        return DEFAULT_IMAGE_MIME
    for signature, mime in IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return mime
    return DEFAULT_IMAGE_MIME


def _dialect(request: Request) -> str:
    endpoint = request.extensions.get(EXTENSION_KEY, {}).get("endpoint")
    return "generate" if endpoint == "generate" else "chat"


# =================================================================================================== client side
# ----------------------------------------------------------------------------------------- parse_request helpers
def _parse_image(value: JSON, param: str) -> Image:
    if not isinstance(value, str) or not value:
        raise invalid(f"`{param}` must be a base64-encoded image string", param)
    parsed = parse_data_url(value)
    if parsed is not None:  # tolerated: some clients send data URLs where Ollama wants bare base64
        mime, data = parsed
        return Image(data=data, mime_type=mime)
    return Image(data=value, mime_type=_sniff_image_mime(value))


def _parse_images(value: JSON, param: str) -> list[Image]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"`{param}` must be an array of base64 strings", param)
    return [_parse_image(item, f"{param}[{i}]") for i, item in enumerate(value)]


def _parse_arguments(value: JSON, param: str) -> str:
    if value is None:
        return "{}"
    if isinstance(value, dict):
        return _json_text(value)
    if isinstance(value, str):  # not Ollama's shape, but unambiguous: JSON text as OpenAI sends it
        return value
    raise invalid(f"`{param}` must be an object", param)


def _parse_think(value: JSON) -> Thinking:
    if value is None:
        return Thinking()
    if isinstance(value, bool):
        return Thinking(enabled=value, include_thoughts=True if value else None)
    if isinstance(value, str):
        if value == "none":
            return Thinking(enabled=False)
        effort = THINK_LEVEL_TO_EFFORT.get(value)
        if effort is not None:
            return Thinking(enabled=True, effort=effort, include_thoughts=True)
    raise invalid('`think` must be true, false, "low", "medium" or "high"', "think")


def _parse_format(value: JSON) -> ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    if isinstance(value, dict):
        return ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=value)
    raise invalid('`format` must be "json" or a JSON schema object', "format")


def _parse_stop(value: JSON) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(cast(list[str], value))
    raise invalid("`options.stop` must be an array of strings", "options.stop")


def _parse_options(value: JSON) -> tuple[Sampling, JSONObject]:
    """``options`` -> (the IR sampling, the options the IR has no field for)."""
    if value is None:
        return Sampling(), {}
    if not isinstance(value, dict):
        raise invalid("`options` must be an object", "options")
    rest: JSONObject = {k: v for k, v in value.items() if k not in OPTION_TO_SAMPLING and v is not None}
    max_tokens = get_int(value, "num_predict", "options.num_predict")
    if max_tokens in UNLIMITED_NUM_PREDICT:
        rest["num_predict"] = max_tokens  # kept so that an Ollama upstream sees the same -1/-2
        max_tokens = None
    stop = value.get("stop")
    sampling = Sampling(
        temperature=get_number(value, "temperature", "options.temperature"),
        top_p=get_number(value, "top_p", "options.top_p"),
        top_k=get_int(value, "top_k", "options.top_k"),
        max_tokens=max_tokens,
        stop=_parse_stop(stop) if stop is not None else (),
        seed=get_int(value, "seed", "options.seed"),
        frequency_penalty=get_number(value, "frequency_penalty", "options.frequency_penalty"),
        presence_penalty=get_number(value, "presence_penalty", "options.presence_penalty"),
    )
    return sampling, rest


def _parse_tools(value: JSON) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("`tools` must be an array", "tools")
    tools: list[Tool] = []
    for i, item in enumerate(value):
        param = f"tools[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"`{param}` must be an object", param)
        kind = item.get("type", "function")
        if kind != "function":
            raise invalid(f'`{param}.type` must be "function"', f"{param}.type")
        function = item.get("function")
        if not isinstance(function, dict):
            raise invalid(f"`{param}.function` must be an object", f"{param}.function")
        name = require_str(function, "name", f"{param}.function.name")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"`{param}.function.parameters` must be an object", f"{param}.function.parameters")
        tools.append(
            Tool(
                name=name,
                description=get_str(function, "description", f"{param}.function.description"),
                parameters=parameters,
            )
        )
    return tuple(tools)


def _history_call_id(message_index: int, call_index: int) -> str:
    """A stable id for a call in a client's history that has none (derived from its position)."""
    return ids.tool_call_id(f"m{message_index}", call_index)


class _PendingCalls:
    """Tool calls of the latest assistant message that still await their results, to give results their ids."""

    def __init__(self) -> None:
        self._calls: list[ToolCall] = []

    def reset(self, calls: list[ToolCall]) -> None:
        self._calls = list(calls)

    def take(self, call_id: str | None, name: str | None) -> ToolCall | None:
        """The call a result answers: by id when it has one, else by tool name, else the oldest unanswered."""
        if call_id is not None:
            match = next((c for c in self._calls if c.id == call_id), None)
        else:
            match = next((c for c in self._calls if c.name == name), None) if name else None
            if match is None and self._calls:
                match = self._calls[0]
        if match is not None:
            self._calls.remove(match)
        return match


def _parse_tool_calls(value: JSON, param: str, message_index: int) -> list[ToolCall]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"`{param}` must be an array", param)
    calls: list[ToolCall] = []
    for j, item in enumerate(value):
        item_param = f"{param}[{j}]"
        if not isinstance(item, dict) or not isinstance(item.get("function"), dict):
            raise invalid(f"`{item_param}.function` must be an object", f"{item_param}.function")
        function = cast(JSONObject, item["function"])
        name = require_str(function, "name", f"{item_param}.function.name")
        call_id = get_str(item, "id", f"{item_param}.id") or _history_call_id(message_index, j)
        arguments = _parse_arguments(function.get("arguments"), f"{item_param}.function.arguments")
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls


def _content_parts(text: str, images: list[Image]) -> list[Part]:
    parts: list[Part] = []
    if text or not images:
        parts.append(Text(text))
    parts.extend(images)
    return parts


def _parse_message(item: JSON, index: int, pending: _PendingCalls) -> Message:
    param = f"messages[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"`{param}` must be an object", param)
    role_name = require_str(item, "role", f"{param}.role")
    role = ROLES.get(role_name.lower())  # Ollama lower-cases roles (api/types.go Message.UnmarshalJSON)
    if role is None:
        raise invalid(f"`{param}.role` must be system, user, assistant or tool", f"{param}.role")
    content = get_str(item, "content", f"{param}.content") or ""
    images = _parse_images(item.get("images"), f"{param}.images")

    if role is Role.TOOL:
        name = get_str(item, "tool_name", f"{param}.tool_name")
        call_id = get_str(item, "tool_call_id", f"{param}.tool_call_id")
        call = pending.take(call_id, name)
        result = ToolResult(
            call_id=call_id or (call.id if call is not None else _history_call_id(index, 0)),
            content=tuple(cast(list[Text | Image], _content_parts(content, images))),
            name=name or (call.name if call is not None else None),
        )
        return Message(Role.TOOL, (result,))

    parts: list[Part] = []
    thinking = get_str(item, "thinking", f"{param}.thinking")
    if thinking:
        parts.append(Reasoning(thinking))
    calls = _parse_tool_calls(item.get("tool_calls"), f"{param}.tool_calls", index)
    if content or (not calls and not thinking) or images:
        parts.extend(_content_parts(content, images))
    parts.extend(calls)
    if role is Role.ASSISTANT:
        pending.reset(calls)
    return Message(role, tuple(parts))


def _parse_chat_messages(body: JSONObject) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    value = body.get("messages")
    if value is None:
        raise invalid("`messages` is required", "messages")
    if not isinstance(value, list):
        raise invalid("`messages` must be an array", "messages")
    if not value:
        # Ollama loads the model for an empty list (docs/api.md "Load a model"); a gateway has nothing to generate.
        raise invalid("`messages` is empty: Ollama's model-load request has no equivalent here", "messages")
    pending = _PendingCalls()
    messages = [_parse_message(item, i, pending) for i, item in enumerate(value)]
    system: list[Text] = []
    while messages and messages[0].role is Role.SYSTEM and all(isinstance(p, Text) for p in messages[0].parts):
        system.extend(cast(tuple[Text, ...], messages.pop(0).parts))
    return tuple(system), tuple(messages)


def _parse_generate_prompt(body: JSONObject) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    suffix = get_str(body, "suffix", "suffix")
    if suffix:
        raise unsupported("suffix (fill-in-the-middle) cannot be sent through a chat request", "suffix")
    if body.get("raw") is True:
        raise unsupported("raw prompts bypass the model template, which a chat request always applies", "raw")
    context = body.get("context")
    if context:
        raise unsupported("context (tokenized history from an earlier /api/generate) cannot be replayed", "context")
    prompt = get_str(body, "prompt", "prompt") or ""
    images = _parse_images(body.get("images"), "images")
    if not prompt and not images:
        raise invalid("`prompt` is empty: Ollama's model-load request has no equivalent here", "prompt")
    system = get_str(body, "system", "system")
    return ((Text(system),) if system else ()), (Message(Role.USER, tuple(_content_parts(prompt, images))),)


def _parse_stream(value: JSON) -> bool:
    if value is None:
        return True  # Ollama streams unless told otherwise
    if not isinstance(value, bool):
        raise invalid("`stream` must be a boolean", "stream")
    return value


# ----------------------------------------------------------------------------------------- response building
def _answer_fields(parts: tuple[Part, ...], dialect: str) -> tuple[str, str, list[JSONObject]]:
    """An answer's parts -> (content, thinking, wire tool calls). Text joins without separator, as a streaming
    client concatenates deltas."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONObject] = []
    for part in parts:
        match part:
            case Text(text=text):
                texts.append(text)
            case Reasoning(text=text):
                thoughts.append(text)
            case ToolCall():
                if dialect == "generate":
                    raise _unsupported("/api/generate answers cannot carry tool calls", "tool_calls")
                calls.append(_client_tool_call(part.id, part.name, part.arguments, len(calls)))
            case RedactedReasoning() | Image() | File() | ToolResult():
                pass  # opaque or input-only: nothing an Ollama client can show
            case _:
                assert_never(part)
    return "".join(texts), "".join(thoughts), calls


def _arguments_object(arguments: str, param: str) -> JSONObject:
    if not arguments.strip():
        return {}
    try:
        value = jsonutil.loads(arguments)
    except jsonutil.JSONDecodeError:
        raise _unsupported("tool call arguments are not valid JSON; Ollama needs an object", param) from None
    if not isinstance(value, dict):
        raise _unsupported("tool call arguments must be a JSON object for Ollama", param)
    return cast(JSONObject, value)


def _client_tool_call(call_id: str, name: str, arguments: str, index: int) -> JSONObject:
    # id and function.index are what Ollama >= 0.12.10 sends; older SDKs ignore them.
    return {
        "id": call_id,
        "function": {"index": index, "name": name, "arguments": _arguments_object(arguments, "tool_calls")},
    }


def _final_counters(usage: Usage) -> JSONObject:
    counters: JSONObject = {
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": usage.input_tokens,
        "prompt_eval_duration": 0,
        "eval_count": usage.output_tokens,
        "eval_duration": 0,
    }
    if usage.cache_read_tokens:
        counters["prompt_eval_cached_count"] = usage.cache_read_tokens
    return counters


# ----------------------------------------------------------------------------------------- stream encoder
class OllamaEncoder(StreamEncoder):
    """IR events -> NDJSON line payloads for an Ollama client. Text and thinking deltas are one line each (built from
    pre-encoded byte prefixes); tool calls are buffered until ``ToolCallEnd`` and sent as one line; ``finish`` sends
    the ``done: true`` line with the counters."""

    content_type = CONTENT_TYPE
    keepalive = None

    def __init__(self, info: StreamInfo) -> None:
        self.framer = NDJSONFramer()
        self._dialect = _dialect(info.request)
        self._model = info.model
        self._created_at = created_at(info.created)
        head = b'{"model":' + jsonutil.dumps(info.model) + b',"created_at":"' + self._created_at.encode() + b'",'
        if self._dialect == "generate":
            self._text_head = head + b'"response":'
            self._text_tail = b',"done":false}'
            self._thinking_head = head + b'"response":"","thinking":'
            self._thinking_tail = self._text_tail
        else:
            self._text_head = head + b'"message":{"role":"assistant","content":'
            self._text_tail = b'},"done":false}'
            self._thinking_head = head + b'"message":{"role":"assistant","content":"","thinking":'
            self._thinking_tail = self._text_tail
        self._usage = Usage()
        self._finish: FinishReason = FinishReason.STOP
        self._calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, argument fragments)
        self._calls_sent = 0

    def advance(self, event: Event) -> None:
        if type(event) is TextDelta or type(event) is ReasoningDelta:
            return  # stateless: a delta is its own line
        self.frames(event)

    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case TextDelta(text=text):
                return ((None, self._text_head + jsonutil.dumps(text) + self._text_tail),) if text else ()
            case ReasoningDelta(text=text):
                return ((None, self._thinking_head + jsonutil.dumps(text) + self._thinking_tail),) if text else ()
            case ToolCallStart(index=index, id=call_id, name=name):
                if self._dialect == "generate":
                    raise _unsupported("/api/generate answers cannot carry tool calls", "tool_calls")
                self._calls[index] = (call_id, name, [])
                return ()
            case ToolCallDelta(index=index, arguments=fragment):
                call = self._calls.get(index)
                if call is not None:
                    call[2].append(fragment)
                return ()
            case ToolCallEnd(index=index):
                return self._send_call(index)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish(reason=reason):
                self._finish = reason
                return self._send_open_calls()
            case Start() | ReasoningSignature() | RedactedReasoningBlock():
                return ()  # Ollama has no start line, and no place for opaque reasoning data
            case _:
                assert_never(event)

    def _send_call(self, index: int) -> tuple[Frame, ...]:
        call = self._calls.pop(index, None)
        if call is None:
            return ()
        call_id, name, fragments = call
        wire = _client_tool_call(call_id, name, "".join(fragments), self._calls_sent)
        self._calls_sent += 1
        line = {
            "model": self._model,
            "created_at": self._created_at,
            "message": {"role": "assistant", "content": "", "tool_calls": [wire]},
            "done": False,
        }
        return ((None, jsonutil.dumps(line)),)

    def _send_open_calls(self) -> tuple[Frame, ...]:
        return tuple(frame for index in sorted(self._calls) for frame in self._send_call(index))

    def final_frames(self) -> tuple[Frame, ...]:
        line: JSONObject = {"model": self._model, "created_at": self._created_at}
        if self._dialect == "generate":
            line["response"] = ""
        else:
            line["message"] = {"role": "assistant", "content": ""}
        line["done"] = True
        line["done_reason"] = FINISH_TO_DONE_REASON[self._finish]
        line.update(_final_counters(self._usage))
        return (*self._send_open_calls(), (None, jsonutil.dumps(line)))

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        # The SDK raises ResponseError(part["error"]) for such a line (ollama/_client.py, _request stream).
        return ((None, jsonutil.dumps({"error": error.message})),)


# =================================================================================================== provider side
# ----------------------------------------------------------------------------------------- emit_request helpers
def _image_base64(image: Image, param: str) -> str:
    if image.data is not None:
        return image.data
    if image.url is not None:
        parsed = parse_data_url(image.url)
        if parsed is not None:
            return parsed[1]
        raise _unsupported("Ollama takes base64 images only, not image URLs", param)
    raise _unsupported("image has neither data nor url", param)


def _file_as_image(file: File, param: str) -> str:
    if file.data is not None and (file.mime_type or "").startswith("image/"):
        return file.data
    raise _unsupported("Ollama takes images only, not files", param)


def _wire_tool_call(call: ToolCall, param: str) -> JSONObject:
    return {
        "id": call.id,  # read by Ollama >= 0.12.10, ignored by older servers (Go's JSON decoder skips unknown keys)
        "function": {"name": call.name, "arguments": _arguments_object(call.arguments, param)},
    }


def _wire_tool_result(result: ToolResult, call_names: Mapping[str, str], param: str) -> JSONObject:
    texts: list[str] = []
    images: list[str] = []
    for k, part in enumerate(result.content):
        if isinstance(part, Text):
            texts.append(part.text)
        else:
            images.append(_image_base64(part, f"{param}.content[{k}]"))
    content = HISTORY_TEXT_SEPARATOR.join(texts)
    if result.is_error:
        content = ERROR_RESULT_PREFIX + content
    message: JSONObject = {"role": "tool", "content": content}
    if images:
        message["images"] = cast(JSON, images)
    name = result.name or call_names.get(result.call_id)
    if name:
        message["tool_name"] = name
    message["tool_call_id"] = result.call_id
    return message


def _wire_message(message: Message, index: int, call_names: dict[str, str]) -> list[JSONObject]:
    """One IR message -> Ollama messages: its tool results first (one ``tool`` message each), then the rest."""
    param = f"messages[{index}]"
    texts: list[str] = []
    thoughts: list[str] = []
    images: list[str] = []
    calls: list[JSONObject] = []
    results: list[JSONObject] = []
    for j, part in enumerate(message.parts):
        part_param = f"{param}.parts[{j}]"
        match part:
            case Text(text=text):
                texts.append(text)
            case Image():
                images.append(_image_base64(part, part_param))
            case File():
                images.append(_file_as_image(part, part_param))
            case Reasoning(text=text):
                thoughts.append(text)  # its signature is meaningless to any Ollama model
            case RedactedReasoning():
                pass  # opaque provider data that no Ollama model can read
            case ToolCall():
                calls.append(_wire_tool_call(part, part_param))
                call_names[part.id] = part.name
            case ToolResult():
                results.append(_wire_tool_result(part, call_names, part_param))
            case _:
                assert_never(part)
    if results and not (texts or thoughts or images or calls):
        return results
    wire: JSONObject = {"role": message.role.value, "content": HISTORY_TEXT_SEPARATOR.join(texts)}
    if thoughts:
        wire["thinking"] = "".join(thoughts)
    if images:
        wire["images"] = cast(JSON, images)
    if calls:
        wire["tool_calls"] = cast(JSON, calls)
    return [*results, wire]


def _wire_messages(request: Request) -> list[JSONObject]:
    messages: list[JSONObject] = [{"role": "system", "content": text.text} for text in request.system]
    call_names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        messages.extend(_wire_message(message, i, call_names))
    return messages


def _wire_tools(request: Request) -> list[JSONObject] | None:
    choice = request.tool_choice
    if choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL):
        raise _unsupported("Ollama cannot force a tool call (it has no tool_choice)", "tool_choice")
    if not request.tools or (choice is not None and choice.mode is ToolChoiceMode.NONE):
        return None  # "none" is honoured by not offering the tools at all
    tools: list[JSONObject] = []
    for tool in request.tools:
        function: JSONObject = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        schema = object_or_empty(normalize_schema(tool.parameters)) if tool.parameters is not None else {}
        function["parameters"] = schema or {"type": "object", "properties": {}}
        tools.append({"type": "function", "function": function})
    return tools


def _wire_options(request: Request) -> JSONObject:
    sampling = request.sampling
    if sampling.n is not None and sampling.n > 1:
        raise _unsupported("Ollama returns one answer per request (n > 1)", "n")
    extra = request.extensions.get(EXTENSION_KEY, {}).get("options")
    options: JSONObject = dict(extra) if isinstance(extra, dict) else {}
    for key, field in OPTION_TO_SAMPLING.items():
        value = getattr(sampling, field)
        if field == "stop":
            if value:
                options[key] = list(value)
        elif value is not None:
            options[key] = value
    return options


def think_value(thinking: Thinking) -> bool | str | None:
    """The IR thinking config as Ollama's ``think``: None (omit), a bool, or a level for graded requests.

    A plain "on" stays ``true`` (every thinking model takes it); only an explicit effort or budget becomes a level,
    since some servers reject levels for models without them."""
    if thinking.enabled is False:
        return False
    graded = thinking.effort is not None or (
        thinking.budget_tokens is not None and thinking.budget_tokens != DYNAMIC_BUDGET
    )
    if not graded:
        return True if (thinking.enabled or thinking.budget_tokens == DYNAMIC_BUDGET) else None
    effort = effort_for(thinking)
    return None if effort is None else EFFORT_TO_THINK[effort]


def _wire_format(response_format: ResponseFormat | None) -> JSON:
    if response_format is None or response_format.type is ResponseFormatType.TEXT:
        return None
    if response_format.type is ResponseFormatType.JSON_OBJECT or response_format.schema is None:
        return "json"
    return normalize_schema(response_format.schema)


# ----------------------------------------------------------------------------------------- errors
def _error_text(body: bytes, status: int) -> str:
    try:
        value = jsonutil.loads(body) if body else None
    except jsonutil.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict):  # an OpenAI-shaped proxy in front of Ollama
            error = error.get("message")
        if isinstance(error, str) and error:
            return error[:MAX_ERROR_MESSAGE]
    text = body.decode("utf-8", "replace").strip()
    return text[:MAX_ERROR_MESSAGE] if text else f"HTTP {status}"


def _error_kind(status: int, message: str) -> ErrorKind:
    if is_context_length_message(message):
        return ErrorKind.CONTEXT_LENGTH
    # 400 '"llama3.2" does not support thinking' / '... does not support tools' (server/routes.go)
    if status == 400 and "does not support" in message:
        return ErrorKind.UNSUPPORTED
    return kind_for_status(status) if status >= 400 else ErrorKind.UPSTREAM


def upstream_error(status: int, message: str) -> UpstreamError:
    kind = _error_kind(status, message)
    client = 400 if kind in (ErrorKind.CONTEXT_LENGTH, ErrorKind.UNSUPPORTED) else client_status(status, kind)
    return UpstreamError(kind, message, provider_status=status, status=client)


# ----------------------------------------------------------------------------------------- stream decoder
class OllamaDecoder(StreamDecoder):
    """Ollama NDJSON lines -> IR events. Blocks get indices in order of appearance: a run of ``thinking`` is one
    reasoning block, a run of ``content`` one text block, each tool call its own block."""

    __slots__ = ("_calls", "_done", "_index", "_lines", "_open", "_seed", "_started")

    def __init__(self, seed: str, max_line_bytes: int | None = None) -> None:
        self._lines = NDJSONDecoder() if max_line_bytes is None else NDJSONDecoder(max_line_bytes)
        self._seed = seed
        self._started = False
        self._done = False
        self._index = -1
        self._open = ""  # kind of the open block: "", "text", "reasoning" or "tool"
        self._calls = 0

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for line in self._lines.feed(data):
            self._line(line, events)
        return events

    def flush(self) -> list[Event]:
        events: list[Event] = []
        for line in self._lines.flush():
            self._line(line, events)
        if not self._done:
            raise StreamTruncated("Ollama stream ended before its done:true line")
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        try:
            obj = jsonutil.loads(line)
        except jsonutil.JSONDecodeError:
            raise CodecError(f"malformed Ollama stream line: {line[:200]!r}") from None
        if not isinstance(obj, dict):
            raise CodecError(f"Ollama stream line is not an object: {line[:200]!r}")
        if self._done:
            return  # nothing meaningful follows the done line
        error = obj.get("error")
        if error is not None:
            raise upstream_error(200, error if isinstance(error, str) else _json_text(cast(JSON, error)))
        if not self._started:
            model = obj.get("model")
            events.append(Start(f"ollama-{self._seed}", model if isinstance(model, str) else ""))
            self._started = True
        message = obj.get("message")
        if isinstance(message, dict):
            thinking, content, calls = message.get("thinking"), message.get("content"), message.get("tool_calls")
        else:  # /api/generate-shaped lines, tolerated
            thinking, content, calls = obj.get("thinking"), obj.get("response"), None
        if thinking:
            self._delta("reasoning", thinking, events)
        if content:
            self._delta("text", content, events)
        if calls is not None:
            if not isinstance(calls, list):
                raise CodecError("Ollama message.tool_calls is not an array")
            for call in calls:
                self._tool_call(call, events)
        if obj.get("done") is True:
            self._finish(obj, events)

    def _delta(self, kind: str, text: object, events: list[Event]) -> None:
        if not isinstance(text, str):
            raise CodecError(f"Ollama message {'thinking' if kind == 'reasoning' else 'content'} is not a string")
        if self._open != kind:
            self._index += 1
            self._open = kind
        events.append(TextDelta(self._index, text) if kind == "text" else ReasoningDelta(self._index, text))

    def _tool_call(self, call: object, events: list[Event]) -> None:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise CodecError("Ollama tool call without function.name")
        given_id = cast(dict[str, object], call).get("id")
        call_id = given_id if isinstance(given_id, str) and given_id else ids.tool_call_id(self._seed, self._calls)
        arguments = function.get("arguments")
        if arguments is None:
            arguments = {}
        text = arguments if isinstance(arguments, str) else _json_text(cast(JSON, arguments))
        self._calls += 1
        self._index += 1
        self._open = "tool"
        events.append(ToolCallStart(self._index, call_id, function["name"]))
        events.append(ToolCallDelta(self._index, text))
        events.append(ToolCallEnd(self._index))

    def _finish(self, obj: dict[str, object], events: list[Event]) -> None:
        reason_text = obj.get("done_reason") or ""
        if not isinstance(reason_text, str):
            raise CodecError("Ollama done_reason is not a string")
        if reason_text in TRUNCATED_DONE_REASONS:
            raise StreamTruncated(f"Ollama stopped generating early: done_reason {reason_text!r}")
        reason = DONE_REASON_TO_FINISH.get(reason_text, FinishReason.STOP)
        if reason is FinishReason.STOP and self._calls:
            reason = FinishReason.TOOL_CALLS
        events.append(UsageUpdate(_usage(obj)))
        events.append(Finish(reason))
        self._done = True


def _usage(obj: dict[str, object]) -> Usage:
    counters: dict[str, int] = {}
    for key, field in USAGE_FIELDS.items():
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            counters[field] = value
    return Usage(**counters)


# =================================================================================================== the codec
class OllamaCodec(Codec):
    format = Format.OLLAMA

    # ------------------------------------------------------------------ client side
    def parse_request(self, body: bytes, hints: RequestHints) -> Request:
        obj = jsonutil.loads_object(body)
        dialect = "generate" if hints.endpoint == "generate" else "chat"
        model = require_str(obj, "model", "model")
        if not model:
            raise invalid("`model` is required", "model")
        if obj.get("logprobs") is True:
            raise unsupported("logprobs are not available through muxtrio", "logprobs")
        if dialect == "generate":
            system, messages = _parse_generate_prompt(obj)
            tools: tuple[Tool, ...] = ()
        else:
            system, messages = _parse_chat_messages(obj)
            tools = _parse_tools(obj.get("tools"))
        sampling, extra_options = _parse_options(obj.get("options"))
        extension: JSONObject = {"endpoint": dialect}
        if extra_options:
            extension["options"] = extra_options
        keep_alive = obj.get("keep_alive")
        if keep_alive is not None:
            extension["keep_alive"] = keep_alive
        return Request(
            model=model,
            messages=messages,
            system=system,
            tools=tools,
            sampling=sampling,
            thinking=_parse_think(obj.get("think")),
            response_format=_parse_format(obj.get("format")),
            stream=_parse_stream(obj.get("stream")),
            include_usage=True,  # every Ollama answer ends with its counters
            extensions={EXTENSION_KEY: extension},
        )

    def emit_response(self, response: Response, info: StreamInfo) -> bytes:
        dialect = _dialect(info.request)
        content, thinking, calls = _answer_fields(response.parts, dialect)
        body: JSONObject = {"model": info.model, "created_at": created_at(info.created)}
        if dialect == "generate":
            body["response"] = content
            if thinking:
                body["thinking"] = thinking
        else:
            message: JSONObject = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = cast(JSON, calls)
            body["message"] = message
        body["done"] = True
        body["done_reason"] = FINISH_TO_DONE_REASON[response.finish_reason]
        body.update(_final_counters(response.usage))
        return jsonutil.dumps(body)

    def new_encoder(self, info: StreamInfo) -> StreamEncoder:
        return OllamaEncoder(info)

    def emit_error(self, error: MuxError) -> tuple[int, bytes]:
        return error.status, jsonutil.dumps({"error": error.message})

    # ------------------------------------------------------------------ provider side
    def emit_request(self, request: Request, target: Target) -> WireRequest:
        if request.previous_response_id is not None:
            raise _unsupported("Ollama keeps no server-side conversation state", "previous_response_id")
        body: JSONObject = {
            "model": target.model,
            "messages": cast(JSON, _wire_messages(request)),
            "stream": target.stream,
        }
        tools = _wire_tools(request)
        if tools is not None:
            body["tools"] = cast(JSON, tools)
        response_format = _wire_format(request.response_format)
        if response_format is not None:
            body["format"] = response_format
        options = _wire_options(request)
        if options:
            body["options"] = options
        think = think_value(request.thinking)
        if think is not None:
            body["think"] = think
        keep_alive = request.extensions.get(EXTENSION_KEY, {}).get("keep_alive")
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        headers = [("content-type", "application/json")]
        if target.api_key:
            # A local Ollama needs no key; ollama.com and authenticating proxies take a bearer token.
            headers.append(("authorization", f"Bearer {target.api_key}"))
        return WireRequest("POST", CHAT_PATH, tuple(headers), jsonutil.dumps(body))

    def parse_response(self, body: bytes, seed: str) -> Response:
        # The non-stream answer is one object shaped like a final stream line: decode it as a one-line stream, so
        # that a stream and a non-stream answer become the same Response by construction.
        decoder = OllamaDecoder(seed)
        events = decoder.feed(body.strip() + b"\n")
        events.extend(decoder.flush())
        return accumulate(events)

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return OllamaDecoder(seed, max_event_bytes)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return upstream_error(status, _error_text(body, status))


CODEC = OllamaCodec()

__all__ = [
    "CODEC",
    "DONE_REASON_TO_FINISH",
    "EFFORT_TO_THINK",
    "FINISH_TO_DONE_REASON",
    "OPTION_TO_SAMPLING",
    "ROLES",
    "THINK_LEVEL_TO_EFFORT",
    "USAGE_FIELDS",
    "OllamaCodec",
    "OllamaDecoder",
    "OllamaEncoder",
    "created_at",
    "think_value",
]

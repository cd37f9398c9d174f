"""Gemini ``generateContent`` / ``streamGenerateContent`` / ``countTokens`` (API-key flavour, ``v1beta``), both ways.

Client side: Gemini clients (google-genai SDKs, Gemini CLI) talk to muxtrio. Provider side: muxtrio talks to
``https://generativelanguage.googleapis.com`` (:data:`CODEC`), or to Vertex AI's API-key paths (:data:`VERTEX_CODEC`,
provider type ``vertex-compat``). Pure: no IO, clocks or randomness (never imports trio, httpx, socket,
time, random or uuid); ids come from ``StreamInfo``/``seed``; JSON goes through :mod:`muxtrio.wire.jsonutil` (orjson).

Invariants and decisions
- Casing: the REST API accepts lowerCamel and snake_case field names, and the google-genai SDK mixes them in one body
  (observed from google-genai 3.6: ``inlineData: {mime_type}``, ``thinkingConfig: {thinking_budget}``,
  ``parameters_json_schema``, ``topK: 40.0``). ``parse_request`` reads every field in both casings; ``parts``,
  ``contents`` and ``tools`` may also be a single object instead of a list (the docs' own curl examples do that).
  Provider responses are read in lowerCamel only (the API always answers in lowerCamel).
- Roles: see :data:`ROLES`. A Gemini turn holding ``functionResponse`` parts becomes an IR ``tool`` message (one per
  run of such parts, order kept); the other parts of the turn stay in a ``user`` message. Toward Gemini, user and tool
  messages are ``user`` turns, and consecutive turns of the same role are merged (Gemini wants alternation).
- Tool-call ids: a ``functionCall`` part's ``id`` when present, else invented. In requests the id is stable from the
  position (``ids.tool_call_id("gemini", k)`` for the k-th call of the conversation) and each ``functionResponse``
  without ``id`` takes the oldest unanswered call of the same name. In answers ids come from ``ids.tool_call_id(seed,
  n)``. Ids are sent back to Gemini in ``functionCall.id``/``functionResponse.id`` (the SDK sends them to this API).
- Tool results: ``functionResponse.response`` becomes the compact JSON text of the object, verbatim (``{"output":
  ...}`` is *not* unwrapped: the text is lossless, and every model reads JSON). It is an error result when it has an
  ``error`` key and no ``output`` key (the two keys Gemini documents). Toward Gemini, a result whose text is a JSON
  object is sent as that object; any other text as ``{"result": text}``; an error result as ``{"error": ...}``.
  Images of a tool result follow the ``functionResponse`` as sibling ``inlineData``/``fileData`` parts of the same
  user turn (``functionResponse.parts`` exists on Gemini 3 only).
- Thought signatures (opaque, base64): on a ``thought`` part they are that Reasoning's signature; on a ``functionCall``
  part the ToolCall's signature. Gemini also puts them on plain text parts (the first text after thinking, or an empty
  text part at the end of a stream: observed from gemini-2.5/3 streams). Such a signature is carried as an extra
  ``Reasoning("", signature)`` part placed *just before* the text it belongs to (alone when the text is empty). An
  empty-text Reasoning with a signature is always read back as that carrier: toward Gemini it goes onto the next text
  part, or into a ``{"text": "", "thoughtSignature"}`` part when no text follows.
- Toward Gemini: reasoning without a signature is dropped from history (Gemini reads nothing from unsigned thought
  text), and so is a signature that is not base64 (``thoughtSignature`` is a TYPE_BYTES field: it would be a 400 and
  cannot have come from Gemini). A model turn whose function calls carry no signature gets
  ``skip_thought_signature_validator`` on its first call, the value Gemini documents for histories that come from
  another model (ai.google.dev/gemini-api/docs/thought-signatures); Gemini 3 rejects unsigned calls otherwise.
  ``RedactedReasoning`` (Anthropic-only data) is not sent to Gemini nor shown to Gemini clients.
- Toward Gemini clients: the python SDK validates ``thoughtSignature`` as base64 and rejects the whole response
  otherwise, so a signature that is not base64 (from another provider) is wrapped as base64 of ``muxtrio-sig:`` +
  signature and unwrapped again by ``parse_request`` and the decoder. Thoughts are relayed as ``thought`` parts even
  when the client left ``includeThoughts`` false: another provider's signature is bound to its thinking text, and
  the client must be able to send both back.
- Streams: SSE (``alt=sse``) with CRLF framing, as the API sends it; the JSON-array dialect (no ``alt=sse``) writes
  ``[``, objects separated by ``,\\r\\n``, and ``]``. Neither has a keepalive: a ``: ping`` comment makes the python
  SDK raise (it parses non-``data:`` lines as JSON), and the API never sends one. A mid-stream error is written as a
  bare ``{"error": ...}`` JSON line, not a ``data:`` event: the python SDK raises ``APIError`` for both, but the JS SDK
  only recognises the bare form (a ``data:`` error would be handed to the caller as an empty answer).
- Not expressible, and how it is handled: ``n > 1`` / ``candidateCount > 1`` raise UNSUPPORTED (the IR answer has one
  candidate); image output, provider file ids and non-object tool arguments raise UNSUPPORTED; ``executableCode`` /
  ``codeExecutionResult`` answer parts are shown as fenced text; ``parallel_tool_calls``, ``Tool.strict``,
  ``Image.detail`` and ``File.filename`` are hints without a Gemini field and are ignored; an http(s) image or file
  URL is sent as ``fileData`` (Gemini fetches Google-hosted URIs; it may reject others); Gemini-only request fields
  (``safetySettings``, ``cachedContent``, built-in tools such as ``googleSearch``, ``allowedFunctionNames``, mode
  ``VALIDATED``, ``thinkingLevel``, other ``generationConfig`` keys) are kept in ``request.extensions["gemini"]``
  and only this codec sends them on. Toward another format (:func:`adapt_gemini_request`, ``hosted-tools`` policy)
  ``googleSearch`` becomes the neutral web-search hosted tool and the other built-ins are dropped with a warning;
  a neutral web search from another client format is sent as ``{"googleSearch": {}}``.
- The client's ``x-goog-api-client`` header is forwarded to a Gemini provider (``client_protocol_headers``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

from muxtrio.codecs import ids
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
    path_segment,
    record_client_headers,
)
from muxtrio.codecs.hosted import translate_hosted
from muxtrio.codecs.media import parse_data_url
from muxtrio.codecs.schema import gemini_schema, normalize_schema, object_or_empty
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
from muxtrio.ir.thinking import budget_for
from muxtrio.wire import jsonutil
from muxtrio.wire.framing import Frame
from muxtrio.wire.json_array import JSONArrayFramer
from muxtrio.wire.jsonutil import (
    as_array,
    as_object,
    as_str,
    invalid,
    opt_bool,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    unsupported,
)
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEFramer

EXT = Format.GEMINI.value
"""This codec's key in ``request.extensions``."""

# ---------------------------------------------------------------------------------------------- mapping tables
FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": FinishReason.STOP,  # becomes tool_calls when the answer holds function calls
    "FINISH_REASON_UNSPECIFIED": FinishReason.STOP,
    "OTHER": FinishReason.STOP,
    "IMAGE_OTHER": FinishReason.STOP,
    "NO_IMAGE": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "CONTINUATION": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "LANGUAGE": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "IMAGE_RECITATION": FinishReason.CONTENT_FILTER,
    "MODEL_ARMOR": FinishReason.CONTENT_FILTER,
    # The answer ended but is unusable (a broken call, a call to an undeclared tool...). It is a finished answer,
    # not a transport failure, so it finishes with ``error`` instead of raising (raising would make the engine retry
    # or fail over a request that did reach the model).
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
    "UNEXPECTED_TOOL_CALL": FinishReason.ERROR,
    "TOO_MANY_TOOL_CALLS": FinishReason.ERROR,
    "MALFORMED_RESPONSE": FinishReason.ERROR,
    "MISSING_THOUGHT_SIGNATURE": FinishReason.ERROR,
}
"""Gemini ``finishReason`` -> IR. Values not listed (added by Google later) read as ``stop``."""

FINISH_REASONS_OUT: dict[FinishReason, str] = {
    FinishReason.STOP: "STOP",
    FinishReason.STOP_SEQUENCE: "STOP",  # Gemini reports stop sequences as STOP
    FinishReason.TOOL_CALLS: "STOP",  # Gemini reports function calls as STOP
    FinishReason.LENGTH: "MAX_TOKENS",
    FinishReason.CONTENT_FILTER: "SAFETY",
    FinishReason.ERROR: "OTHER",
}

ROLES: dict[str, Role] = {"user": Role.USER, "function": Role.USER, "model": Role.ASSISTANT}
"""Gemini ``contents[].role`` -> IR (``function`` is the legacy role of function responses; a missing role is user).
A user turn's ``functionResponse`` parts become ``tool`` messages."""

ROLES_OUT: dict[Role, str] = {Role.USER: "user", Role.TOOL: "user", Role.ASSISTANT: "model"}
"""IR -> Gemini; ``system`` messages join ``systemInstruction``."""

USAGE_FIELDS: dict[str, str] = {
    "promptTokenCount": "input_tokens (+ toolUsePromptTokenCount; already includes cachedContentTokenCount)",
    "candidatesTokenCount": "output_tokens - reasoning_tokens",
    "thoughtsTokenCount": "reasoning_tokens (and part of output_tokens)",
    "cachedContentTokenCount": "cache_read_tokens",
    "totalTokenCount": "input_tokens + output_tokens",
}
"""Gemini ``usageMetadata`` <-> IR :class:`Usage` (cache writes have no Gemini field and are reported as 0)."""

THINKING_LEVELS: dict[str, Effort] = {
    "MINIMAL": Effort.MINIMAL,
    "LOW": Effort.LOW,
    "MEDIUM": Effort.MEDIUM,
    "HIGH": Effort.HIGH,
    "XHIGH": Effort.XHIGH,
}
"""``thinkingConfig.thinkingLevel`` (Gemini 3) -> IR effort. ``thinkingBudget`` maps as is: 0 = off, -1 = dynamic,
N = budget; toward Gemini the budget is the client's own number, else :func:`budget_for` of the effort; the client's
``thinkingLevel`` is sent back instead when the request came from a Gemini client and set no budget.
``includeThoughts`` is the IR ``include_thoughts``; toward Gemini it defaults to true whenever thinking is on."""

TOOL_MODES: dict[str, ToolChoiceMode] = {
    "AUTO": ToolChoiceMode.AUTO,
    "MODE_UNSPECIFIED": ToolChoiceMode.AUTO,
    "VALIDATED": ToolChoiceMode.AUTO,  # kept in extensions for Gemini
    "ANY": ToolChoiceMode.REQUIRED,  # TOOL when allowedFunctionNames names exactly one function
    "NONE": ToolChoiceMode.NONE,
}
TOOL_MODES_OUT: dict[ToolChoiceMode, str] = {
    ToolChoiceMode.AUTO: "AUTO",
    ToolChoiceMode.REQUIRED: "ANY",
    ToolChoiceMode.TOOL: "ANY",  # with allowedFunctionNames = [name]
    ToolChoiceMode.NONE: "NONE",
}

ERROR_KINDS: dict[str, ErrorKind] = {
    "INVALID_ARGUMENT": ErrorKind.INVALID_REQUEST,
    "OUT_OF_RANGE": ErrorKind.INVALID_REQUEST,
    "UNIMPLEMENTED": ErrorKind.INVALID_REQUEST,
    # "User location is not supported", "free tier is not available in your country": a property of the key/account,
    # so another credential or provider may succeed.
    "FAILED_PRECONDITION": ErrorKind.PERMISSION,
    "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorKind.PERMISSION,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMIT,
    "UNAVAILABLE": ErrorKind.OVERLOADED,  # "The model is overloaded. Please try again later."
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
    "INTERNAL": ErrorKind.UPSTREAM,
    "UNKNOWN": ErrorKind.UPSTREAM,
    "ABORTED": ErrorKind.UPSTREAM,
    "CANCELLED": ErrorKind.UPSTREAM,
}
"""google.rpc status of a Gemini error body -> IR kind (the HTTP status decides when the body has none)."""

ERROR_STATUSES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "INVALID_ARGUMENT",
    ErrorKind.CONTEXT_LENGTH: "INVALID_ARGUMENT",
    ErrorKind.CONTENT_FILTER: "INVALID_ARGUMENT",
    ErrorKind.UNSUPPORTED: "INVALID_ARGUMENT",
    ErrorKind.REQUEST_TOO_LARGE: "INVALID_ARGUMENT",
    ErrorKind.AUTHENTICATION: "UNAUTHENTICATED",
    ErrorKind.PERMISSION: "PERMISSION_DENIED",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.METHOD_NOT_ALLOWED: "UNIMPLEMENTED",
    ErrorKind.RATE_LIMIT: "RESOURCE_EXHAUSTED",
    ErrorKind.OVERLOADED: "UNAVAILABLE",
    ErrorKind.UNAVAILABLE: "UNAVAILABLE",
    ErrorKind.TIMEOUT: "DEADLINE_EXCEEDED",
    ErrorKind.UPSTREAM: "INTERNAL",
    ErrorKind.INTERNAL: "INTERNAL",
}
"""IR kind -> google.rpc status in the error bodies muxtrio sends to Gemini clients."""

# ---------------------------------------------------------------------------------------------- wire constants
API_VERSION = "v1beta"
VERTEX_API_VERSION = "v1"
SKIP_SIGNATURE = "skip_thought_signature_validator"
_SIGNATURE_ENVELOPE = b"muxtrio-sig:"  # 12 bytes: its base64 is a fixed 16-character prefix without padding
_SIGNATURE_ENVELOPE_B64 = base64.b64encode(_SIGNATURE_ENVELOPE).decode()
_JSON_MIME = "application/json"
_TEXT_MIME = "text/plain"
_IMAGE_MIME_BY_EXTENSION: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
_TOP_LEVEL_EXTRAS: dict[str, str] = {
    "safetySettings": "safety_settings",
    "cachedContent": "cached_content",
    "labels": "labels",
    "serviceTier": "service_tier",
}
"""Gemini-only request fields passed back to Gemini only, through ``extensions["gemini"]`` (lowerCamel name ->
snake_case alias)."""

_GENERATION_FIELDS = frozenset(
    {
        "temperature",
        "topP",
        "top_p",
        "topK",
        "top_k",
        "maxOutputTokens",
        "max_output_tokens",
        "stopSequences",
        "stop_sequences",
        "candidateCount",
        "candidate_count",
        "seed",
        "presencePenalty",
        "presence_penalty",
        "frequencyPenalty",
        "frequency_penalty",
        "responseMimeType",
        "response_mime_type",
        "responseSchema",
        "response_schema",
        "responseJsonSchema",
        "response_json_schema",
        "thinkingConfig",
        "thinking_config",
    }
)
"""``generationConfig`` fields the IR carries; the others (responseModalities, mediaResolution, ...) go to
``extensions["gemini"]["generationConfig"]``."""


# ---------------------------------------------------------------------------------------------- signatures
def _is_base64(value: str) -> bool:
    """Whether ``value`` is canonical base64 in the standard or URL-safe alphabet, padding optional (what
    pydantic's ``val_json_bytes='base64'`` in the python SDK and the API's TYPE_BYTES accept)."""
    if not value or len(value) % 4 == 1:
        return False
    standard = value.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return base64.b64encode(decoded).decode() == padded


def _signature_for_client(signature: str) -> str:
    if _is_base64(signature):
        return signature
    return base64.b64encode(_SIGNATURE_ENVELOPE + signature.encode()).decode()


def _unwrap_signature(signature: str) -> str:
    """Undo :func:`_signature_for_client`. The python SDK sends signatures back in the URL-safe alphabet."""
    if not signature.startswith(_SIGNATURE_ENVELOPE_B64):
        return signature
    urlsafe = signature.replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(urlsafe + "=" * (-len(urlsafe) % 4))
        return raw[len(_SIGNATURE_ENVELOPE) :].decode()
    except (binascii.Error, ValueError):
        return signature


def _signature_for_gemini(signature: str | None) -> str | None:
    return signature if signature is not None and _is_base64(signature) else None


# ---------------------------------------------------------------------------------------------- client JSON readers
def _field(obj: Mapping[str, JSON], camel: str, snake: str) -> JSON:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _items(value: JSON, param: str) -> list[JSON]:
    """A repeated field: a list, or a single object (the REST API accepts both)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return as_array(value, param)


def _strings(value: JSON, param: str) -> tuple[str, ...]:
    return tuple(as_str(item, f"{param}[{i}]") for i, item in enumerate(_items(value, param)))


def _unsupported(message: str, param: str) -> CodecError:
    """IR that a Gemini request cannot express (the provider side; the client side raises ``unsupported``)."""
    return CodecError(message, kind=ErrorKind.UNSUPPORTED, param=param)


def _model_name(model: str) -> str:
    return model.removeprefix("models/")


def _compact(value: JSON) -> str:
    return jsonutil.dumps(value).decode()


# ---------------------------------------------------------------------------------------------- parse_request
def _unsigned_reasoning(part: Part) -> bool:
    return isinstance(part, Reasoning) and part.signature is None


class _ContentsReader:
    """Gemini ``contents`` -> IR messages, pairing every ``functionResponse`` with the id of its ``functionCall``."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._calls = 0  # calls (and orphan results) seen so far: the position behind invented ids
        self._unanswered: dict[str, list[str]] = {}  # function name -> ids of its calls awaiting a result, oldest first

    def read(self, contents: list[JSON], param: str) -> tuple[Message, ...]:
        for i, content in enumerate(contents):
            self._content(as_object(content, f"{param}[{i}]"), f"{param}[{i}]")
        return tuple(self.messages)

    def _content(self, content: JSONObject, param: str) -> None:
        role_name = opt_str(content.get("role"), f"{param}.role") or "user"
        role = ROLES.get(role_name)
        if role is None:
            raise invalid(f"`{param}.role` must be one of {sorted(ROLES)}, not {role_name!r}", f"{param}.role")
        raw_parts = _items(content.get("parts"), f"{param}.parts")
        if not raw_parts:
            raise invalid(f"`{param}.parts` must not be empty", f"{param}.parts")
        run_role: Role | None = None
        run: list[Part] = []
        for j, raw in enumerate(raw_parts):
            part_param = f"{param}.parts[{j}]"
            part = as_object(raw, part_param)
            part_role = role
            if role is Role.USER and _field(part, "functionResponse", "function_response") is not None:
                part_role = Role.TOOL
            if part_role is not run_role:
                self._flush(run_role, run)
                run_role, run = part_role, []
            parsed = self._part(part, part_param, role)
            if part.get("thought") is True and parsed and run and _unsigned_reasoning(run[-1]):
                # Consecutive thought parts are one thinking block whose signature comes on its last part (as a
                # Gemini stream, or our encoder, splits them): join them, so the signature stays with its text.
                previous = run[-1]
                assert isinstance(previous, Reasoning)
                head = parsed[0]
                assert isinstance(head, Reasoning)
                run[-1] = Reasoning(previous.text + head.text, head.signature, previous.id)
                parsed = parsed[1:]
            run.extend(parsed)
        self._flush(run_role, run)

    def _flush(self, role: Role | None, parts: list[Part]) -> None:
        if role is not None and parts:
            self.messages.append(Message(role, tuple(parts)))

    def _part(self, part: JSONObject, param: str, role: Role) -> list[Part]:
        signature = _read_signature(part, param)
        call = _field(part, "functionCall", "function_call")
        if call is not None:
            if role is not Role.ASSISTANT:
                raise invalid(f"`{param}`: functionCall is only allowed in a model turn", param)
            return [self._function_call(as_object(call, f"{param}.functionCall"), signature, f"{param}.functionCall")]
        result = _field(part, "functionResponse", "function_response")
        if result is not None:
            if role is Role.ASSISTANT:
                raise invalid(f"`{param}`: functionResponse is not allowed in a model turn", param)
            response_param = f"{param}.functionResponse"
            return [self._function_response(as_object(result, response_param), response_param)]
        text = part.get("text")
        if text is not None:
            text = as_str(text, f"{param}.text")
            if opt_bool(part.get("thought"), f"{param}.thought"):
                return [Reasoning(text, signature)] if text or signature is not None else []
            carried: list[Part] = [] if signature is None else [Reasoning("", signature)]
            return [*carried, Text(text)] if text else carried
        blob = _field(part, "inlineData", "inline_data")
        if blob is not None:
            return [_read_blob(as_object(blob, f"{param}.inlineData"), f"{param}.inlineData")]
        file_data = _field(part, "fileData", "file_data")
        if file_data is not None:
            return [_read_file_data(as_object(file_data, f"{param}.fileData"), f"{param}.fileData")]
        raise unsupported(f"`{param}` has no muxtrio equivalent (fields: {', '.join(sorted(part))})", param)

    def _function_call(self, call: JSONObject, signature: str | None, param: str) -> ToolCall:
        name = as_str(call.get("name"), f"{param}.name")
        args = opt_object(call.get("args"), f"{param}.args")
        call_id = opt_str(call.get("id"), f"{param}.id") or self._invent_id()
        self._unanswered.setdefault(name, []).append(call_id)
        return ToolCall(call_id, name, _compact(args if args is not None else {}), signature)

    def _function_response(self, result: JSONObject, param: str) -> ToolResult:
        name = as_str(result.get("name"), f"{param}.name")
        response = opt_object(result.get("response"), f"{param}.response") or {}
        call_id = opt_str(result.get("id"), f"{param}.id")
        waiting = self._unanswered.get(name, [])
        if call_id is None:
            call_id = waiting.pop(0) if waiting else self._invent_id()
        elif call_id in waiting:
            waiting.remove(call_id)
        content: list[Text | Image] = [Text(_compact(response))]
        for i, raw in enumerate(_items(result.get("parts"), f"{param}.parts")):
            content.append(_tool_result_media(as_object(raw, f"{param}.parts[{i}]"), f"{param}.parts[{i}]"))
        is_error = "error" in response and "output" not in response
        return ToolResult(call_id, tuple(content), name=name, is_error=is_error)

    def _invent_id(self) -> str:
        call_id = ids.tool_call_id(EXT, self._calls)
        self._calls += 1
        return call_id


def _read_signature(part: JSONObject, param: str) -> str | None:
    signature = opt_str(_field(part, "thoughtSignature", "thought_signature"), f"{param}.thoughtSignature")
    if signature is None or signature == SKIP_SIGNATURE:  # the sentinel is re-added by emit_request where needed
        return None
    return _unwrap_signature(signature)


def _standard_base64(data: str) -> str:
    """Gemini accepts (and google-genai sends, for ``Part.from_bytes``) URL-safe base64; OpenAI, Anthropic and
    Ollama accept only the standard alphabet with padding. The IR keeps the standard form."""
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    return data + "=" * (-len(data) % 4)


def _read_blob(blob: JSONObject, param: str) -> Image | File:
    mime = as_str(_field(blob, "mimeType", "mime_type"), f"{param}.mimeType")
    data = _standard_base64(as_str(blob.get("data"), f"{param}.data"))
    return Image(data=data, mime_type=mime) if mime.startswith("image/") else File(data=data, mime_type=mime)


def _read_file_data(file_data: JSONObject, param: str) -> Image | File:
    uri = as_str(_field(file_data, "fileUri", "file_uri"), f"{param}.fileUri")
    mime = opt_str(_field(file_data, "mimeType", "mime_type"), f"{param}.mimeType")
    if mime is not None and mime.startswith("image/"):
        return Image(url=uri, mime_type=mime)
    return File(url=uri, mime_type=mime)


def _tool_result_media(part: JSONObject, param: str) -> Image:
    blob = _field(part, "inlineData", "inline_data")
    file_data = _field(part, "fileData", "file_data")
    media: Image | File
    if blob is not None:
        media = _read_blob(as_object(blob, f"{param}.inlineData"), f"{param}.inlineData")
    elif file_data is not None:
        media = _read_file_data(as_object(file_data, f"{param}.fileData"), f"{param}.fileData")
    else:
        raise unsupported(f"`{param}` has no muxtrio equivalent", param)
    if not isinstance(media, Image):
        raise unsupported(f"`{param}`: tool results can carry text and images only", param)
    return media


def _read_system(value: JSON, param: str) -> tuple[Text, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # a bare string: tolerated, as the SDKs turn it into one text part anyway
        return (Text(value),) if value else ()
    content = as_object(value, param)
    texts: list[Text] = []
    for i, raw in enumerate(_items(content.get("parts"), f"{param}.parts")):
        part = as_object(raw, f"{param}.parts[{i}]")
        text = part.get("text")
        if text is None:
            part_param = f"{param}.parts[{i}]"
            raise invalid(f"`{part_param}` must be a text part (a system instruction holds text only)", part_param)
        if text := as_str(text, f"{param}.parts[{i}].text"):
            texts.append(Text(text))
    return tuple(texts)


def _read_tools(value: JSON, param: str) -> tuple[tuple[Tool, ...], list[JSON]]:
    """Function declarations, and the built-in tools (googleSearch, codeExecution, urlContext...) kept aside."""
    tools: list[Tool] = []
    builtins: list[JSON] = []
    for i, raw in enumerate(_items(value, param)):
        tool = as_object(raw, f"{param}[{i}]")
        declarations = _field(tool, "functionDeclarations", "function_declarations")
        for j, decl in enumerate(_items(declarations, f"{param}[{i}].functionDeclarations")):
            decl_param = f"{param}[{i}].functionDeclarations[{j}]"
            tools.append(_read_declaration(as_object(decl, decl_param), decl_param))
        others = {k: v for k, v in tool.items() if k not in ("functionDeclarations", "function_declarations")}
        if others:
            builtins.append(others)
    return tuple(tools), builtins


def _read_declaration(decl: JSONObject, param: str) -> Tool:
    schema = _field(decl, "parametersJsonSchema", "parameters_json_schema")
    if schema is None:
        schema = decl.get("parameters")
    parameters = opt_object(schema, f"{param}.parameters")
    return Tool(
        name=as_str(decl.get("name"), f"{param}.name"),
        description=opt_str(decl.get("description"), f"{param}.description"),
        # The google-genai SDK sends upper-case OpenAPI types (OBJECT, STRING) that other providers reject.
        parameters=None if parameters is None else object_or_empty(normalize_schema(parameters)),
    )


def _read_tool_config(value: JSON, param: str, ext: JSONObject) -> ToolChoice | None:
    config = opt_object(value, param)
    if config is None:
        return None
    others = {k: v for k, v in config.items() if k not in ("functionCallingConfig", "function_calling_config")}
    if others:
        ext["toolConfig"] = others
    calling = opt_object(
        _field(config, "functionCallingConfig", "function_calling_config"), f"{param}.functionCallingConfig"
    )
    if calling is None:
        return None
    mode_name = (opt_str(calling.get("mode"), f"{param}.functionCallingConfig.mode") or "AUTO").upper()
    mode = TOOL_MODES.get(mode_name)
    if mode is None:
        mode_param = f"{param}.functionCallingConfig.mode"
        raise invalid(f"`{mode_param}` must be one of {sorted(TOOL_MODES)}", mode_param)
    names = _strings(
        _field(calling, "allowedFunctionNames", "allowed_function_names"),
        f"{param}.functionCallingConfig.allowedFunctionNames",
    )
    if mode_name == "VALIDATED":
        ext["functionCallingMode"] = mode_name
    if mode is ToolChoiceMode.REQUIRED and len(names) == 1:
        return ToolChoice(ToolChoiceMode.TOOL, names[0])
    if names:
        ext["allowedFunctionNames"] = list(names)
    return ToolChoice(mode)


def _read_thinking(value: JSON, param: str, ext: JSONObject) -> Thinking:
    config = opt_object(value, param)
    if config is None:
        return Thinking()
    budget = opt_int(_field(config, "thinkingBudget", "thinking_budget"), f"{param}.thinkingBudget")
    # Gemini's default is no thoughts in the answer: say so, so that a Gemini client gets none from any provider.
    include = opt_bool(_field(config, "includeThoughts", "include_thoughts"), f"{param}.includeThoughts") or False
    level_name = opt_str(_field(config, "thinkingLevel", "thinking_level"), f"{param}.thinkingLevel")
    if budget is not None:
        return Thinking(enabled=budget != 0, budget_tokens=budget, include_thoughts=include)
    if level_name is not None:
        effort = THINKING_LEVELS.get(level_name.upper())
        if effort is None:
            raise invalid(f"`{param}.thinkingLevel` must be one of {sorted(THINKING_LEVELS)}", f"{param}.thinkingLevel")
        ext["thinkingLevel"] = level_name.upper()
        return Thinking(enabled=True, effort=effort, include_thoughts=include)
    return Thinking(include_thoughts=include)


@dataclass(slots=True)
class _GenerationOptions:
    sampling: Sampling = field(default_factory=Sampling)
    thinking: Thinking = field(default_factory=Thinking)
    response_format: ResponseFormat | None = None


def _read_generation_config(value: JSON, param: str, ext: JSONObject) -> _GenerationOptions:
    config = opt_object(value, param)
    if config is None:
        return _GenerationOptions()

    def get(camel: str, snake: str) -> JSON:
        return _field(config, camel, snake)

    n = opt_int(get("candidateCount", "candidate_count"), f"{param}.candidateCount")
    if n is not None and n > 1:
        raise unsupported(
            "candidateCount > 1 is not supported (an answer holds one candidate)", f"{param}.candidateCount"
        )
    sampling = Sampling(
        temperature=opt_number(config.get("temperature"), f"{param}.temperature"),
        top_p=opt_number(get("topP", "top_p"), f"{param}.topP"),
        top_k=opt_int(get("topK", "top_k"), f"{param}.topK"),
        max_tokens=opt_int(get("maxOutputTokens", "max_output_tokens"), f"{param}.maxOutputTokens"),
        stop=_strings(get("stopSequences", "stop_sequences"), f"{param}.stopSequences"),
        seed=opt_int(config.get("seed"), f"{param}.seed"),
        presence_penalty=opt_number(get("presencePenalty", "presence_penalty"), f"{param}.presencePenalty"),
        frequency_penalty=opt_number(get("frequencyPenalty", "frequency_penalty"), f"{param}.frequencyPenalty"),
        n=n,
    )
    extras = {k: v for k, v in config.items() if k not in _GENERATION_FIELDS}
    mime = opt_str(get("responseMimeType", "response_mime_type"), f"{param}.responseMimeType")
    schema = get("responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = get("responseSchema", "response_schema")
    response_format: ResponseFormat | None = None
    if mime == _TEXT_MIME and schema is None:
        response_format = ResponseFormat(ResponseFormatType.TEXT)
    elif mime in (None, _JSON_MIME) and schema is not None:
        schema_object = object_or_empty(normalize_schema(as_object(schema, f"{param}.responseSchema")))
        response_format = ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=schema_object)
    elif mime == _JSON_MIME:
        response_format = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    elif mime is not None:  # text/x.enum and other Gemini-only output types: Gemini only
        extras.update({k: v for k, v in config.items() if k in _RESPONSE_FORMAT_FIELDS})
    if extras:
        ext["generationConfig"] = extras
    thinking = _read_thinking(get("thinkingConfig", "thinking_config"), f"{param}.thinkingConfig", ext)
    return _GenerationOptions(sampling, thinking, response_format)


_RESPONSE_FORMAT_FIELDS = frozenset(
    {
        "responseMimeType",
        "response_mime_type",
        "responseSchema",
        "response_schema",
        "responseJsonSchema",
        "response_json_schema",
    }
)


def _parse_request(body: bytes, hints: RequestHints) -> Request:
    data = jsonutil.loads_object(body)
    prefix = ""
    if hints.endpoint == "count_tokens":
        # countTokens takes {contents} or {generateContentRequest: {model, contents, ...}}.
        inner = _field(data, "generateContentRequest", "generate_content_request")
        if inner is not None:
            data = as_object(inner, "generateContentRequest")
            prefix = "generateContentRequest."
    model = hints.model or opt_str(data.get("model"), f"{prefix}model")
    if not model:
        raise invalid("`model` is required (in the URL path)", "model")
    contents = _items(data.get("contents"), f"{prefix}contents")
    if not contents:
        raise invalid(f"`{prefix}contents` is required and must not be empty", f"{prefix}contents")
    ext: JSONObject = {}
    if hints.endpoint:
        ext["endpoint"] = hints.endpoint
    record_client_headers(ext, hints)
    messages = _ContentsReader().read(contents, f"{prefix}contents")
    system = _read_system(_field(data, "systemInstruction", "system_instruction"), f"{prefix}systemInstruction")
    tools, builtins = _read_tools(data.get("tools"), f"{prefix}tools")
    if builtins:
        ext["tools"] = builtins
    tool_choice = _read_tool_config(_field(data, "toolConfig", "tool_config"), f"{prefix}toolConfig", ext)
    generation = _read_generation_config(
        _field(data, "generationConfig", "generation_config"), f"{prefix}generationConfig", ext
    )
    for camel, snake in _TOP_LEVEL_EXTRAS.items():
        value = _field(data, camel, snake)
        if value is not None:
            ext[camel] = value
    return Request(
        model=_model_name(model),
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        sampling=generation.sampling,
        thinking=generation.thinking,
        response_format=generation.response_format,
        stream=bool(hints.stream),
        include_usage=True,  # Gemini streams always carry usage, and the last chunk must have it
        extensions={EXT: ext} if ext else {},
    )


# ---------------------------------------------------------------------------------------------- IR -> Gemini parts
class _PartWriter:
    """IR parts -> Gemini parts. A signature carrier (``Reasoning("", signature)``) goes onto the next text part,
    or becomes ``{"text": "", "thoughtSignature"}`` when something else (or nothing) follows."""

    def __init__(self) -> None:
        self.parts: list[JSONObject] = []
        self._carried: str | None = None

    def carry(self, signature: str) -> None:
        self._flush()
        self._carried = signature

    def text(self, text: str) -> None:
        if not text and self._carried is None:
            return  # Gemini rejects empty text parts
        part: JSONObject = {"text": text}
        if self._carried is not None:
            part["thoughtSignature"], self._carried = self._carried, None
        self.parts.append(part)

    def add(self, part: JSONObject) -> None:
        self._flush()
        self.parts.append(part)

    def done(self) -> list[JSONObject]:
        self._flush()
        return self.parts

    def _flush(self) -> None:
        if self._carried is not None:
            self.parts.append({"text": "", "thoughtSignature": self._carried})
            self._carried = None


def _thought_part(text: str, signature: str | None) -> JSONObject:
    part: JSONObject = {"text": text, "thought": True}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _function_call_part(call: ToolCall, signature: str | None, param: str, error_kind: ErrorKind) -> JSONObject:
    part: JSONObject = {
        "functionCall": {"id": call.id, "name": call.name, "args": _arguments(call.arguments, param, error_kind)}
    }
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _arguments(arguments: str, param: str, error_kind: ErrorKind) -> JSONObject:
    """Gemini carries tool arguments as an object, never as text."""
    if not arguments.strip():
        return {}
    try:
        value = jsonutil.loads(arguments)
    except jsonutil.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise CodecError(
            "tool call arguments are not a JSON object, which Gemini requires", kind=error_kind, param=param
        )
    return value


def _answer_parts(parts: Iterable[Part]) -> list[JSONObject]:
    """An IR answer as the parts a Gemini client reads (thoughts shown, signatures made base64)."""
    writer = _PartWriter()
    for i, part in enumerate(parts):
        match part:
            case Text(text=text):
                writer.text(text)
            case Reasoning(text=text, signature=signature):
                client_signature = None if signature is None else _signature_for_client(signature)
                if text:
                    writer.add(_thought_part(text, client_signature))
                elif client_signature is not None:
                    writer.carry(client_signature)
            case ToolCall(signature=signature):
                client_signature = None if signature is None else _signature_for_client(signature)
                writer.add(_function_call_part(part, client_signature, f"parts[{i}]", ErrorKind.UPSTREAM))
            case RedactedReasoning() | Image() | File() | ToolResult():
                pass  # Anthropic-only opaque data, and input-only parts: nothing a Gemini answer can hold
            case _:
                assert_never(part)
    return writer.done()


def _usage_metadata(usage: Usage) -> JSONObject:
    meta: JSONObject = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cache_read_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_tokens
    return meta


def _candidate(parts: list[JSONObject], finish: FinishReason | None) -> JSONObject:
    candidate: JSONObject = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = FINISH_REASONS_OUT[finish]
    return candidate


def _error_body(error: MuxError) -> JSONObject:
    body: JSONObject = {"code": error.status, "message": error.message, "status": ERROR_STATUSES[error.kind]}
    if error.retry_after is not None:
        body["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{error.retry_after:g}s"}
        ]
    return {"error": body}


# ---------------------------------------------------------------------------------------------- stream encoder
@dataclass(slots=True)
class _PendingCall:
    index: int
    id: str
    name: str
    signature: str | None
    fragments: list[str] = field(default_factory=list)


class _GeminiEncoder(StreamEncoder):
    """IR events -> ``streamGenerateContent`` chunks: one part per chunk; a tool call is sent whole at its end;
    the last chunk carries finishReason and usageMetadata (written by ``finish()``, since usage may follow Finish).
    Framed as SSE with CRLF, or as one JSON array; a mid-stream error is a bare JSON line in SSE (module docstring)."""

    def __init__(self, info: StreamInfo, *, json_array: bool) -> None:
        self.content_type = _JSON_MIME if json_array else "text/event-stream"
        self.keepalive = None  # see the module docstring: a comment would break the SDKs
        self.framer = JSONArrayFramer() if json_array else SSEFramer(line_end=b"\r\n", error_lines=True)
        # Each chunk is {"candidates":[{"content":{"parts":[...],"role":"model"},"index":0}], modelVersion,
        # responseId}; only the parts change, so the rest is encoded once.
        self._head = b'{"candidates":[{"content":{"parts":['
        self._tail = (
            b'],"role":"model"},"index":0}],"modelVersion":'
            + jsonutil.dumps(info.model)
            + b',"responseId":'
            + jsonutil.dumps(info.id)
            + b"}"
        )
        self._model = info.model
        self._id = info.id
        self._usage = Usage()
        self._finish: FinishReason | None = None
        self._call: _PendingCall | None = None
        self._carried: str | None = None  # a text-part signature waiting for the next text delta
        self._thought_block: int | None = None  # the reasoning block whose text was sent as thought parts

    def advance(self, event: Event) -> None:
        if type(event) is TextDelta and self._carried is None:
            return  # a text part changes nothing the encoder keeps
        self.frames(event)

    def frames(self, event: Event) -> tuple[Frame, ...]:
        match event:
            case Start():
                return ()
            case TextDelta(text=text):
                if not text:
                    return ()
                part: JSONObject = {"text": text}
                if self._carried is not None:
                    part["thoughtSignature"], self._carried = self._carried, None
                return self._parts_chunk(part)
            case ReasoningDelta(index=index, text=text):
                if not text:
                    return ()
                self._thought_block = index
                return self._flush_carried() + self._parts_chunk({"text": text, "thought": True})
            case ReasoningSignature(index=index, signature=signature):
                out = self._flush_carried()
                if index == self._thought_block:
                    return out + self._parts_chunk(_thought_part("", _signature_for_client(signature)))
                self._carried = _signature_for_client(signature)
                return out
            case RedactedReasoningBlock():
                return ()  # Anthropic-only opaque data
            case ToolCallStart(index=index, id=call_id, name=name, signature=signature):
                out = self._flush_carried() + self._flush_call()
                self._call = _PendingCall(index, call_id, name, signature)
                return out
            case ToolCallDelta(index=index, arguments=arguments):
                if self._call is None or self._call.index != index:
                    raise CodecError(f"tool call delta for block {index} without its start", kind=ErrorKind.INTERNAL)
                self._call.fragments.append(arguments)
                return ()
            case ToolCallEnd():
                return self._flush_call()
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merge(usage)
                return ()
            case Finish(reason=reason):
                self._finish = reason
                return ()
            case _:
                assert_never(event)

    def final_frames(self) -> tuple[Frame, ...]:
        out = self._flush_carried() + self._flush_call()
        final: JSONObject = {
            "candidates": [_candidate([], self._finish or FinishReason.STOP)],
            "usageMetadata": _usage_metadata(self._usage),
            "modelVersion": self._model,
            "responseId": self._id,
        }
        return (*out, (None, jsonutil.dumps(final)))

    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        return ((None, jsonutil.dumps(_error_body(error))),)

    def _parts_chunk(self, part: JSONObject) -> tuple[Frame, ...]:
        return ((None, self._head + jsonutil.dumps(part) + self._tail),)

    def _flush_carried(self) -> tuple[Frame, ...]:
        if self._carried is None:
            return ()
        part: JSONObject = {"text": "", "thoughtSignature": self._carried}
        self._carried = None
        return self._parts_chunk(part)

    def _flush_call(self) -> tuple[Frame, ...]:
        call, self._call = self._call, None
        if call is None:
            return ()
        signature = None if call.signature is None else _signature_for_client(call.signature)
        tool_call = ToolCall(call.id, call.name, "".join(call.fragments))
        return self._parts_chunk(_function_call_part(tool_call, signature, "arguments", ErrorKind.UPSTREAM))


# ---------------------------------------------------------------------------------------------- emit_request
class _HistoryWriter:
    """IR messages -> Gemini ``contents``: alternating user/model turns, tool results named after their calls."""

    def __init__(self) -> None:
        self.turns: list[JSONObject] = []
        self._call_names: dict[str, str] = {}

    def write(self, messages: Iterable[Message]) -> list[JSONObject]:
        for i, message in enumerate(messages):
            if message.role is Role.SYSTEM:
                continue  # joined to systemInstruction
            parts = self._parts(message, f"messages[{i}]")
            if not parts:
                continue
            role = ROLES_OUT[message.role]
            last = self.turns[-1] if self.turns else None
            if last is not None and last["role"] == role and isinstance(last["parts"], list):
                last["parts"].extend(parts)
            else:
                self.turns.append({"role": role, "parts": list(parts)})
        for turn in self.turns:
            if turn["role"] == "model":
                _sign_first_call(turn)
        return self.turns

    def _parts(self, message: Message, param: str) -> list[JSONObject]:
        writer = _PartWriter()
        for j, part in enumerate(message.parts):
            part_param = f"{param}.parts[{j}]"
            match part:
                case Text(text=text):
                    writer.text(text)
                case Reasoning(text=text, signature=signature):
                    gemini_signature = _signature_for_gemini(signature)
                    if gemini_signature is None:
                        continue  # unsigned or foreign-format thinking: Gemini cannot use it
                    if text:
                        writer.add(_thought_part(text, gemini_signature))
                    else:
                        writer.carry(gemini_signature)
                case RedactedReasoning():
                    continue  # Anthropic-only opaque data
                case ToolCall(id=call_id, name=name, signature=signature):
                    self._call_names[call_id] = name
                    signed = _signature_for_gemini(signature)
                    writer.add(_function_call_part(part, signed, part_param, ErrorKind.UNSUPPORTED))
                case ToolResult():
                    for gemini_part in self._tool_result(part, part_param):
                        writer.add(gemini_part)
                case Image() | File():
                    writer.add(_media_part(part, part_param))
                case _:
                    assert_never(part)
        return writer.done()

    def _tool_result(self, result: ToolResult, param: str) -> list[JSONObject]:
        name = result.name or self._call_names.get(result.call_id)
        if name is None:
            raise CodecError(
                f"tool result {result.call_id!r} has no name and answers no earlier tool call; Gemini needs the name",
                kind=ErrorKind.INVALID_REQUEST,
                param=param,
            )
        text = "\n".join(p.text for p in result.content if isinstance(p, Text))
        function_response: JSONObject = {
            "id": result.call_id,
            "name": name,
            "response": _tool_response(text, result.is_error),
        }
        images = [_media_part(p, f"{param}.content") for p in result.content if isinstance(p, Image)]
        return [{"functionResponse": function_response}, *images]


def _tool_response(text: str, is_error: bool) -> JSONObject:
    """A tool result's text as the ``response`` object Gemini requires."""
    value: JSON = text
    if text.lstrip().startswith("{"):
        try:
            value = jsonutil.as_json(jsonutil.loads(text))
        except jsonutil.JSONDecodeError:
            value = text
    if isinstance(value, dict):
        return value if not is_error or "error" in value else {"error": value}
    return {"error": text} if is_error else {"result": text}


def _sign_first_call(turn: JSONObject) -> None:
    """Gemini 3 rejects a model turn whose function calls carry no signature: mark it as coming from elsewhere."""
    parts = turn["parts"]
    if not isinstance(parts, list):
        return
    calls = [p for p in parts if isinstance(p, dict) and "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _media_part(media: Image | File, param: str) -> JSONObject:
    """An image or file as ``inlineData`` (base64, data URLs) or ``fileData`` (any other URL). Gemini fetches
    Google-hosted URIs (File API, YouTube) reliably; other http(s) URLs may be rejected by the API."""
    if isinstance(media, File) and media.file_id is not None and media.url is None and media.data is None:
        raise _unsupported("provider file ids cannot be sent to Gemini; send the data or a URL", param)
    data, mime = media.data, media.mime_type
    if data is None and media.url is not None:
        parsed = parse_data_url(media.url)
        if parsed is None:
            return {"fileData": _file_data(media, media.url)}
        mime, data = parsed
    if data is None:
        raise CodecError("an image or file needs data or a URL", kind=ErrorKind.INVALID_REQUEST, param=param)
    if mime is None:
        raise CodecError("inline data needs a MIME type for Gemini", kind=ErrorKind.INVALID_REQUEST, param=param)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_data(media: Image | File, url: str) -> JSONObject:
    file_data: JSONObject = {"fileUri": url}
    mime = media.mime_type
    if mime is None and isinstance(media, Image):
        mime = _mime_from_url(url)  # an image URL usually names its type; Gemini wants one
    if mime is not None:
        file_data["mimeType"] = mime
    return file_data


def _mime_from_url(url: str) -> str | None:
    path = url.split("?", 1)[0].lower()
    dot = path.rfind(".")
    return _IMAGE_MIME_BY_EXTENSION.get(path[dot:]) if dot >= 0 else None


def _system_instruction(request: Request) -> JSONObject | None:
    texts = [part.text for part in request.system]
    for i, message in enumerate(request.messages):
        if message.role is not Role.SYSTEM:
            continue
        for j, part in enumerate(message.parts):
            if not isinstance(part, Text):
                raise _unsupported("a Gemini system instruction holds text only", f"messages[{i}].parts[{j}]")
            texts.append(part.text)
    parts: list[JSON] = [{"text": text} for text in texts if text]
    return {"parts": parts} if parts else None


def _function_declarations(tools: Iterable[Tool]) -> list[JSON]:
    declarations: list[JSON] = []
    for tool in tools:
        declaration: JSONObject = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        parameters = None if tool.parameters is None else object_or_empty(gemini_schema(tool.parameters))
        # Gemini rejects an OBJECT schema without properties ("should be non-empty for OBJECT type"): a function
        # without parameters simply has no schema.
        if parameters and (parameters.get("type") != "OBJECT" or parameters.get("properties")):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def _tool_config(request: Request, ext: Mapping[str, JSON]) -> JSONObject | None:
    config: JSONObject = dict(_ext_object(ext, "toolConfig"))
    choice = request.tool_choice
    if choice is not None and request.tools:
        calling: JSONObject = {"mode": TOOL_MODES_OUT[choice.mode]}
        if choice.mode is ToolChoiceMode.AUTO and ext.get("functionCallingMode") == "VALIDATED":
            calling["mode"] = "VALIDATED"
        names = ext.get("allowedFunctionNames")
        if choice.mode is ToolChoiceMode.TOOL and choice.name:
            calling["allowedFunctionNames"] = [choice.name]
        elif calling["mode"] in ("ANY", "VALIDATED") and isinstance(names, list):
            calling["allowedFunctionNames"] = names
        config["functionCallingConfig"] = calling
    return config or None


def _ext_object(ext: Mapping[str, JSON], key: str) -> JSONObject:
    value = ext.get(key)
    return value if isinstance(value, dict) else {}


def _generation_config(request: Request, ext: Mapping[str, JSON]) -> JSONObject:
    config: JSONObject = dict(_ext_object(ext, "generationConfig"))
    sampling = request.sampling
    if sampling.n is not None:
        if sampling.n > 1:
            raise _unsupported("n > 1 is not supported toward Gemini (an answer holds one candidate)", "n")
        config["candidateCount"] = sampling.n
    for key, value in (
        ("temperature", sampling.temperature),
        ("topP", sampling.top_p),
        ("topK", sampling.top_k),
        ("maxOutputTokens", sampling.max_tokens),
        ("seed", sampling.seed),
        ("presencePenalty", sampling.presence_penalty),
        ("frequencyPenalty", sampling.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    if sampling.stop:
        config["stopSequences"] = list(sampling.stop)
    response_format = request.response_format
    if response_format is not None:
        if response_format.type is ResponseFormatType.TEXT:
            config["responseMimeType"] = _TEXT_MIME
        else:
            config["responseMimeType"] = _JSON_MIME
            if response_format.type is ResponseFormatType.JSON_SCHEMA and response_format.schema is not None:
                config["responseSchema"] = gemini_schema(response_format.schema)
    thinking = _thinking_config(request.thinking, ext)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(thinking: Thinking, ext: Mapping[str, JSON]) -> JSONObject:
    config: JSONObject = {}
    level = ext.get("thinkingLevel")
    if isinstance(level, str) and thinking.enabled is not False and thinking.budget_tokens is None:
        config["thinkingLevel"] = level
    elif thinking.enabled is not False and thinking.budget_tokens is not None:
        # The client's own number: budget_for's 1024 floor is Anthropic's limit, not Gemini's.
        config["thinkingBudget"] = thinking.budget_tokens
    else:
        budget = budget_for(thinking)
        if budget is not None:
            config["thinkingBudget"] = budget
    include = thinking.include_thoughts
    if include is None and config and config.get("thinkingBudget") != 0:
        include = True
    if include is not None:
        config["includeThoughts"] = include
    return config


def _contents_and_context(request: Request) -> tuple[list[JSONObject], JSONObject]:
    """The ``contents`` and the request fields around them that also matter for counting (system, tools)."""
    ext = request.extensions.get(EXT) or {}
    contents = _HistoryWriter().write(request.messages)
    context: JSONObject = {}
    system = _system_instruction(request)
    if system is not None:
        context["systemInstruction"] = system
    tools: list[JSON] = []
    declarations = _function_declarations(request.tools)
    if declarations:
        tools.append({"functionDeclarations": declarations})
    builtins = ext.get("tools")
    if isinstance(builtins, list):
        tools.extend(builtins)
    for hosted in request.hosted_tools:
        if hosted.kind is HostedToolKind.WEB_SEARCH and not any(
            isinstance(t, dict) and ("googleSearch" in t or "google_search" in t) for t in tools
        ):
            tools.append({"googleSearch": {}})
    if tools:
        context["tools"] = tools
    tool_config = _tool_config(request, ext)
    if tool_config is not None:
        context["toolConfig"] = tool_config
    return contents, context


def _generate_body(request: Request) -> JSONObject:
    ext = request.extensions.get(EXT) or {}
    contents, context = _contents_and_context(request)
    body: JSONObject = {"contents": list(contents), **context}
    generation = _generation_config(request, ext)
    if generation:
        body["generationConfig"] = generation
    for key in _TOP_LEVEL_EXTRAS:
        if key in ext:
            body[key] = ext[key]
    return body


_COLLECTIONS = ("models", "tunedModels")


def _model_resource(model: str) -> str:
    """The resource name (``models/{m}``) as request bodies carry it; tuned models keep their own collection."""
    collection, sep, rest = model.partition("/")
    if sep and collection in _COLLECTIONS and rest and "/" not in rest:
        return model
    return f"models/{model}"


def _model_path(model: str) -> str:
    """The resource name as a URL path: the collection, then the model id percent-encoded as one segment (a ``/``,
    ``..``, ``?`` or ``#`` in a model name can never reach another endpoint)."""
    collection, sep, rest = model.partition("/")
    if sep and collection in _COLLECTIONS and rest and "/" not in rest:
        return f"{collection}/{path_segment(rest)}"
    return f"models/{path_segment(model)}"


WEB_SEARCH_BUILTINS = frozenset({"googleSearch", "google_search", "googleSearchRetrieval", "google_search_retrieval"})
"""Gemini built-in tools that search the web (the neutral web-search kind)."""


def adapt_gemini_request(request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
    """A Gemini client's request made fit for another format: built-in tools (``googleSearch``, ``codeExecution``,
    ``urlContext``...) become neutral hosted tools or are dropped (``policy``); Gemini-only top-level fields
    (``safetySettings``, ``cachedContent``...) are reported as ignored."""
    ext = request.extensions.get(EXT) or {}
    ignored = tuple(key for key in _TOP_LEVEL_EXTRAS if key in ext)
    builtins = ext.get("tools")
    if not isinstance(builtins, list) or not builtins:
        return Adaptation(request, ignored=ignored)
    candidates: list[tuple[str, HostedTool | None]] = []
    for entry in builtins:
        for key in entry if isinstance(entry, dict) else ():
            neutral = HostedTool(HostedToolKind.WEB_SEARCH) if key in WEB_SEARCH_BUILTINS else None
            candidates.append((key, neutral))
    mapped, dropped = translate_hosted(candidates, target, policy)
    rest = {key: value for key, value in ext.items() if key != "tools"}
    adapted = replace(
        request, hosted_tools=(*request.hosted_tools, *mapped), extensions={**request.extensions, EXT: rest}
    )
    return Adaptation(adapted, dropped=tuple(dropped), ignored=ignored)


def _headers(target: Target, request: Request) -> tuple[tuple[str, str], ...]:
    headers = [("content-type", _JSON_MIME), *client_protocol_headers(request, Format.GEMINI)]
    if target.api_key:
        headers.append(("x-goog-api-key", target.api_key))
    return tuple(headers)


# ---------------------------------------------------------------------------------------------- provider answers
class _AnswerReader:
    """GenerateContentResponse objects (stream chunks, or one whole answer) -> IR events.

    Consecutive text parts continue one text block and consecutive thought parts one reasoning block (until it is
    signed); every function call is a block of its own. Usage is repeated, cumulative, in every chunk: an update is
    emitted only when it changes. A chunk with ``finishReason`` is terminal; usage in it or after it is still read.
    """

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self.started = False
        self.finished = False
        self._next_index = 0
        self._open_kind = ""  # "text" | "thought" | "" (no block that a following part may continue)
        self._open_index = -1
        self._calls = 0
        self._usage: Usage | None = None

    def chunk(self, chunk: Any, events: list[Event]) -> None:
        if not isinstance(chunk, dict):
            raise CodecError(f"Gemini answer is not an object: {str(chunk)[:200]}")
        error = chunk.get("error")
        if error is not None:
            raise _upstream_error(error, 0)
        if not self.started:
            self.started = True
            response_id = chunk.get("responseId")
            model = chunk.get("modelVersion")
            events.append(
                Start(
                    response_id if isinstance(response_id, str) and response_id else f"gemini-{self._seed}",
                    model if isinstance(model, str) else "",
                )
            )
        finish: FinishReason | None = None
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates:
            finish = self._candidate(candidates[0], events)
        else:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                finish = FinishReason.CONTENT_FILTER  # the prompt was blocked: no candidate at all
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage_update(usage, events)
        if finish is not None and not self.finished:
            self.finished = True
            events.append(Finish(finish))

    def finish_unterminated(self, events: list[Event]) -> None:
        """A whole (non-stream) answer that names no finishReason: it did arrive complete."""
        if self.started and not self.finished:
            self.finished = True
            events.append(Finish(FinishReason.TOOL_CALLS if self._calls else FinishReason.STOP))

    def _candidate(self, candidate: Any, events: list[Event]) -> FinishReason | None:
        if not isinstance(candidate, dict):
            raise CodecError("Gemini candidate is not an object")
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if not isinstance(part, dict):
                    raise CodecError("Gemini part is not an object")
                self._part(part, events)
        reason = candidate.get("finishReason")
        if not isinstance(reason, str) or not reason:
            return None
        finish = FINISH_REASONS.get(reason, FinishReason.STOP)
        return FinishReason.TOOL_CALLS if finish is FinishReason.STOP and self._calls else finish

    def _part(self, part: dict[str, Any], events: list[Event]) -> None:
        signature = part.get("thoughtSignature")
        if signature is not None:
            if not isinstance(signature, str):
                raise CodecError("Gemini thoughtSignature is not a string")
            signature = _unwrap_signature(signature)
        call = part.get("functionCall")
        if call is not None:
            self._function_call(call, signature, events)
            return
        text = part.get("text")
        if text is None:
            text = _rendered_code(part)
        elif not isinstance(text, str):
            raise CodecError("Gemini text part is not a string")
        if self.finished and (text or signature is not None):
            raise CodecError("Gemini sent content after its finishReason")
        if part.get("thought") is True:
            self._thought(text, signature, events)
        else:
            self._text(text, signature, events)

    def _text(self, text: str, signature: str | None, events: list[Event]) -> None:
        if signature is not None:  # the carrier: its own block, before the text it came with
            events.append(ReasoningSignature(self._new_block(""), signature))
        if not text:
            return
        if self._open_kind != "text":
            self._new_block("text")
        events.append(TextDelta(self._open_index, text))

    def _thought(self, text: str, signature: str | None, events: list[Event]) -> None:
        if not text and signature is None:
            return
        if self._open_kind != "thought":
            self._new_block("thought")
        index = self._open_index
        if text:
            events.append(ReasoningDelta(index, text))
        if signature is not None:
            events.append(ReasoningSignature(index, signature))
            self._open_kind = ""  # a signed thought block is complete

    def _function_call(self, call: Any, signature: str | None, events: list[Event]) -> None:
        if self.finished:
            raise CodecError("Gemini sent content after its finishReason")
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise CodecError("Gemini functionCall has no name")
        args = call.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise CodecError("Gemini functionCall args is not an object")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = ids.tool_call_id(self._seed, self._calls)
        self._calls += 1
        index = self._new_block("")
        events.append(ToolCallStart(index, call_id, call["name"], signature))
        events.append(ToolCallDelta(index, jsonutil.dumps(args).decode()))
        events.append(ToolCallEnd(index))

    def _new_block(self, kind: str) -> int:
        index = self._next_index
        self._next_index += 1
        self._open_kind, self._open_index = kind, index
        return index

    def _usage_update(self, meta: dict[str, Any], events: list[Event]) -> None:
        usage = _read_usage(meta)
        if usage != self._usage:
            self._usage = usage
            events.append(UsageUpdate(usage))


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"Gemini usageMetadata.{key} is not an integer")
    return value


def _read_usage(meta: Mapping[str, Any]) -> Usage:
    thoughts = _count(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=_count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount"),
        output_tokens=_count(meta, "candidatesTokenCount") + thoughts,
        reasoning_tokens=thoughts,
        cache_read_tokens=_count(meta, "cachedContentTokenCount"),
    )


def _rendered_code(part: Mapping[str, Any]) -> str:
    """Code-execution parts (the googleSearch/codeExecution built-ins) as fenced text: the IR has no code parts."""
    code = part.get("executableCode")
    if isinstance(code, dict):
        language = str(code.get("language", "")).lower().replace("language_unspecified", "")
        return f"\n```{language}\n{code.get('code', '')}\n```\n"
    result = part.get("codeExecutionResult")
    if isinstance(result, dict):
        return f"\n```\n{result.get('output', '')}\n```\n"
    if "inlineData" in part or "fileData" in part:
        raise CodecError(
            "Gemini answered with media (image output), which muxtrio cannot relay", kind=ErrorKind.UNSUPPORTED
        )
    return ""


class _GeminiDecoder(StreamDecoder):
    """``streamGenerateContent?alt=sse`` bytes -> IR events."""

    def __init__(self, seed: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self._reader = _AnswerReader(seed)

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for sse_event in self._sse.feed(data):
            self._data(sse_event.data, events)
        return events

    def flush(self) -> list[Event]:
        events: list[Event] = []
        for sse_event in self._sse.flush():
            self._data(sse_event.data, events)
        if not self._reader.finished:
            raise StreamTruncated("Gemini stream ended before a chunk with finishReason")
        return events

    def _data(self, data: bytes, events: list[Event]) -> None:
        if not data.strip() or data == b"[DONE]":  # [DONE]: some Gemini-compatible proxies add it
            return
        try:
            chunk = jsonutil.loads(data)
        except jsonutil.JSONDecodeError as exc:
            raise CodecError(f"malformed Gemini stream chunk: {exc}") from None
        for item in chunk if isinstance(chunk, list) else (chunk,):
            self._reader.chunk(item, events)


def _parse_response(body: bytes, seed: str) -> Response:
    try:
        data = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as exc:
        raise CodecError(f"malformed Gemini answer: {exc}") from None
    reader = _AnswerReader(seed)
    events: list[Event] = []
    if isinstance(data, list):  # a whole JSON-array stream
        for chunk in data:
            reader.chunk(chunk, events)
        if not reader.finished:
            raise StreamTruncated("Gemini answer ended before a chunk with finishReason")
    else:
        reader.chunk(data, events)
        reader.finish_unterminated(events)
    return accumulate(events)


# ---------------------------------------------------------------------------------------------- errors
def _error_object(body: bytes) -> tuple[dict[str, Any], str]:
    """The ``error`` object of a Gemini error body (maybe wrapped in a JSON list, as the streaming endpoint does),
    and a fallback text for bodies that are not JSON."""
    try:
        data = jsonutil.loads(body)
    except jsonutil.JSONDecodeError:
        return {}, body.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return (error, "") if isinstance(error, dict) else ({}, "")


def _upstream_error(error: Any, http_status: int) -> UpstreamError:
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status = http_status or (code if isinstance(code, int) and not isinstance(code, bool) else 500)
    google_status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = message or f"Gemini API error {status}"
    details = error.get("details") if isinstance(error.get("details"), list) else []
    kind = _error_kind(status, google_status, message, details)
    return UpstreamError(
        kind,
        message,
        provider_status=status,
        provider_type=google_status,
        status=client_status(status, kind),
        retry_after=_retry_delay(details),
    )


def _error_kind(status: int, google_status: str | None, message: str, details: list[Any]) -> ErrorKind:
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if reasons & {"API_KEY_INVALID", "API_KEY_EXPIRED"}:
        return ErrorKind.AUTHENTICATION  # Gemini answers a bad key with 400 INVALID_ARGUMENT + ErrorInfo.reason
    kind = ERROR_KINDS.get(google_status or "") or kind_for_status(status)
    if kind is ErrorKind.INVALID_REQUEST and is_context_length_message(message):
        return ErrorKind.CONTEXT_LENGTH  # "The input token count (N) exceeds the maximum number of tokens allowed"
    return kind


def _retry_delay(details: list[Any]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` ("30s", "1.5s": a protobuf Duration in JSON form)."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
    return None


# ---------------------------------------------------------------------------------------------- the codec
class GeminiCodec(Codec):
    format = Format.GEMINI

    def adapt_to_target(self, request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
        return adapt_gemini_request(request, target, policy)

    # ------------------------------------------------------------------ client side
    def parse_request(self, body: bytes, hints: RequestHints) -> Request:
        return _parse_request(body, hints)

    def emit_response(self, response: Response, info: StreamInfo) -> bytes:
        return jsonutil.dumps(
            {
                "candidates": [_candidate(_answer_parts(response.parts), response.finish_reason)],
                "usageMetadata": _usage_metadata(response.usage),
                "modelVersion": info.model,
                "responseId": info.id,
            }
        )

    def new_encoder(self, info: StreamInfo) -> StreamEncoder:
        ext = info.request.extensions.get(EXT) or {}
        return _GeminiEncoder(info, json_array=ext.get("endpoint") == "json-array")

    def emit_error(self, error: MuxError) -> tuple[int, bytes]:
        return error.status, jsonutil.dumps(_error_body(error))

    # ------------------------------------------------------------------ provider side
    def _resource(self, model: str) -> str:
        """The path of a model's methods, before ``:method``."""
        return f"/{API_VERSION}/{_model_path(model)}"

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        method = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        path = f"{self._resource(target.model)}:{method}"
        return WireRequest("POST", path, _headers(target, request), jsonutil.dumps(_generate_body(request)))

    def parse_response(self, body: bytes, seed: str) -> Response:
        return _parse_response(body, seed)

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return _GeminiDecoder(seed, max_event_bytes)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error, text = _error_object(body)
        if not error and text:
            error = {"message": text}
        return _upstream_error(error, status)

    # ------------------------------------------------------------------ token counting
    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        contents, context = _contents_and_context(request)
        body: JSONObject
        if context:  # systemInstruction and tools only count inside a generateContentRequest (REST docs)
            body = {
                "generateContentRequest": {
                    "model": _model_resource(target.model), "contents": list(contents), **context
                }
            }
        else:
            body = {"contents": list(contents)}
        path = f"{self._resource(target.model)}:countTokens"
        return WireRequest("POST", path, _headers(target, request), jsonutil.dumps(body))

    def parse_count_response(self, body: bytes) -> int:
        try:
            data = jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            raise CodecError(f"malformed Gemini countTokens answer: {exc}") from None
        if not isinstance(data, dict):
            raise CodecError("Gemini countTokens answer is not an object")
        return _count(data, "totalTokens")  # proto3 JSON omits a zero count

    def emit_count_response(self, tokens: int) -> bytes:
        return jsonutil.dumps({"totalTokens": tokens})


class VertexCodec(GeminiCodec):
    """The ``vertex-compat`` provider side: the same wire as Gemini, on Vertex AI's API-key paths (express mode and
    Vertex-compatible services such as ZenMux): ``/v1/publishers/{publisher}/models/{model}:method``, key in
    ``x-goog-api-key``. ``publisher/model`` names a publisher (default ``google``); a name starting with
    ``publishers/`` or ``projects/`` is a full resource path. ``countTokens`` takes the request fields at the top."""

    def _resource(self, model: str) -> str:
        if model.startswith(("publishers/", "projects/")):
            # Each segment percent-encoded on its own: a full resource path stays inside Vertex's API namespace.
            return f"/{VERTEX_API_VERSION}/" + "/".join(path_segment(part) for part in model.split("/"))
        publisher, slash, name = model.partition("/")
        if not slash:
            publisher, name = "google", model
        return f"/{VERTEX_API_VERSION}/publishers/{path_segment(publisher)}/models/{path_segment(name)}"

    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        contents, context = _contents_and_context(request)
        body: JSONObject = {"contents": list(contents), **context}
        path = f"{self._resource(target.model)}:countTokens"
        return WireRequest("POST", path, _headers(target, request), jsonutil.dumps(body))


CODEC = GeminiCodec()
VERTEX_CODEC = VertexCodec()

__all__ = [
    "CODEC",
    "ERROR_KINDS",
    "ERROR_STATUSES",
    "FINISH_REASONS",
    "FINISH_REASONS_OUT",
    "ROLES",
    "ROLES_OUT",
    "SKIP_SIGNATURE",
    "THINKING_LEVELS",
    "TOOL_MODES",
    "TOOL_MODES_OUT",
    "USAGE_FIELDS",
    "GeminiCodec",
]

"""The codec contract: one module per wire format, both directions, same names everywhere.

Client side (a client speaks this format to muxtrio):
    ``parse_request(body, hints) -> ir.Request``, ``emit_response(response, info) -> bytes``,
    ``new_encoder(info) -> StreamEncoder``, ``emit_error(error) -> (status, body)``.
Provider side (muxtrio speaks this format to an upstream):
    ``emit_request(request, target) -> WireRequest``, ``parse_response(body, seed) -> ir.Response``,
    ``new_decoder(seed) -> StreamDecoder``, ``parse_error(status, headers, body) -> UpstreamError``.
Token counting (where the format has an endpoint for it): ``emit_count_request``, ``parse_count_response``
(provider side, ``None``/error where there is none) and ``emit_count_response`` (client side).

Invariants:
- Pure: no IO, no clocks, no randomness. Ids and times come in as arguments (``StreamInfo``, ``seed``); invented
  ids (Gemini and Ollama tool calls) derive from ``seed`` so they are stable and unique per response.
- Decoders are incremental: any split of the input gives the same events. ``flush()`` raises
  :class:`StreamTruncated` when the provider's stream ended without its terminal event.
- Decoders raise :class:`UpstreamError` for an error event sent by the provider mid-stream and :class:`CodecError`
  for malformed bytes; they never emit an error as an event.
- Encoders produce bytes exactly as the official SDK of their format expects; ``finish()`` is called only after a
  ``Finish`` event; ``error()`` ends a stream that broke, in the format's own error framing, and never looks like a
  normal end.
- What a target cannot express raises ``CodecError(kind=ErrorKind.UNSUPPORTED)`` naming the field; nothing is
  silently dropped that the client would rely on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar
from urllib.parse import quote

from muxtrio.errors import CodecError, ErrorKind, MuxError, UpstreamError
from muxtrio.ir.events import Event
from muxtrio.ir.request import JSON, Request
from muxtrio.ir.response import Response
from muxtrio.wire.framing import Frame, Framer
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES


class Format(StrEnum):
    OPENAI_CHAT = "openai-chat"
    OPENAI_RESPONSES = "openai-responses"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"


PROTOCOL_HEADERS: Mapping[Format, frozenset[str]] = {
    Format.ANTHROPIC: frozenset({"anthropic-beta", "anthropic-version"}),
    Format.OPENAI_RESPONSES: frozenset({"openai-beta"}),
    Format.OPENAI_CHAT: frozenset({"openai-beta"}),
    Format.GEMINI: frozenset({"x-goog-api-client"}),
    Format.OLLAMA: frozenset(),
}
"""Per client format, the request headers that change what the provider accepts (Anthropic betas unlock body fields
such as ``context_management``; ``anthropic-version`` picks the API version; ``OpenAI-Beta`` opts into preview
behaviour; ``x-goog-api-client`` identifies the client library). Forwarded to providers of the same format only."""

MERGED_HEADERS: frozenset[str] = frozenset({"anthropic-beta", "openai-beta"})
"""Comma-separated list headers: the client's values are merged with the provider's configured ones, never
replace them (a subscription provider's own betas stay)."""

CLIENT_HEADERS_KEY = "client_headers"
"""Key of the client's protocol headers in ``request.extensions[format]`` (a list of ``[name, value]``)."""


def record_client_headers(ext: dict[str, JSON], hints: RequestHints) -> None:
    """Store ``hints.headers`` in a codec's own extensions (parse side)."""
    if hints.headers:
        ext[CLIENT_HEADERS_KEY] = [[name, value] for name, value in hints.headers]


def client_protocol_headers(request: Request, fmt: Format) -> list[tuple[str, str]]:
    """The protocol headers a client of format ``fmt`` sent, for a provider of the same format (emit side)."""
    ext = request.extensions.get(fmt.value) or {}
    raw = ext.get(CLIENT_HEADERS_KEY)
    allowed = PROTOCOL_HEADERS[fmt]
    out: list[tuple[str, str]] = []
    if isinstance(raw, list):
        for pair in raw:
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair):
                name, value = str(pair[0]).lower(), str(pair[1])
                if name in allowed:
                    out.append((name, value))
    return out


def merge_header_lists(first: str, second: str) -> str:
    """Two comma-separated header values joined, first's items first, duplicates removed."""
    items: list[str] = []
    for value in (first, second):
        for item in value.split(","):
            item = item.strip()
            if item and item not in items:
                items.append(item)
    return ",".join(items)


class HostedToolPolicy(StrEnum):
    """What happens to a provider-run tool (Responses ``web_search``, Anthropic server tools, Gemini built-ins) when
    the request goes to a provider of another format (config ``hosted-tools``).

    ``map``: translated where the target has the same kind of tool (web search -> Anthropic ``web_search`` server
    tool, Gemini ``googleSearch``, Responses ``web_search``), otherwise dropped with a warning. ``drop``: always
    dropped with a warning (never run by another provider). ``reject``: translated where possible, otherwise the
    request is refused (400) rather than run without the tool."""

    MAP = "map"
    DROP = "drop"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Adaptation:
    """A client request made fit for a provider of another format (:meth:`Codec.adapt_to_target`).

    ``dropped``: provider-run tools (or their history blocks) that the target cannot run, left out; the client is
    told (a warning header) and the engine logs it. ``ignored``: client-format-only body fields with no equivalent
    in the target (e.g. Anthropic ``context_management``), which the target codec never sends; logged at DEBUG."""

    request: Request
    dropped: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class RequestHints:
    """What the client's URL says, as opposed to its body.

    ``model``: from the path (Gemini ``/v1beta/models/{m}:...``). ``stream``: the endpoint itself streams
    (``:streamGenerateContent``). ``endpoint``: a dialect of the format — ``"completions"`` (legacy OpenAI
    ``/v1/completions``), ``"generate"`` (Ollama ``/api/generate``), ``"json-array"`` (Gemini stream without
    ``alt=sse``). Codecs record the dialect in ``request.extensions[format]["endpoint"]`` so their encoders see it.
    ``headers``: the client's protocol headers of this format (:data:`PROTOCOL_HEADERS`, lower-case names), which
    codecs record in ``request.extensions[format]["client_headers"]`` so that a provider of the *same* format gets
    them (:func:`client_protocol_headers`); no other format ever reads them.
    """

    model: str | None = None
    stream: bool | None = None
    endpoint: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a client-side encoder needs besides events: the id and model to show, the creation time (unix
    seconds), and the parsed client request (for echoes such as the Responses object and for dialects)."""

    id: str
    model: str
    created: int
    request: Request


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: the upstream model name, the credential, and whether to ask for a stream.

    From the model's rule (``codecs/model_rules.py``): ``max_tokens_field``, the wire name of the output-token limit
    where a format has a choice (OpenAI Chat: ``max_completion_tokens`` for reasoning models; None leaves the codec's
    own choice); ``adaptive_thinking``, the model takes adaptive thinking only, no budget (Anthropic).

    ``account``: what a subscription account adds to its token (``account_id`` for Codex, ``project`` for Gemini
    CLI, ``base_url`` where the account has its own API host); empty for API keys."""

    model: str
    api_key: str | None
    stream: bool
    max_tokens_field: str | None = None
    adaptive_thinking: bool = False
    account: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WireRequest:
    """An HTTP request for a provider. ``path`` is relative to the provider's base URL and may carry a query; an
    absolute ``https://`` URL (an account with its own API host) replaces the base URL."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def path_segment(text: str) -> str:
    """``text`` percent-encoded as exactly one URL path segment, for names (models) that codecs put into a provider
    path: every reserved character (``/ ? # : % @``, spaces, controls) is escaped, and a segment made of dots only
    (``.``, ``..``) is escaped too, so that no client text can change the path or the query of a provider URL."""
    quoted = quote(text, safe="")
    if not quoted.strip("."):
        quoted = quoted.replace(".", "%2E")
    return quoted


class StreamDecoder(ABC):
    """Provider bytes -> IR events, incrementally."""

    @abstractmethod
    def feed(self, data: bytes) -> list[Event]: ...

    @abstractmethod
    def flush(self) -> list[Event]:
        """The provider closed the stream. Returns final events or raises ``StreamTruncated``."""


class StreamEncoder(ABC):
    """IR events -> client frames, incrementally (:mod:`muxtrio.wire.framing`): ``frames``, ``final_frames`` and
    ``error_frames`` give the payloads, ``framer`` (a :mod:`muxtrio.wire` framer chosen by the encoder) the bytes of
    the HTTP stream; the WebSocket transports send the payloads as they are. ``content_type`` is the streaming
    response's media type; ``keepalive`` the bytes to send while idle (an SSE comment) or ``None`` where the
    framing has none."""

    content_type: str = "text/event-stream"
    keepalive: bytes | None = b": ping\n\n"
    framer: Framer

    @abstractmethod
    def frames(self, event: Event) -> tuple[Frame, ...]: ...

    def advance(self, event: Event) -> None:
        """Take ``event`` into the encoder's state without output: the client got the provider's own bytes for it
        (same-format pass-through), and later frames (a recovery's, an error) must continue that stream. Encoders
        override it where the hot events need no encoding to keep their state."""
        self.frames(event)

    @abstractmethod
    def final_frames(self) -> tuple[Frame, ...]:
        """The normal end of the stream (after a ``Finish`` event): closing frames, usage..."""

    @abstractmethod
    def error_frames(self, error: MuxError) -> tuple[Frame, ...]:
        """End a broken stream with this format's error frames. Never looks like a normal end."""

    def encode(self, event: Event) -> bytes:
        """One event's bytes on the HTTP stream."""
        frames = self.frames(event)
        return self.framer.frame(frames) if frames else b""

    def finish(self) -> bytes:
        """The bytes that end a normal HTTP stream (the final frames and the framing's terminator)."""
        return self.framer.frame(self.final_frames()) + self.framer.close()

    def error(self, error: MuxError) -> bytes:
        """The bytes that end a broken HTTP stream."""
        return self.framer.fail(self.error_frames(error))


class Codec(ABC):
    format: ClassVar[Format]

    # ------------------------------------------------------------------ client side
    @abstractmethod
    def parse_request(self, body: bytes, hints: RequestHints) -> Request: ...

    @abstractmethod
    def emit_response(self, response: Response, info: StreamInfo) -> bytes: ...

    @abstractmethod
    def new_encoder(self, info: StreamInfo) -> StreamEncoder: ...

    @abstractmethod
    def emit_error(self, error: MuxError) -> tuple[int, bytes]: ...

    # ------------------------------------------------------------------ provider side
    @abstractmethod
    def emit_request(self, request: Request, target: Target) -> WireRequest: ...

    @abstractmethod
    def parse_response(self, body: bytes, seed: str) -> Response: ...

    @abstractmethod
    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        """A decoder for one provider stream; an event (or line) over ``max_event_bytes`` raises
        ``EventTooLarge``."""

    @abstractmethod
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """A provider's error response. ``headers`` have lower-case names. Header-based retry hints
        (``Retry-After``, rate-limit resets) are read by the engine, which has a clock; body hints (Gemini
        ``RetryInfo``) are read here into ``retry_after``."""

    def check_target(self, request: Request, target: Format) -> None:
        """Raise ``CodecError(UNSUPPORTED)`` when ``request``, parsed by this (client) codec, carries something
        in ``request.extensions[self.format]`` that only this format can run and ``target`` is another provider
        format (e.g. Anthropic server tools). The engine asks every format present in the extensions."""
        return None

    def adapt_to_target(self, request: Request, target: Format, policy: HostedToolPolicy) -> Adaptation:
        """``request``, parsed by this (client) codec, made fit for a provider of format ``target`` (never this
        format): provider-run tools in ``request.extensions[self.format]`` become neutral ``request.hosted_tools``
        where ``target`` has the same kind and ``policy`` allows, or are reported in ``dropped``; with
        ``HostedToolPolicy.REJECT`` one that cannot be translated raises ``CodecError(UNSUPPORTED)``. Called by
        the engine for every format present in the extensions, before :meth:`check_target`."""
        return Adaptation(request)

    # ------------------------------------------------------------------ token counting
    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        """The provider's native token-count request, or None when the provider has no such endpoint."""
        return None

    def parse_count_response(self, body: bytes) -> int:
        raise CodecError(f"{self.format} has no token-count endpoint", kind=ErrorKind.UNSUPPORTED)

    def emit_count_response(self, tokens: int) -> bytes:
        raise CodecError(f"{self.format} has no token-count endpoint", kind=ErrorKind.UNSUPPORTED)


def kind_for_status(status: int) -> ErrorKind:
    """The default error kind for a provider's HTTP status (codecs refine it from the body)."""
    if status == 400 or status == 422:
        return ErrorKind.INVALID_REQUEST
    if status == 401:
        return ErrorKind.AUTHENTICATION
    if status == 402 or status == 403:
        return ErrorKind.PERMISSION
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 413:
        return ErrorKind.REQUEST_TOO_LARGE
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status == 529 or status == 503:
        return ErrorKind.OVERLOADED
    if status == 504:
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.UPSTREAM
    return ErrorKind.INVALID_REQUEST


_CONTEXT_LENGTH_PHRASES = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
    "string_above_max_length",
)


def is_context_length_message(message: str) -> bool:
    """Whether a provider's 400 message says the prompt does not fit (OpenAI ``context_length_exceeded``,
    Anthropic "prompt is too long", Gemini "input token count ... exceeds the maximum")."""
    lowered = message.lower()
    return any(phrase in lowered for phrase in _CONTEXT_LENGTH_PHRASES)


def client_status(provider_status: int, kind: ErrorKind) -> int:
    """The status a client should see for a provider's error: the provider's own 4xx, but 502 for a provider
    5xx that is not an overload/timeout (the gateway, not the client, failed), and 401/403 from a provider become
    502 too (a gateway credential problem must not look like the client's key was wrong)."""
    if kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION):
        return 502
    if 400 <= provider_status < 500:
        return provider_status
    if kind is ErrorKind.OVERLOADED:
        return 503
    if kind is ErrorKind.TIMEOUT:
        return 504
    return 502

"""One exception tree for muxtrio, each error with a kind and an HTTP status hint.

Invariants:
- Every error that reaches a client is a :class:`MuxError`; foreign exceptions are mapped once at each IO boundary.
- Messages never contain secrets: callers pass masked values (see :func:`mask_secret`).
- Pure: standard library only (codecs and the IR import this module).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    UNSUPPORTED = "unsupported"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UPSTREAM = "upstream"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


DEFAULT_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.CONTEXT_LENGTH: 400,
    ErrorKind.CONTENT_FILTER: 400,
    ErrorKind.UNSUPPORTED: 400,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}


class MuxError(Exception):
    """Base of every muxtrio error.

    ``param`` names the offending request field where there is one; ``retry_after`` (seconds) is sent to clients as
    ``Retry-After`` where the format allows. ``code``, when set, is a specific machine-readable code that formats
    with a code field send instead of the kind's (OpenAI's ``insufficient_quota``).
    """

    code: str | None = None

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status if status is not None else DEFAULT_STATUS[kind]
        self.param = param
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind.value!s}, {self.status}, {self.message!r})"


class ClientError(MuxError):
    """The client's request is wrong (bad JSON, missing field, unknown model, bad key)."""


class CodecError(MuxError):
    """Bytes could not be translated: malformed provider output, or a request the target format cannot express."""

    def __init__(self, message: str, *, kind: ErrorKind = ErrorKind.UPSTREAM, param: str | None = None) -> None:
        super().__init__(kind, message, param=param)


class UpstreamError(MuxError):
    """A provider answered with an error, or could not be reached.

    ``provider_status`` is the provider's own HTTP status (0 when there was no response); ``provider_type`` its error
    type string (``rate_limit_error``, ``RESOURCE_EXHAUSTED``...). ``status`` is what a client should see.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider_status: int = 0,
        provider_type: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(kind, message, status=status, retry_after=retry_after)
        self.provider_status = provider_status
        self.provider_type = provider_type
        # The provider's response headers (lower-case names), set by the engine: retry hints live there.
        self.headers: dict[str, str] = {}


class StreamTruncated(UpstreamError):
    """The provider's stream ended (EOF, reset) before its terminal event: the answer is incomplete."""

    def __init__(self, message: str = "upstream stream ended before completion") -> None:
        super().__init__(ErrorKind.UPSTREAM, message)


class ResponseTooLarge(UpstreamError):
    """A provider's (decoded) response body passed ``max-response-size``: the attempt ends, like any malformed
    answer (retryable, another candidate may do better)."""

    def __init__(self, provider: str, limit: int) -> None:
        super().__init__(ErrorKind.UPSTREAM, f"provider {provider} sent a response body over {limit} bytes")
        self.limit = limit


class EventTooLarge(CodecError):
    """One upstream stream event (SSE event or NDJSON line) passed ``max-event-size``: the attempt ends (retryable,
    like any malformed stream); the decoder never buffers more than the limit."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} larger than {limit} bytes (max-event-size)")
        self.limit = limit


class UpstreamTimeout(UpstreamError):
    """One of the engine's timeouts fired. ``phase`` is connect, first_byte, idle or total."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(ErrorKind.TIMEOUT, f"upstream {phase} timeout after {seconds:g}s")
        self.phase = phase


class CapacityError(MuxError):
    """No credential can take the request now: all rate-limited (429, the default), refused by the provider or
    behind an open circuit breaker (503, ``kind`` UNAVAILABLE), or the model is missing there (404)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, kind: ErrorKind = ErrorKind.RATE_LIMIT
    ) -> None:
        super().__init__(kind, message, retry_after=retry_after)


class LimitError(MuxError):
    """A client key's limit, budget or model allowlist refused the request (see :mod:`muxtrio.keys`). ``headers``
    go out with the error response (``x-ratelimit-*``)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(kind, message, retry_after=retry_after)
        self.code = code
        self.headers = headers


class ConfigError(MuxError):
    """The configuration is invalid. ``path`` is the key path (``providers[2].base-url``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(ErrorKind.INVALID_REQUEST, f"{path}: {message}" if path else message)
        self.path = path


def mask_secret(secret: str | None) -> str:
    """A key as it may appear in logs and errors: its last four characters only."""
    if not secret:
        return "<none>"
    return "****" + secret[-4:] if len(secret) > 8 else "****"

"""The outcome class of an upstream attempt (the ``outcome`` label of ``muxtrio_upstream_attempts_total``) and the
status class of a request: every class the issue names, from the errors the engine actually raises."""

from __future__ import annotations

import pytest

from muxtrio.errors import (
    CodecError,
    ErrorKind,
    EventTooLarge,
    MuxError,
    ResponseTooLarge,
    StreamTruncated,
    UpstreamError,
    UpstreamTimeout,
)
from muxtrio.metrics import ATTEMPT_OUTCOMES, attempt_outcome, status_class


@pytest.mark.parametrize(("error", "cut", "outcome"), [
    (None, False, "ok"),
    (UpstreamError(ErrorKind.RATE_LIMIT, "slow down", provider_status=429), False, "429"),
    (UpstreamError(ErrorKind.UPSTREAM, "boom", provider_status=500), False, "5xx"),
    (UpstreamError(ErrorKind.OVERLOADED, "busy", provider_status=529), False, "5xx"),
    (UpstreamError(ErrorKind.AUTHENTICATION, "bad key", provider_status=401), False, "refused"),
    (UpstreamError(ErrorKind.PERMISSION, "no", provider_status=403), False, "refused"),
    (UpstreamError(ErrorKind.INVALID_REQUEST, "bad", provider_status=400), False, "4xx"),
    (UpstreamTimeout("connect", 10), False, "connect_timeout"),
    (UpstreamTimeout("first_byte", 60), False, "first_byte_timeout"),
    (UpstreamTimeout("idle", 60), False, "idle_timeout"),
    (UpstreamTimeout("total", 600), False, "total_timeout"),
    (UpstreamError(ErrorKind.UNAVAILABLE, "could not connect to provider x"), False, "connect"),
    (StreamTruncated(), False, "cut"),
    (UpstreamError(ErrorKind.UPSTREAM, "boom", provider_status=500), True, "cut"),  # after output was sent
    (CodecError("not JSON"), False, "malformed"),
    (EventTooLarge("SSE event", 1024), False, "malformed"),
    (ResponseTooLarge("x", 1024), False, "malformed"),
])
def test_attempt_outcome(error: MuxError | None, cut: bool, outcome: str) -> None:
    assert attempt_outcome(error, cut=cut) == outcome
    assert outcome in ATTEMPT_OUTCOMES


def test_status_class() -> None:
    assert [status_class(s) for s in (200, 404, 429, 499, 502, 0)] == [
        "2xx", "4xx", "4xx", "client_closed", "5xx", "other"]

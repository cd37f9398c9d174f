"""The mixed workload the observability tests send through a real server with the official SDKs: every client format,
streamed and not, legacy completions, a token count, a failover (``openai-pool``), a provider 429
(``openai-ratelimit``), a provider 500 that a retry recovers (``openai-flaky``), a client that leaves mid-stream
(``openai-hold``) and a model nobody serves. :func:`run_workload` returns what each request should leave behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2
import openai

from tests.e2e.clients import CLIENT_NAMES, error_status, make, openai_client
from tests.observability.harness import GATEWAY_KEY, Samples, scrape, total


@dataclass(frozen=True)
class Sent:
    format: str  # client format label
    model: str  # the requested model
    status: int
    stream: bool
    provider: str | None
    route: str = "generate"


def _call(fn: Callable[[], object]) -> int:
    try:
        fn()
    except Exception as exc:  # the SDK's HTTP error: its status is what the client saw
        return error_status(exc)[0]
    return 200


def run_workload(url: str) -> list[Sent]:
    sent: list[Sent] = []
    upstream_of = {"openai-chat": "openai", "openai-responses": "responses", "anthropic": "anthropic",
                   "gemini": "gemini", "ollama": "ollama"}
    for client in CLIENT_NAMES:
        upstream = upstream_of[client]
        for stream in (False, True):
            adapter = make(client, url, GATEWAY_KEY)
            try:
                answer = adapter.ask(f"{upstream}-text", adapter.start(), stream=stream)
                assert answer.text, (client, stream)
            finally:
                adapter.close()
            sent.append(Sent(client, f"{upstream}-text", 200, stream, upstream))
    sdk = openai_client(url, GATEWAY_KEY)
    try:
        legacy = sdk.completions.create(model="openai-text", prompt="Say hello")
        assert legacy.choices[0].text
        sent.append(Sent("openai-chat", "openai-text", 200, False, "openai"))
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
        for model, status, provider in (
            ("openai-pool", 200, "openai-pool"),  # first key 429, failover to the second
            ("openai-flaky", 200, "openai"),  # 500, then a retry answers
            ("openai-ratelimit", 429, "openai"),  # the provider's 429 reaches the client
            ("no-such-model-from-a-client", 404, None),
        ):
            got = _call(lambda m=model: sdk.chat.completions.create(model=m, messages=messages))  # type: ignore[misc]
            assert got == status, (model, got)
            sent.append(Sent("openai-chat", model, status, False, provider))
        # A client that leaves mid-stream: read the first chunk, then close the connection.
        with sdk.chat.completions.create(model="openai-hold", messages=messages, stream=True) as chunks:
            next(iter(chunks))
        sent.append(Sent("openai-chat", "openai-hold", 499, True, "openai"))
    finally:
        sdk.close()
    response = httpx2.post(url + "/v1/messages/count_tokens", headers={"x-api-key": GATEWAY_KEY,
                           "anthropic-version": "2023-06-01"},
                           json={"model": "anthropic-text", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    sent.append(Sent("anthropic", "anthropic-text", 200, False, "anthropic", route="count"))
    return sent


def settled(url: str, expected_requests: int, seconds: float = 20.0) -> Samples:
    """Scrape until every request of the workload is accounted for and nothing but the scrape itself is in flight
    (the client that left mid-stream is noticed asynchronously). A hang guard, never a pass condition."""
    deadline = time.monotonic() + seconds
    while True:
        samples = scrape(url)
        done = total(samples, "muxtrio_requests_total", route="generate") + total(
            samples, "muxtrio_requests_total", route="count")
        if done >= expected_requests and total(samples, "muxtrio_open_streams") == 0:
            return samples
        assert time.monotonic() < deadline, f"{done} of {expected_requests} requests accounted for"
        time.sleep(0.1)

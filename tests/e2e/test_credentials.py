"""Credential lifecycle and honest statuses through the real server with real SDK clients (issue 12, items 1-3).

- A provider that refuses the gateway's key (401) takes that key out for a cool-down: the client gets 503 in its own
  format naming the provider and the reason, with ``Retry-After``; the next request gets the same 503 without the
  provider being asked again — never "model not served".
- A model the provider does not know (404) is answered 404 in the client's format naming the provider, and not asked
  again until the re-check period ends.
"""

from __future__ import annotations

import pytest

from tests.e2e import clients
from tests.e2e.clients import PER_CLIENT, error_status
from tests.e2e.conftest import CLIENT_KEY, REVOKED_KEY, UPSTREAM_NAMES, Stack, run_sync

KEYED = [u for u in UPSTREAM_NAMES if u != "ollama"]
PER_KEYED_UPSTREAM = pytest.mark.parametrize("upstream", KEYED, ids=[f"{u}-provider" for u in KEYED])


async def _status_of(client: str, stack: Stack, model: str, stream: bool) -> tuple[int, str | None, str]:
    sdk = clients.make(client, stack.url, CLIENT_KEY)
    try:
        await run_sync(sdk.ask, model, sdk.start(), stream=stream)
    except Exception as exc:  # each SDK's own HTTP error type; error_status() rejects anything else
        status, retry_after = error_status(exc)
        return status, retry_after, str(exc)
    finally:
        sdk.close()
    raise AssertionError(f"{model} answered normally")


@PER_CLIENT
async def test_refused_key_is_a_503_naming_the_provider_for_every_client(stack: Stack, client: str) -> None:
    for stream in (False, True):  # the refusing request, then one while the key is out
        status, retry_after, text = await _status_of(client, stack, "anthropic-revoked", stream)
        assert status == 503, text
        assert "provider anthropic-revoked: every credential was refused by the provider (401)" in text
        assert "not served" not in text and REVOKED_KEY not in text
        if retry_after is not None:  # ollama's SDK does not expose headers
            assert 1 <= int(retry_after) <= 60
    [refused] = stack.requests("anthropic")
    assert refused.key == REVOKED_KEY and refused.model == ""  # refused before the model was read


@PER_KEYED_UPSTREAM
async def test_refused_key_cools_instead_of_vanishing(stack: Stack, upstream: str) -> None:
    for _ in range(2):
        status, retry_after, text = await _status_of("openai-chat", stack, f"{upstream}-revoked", stream=False)
        assert status == 503 and retry_after is not None and int(retry_after) <= 60, text
        assert f"provider {upstream}-revoked: every credential was refused" in text
    assert len([s for s in stack.requests(upstream) if s.key == REVOKED_KEY]) == 1


@PER_KEYED_UPSTREAM
async def test_unknown_upstream_model_is_a_404_naming_the_provider(stack: Stack, upstream: str) -> None:
    for stream in (False, True):
        status, retry_after, text = await _status_of("openai-chat", stack, f"{upstream}-gone", stream)
        assert status == 404, text
        assert f"provider {upstream}-gone: model 'gone' was not found by the provider" in text
        assert retry_after is None
    assert [s.model for s in stack.requests(upstream)] == ["gone"]  # asked once, then known missing

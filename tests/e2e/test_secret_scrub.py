"""Provider keys never leak through upstream error text (issue 11 item 4), through the real server.

Fake providers (the e2e fakes, with their answer replaced) echo the key they were sent — and the whole
``Authorization`` header, and a key-shaped token nobody configured — in their own error format: a 401 (Gemini: the
400 ``API key not valid``) for a whole request, an in-band error event for a stream. Every client format asks every
provider format, whole and streaming, plus the token-count endpoints. Neither the client's body, nor any log line the
gateway wrote (DEBUG and up), nor ``/metrics`` may contain a key; the rest of the provider's message still reaches the
client, with the key replaced by ``[redacted]``.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import orjson
import pytest
import trio

from muxtrio.config import Config, Credential, ProviderConfig, ProviderType
from tests.e2e.clients import raw_client
from tests.e2e.conftest import CLIENT_KEY
from tests.e2e.fakes import FakeProvider, Reply, Seen, Streamed, Whole
from tests.e2e.test_model_names import ENDPOINTS, Endpoint
from tests.server.harness import serving

# provider type -> (fake kind, base-URL suffix, key prefix shaped like that provider's keys)
PROVIDERS: dict[str, tuple[ProviderType, str, str, str]] = {
    "openai": (ProviderType.OPENAI, "openai", "/v1", "sk-proj-LeakTestKey0123456789abcdef"),
    "responses": (ProviderType.OPENAI_RESPONSES, "openai", "/v1", "sk-proj-LeakTestRespKey0123456789"),
    "anthropic": (ProviderType.ANTHROPIC, "anthropic", "", "sk-ant-api03-LeakTestKey0123456789"),
    "gemini": (ProviderType.GEMINI, "gemini", "", "AIzaSyLeakTestKey0123456789abcdef"),
    # Not key-shaped at all: only the configured-secret rule can remove it.
    "ollama": (ProviderType.OLLAMA, "ollama", "", "ollama-local-token-plain"),
}
UNCONFIGURED = ("sk-proj-SomebodyElsesKey9876543210zyx", "AIzaSyAnotherLeakedKey98765432100")


def _echo(seen: Seen) -> str:
    key = seen.headers.get("x-api-key") or seen.headers.get("x-goog-api-key") or ""
    auth = seen.headers.get("authorization", "")
    return (f"Incorrect API key provided: {key or auth.removeprefix('Bearer ')}. Sent header: {auth!r}. "
            f"Also tried {UNCONFIGURED[0]} and {UNCONFIGURED[1]}?key={key}. See the dashboard for details.")


class KeyEchoProvider(FakeProvider):
    """Answers every request with an error whose text carries the credentials it received."""

    def _reply(self, seen: Seen) -> Reply:
        body = seen.body if isinstance(seen.body, dict) else {}
        text = _echo(seen)
        if self.kind == "gemini":
            stream = ":streamGenerateContent" in seen.path
        else:
            stream = body.get("stream", self.kind == "ollama") is True
        seen.stream = stream
        if self.kind == "openai":
            api = "responses" if seen.path.startswith("/v1/responses") else "openai"
            seen.api = api
            if stream and api == "openai":
                return Streamed([b"data: " + orjson.dumps({"error": {"message": text, "type": "server_error"}})
                                 + b"\n\n"], "text/event-stream")
            if stream:
                event = {"type": "error", "code": "server_error", "message": text, "sequence_number": 0}
                return Streamed([b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"], "text/event-stream")
            return Whole(401, orjson.dumps({"error": {"message": text, "type": "invalid_request_error",
                                                      "param": None, "code": "invalid_api_key"}}))
        if self.kind == "anthropic":
            if stream:
                event = {"type": "error", "error": {"type": "api_error", "message": text}}
                return Streamed([b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"], "text/event-stream")
            return Whole(401, orjson.dumps({"type": "error",
                                            "error": {"type": "authentication_error", "message": text}}))
        if self.kind == "gemini":
            error = {"code": 400, "message": f"API key not valid. {text}", "status": "INVALID_ARGUMENT"}
            if stream:
                error = {"code": 500, "message": text, "status": "INTERNAL"}
                return Streamed([b"data: " + orjson.dumps({"error": error}) + b"\r\n\r\n"], "text/event-stream")
            return Whole(400, orjson.dumps({"error": error}))
        if stream:
            return Streamed([orjson.dumps({"error": text}) + b"\n"], "application/x-ndjson")
        return Whole(401, orjson.dumps({"error": text}))


def _config(fakes: dict[str, KeyEchoProvider], upstream: str) -> tuple[Config, list[str]]:
    """One provider per endpoint (a refused key is put aside, so each request needs a fresh one); its keys."""
    ptype, fake, suffix, key = PROVIDERS[upstream]
    providers = []
    keys = []
    for i, _ in enumerate(ENDPOINTS):
        keys.append(f"{key}{i:02d}")
        providers.append(ProviderConfig(type=ptype, name=f"leak{i}", base_url=fakes[fake].url + suffix,
                                        credentials=(Credential(keys[-1]),)))
    config = Config(host="127.0.0.1", port=0, api_keys=(CLIENT_KEY,), providers=tuple(providers), request_retry=0,
                    max_retry_interval=0.0)
    return config, keys


def _forced(endpoint: Endpoint, i: int, upstream: str) -> tuple[str, dict[str, Any]]:
    return endpoint.request(f"leak{i}/{'gemini-x' if upstream == 'gemini' else 'model-x'}")


@pytest.mark.parametrize("upstream", list(PROVIDERS))
async def test_provider_keys_never_reach_clients_logs_or_metrics(
    upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        fakes = {kind: KeyEchoProvider(kind, set()) for kind in ("openai", "anthropic", "gemini", "ollama")}
        for fake in fakes.values():
            await nursery.start(fake.serve)
        config, keys = _config(fakes, upstream)
        bodies: list[str] = []
        async with serving(config) as url, raw_client(url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
            for i, endpoint in enumerate(ENDPOINTS):
                path, body = _forced(endpoint, i, upstream)
                response = await http.post(path, content=orjson.dumps(body))
                bodies.append(f"{endpoint.name}: {response.status_code} {response.text}")
            metrics = (await http.get("/metrics")).text
        nursery.cancel_scope.cancel()
    seen = [s for f in fakes.values() for s in f.seen]
    assert seen, "the providers were asked, so they echoed their keys"
    sent = {s.headers.get(h, "").removeprefix("Bearer ") for s in seen
            for h in ("authorization", "x-api-key", "x-goog-api-key")} - {""}
    assert sent and sent <= set(keys), sent
    logged = caplog.text
    everything = "\n".join([*bodies, metrics, logged])
    for secret in (*keys, *UNCONFIGURED, CLIENT_KEY):
        assert secret not in everything, secret
    assert "[redacted]" in "\n".join(bodies), bodies  # the provider's message still reached the client, cleaned
    assert "See the dashboard for details" in "\n".join(bodies)


def test_key_echo_provider_really_echoes() -> None:
    """The test above can fail: the fake's text carries the key and the header verbatim."""
    seen = Seen(api="openai", method="POST", path="/v1/chat/completions", query={},
                headers={"authorization": "Bearer sk-proj-LeakTestKey0123456789abcdef00"}, raw=b"", body={})
    assert "sk-proj-LeakTestKey0123456789abcdef00" in _echo(seen)
    assert attrs.has(Config)

"""The real server (Hypercorn, loopback) with raw HTTP: auth, keepalive, error framing mid-stream, disconnects,
cooldown 429s, token counting and metrics. SDK-level tests live in tests/e2e/."""

from __future__ import annotations

import httpx2
import orjson
import pytest
import trio

from muxtrio.config import Config, Credential, HostedToolPolicy, ModelConfig, ProviderConfig, ProviderType, Timeouts
from muxtrio.errors import ClientError
from muxtrio.server import auth
from muxtrio.server.app import MuxApp
from tests.engine.fault_provider import FaultProvider
from tests.server.harness import serving

CHAT = "/v1/chat/completions"


def fake_config(models: dict[str, str], **kw: object) -> Config:
    provider = ProviderConfig(
        type=ProviderType.OPENAI,
        name="fake",
        base_url="http://fake.test/v1",
        credentials=(Credential("sk-upstream-secret-1"),),
        models=tuple(ModelConfig(name=upstream, alias=alias) for alias, upstream in models.items()),
    )
    base: dict[str, object] = {"providers": (provider,), "api_keys": ("gw-key",), "request_retry": 0}
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def chat(model: str, stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}


async def test_auth_header_forms_and_error_shapes() -> None:
    async with serving(fake_config({"m": "ok"}), {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        missing = await c.post(base + CHAT, json=chat("m"))
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        wrong = await c.post(base + "/v1/messages", json={"model": "m"}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["type"] == "error"
        assert wrong.json()["error"]["type"] == "authentication_error"
        gemini = await c.post(base + "/v1beta/models/m:generateContent", json={})
        assert gemini.status_code == 401 and gemini.json()["error"]["status"] == "UNAUTHENTICATED"
        ollama = await c.post(base + "/api/chat", json={})
        assert ollama.status_code == 401 and isinstance(ollama.json()["error"], str)
        for headers, params in (
            ({"authorization": "Bearer gw-key"}, {}),
            ({"x-api-key": "gw-key"}, {}),
            ({"x-goog-api-key": "gw-key"}, {}),
            ({}, {"key": "gw-key"}),
        ):
            ok = await c.post(base + CHAT, json=chat("m"), headers=headers, params=params)
            assert ok.status_code == 200, (headers, ok.text)
            assert ok.json()["choices"][0]["message"]["content"].startswith("alpha")
        # The upstream key never leaks into responses.
        assert "sk-upstream" not in missing.text + wrong.text


def scope(client: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, object]:
    return {"client": (client, 1234), "headers": headers or [], "query_string": b""}


def test_without_keys_only_loopback_is_served() -> None:
    open_config = Config(echo_model=True)
    auth.check(open_config, scope("127.0.0.1"))
    auth.check(open_config, scope("::1"))
    with pytest.raises(ClientError) as info:
        auth.check(open_config, scope("192.0.2.10"))
    assert info.value.status == 403
    auth.check(Config(disable_auth=True), scope("192.0.2.10"))


async def test_keepalive_pings_while_the_first_token_is_slow() -> None:
    cfg = fake_config({"m": "slow1"}, keepalive_interval=0.2)
    async with serving(cfg, {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        async with c.stream("POST", base + CHAT, json=chat("m", True), headers={"x-api-key": "gw-key"}) as r:
            assert r.headers["content-type"] == "text/event-stream"
            assert r.headers["cache-control"] == "no-cache" and r.headers["x-request-id"]
            body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert body.startswith(b": ping\n\n")
    assert body.index(b": ping") < body.index(b"data: {")
    assert body.endswith(b"data: [DONE]\n\n")


async def test_a_stall_after_output_ends_with_an_error_event_not_done() -> None:
    cfg = fake_config({"m": "stall2"}, timeouts=Timeouts(connect=5, first_byte=5, idle=0.3))
    async with serving(cfg, {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        async with c.stream("POST", base + CHAT, json=chat("m", True), headers={"x-api-key": "gw-key"}) as r:
            assert r.status_code == 200
            body = b"".join([chunk async for chunk in r.aiter_bytes()])
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert b"[DONE]" not in events
    last = orjson.loads(events[-1])
    assert "error" in last and "timeout" in last["error"]["message"]
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1] if b'"choices"' in e]
    assert "".join(c for c in contents if c) == "alpha beta "
    assert not any(orjson.loads(e).get("choices", [{}])[0].get("finish_reason") for e in events[:-1])


async def test_client_disconnect_closes_the_upstream() -> None:
    fake = FaultProvider(tokens=5000, pace=0.01)
    async with serving(fake_config({"m": "ok"}), {"fake": fake}) as base, httpx2.AsyncClient() as c:
        async with c.stream("POST", base + CHAT, json=chat("m", True), headers={"x-api-key": "gw-key"}) as r:
            async for chunk in r.aiter_bytes():
                if b"alpha" in chunk:
                    break
        with trio.fail_after(5):
            await fake.seen[0].closed.wait()
    assert fake.seen[0].sent_tokens < 5000


async def test_all_keys_cooling_is_a_429_with_retry_after() -> None:
    cfg = fake_config({"m": "429-ra90"}, max_retry_interval=1.0)
    async with serving(cfg, {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        first = await c.post(base + CHAT, json=chat("m"), headers={"x-api-key": "gw-key"})
        second = await c.post(base + "/v1/messages", headers={"x-api-key": "gw-key"},
                              json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert first.status_code == 429 and int(first.headers["retry-after"]) >= 89
    assert second.status_code == 429 and second.json()["error"]["type"] == "rate_limit_error"
    assert int(second.headers["retry-after"]) >= 88


async def test_count_tokens_without_a_native_endpoint_is_estimated_in_the_client_shape() -> None:
    async with serving(fake_config({"m": "ok"}), {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}
        anthropic = await c.post(base + "/v1/messages/count_tokens", json=body, headers={"x-api-key": "gw-key"})
    assert anthropic.status_code == 200
    assert anthropic.json() == {"input_tokens": 104}  # 400 characters / 4 + 4 framing


async def test_metrics_and_health_show_no_secrets() -> None:
    async with serving(fake_config({"m": "429"}), {"fake": FaultProvider()}) as base, httpx2.AsyncClient() as c:
        await c.post(base + CHAT, json=chat("m"), headers={"x-api-key": "gw-key"})
        health = await c.get(base + "/healthz")
        metrics = await c.get(base + "/metrics", headers={"x-api-key": "gw-key"})
    assert health.json() == {"status": "ok"}
    assert metrics.status_code == 200 and "fake#0" in metrics.text
    assert "secret" not in metrics.text and "gw-key" not in metrics.text


async def test_echo_model_streams_on_every_format() -> None:
    async with serving(Config(api_keys=("k",))) as base, httpx2.AsyncClient(headers={"x-api-key": "k"}) as c:
        msg = [{"role": "user", "content": "one two three"}]
        chat_r = await c.post(base + CHAT, json={"model": "muxtrio-echo", "messages": msg})
        anth = await c.post(base + "/v1/messages", json={"model": "muxtrio-echo", "max_tokens": 9, "messages": msg})
        gem = await c.post(base + "/v1beta/models/muxtrio-echo:generateContent",
                           json={"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]})
        oll = await c.post(base + "/api/chat", json={"model": "muxtrio-echo", "messages": msg, "stream": False})
        resp = await c.post(base + "/v1/responses", json={"model": "muxtrio-echo", "input": "one two three"})
    assert chat_r.json()["choices"][0]["message"]["content"] == "one two three"
    assert anth.json()["content"][0]["text"] == "one two three"
    assert gem.json()["candidates"][0]["content"]["parts"][0]["text"] == "one two three"
    assert oll.json()["message"]["content"] == "one two three"
    assert resp.json()["output"][0]["content"][0]["text"] == "one two three"


_SERVER_TOOL_BODY = {
    "model": "m",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "search the web"}],
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
}


async def test_anthropic_server_tools_are_refused_toward_another_format_with_hosted_tools_reject() -> None:
    fake = FaultProvider()
    cfg = fake_config({"m": "ok"}, hosted_tools=HostedToolPolicy.REJECT)
    async with serving(cfg, {"fake": fake}) as base, httpx2.AsyncClient() as c:
        r = await c.post(base + "/v1/messages", json=_SERVER_TOOL_BODY, headers={"x-api-key": "gw-key"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "web_search_20250305" in r.json()["error"]["message"]
    assert fake.seen == []  # refused before any upstream call


@pytest.mark.parametrize("policy", [HostedToolPolicy.MAP, HostedToolPolicy.DROP])
async def test_anthropic_server_tools_toward_chat_are_dropped_with_a_warning(policy: HostedToolPolicy) -> None:
    """OpenAI Chat has no provider-run tools: the web search is left out, the client is told in a header."""
    fake = FaultProvider()
    cfg = fake_config({"m": "ok"}, hosted_tools=policy)
    async with serving(cfg, {"fake": fake}) as base, httpx2.AsyncClient() as c:
        r = await c.post(base + "/v1/messages", json=_SERVER_TOOL_BODY, headers={"x-api-key": "gw-key"})
    assert r.status_code == 200
    assert r.headers["x-muxtrio-warning"] == (
        "provider-run tool 'web_search_20250305' dropped: the serving provider (openai-chat format) cannot run it"
    )
    assert [s.body.get("tools") for s in fake.seen] == [None]


async def test_client_disconnect_under_another_asgi_server_is_watched_by_a_task() -> None:
    """Without muxtrio's listener (no ``muxtrio.disconnect`` signal in the scope) the handler falls back to a watcher
    task: an ``http.disconnect`` from the server still cancels the stream and closes the upstream."""
    fake = FaultProvider(tokens=5000, pace=0.01)
    app = MuxApp(fake_config({"m": "ok"}), transports={"fake": fake})
    started, shutdown, streaming = trio.Event(), trio.Event(), trio.Event()
    lifespan_messages = iter([{"type": "lifespan.startup"}])

    async def lifespan_receive() -> dict[str, object]:
        message = next(lifespan_messages, None)
        if message is not None:
            return message
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def lifespan_send(message: dict[str, object]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    body = orjson.dumps(chat("m", True))
    requests = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, object]:
        message = next(requests, None)
        if message is not None:
            return message
        await streaming.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body" and b"alpha" in message.get("body", b""):  # type: ignore[operator]
            streaming.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": CHAT, "raw_path": CHAT.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"x-api-key", b"gw-key"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "extensions": {},
    }  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan_receive, lifespan_send)
        await started.wait()
        with trio.fail_after(5):
            await app(scope, receive, send)
            await fake.seen[0].closed.wait()
        shutdown.set()
    assert fake.seen[0].sent_tokens < 5000

"""The dashboard in a real browser: headless Chromium drives ``/dashboard`` on the real Hypercorn server, loaded from a
config *file* (so the page's reload button has something to reload), while a fake OpenAI-compatible provider serves
the traffic sent with the official ``openai`` SDK.

What the page must show is checked in its DOM: logging in (a wrong key refused, the right one accepted), a credential
turning to "cooling" after the provider's 429 and coming back to "ok", the traffic charts drawing data points from
the usage store, usage by model / provider / client key, a failed request with its error class whose request log
downloads, and a reload from the page taking effect (a new provider's model answers afterwards). The page must run
without an uncaught exception, a console error or a CSP violation, and its screenshot must not be blank.

The usage store is a real SQLite file; what it holds from "earlier traffic" is written through the store itself
before the gateway starts, so the charts have known data whatever the request path records. The request log of an
earlier failure is written in the request-log format (``docs/management.md``) the same way.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from muxtrio.config import load_config
from muxtrio.server.app import MuxApp
from muxtrio.usage.record import UsageRecord
from muxtrio.usage.store import open_store
from tests.dashboard.browser import Page, chromium, chromium_binary, luminance_spread, png_pixels
from tests.server.control_stack import read_body, serve_lifespan

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="Debian chromium package not installed")

MANAGEMENT_KEY = "dash-mgmt-key-5f2c9e1a7b"
CLIENT_KEY = "dash-client-key-0001"
ALPHA_KEYS = ("alpha-key-0001-aaaa", "alpha-key-0002-bbbb")
BETA_KEY = "beta-key-0003-cccc"
RETRY_AFTER_S = 8  # the provider's 429 asks for this long; the page must see the cooldown and its end
SEEDED_PER_BUCKET = 3
BUCKET_S = 300  # the page's traffic buckets
SEEDED_FAILED_ID = "req-dash-seeded-failure"
SDK_CALL_LIMIT_S = 60.0
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


class FakeOpenAI:
    """``POST /v1/chat/completions`` for model ``m``/``m2``, streamed or not; ``rate_limit_next`` answers that many
    requests with a 429 carrying ``Retry-After``, ``refuse_next`` that many with a 401."""

    def __init__(self) -> None:
        self.rate_limit_next = 0
        self.refuse_next = 0
        self.keys_seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.keys_seen.append(dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer "))
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
            await _whole(send, 429, error, [(b"retry-after", str(RETRY_AFTER_S).encode())])
            return
        if self.refuse_next > 0:
            self.refuse_next -= 1
            error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                               "code": "invalid_api_key"}}  # fmt: skip
            await _whole(send, 401, error)
            return
        request = orjson.loads(body)
        model = request.get("model", "m")
        if not request.get("stream"):
            answer = {
                "id": "chatcmpl-dash", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }  # fmt: skip
            await _whole(send, 200, answer)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for delta, finish in (({"role": "assistant", "content": "hel"}, None), ({"content": "lo"}, None), ({}, "stop")):
            chunk = {"id": "chatcmpl-dash", "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _whole(send: Any, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


async def _serve(nursery: trio.Nursery, app: Any) -> str:
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    binds: list[str] = await nursery.start(serve, app, hc)
    return binds[0]


def config_text(tmp: Path, alpha_url: str, beta_url: str | None = None) -> str:
    text = f"""\
api-keys: [{CLIENT_KEY}]
request-retry: 0
providers:
  - type: openai
    name: alpha
    base-url: {alpha_url}/v1
    api-keys: [{ALPHA_KEYS[0]}, {ALPHA_KEYS[1]}]
    models:
      - {{name: m}}
"""
    if beta_url is not None:
        text += f"""\
  - type: openai
    name: beta
    base-url: {beta_url}/v1
    api-keys: [{BETA_KEY}]
    models:
      - {{name: m2}}
"""
    return text + f"""\
usage:
  dsn: sqlite:///{tmp}/usage.db
logging:
  request-log-dir: {tmp}/request-logs
reload:
  watch: false
"""


def seed_usage(tmp: Path, now: float) -> None:
    """Earlier traffic in the real store: SEEDED_PER_BUCKET requests in each of the page's five-minute buckets of the
    last hour (one failed in every fourth bucket), for two client keys; bucket ``b`` averages ``150 + 10 b`` ms."""
    store = open_store(f"sqlite:///{tmp}/usage.db")
    current = now // BUCKET_S * BUCKET_S
    records = []
    for bucket in range(12):
        start = current - bucket * BUCKET_S
        span = min(start + BUCKET_S, now) - start
        for i in range(SEEDED_PER_BUCKET):
            failed = i == 0 and bucket % 4 == 0
            records.append(
                UsageRecord(
                    request_id=f"seed-{bucket}-{i}", client_format="openai-chat", requested_model="m",
                    status=429 if failed else 200, ts=start + span * (i + 1) / (SEEDED_PER_BUCKET + 1),
                    client_key_id="key-1", client_key_name="team-a" if i % 2 else "team-b",
                    provider="alpha", served_model="m", credential="alpha#0",
                    error_class="rate_limit" if failed else None, input_tokens=None if failed else 100,
                    output_tokens=None if failed else 20, total_tokens=None if failed else 120, attempts=1,
                    ttft_ms=None if failed else 40.0 + bucket, duration_ms=150.0 + 10 * bucket, stream=True,
                )
            )
    try:
        store.write(records)
    finally:
        store.close()


def seed_request_log(tmp: Path, now: float) -> str:
    directory = tmp / "request-logs"
    directory.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now - 120)) + f"-{SEEDED_FAILED_ID}.json"
    entry = {
        "request_id": SEEDED_FAILED_ID, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120)),
        "method": "POST", "path": "/v1/chat/completions", "status": 502, "error_class": "upstream_5xx",
        "error": "every provider failed: alpha answered 503", "headers": {"authorization": "[masked]"},
        "client_body": '{"model": "m"}', "upstream": [], "timings": {},
    }  # fmt: skip
    (directory / name).write_bytes(orjson.dumps(entry, option=orjson.OPT_INDENT_2))
    return name


@asynccontextmanager
async def gateway(path: Path) -> AsyncIterator[str]:
    app = MuxApp(load_config(str(path)))
    async with trio.open_nursery() as nursery:
        base = await _serve(nursery, app)
        async with httpx2.AsyncClient() as client:
            for _ in range(500):  # hang guard: startup takes milliseconds
                if (await client.get(base + "/healthz")).status_code == 200:
                    break
                await trio.sleep(0.01)
        try:
            yield base
        finally:
            nursery.cancel_scope.cancel()


async def chat(base: str, model: str, *, stream: bool = False) -> str:
    def call() -> str:
        client = openai.OpenAI(base_url=base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30.0)
        try:
            if stream:
                parts = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], stream=True
                )
                return "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
            answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            return answer.choices[0].message.content or ""
        finally:
            client.close()

    with trio.fail_after(SDK_CALL_LIMIT_S):
        return await trio.to_thread.run_sync(call, abandon_on_cancel=True)


async def log_in(page: Page, base: str) -> None:
    await page.goto(base + "/dashboard?poll=500")
    await page.wait_for("!document.getElementById('login').hidden", what="the login form")
    await page.type_into("#login-key", MANAGEMENT_KEY)
    await page.click("#login-submit")
    await page.wait_for("!document.getElementById('app').hidden", what="the app after logging in")


def _states_js() -> str:
    """Credential label → the state the page shows, for the providers of this test (not the built-in echo)."""
    return (
        "Object.fromEntries([...document.querySelectorAll('#credentials tbody tr')]"
        ".filter(r => !r.dataset.label.startsWith('echo#')).map(r => [r.dataset.label, r.cells[3].dataset.state]))"
    )


def _points_js(chart: str) -> str:
    return f"[...document.querySelectorAll('#{chart} .point')].map(p => Number(p.getAttribute('data-value')))"


async def test_dashboard_in_a_real_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUXTRIO_MANAGEMENT_KEY", MANAGEMENT_KEY)
    for name in ("LLM_MUX_MANAGEMENT_KEY", "MUXTRIO_API_KEYS", "MUXTRIO_USAGE_DSN"):
        monkeypatch.delenv(name, raising=False)
    now = time.time()
    seed_usage(tmp_path, now)
    log_name = seed_request_log(tmp_path, now)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    alpha, beta = FakeOpenAI(), FakeOpenAI()
    config_path = tmp_path / "muxtrio.yaml"
    async with trio.open_nursery() as nursery:
        alpha_url = await _serve(nursery, alpha)
        beta_url = await _serve(nursery, beta)
        config_path.write_text(config_text(tmp_path, alpha_url))
        async with gateway(config_path) as base, chromium(tmp_path / "profile") as browser:
            # The page and its assets: no key needed, strict CSP, nothing but this origin.
            async with httpx2.AsyncClient() as client:
                page_response = await client.get(base + "/dashboard")
            assert page_response.status_code == 200
            assert "default-src 'self'" in page_response.headers["content-security-policy"]

            await browser.call(
                "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
            )
            page = await browser.new_page(1400, 1000)
            await page.goto(base + "/dashboard?poll=500")
            await page.wait_for("!document.getElementById('login').hidden", what="the login form")

            # A wrong key is refused and nothing is kept.
            await page.type_into("#login-key", "not-the-management-key")
            await page.click("#login-submit")
            refused = await page.wait_for("document.getElementById('login-error').textContent", what="refusal")
            assert "refused" in refused
            assert await page.evaluate("sessionStorage.length") == 0

            # The right key opens the app and is kept in sessionStorage only.
            await page.type_into("#login-key", MANAGEMENT_KEY)
            await page.click("#login-submit")
            await page.wait_for("!document.getElementById('app').hidden", what="the app after logging in")
            assert await page.evaluate("sessionStorage.getItem('muxtrio.management-key')") == MANAGEMENT_KEY
            assert await page.evaluate("localStorage.length") == 0
            states = await page.wait_for(
                f"(() => {{ const s = {_states_js()}; return Object.keys(s).length === 2 ? s : null; }})()",
                what="both alpha credentials",
            )
            assert states == {"alpha#0": "ok", "alpha#1": "ok"}

            # Traffic through the official SDK, then a provider 429: one credential cools, the request fails over.
            assert await chat(base, "m") == "hello"
            assert await chat(base, "m", stream=True) == "hello"
            alpha.rate_limit_next = 1
            assert await chat(base, "m") == "hello"
            cooling = await page.wait_for(
                f"(() => {{ const s = {_states_js()}; return Object.values(s).includes('cooling') ? s : null; }})()",
                what="a credential shown cooling after the provider's 429",
            )
            cooled = next(label for label, value in cooling.items() if value == "cooling")
            row = f"document.querySelector('#credentials tr[data-label=\"{cooled}\"]')"
            assert "cooling" in await page.evaluate(f"{row}.cells[3].textContent")
            assert await page.evaluate(f"{row}.cells[7].textContent") != ""  # its last error class
            await page.wait_for(
                f"Object.values({_states_js()}).every(s => s === 'ok')",
                what="the cooled credential back to ok",
                limit_s=RETRY_AFTER_S + 45.0,
            )

            # Charts: twelve five-minute buckets from the usage store, with data.
            requests = await page.wait_for(
                f"(() => {{ const v = {_points_js('chart-requests')}; return v.length === 12 ? v : null; }})()",
                what="the requests chart",
            )
            # A bucket that has only the seeded requests shows exactly their rate; at most the newest two can differ
            # (live traffic, or the clock entering a new five minutes while the test runs).
            assert requests.count(SEEDED_PER_BUCKET / 5) >= 10, requests
            errors = await page.evaluate(_points_js("chart-errors"))
            assert len(errors) == 12 and errors.count(1 / 5) >= 2, errors
            latency = await page.evaluate(_points_js("chart-latency"))
            assert sum(v in {150.0 + 10 * b for b in range(12)} for v in latency) >= 10, latency
            assert len(await page.evaluate(_points_js("chart-ttft"))) >= 10

            # Usage by model, then by client key, for the chosen range.
            usage_js = (
                "[...document.querySelectorAll('#usage-table tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
            )
            by_model = await page.wait_for(
                f"(() => {{ const rows = {usage_js}; return rows.length && rows[0][0] === 'm' ? rows : null; }})()",
                what="usage by model",
            )
            assert int(by_model[0][1]) >= 12 * SEEDED_PER_BUCKET
            assert await page.evaluate("document.querySelectorAll('#usage-chart rect.bar').length") >= 1
            await page.evaluate(
                "(() => { const s = document.getElementById('usage-group'); s.value = 'key';"
                " s.dispatchEvent(new Event('change')); })()"
            )
            by_key = await page.wait_for(
                f"(() => {{ const rows = {usage_js}; const names = rows.map(r => r[0]);"
                " return names.includes('team-a') && names.includes('team-b') ? rows : null; })()",
                what="usage by client key",
            )
            assert CLIENT_KEY not in orjson.dumps(by_key).decode()

            # Recent failures: the earlier failed request with its error class; its request log downloads.
            failure_js = (
                f"[...document.querySelectorAll('#failures tbody tr')].find(r => r.cells[1].textContent === "
                f"'{SEEDED_FAILED_ID}')"
            )
            await page.wait_for(f"Boolean({failure_js})", what="the failed request")
            assert await page.evaluate(f"{failure_js}.cells[4].textContent") == "upstream_5xx"
            assert await page.evaluate(f"{failure_js}.cells[3].textContent") == "502"
            await page.evaluate(f"{failure_js}.querySelector('a').click()")
            downloaded = downloads / log_name
            with trio.fail_after(30):  # hang guard
                while not downloaded.exists():
                    await trio.sleep(0.05)
            assert orjson.loads(downloaded.read_bytes())["request_id"] == SEEDED_FAILED_ID

            # The config (masked) and a reload from the page that takes effect.
            config_json = await page.wait_for("document.getElementById('config-json').textContent", what="config")
            assert "alpha" in config_json and ALPHA_KEYS[0] not in config_json and CLIENT_KEY not in config_json
            with pytest.raises(openai.NotFoundError):
                await chat(base, "m2")
            config_path.write_text(config_text(tmp_path, alpha_url, beta_url))
            await page.click("#reload")
            result = await page.wait_for(
                "document.getElementById('reload-result').textContent", what="the reload result"
            )
            assert "applied" in result and "providers" in result
            await page.wait_for(f"{_states_js()}['beta#0'] === 'ok'", what="the new provider's credential")
            await page.wait_for(
                "document.getElementById('config-json').textContent.includes('beta')", what="the new config"
            )
            assert await chat(base, "m2") == "hello"
            assert beta.keys_seen == [BETA_KEY]
            assert await page.evaluate(
                "[...document.querySelectorAll('#reloads tbody tr')].some(r => r.cells[1].textContent === 'api'"
                " && r.cells[2].textContent === 'applied')"
            )

            # Not blank, and drawn without an exception, a console error or a CSP violation.
            await page.call("Emulation.setDeviceMetricsOverride",
                            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
            small = await page.call(
                "Page.captureScreenshot",
                {"format": "png", "clip": {"x": 0, "y": 0, "width": 1400, "height": 1000, "scale": 0.25}},
            )
            width, height, pixels = png_pixels(base64.b64decode(small["data"]))
            assert (width, height) == (350, 250)
            variance, colours = luminance_spread(pixels)
            assert variance > 100 and colours > 50, (variance, colours)
            full = await page.screenshot(tmp_path / "dashboard.png")
            if os.environ.get("MUXTRIO_UPDATE_DASHBOARD_PNG") == "1":
                DOCS_SCREENSHOT.write_bytes(full)
            assert page.problems == []
        nursery.cancel_scope.cancel()


async def test_without_the_usage_store_the_page_samples_counters_and_operates_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``usage.dsn: ""``: the traffic charts fall back to this worker's counters sampled by the page, the usage
    section says why it is empty; disabling a credential from the page shows it disabled with the reason, and
    enabling it brings it back; a provider's 401 shows the credential refused, and reset from the page clears it."""
    monkeypatch.setenv("MUXTRIO_MANAGEMENT_KEY", MANAGEMENT_KEY)
    for name in ("LLM_MUX_MANAGEMENT_KEY", "MUXTRIO_API_KEYS", "MUXTRIO_USAGE_DSN"):
        monkeypatch.delenv(name, raising=False)
    alpha = FakeOpenAI()
    config_path = tmp_path / "muxtrio.yaml"
    async with trio.open_nursery() as nursery:
        alpha_url = await _serve(nursery, alpha)
        text = config_text(tmp_path, alpha_url).replace(f"dsn: sqlite:///{tmp_path}/usage.db", 'dsn: ""')
        config_path.write_text(text)
        async with gateway(config_path) as base, chromium(tmp_path / "profile") as browser:
            page = await browser.new_page(1400, 1000)
            await log_in(page, base)
            await page.wait_for(
                "document.getElementById('traffic-source').textContent.includes('usage store is off')",
                what="the fallback to sampled counters",
            )
            assert "usage persistence is off" in await page.wait_for(
                "document.getElementById('usage-error').textContent", what="the usage section's reason"
            )
            for stream in (False, True, False):
                assert await chat(base, "m", stream=stream) == "hello"
            await page.wait_for(f"{_points_js('chart-requests')}.some(v => v > 0)", what="a sampled request rate")
            assert "need the usage store" in await page.evaluate(
                "document.querySelector('#chart-latency .nodata').textContent"
            )

            row = "document.querySelector('#credentials tr[data-label=\"alpha#0\"]')"
            await page.wait_for(f"Boolean({row})", what="the alpha credential")
            await page.click("#credentials tr[data-label='alpha#0'] button[data-action='disable']")
            await page.wait_for(f"{row}.cells[3].dataset.state === 'disabled'", what="the credential disabled")
            assert "disabled from the dashboard" in await page.evaluate(f"{row}.cells[3].textContent")
            before = alpha.keys_seen.count(ALPHA_KEYS[0])
            for _ in range(3):  # the other credential answers; the disabled one gets nothing
                assert await chat(base, "m") == "hello"
            assert alpha.keys_seen.count(ALPHA_KEYS[0]) == before
            await page.click("#credentials tr[data-label='alpha#0'] button[data-action='enable']")
            await page.wait_for(f"{row}.cells[3].dataset.state === 'ok'", what="the credential enabled again")
            for _ in range(3):  # least in flight, ties rotated: both credentials take requests again
                assert await chat(base, "m") == "hello"
            assert alpha.keys_seen.count(ALPHA_KEYS[0]) > before

            # A provider 401: that credential is shown refused with the status; reset from the page clears it.
            alpha.refuse_next = 1
            assert await chat(base, "m") == "hello"  # the other credential answers
            refused = await page.wait_for(
                f"(() => {{ const s = {_states_js()}; const l = Object.keys(s).find(k => s[k] === 'refused');"
                " return l || null; })()",
                what="a credential shown refused after the provider's 401",
            )
            refused_row = f"document.querySelector('#credentials tr[data-label=\"{refused}\"]')"
            assert "HTTP 401" in await page.evaluate(f"{refused_row}.cells[3].textContent")
            await page.click(f"#credentials tr[data-label='{refused}'] button[data-action='reset']")
            await page.wait_for(f"{refused_row}.cells[3].dataset.state === 'ok'", what="the refusal reset")
            assert page.problems == []
        nursery.cancel_scope.cancel()

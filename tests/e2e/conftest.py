"""The end-to-end stack: the fake providers and the REAL gateway (``MuxApp`` under Hypercorn's trio worker), all on
127.0.0.1 with ports from the OS, started fresh for every test inside the test's own trio run.

Why per test: every test starts with cold credential pools (a 429 cools a credential, a cut opens nothing that leaks
into the next test), and the fakes' request logs hold only that test's traffic. Start-up is milliseconds.

The official SDKs' sync clients block, so tests call them through :func:`run_sync` (``trio.to_thread``) while the
servers keep running in the test's nursery; the async openai/anthropic clients run directly under trio.

Config: one provider per upstream kind, named after it (``openai``, ``responses``, ``anthropic``, ``gemini``,
``ollama``), each serving the fakes' behaviours under the alias ``<upstream>-<behaviour>`` (the upstream receives the
bare behaviour name); ``<upstream>-pool`` is a second provider of the same kind with two keys (the first one always
rate-limited); ``<upstream>-revoked`` is served by a provider whose key the fake refuses (401; not for ollama, which
has no keys); ``<upstream>-gone`` names a model the fake does not know (404); ``<upstream>-ctxlimit`` falls back to
``<FALLBACK[upstream]>-text``; ``stitch`` is served by ``anthropic`` (whose stream is cut) and ``ollama`` (which
continues an assistant prefill); ``regen`` by ``anthropic`` (cut) and ``gemini`` (no prefill: it answers the original
request in full, starting with what was cut); ``regen-diverge`` by ``anthropic`` (cut) and ``gemini`` (a different
answer); ``dead-text`` by a provider on a loopback port that refuses connections. ``api_keys=("test-key",)``.
Override config fields per test with ``@pytest.mark.gateway_config(field=value)``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import attrs
import httpx2
import pytest
import trio

from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType
from muxtrio.server.app import MuxApp
from muxtrio.server.listener import serve
from muxtrio.server.runner import hypercorn_config
from tests.e2e.fakes import BEHAVIOURS, FakeProvider, Seen
from tests.e2e.family_rules import FAMILY_ALIASES

CLIENT_KEY = "test-key"
BAD_CLIENT_KEY = "wrong-key"
REVOKED_KEY = "sk-revoked-by-the-provider-0001"

# upstream -> (provider type, which fake serves it, base-URL suffix, the provider key the fake accepts)
UPSTREAMS: dict[str, tuple[ProviderType, str, str, str | None]] = {
    "openai": (ProviderType.OPENAI, "openai", "/v1", "sk-fake-openai-0001"),
    "responses": (ProviderType.OPENAI_RESPONSES, "openai", "/v1", "sk-fake-openai-0001"),
    "anthropic": (ProviderType.ANTHROPIC, "anthropic", "", "sk-ant-fake-0001"),
    "gemini": (ProviderType.GEMINI, "gemini", "", "AIzaFakeGeminiKey0001"),
    "ollama": (ProviderType.OLLAMA, "ollama", "", None),
}
UPSTREAM_NAMES = tuple(UPSTREAMS)
FAKE_KINDS = ("openai", "anthropic", "gemini", "ollama")
FALLBACK = {"openai": "anthropic", "responses": "anthropic", "anthropic": "openai", "gemini": "ollama",
            "ollama": "openai"}
STITCH = "stitch"
REGEN = "regen"
REGEN_DIVERGE = "regen-diverge"
DEAD = "dead-text"  # served by a provider on a loopback port where nothing listens

# Parametrize over upstream kinds / client SDKs, with ids that say which is which ("anthropic-provider-gemini-sdk").
PER_UPSTREAM = pytest.mark.parametrize("upstream", UPSTREAM_NAMES, ids=[f"{u}-provider" for u in UPSTREAM_NAMES])
STREAM_OR_NOT = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
SYNC_CALL_LIMIT_S = 60.0  # hang guard for one SDK call; never a pass condition
_TLS = ssl.create_default_context()  # built once: a context per client costs ~25 ms (the CA bundle is loaded)

T = TypeVar("T")


def pool_keys(upstream: str) -> tuple[str, str]:
    return f"sk-{upstream}-pool-first", f"sk-{upstream}-pool-second"


def provider_key(upstream: str) -> str | None:
    return UPSTREAMS[upstream][3]


def build_config(fakes: dict[str, FakeProvider], dead_url: str, **overrides: Any) -> Config:
    providers: list[ProviderConfig] = [
        ProviderConfig(type=ProviderType.OPENAI, name="dead", base_url=dead_url + "/v1",
                       credentials=(Credential("sk-dead-0001"),), models=(ModelConfig(name="text", alias=DEAD),)),
    ]
    for upstream, (ptype, fake, suffix, key) in UPSTREAMS.items():
        base_url = fakes[fake].url + suffix
        providers.append(
            ProviderConfig(
                type=ptype,
                name=upstream,
                base_url=base_url,
                credentials=(Credential(key),) if key else (),
                models=tuple(ModelConfig(name=b, alias=f"{upstream}-{b}") for b in BEHAVIOURS)
                + tuple(ModelConfig(name=m, alias=f"{upstream}-{m}") for m in FAMILY_ALIASES.get(upstream, ())),
            )
        )
        if key:
            # A credential the fake refuses (401), and a model it does not know (404).
            providers.append(
                ProviderConfig(
                    type=ptype,
                    name=f"{upstream}-revoked",
                    base_url=base_url,
                    credentials=(Credential(REVOKED_KEY),),
                    models=(ModelConfig(name="text", alias=f"{upstream}-revoked"),),
                )
            )
        providers.append(
            ProviderConfig(
                type=ptype,
                name=f"{upstream}-gone",
                base_url=base_url,
                credentials=(Credential(key),) if key else (),
                models=(ModelConfig(name="gone", alias=f"{upstream}-gone"),),
            )
        )
        providers.append(
            ProviderConfig(
                type=ptype,
                name=f"{upstream}-pool",
                base_url=base_url,
                credentials=tuple(Credential(k) for k in pool_keys(upstream)),
                models=(ModelConfig(name="keyed", alias=f"{upstream}-pool"),),
            )
        )
    # "stitch": the same alias on a provider that cuts its stream and on a prefill-capable one that continues it.
    # "regen" / "regen-diverge": the cut provider and one without prefill that regenerates the whole answer.
    extra = {
        "anthropic": (ModelConfig(name="cut", alias=STITCH), ModelConfig(name="cut", alias=REGEN),
                      ModelConfig(name="cut", alias=REGEN_DIVERGE)),
        "ollama": (ModelConfig(name="continue", alias=STITCH),),
        "gemini": (ModelConfig(name="continue", alias=REGEN), ModelConfig(name="text", alias=REGEN_DIVERGE)),
    }
    providers = [
        attrs.evolve(p, models=(*p.models, *extra[p.name])) if p.name in extra else p for p in providers
    ]
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "api_keys": (CLIENT_KEY,),
        "providers": tuple(providers),
        "fallbacks": {f"{u}-ctxlimit": (f"{FALLBACK[u]}-text",) for u in UPSTREAMS},
        "shutdown_grace": 2.0,
    }
    settings.update(overrides)
    return Config(**settings)


@dataclass
class Stack:
    """What a test gets: the gateway's base URL, the fakes, the config, and a shared ordering log."""

    url: str
    fakes: dict[str, FakeProvider]
    config: Config
    events: list[str] = field(default_factory=list)

    def fake(self, upstream: str) -> FakeProvider:
        return self.fakes[UPSTREAMS[upstream][1]]

    def requests(self, upstream: str) -> list[Seen]:
        """What the fake behind ``upstream`` received in ``upstream``'s format (openai and responses share a fake)."""
        return [s for s in self.fake(upstream).seen if s.api == upstream]

    def all_requests(self) -> list[Seen]:
        return [s for f in self.fakes.values() for s in f.seen]

    @staticmethod
    def model(upstream: str, behaviour: str) -> str:
        return f"{upstream}-{behaviour}"


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a blocking SDK function in a worker thread while the servers keep running in this trio run."""
    with trio.fail_after(SYNC_CALL_LIMIT_S):
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), abandon_on_cancel=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**fields): override muxtrio Config fields for this test")


def _closed_port_url() -> str:
    """A loopback URL whose port the OS just handed out and nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _wait_healthy(url: str) -> None:
    async with httpx2.AsyncClient(timeout=5.0, verify=_TLS) as client:
        with trio.fail_after(10):
            while True:
                response = await client.get(url + "/healthz")
                if response.status_code == 200:
                    return
                await trio.sleep(0.01)


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    marker = request.node.get_closest_marker("gateway_config")
    overrides = dict(marker.kwargs) if marker is not None else {}
    events: list[str] = []
    async with trio.open_nursery() as nursery:
        fakes: dict[str, FakeProvider] = {}
        for kind in FAKE_KINDS:
            keys = {k for u, (_, f, _, k) in UPSTREAMS.items() if f == kind and k}
            keys |= {k for u, (_, f, _, _) in UPSTREAMS.items() if f == kind for k in pool_keys(u)}
            fakes[kind] = FakeProvider(kind, keys, events)
            await nursery.start(fakes[kind].serve)
        config = build_config(fakes, _closed_port_url(), **overrides)
        hc = hypercorn_config(config)  # the runner's own Hypercorn settings
        hc.bind = ["127.0.0.1:0"]
        hc.graceful_timeout = 2.0
        stopped = trio.Event()
        shutdown = trio.Event()

        async def gateway(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(MuxApp(config), hc, http2=config.http2, stop=shutdown, task_status=task_status)
            finally:
                stopped.set()

        binds = await nursery.start(gateway)
        url = binds[0]
        await _wait_healthy(url)
        yield Stack(url, fakes, config, events)
        shutdown.set()
        with trio.move_on_after(10):
            await stopped.wait()
        nursery.cancel_scope.cancel()

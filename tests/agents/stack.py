"""The agent-CLI stack (fixtures re-exported by ``conftest.py``): the CLIs installed from npm (once per cache
directory), the REAL gateway (``MuxApp`` under Hypercorn's trio worker, as in ``tests/e2e``) and one strict fake
provider, all on 127.0.0.1.

- ``agent_clis`` (session): ``npm install --prefix <cache>`` of the pinned CLI versions in :data:`CLI_PACKAGES`. The
  cache is ``$MUXTRIO_AGENT_CLI_CACHE`` or ``~/.cache/muxtrio/agent-clis/<hash of the pins>``; a complete install
  (a ``.complete`` stamp written after npm succeeded) is reused, so reruns cost nothing. npm itself must be on PATH
  (the tests need the npm registry the first time). Each CLI's required node version is checked against the node on
  PATH: every pinned CLI runs on node >= 20 (Claude Code ships a native binary; its package's ``engines`` field
  says 22 but nothing of it runs on node).
- ``open_agent_stack(provider_format, plan)``: the fake of that format (``chat``, ``responses``, ``anthropic``,
  ``gemini``) with the CLI's shell plan, and a gateway whose only provider is that fake, serving the client model
  name :data:`CLIENT_MODEL` as a realistic upstream model of the family (so the fake applies that family's
  parameter rules). The gateway app is wrapped in an ASGI recorder that keeps every client request (scope type,
  method, path, headers without credentials, body / WebSocket messages) for diagnosis and for the WebSocket-mode
  assertion.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from hypercorn.trio import serve

from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType
from muxtrio.server.app import MuxApp
from muxtrio.server.runner import hypercorn_config
from tests.agents.fakes import AgentProvider, ShellPlan

CLI_PACKAGES = {
    "codex": ("@openai/codex", "0.171.0"),
    "claude": ("@anthropic-ai/claude-code", "2.1.332"),
    "gemini": ("@google/gemini-cli", "0.61.0"),
}
CLIENT_KEY = "test-key"
CLIENT_MODEL = "agent-model"
NPM_INSTALL_LIMIT_S = 900

# provider format -> (muxtrio provider type, fake kind, base-URL suffix, provider key, upstream model of the family)
PROVIDER_FORMATS: dict[str, tuple[ProviderType, str, str, str, str]] = {
    "chat": (ProviderType.OPENAI, "openai", "/v1", "sk-fake-openai-0001", "gpt-5-mini"),
    "responses": (ProviderType.OPENAI_RESPONSES, "openai", "/v1", "sk-fake-openai-0001", "gpt-5"),
    "anthropic": (ProviderType.ANTHROPIC, "anthropic", "", "sk-ant-fake-0001", "claude-sonnet-4-6"),
    "gemini": (ProviderType.GEMINI, "gemini", "", "AIzaFakeGeminiKey0001", "gemini-3-pro-preview"),
}
SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "cookie")


# ------------------------------------------------------------------------------------------------ the CLIs from npm
@dataclass(frozen=True)
class AgentClis:
    bin_dir: Path
    install_seconds: float  # 0.0 when the cache was reused

    def path(self, name: str) -> Path:
        return self.bin_dir / name


def _cache_dir() -> Path:
    pins = json.dumps(CLI_PACKAGES, sort_keys=True).encode()
    default = Path.home() / ".cache" / "muxtrio" / "agent-clis" / hashlib.sha256(pins).hexdigest()[:16]
    return Path(os.environ.get("MUXTRIO_AGENT_CLI_CACHE", default))


def _node_major() -> int:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="session")
def agent_clis() -> AgentClis:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("the agent-CLI tests need node and npm on PATH (they install the CLIs from the npm registry)")
    if _node_major() < 20:
        pytest.fail("the pinned agent CLIs need node >= 20")
    cache = _cache_dir()
    stamp = cache / ".complete"
    started = time.monotonic()
    installed_now = not stamp.exists()
    if installed_now:
        cache.mkdir(parents=True, exist_ok=True)
        specs = [f"{package}@{version}" for package, version in CLI_PACKAGES.values()]
        result = subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--loglevel=error", *specs],
            capture_output=True, text=True, timeout=NPM_INSTALL_LIMIT_S, check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm install failed ({result.returncode}):\n{result.stderr[-4000:]}")
        stamp.write_text(json.dumps(CLI_PACKAGES))
    seconds = round(time.monotonic() - started, 1) if installed_now else 0.0
    bin_dir = cache / "node_modules" / ".bin"
    for name in CLI_PACKAGES:
        if not (bin_dir / name).exists():
            pytest.fail(f"npm install left no {name} executable in {bin_dir}")
    return AgentClis(bin_dir, seconds)


# ------------------------------------------------------------------------------------------------ the stack
@dataclass
class ClientRequest:
    """One request a CLI sent to the gateway (credentials removed)."""

    kind: str  # http | websocket
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    messages: list[str] = field(default_factory=list)  # WebSocket text frames from the client
    status: int = 0

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "method": self.method, "path": self.path, "query": self.query,
                "headers": self.headers, "status": self.status,
                "body": self.body.decode("utf-8", "replace"), "messages": self.messages}


class RecordingApp:
    """An ASGI wrapper that records what clients send to the gateway (and the HTTP status it answered)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[ClientRequest] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        for secret in SECRET_HEADERS:
            if secret in headers:
                headers[secret] = "<redacted>"
        record = ClientRequest(scope["type"], scope.get("method", "GET"), scope["path"],
                               scope.get("query_string", b"").decode("latin-1"), headers)
        self.requests.append(record)

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                record.body += message.get("body", b"")
            elif message["type"] == "websocket.receive" and message.get("text") is not None:
                record.messages.append(message["text"])
            return message

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            elif message["type"] == "websocket.accept":
                record.status = 101
            await send(message)

        await self.app(scope, recording_receive, recording_send)


@dataclass
class AgentStack:
    url: str
    provider_format: str
    fake: AgentProvider
    recorder: RecordingApp
    upstream_model: str

    def provider_requests(self) -> list[Any]:
        api = "openai" if self.provider_format == "chat" else self.provider_format
        return [s for s in self.fake.seen if s.api == api]

    def dump(self, directory: Path) -> Path:
        """Write the client-side and provider-side request logs (for diagnosis); returns the directory."""
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "client-requests.jsonl").open("w") as out:
            for request in self.recorder.requests:
                out.write(json.dumps(request.json()) + "\n")
        with (directory / "provider-requests.jsonl").open("w") as out:
            for seen in self.fake.seen:
                headers = {k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in seen.headers.items()}
                out.write(json.dumps({"api": seen.api, "path": seen.path, "query": seen.query, "status": seen.status,
                                      "headers": headers, "body": seen.body}) + "\n")
        return directory


def agent_config(provider_format: str, fake_url: str, **overrides: Any) -> Config:
    ptype, _, suffix, key, upstream_model = PROVIDER_FORMATS[provider_format]
    provider = ProviderConfig(type=ptype, name=provider_format, base_url=fake_url + suffix,
                              credentials=(Credential(key),),
                              models=(ModelConfig(name=upstream_model, alias=CLIENT_MODEL),))
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "api_keys": (CLIENT_KEY,),
                                "providers": (provider,), "shutdown_grace": 2.0}
    settings.update(overrides)
    return Config(**settings)


@asynccontextmanager
async def open_agent_stack(provider_format: str, plan: ShellPlan) -> AsyncIterator[AgentStack]:
    _, kind, _, key, upstream_model = PROVIDER_FORMATS[provider_format]
    async with trio.open_nursery() as nursery:
        fake = AgentProvider(kind, {key}, plan)
        await nursery.start(fake.serve)
        config = agent_config(provider_format, fake.url)
        hc = hypercorn_config(config)
        hc.bind = ["127.0.0.1:0"]
        hc.graceful_timeout = 2.0
        recorder = RecordingApp(MuxApp(config))
        shutdown = trio.Event()
        stopped = trio.Event()

        async def gateway(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(recorder, hc, shutdown_trigger=shutdown.wait, task_status=task_status)
            finally:
                stopped.set()

        binds = await nursery.start(gateway)
        url = binds[0]
        async with httpx2.AsyncClient(timeout=5.0) as client:
            with trio.fail_after(10):
                while (await client.get(url + "/healthz")).status_code != 200:
                    await trio.sleep(0.01)
        try:
            yield AgentStack(url, provider_format, fake, recorder, upstream_model)
        finally:
            shutdown.set()
            with trio.move_on_after(10):
                await stopped.wait()
            nursery.cancel_scope.cancel()

"""A real ``muxtrio serve`` process (any number of workers) in front of the e2e fake providers, for observability
tests: the fakes run in their own trio loop in a thread, the gateway is a subprocess with a YAML config written here,
and the test drives it with the official SDKs (blocking clients) from the test thread.

The config (``write_config``): one provider per upstream kind serving ``text``, ``hold``, ``flaky`` and ``ratelimit``
as ``<upstream>-<behaviour>``; ``openai-pool``: two keys, the first always rate-limited (one failover). Every
provider key and the gateway key are distinct, recognisable secrets (:data:`SECRETS`), so a test can grep for them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import httpx2
import orjson
import trio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.fakes import FakeProvider
from tests.services import free_port

GATEWAY_KEY = "mux-gateway-secret-7f3a9c"
KEYS = {
    "openai": "sk-fake-openai-0001",
    "anthropic": "sk-ant-fake-0001",
    "gemini": "AIzaFakeGeminiKey0001",
}
POOL_KEYS = ("sk-openai-pool-first", "sk-openai-pool-second")
ECHO_KEY = "sk-echo-provider-secret-9d2e41"  # the key of a provider that echoes what it received (see Echo)
SECRETS = (GATEWAY_KEY, *KEYS.values(), *POOL_KEYS, ECHO_KEY)
BEHAVIOURS = ("text", "hold", "flaky", "ratelimit")
# upstream -> (provider type, fake kind, base-URL suffix, key)
UPSTREAMS: dict[str, tuple[str, str, str, str | None]] = {
    "openai": ("openai", "openai", "/v1", KEYS["openai"]),
    "responses": ("openai-responses", "openai", "/v1", KEYS["openai"]),
    "anthropic": ("anthropic", "anthropic", "", KEYS["anthropic"]),
    "gemini": ("gemini", "gemini", "", KEYS["gemini"]),
    "ollama": ("ollama", "ollama", "", None),
}


class Echo:
    """A hostile upstream: every request is answered 400 with the request's headers and body echoed back in the error
    message and in a response header, so the provider key comes back in everything the gateway might log."""

    def __init__(self) -> None:
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        task_status.started(self.url)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        head: h11.Request | None = None
        body = b""
        with trio.move_on_after(30):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    head = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            assert head is not None
            echoed = "; ".join(f"{k.decode()}={v.decode()}" for k, v in head.headers) + " body=" + body.decode()
            reply = orjson.dumps({"error": {"message": f"invalid request, you sent {echoed}",
                                            "type": "invalid_request_error", "param": None, "code": None}})
            auth = dict(head.headers).get(b"authorization", b"")
            await stream.send_all(conn.send(h11.Response(status_code=400, headers=[
                ("content-type", "application/json"), ("content-length", str(len(reply))), ("x-echo", auth)])))
            await stream.send_all(conn.send(h11.Data(data=reply)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        await stream.aclose()


class Fakes:
    """The four fake providers, served by a trio loop in a daemon thread for the duration of the block."""

    def __init__(self) -> None:
        self.fakes = {kind: FakeProvider(kind, {*KEYS.values(), *POOL_KEYS}) for kind in ("openai", "anthropic",
                                                                                           "gemini", "ollama")}
        self.echo = Echo()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            for fake in self.fakes.values():
                await nursery.start(fake.serve)
            await nursery.start(self.echo.serve)
            self._ready.set()

    def release(self) -> None:
        """Let every held stream go on."""
        assert self._token is not None
        for fake in self.fakes.values():
            trio.from_thread.run_sync(fake.release.set, trio_token=self._token)

    def __enter__(self) -> Fakes:
        self._thread.start()
        assert self._ready.wait(10), "the fakes did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._cancel is not None:
            cancel = self._cancel
            trio.from_thread.run_sync(cancel.cancel, trio_token=self._token)
        self._thread.join(10)


def write_config(path: Path, fakes: Fakes, **extra: Any) -> Path:
    providers: list[dict[str, Any]] = []
    for upstream, (ptype, kind, suffix, key) in UPSTREAMS.items():
        provider: dict[str, Any] = {
            "type": ptype, "name": upstream, "base-url": fakes.fakes[kind].url + suffix,
            "models": [{"name": b, "alias": f"{upstream}-{b}"} for b in BEHAVIOURS],
        }  # fmt: skip
        if key:
            provider["api-keys"] = [key]
        providers.append(provider)
    providers.append({
        "type": "openai", "name": "openai-pool", "base-url": fakes.fakes["openai"].url + "/v1",
        "api-keys": list(POOL_KEYS), "models": [{"name": "keyed", "alias": "openai-pool"}],
    })  # fmt: skip
    providers.append({
        "type": "openai", "name": "echo-up", "base-url": fakes.echo.url + "/v1", "api-keys": [ECHO_KEY],
        "models": [{"name": "leaky", "alias": "echo-leaky"}],
    })  # fmt: skip
    settings: dict[str, Any] = {"api-keys": [GATEWAY_KEY], "providers": providers, "shutdown-grace": 5}
    settings.update(extra)
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    stderr: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def server_env(data_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MUXTRIO_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "LLM_MUX_", "PROMETHEUS_"))}
    env["XDG_DATA_HOME"] = str(data_home)
    return env


@contextmanager
def serve(config: Path, data_home: Path, *args: str) -> Iterator[Server]:
    """``muxtrio serve --config config`` on a free loopback port; stderr goes to a file the test can read. The
    process is SIGTERMed at the end of the block (killed if it does not stop within 30 s)."""
    port = free_port()
    stderr = data_home / f"stderr-{port}.log"
    with stderr.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "muxtrio", "serve", "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port), *args],
            stdout=sink, stderr=sink, env=server_env(data_home),
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, server.log_text()
            assert time.monotonic() < deadline, "the server did not become healthy:\n" + server.log_text()
            try:
                if httpx2.get(server.url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        yield server
    finally:
        try:
            server.stop()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """``GET /metrics`` parsed with prometheus-client's own parser: (sample name, labels) -> value."""
    response = httpx2.get(url + "/metrics", timeout=10.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)

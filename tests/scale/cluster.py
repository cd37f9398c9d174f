"""Scale-out test harness: a scriptable fake OpenAI provider on a real loopback port (threads, so it serves while
the test blocks in an SDK call) and muxtrio nodes as real ``muxtrio serve`` processes sharing one Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from tests.services import free_port
from tests.test_serve import clean_env, wait_healthy

MODEL = "fake-model"


class FakeProvider:
    """``POST /v1/chat/completions``: answers per :attr:`mode` — ``ok``, ``slow`` (ok after 1.5 s), ``429``
    (Retry-After: 120) or ``500`` — and counts what reached it. Streams send ``chunks`` content events, ``hold``
    seconds apart."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.chunks = 3
        self.hold = 0.0
        self.lock = threading.Lock()
        self.seen: list[str] = []  # the mode each request was answered with
        self.bodies: list[dict[str, object]] = []
        self.streams_started = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with provider.lock:
                    mode = provider.mode
                    provider.seen.append(mode)
                    provider.bodies.append(body)
                if mode == "429":
                    self._json(429, {"error": {"message": "slow down", "type": "rate_limit_error"}},
                               {"retry-after": "120"})
                elif mode == "500":
                    self._json(500, {"error": {"message": "boom", "type": "server_error"}})
                elif mode == "slow":
                    time.sleep(1.5)
                    self._json(200, provider.whole())
                elif body.get("stream"):
                    self._stream()
                else:
                    self._json(200, provider.whole())

            def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                provider.streams_started.set()
                try:
                    for i in range(provider.chunks):
                        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                                 "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
                        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                        self.wfile.flush()
                        time.sleep(provider.hold)
                    end = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def whole() -> dict[str, object]:
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def count(self, mode: str) -> int:
        with self.lock:
            return self.seen.count(mode)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def node_config(provider: FakeProvider, redis_url: str | None, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {
        "api-keys": ["sk-test"],
        "usage": {"dsn": ""},
        "request-retry": 0,
        "max-retry-interval": "1s",
        "circuit-breaker": {"failures": 2, "open-seconds": "2s"},
        "providers": [{"type": "openai", "name": "fake", "base-url": provider.url, "api-key": "sk-upstream",
                       "models": [MODEL]}],
    }
    if redis_url is not None:
        # refresh-interval 0: every request reads the shared state, so what one node learnt is seen by the next
        # request on another node however soon it comes (the default 50 ms would make these tests timing-dependent)
        config["state"] = {"backend": "redis", "url": redis_url, "lease-ttl": "1500ms", "refresh-interval": 0}
    config.update(extra)
    return config


@contextmanager
def node(config: dict[str, object], tmp: Path, name: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """One ``muxtrio serve --workers 1`` process on its own port, killed afterwards."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 (closed below, after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, text=True, env=clean_env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()

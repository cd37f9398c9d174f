"""`muxtrio serve` as a real process under hostile connections and signals.

- No single connection stops the process: HTTP/2 prior knowledge with a 1 MB body answered early (401, 404, 405,
  413), ``Upgrade: h2c`` requests, and HTTP/1.1 early answers while the body is still unread, with HTTP/2 off (the
  default) and on; after each, the same process keeps serving.
- Signals: a second SIGINT/SIGTERM during the drain stops at once with one line and no traceback; SIGHUP reloads the
  config file (tests/server/test_reload.py, tests/test_cli_control.py) and the gateway keeps serving; the last line
  is ``stopped``.
- The access log cannot be forged: a ``%0a`` in the path and a newline in the model name are written escaped.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import orjson
import pytest

from tests.test_serve import clean_env, free_port, wait_healthy

KEY = "hardening-key"
AUTH = {"authorization": f"Bearer {KEY}"}
GUARD_S = 20.0  # a hang fails the test instead of blocking the suite
BODY_1MB = orjson.dumps({"model": "muxtrio-echo", "messages": [{"role": "user", "content": "a" * 1_000_000}]})


class Server:
    """A running ``muxtrio serve`` with its stderr collected line by line."""

    def __init__(self, proc: subprocess.Popen[str], base: str) -> None:
        self.proc = proc
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str) -> str:
        """The first line (from now on, or already read) containing ``text``."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))

    def finish(self) -> list[str]:
        """Wait for the process to exit (bounded) and return all of its stderr lines."""
        self.proc.wait(timeout=GUARD_S)
        while (line := self._queue.get(timeout=GUARD_S)) is not None:
            self.lines.append(line)
        return self.lines

    def healthy(self) -> None:
        assert self.proc.poll() is None, "the server process exited"
        assert httpx2.get(self.base + "/healthz", timeout=5.0).status_code == 200


@contextmanager
def running(tmp_path: Path, extra: str = "") -> Iterator[Server]:
    config = tmp_path / "gw.yaml"
    config.write_text(f"api-keys: [{KEY}]\nmax-request-size: 2MB\n{extra}")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield Server(proc, base)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------- one connection, one fate
EARLY_ANSWERS = [  # (method, path, auth, the status the gateway answers before reading the body)
    ("POST", "/v1/chat/completions", False, 401),
    ("POST", "/v1/no-such-route", True, 404),
    ("PUT", "/v1/chat/completions", True, 405),
    ("POST", "/v1/chat/completions", True, 413),
]
EARLY_IDS = [str(status) for *_, status in EARLY_ANSWERS]


@pytest.mark.parametrize("http2", [False, True], ids=["http2-off", "http2-on"])
def test_h2_prior_knowledge_with_early_answers_never_stops_the_process(tmp_path: Path, http2: bool) -> None:
    body = BODY_1MB + b" " * (3_000_000 - len(BODY_1MB))  # over max-request-size for the 413 case
    with running(tmp_path, "http2: true\n" if http2 else "") as server:
        for method, path, auth, status in EARLY_ANSWERS:
            headers = {"authorization": f"Bearer {KEY}"} if auth else {}
            content = body if status == 413 else BODY_1MB
            with httpx2.Client(http1=False, http2=True, timeout=GUARD_S) as client:
                try:
                    response = client.request(method, server.base + path, content=content, headers=headers)
                except httpx2.TransportError:
                    assert not http2, f"{method} {path}: HTTP/2 is on but the request failed"
                else:
                    assert http2, "HTTP/2 is off but an HTTP/2 request was served"
                    assert (response.http_version, response.status_code) == ("HTTP/2", status)
            server.healthy()
        if http2:
            with httpx2.Client(http1=False, http2=True, timeout=GUARD_S) as client:
                answer = client.post(
                    server.base + "/v1/chat/completions",
                    json={"model": "muxtrio-echo", "messages": [{"role": "user", "content": "still here"}]},
                    headers={"authorization": f"Bearer {KEY}"},
                )
            assert answer.http_version == "HTTP/2"
            assert answer.json()["choices"][0]["message"]["content"] == "still here"
        server.proc.send_signal(signal.SIGTERM)
        lines = server.finish()
    assert server.proc.returncode == 0
    assert not [line for line in lines if "Traceback" in line], lines


def _raw_exchange(port: int, request: bytes, *, read_until_close: bool = False) -> bytes:
    """Send ``request`` (possibly a body cut short) and return the first answer the server writes."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or read_until_close:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


H2C_HEADERS = "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"


@pytest.mark.parametrize("http2", [False, True], ids=["http2-off", "http2-on"])
def test_h2c_upgrade_never_stops_the_process(tmp_path: Path, http2: bool) -> None:
    with running(tmp_path, "http2: true\n" if http2 else "") as server:
        get = f"GET /v1/models HTTP/1.1\r\nhost: x\r\n{H2C_HEADERS}\r\n".encode()
        answer = _raw_exchange(server.port, get)
        # Off: the upgrade is ignored and the request answered in HTTP/1.1. On: switched to HTTP/2.
        assert answer.startswith(b"HTTP/1.1 101 " if http2 else b"HTTP/1.1 401 "), answer[:60]
        server.healthy()
        # An upgrade request with a body: answered early (401) in HTTP/1.1 while most of the body is unsent.
        post = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{H2C_HEADERS}content-length: {len(BODY_1MB)}\r\n\r\n"
        ).encode() + BODY_1MB[:65536]
        assert _raw_exchange(server.port, post).startswith(b"HTTP/1.1 401 ")
        server.healthy()
        # The h2 preface on an HTTP/1.1-only gateway: a 505, then the connection is closed.
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64
        answer = _raw_exchange(server.port, preface, read_until_close=True)
        if not http2:
            assert answer.startswith(b"HTTP/1.1 505 "), answer[:60]
        server.healthy()


@pytest.mark.parametrize("method,path,auth,status", EARLY_ANSWERS, ids=EARLY_IDS)
def test_http1_early_answer_with_unread_body_never_stops_the_process(
    tmp_path: Path, method: str, path: str, auth: bool, status: int
) -> None:
    length = 3_000_000 if status == 413 else len(BODY_1MB)
    head = f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    if auth:
        head += f"authorization: Bearer {KEY}\r\n"
    with running(tmp_path) as server:
        for _ in range(3):
            answer = _raw_exchange(server.port, head.encode() + b"\r\n" + BODY_1MB[:100_000])
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:60]
            server.healthy()


# ---------------------------------------------------------------------------------------------------------- signals
@contextmanager
def silent_provider() -> Iterator[tuple[str, list[socket.socket]]]:
    """An OpenAI-type upstream that accepts connections and never answers: a stream through it stays open."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def _open_stream(server: Server) -> threading.Thread:
    """Start a streaming request to the silent provider in a thread (it ends when the server goes away)."""

    def call() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with contextlib.suppress(httpx2.TransportError):
            httpx2.post(server.base + "/v1/chat/completions", json=body, headers=AUTH, timeout=GUARD_S)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_second_signal_during_the_drain_stops_at_once(tmp_path: Path, signum: signal.Signals) -> None:
    with silent_provider() as (upstream, accepted):
        provider = (
            f"providers:\n  - {{type: openai, name: slow, base-url: '{upstream}', api-key: sk-x, models: [slow]}}\n"
        )
        # A drain far longer than the guard: only the second signal can end this process in time.
        with running(tmp_path, provider + "shutdown-grace: 600s\n") as server:
            _open_stream(server)
            deadline = time.monotonic() + GUARD_S
            while not accepted:  # the gateway has the request upstream: a stream is open
                assert time.monotonic() < deadline, "the request never reached the provider"
                time.sleep(0.01)
            server.proc.send_signal(signum)
            server.wait_for(f"received {signum.name}: shutting down")
            server.proc.send_signal(signum)
            lines = server.finish()
    assert server.proc.returncode == 0
    assert any(f"received {signum.name} again: stopping now" in line for line in lines), lines
    assert lines[-1].endswith("muxtrio: stopped"), lines
    assert not [line for line in lines if "Traceback" in line or "ExceptionGroup" in line], lines


def test_sighup_keeps_serving(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("received SIGHUP: reloading the config file")
        server.healthy()
        server.proc.send_signal(signal.SIGTERM)
        lines = server.finish()
    assert server.proc.returncode == 0
    assert lines[-1].endswith("muxtrio: stopped"), lines


# ------------------------------------------------------------------------------------------------------ log injection
def test_access_log_lines_cannot_be_forged(tmp_path: Path) -> None:
    forged = "2026-01-01 00:00:00,000 INFO muxtrio.access: GET /forged status=200"
    with running(tmp_path) as server:
        head = "GET /v1/x%0a" + forged.replace(" ", "%20") + " HTTP/1.1\r\nhost: x\r\n\r\n"
        assert _raw_exchange(server.port, head.encode()).startswith(b"HTTP/1.1 ")
        body = {"model": "evil\n" + forged + "\r\x1b[31m", "messages": [{"role": "user", "content": "hi"}]}
        response = httpx2.post(server.base + "/v1/chat/completions", json=body, headers=AUTH)
        assert response.status_code in (400, 404), response.text
        server.wait_for("model=evil")
        server.proc.send_signal(signal.SIGTERM)
        lines = server.finish()
    assert not [line for line in lines if line.startswith(("2026-01-01", "\r", "\x1b"))], lines
    assert not [line for line in lines if "\x1b" in line or "\r" in line], lines
    escaped = [line for line in lines if "model=evil\\n2026-01-01" in line]
    assert len(escaped) == 1, lines
    assert any("/v1/x\\n2026-01-01" in line for line in lines), lines


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the parent of ``serve --workers 2`` (no chance to tell anyone): its workers notice and stop, so
    they never keep the port or the parent's output pipes open."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("w"), env=clean_env(), cwd=tmp_path,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 20
        workers: list[int] = []
        while time.monotonic() < deadline:
            # spawn's helper (resource tracker) is a child too: the workers are the python children serving
            workers = [pid for pid in _children(proc.pid)
                       if "muxtrio" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                       or "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(workers) >= 2, workers
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30  # a hang detector: the workers poll their parent every 0.2 s
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pid in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

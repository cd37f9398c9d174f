"""`muxtrio serve` as a real process: it serves, uses exactly the given config file, stops cleanly on SIGTERM, runs
several workers on one port, and reports a port already in use in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MUXTRIO_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}


def wait_healthy(base: str, proc: subprocess.Popen[str], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx2.get(base + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become healthy")


@contextmanager
def serve(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_uses_the_config_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "api-keys: [file-key]\n"
        "providers:\n"
        "  - {type: echo, name: mine, models: [{name: muxtrio-echo, alias: parrot}]}\n"
    )
    with serve("--config", str(config)) as (base, proc):
        headers = {"authorization": "Bearer file-key"}
        models = httpx2.get(base + "/v1/models", headers=headers).json()
        assert [m["id"] for m in models["data"]] == ["parrot"]
        body = {"model": "parrot", "messages": [{"role": "user", "content": "from the file"}]}
        answer = httpx2.post(base + "/v1/chat/completions", json=body, headers=headers).json()
        assert answer["choices"][0]["message"]["content"] == "from the file"
        assert httpx2.post(base + "/v1/chat/completions", json=body).status_code == 401
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "Traceback" not in err
        assert "file-key" not in err


def test_two_workers_share_one_port() -> None:
    with serve("--workers", "2") as (base, proc):
        for _ in range(20):
            r = httpx2.post(
                base + "/v1/chat/completions",
                json={"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0


def test_port_in_use_is_one_line_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "muxtrio", "serve", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
        )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "cannot listen" in line]
    assert len(lines) == 1 and str(port) in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example", ["embed.py"])
def test_examples_run(example: str) -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / example)], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    assert "muxtrio-echo: the first stream says hello" in result.stdout
    assert "second: and the second one answers at the same time" in result.stdout

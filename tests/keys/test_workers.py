"""A client key's limit holds across ``muxtrio serve --workers 2``: an RPM limit of 30 admits 30 (± 1) requests in
its minute, not 60, because both workers lease their permits from the same database counter."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests.test_serve import clean_env, free_port, wait_healthy

MANAGEMENT_KEY = "mgmt-key-workers-test-0001"


@contextmanager
def two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    config = tmp_path / "muxtrio.yaml"
    config.write_text(
        "api-keys: [flat-key-0001]\n"
        f"usage: {{dsn: 'sqlite://{tmp_path}/usage.db'}}\n"
        "client-keys: {refresh-interval: 1s, sync-interval: 500ms}\n"
    )
    port = free_port()
    env = {**clean_env(), "MUXTRIO_MANAGEMENT_KEY": MANAGEMENT_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--config", str(config), "--host", "127.0.0.1", "--port",
         str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def one_request(base: str, secret: str) -> int:
    # A fresh connection per request, so the kernel spreads them over both workers' accept queues.
    with httpx2.Client(timeout=30.0) as client:
        response = client.post(
            base + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hi"}]},
        )
    return response.status_code


def test_rpm_limit_holds_across_two_workers(tmp_path: Path) -> None:
    with two_workers(tmp_path) as (base, proc):
        created = httpx2.post(
            base + "/v1/management/client-keys",
            headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"},
            json={"name": "team-a", "limits": {"rpm": 30}},
            timeout=30.0,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["data"]["secret"]
        for _attempt in range(2):  # a burst that straddles a minute boundary counts two windows: run it again
            left = 60.0 - time.time() % 60.0
            if left < 20:
                time.sleep(left + 0.05)
            minute = int(time.time() // 60)
            with ThreadPoolExecutor(max_workers=6) as pool:
                statuses = list(pool.map(lambda _: one_request(base, secret), range(60)))
            if int(time.time() // 60) == minute:
                break
            time.sleep(60.0 - time.time() % 60.0 + 0.05)  # the next attempt starts in a fresh minute
        assert set(statuses) <= {200, 429}
        assert 29 <= statuses.count(200) <= 31, statuses.count(200)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    # Both workers served client-key requests (each opens the key store on its first one).
    assert err.count("client keys: store") == 2, err[-3000:]
    assert secret not in err and secret[3:] not in err


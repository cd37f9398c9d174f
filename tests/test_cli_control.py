"""``muxtrio status | reload | api-keys | usage`` against a real ``muxtrio serve --workers 2`` process, and hot reload
across workers: SIGHUP to the parent reloads every worker; a credential action on one worker reaches the other."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from muxtrio.cli import main
from tests.test_serve import clean_env, free_port, wait_healthy

KEY = "mgmt-cli-key-0123456789"
CLIENT = "client-cli-key-0001"
HANG_GUARD_S = 30.0  # never a pass condition


def config_text(tmp_path: Path, extra: str = "") -> str:
    return (
        f"api-keys: [{CLIENT}]\n"
        f"usage:\n  dsn: sqlite://{tmp_path}/usage.db\n"
        "reload:\n  watch: false\n"
        f"{extra}"
        "providers:\n"
        "  - type: openai\n    name: alpha\n    base-url: http://127.0.0.1:9/v1\n    api-keys: [sk-alpha-0001]\n"
    )


@contextmanager
def serve(path: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {**clean_env(), "MUXTRIO_MANAGEMENT_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "muxtrio", "serve", "--config", str(path), "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, seconds=90.0)  # hang guard: two spawned workers start slowly on a busy box
        yield base, proc
    finally:
        if proc.poll() is None or proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the workers too: they hold the output pipes
            proc.communicate(timeout=HANG_GUARD_S)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def poll(check: object, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_cli_against_two_workers_and_reload_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MUXTRIO_MANAGEMENT_KEY", raising=False)
    monkeypatch.delenv("MUXTRIO_URL", raising=False)
    path = tmp_path / "muxtrio.yaml"
    path.write_text(config_text(tmp_path))
    with serve(path, "--workers", "2") as (base, proc):
        flags = ("--url", base, "--management-key", KEY)
        code, out, err = run(capsys, "status", *flags)
        assert code == 0, err
        assert "CREDENTIAL" in out and "alpha#0" in out and "ok" in out
        header = next(line for line in out.splitlines() if line.startswith("CREDENTIAL"))
        row = next(line for line in out.splitlines() if line.startswith("alpha#0"))
        assert row.index("alpha ") == header.index("PROVIDER")  # aligned columns

        code, out, err = run(capsys, "status", "--url", base, "--management-key", "wrong")
        assert code == 1 and "management key was refused" in err and "Traceback" not in err
        code, out, err = run(capsys, "status", "--url", f"http://127.0.0.1:{free_port()}", "--management-key", KEY)
        assert code == 1 and "cannot reach the gateway" in err

        # A credential action on one worker reaches the other (the workers' journal).
        r = httpx2.post(base + "/v1/management/credentials/alpha%230/disable", headers={"X-Management-Key": KEY})
        assert r.status_code == 200
        disabled_in: set[int] = set()

        def both_workers_disabled() -> bool:
            with httpx2.Client() as fresh:  # a new connection: either worker may answer
                creds = fresh.get(base + "/v1/management/credentials", headers={"X-Management-Key": KEY}).json()
            cred = creds["data"][0]
            if cred["disabled"]:
                disabled_in.add(cred["worker"])
            return len(disabled_in) == 2

        poll(both_workers_disabled, "both workers show the credential disabled")

        # keys: create (printed once), list (masked), rotate, revoke.
        code, out, err = run(capsys, "api-keys", "create", *flags)
        assert code == 0, err
        created = out.split("created: ")[1].split()[0]
        code, out, _ = run(capsys, "api-keys", "list", *flags)
        assert created not in out and created[-4:] in out and CLIENT not in out
        code, out, err = run(capsys, "api-keys", "rotate", "1", "--value", "client-cli-key-0002", *flags)
        assert code == 0, err
        code, out, err = run(capsys, "api-keys", "revoke", "client-cli-key-0002", *flags)
        assert code == 0 and "0002" not in out.split("reload:")[1]
        assert "client-cli-key-0002" not in path.read_text() and created not in path.read_text()

        # The file changed by hand (watching is off): SIGHUP to the parent reloads both workers.
        path.write_text(config_text(tmp_path, "request-retry: 1\n"))
        proc.send_signal(signal.SIGHUP)
        reloaded_in: set[int] = set()

        def both_workers_reloaded() -> bool:
            with httpx2.Client() as fresh:
                status = fresh.get(base + "/v1/management/status", headers={"X-Management-Key": KEY}).json()["data"]
            if status["reloads"][-1]["trigger"] == "signal" and status["reloads"][-1]["result"] == "applied":
                reloaded_in.add(status["pid"])
            return len(reloaded_in) == 2

        poll(both_workers_reloaded, "both workers reloaded on SIGHUP")
        code, out, err = run(capsys, "reload", *flags)
        assert code == 0 and "reload: unchanged" in out

        code, out, err = run(capsys, "usage", "--since", "1h", "--by", "provider", *flags)
        assert code == 0, err
        assert out.splitlines()[2].split() == ["PROVIDER", "REQUESTS", "OK", "FAILED", "INPUT", "OUTPUT", "TOTAL",
                                               "AVG", "MS"]
        proc.send_signal(signal.SIGTERM)
        _, server_err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0
    assert server_err.count("config reloaded (signal)") == 2
    assert KEY not in server_err and CLIENT not in server_err and "Traceback" not in server_err
    assert os.path.exists(path)

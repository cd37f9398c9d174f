"""``muxtrio login codex --no-browser`` as a user runs it: the URL is printed, the browser ends on a page that does
not load, the user pastes its address, and the token file is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import trio
import yaml

from tests.accounts.conftest import endpoints, file_mode
from tests.accounts.fakes import SubscriptionFake

ROOT = Path(__file__).resolve().parents[2]


async def test_no_browser_login_from_the_command_line(fake: SubscriptionFake, tmp_path: Path) -> None:
    auth_dir = tmp_path / "auth"
    config = tmp_path / "muxtrio.yaml"
    config.write_text(yaml.safe_dump({"auth-dir": str(auth_dir), "accounts": {"endpoints": endpoints(fake.url)}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "muxtrio", "login", "codex", "--no-browser", "--config", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    output = b""
    with trio.fail_after(30):  # hang guard
        while b"paste it here" not in output:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"the command ended early: {output!r}"
            output += chunk
        url = next(line.strip() for line in output.decode().splitlines() if line.strip().startswith("http"))
        async with httpx2.AsyncClient(follow_redirects=False, trust_env=False) as client:
            landed = (await client.get(url)).headers["location"]
        await process.stdin.send_all(landed.encode() + b"\n")
        while chunk := await process.stdout.receive_some(4096):
            output += chunk
        await process.wait()
    assert process.returncode == 0, (await process.stderr.receive_some(65536)).decode()
    [saved] = list(auth_dir.iterdir())
    assert saved.name == "codex-new-user@example.com.json" and file_mode(saved) == 0o600
    assert f"Token saved to {saved}" in output.decode()
    assert "at-" not in output.decode(), "no token is printed"

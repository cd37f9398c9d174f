"""How each agent CLI is run against the gateway: its command line, its environment, its config files, and the shell
tool it declares (name and argument schema, as the CLI's own requests show them).

Every CLI runs with a fresh ``HOME`` (and ``CODEX_HOME``) under the test's temporary directory and an environment
built from scratch (``PATH`` and locale only, plus what the mode needs), so no user configuration or key leaks in.
Settings are the CLIs' defaults; the only things configured are what pointing a CLI at a gateway requires:
- Codex CLI: a custom model provider in ``$CODEX_HOME/config.toml`` (``wire_api = "responses"``, the key from an
  environment variable through ``env_key``, ``supports_websockets`` true for WebSocket mode, false for HTTP);
- Claude Code: ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``; ``--allowedTools`` grants its shell tool for the
  one command (``-p`` mode has nobody to approve a tool); ``DISABLE_TELEMETRY`` / ``DISABLE_ERROR_REPORTING`` (its
  documented switches) keep a CI run from reporting to Anthropic's hosts — its requests to the gateway, the
  ``/api/hello`` probe included, are the same with them;
- Gemini CLI: ``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``, with the API-key auth type selected in
  ``~/.gemini/settings.json`` (what its ``/auth`` dialog stores; the env-only ``gateway`` auth type of 0.61 is
  refused by its own non-interactive validation); ``--yolo`` approves its shell tool, and
  ``GEMINI_CLI_TRUST_WORKSPACE=true`` trusts the work folder (its documented switch for headless runs; an untrusted
  folder makes it exit 55 before any request).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agents.fakes import ShellPlan
from tests.agents.stack import CLIENT_KEY, CLIENT_MODEL, AgentClis

CLI_MODES = ("codex-http", "codex-websocket", "claude", "gemini")


@dataclass(frozen=True)
class CliRun:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def shell_command(token: str) -> str:
    """The command the fake asks the CLI to run: its output (``muxtrio-ok-<token>``) never appears in the command
    text, so seeing it in the CLI's answer proves the command ran and its output made the round trip."""
    return f"printf 'muxtrio-%s-%s\\n' ok {token}"


def expected_output(token: str) -> str:
    return f"muxtrio-ok-{token}"


def shell_plan(mode: str, token: str) -> ShellPlan:
    """The CLI's own shell tool and the arguments its schema takes (learned from the requests the CLI sends; see
    ``client-requests.jsonl`` in a test's log directory)."""
    command = shell_command(token)
    if mode.startswith("codex"):
        return ShellPlan("exec_command", {"cmd": command})
    if mode == "claude":
        return ShellPlan("Bash", {"command": command, "description": "Print the muxtrio marker"})
    return ShellPlan("run_shell_command", {"command": command, "description": "Print the muxtrio marker"})


def _base_env(home: Path, clis: AgentClis) -> dict[str, str]:
    path = os.pathsep.join([str(clis.bin_dir), os.environ.get("PATH", "/usr/bin:/bin")])
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb", "TMPDIR": str(home / "tmp")}


def cli_run(mode: str, clis: AgentClis, gateway_url: str, root: Path, token: str) -> CliRun:
    home = root / "home"
    work = root / "work"
    for directory in (home, home / "tmp", work):
        directory.mkdir(parents=True, exist_ok=True)
    env = _base_env(home, clis)
    prompt = f"Run this shell command and tell me exactly what it printed: {shell_command(token)}"
    if mode.startswith("codex"):
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        websocket = mode == "codex-websocket"
        config = _toml({
            "model": CLIENT_MODEL,
            "model_provider": "muxtrio",
            "model_providers": {"muxtrio": {
                "name": "muxtrio",
                "base_url": f"{gateway_url}/v1",
                "env_key": "MUXTRIO_API_KEY",
                "wire_api": "responses",
                "supports_websockets": websocket,
            }},
        })  # fmt: skip
        (codex_home / "config.toml").write_text(config)
        env.update({"CODEX_HOME": str(codex_home), "MUXTRIO_API_KEY": CLIENT_KEY})
        argv = [str(clis.path("codex")), "exec", "--skip-git-repo-check", prompt]
    elif mode == "claude":
        env.update({"ANTHROPIC_BASE_URL": gateway_url, "ANTHROPIC_API_KEY": CLIENT_KEY,
                    # its documented switches for the reports it would send to Anthropic's own hosts
                    "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"})
        argv = [str(clis.path("claude")), "-p", prompt, "--model", CLIENT_MODEL, "--allowedTools", "Bash(printf:*)"]
    elif mode == "gemini":
        settings = home / ".gemini"
        settings.mkdir(exist_ok=True)
        (settings / "settings.json").write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
        env.update({"GOOGLE_GEMINI_BASE_URL": gateway_url, "GEMINI_API_KEY": CLIENT_KEY,
                    "GEMINI_CLI_TRUST_WORKSPACE": "true"})
        argv = [str(clis.path("gemini")), "-p", prompt, "-m", CLIENT_MODEL, "--yolo"]
    else:
        raise ValueError(mode)
    return CliRun(argv, env, work)


def _toml(table: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the Codex config (strings, booleans, nested tables)."""
    scalars: list[str] = []
    tables: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append(_toml(value, f"{prefix}{key}."))
        elif isinstance(value, bool):
            scalars.append(f"{key} = {'true' if value else 'false'}")
        else:
            scalars.append(f"{key} = {json.dumps(str(value))}")
    head = f"[{prefix[:-1]}]\n" if prefix and scalars else ""
    return head + "".join(s + "\n" for s in scalars) + "".join(tables)

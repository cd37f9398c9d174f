"""muxtrio.cli: ``python -m muxtrio check|models`` in a subprocess, and ``serve`` handing over to the runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from muxtrio import cli
from muxtrio.config import Config

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
api-keys: [client-key-SECRET-0001]
ws-auth: false
providers:
  - type: openai
    api-keys: [sk-upstream-SECRET-1111, {key: sk-upstream-SECRET-2222, proxy-url: "http://bob:pw-SECRET@proxy:3128"}]
    models: [gpt-4o, {name: gpt-4o-mini, alias: mini}, gpt-4-0613]
    excluded-models: ["gpt-4-0*"]
  - type: anthropic
    name: claude
    api-key: sk-ant-SECRET-3333
    headers: {x-api-key: header-SECRET-4444, X-Title: muxtrio}
  - type: ollama
    enabled: false
    models: [llama3]
routing:
  aliases: {sonnet: claude-sonnet-4-5}
  fallbacks: {gpt-4o: [claude-sonnet-4-5]}
"""


def run_cli(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUXTRIO_")}
    env.update({"HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd / "xdg"), **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-m", "muxtrio", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    return path


def test_check_prints_resolved_providers_with_keys_masked(config_file: Path, tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == textwrap.dedent(
        f"""\
        config: {config_file}
        listen: http://127.0.0.1:8317  workers=1
        client auth: 1 client key(s): ****0001
        routing: least-busy, request-retry 3, max-retry-interval 30s
        timeouts: connect 10s, first-byte 600s, idle 300s, total none
        providers (4):
          openai  type=openai  base-url=https://api.openai.com/v1
            credentials: 2 (****1111, ****2222 via http://****@proxy:3128)
            models: gpt-4o, mini -> gpt-4o-mini, gpt-4-0613
            excluded: gpt-4-0*
          claude  type=anthropic  base-url=https://api.anthropic.com
            credentials: 1 (****3333)
            headers: x-api-key: ****4444, X-Title: muxtrio
            models: claude-* (no list: these names are passed through; others with 'claude/<model>')
          ollama  type=ollama  base-url=http://127.0.0.1:11434  (disabled)
            credentials: 0
            models: llama3
          echo  type=echo  base-url=-
            credentials: 0
            models: muxtrio-echo
        aliases:
          sonnet -> claude-sonnet-4-5
        fallbacks:
          gpt-4o -> claude-sonnet-4-5
        configuration OK
        """
    )
    assert result.stderr == "muxtrio: warning: ws-auth: llm-mux setting not used by muxtrio; ignored\n"
    assert "SECRET" not in result.stdout + result.stderr


def test_check_strict_exits_1_on_warnings_and_0_without(config_file: Path, tmp_path: Path) -> None:
    warned = run_cli("check", "--strict", "--config", str(config_file), cwd=tmp_path)  # ws-auth is ignored
    assert warned.returncode == 1
    assert warned.stdout.endswith("configuration has 1 warning(s): failing (--strict)\n")
    clean = tmp_path / "clean.yaml"
    clean.write_text("providers: [{type: openai, base-url: 'http://127.0.0.1:9/v1'}]\n")
    result = run_cli("check", "--strict", "--config", str(clean), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.endswith("configuration OK\n")


def test_check_warns_about_unserved_fallbacks_and_an_open_host_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "host: 0.0.0.0\n"
        "providers:\n"
        "  - {type: openai, api-key: sk-x, models: [gpt-4o]}\n"
        "  - {type: anthropic, models: [claude-sonnet-4-5]}\n"  # no key: serves nothing
        "fallbacks: {gpt-4o: [gpt-4o-mini, muxtrio-echo, claude-sonnet-4-5]}\n"
    )
    result = run_cli("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "needs an api-key" not in line]
    assert warnings == [
        "muxtrio: warning: host: 0.0.0.0 accepts remote connections but no api-keys are set, so remote clients will "
        "be refused (only loopback clients are served); set api-keys, or disable-auth: true",
        "muxtrio: warning: fallbacks: gpt-4o -> gpt-4o-mini: no provider serves 'gpt-4o-mini'; this fallback never "
        "answers",
        "muxtrio: warning: fallbacks: gpt-4o -> claude-sonnet-4-5: no provider serves 'claude-sonnet-4-5'; this "
        "fallback never answers",
    ]
    assert run_cli("check", "--strict", "--config", str(path), cwd=tmp_path).returncode == 1


def test_check_names_the_legacy_keys_it_mapped(tmp_path: Path) -> None:
    path = tmp_path / "legacy.yaml"
    path.write_text("claude-api-key: [{api-key: sk-ant-SECRET-1}, {api-key: sk-ant-SECRET-2}]\n")
    result = run_cli("check", "--strict", "--config", str(path), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        "legacy keys mapped (CLIProxyAPI / older llm-mux lists; prefer providers:):\n"
        "  claude-api-key[0], claude-api-key[1] -> provider 'anthropic' (type anthropic, 2 keys)\n"
    ) in result.stdout
    assert "SECRET" not in result.stdout


def test_check_broken_file_exits_2_with_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("providers:\n  - type: openai\n    models:\n      - name: ok\n      - alias: no-name\n")
    result = run_cli("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "muxtrio: config error: providers[0].models[1].name: required\n"
    assert "Traceback" not in result.stderr


def test_check_invalid_yaml_and_missing_file_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("port: [\n")
    result = run_cli("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"muxtrio: config error: {path}: line 2, column 1: invalid YAML: ")
    assert result.stderr.count("\n") == 1
    missing = run_cli("check", "--config", str(tmp_path / "none.yaml"), cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == (
        f"muxtrio: config error: cannot read config file '{tmp_path / 'none.yaml'}': No such file or directory\n"
    )


def test_bad_env_value_exits_2_naming_the_variable(config_file: Path, tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(config_file), cwd=tmp_path, extra_env={"MUXTRIO_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.endswith(
        "muxtrio: config error: MUXTRIO_PORT: expected an integer between 0 and 65535, got 'eighty'\n"
    )


def test_models_lists_client_names_with_their_provider(config_file: Path, tmp_path: Path) -> None:
    result = run_cli("models", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "gpt-4o        openai",
        "mini          openai",
        "claude-*      claude",
        "muxtrio-echo  echo",
        "sonnet        -> claude-sonnet-4-5",
    ]


def test_check_without_a_config_file_uses_the_defaults(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-env-SECRET-5555", "ANTHROPIC_API_KEY": "", "GEMINI_API_KEY": "", "GOOGLE_API_KEY": ""}
    env["OPENAI_BASE_URL"] = ""
    result = run_cli("check", cwd=tmp_path, extra_env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config: none found: built-in defaults (providers detected from the environment)"
    assert "  openai  type=openai  base-url=https://api.openai.com/v1" in lines
    assert "    credentials: 1 (****5555)" in lines
    assert "  echo  type=echo  base-url=-" in lines
    # The official endpoint without a list serves OpenAI's families only, and says so (issue 12 item 14).
    assert any(line.startswith("    models: gpt-*, o1*") and "'openai/<model>'" in line for line in lines), lines
    assert "SECRET" not in result.stdout


# ---------------------------------------------------------------------------------------------------- serve
@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    calls: list[Config] = []

    def run(config: Config) -> int:
        calls.append(config)
        return 7

    module = types.ModuleType("muxtrio.server.runner")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "muxtrio.server.runner", module)
    for name in list(os.environ):
        if name.startswith("MUXTRIO_"):
            monkeypatch.delenv(name)
    return calls


def test_serve_flags_win_over_env_and_file(
    fake_runner: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("host: 0.0.0.0\nport: 9000\nworkers: 2\ndebug: false\nws-auth: true\n")
    monkeypatch.setenv("MUXTRIO_PORT", "9100")
    monkeypatch.setenv("MUXTRIO_DEBUG", "true")
    assert cli.main(["serve", "--config", str(path), "--port", "9200", "--workers", "3"]) == 7
    (config,) = fake_runner
    assert (config.host, config.port, config.workers, config.debug) == ("0.0.0.0", 9200, 3, True)
    assert config.source == str(path)
    assert capsys.readouterr().err == (
        "muxtrio: warning: ws-auth: llm-mux setting not used by muxtrio; ignored\n"
        "muxtrio: warning: host: 0.0.0.0 accepts remote connections but no api-keys are set, so remote clients will "
        "be refused (only loopback clients are served); set api-keys, or disable-auth: true\n"
    )


def test_serve_is_the_default_command(fake_runner: list[Config], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("port: 9000\n")
    assert cli.main(["--config", str(path), "--host", "::1"]) == 7
    assert (fake_runner[0].host, fake_runner[0].port) == ("::1", 9000)


def test_serve_with_no_arguments_loads_the_default_config(
    fake_runner: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "detect_local_ollama", lambda: False)
    assert cli.main([]) == 7
    assert fake_runner == [Config()]
    assert fake_runner[0].source is None


def test_serve_with_no_config_file_adds_a_local_ollama_the_probe_found(
    fake_runner: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "detect_local_ollama", lambda: True)
    assert cli.main([]) == 7
    assert [p.type.value for p in fake_runner[0].providers] == ["ollama", "echo"]


def test_serve_config_error_is_one_line_and_exit_2(
    fake_runner: list[Config], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("providers: [{type: openai, base-url: localhost}]\n")
    assert cli.main(["serve", "--config", str(path)]) == 2
    assert fake_runner == []
    assert capsys.readouterr().err == (
        "muxtrio: config error: providers[0].base-url: expected an http(s) URL, got 'localhost'\n"
    )


def test_serve_rejects_bad_flags(fake_runner: list[Config], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--port", "70000"])
    assert info.value.code == 2
    assert "expected an integer between 0 and 65535, got '70000'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--workers", "0"])
    assert fake_runner == []

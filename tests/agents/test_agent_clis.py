"""The agent CLIs people run, unmodified, through the real gateway to a strict fake of every provider format: Codex
CLI (``codex exec``, HTTP and WebSocket mode), Claude Code (``claude -p``), Gemini CLI (``gemini -p``) x OpenAI Chat,
OpenAI Responses, Anthropic Messages, Gemini = 16 cases.

Each case is one real tool round trip: the fake's first answer calls the CLI's own shell tool with a ``printf``
whose output appears nowhere in the command; the CLI runs it and sends the result back through the gateway; the fake
answers ``The command printed: <output>``; the test asserts the CLI printed that output, that the fake quoted it
(the result reached the provider, paired with its call), that no provider rule refused a request, and — for Codex —
which transport carried the turns (WebSocket mode: every turn over a WebSocket on ``/v1/responses``, no HTTP POST).

The CLIs are installed from npm by the session fixture ``agent_clis`` (cached). Per-case logs of everything each
side sent (``client-requests.jsonl``, ``provider-requests.jsonl``) and the CLI's output are written to the test's
``tmp_path`` and, when ``MUXTRIO_AGENT_LOG_DIR`` is set, also there, named by case.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import pytest
import trio

from tests.agents.clis import CLI_MODES, cli_run, expected_output, shell_plan
from tests.agents.fakes import FINAL_PREFIX
from tests.agents.stack import PROVIDER_FORMATS, AgentClis, AgentStack, open_agent_stack

CLI_LIMIT_S = 240.0  # hang guard for one CLI run (a hang is a failure, never a pass condition)

pytestmark = pytest.mark.agents


def _diagnosis(stack: AgentStack, result: trio.CompletedProcess[bytes] | None, logs: Path) -> str:
    lines = [f"logs: {logs}"]
    for seen, refusal in stack.fake.refusals:
        lines.append(f"provider refused ({refusal.rule}): {refusal.message}  [model {seen.model}]")
    for request in stack.recorder.requests:
        lines.append(f"client {request.kind} {request.method} {request.path} -> {request.status}")
    if result is not None:
        lines.append(f"exit status {result.returncode}")
        lines.append("stdout (tail):\n" + result.stdout.decode("utf-8", "replace")[-2000:])
        lines.append("stderr (tail):\n" + result.stderr.decode("utf-8", "replace")[-3000:])
    return "\n".join(lines)


@pytest.mark.parametrize("provider_format", list(PROVIDER_FORMATS), ids=[f"{p}-provider" for p in PROVIDER_FORMATS])
@pytest.mark.parametrize("mode", CLI_MODES)
async def test_shell_tool_round_trip(
    agent_clis: AgentClis, mode: str, provider_format: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    token = secrets.token_hex(6)
    marker = expected_output(token)
    result: trio.CompletedProcess[bytes] | None = None
    async with open_agent_stack(provider_format, shell_plan(mode, token)) as stack:
        run = cli_run(mode, agent_clis, stack.url, tmp_path, token)
        started = time.monotonic()
        try:
            with trio.fail_after(CLI_LIMIT_S):
                result = await trio.run_process(run.argv, env=run.env, cwd=run.cwd, stdin=b"", capture_stdout=True,
                                                capture_stderr=True, check=False)
        finally:
            elapsed = time.monotonic() - started
            logs = stack.dump(tmp_path / "logs")
            if result is not None:
                (logs / "cli-stdout.txt").write_bytes(result.stdout)
                (logs / "cli-stderr.txt").write_bytes(result.stderr)
            if os.environ.get("MUXTRIO_AGENT_LOG_DIR"):
                shutil.copytree(logs, Path(os.environ["MUXTRIO_AGENT_LOG_DIR"]) / request.node.callspec.id,
                                dirs_exist_ok=True)
        request.node.user_properties.append(("cli_seconds", round(elapsed, 1)))
        why = _diagnosis(stack, result, logs)
        refusals = list(stack.fake.refusals)
        final_answers = list(stack.fake.final_answers)
        calls = list(stack.fake.calls)
        system_prompts = list(stack.fake.system_prompts)
        responses_turns = [r for r in stack.recorder.requests if r.path == "/v1/responses"]
        unanswered = [f"{r.method} {r.path} -> {r.status}" for r in stack.recorder.requests
                      if r.status == 404 or r.status >= 500]
    # Asserted once the stack is closed, so a failure reads as itself rather than inside a nursery's group.
    assert refusals == [], why
    assert unanswered == [], why  # every request the CLI sends has a route (probes included), none is a 5xx
    assert result is not None and result.returncode == 0, why
    assert any(a.startswith(FINAL_PREFIX) and marker in a for a in final_answers), why  # the result reached it
    assert marker in result.stdout.decode("utf-8", "replace"), why
    assert len(calls) >= 1, why
    # The CLI's system prompt reaches the model whole on every turn of the tool loop, the tool-result turn included.
    lengths = f"\nsystem prompt lengths per turn: {[len(p) for p in system_prompts]}"
    assert len(system_prompts) >= 2 and system_prompts[0], why + lengths
    assert all(p == system_prompts[0] for p in system_prompts), why + lengths
    if mode == "codex-websocket":
        assert responses_turns and all(r.kind == "websocket" for r in responses_turns), why
        assert sum(len(r.messages) for r in responses_turns) >= 2, why  # both turns went over the socket
    elif mode == "codex-http":
        assert responses_turns and all(r.kind == "http" and r.method == "POST" for r in responses_turns), why

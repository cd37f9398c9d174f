"""The README's code runs as written: every ``python`` block and every ``curl`` command against a real gateway on
127.0.0.1 (``localhost:8317`` rewritten to its OS-chosen port), and every ``yaml`` block loads without warnings.

Blocks that install packages (``pip install ...``) are not run. Each block runs in its own process with the
provider-key environment variables removed, so it cannot lean on anything the README does not show.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import trio
import yaml

from muxtrio.config import Config, parse_config
from tests.server.harness import serving

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
RUN_LIMIT_S = 60.0  # hang guard per block; never a pass condition
_DROPPED_ENV = ("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "OLLAMA_", "MUXTRIO_")


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(README.read_text()) if lang == language]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
    env["PYTHONPATH"] = str(README.parent)
    return env


async def run(command: list[str], code: str, port: int) -> str:
    source = code.replace("localhost:8317", f"127.0.0.1:{port}")
    with trio.fail_after(RUN_LIMIT_S):
        done = await trio.run_process(
            [*command, source], capture_stdout=True, capture_stderr=True, check=False, env=clean_env(),
            cwd=str(README.parent),
        )
    output = done.stdout.decode()
    assert done.returncode == 0, f"block failed:\n{source}\n--- stderr:\n{done.stderr.decode()}"
    return output


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    assert len(blocks("python")) >= 2
    assert any("curl" in code for code in blocks("sh"))
    assert blocks("yaml")


@pytest.mark.parametrize("index", range(len(blocks("python"))))
async def test_python_blocks_run_against_a_local_gateway(index: int) -> None:
    code = blocks("python")[index]
    async with serving(Config(host="127.0.0.1", port=0)) as url:
        output = await run([sys.executable, "-c"], code, int(url.rsplit(":", 1)[1]))
    assert output.strip()
    for sdk in ("OpenAI", "Anthropic", "Gemini", "Ollama"):
        if f"hello from {sdk}" in code:
            assert f"hello from {sdk}" in output  # the echo model answers with the prompt


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("index", [i for i, code in enumerate(blocks("sh")) if "curl" in code])
async def test_curl_commands_run_against_a_local_gateway(index: int) -> None:
    code = blocks("sh")[index]
    async with serving(Config(host="127.0.0.1", port=0)) as url:
        output = await run(["bash", "-ec"], code, int(url.rsplit(":", 1)[1]))
    assert '"content":"hello from muxtrio"' in output  # the echo model answers with the prompt
    if '"stream": true' in code:
        assert output.rstrip().endswith("data: [DONE]")  # and the streamed call ran to its end


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_yaml_blocks_load_without_warnings(index: int) -> None:
    config = parse_config(yaml.safe_load(blocks("yaml")[index]), env={})
    assert config.warnings == ()

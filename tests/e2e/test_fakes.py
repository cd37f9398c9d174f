"""The fake providers speak the real wire formats: everything they send validates against the official SDKs' own
types, and the recorded transcripts under ``tests/fixtures/transcripts/wire/`` are what they send (regenerate with
``python -m tests.e2e.fakes`` after a deliberate change, and review the diff).

Models used: openai ``ChatCompletion``/``ChatCompletionChunk``, ``responses.Response`` and each Responses stream
event class; anthropic ``Message``, each ``RawMessageStreamEvent`` class and ``ErrorResponse``; google-genai
``GenerateContentResponse`` and ``CountTokensResponse`` (``extra="forbid"``: an unknown Gemini field fails);
ollama ``ChatResponse``.
"""

from __future__ import annotations

import anthropic.types as atypes
import orjson
import pytest
from google.genai import types as gtypes

from tests.e2e.checks import validate_stream, validate_whole
from tests.e2e.fakes import (
    _RENDER,
    COUNT_TOKENS,
    ERRORS,
    TRANSCRIPT_TOOL_RESULT,
    WIRE_DIR,
    WIRE_SCRIPTS,
    Ctx,
    gemini_stream,
    render_transcripts,
    script,
)

APIS = pytest.mark.parametrize("api", list(_RENDER))


@APIS
@pytest.mark.parametrize("name", list(WIRE_SCRIPTS))
def test_fake_output_validates_with_the_sdk_types(api: str, name: str) -> None:
    stream_fn, whole_fn, _ = _RENDER[api]
    steps = script(name, api, TRANSCRIPT_TOOL_RESULT)
    ctx = Ctx(api, WIRE_SCRIPTS[name])
    frames = b"".join(f for f in stream_fn(steps, ctx) if isinstance(f, bytes))
    assert validate_stream(api, frames) >= 1
    if name != "midstream_error":
        validate_whole(api, whole_fn(steps, ctx))
    if api == "gemini" and name != "midstream_error":
        array = orjson.loads(b"".join(f for f in gemini_stream(steps, ctx, sse=False) if isinstance(f, bytes)))
        for chunk in array:
            gtypes.GenerateContentResponse.model_validate_json(orjson.dumps(chunk))


def test_error_bodies_validate_with_the_sdk_types() -> None:
    for name, spec in ERRORS["anthropic"].items():
        if name != "midstream":
            atypes.ErrorResponse.model_validate(spec["body"])
    for spec in ERRORS["openai"].values():
        assert set(spec["body"]["error"]) == {"message", "type", "param", "code"}
    for name, spec in ERRORS["gemini"].items():
        error = spec["body"]["error"]
        assert set(error) >= {"code", "message", "status"}
        if name != "midstream":
            assert error["code"] == spec["status"]
    for spec in ERRORS["ollama"].values():
        assert set(spec["body"]) == {"error"}
    gtypes.CountTokensResponse.model_validate_json(orjson.dumps({"totalTokens": COUNT_TOKENS}))


def test_recorded_transcripts_are_current() -> None:
    rendered = render_transcripts()
    on_disk = {str(p.relative_to(WIRE_DIR)): p.read_bytes() for p in WIRE_DIR.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(rendered), "run: python -m tests.e2e.fakes"
    for path, data in rendered.items():
        assert on_disk[path] == data, f"{path} differs from what the fake sends; run: python -m tests.e2e.fakes"

"""The provider-side codec variants for subscription accounts (pure): what each backend requires on the wire."""

from __future__ import annotations

import json
from email.utils import formatdate

from muxtrio.codecs.base import Target
from muxtrio.codecs.registry import provider_codec
from muxtrio.codecs.subscription import (
    CLAUDE_CODE_IDENTITY,
    CLAUDE_CODEC,
    CODEX_CODEC,
    COPILOT_CODEC,
    GEMINI_CLI_CODEC,
    QWEN_CODEC,
)
from muxtrio.errors import ErrorKind
from muxtrio.ir.events import Finish, TextDelta
from muxtrio.ir.request import Message, Request, Role, Sampling, Text
from muxtrio.provider_types import ACCOUNT_TYPES, info

REQUEST = Request(
    model="m",
    messages=(Message(Role.USER, (Text("Say hello"),)),),
    system=(Text("Be brief"),),
    sampling=Sampling(temperature=0.2, top_p=0.9, max_tokens=64),
)


def _headers(wire_headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {k.lower(): v for k, v in wire_headers}


def test_each_account_type_has_its_codec_variant() -> None:
    for account in ACCOUNT_TYPES:
        assert provider_codec(account, info(account).format) is {
            "claude": CLAUDE_CODEC, "codex": CODEX_CODEC, "gemini-cli": GEMINI_CLI_CODEC,
            "github-copilot": COPILOT_CODEC, "qwen": QWEN_CODEC,
        }[account]  # fmt: skip


def test_claude_sends_a_bearer_token_the_oauth_betas_and_the_identity_once() -> None:
    wire = CLAUDE_CODEC.emit_request(REQUEST, Target("claude-x", "oat-token", stream=True))
    headers = _headers(wire.headers)
    assert "x-api-key" not in headers and headers["authorization"] == "Bearer oat-token"
    assert headers["anthropic-beta"].split(",")[:2] == ["claude-code-20250219", "oauth-2025-04-20"]
    body = json.loads(wire.body)
    texts = [b["text"] for b in body["system"]] if isinstance(body["system"], list) else [body["system"]]
    assert texts[0] == CLAUDE_CODE_IDENTITY and "Be brief" in texts[-1]
    already = Request(model="m", messages=REQUEST.messages, system=(Text(CLAUDE_CODE_IDENTITY),))
    again = json.loads(CLAUDE_CODEC.emit_request(already, Target("m", "t", stream=False)).body)
    assert again["system"] in (CLAUDE_CODE_IDENTITY, [{"type": "text", "text": CLAUDE_CODE_IDENTITY}])
    count = CLAUDE_CODEC.emit_count_request(REQUEST, Target("m", "t", stream=False))
    assert count is not None and _headers(count.headers)["authorization"] == "Bearer t"


def test_codex_body_follows_the_backend_rules() -> None:
    target = Target("gpt-5", "tok", stream=False, account=(("account_id", "acct-1"),))
    wire = CODEX_CODEC.emit_request(REQUEST, target)
    body = json.loads(wire.body)
    assert (body["stream"], body["store"], body["instructions"]) == (True, False, "Be brief")
    assert body["include"] == ["reasoning.encrypted_content"]
    for refused in ("max_output_tokens", "temperature", "top_p", "user", "truncation"):
        assert refused not in body
    headers = _headers(wire.headers)
    assert (headers["chatgpt-account-id"], headers["accept"]) == ("acct-1", "text/event-stream")
    no_system = Request(model="m", messages=REQUEST.messages)
    assert json.loads(CODEX_CODEC.emit_request(no_system, target).body)["instructions"] == ""
    assert CODEX_CODEC.emit_count_request(REQUEST, target) is None


def test_codex_collects_its_stream_for_a_whole_answer() -> None:
    events = [
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress",
                                                  "output": []}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hel"},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "lo"},
        {"type": "response.completed", "response": {"id": "resp_1", "model": "gpt-5", "status": "completed",
                                                    "output": [], "usage": {"input_tokens": 3, "output_tokens": 2,
                                                                            "total_tokens": 5}}},
    ]  # fmt: skip
    body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    answer = CODEX_CODEC.parse_response(body, "seed")
    assert [p.text for p in answer.parts if isinstance(p, Text)] == ["Hello"]
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (3, 2)


def test_codex_usage_limit_carries_its_reset() -> None:
    within = json.dumps({"error": {"type": "usage_limit_reached", "message": "limit", "plan_type": "plus",
                                   "resets_in_seconds": 1234}}).encode()  # fmt: skip
    err = CODEX_CODEC.parse_error(429, {}, within)
    assert (err.kind, err.retry_after, err.provider_type) == (ErrorKind.RATE_LIMIT, 1234.0, "usage_limit_reached")
    assert "plus plan" in err.message
    at = json.dumps({"error": {"type": "usage_limit_reached", "resets_at": 1_800_000_600}}).encode()
    err = CODEX_CODEC.parse_error(429, {"date": formatdate(1_800_000_000, usegmt=True)}, at)
    assert err.retry_after == 600.0, "resets_at is measured against the response's own Date"
    other = CODEX_CODEC.parse_error(429, {}, b'{"error": {"type": "rate_limit_exceeded", "message": "slow"}}')
    assert other.provider_type != "usage_limit_reached"


def test_gemini_cli_wraps_requests_and_unwraps_any_split_of_the_stream() -> None:
    target = Target("gemini-2.5-pro", "ya29", stream=True, account=(("project", "proj-1"),))
    wire = GEMINI_CLI_CODEC.emit_request(REQUEST, target)
    assert wire.path == "/v1internal:streamGenerateContent?alt=sse"
    body = json.loads(wire.body)
    assert (body["model"], body["project"]) == ("gemini-2.5-pro", "proj-1")
    assert body["request"]["contents"][0]["parts"][0]["text"] == "Say hello"
    assert _headers(wire.headers)["authorization"] == "Bearer ya29"
    chunks = [
        {"response": {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}},
        {"response": {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                                      "finishReason": "STOP"}],
                      "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}},
    ]  # fmt: skip
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    results = []
    for cut in (1, 7, len(raw) // 2, len(raw) - 1):
        decoder = GEMINI_CLI_CODEC.new_decoder("seed")
        events = [*decoder.feed(raw[:cut]), *decoder.feed(raw[cut:]), *decoder.flush()]
        results.append(("".join(e.text for e in events if isinstance(e, TextDelta)),
                        any(isinstance(e, Finish) for e in events)))  # fmt: skip
    assert set(results) == {("Hello", True)}
    whole = GEMINI_CLI_CODEC.parse_response(json.dumps(chunks[1]).encode(), "seed")
    assert [p.text for p in whole.parts if isinstance(p, Text)] == ["lo"]
    count = GEMINI_CLI_CODEC.emit_count_request(REQUEST, target)
    assert count is not None and count.path == "/v1internal:countTokens"
    assert json.loads(count.body)["request"]["model"] == "models/gemini-2.5-pro"
    assert GEMINI_CLI_CODEC.parse_count_response(b'{"totalTokens": 9}') == 9


def test_copilot_and_qwen_use_the_account_host() -> None:
    host = (("base_url", "https://api.individual.githubcopilot.com"),)
    copilot = COPILOT_CODEC.emit_request(REQUEST, Target("gpt-4o", "tid=1", stream=False, account=host))
    assert copilot.path == "https://api.individual.githubcopilot.com/chat/completions"
    headers = _headers(copilot.headers)
    assert headers["authorization"] == "Bearer tid=1"
    assert headers["copilot-integration-id"] == "vscode-chat" and headers["editor-version"].startswith("vscode/")
    qwen = QWEN_CODEC.emit_request(REQUEST, Target("qwen3-coder-plus", "q", stream=True,
                                                   account=(("base_url", "https://portal.qwen.ai/v1"),)))  # fmt: skip
    assert qwen.path == "https://portal.qwen.ai/v1/chat/completions"
    plain = QWEN_CODEC.emit_request(REQUEST, Target("qwen3-coder-plus", "q", stream=True))
    assert plain.path == "/chat/completions", "without an account host, the provider's base URL applies"

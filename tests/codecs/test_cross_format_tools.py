"""Provider-run tools and client protocol headers across formats (codecs/hosted.py, ``Codec.adapt_to_target``,
``client_protocol_headers``), and the transport's header merge."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from muxtrio.codecs.anthropic import CODEC as ANTHROPIC
from muxtrio.codecs.base import Format, HostedToolPolicy, RequestHints, Target
from muxtrio.codecs.gemini import CODEC as GEMINI
from muxtrio.codecs.openai_chat import CODEC as CHAT
from muxtrio.codecs.openai_responses import CODEC as RESPONSES
from muxtrio.errors import CodecError, ErrorKind
from muxtrio.ir import HostedTool, HostedToolKind
from muxtrio.upstream.client import merge_headers

TARGET = Target("model", "key", stream=False)
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "search"}],
    "tools": [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2, "allowed_domains": ["example.com"]},
        {"type": "code_execution_20250522", "name": "code_execution"},
    ],
    "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
}
GEMINI_BODY: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "search"}]}],
    "tools": [{"googleSearch": {}}, {"codeExecution": {}}],
}


def _anthropic(body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> Any:
    return ANTHROPIC.parse_request(orjson.dumps(body), RequestHints(headers=headers))


def test_anthropic_web_search_becomes_gemini_google_search_and_code_execution_is_dropped() -> None:
    adaptation = ANTHROPIC.adapt_to_target(_anthropic(ANTHROPIC_BODY), Format.GEMINI, HostedToolPolicy.MAP)
    assert adaptation.request.hosted_tools == (
        HostedTool(HostedToolKind.WEB_SEARCH, allowed_domains=("example.com",)),
    )
    assert adaptation.dropped == ("code_execution_20250522",)
    assert adaptation.ignored == ("context_management",)
    body = orjson.loads(GEMINI.emit_request(adaptation.request, TARGET).body)
    assert body["tools"] == [{"googleSearch": {}}]
    assert "context_management" not in body


def test_gemini_google_search_becomes_anthropic_web_search() -> None:
    request = GEMINI.parse_request(orjson.dumps(GEMINI_BODY), RequestHints(model="gemini-x"))
    adaptation = GEMINI.adapt_to_target(request, Format.ANTHROPIC, HostedToolPolicy.MAP)
    assert adaptation.dropped == ("codeExecution",)
    body = orjson.loads(ANTHROPIC.emit_request(adaptation.request, TARGET).body)
    assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search"}]


def test_anthropic_server_tools_toward_responses_map_to_web_search_with_domains() -> None:
    adaptation = ANTHROPIC.adapt_to_target(_anthropic(ANTHROPIC_BODY), Format.OPENAI_RESPONSES, HostedToolPolicy.MAP)
    body = orjson.loads(RESPONSES.emit_request(adaptation.request, TARGET).body)
    assert body["tools"] == [{"type": "web_search", "filters": {"allowed_domains": ["example.com"]}}]


@pytest.mark.parametrize("policy", list(HostedToolPolicy))
def test_policies_toward_a_format_without_provider_run_tools(policy: HostedToolPolicy) -> None:
    request = _anthropic(ANTHROPIC_BODY)
    if policy is HostedToolPolicy.REJECT:
        with pytest.raises(CodecError) as info:
            ANTHROPIC.adapt_to_target(request, Format.OPENAI_CHAT, policy)
        assert info.value.kind is ErrorKind.UNSUPPORTED
        return
    adaptation = ANTHROPIC.adapt_to_target(request, Format.OPENAI_CHAT, policy)
    assert adaptation.dropped == ("web_search_20250305", "code_execution_20250522")
    ANTHROPIC.check_target(adaptation.request, Format.OPENAI_CHAT)  # nothing Anthropic-only is left
    assert "tools" not in orjson.loads(CHAT.emit_request(adaptation.request, TARGET).body)


def test_anthropic_client_headers_reach_an_anthropic_provider() -> None:
    headers = (("anthropic-beta", "context-management-2025-06-27"), ("anthropic-version", "2026-10-21"))
    wire = ANTHROPIC.emit_request(_anthropic(ANTHROPIC_BODY, headers), TARGET)
    sent = dict(wire.headers)
    assert sent["anthropic-beta"] == "context-management-2025-06-27"
    assert sent["anthropic-version"] == "2026-10-21"
    assert orjson.loads(wire.body)["context_management"] == ANTHROPIC_BODY["context_management"]


def test_without_client_headers_the_default_version_is_sent() -> None:
    sent = dict(ANTHROPIC.emit_request(_anthropic({**ANTHROPIC_BODY, "tools": []}), TARGET).headers)
    assert sent["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in sent


def test_gemini_client_header_reaches_a_gemini_provider_only() -> None:
    hints = RequestHints(model="gemini-x", headers=(("x-goog-api-client", "google-genai-sdk/1.0"),))
    request = GEMINI.parse_request(orjson.dumps(GEMINI_BODY), hints)
    assert ("x-goog-api-client", "google-genai-sdk/1.0") in GEMINI.emit_request(request, TARGET).headers
    assert all(name != "x-goog-api-client" for name, _ in CHAT.emit_request(request, TARGET).headers)


def test_transport_merges_beta_lists_and_lets_the_request_win_elsewhere() -> None:
    configured = (("Anthropic-Beta", "oauth-2025-04-20"), ("anthropic-version", "2023-06-01"), ("x-extra", "1"))
    request = (("anthropic-beta", "context-management-2025-06-27,oauth-2025-04-20"), ("anthropic-version", "2026"))
    merged = {k.lower(): v for k, v in merge_headers(configured, request).items()}
    assert merged == {
        "anthropic-beta": "oauth-2025-04-20,context-management-2025-06-27",
        "anthropic-version": "2026",
        "x-extra": "1",
    }

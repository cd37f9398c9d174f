"""Provider-side codec variants for subscription accounts: what each subscription backend needs on the wire beyond
its base format. The sources of every fact are in ``tests/fixtures/accounts/<type>.source.txt``.

- ``claude`` (Anthropic Messages): the OAuth access token as ``Authorization: Bearer`` (never ``x-api-key``), the
  beta flags Claude Code sends (``claude-code-20250219``, ``oauth-2025-04-20``), and Claude Code's identity line as
  the first system block, which subscription tokens require.
- ``codex`` (ChatGPT backend, OpenAI Responses): always streamed upstream (a non-streaming client gets the collected
  answer), ``store: false``, ``instructions`` present, ``include: [reasoning.encrypted_content]``, system input items
  sent as ``developer``, and the fields the backend refuses left out (token limits, sampling, ``truncation``,
  ``user``, ``previous_response_id``...). ``chatgpt-account-id`` comes from the account. A ``usage_limit_reached``
  429 carries its reset time (``resets_in_seconds`` or ``resets_at``, against the response's ``Date``).
- ``gemini-cli`` (Code Assist ``v1internal``): the Gemini request wrapped as ``{model, project, request}``, answers
  and stream chunks unwrapped from ``{response}``; ``countTokens`` takes ``{request: {model, contents}}``.
- ``github-copilot`` (OpenAI chat): the Copilot API token plus the editor headers Copilot expects; the API host is
  the one the token exchange named.
- ``qwen`` (OpenAI chat): the account's ``resource_url`` is its API host.

Invariants: pure like every codec — account data (account id, project, API host) arrives in ``Target.account``,
clocks never (Codex's absolute reset time is measured against the response's own ``Date`` header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any, Final

from muxtrio.codecs.anthropic import AnthropicCodec
from muxtrio.codecs.base import StreamDecoder, Target, WireRequest
from muxtrio.codecs.gemini import GeminiCodec
from muxtrio.codecs.openai_chat import OpenAIChatCodec
from muxtrio.codecs.openai_responses import OpenAIResponsesCodec
from muxtrio.errors import CodecError, ErrorKind, UpstreamError
from muxtrio.ir.accumulate import accumulate
from muxtrio.ir.events import Event
from muxtrio.ir.request import Request, Text
from muxtrio.ir.response import Response
from muxtrio.wire import jsonutil
from muxtrio.wire.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, encode_data

Headers = tuple[tuple[str, str], ...]

CLAUDE_CODE_IDENTITY: Final = "You are Claude Code, Anthropic's official CLI for Claude."
CLAUDE_BETAS: Final = ("claude-code-20250219", "oauth-2025-04-20")
CLAUDE_USER_AGENT: Final = "claude-cli/1.0.83 (external, cli)"

CODEX_ORIGINATOR: Final = "codex_cli_rs"
CODEX_USER_AGENT: Final = "codex_cli_rs/0.50.0"
CODEX_REFUSED_FIELDS: Final = (
    "max_output_tokens", "max_completion_tokens", "temperature", "top_p", "truncation", "user",
    "previous_response_id", "prompt_cache_retention", "safety_identifier", "stream_options",
)  # fmt: skip
USAGE_LIMIT: Final = "usage_limit_reached"

CODE_ASSIST_VERSION: Final = "v1internal"
GEMINI_CLI_USER_AGENT: Final = "GeminiCLI/0.1.5 (linux; x64)"

COPILOT_HEADERS: Final = (
    ("editor-version", "vscode/1.104.1"),
    ("editor-plugin-version", "copilot-chat/0.26.7"),
    ("copilot-integration-id", "vscode-chat"),
    ("openai-intent", "conversation-panel"),
    ("user-agent", "GitHubCopilotChat/0.26.7"),
)


def _without(headers: Headers, *names: str) -> list[tuple[str, str]]:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _bearer(headers: Headers, target: Target, *names: str) -> list[tuple[str, str]]:
    """``headers`` without any key header, with the account's token as a Bearer token."""
    out = _without(headers, "authorization", "x-api-key", "x-goog-api-key", *names)
    if target.api_key:
        out.insert(0, ("authorization", f"Bearer {target.api_key}"))
    return out


def _account(target: Target, name: str) -> str:
    return dict(target.account).get(name, "")


def _on_host(path: str, target: Target) -> str:
    """``path`` on the account's own API host, when it has one."""
    base = _account(target, "base_url")
    return base.rstrip("/") + path if base else path


# ---------------------------------------------------------------------------------------------------------- claude
def with_claude_identity(request: Request) -> Request:
    """``request`` with Claude Code's identity line as its first system block (once)."""
    if request.system and request.system[0].text.startswith(CLAUDE_CODE_IDENTITY):
        return request
    return replace(request, system=(Text(CLAUDE_CODE_IDENTITY), *request.system))


def _claude_wire(wire: WireRequest, target: Target) -> WireRequest:
    betas = [b.strip() for k, v in wire.headers if k.lower() == "anthropic-beta" for b in v.split(",") if b.strip()]
    merged = list(CLAUDE_BETAS) + [b for b in betas if b not in CLAUDE_BETAS]
    headers = _bearer(wire.headers, target, "anthropic-beta", "user-agent")
    headers += [("anthropic-beta", ",".join(merged)), ("user-agent", CLAUDE_USER_AGENT), ("x-app", "cli")]
    return replace(wire, headers=tuple(headers))


class ClaudeCodeCodec(AnthropicCodec):
    """Anthropic Messages for a Claude Pro/Max account (Claude Code's OAuth login)."""

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        return _claude_wire(super().emit_request(with_claude_identity(request), target), target)

    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        wire = super().emit_count_request(with_claude_identity(request), target)
        return None if wire is None else _claude_wire(wire, target)


# ----------------------------------------------------------------------------------------------------------- codex
def codex_body(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses body as the ChatGPT Codex backend accepts it."""
    out = {k: v for k, v in body.items() if k not in CODEX_REFUSED_FIELDS}
    if out.get("service_tier") not in (None, "priority"):
        del out["service_tier"]
    out["stream"] = True
    out["store"] = False
    if not isinstance(out.get("instructions"), str):
        out["instructions"] = ""
    include = [i for i in out.get("include") or () if i != "reasoning.encrypted_content"]
    out["include"] = [*include, "reasoning.encrypted_content"]
    items = out.get("input")
    if isinstance(items, list):
        out["input"] = [
            {**item, "role": "developer"} if isinstance(item, dict) and item.get("role") == "system" else item
            for item in items
        ]
    return out


def codex_reset_seconds(error: Mapping[str, Any], headers: Mapping[str, str]) -> float | None:
    """Seconds until a Codex usage limit resets: ``resets_in_seconds``, else ``resets_at`` (unix seconds) minus
    the response's ``Date``."""
    seconds = error.get("resets_in_seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return float(seconds)
    resets_at = error.get("resets_at")
    date = headers.get("date")
    if isinstance(resets_at, int | float) and not isinstance(resets_at, bool) and date:
        try:
            now = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return None
        return max(float(resets_at) - now, 0.0)
    return None


class CodexCodec(OpenAIResponsesCodec):
    """OpenAI Responses for a ChatGPT Plus/Pro account on the Codex backend (Codex CLI's login)."""

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        wire = super().emit_request(request, replace(target, stream=True))
        body = codex_body(jsonutil.loads(wire.body))
        headers = _bearer(wire.headers, target, "accept")
        headers += [
            ("accept", "text/event-stream"),
            ("openai-beta", "responses=experimental"),
            ("originator", CODEX_ORIGINATOR),
            ("user-agent", CODEX_USER_AGENT),
        ]
        account_id = _account(target, "account_id")
        if account_id:
            headers.append(("chatgpt-account-id", account_id))
        return WireRequest("POST", _on_host(wire.path, target), tuple(headers), jsonutil.dumps(body))

    def parse_response(self, body: bytes, seed: str) -> Response:
        """The upstream always streams: collect the stream into one answer (a JSON body is read as one)."""
        if body.lstrip()[:1] == b"{":
            return super().parse_response(body, seed)
        decoder = super().new_decoder(seed)
        events: list[Event] = [*decoder.feed(body), *decoder.flush()]
        return accumulate(events)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error = super().parse_error(status, headers, body)
        try:
            data = jsonutil.loads(body)
        except jsonutil.JSONDecodeError:
            return error
        detail = data.get("error") if isinstance(data, dict) else None
        if isinstance(detail, dict) and detail.get("type") == USAGE_LIMIT:
            reset = codex_reset_seconds(detail, headers)
            plan = detail.get("plan_type")
            where = f" ({plan} plan)" if isinstance(plan, str) and plan else ""
            return UpstreamError(
                ErrorKind.RATE_LIMIT,
                f"the ChatGPT account reached its Codex usage limit{where}",
                provider_status=status,
                provider_type=USAGE_LIMIT,
                status=429,
                retry_after=reset,
            )
        return error

    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        return None  # the Codex backend has no input_tokens endpoint


# ------------------------------------------------------------------------------------------------------ gemini-cli
def unwrap_code_assist(data: object) -> object:
    """A Code Assist answer's Gemini payload: the value of ``response`` (the answer itself when not wrapped)."""
    if isinstance(data, dict) and isinstance(data.get("response"), dict):
        return data["response"]
    return data


class _UnwrappingDecoder(StreamDecoder):
    """Code Assist SSE (``data: {"response": {...}}``) -> the Gemini decoder, one unwrapped event at a time."""

    def __init__(self, inner: StreamDecoder, max_event_bytes: int) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self._inner = inner

    def _relay(self, events: list[Any]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if not event.data.strip():
                continue
            try:
                payload = unwrap_code_assist(jsonutil.loads(event.data))
            except jsonutil.JSONDecodeError:
                raise CodecError("Code Assist sent a stream chunk that is not JSON") from None
            out.extend(self._inner.feed(encode_data(jsonutil.dumps(payload))))
        return out

    def feed(self, data: bytes) -> list[Event]:
        return self._relay(self._sse.feed(data))

    def flush(self) -> list[Event]:
        out = self._relay(self._sse.flush())
        return [*out, *self._inner.flush()]


class GeminiCliCodec(GeminiCodec):
    """Gemini on Google's Code Assist API for a Google account (Gemini CLI's login)."""

    def _code_assist_headers(self, wire: WireRequest, target: Target, stream: bool) -> Headers:
        headers = _bearer(wire.headers, target, "user-agent", "accept")
        accept = "text/event-stream" if stream else "application/json"
        headers += [("user-agent", GEMINI_CLI_USER_AGENT), ("accept", accept)]
        return tuple(headers)

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        inner = super().emit_request(request, target)
        body = {"model": target.model, "project": _account(target, "project"), "request": jsonutil.loads(inner.body)}
        method = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        path = _on_host(f"/{CODE_ASSIST_VERSION}:{method}", target)
        return WireRequest("POST", path, self._code_assist_headers(inner, target, target.stream), jsonutil.dumps(body))

    def parse_response(self, body: bytes, seed: str) -> Response:
        try:
            data = jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            raise CodecError(f"malformed Code Assist answer: {exc}") from None
        return super().parse_response(jsonutil.dumps(unwrap_code_assist(data)), seed)

    def new_decoder(self, seed: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> StreamDecoder:
        return _UnwrappingDecoder(super().new_decoder(seed, max_event_bytes=max_event_bytes), max_event_bytes)

    def emit_count_request(self, request: Request, target: Target) -> WireRequest | None:
        inner = super().emit_count_request(request, target)
        if inner is None:
            return None
        counted = jsonutil.loads(inner.body)
        generate = counted.get("generateContentRequest", counted)
        body = {"request": {"model": f"models/{target.model}", "contents": generate.get("contents", [])}}
        path = _on_host(f"/{CODE_ASSIST_VERSION}:countTokens", target)
        return WireRequest("POST", path, self._code_assist_headers(inner, target, False), jsonutil.dumps(body))

    def parse_count_response(self, body: bytes) -> int:
        try:
            data = jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            raise CodecError(f"malformed Code Assist countTokens answer: {exc}") from None
        return super().parse_count_response(jsonutil.dumps(unwrap_code_assist(data)))


# ------------------------------------------------------------------------------------------ github-copilot, qwen
class CopilotCodec(OpenAIChatCodec):
    """OpenAI chat for a GitHub Copilot subscription (the Copilot API token, editor headers)."""

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        wire = super().emit_request(request, target)
        headers = _bearer(wire.headers, target, *(name for name, _ in COPILOT_HEADERS))
        headers += [*COPILOT_HEADERS, ("x-initiator", "user")]
        return WireRequest("POST", _on_host(wire.path, target), tuple(headers), wire.body)


class QwenCodec(OpenAIChatCodec):
    """OpenAI chat for a Qwen account, on the account's own resource host."""

    def emit_request(self, request: Request, target: Target) -> WireRequest:
        wire = super().emit_request(request, target)
        return WireRequest("POST", _on_host(wire.path, target), tuple(_bearer(wire.headers, target)), wire.body)


CLAUDE_CODEC: Final = ClaudeCodeCodec()
CODEX_CODEC: Final = CodexCodec()
GEMINI_CLI_CODEC: Final = GeminiCliCodec()
COPILOT_CODEC: Final = CopilotCodec()
QWEN_CODEC: Final = QwenCodec()

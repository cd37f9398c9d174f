"""The Anthropic Messages codec: golden provider streams, SDK-shaped client bodies, round trips and errors.

Client payloads are checked against the official ``anthropic`` SDK's own models, and end to end through the SDK
itself over an in-memory transport (no sockets).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import MessageTokensCount, RawMessageStreamEvent
from anthropic.types.beta_error_response import BetaErrorResponse
from pydantic import TypeAdapter

from muxtrio.codecs.anthropic import (
    CODEC,
    IR_TO_STOP_REASON,
    STOP_REASON_TO_IR,
    AnthropicStreamDecoder,
    require_anthropic_target,
)
from muxtrio.codecs.base import Format, RequestHints, StreamInfo, Target
from muxtrio.errors import ClientError, CodecError, ErrorKind, MuxError, StreamTruncated, UpstreamError
from muxtrio.ir import (
    Effort,
    Event,
    File,
    Finish,
    FinishReason,
    Image,
    JSONObject,
    Message,
    Reasoning,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RedactedReasoningBlock,
    Request,
    Response,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Sampling,
    Start,
    Text,
    TextDelta,
    Thinking,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    Usage,
    UsageUpdate,
    accumulate,
    response_events,
)
from muxtrio.wire.sse import SSEDecoder
from tests.codecs.helpers import assert_split_invariant, decode_all, fixture

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK"
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/w==CkYIBxgCKkA"
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
EPHEMERAL: JSONObject = {"type": "ephemeral"}

STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


def info_for(request: Request | None = None) -> StreamInfo:
    return StreamInfo(
        id="msg_mux_0001",
        model="claude-via-mux",
        created=1_700_000_000,
        request=request or Request(model="claude-via-mux", messages=()),
    )


def target(stream: bool = False, model: str = "claude-sonnet-4-5-20250929") -> Target:
    return Target(model=model, api_key="sk-ant-upstream", stream=stream)


def parse(body: bytes | dict[str, Any], **hints: Any) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return CODEC.parse_request(raw, RequestHints(**hints))


def sse_events(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    decoder = SSEDecoder()
    events = decoder.feed(data) + decoder.flush()
    return [(event.event, json.loads(event.data)) for event in events]


def sdk_client(handler: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="sk-client",
        base_url="http://muxtrio.test",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


# ============================================================================================ provider stream decoding
def test_basic_text_stream_from_sdk_suite() -> None:
    events = assert_split_invariant(CODEC, fixture("anthropic/basic_text.sse"))
    assert events == [
        Start("msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest"),
        UsageUpdate(Usage(input_tokens=11, output_tokens=1)),
        TextDelta(0, "Hello"),
        TextDelta(0, " there"),
        TextDelta(0, "!"),
        UsageUpdate(Usage(input_tokens=11, output_tokens=6)),
        Finish(FinishReason.STOP, None),
    ]


def test_tool_use_stream_from_sdk_suite() -> None:
    events = assert_split_invariant(CODEC, fixture("anthropic/tool_use.sse"))
    assert events == [
        Start("msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514"),
        UsageUpdate(Usage(input_tokens=377, output_tokens=1)),
        TextDelta(0, "I"),
        TextDelta(0, "'ll check the current weather in Paris for you."),
        ToolCallStart(1, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"),
        ToolCallDelta(1, '{"locati'),
        ToolCallDelta(1, 'on": "P'),
        ToolCallDelta(1, "ar"),
        ToolCallDelta(1, 'is"}'),
        ToolCallEnd(1),
        UsageUpdate(Usage(input_tokens=377, output_tokens=65)),
        Finish(FinishReason.TOOL_CALLS, None),
    ]
    answer = accumulate(events)
    assert answer.parts[1] == ToolCall("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", '{"location": "Paris"}')


def test_server_tool_blocks_take_no_ir_index() -> None:
    events = assert_split_invariant(CODEC, fixture("anthropic/server_tool_use.sse"))
    assert events == [
        Start("msg_01ServerToolUseInputJson", "claude-sonnet-4-20250514"),
        UsageUpdate(Usage(input_tokens=42, output_tokens=1)),
        TextDelta(0, "Let me search for that."),
        UsageUpdate(Usage(input_tokens=42, output_tokens=40)),
        Finish(FinishReason.STOP, None),
    ]


def test_refusal_stream_with_empty_text_block_and_thinking_tokens() -> None:
    events = assert_split_invariant(CODEC, fixture("anthropic/refusal.sse"))
    assert events == [
        Start("msg_01RefusalTestMessage123456789", "claude-opus-4-7"),
        UsageUpdate(Usage(input_tokens=20, output_tokens=1)),
        UsageUpdate(Usage(input_tokens=20, output_tokens=120, reasoning_tokens=67)),
        Finish(FinishReason.CONTENT_FILTER, None),
    ]


THINKING_USAGE_START = Usage(input_tokens=2360, output_tokens=1, cache_read_tokens=2048, cache_write_tokens=300)
THINKING_USAGE_END = Usage(
    input_tokens=2360, output_tokens=187, reasoning_tokens=95, cache_read_tokens=2048, cache_write_tokens=300
)


def test_thinking_redacted_text_and_tools_stream() -> None:
    events = assert_split_invariant(CODEC, fixture("anthropic/thinking_tool_use.sse"))
    assert events == [
        Start("msg_01ThinkToolTranscript", "claude-sonnet-4-5-20250929"),
        UsageUpdate(THINKING_USAGE_START),
        ReasoningDelta(0, "The user wants Paris weather. "),
        ReasoningDelta(0, "I'll call the tool — ünïcödé ✓."),
        ReasoningSignature(0, SIG),
        RedactedReasoningBlock(1, REDACTED),
        TextDelta(2, "Checking "),
        TextDelta(2, "now.\n"),
        ToolCallStart(3, "toolu_01WeatherParis", "get_weather"),
        ToolCallDelta(3, '{"city":"Par'),
        ToolCallDelta(3, 'is","unit":"c"}'),
        ToolCallEnd(3),
        ToolCallStart(4, "toolu_01Clock", "get_time"),
        ToolCallDelta(4, "{}"),  # no input_json_delta at all: the call's input is {}
        ToolCallEnd(4),
        UsageUpdate(THINKING_USAGE_END),
        Finish(FinishReason.TOOL_CALLS, None),
    ]


THINKING_RESPONSE = Response(
    id="msg_01ThinkToolTranscript",
    model="claude-sonnet-4-5-20250929",
    parts=(
        Reasoning("The user wants Paris weather. I'll call the tool — ünïcödé ✓.", signature=SIG),
        RedactedReasoning(REDACTED),
        Text("Checking now.\n"),
        ToolCall("toolu_01WeatherParis", "get_weather", '{"city":"Paris","unit":"c"}'),
        ToolCall("toolu_01Clock", "get_time", "{}"),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
    usage=THINKING_USAGE_END,
)


def test_parse_response_matches_accumulated_stream() -> None:
    parsed = CODEC.parse_response(fixture("anthropic/thinking_tool_use.json"), "seed")
    assert parsed == THINKING_RESPONSE
    assert accumulate(decode_all(CODEC, fixture("anthropic/thinking_tool_use.sse"))) == parsed


def test_parse_response_skips_server_tool_blocks_and_empty_content() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-7",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Found it.", "citations": None},
        ],
        "stop_reason": "pause_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    parsed = CODEC.parse_response(json.dumps(body).encode(), "seed")
    assert parsed == Response("msg_1", "claude-opus-4-7", (Text("Found it."),), FinishReason.STOP, Usage(5, 7))
    empty = {**body, "content": [], "stop_reason": "max_tokens"}
    assert CODEC.parse_response(json.dumps(empty).encode(), "s").parts == ()
    stopped = {**body, "content": [], "stop_reason": "stop_sequence", "stop_sequence": "###"}
    parsed_stop = CODEC.parse_response(json.dumps(stopped).encode(), "s")
    assert (parsed_stop.finish_reason, parsed_stop.stop_sequence) == (FinishReason.STOP_SEQUENCE, "###")


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"content": "text"}', b'{"content": [{"type": "text"}]}'])
def test_parse_response_rejects_malformed_bodies(body: bytes) -> None:
    with pytest.raises(CodecError) as info:
        CODEC.parse_response(body, "seed")
    assert info.value.kind is ErrorKind.UPSTREAM


def test_mid_stream_error_event_raises_upstream_error() -> None:
    data = fixture("anthropic/error_overloaded.sse")
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        decoder = CODEC.new_decoder("seed")
        seen: list[Event] = []
        with pytest.raises(UpstreamError) as info:
            for chunk in chunks:
                seen.extend(decoder.feed(chunk))
            seen.extend(decoder.flush())
        # Events decoded before the error in the same chunk are handed out first; the error comes next.
        assert seen == [
            Start("msg_01Overloaded", "claude-sonnet-4-5"),
            UsageUpdate(Usage(input_tokens=10, output_tokens=1)),
            TextDelta(0, "Partial"),
        ]
        error = info.value
        assert (error.kind, error.provider_type, error.provider_status, error.status) == (
            ErrorKind.OVERLOADED,
            "overloaded_error",
            529,
            503,
        )
        assert error.message == "Overloaded"
        with pytest.raises(UpstreamError):
            decoder.feed(b"event: ping\ndata: {}\n\n")


def _event_boundaries(data: bytes) -> list[int]:
    return [i + 2 for i in range(len(data) - 1) if data[i : i + 2] == b"\n\n"]


@pytest.mark.parametrize("name", ["thinking_tool_use.sse", "tool_use.sse"])
def test_every_cut_before_message_stop_is_truncated(name: str) -> None:
    data = fixture(f"anthropic/{name}")
    stop_at = data.index(b"event: message_stop")
    cuts = [cut for cut in [0, *_event_boundaries(data)] if cut <= stop_at] + [stop_at + 25]
    for cut in cuts:
        decoder = CODEC.new_decoder("seed")
        decoder.feed(data[:cut])
        with pytest.raises(StreamTruncated):
            decoder.flush()


def test_unknown_events_and_deltas_are_ignored_and_data_after_stop_too() -> None:
    data = fixture("anthropic/basic_text.sse")
    extra_event = b'event: future_event\ndata: {"type":"future_event","x":1}\n\n'
    citations = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"citations_delta","citation":{"type":"char_location"}}}\n\n'
    )
    at = data.index(b"event: content_block_stop")
    noisy = data[:at] + extra_event + citations + data[at:] + b"\n\n" + extra_event + b"event: ping\ndata: {}\n\n"
    assert assert_split_invariant(CODEC, noisy) == decode_all(CODEC, data)


MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
    b'"model":"c","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}'
    b"\n\n"
)


@pytest.mark.parametrize(
    "data",
    [
        MESSAGE_START + b"event: content_block_delta\ndata: {not json}\n\n",
        MESSAGE_START + b"event: content_block_delta\ndata: [1, 2]\n\n",
        MESSAGE_START
        + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":7,'
        + b'"delta":{"type":"text_delta","text":"x"}}\n\n',
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        MESSAGE_START + b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        MESSAGE_START
        + b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        + b'"content_block":{"type":"text","text":""}}\n\n'
        + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        + b'"delta":{"type":"text_delta","text":5}}\n\n',
    ],
    ids=["bad-json", "not-object", "unknown-index", "before-message-start", "stop-without-delta", "text-not-str"],
)
def test_malformed_provider_stream_raises_codec_error(data: bytes) -> None:
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        decoder = CODEC.new_decoder("seed")
        with pytest.raises(CodecError) as info:
            for chunk in chunks:
                decoder.feed(chunk)
            decoder.flush()
        assert info.value.kind is ErrorKind.UPSTREAM


def test_oversized_event_raises_codec_error() -> None:
    decoder = AnthropicStreamDecoder(max_event_bytes=512)
    decoder.feed(MESSAGE_START)
    big = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"text":"' + b"x" * 600
    with pytest.raises(CodecError):
        decoder.feed(big)


# ============================================================================================ provider errors
@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status"),
    [
        (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "overloaded", 503),
        (
            429,
            b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded"}}',
            "rate_limit",
            429,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error",'
            b'"message":"prompt is too long: 208112 tokens > 200000 maximum"},"request_id":"req_011"}',
            "context_length",
            400,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error",'
            b'"message":"Output blocked by content filtering policy"}}',
            "content_filter",
            400,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}',
            "invalid_request",
            400,
        ),
        (
            401,
            b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
            "authentication",
            502,
        ),
        (403, b'{"type":"error","error":{"type":"permission_error","message":"no access"}}', "permission", 502),
        (404, b'{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}', "not_found", 404),
        (500, b'{"type":"error","error":{"type":"api_error","message":"Internal server error"}}', "upstream", 502),
        (504, b'{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}', "timeout", 504),
        (413, b"<html><body>413 Request Entity Too Large</body></html>", "request_too_large", 413),
        (503, b"upstream connect error", "overloaded", 503),
        (502, b"", "upstream", 502),
    ],
)
def test_parse_error_kinds(status: int, body: bytes, kind: str, client_status: int) -> None:
    error = CODEC.parse_error(status, {}, body)
    assert isinstance(error, UpstreamError)
    assert (error.kind, error.status, error.provider_status) == (ErrorKind(kind), client_status, status)
    if body.startswith(b"{"):
        wire = json.loads(body)["error"]
        assert (error.provider_type, error.message) == (wire["type"], wire["message"])
    else:
        assert error.provider_type is None
        assert error.message == (body.decode() or "HTTP 502")


# ============================================================================================ client requests
def test_parse_sdk_agent_turn_request() -> None:
    request = parse(fixture("anthropic/request_agent_turn.json"))
    read_schema: JSONObject = {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["file_path"],
    }
    expected = Request(
        model="claude-sonnet-4-5",
        system=(Text("You are Claude Code, Anthropic's official CLI for Claude."), Text("Work in /repo.")),
        messages=(
            Message(
                Role.USER,
                (
                    Text("What is in this picture and this PDF?"),
                    Image(data=PNG, mime_type="image/png"),
                    Image(url="https://example.com/cat.jpg"),
                    File(data=PDF, mime_type="application/pdf", filename="spec.pdf"),
                    File(url="https://example.com/paper.pdf", mime_type="application/pdf"),
                    File(data=base64.b64encode(b"plain notes").decode(), mime_type="text/plain"),
                ),
            ),
            Message(
                Role.ASSISTANT,
                (
                    Reasoning("I should read the file first.", signature="EqQBCkYIBxgCKkDsig+/=="),
                    RedactedReasoning("EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"),
                    Text("Let me look."),
                    ToolCall("toolu_01A09q90qw90lq917835lq9", "Read", '{"file_path":"/repo/a.py","limit":20}'),
                    ToolCall("toolu_01B", "Glob", "{}"),
                ),
            ),
            Message(
                Role.TOOL,
                (
                    ToolResult("toolu_01A09q90qw90lq917835lq9", (Text("print('hi')"),)),
                    ToolResult(
                        "toolu_01B", (Text("no matches"), Image(data=PNG, mime_type="image/png")), is_error=True
                    ),
                ),
            ),
            Message(Role.USER, (Text("Now explain it."),)),
        ),
        tools=(
            Tool("Read", "Read a file", read_schema),
            Tool("Glob", "Find files", {"type": "object", "properties": {"pattern": {"type": "string"}}}),
        ),
        tool_choice=ToolChoice(ToolChoiceMode.AUTO),
        parallel_tool_calls=False,
        sampling=Sampling(temperature=1.0, top_p=0.99, top_k=40, max_tokens=32000, stop=("\n\nHuman:",)),
        thinking=Thinking(enabled=True, budget_tokens=10000),
        stream=True,
        user="user_3f2a",
        service_tier="auto",
        extensions={
            "anthropic": {
                "cache_control": [
                    {"message": 3, "part": 0, "value": EPHEMERAL},
                    {"system": 1, "value": EPHEMERAL},
                    {"tool": 1, "value": EPHEMERAL},
                ],
                "thinking": {"type": "enabled", "budget_tokens": 10000},
            }
        },
    )
    assert request == expected


def test_parse_server_tools_adaptive_thinking_and_structured_output() -> None:
    request = parse(fixture("anthropic/request_server_tools.json"))
    schema: JSONObject = {
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
        "additionalProperties": False,
    }
    assert request.messages == (
        Message(Role.USER, (Text("Search the news."),)),
        Message(Role.ASSISTANT, (Text("Here is the news."),)),
        Message(Role.USER, (Text("Summarise as JSON."),)),
    )
    assert request.tools == (Tool("lookup", "Look up", {"type": "object", "properties": {}}),)
    assert request.thinking == Thinking(enabled=True, effort=Effort.XHIGH)
    assert request.response_format == ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=schema)
    assert request.sampling == Sampling(max_tokens=4096)
    ext = request.extensions["anthropic"]
    assert ext["server_tools"] == [
        {"index": 0, "tool": {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}}
    ]
    body = json.loads(fixture("anthropic/request_server_tools.json"))
    server_blocks = body["messages"][1]["content"][:2]
    assert ext["opaque_blocks"] == [
        {"message": 1, "part": 0, "block": server_blocks[0]},
        {"message": 1, "part": 0, "block": server_blocks[1]},
    ]
    assert ext["thinking"] == {"type": "adaptive"}
    assert ext["output_config"] == body["output_config"]
    assert ext["extra_body"] == {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}


def test_parse_forced_tool_and_string_system() -> None:
    request = parse(fixture("anthropic/request_forced_tool.json"))
    assert request.system == (Text("Be terse."),)
    assert request.messages == (Message(Role.USER, (Text("What's the weather in Paris?"),)),)
    assert request.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "get_weather")
    assert request.parallel_tool_calls is None
    assert request.sampling == Sampling(temperature=0.2, max_tokens=1024)
    assert request.stream is False
    assert request.extensions == {}


def test_count_tokens_body_needs_no_max_tokens_on_that_endpoint_only() -> None:
    body = fixture("anthropic/request_count_tokens.json")
    request = parse(body, endpoint="count_tokens")
    assert request.sampling.max_tokens is None
    assert request.extensions == {"anthropic": {"endpoint": "count_tokens"}}
    with pytest.raises(ClientError) as info:
        parse(body)
    assert info.value.param == "max_tokens"
    assert info.value.kind is ErrorKind.INVALID_REQUEST


def test_user_turn_mixing_tool_results_and_text_splits_in_order() -> None:
    request = parse(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "before"},
                        {"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
                        {"type": "tool_result", "tool_use_id": "t2"},
                        {"type": "text", "text": "after"},
                    ],
                }
            ],
        }
    )
    assert request.messages == (
        Message(Role.USER, (Text("before"),)),
        Message(Role.TOOL, (ToolResult("t1", (Text("r1"),)), ToolResult("t2", ()))),
        Message(Role.USER, (Text("after"),)),
    )


def test_thinking_disabled_display_and_hints() -> None:
    request = parse(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "disabled"},
            "stream": False,
        },
        stream=True,
    )
    assert request.thinking == Thinking(enabled=False)
    assert request.stream is True
    omitted = parse(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [],
            "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"},
            "output_config": {"effort": "low"},
        }
    )
    assert omitted.thinking == Thinking(enabled=True, budget_tokens=2048, effort=Effort.LOW, include_thoughts=False)


def test_empty_signature_from_client_means_unsigned() -> None:
    request = parse(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}]}],
        }
    )
    assert request.messages[0].parts == (Reasoning("t", signature=None),)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        ({"max_tokens": 5, "messages": []}, "model"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": {"role": "user"}}, "messages"),
        ({"model": "m", "max_tokens": "5", "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}],
            },
            "messages[0].content[0]",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}],
            },
            "messages[0].content[0].source.type",
        ),
        ({"model": "m", "max_tokens": 5, "messages": [], "system": [{"type": "image"}]}, "system[0].type"),
        ({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"model": "m", "max_tokens": 5, "messages": [], "thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": [], "thinking": {"type": "maybe"}}, "thinking.type"),
        ({"model": "m", "max_tokens": 5, "messages": [], "temperature": "hot"}, "temperature"),
        ({"model": "m", "max_tokens": 5, "messages": [], "stop_sequences": [1]}, "stop_sequences[0]"),
        ({"model": "m", "max_tokens": 5, "messages": [], "metadata": {"user_id": 7}}, "metadata.user_id"),
        (
            {"model": "m", "max_tokens": 5, "messages": [], "output_config": {"effort": "extreme"}},
            "output_config.effort",
        ),
    ],
)
def test_bad_client_requests_name_the_field(body: bytes | dict[str, Any], param: str | None) -> None:
    with pytest.raises(ClientError) as info:
        parse(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert info.value.status == 400
    assert info.value.param == param


# ============================================================================================ provider requests
def test_emit_request_headers_and_path() -> None:
    wire = CODEC.emit_request(parse(fixture("anthropic/request_forced_tool.json")), target())
    assert (wire.method, wire.path) == ("POST", "/v1/messages")
    assert wire.headers == (
        ("x-api-key", "sk-ant-upstream"),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    )
    keyless = CODEC.emit_request(parse(fixture("anthropic/request_forced_tool.json")), Target("m", None, False))
    assert ("x-api-key", "sk-ant-upstream") not in keyless.headers


def test_anthropic_client_request_passes_through_unchanged_but_for_thinking_incompatible_sampling() -> None:
    original = json.loads(fixture("anthropic/request_agent_turn.json"))
    wire = CODEC.emit_request(parse(fixture("anthropic/request_agent_turn.json")), target(stream=True))
    expected = {key: value for key, value in original.items() if key not in ("temperature", "top_k")}
    expected["model"] = "claude-sonnet-4-5-20250929"
    assert json.loads(wire.body) == expected


def test_server_tools_opaque_blocks_and_extra_body_pass_through_to_anthropic() -> None:
    original = json.loads(fixture("anthropic/request_server_tools.json"))
    wire = CODEC.emit_request(parse(fixture("anthropic/request_server_tools.json")), target(model="claude-opus-4-7"))
    assert json.loads(wire.body) == original


def test_require_anthropic_target() -> None:
    request = parse(fixture("anthropic/request_server_tools.json"))
    require_anthropic_target(request, Format.ANTHROPIC)
    with pytest.raises(CodecError) as info:
        require_anthropic_target(request, Format.OPENAI_CHAT)
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, "tools[0]")
    only_blocks = dataclasses.replace(
        request, extensions={"anthropic": {"opaque_blocks": request.extensions["anthropic"]["opaque_blocks"]}}
    )
    with pytest.raises(CodecError) as info:
        require_anthropic_target(only_blocks, Format.GEMINI)
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, "messages")
    require_anthropic_target(parse(fixture("anthropic/request_agent_turn.json")), Format.OLLAMA)


FOREIGN_MESSAGES = (
    Message(Role.SYSTEM, (Text("Lifted system prompt."),)),
    Message(
        Role.USER,
        (Text("Look:"), Image(url="data:image/png;base64," + PNG, detail="high"), Image(url="https://x.test/a.png")),
    ),
    Message(
        Role.ASSISTANT,
        (
            Reasoning("unsigned thoughts from another provider"),
            Text(""),
            Text("Calling."),
            ToolCall("call_abc.1", "lookup", '{"q": "x"}'),
            ToolCall("call_2", "noargs", ""),
        ),
    ),
    Message(Role.TOOL, (ToolResult("call_abc.1", (Text("found"),)),)),
    Message(Role.TOOL, (ToolResult("call_2", (), is_error=True),)),
    Message(Role.USER, (Text("thanks"), File(data=base64.b64encode(b"notes").decode(), mime_type="text/plain"))),
    Message(Role.USER, (Text(""),)),
    Message(Role.SYSTEM, (Text("Mid-conversation instruction."),)),
)


def foreign_request(**changes: Any) -> Request:
    base = Request(
        model="gpt-alias",
        system=(Text("Top system."),),
        messages=FOREIGN_MESSAGES,
        tools=(
            Tool("lookup", "Look up", {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}, strict=True),
            Tool("noargs"),
        ),
        tool_choice=ToolChoice(ToolChoiceMode.AUTO),
        parallel_tool_calls=False,
        sampling=Sampling(
            temperature=1.6, top_p=0.5, top_k=10, max_tokens=1000, stop=("END",), seed=7, presence_penalty=0.5, n=1
        ),
        thinking=Thinking(effort=Effort.HIGH),
        user="u-1",
        service_tier="default",
        metadata={"trace": "x"},
    )
    return dataclasses.replace(base, **changes)


FOREIGN_MESSAGES_WIRE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_call_abc_1", "name": "lookup", "input": {"q": "x"}},
            {"type": "tool_use", "id": "call_2", "name": "noargs", "input": {}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_call_abc_1", "content": "found"},
            {"type": "tool_result", "tool_use_id": "call_2", "is_error": True},
            {"type": "text", "text": "thanks"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
        ],
    },
    {"role": "system", "content": "Mid-conversation instruction."},
]

FOREIGN_TOOLS_WIRE = [
    {
        "name": "lookup",
        "description": "Look up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "strict": True,
    },
    {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
]


def test_emit_request_from_another_format() -> None:
    body = json.loads(CODEC.emit_request(foreign_request(), target(stream=True)).body)
    assert body == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "Top system."}, {"type": "text", "text": "Lifted system prompt."}],
        "messages": FOREIGN_MESSAGES_WIRE,
        "tools": FOREIGN_TOOLS_WIRE,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        # No thinking: the tool loop's assistant turn has no signed thinking block, which Anthropic would reject.
        "temperature": 1.0,  # clamped to Anthropic's range
        "top_p": 0.5,
        "top_k": 10,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "service_tier": "standard_only",
        "stream": True,
    }


def test_thinking_from_effort_adjusts_max_tokens_and_sampling() -> None:
    request = foreign_request(messages=(Message(Role.USER, (Text("hi"),)),))
    body = json.loads(CODEC.emit_request(request, target()).body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 24576}  # effort high
    assert body["max_tokens"] == 24576 + 4096  # must exceed the budget
    assert body["top_p"] == 0.95  # raised into the range Anthropic allows with thinking
    assert "temperature" not in body and "top_k" not in body
    # A tool loop whose assistant turn starts with a signed thinking block keeps thinking on.
    signed = foreign_request(
        messages=(
            Message(Role.USER, (Text("hi"),)),
            Message(Role.ASSISTANT, (Reasoning("r", signature="sig"), ToolCall("t1", "lookup", "{}"))),
            Message(Role.TOOL, (ToolResult("t1", (Text("ok"),)),)),
        )
    )
    assert "thinking" in json.loads(CODEC.emit_request(signed, target()).body)
    unsigned = dataclasses.replace(signed, messages=(*signed.messages[:1], FOREIGN_MESSAGES[2], FOREIGN_MESSAGES[3]))
    assert "thinking" not in json.loads(CODEC.emit_request(unsigned, target()).body)
    # A finished tool exchange followed by a new user question is not a loop: thinking stays.
    finished = dataclasses.replace(signed, messages=(*unsigned.messages, Message(Role.ASSISTANT, (Text("done"),))))
    finished = dataclasses.replace(finished, messages=(*finished.messages, Message(Role.USER, (Text("next"),))))
    assert "thinking" in json.loads(CODEC.emit_request(finished, target()).body)


def test_effort_alone_from_an_anthropic_client_adds_no_thinking() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"effort": "max"},
    }
    wire = json.loads(CODEC.emit_request(parse(body), target()).body)
    assert wire == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 100,
        "messages": body["messages"],
        "output_config": {"effort": "max"},
    }


def test_forced_tool_drops_thinking_and_clamps_temperature() -> None:
    request = foreign_request(tool_choice=ToolChoice(ToolChoiceMode.REQUIRED), parallel_tool_calls=None)
    body = json.loads(CODEC.emit_request(request, target()).body)
    assert "thinking" not in body and "stream" not in body
    assert body["max_tokens"] == 1000
    assert body["tool_choice"] == {"type": "any"}
    assert (body["temperature"], body["top_p"], body["top_k"]) == (1.0, 0.5, 10)


def test_emit_request_defaults_and_small_details() -> None:
    request = Request(
        model="x",
        messages=(Message(Role.USER, (Text("hi"),)),),
        thinking=Thinking(enabled=True, budget_tokens=-1),
        parallel_tool_calls=False,
    )
    body = json.loads(CODEC.emit_request(request, target()).body)
    assert body == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 8192 + 4096,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 8192},
    }
    off = json.loads(CODEC.emit_request(dataclasses.replace(request, thinking=Thinking(enabled=False)), target()).body)
    assert (off["max_tokens"], off["thinking"]) == (8192, {"type": "disabled"})


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"sampling": Sampling(n=2)}, "n"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)}, "response_format"),
        ({"messages": (Message(Role.ASSISTANT, (ToolCall("c1", "f", "{broken"),)),)}, "messages[0].content[0]"),
        ({"messages": (Message(Role.ASSISTANT, (ToolCall("c1", "f", "[1]"),)),)}, "messages[0].content[0]"),
        (
            {"messages": (Message(Role.USER, (File(data="UEsDBA==", mime_type="application/zip"),)),)},
            "messages[0].content[0]",
        ),
        ({"messages": (Message(Role.USER, (Image(),)),)}, "messages[0].content[0]"),
    ],
)
def test_what_anthropic_cannot_express_is_unsupported(changes: dict[str, Any], param: str) -> None:
    request = dataclasses.replace(Request(model="x", messages=(Message(Role.USER, (Text("hi"),)),)), **changes)
    with pytest.raises(CodecError) as info:
        CODEC.emit_request(request, target())
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, param)
    if "ToolCall" in repr(changes):
        assert "'c1' (f)" in info.value.message


ROUND_TRIP_SCHEMA: JSONObject = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

ROUND_TRIP_REQUEST = Request(
    model="claude-sonnet-4-5-20250929",
    system=(Text("Be helpful."), Text("Second system block.")),
    messages=(
        Message(
            Role.USER,
            (
                Text("Describe."),
                Image(data=PNG, mime_type="image/png"),
                Image(url="https://x.test/b.jpg"),
                File(data=PDF, mime_type="application/pdf", filename="a.pdf"),
                File(url="https://x.test/p.pdf", mime_type="application/pdf"),
                File(data=base64.b64encode("naïve text".encode()).decode(), mime_type="text/plain"),
                File(file_id="file_011CNha8iCJcU1wXNR6q4V8w"),
            ),
        ),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("thinking…", signature=SIG),
                RedactedReasoning(REDACTED),
                Text("Sure."),
                ToolCall("toolu_01", "weather", '{"city":"Paris"}'),
            ),
        ),
        Message(
            Role.TOOL,
            (
                ToolResult("toolu_01", (Text("sunny"),)),
                ToolResult("toolu_02", (Text("a"), Image(data=PNG, mime_type="image/png")), is_error=True),
            ),
        ),
        Message(Role.USER, (Text("And tomorrow?"),)),
    ),
    tools=(Tool("weather", "Get the weather", ROUND_TRIP_SCHEMA, strict=True), Tool("other", None, {"type": "object"})),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "weather"),
    parallel_tool_calls=False,
    sampling=Sampling(temperature=0.5, top_p=0.9, top_k=5, max_tokens=2000, stop=("STOP", "END")),
    thinking=Thinking(enabled=False),
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=ROUND_TRIP_SCHEMA),
    stream=True,
    user="user-9",
    service_tier="auto",
)


def test_ir_request_round_trips_through_the_wire() -> None:
    wire = CODEC.emit_request(ROUND_TRIP_REQUEST, target(stream=True))
    back = CODEC.parse_request(wire.body, RequestHints())
    assert back.extensions == {
        "anthropic": {
            "thinking": {"type": "disabled"},
            "output_config": {"format": {"type": "json_schema", "schema": ROUND_TRIP_SCHEMA}},
        }
    }
    assert dataclasses.replace(back, extensions={}) == ROUND_TRIP_REQUEST
    # And the wire form is stable: emitting the parsed request again gives the same bytes.
    assert CODEC.emit_request(back, target(stream=True)).body == wire.body


def test_round_trip_with_thinking_budget() -> None:
    request = dataclasses.replace(
        ROUND_TRIP_REQUEST,
        thinking=Thinking(enabled=True, budget_tokens=1024),
        sampling=Sampling(top_p=0.97, max_tokens=4000),
        tool_choice=ToolChoice(ToolChoiceMode.AUTO),
        parallel_tool_calls=None,
        response_format=None,
    )
    back = parse(CODEC.emit_request(request, target(stream=True)).body)
    assert dataclasses.replace(back, extensions={}) == request


def test_unsigned_reasoning_empty_text_and_empty_messages_are_not_sent() -> None:
    request = Request(
        model="x",
        messages=(
            Message(Role.USER, (Text("a"),)),
            Message(Role.ASSISTANT, (Reasoning("no signature"), Text(""))),
            Message(Role.USER, (Text("b"),)),
        ),
    )
    body = json.loads(CODEC.emit_request(request, target()).body)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_tool_results_go_first_in_their_user_turn() -> None:
    request = Request(
        model="x",
        messages=(
            Message(Role.ASSISTANT, (ToolCall("t1", "f", "{}"),)),
            Message(Role.USER, (Text("note"),)),
            Message(Role.TOOL, (ToolResult("t1", (Text("ok"),)),)),
        ),
    )
    body = json.loads(CODEC.emit_request(request, target()).body)
    assert body["messages"][1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}, {"type": "text", "text": "note"}],
    }


def test_count_tokens_request_and_response() -> None:
    request = parse(fixture("anthropic/request_count_tokens.json"), endpoint="count_tokens")
    wire = CODEC.emit_count_request(request, target())
    assert wire is not None
    assert (wire.method, wire.path) == ("POST", "/v1/messages/count_tokens")
    assert json.loads(wire.body) == {
        "model": "claude-sonnet-4-5-20250929",
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "Hello, Claude"}],
    }
    full = CODEC.emit_count_request(parse(fixture("anthropic/request_agent_turn.json")), target())
    assert full is not None
    assert set(json.loads(full.body)) == {"model", "system", "messages", "tools", "tool_choice", "thinking"}
    assert CODEC.parse_count_response(b'{"input_tokens": 2095}') == 2095
    with pytest.raises(CodecError):
        CODEC.parse_count_response(b'{"tokens": 1}')
    assert CODEC.emit_count_response(42) == b'{"input_tokens":42}'
    assert MessageTokensCount.model_validate(json.loads(CODEC.emit_count_response(42))).input_tokens == 42


# ============================================================================================ client responses
def test_emit_response_validates_against_sdk_message() -> None:
    body = json.loads(CODEC.emit_response(THINKING_RESPONSE, info_for()))
    assert body == {
        "id": "msg_mux_0001",
        "type": "message",
        "role": "assistant",
        "model": "claude-via-mux",
        "content": [
            {"type": "thinking", "thinking": THINKING_RESPONSE.parts[0].text, "signature": SIG},  # type: ignore[union-attr]
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "text", "text": "Checking now.\n"},
            {
                "type": "tool_use",
                "id": "toolu_01WeatherParis",
                "name": "get_weather",
                "input": {"city": "Paris", "unit": "c"},
            },
            {"type": "tool_use", "id": "toolu_01Clock", "name": "get_time", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 187,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 2048,
            "output_tokens_details": {"thinking_tokens": 95},
        },
    }
    SDKMessage.model_validate(body)
    # The same codec reads its own answer back (as a provider) to the same IR, apart from the id/model shown.
    back = CODEC.parse_response(json.dumps(body).encode(), "seed")
    assert back == dataclasses.replace(THINKING_RESPONSE, id="msg_mux_0001", model="claude-via-mux")


def test_emit_response_edge_cases() -> None:
    empty = Response("r", "m", (), FinishReason.LENGTH, Usage(input_tokens=3, output_tokens=0))
    body = json.loads(CODEC.emit_response(empty, info_for()))
    assert (body["content"], body["stop_reason"]) == ([], "max_tokens")
    SDKMessage.model_validate(body)
    unsigned = Response(
        "r",
        "m",
        (Reasoning("from elsewhere"), Text(""), ToolCall("c", "f", ""), Image(url="https://x")),
        FinishReason.ERROR,
    )
    body = json.loads(CODEC.emit_response(unsigned, info_for()))
    assert body["content"] == [
        {"type": "thinking", "thinking": "from elsewhere", "signature": ""},
        {"type": "tool_use", "id": "c", "name": "f", "input": {}},
    ]
    assert body["stop_reason"] == "end_turn"
    SDKMessage.model_validate(body)
    with pytest.raises(CodecError):
        CODEC.emit_response(Response("r", "m", (ToolCall("c", "f", "{oops"),), FinishReason.TOOL_CALLS), info_for())


def test_stop_reason_tables_cover_every_ir_reason() -> None:
    assert set(IR_TO_STOP_REASON) == set(FinishReason)
    for wire, reason in STOP_REASON_TO_IR.items():
        if wire not in ("pause_turn", "model_context_window_exceeded"):
            assert IR_TO_STOP_REASON[reason] == wire


# ============================================================================================ client stream encoding
def encode_all(events: list[Event], info: StreamInfo | None = None) -> bytes:
    encoder = CODEC.new_encoder(info or info_for())
    return b"".join(encoder.encode(event) for event in events) + encoder.finish()


def assert_valid_anthropic_stream(data: bytes) -> list[dict[str, Any]]:
    """Every event validates against the SDK's RawMessageStreamEvent, is named after its type, and blocks are in
    strict order with indices 0..n."""
    events = sse_events(data)
    payloads = [payload for _, payload in events]
    for name, payload in events:
        assert name == payload["type"]
        STREAM_EVENT.validate_python(payload)
    assert payloads[0]["type"] == "message_start"
    assert [p["type"] for p in payloads[-2:]] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for payload in payloads:
        kind = payload["type"]
        if kind == "content_block_start":
            assert open_index is None and payload["index"] == next_index
            open_index, next_index = payload["index"], next_index + 1
        elif kind == "content_block_delta":
            assert payload["index"] == open_index
        elif kind == "content_block_stop":
            assert payload["index"] == open_index
            open_index = None
        elif kind in ("message_delta", "message_stop"):
            assert open_index is None
    return payloads


def test_encoder_output_is_valid_and_decodes_back_to_the_same_events() -> None:
    source = decode_all(CODEC, fixture("anthropic/thinking_tool_use.sse"))
    data = encode_all(source)
    payloads = assert_valid_anthropic_stream(data)
    assert payloads[0]["message"]["id"] == "msg_mux_0001"
    assert payloads[0]["message"]["usage"] == {
        "input_tokens": 12,
        "output_tokens": 1,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 2048,
    }
    assert payloads[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 12,
            "output_tokens": 187,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 2048,
            "output_tokens_details": {"thinking_tokens": 95},
        },
    }
    again = assert_split_invariant(CODEC, data)
    assert again[0] == Start("msg_mux_0001", "claude-via-mux")
    assert again[1:] == source[1:]


def test_encoder_blocks_and_indices_are_anthropics_own() -> None:
    events: list[Event] = [
        Start("up", "m"),
        ReasoningSignature(4, "sig-only"),
        TextDelta(5, "a"),
        ToolCallStart(6, "call_1", "f"),
        ToolCallDelta(6, '{"x":'),
        ToolCallDelta(6, "1}"),
        ToolCallEnd(6),
        RedactedReasoningBlock(7, "R"),
        TextDelta(9, "b"),
        Finish(FinishReason.STOP, None),
        UsageUpdate(Usage(input_tokens=50, output_tokens=9, cache_read_tokens=40)),
    ]
    payloads = assert_valid_anthropic_stream(encode_all(events))
    starts = [(p["index"], p["content_block"]) for p in payloads if p["type"] == "content_block_start"]
    assert starts == [
        (0, {"type": "thinking", "thinking": "", "signature": ""}),
        (1, {"type": "text", "text": ""}),
        (2, {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}),
        (3, {"type": "redacted_thinking", "data": "R"}),
        (4, {"type": "text", "text": ""}),
    ]
    assert payloads[-2]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 40,
    }
    decoded = decode_all(CODEC, encode_all(events))
    assert accumulate(decoded).parts == (
        Reasoning("", signature="sig-only"),
        Text("a"),
        ToolCall("call_1", "f", '{"x":1}'),
        RedactedReasoning("R"),
        Text("b"),
    )


def test_encoder_round_trips_every_response_shape() -> None:
    for response in (THINKING_RESPONSE, CODEC.parse_response(fixture("anthropic/thinking_tool_use.json"), "s")):
        decoded = decode_all(CODEC, encode_all(response_events(response)))
        assert accumulate(decoded) == dataclasses.replace(response, id="msg_mux_0001", model="claude-via-mux")


def test_encoder_message_start_waits_for_first_content() -> None:
    encoder = CODEC.new_encoder(info_for())
    assert encoder.encode(Start("up", "m")) == b""
    assert encoder.encode(UsageUpdate(Usage(input_tokens=7))) == b""
    first = sse_events(encoder.encode(TextDelta(0, "hi")))
    assert [name for name, _ in first] == ["message_start", "content_block_start", "content_block_delta"]
    assert first[0][1]["message"]["usage"]["input_tokens"] == 7
    assert encoder.content_type == "text/event-stream"
    assert encoder.keepalive == b": ping\n\n"


def test_encoder_error_event_is_what_the_sdk_raises_on() -> None:
    encoder = CODEC.new_encoder(info_for())
    partial = encoder.encode(Start("up", "m")) + encoder.encode(TextDelta(0, "par"))
    tail = encoder.error(UpstreamError(ErrorKind.OVERLOADED, "upstream overloaded", status=503))
    assert tail == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"upstream overloaded"}}\n\n'
    )
    assert b"content_block_stop" not in tail and b"message_stop" not in partial + tail

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=partial + tail, headers={"content-type": "text/event-stream"})

    client = sdk_client(handler)
    args: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic.APIStatusError) as info, client.messages.stream(**args) as stream:
        for _ in stream:
            pass
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "upstream overloaded"}}


def test_sdk_reads_our_stream_and_our_answer() -> None:
    stream_bytes = encode_all(response_events(THINKING_RESPONSE))
    body_bytes = CODEC.emit_response(THINKING_RESPONSE, info_for())

    def handler(request: httpx2.Request) -> httpx2.Response:
        if json.loads(request.content).get("stream"):
            return httpx2.Response(200, content=stream_bytes, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=body_bytes, headers={"content-type": "application/json"})

    client = sdk_client(handler)
    args: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with client.messages.stream(**args) as stream:
        streamed = stream.get_final_message()
    created = client.messages.create(**args)
    for message in (streamed, created):
        assert message.id == "msg_mux_0001"
        assert message.stop_reason == "tool_use"
        assert [block.type for block in message.content] == [
            "thinking",
            "redacted_thinking",
            "text",
            "tool_use",
            "tool_use",
        ]
        assert message.content[0].signature == SIG  # type: ignore[union-attr]
        assert message.content[3].input == {"city": "Paris", "unit": "c"}  # type: ignore[union-attr]
        assert message.content[4].input == {}  # type: ignore[union-attr]
        assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 187)
        assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (2048, 300)


# ============================================================================================ client errors
@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (
            ClientError(ErrorKind.INVALID_REQUEST, "messages: field required", param="messages"),
            400,
            "invalid_request_error",
        ),
        (ClientError(ErrorKind.AUTHENTICATION, "bad key"), 401, "authentication_error"),
        (ClientError(ErrorKind.PERMISSION, "no"), 403, "permission_error"),
        (ClientError(ErrorKind.NOT_FOUND, "unknown model"), 404, "not_found_error"),
        (ClientError(ErrorKind.METHOD_NOT_ALLOWED, "GET"), 405, "invalid_request_error"),
        (ClientError(ErrorKind.REQUEST_TOO_LARGE, "too big"), 413, "request_too_large"),
        (CodecError("n > 1", kind=ErrorKind.UNSUPPORTED, param="n"), 400, "invalid_request_error"),
        (UpstreamError(ErrorKind.CONTEXT_LENGTH, "prompt is too long", status=400), 400, "invalid_request_error"),
        (UpstreamError(ErrorKind.RATE_LIMIT, "slow down", status=429), 429, "rate_limit_error"),
        (UpstreamError(ErrorKind.OVERLOADED, "Overloaded", status=503), 503, "overloaded_error"),
        (UpstreamError(ErrorKind.OVERLOADED, "Overloaded", status=529), 529, "overloaded_error"),
        (UpstreamError(ErrorKind.TIMEOUT, "timeout", status=504), 504, "timeout_error"),
        (UpstreamError(ErrorKind.UPSTREAM, "bad gateway", status=502), 502, "api_error"),
        (StreamTruncated(), 502, "api_error"),
        (MuxError(ErrorKind.INTERNAL, "bug"), 500, "api_error"),
    ],
)
def test_emit_error(error: MuxError, status: int, error_type: str) -> None:
    got_status, body = CODEC.emit_error(error)
    assert got_status == status
    assert json.loads(body) == {"type": "error", "error": {"type": error_type, "message": error.message}}
    if error_type != "request_too_large":  # documented type, absent from the SDK's error-object union
        BetaErrorResponse.model_validate(json.loads(body))


def test_blocks_without_an_ir_form_ride_along_for_anthropic_only() -> None:
    file_image = {"type": "image", "source": {"type": "file", "file_id": "file_011Img"}}
    custom_doc = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]}}
    search_result = {"type": "search_result", "source": "https://x.test", "title": "t", "content": []}
    doc_result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}],
    }
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [doc_result, {"type": "text", "text": "see"}, file_image, custom_doc]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [search_result]},
        ],
    }
    request = parse(body)
    assert request.messages == (
        Message(Role.ASSISTANT, (ToolCall("t1", "f", "{}"),)),
        Message(Role.TOOL, ()),
        Message(Role.USER, (Text("see"),)),
        Message(Role.ASSISTANT, (Text("ok"),)),
        Message(Role.USER, ()),
    )
    assert request.extensions["anthropic"]["opaque_blocks"] == [
        {"message": 1, "part": 0, "block": doc_result},
        {"message": 2, "part": 1, "block": file_image},
        {"message": 2, "part": 1, "block": custom_doc},
        {"message": 4, "part": 0, "block": search_result},
    ]
    assert json.loads(CODEC.emit_request(request, target(model="m")).body) == body
    with pytest.raises(CodecError):
        require_anthropic_target(request, Format.OPENAI_RESPONSES)


def test_encoder_rejects_contract_violations() -> None:
    encoder = CODEC.new_encoder(info_for())
    encoder.encode(Start("a", "b"))
    with pytest.raises(CodecError) as info:
        encoder.encode(ToolCallDelta(0, "{}"))
    assert info.value.kind is ErrorKind.INTERNAL
    with pytest.raises(CodecError):
        CODEC.new_encoder(info_for()).finish()
    # A ToolCallEnd for a block that is no longer open writes nothing.
    encoder.encode(ToolCallStart(0, "c", "f"))
    encoder.encode(TextDelta(1, "x"))
    assert encoder.encode(ToolCallEnd(0)) == b""

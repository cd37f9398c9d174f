"""Gemini codec: golden streams, SDK request bodies, SDK-validated output, round trips, errors, token counting.

Fixtures live in tests/fixtures/gemini (each with a ``.source.txt``). Client payloads are checked against the official
google-genai models, and end to end through the google-genai client itself over an ``httpx.MockTransport`` (no IO).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from muxtrio.codecs import gemini
from muxtrio.codecs.base import RequestHints, StreamInfo, Target
from muxtrio.codecs.gemini import CODEC
from muxtrio.errors import ClientError, CodecError, ErrorKind, MuxError, StreamTruncated, UpstreamError
from muxtrio.ir import (
    Effort,
    Event,
    File,
    Finish,
    FinishReason,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
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
)
from tests.codecs.helpers import assert_split_invariant, decode_all, fixture

SIG_TEXT = "08cyT5w6pBCwzvjEdNIt1Mn3tdkAGzgz6Y9sua5Whi7RKxQh5MsjZgVthickellg"
SIG_CALL = "vNEjrIc6QhJaFK6HI7CC+4j+xuNnsdNGJ7cFnZwFUc6243KbUTSB4gIftA/s+wT9"
SIG_LAST = (
    "IJy2/jVaqjDOnajIZt8U2eUiVywGkzSQ7c37gI319nQi2Rl6O5tR2/WN52JUQKDWISf1UUtaWA2upc0QhF56rhM/2HPFaegPDPfr285fQenkC"
    "F6hX9EgqRZ8zBjdMznC"
)
THOUGHTS = (
    "**Considering the request**\n\nThe user wants a haiku about autumn. Five, seven, five syllables; falling leaves."
)
HAIKU = "Crisp leaves drift and fall,\namber light on quiet paths,\nthe year exhales slow."


def gem(name: str) -> bytes:
    return fixture(f"gemini/{name}")


def hints(model: str = "gemini-2.5-flash", *, stream: bool = False, endpoint: str | None = None) -> RequestHints:
    return RequestHints(model=model, stream=stream, endpoint=endpoint)


def parse(body: Any, **kwargs: Any) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return CODEC.parse_request(raw, hints(**kwargs))


def body_of(request: Request, *, stream: bool = False) -> dict[str, Any]:
    wire = CODEC.emit_request(request, Target("gemini-2.5-flash", "AIza-test", stream))
    loaded: dict[str, Any] = json.loads(wire.body)
    return loaded


def user(text: str) -> Message:
    return Message(Role.USER, (Text(text),))


def info_for(request: Request | None = None, *, id_: str = "resp_1", model: str = "gemini-2.5-flash") -> StreamInfo:
    return StreamInfo(id_, model, 1_700_000_000, request or Request(model=model, messages=(user("hi"),)))


def without_usage(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, UsageUpdate)]


def sse_payloads(data: bytes) -> list[dict[str, Any]]:
    assert data.endswith(b"\r\n\r\n")
    frames = data.split(b"\r\n\r\n")[:-1]
    assert all(frame.startswith(b"data: ") for frame in frames)
    return [json.loads(frame[6:]) for frame in frames]


def sdk_client(handler: Callable[[httpx.Request], httpx.Response]) -> genai.Client:
    options = genai_types.HttpOptions(client_args={"transport": httpx.MockTransport(handler)})
    return genai.Client(api_key="test-key", http_options=options)


def serve(body: bytes, *, status: int = 200, content_type: str = "text/event-stream") -> genai.Client:
    return sdk_client(lambda request: httpx.Response(status, content=body, headers={"content-type": content_type}))


def encode_all(events: list[Event], info: StreamInfo | None = None) -> tuple[bytes, Any]:
    info = info or info_for()
    encoder = CODEC.new_encoder(info)
    out = b"".join(encoder.encode(event) for event in events) + encoder.finish()
    return out, encoder


# ================================================================================================ provider streams
THOUGHTS_TEXT_EVENTS: list[Event] = [
    Start("qpc2afWVFJK4vr0Pq6WiyAU", "gemini-2.5-flash"),
    ReasoningDelta(0, "**Considering the request**\n\nThe user wants a haiku about autumn."),
    UsageUpdate(Usage(input_tokens=11, output_tokens=52, reasoning_tokens=52)),
    ReasoningDelta(0, " Five, seven, five syllables; falling leaves."),
    UsageUpdate(Usage(input_tokens=11, output_tokens=87, reasoning_tokens=87)),
    ReasoningSignature(1, SIG_TEXT),
    TextDelta(2, "Crisp leaves drift and fall,\n"),
    UsageUpdate(Usage(input_tokens=11, output_tokens=95, reasoning_tokens=87)),
    TextDelta(2, "amber light on quiet paths,\nthe year exhales slow."),
    UsageUpdate(Usage(input_tokens=11, output_tokens=108, reasoning_tokens=87)),
    Finish(FinishReason.STOP),
]

FUNCTION_CALL_EVENTS: list[Event] = [
    Start("IZI2acSKMoWl0-kPmYj2yQc", "gemini-2.5-flash"),
    ReasoningDelta(0, "I need the weather for both cities, so I will call get_weather twice."),
    UsageUpdate(Usage(input_tokens=83, output_tokens=104, reasoning_tokens=104)),
    ToolCallStart(1, "call_seed_0", "get_weather", SIG_CALL),
    ToolCallDelta(1, '{"city":"Paris"}'),
    ToolCallEnd(1),
    ToolCallStart(2, "call_seed_1", "get_weather", None),
    ToolCallDelta(2, '{"city":"Tokyo","unit":"celsius"}'),
    ToolCallEnd(2),
    UsageUpdate(Usage(input_tokens=83, output_tokens=135, reasoning_tokens=104)),
    Finish(FinishReason.TOOL_CALLS),
]

SIGNATURE_LAST_EVENTS: list[Event] = [
    Start("tTCwacuEBMvnitYP06qsgQY", "gemini-3-flash-preview"),
    TextDelta(0, "Hello!"),
    UsageUpdate(Usage(input_tokens=4)),
    TextDelta(0, " How can I help you today?"),
    ReasoningSignature(1, SIG_LAST),
    UsageUpdate(Usage(input_tokens=4, output_tokens=9)),
    Finish(FinishReason.STOP),
]

BLOCKED_EVENTS: list[Event] = [
    Start("pFbLacqsB9S7vr0P_qyPkAg", "gemini-2.5-flash"),
    UsageUpdate(Usage(input_tokens=9)),
    Finish(FinishReason.CONTENT_FILTER),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stream_thoughts_text.sse", THOUGHTS_TEXT_EVENTS),
        ("stream_function_calls.sse", FUNCTION_CALL_EVENTS),
        ("stream_signature_last.sse", SIGNATURE_LAST_EVENTS),
        ("stream_prompt_blocked.sse", BLOCKED_EVENTS),
    ],
)
def test_golden_streams_decode_exactly_under_any_split(name: str, expected: list[Event]) -> None:
    assert assert_split_invariant(CODEC, gem(name)) == expected


def test_lf_framing_decodes_like_crlf() -> None:
    data = gem("stream_function_calls.sse")
    assert decode_all(CODEC, data.replace(b"\r\n", b"\n")) == FUNCTION_CALL_EVENTS


@pytest.mark.parametrize(
    ("stream", "whole"),
    [
        ("stream_thoughts_text.sse", "response_thoughts_text.json"),
        ("stream_function_calls.sse", "response_function_calls.json"),
    ],
)
def test_accumulated_stream_equals_non_stream_answer(stream: str, whole: str) -> None:
    assert accumulate(decode_all(CODEC, gem(stream))) == CODEC.parse_response(gem(whole), "seed")


def test_parse_response_exact() -> None:
    assert CODEC.parse_response(gem("response_thoughts_text.json"), "seed") == Response(
        id="qpc2afWVFJK4vr0Pq6WiyAU",
        model="gemini-2.5-flash",
        parts=(Reasoning(THOUGHTS), Reasoning("", SIG_TEXT), Text(HAIKU)),
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=11, output_tokens=108, reasoning_tokens=87),
    )


def test_trailing_signature_part_is_kept_in_place() -> None:
    response = accumulate(decode_all(CODEC, gem("stream_signature_last.sse")))
    assert response.parts == (Text("Hello! How can I help you today?"), Reasoning("", SIG_LAST))


def test_mid_stream_error_raises_upstream_error() -> None:
    decoder = CODEC.new_decoder("seed")
    data = gem("stream_error_midway.sse")
    first, second = data.split(b"\r\n\r\n", 1)
    events = decoder.feed(first + b"\r\n\r\n")
    assert without_usage(events) == [
        Start("Vm9aae2mGsWGvr0P3JKfsQ4", "gemini-2.5-flash"),
        TextDelta(0, "Once upon a time"),
    ]
    with pytest.raises(UpstreamError) as info:
        decoder.feed(second)
    assert info.value.kind is ErrorKind.OVERLOADED
    assert (info.value.status, info.value.provider_status, info.value.provider_type) == (503, 503, "UNAVAILABLE")
    assert info.value.message == "The model is overloaded. Please try again later."


def test_stream_without_finish_reason_is_truncated() -> None:
    decoder = CODEC.new_decoder("seed")
    events = decoder.feed(gem("stream_truncated.sse"))
    assert [e for e in events if isinstance(e, TextDelta)] == [
        TextDelta(0, "The first part"),
        TextDelta(0, " and the second"),
    ]
    with pytest.raises(StreamTruncated):
        decoder.flush()


def test_malformed_chunk_raises_codec_error() -> None:
    decoder = CODEC.new_decoder("seed")
    with pytest.raises(CodecError) as info:
        decoder.feed(b'data: {"candidates": [\r\n\r\n')
    assert info.value.kind is ErrorKind.UPSTREAM


@pytest.mark.parametrize(
    "chunk",
    [
        b'data: ["not", "an", "object"]\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"text": 42}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]}}]}\r\n\r\n',
        b'data: {"candidates": [], "usageMetadata": {"promptTokenCount": "7"}}\r\n\r\n',
    ],
)
def test_wrongly_shaped_chunks_raise_codec_error(chunk: bytes) -> None:
    with pytest.raises(CodecError):
        CODEC.new_decoder("seed").feed(chunk)


def test_oversized_event_raises_codec_error() -> None:
    decoder = CODEC.new_decoder("seed")
    with pytest.raises(CodecError):
        decoder.feed(b"data: " + b"x" * (21 * 1024 * 1024))


def chunk_with(parts: list[dict[str, Any]], finish: str | None = None, **top: Any) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return b"data: " + json.dumps({"candidates": [candidate], **top}).encode() + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("gemini_reason", "reason"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("IMAGE_SAFETY", FinishReason.CONTENT_FILTER),
        ("LANGUAGE", FinishReason.CONTENT_FILTER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.ERROR),
        ("UNEXPECTED_TOOL_CALL", FinishReason.ERROR),
        ("OTHER", FinishReason.STOP),
        ("FINISH_REASON_UNSPECIFIED", FinishReason.STOP),
        ("SOMETHING_NEW", FinishReason.STOP),
    ],
)
def test_finish_reasons(gemini_reason: str, reason: FinishReason) -> None:
    events = decode_all(CODEC, chunk_with([{"text": "x"}], gemini_reason))
    assert events[-1] == Finish(reason)


def test_max_tokens_with_a_call_stays_length() -> None:
    events = decode_all(CODEC, chunk_with([{"functionCall": {"name": "f", "args": {}}}], "MAX_TOKENS"))
    assert events[-1] == Finish(FinishReason.LENGTH)


def test_function_call_ids_args_and_start_id() -> None:
    data = chunk_with(
        [{"functionCall": {"id": "fc-7", "name": "f"}}, {"functionCall": {"name": "g", "args": {"a": [1, 2]}}}], "STOP"
    )
    assert without_usage(decode_all(CODEC, data, seed="s9")) == [
        Start("gemini-s9", ""),
        ToolCallStart(0, "fc-7", "f", None),
        ToolCallDelta(0, "{}"),
        ToolCallEnd(0),
        ToolCallStart(1, "call_s9_1", "g", None),
        ToolCallDelta(1, '{"a":[1,2]}'),
        ToolCallEnd(1),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_signed_thought_block_is_closed() -> None:
    data = chunk_with(
        [
            {"text": "one", "thought": True, "thoughtSignature": "c2lnMQ=="},
            {"text": "two", "thought": True},
            {"text": "", "thought": True, "thoughtSignature": "c2lnMg=="},
            {"text": "answer"},
        ],
        "STOP",
    )
    assert accumulate(decode_all(CODEC, data)).parts == (
        Reasoning("one", "c2lnMQ=="),
        Reasoning("two", "c2lnMg=="),
        Text("answer"),
    )


def test_usage_after_finish_and_repeated_usage() -> None:
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
    data = (
        chunk_with([{"text": "a"}], usageMetadata=usage)
        + chunk_with([{"text": "b"}], "STOP", usageMetadata=usage)
        + b'data: {"usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "cachedContentTokenCount": 4,'
        b' "toolUsePromptTokenCount": 2, "totalTokenCount": 10}}\r\n\r\n'
    )
    assert decode_all(CODEC, data) == [
        Start("gemini-seed", ""),
        TextDelta(0, "a"),
        UsageUpdate(Usage(input_tokens=5, output_tokens=2)),
        TextDelta(0, "b"),
        Finish(FinishReason.STOP),
        UsageUpdate(Usage(input_tokens=7, output_tokens=3, cache_read_tokens=4)),
    ]


def test_content_after_finish_is_malformed() -> None:
    data = chunk_with([{"text": "a"}], "STOP") + chunk_with([{"text": "late"}])
    with pytest.raises(CodecError):
        decode_all(CODEC, data)


def test_code_execution_parts_are_shown_as_text() -> None:
    data = chunk_with(
        [
            {"executableCode": {"language": "PYTHON", "code": "print(6*7)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "42\n"}},
            {"text": "It is 42."},
        ],
        "STOP",
    )
    assert accumulate(decode_all(CODEC, data)).parts == (
        Text("\n```python\nprint(6*7)\n```\n\n```\n42\n\n```\nIt is 42."),
    )


def test_image_output_is_unsupported() -> None:
    data = chunk_with([{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}], "STOP")
    with pytest.raises(CodecError) as info:
        decode_all(CODEC, data)
    assert info.value.kind is ErrorKind.UNSUPPORTED


def test_proxy_variants_are_tolerated() -> None:
    """[DONE] sentinels and list-wrapped chunks (seen from Gemini-compatible proxies)."""
    inner = json.dumps({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]})
    data = f"data: [{inner}]\r\n\r\ndata: [DONE]\r\n\r\n".encode()
    assert without_usage(decode_all(CODEC, data)) == [
        Start("gemini-seed", ""),
        TextDelta(0, "hi"),
        Finish(FinishReason.STOP),
    ]


def test_parse_response_variants() -> None:
    assert CODEC.parse_response(b'{"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}', "s").finish_reason is (
        FinishReason.STOP
    )
    blocked = CODEC.parse_response(b'{"promptFeedback": {"blockReason": "SAFETY"}}', "s")
    assert (blocked.id, blocked.parts, blocked.finish_reason) == ("gemini-s", (), FinishReason.CONTENT_FILTER)
    with pytest.raises(StreamTruncated):
        CODEC.parse_response(b'[{"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}]', "s")
    with pytest.raises(CodecError):
        CODEC.parse_response(b"<html>", "s")
    with pytest.raises(UpstreamError) as info:
        CODEC.parse_response(gem("error_rate_limit.json"), "s")
    assert info.value.kind is ErrorKind.RATE_LIMIT


# ================================================================================================ parse_request
def test_parse_sdk_conversation() -> None:
    request = parse(gem("request_sdk_conversation.json"))
    assert request.model == "gemini-2.5-flash"
    assert request.system == (Text("You are a terse weather assistant."),)
    assert request.messages == (
        Message(
            Role.USER,
            (
                Text("What is the weather where this photo was taken?"),
                Image(data="iVBORw0KGgo=", mime_type="image/png"),
            ),
        ),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("The photo shows the Eiffel Tower, so Paris.", "EjR0aG91Z2h0LXNpZ_v_"),
                ToolCall("call_gemini_0", "get_weather", '{"city":"Paris"}', "CmNhbGwtc2ln_g=="),
                ToolCall("call_gemini_1", "get_weather", '{"city":"Lyon","unit":"celsius"}'),
            ),
        ),
        Message(
            Role.TOOL,
            (
                ToolResult("call_gemini_0", (Text('{"output":{"temp_c":18,"sky":"clear"}}'),), name="get_weather"),
                ToolResult(
                    "call_gemini_1", (Text('{"error":"Lyon is not covered"}'),), name="get_weather", is_error=True
                ),
            ),
        ),
        Message(Role.ASSISTANT, (Reasoning("", "dGV4dC1zaWc="), Text("Paris: 18 °C, clear."))),
        Message(
            Role.USER,
            (
                File(url="https://generativelanguage.googleapis.com/v1beta/files/abc123", mime_type="application/pdf"),
                Text("Summarise this report too."),
            ),
        ),
    )
    assert request.tools == (
        Tool(
            "get_weather",
            "Current weather for a city.",
            {
                "properties": {
                    "city": {"description": "City name", "type": "string"},
                    "unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
                },
                "required": ["city"],
                "type": "object",
            },
        ),
        Tool("get_time", "Current UTC time."),
    )
    assert request.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "get_weather")
    assert request.sampling == Sampling(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_tokens=1024,
        stop=("END",),
        seed=7,
        frequency_penalty=0.2,
        presence_penalty=0.1,
        n=1,
    )
    assert request.thinking == Thinking(enabled=True, budget_tokens=2048, include_thoughts=True)
    assert request.response_format is None
    assert (request.stream, request.include_usage) == (False, True)
    assert request.extensions == {
        "gemini": {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]}
    }


def test_parse_sdk_stream_request() -> None:
    request = parse(gem("request_sdk_stream.json"), model="models/gemini-3-flash-preview", stream=True)
    assert (request.model, request.stream) == ("gemini-3-flash-preview", True)
    assert request.messages == (user("List two colours."),)
    assert request.response_format == ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        schema={
            "properties": {"colours": {"items": {"type": "string"}, "type": "array"}},
            "required": ["colours"],
            "type": "object",
        },
    )
    assert request.thinking == Thinking(enabled=True, effort=Effort.LOW, include_thoughts=False)
    assert request.extensions == {"gemini": {"thinkingLevel": "LOW"}}


def test_parse_sdk_json_schema_request() -> None:
    request = parse(gem("request_sdk_json_schema.json"))
    assert request.tools == (
        Tool("lookup", None, {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
    )
    assert request.response_format == ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        schema={
            "type": "object",
            "properties": {"population": {"type": "integer"}},
            "required": ["population"],
            "additionalProperties": False,
        },
    )
    assert request.extensions == {"gemini": {"tools": [{"googleSearch": {}}]}}


def test_parse_rest_snake_case_request() -> None:
    request = parse(gem("request_rest_snake_case.json"), model="gemini-2.0-flash")
    assert request.system == (Text("You are a cat. Your name is Neko."),)
    assert request.messages == (
        Message(Role.USER, (Text("Hello there"), Image(data="/9j/4AAQSkZJRg==", mime_type="image/jpeg"))),
    )
    assert request.tools == (
        Tool("purr", "Purr loudly.", {"type": "object", "properties": {"seconds": {"type": "integer"}}}),
    )
    assert request.tool_choice == ToolChoice(ToolChoiceMode.AUTO)
    assert request.sampling == Sampling(temperature=1.0, top_p=0.8, top_k=10, max_tokens=800, stop=("Title",))
    assert request.response_format == ResponseFormat(ResponseFormatType.TEXT)
    assert request.thinking == Thinking(enabled=False, budget_tokens=0, include_thoughts=False)
    assert request.extensions == {
        "gemini": {
            "tools": [{"code_execution": {}}],
            "generationConfig": {"response_modalities": ["TEXT"]},
            "safetySettings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}],
            "cachedContent": "cachedContents/abc123",
        }
    }


def test_parse_count_tokens_bodies() -> None:
    plain = parse(gem("request_sdk_count_tokens.json"), endpoint="count_tokens")
    assert plain.messages == (user("How many tokens is this?"),)
    assert plain.extensions == {"gemini": {"endpoint": "count_tokens"}}
    wrapped = CODEC.parse_request(
        gem("count_tokens_generate_content_request.json"), RequestHints(endpoint="count_tokens")
    )
    assert wrapped.model == "gemini-2.5-flash"  # from generateContentRequest.model when the URL has none
    assert (wrapped.messages, wrapped.system, wrapped.tools) == (
        (user("Count me."),),
        (Text("Be brief."),),
        (Tool("noop"),),
    )


def test_json_array_dialect_is_recorded() -> None:
    request = parse({"contents": [{"parts": [{"text": "hi"}]}]}, stream=True, endpoint="json-array")
    assert request.extensions == {"gemini": {"endpoint": "json-array"}}


def test_function_responses_pair_by_id_then_by_name_in_order() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "a", "args": {"n": 1}}},
                    {"functionCall": {"name": "a", "args": {"n": 2}}},
                    {"functionCall": {"id": "explicit", "name": "b"}},
                ],
            },
            {
                "role": "function",
                "parts": [
                    {"functionResponse": {"id": "explicit", "name": "b", "response": {"ok": True}}},
                    {"functionResponse": {"name": "a", "response": {"n": 1}}},
                    {"functionResponse": {"name": "a", "response": {"n": 2}}},
                    {"functionResponse": {"name": "c", "response": {}}},
                    {"text": "and then?"},
                ],
            },
        ]
    }
    messages = parse(body).messages
    assert [p.id for p in messages[1].parts if isinstance(p, ToolCall)] == [
        "call_gemini_0",
        "call_gemini_1",
        "explicit",
    ]
    assert messages[2] == Message(
        Role.TOOL,
        (
            ToolResult("explicit", (Text('{"ok":true}'),), name="b"),
            ToolResult("call_gemini_0", (Text('{"n":1}'),), name="a"),
            ToolResult("call_gemini_1", (Text('{"n":2}'),), name="a"),
            ToolResult("call_gemini_2", (Text("{}"),), name="c"),  # answers no call: an id of its own
        ),
    )
    assert messages[3] == user("and then?")


def test_function_response_media_parts_become_tool_result_images() -> None:
    body = {
        "contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "shot"}}]},
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "shot",
                            "response": {"output": "done"},
                            "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}],
                        }
                    }
                ],
            },
        ]
    }
    assert parse(body).messages[1].parts == (
        ToolResult(
            "call_gemini_0",
            (Text('{"output":"done"}'), Image(data="iVBORw0KGgo=", mime_type="image/png")),
            name="shot",
        ),
    )


def test_signatures_skip_sentinel_and_envelope() -> None:
    wrapped = base64.urlsafe_b64encode(b"muxtrio-sig:not base64!").decode()  # as the python SDK echoes it
    body = {
        "contents": [
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "f"}, "thoughtSignature": gemini.SKIP_SIGNATURE},
                    {"text": "t", "thought": True, "thoughtSignature": wrapped},
                    {"text": "", "thoughtSignature": "c2ln"},
                ],
            }
        ]
    }
    assert parse(body).messages[0].parts == (
        ToolCall("call_gemini_0", "f", "{}"),
        Reasoning("t", "not base64!"),
        Reasoning("", "c2ln"),
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "contents"),
        ({"contents": []}, "contents"),
        ({"contents": "hello"}, "contents"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": 3}]}]}, "contents[0].parts[0].text"),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name",
        ),
        ({"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"role": "model", "parts": [{"functionResponse": {"name": "f"}}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}, "contents[0].parts[0].inlineData.mimeType"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
            "generationConfig.temperature",
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 2.5}}, "generationConfig.topK"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOUD"}},
            },
            "generationConfig.thinkingConfig.thinkingLevel",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"inlineData": {}}]}},
            "systemInstruction.parts[0]",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"description": "d"}]}]},
            "tools[0].functionDeclarations[0].name",
        ),
    ],
)
def test_bad_client_bodies_are_client_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as info:
        parse(body)
    assert (info.value.kind, info.value.status, info.value.param) == (ErrorKind.INVALID_REQUEST, 400, param)


def test_unparseable_body_and_missing_model() -> None:
    with pytest.raises(ClientError):
        CODEC.parse_request(b"{nope", hints())
    with pytest.raises(ClientError) as info:
        CODEC.parse_request(b'{"contents": [{"parts": [{"text": "x"}]}]}', RequestHints())
    assert info.value.param == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}},
            "generationConfig.candidateCount",
        ),
        ({"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]}, "contents[0].parts[0]"),
    ],
)
def test_requests_muxtrio_cannot_serve_are_unsupported(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as info:
        parse(body)
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, param)


@pytest.mark.parametrize(
    ("config", "choice", "ext"),
    [
        ({"mode": "AUTO"}, ToolChoice(ToolChoiceMode.AUTO), {}),
        ({"mode": "NONE"}, ToolChoice(ToolChoiceMode.NONE), {}),
        ({"mode": "ANY"}, ToolChoice(ToolChoiceMode.REQUIRED), {}),
        ({"mode": "ANY", "allowedFunctionNames": ["f"]}, ToolChoice(ToolChoiceMode.TOOL, "f"), {}),
        (
            {"mode": "ANY", "allowed_function_names": ["f", "g"]},
            ToolChoice(ToolChoiceMode.REQUIRED),
            {"allowedFunctionNames": ["f", "g"]},
        ),
        ({"mode": "VALIDATED"}, ToolChoice(ToolChoiceMode.AUTO), {"functionCallingMode": "VALIDATED"}),
    ],
)
def test_function_calling_modes(config: dict[str, Any], choice: ToolChoice, ext: dict[str, Any]) -> None:
    request = parse({"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": config}})
    assert request.tool_choice == choice
    assert request.extensions == ({"gemini": ext} if ext else {})


@pytest.mark.parametrize(
    ("config", "thinking"),
    [
        (
            {"thinkingBudget": -1, "includeThoughts": True},
            Thinking(enabled=True, budget_tokens=-1, include_thoughts=True),
        ),
        ({"thinking_budget": 512}, Thinking(enabled=True, budget_tokens=512, include_thoughts=False)),
        ({"thinkingBudget": 0}, Thinking(enabled=False, budget_tokens=0, include_thoughts=False)),
        ({"thinkingLevel": "high"}, Thinking(enabled=True, effort=Effort.HIGH, include_thoughts=False)),
        ({"includeThoughts": True}, Thinking(include_thoughts=True)),
    ],
)
def test_thinking_config_in(config: dict[str, Any], thinking: Thinking) -> None:
    request = parse({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": config}})
    assert request.thinking == thinking


@pytest.mark.parametrize(
    ("config", "response_format", "ext"),
    [
        ({"responseMimeType": "application/json"}, ResponseFormat(ResponseFormatType.JSON_OBJECT), {}),
        ({"responseMimeType": "text/plain"}, ResponseFormat(ResponseFormatType.TEXT), {}),
        (
            {"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING", "enum": ["a", "b"]}},
            None,
            {
                "generationConfig": {
                    "responseMimeType": "text/x.enum",
                    "responseSchema": {"type": "STRING", "enum": ["a", "b"]},
                }
            },
        ),
    ],
)
def test_response_formats_in(
    config: dict[str, Any], response_format: ResponseFormat | None, ext: dict[str, Any]
) -> None:
    request = parse({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config})
    assert request.response_format == response_format
    assert request.extensions == ({"gemini": ext} if ext else {})


# ================================================================================================ emit_request
RICH_REQUEST = Request(
    model="gemini-2.5-flash",
    system=(Text("Be terse."),),
    messages=(
        Message(Role.USER, (Text("Weather in Paris?"), Image(url="data:image/png;base64,iVBORw0KGgo="))),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("Need the weather.", signature="c2lnLWE="),
                ToolCall("call_1", "get_weather", '{"city":"Paris"}', signature="c2lnLWI="),
            ),
        ),
        Message(Role.TOOL, (ToolResult("call_1", (Text('{"temp_c":18}'),)),)),
        Message(Role.USER, (Text("Thanks"),)),
    ),
    tools=(
        Tool(
            "get_weather",
            "Weather for a city.",
            {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
            strict=True,
        ),
    ),
    tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    sampling=Sampling(
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        max_tokens=512,
        stop=("END",),
        seed=3,
        frequency_penalty=0.1,
        presence_penalty=0.2,
    ),
    thinking=Thinking(enabled=True, budget_tokens=4096),
)


@pytest.mark.parametrize(
    ("model", "stream", "path"),
    [
        ("gemini-2.5-flash", False, "/v1/publishers/google/models/gemini-2.5-flash:generateContent"),
        ("gemini-2.5-flash", True, "/v1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        ("anthropic/claude-x", False, "/v1/publishers/anthropic/models/claude-x:generateContent"),
        ("projects/p/locations/l/publishers/google/models/m", False,
         "/v1/projects/p/locations/l/publishers/google/models/m:generateContent"),
    ],
)
def test_vertex_codec_uses_vertex_api_key_paths(model: str, stream: bool, path: str) -> None:
    wire = gemini.VERTEX_CODEC.emit_request(RICH_REQUEST, Target(model, "vk-test", stream=stream))
    assert wire.path == path
    assert ("x-goog-api-key", "vk-test") in wire.headers
    assert json.loads(wire.body) == json.loads(CODEC.emit_request(RICH_REQUEST, Target(model, "k", stream)).body)
    count = gemini.VERTEX_CODEC.emit_count_request(RICH_REQUEST, Target(model, "vk-test", stream=False))
    assert count is not None
    assert count.path == path.split(":")[0] + ":countTokens"
    body = json.loads(count.body)
    assert "generateContentRequest" not in body and body["contents"] and body["systemInstruction"]


def test_emit_request_exact() -> None:
    wire = CODEC.emit_request(RICH_REQUEST, Target("gemini-2.5-flash", "AIza-test", stream=False))
    assert (wire.method, wire.path) == ("POST", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert wire.headers == (("content-type", "application/json"), ("x-goog-api-key", "AIza-test"))
    assert json.loads(wire.body) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather in Paris?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Need the weather.", "thought": True, "thoughtSignature": "c2lnLWE="},
                    {
                        "functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnLWI=",
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"temp_c": 18}}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city.",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"city": {"type": "STRING"}},
                            "required": ["city"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "topK": 20,
            "maxOutputTokens": 512,
            "seed": 3,
            "presencePenalty": 0.2,
            "frequencyPenalty": 0.1,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 4096, "includeThoughts": True},
        },
    }


def test_emit_request_paths() -> None:
    request = Request(model="x", messages=(user("hi"),))
    assert CODEC.emit_request(request, Target("gemini-2.5-pro", None, True)).path == (
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert CODEC.emit_request(request, Target("models/gemini-2.5-pro", None, False)).path == (
        "/v1beta/models/gemini-2.5-pro:generateContent"
    )
    tuned = CODEC.emit_request(request, Target("tunedModels/my-model-123", None, False))
    assert (tuned.path, tuned.headers) == (
        "/v1beta/tunedModels/my-model-123:generateContent",
        (("content-type", "application/json"),),
    )


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("a/../../v1beta/cachedContents#", "/v1beta/models/a%2F..%2F..%2Fv1beta%2FcachedContents%23:generateContent"),
        ("..", "/v1beta/models/%2E%2E:generateContent"),
        ("x?alt=evil", "/v1beta/models/x%3Falt%3Devil:generateContent"),
        ("tunedModels/..", "/v1beta/tunedModels/%2E%2E:generateContent"),
        ("tunedModels/a/b", "/v1beta/models/tunedModels%2Fa%2Fb:generateContent"),
        ("llama3:8b", "/v1beta/models/llama3%3A8b:generateContent"),
        ("te\r\nxt", "/v1beta/models/te%0D%0Axt:generateContent"),
    ],
)
def test_emit_request_encodes_the_model_as_one_path_segment(model: str, path: str) -> None:
    """Whatever the name (routing refuses these before any codec sees them), it cannot leave its path segment."""
    request = Request(model="x", messages=(user("hi"),))
    assert CODEC.emit_request(request, Target(model, None, False)).path == path
    count = CODEC.emit_count_request(request, Target(model, None, False))
    assert count is not None and count.path == path.replace(":generateContent", ":countTokens")


@pytest.mark.parametrize(
    ("text", "is_error", "response"),
    [
        ('{"temp_c": 18}', False, {"temp_c": 18}),
        ("sunny, 18 C", False, {"result": "sunny, 18 C"}),
        ("[1, 2]", False, {"result": "[1, 2]"}),
        ("{not json", False, {"result": "{not json"}),
        ("city not found", True, {"error": "city not found"}),
        ('{"code": 404}', True, {"error": {"code": 404}}),
        ('{"error": "boom"}', True, {"error": "boom"}),
    ],
)
def test_tool_result_response_objects(text: str, is_error: bool, response: dict[str, Any]) -> None:
    request = Request(
        model="m",
        messages=(
            Message(Role.ASSISTANT, (ToolCall("c1", "lookup", "{}", "c2ln"),)),
            Message(Role.TOOL, (ToolResult("c1", (Text(text),), is_error=is_error),)),
        ),
    )
    part = body_of(request)["contents"][1]["parts"][0]
    assert part == {"functionResponse": {"id": "c1", "name": "lookup", "response": response}}


def test_tool_result_images_follow_as_sibling_parts() -> None:
    request = Request(
        model="m",
        messages=(
            Message(Role.ASSISTANT, (ToolCall("c1", "shot", "", "c2ln"),)),
            Message(
                Role.TOOL,
                (ToolResult("c1", (Text("done"), Image(data="iVBORw0KGgo=", mime_type="image/png")), name="shot"),),
            ),
        ),
    )
    assert body_of(request)["contents"][1]["parts"] == [
        {"functionResponse": {"id": "c1", "name": "shot", "response": {"result": "done"}}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]


def test_tool_result_without_a_known_name_is_rejected() -> None:
    request = Request(model="m", messages=(Message(Role.TOOL, (ToolResult("ghost", (Text("x"),)),)),))
    with pytest.raises(CodecError) as info:
        body_of(request)
    assert (info.value.kind, info.value.param) == (ErrorKind.INVALID_REQUEST, "messages[0].parts[0]")


def test_history_signatures_toward_gemini() -> None:
    request = Request(
        model="m",
        messages=(
            user("q"),
            Message(
                Role.ASSISTANT,
                (
                    Reasoning("unsigned thinking is dropped"),
                    Reasoning("foreign signature is dropped", signature="not base64 at all!"),
                    RedactedReasoning("anthropic-only"),
                    Reasoning("", signature="c2lnLXQ="),
                    Text("Answer text"),
                    Reasoning("", signature="c2lnLWVuZA=="),
                ),
            ),
            user("call something"),
            Message(
                Role.ASSISTANT,
                (ToolCall("c1", "f", '{"a":1}', signature="not base64 either"), ToolCall("c2", "g", "{}")),
            ),
        ),
    )
    contents = body_of(request)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Answer text", "thoughtSignature": "c2lnLXQ="},
            {"text": "", "thoughtSignature": "c2lnLWVuZA=="},
        ],
    }
    assert contents[3] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"id": "c1", "name": "f", "args": {"a": 1}},
                "thoughtSignature": "skip_thought_signature_validator",
            },
            {"functionCall": {"id": "c2", "name": "g", "args": {}}},
        ],
    }


def test_same_role_turns_merge_and_system_messages_join_the_instruction() -> None:
    request = Request(
        model="m",
        system=(Text("first"),),
        messages=(
            Message(Role.SYSTEM, (Text("second"),)),
            user("a"),
            user("b"),
            Message(Role.USER, (Text(""),)),
            Message(Role.ASSISTANT, (Text("c"),)),
            Message(Role.ASSISTANT, (Reasoning("dropped"),)),
            Message(Role.ASSISTANT, (Text("d"),)),
        ),
    )
    body = body_of(request)
    assert body["systemInstruction"] == {"parts": [{"text": "first"}, {"text": "second"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
    ]


@pytest.mark.parametrize(
    ("media", "part"),
    [
        (Image(data="AAAA", mime_type="image/webp"), {"inlineData": {"mimeType": "image/webp", "data": "AAAA"}}),
        (
            Image(url="https://example.com/cat.JPG?x=1"),
            {"fileData": {"fileUri": "https://example.com/cat.JPG?x=1", "mimeType": "image/jpeg"}},
        ),
        (Image(url="https://example.com/render"), {"fileData": {"fileUri": "https://example.com/render"}}),
        (
            File(url="https://generativelanguage.googleapis.com/v1beta/files/abc", mime_type="application/pdf"),
            {
                "fileData": {
                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                    "mimeType": "application/pdf",
                }
            },
        ),
        (
            File(url="data:application/pdf;base64,JVBERi0=", filename="a.pdf"),
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        ),
    ],
)
def test_media_parts(media: Image | File, part: dict[str, Any]) -> None:
    request = Request(model="m", messages=(Message(Role.USER, (media,)),))
    assert body_of(request)["contents"][0]["parts"] == [part]


@pytest.mark.parametrize(
    ("request_", "kind", "param"),
    [
        (
            Request(model="m", messages=(Message(Role.USER, (File(file_id="file-abc"),)),)),
            ErrorKind.UNSUPPORTED,
            "messages[0].parts[0]",
        ),
        (
            Request(model="m", messages=(Message(Role.USER, (Image(data="AAAA"),)),)),
            ErrorKind.INVALID_REQUEST,
            "messages[0].parts[0]",
        ),
        (Request(model="m", messages=(user("x"),), sampling=Sampling(n=3)), ErrorKind.UNSUPPORTED, "n"),
        (
            Request(model="m", messages=(Message(Role.ASSISTANT, (ToolCall("c", "f", "[1]"),)),)),
            ErrorKind.UNSUPPORTED,
            "messages[0].parts[0]",
        ),
        (
            Request(model="m", messages=(Message(Role.SYSTEM, (Image(data="AAAA", mime_type="image/png"),)),)),
            ErrorKind.UNSUPPORTED,
            "messages[0].parts[0]",
        ),
    ],
)
def test_inexpressible_requests_raise(request_: Request, kind: ErrorKind, param: str) -> None:
    with pytest.raises(CodecError) as info:
        body_of(request_)
    assert (info.value.kind, info.value.param) == (kind, param)


@pytest.mark.parametrize(
    ("choice", "ext", "expected"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), {}, {"mode": "AUTO"}),
        (ToolChoice(ToolChoiceMode.NONE), {}, {"mode": "NONE"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {}, {"mode": "ANY"}),
        (ToolChoice(ToolChoiceMode.TOOL, "f"), {}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        (
            ToolChoice(ToolChoiceMode.REQUIRED),
            {"allowedFunctionNames": ["f", "g"]},
            {"mode": "ANY", "allowedFunctionNames": ["f", "g"]},
        ),
        (ToolChoice(ToolChoiceMode.AUTO), {"functionCallingMode": "VALIDATED"}, {"mode": "VALIDATED"}),
    ],
)
def test_tool_choice_out(choice: ToolChoice, ext: dict[str, Any], expected: dict[str, Any]) -> None:
    request = Request(
        model="m", messages=(user("x"),), tools=(Tool("f"), Tool("g")), tool_choice=choice, extensions={"gemini": ext}
    )
    body = body_of(request)
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert body["tools"] == [{"functionDeclarations": [{"name": "f"}, {"name": "g"}]}]


@pytest.mark.parametrize(
    ("thinking", "ext", "expected"),
    [
        (Thinking(), {}, None),
        (Thinking(enabled=False), {}, {"thinkingBudget": 0}),
        (Thinking(enabled=True), {}, {"thinkingBudget": 8192, "includeThoughts": True}),
        (Thinking(enabled=True, budget_tokens=-1), {}, {"thinkingBudget": -1, "includeThoughts": True}),
        (
            Thinking(enabled=True, budget_tokens=512, include_thoughts=False),
            {},
            {"thinkingBudget": 512, "includeThoughts": False},
        ),
        (Thinking(effort=Effort.HIGH), {}, {"thinkingBudget": 24576, "includeThoughts": True}),
        (
            Thinking(enabled=True, effort=Effort.LOW, include_thoughts=False),
            {"thinkingLevel": "LOW"},
            {"thinkingLevel": "LOW", "includeThoughts": False},
        ),
        (Thinking(include_thoughts=True), {}, {"includeThoughts": True}),
    ],
)
def test_thinking_config_out(thinking: Thinking, ext: dict[str, Any], expected: dict[str, Any] | None) -> None:
    request = Request(model="m", messages=(user("x"),), thinking=thinking, extensions={"gemini": ext})
    assert body_of(request).get("generationConfig", {}).get("thinkingConfig") == expected


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (ResponseFormat(ResponseFormatType.TEXT), {"responseMimeType": "text/plain"}),
        (ResponseFormat(ResponseFormatType.JSON_OBJECT), {"responseMimeType": "application/json"}),
        (
            ResponseFormat(
                ResponseFormatType.JSON_SCHEMA,
                schema={
                    "type": "object",
                    "properties": {"a": {"type": ["string", "null"]}},
                    "additionalProperties": False,
                },
                name="out",
                strict=True,
            ),
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}}},
            },
        ),
    ],
)
def test_response_format_out(response_format: ResponseFormat, expected: dict[str, Any]) -> None:
    request = Request(model="m", messages=(user("x"),), response_format=response_format)
    assert body_of(request)["generationConfig"] == expected


def test_gemini_only_extras_pass_through() -> None:
    request = parse(gem("request_rest_snake_case.json"))
    body = body_of(request)
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}]
    assert body["cachedContent"] == "cachedContents/abc123"
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "purr",
                    "description": "Purr loudly.",
                    "parameters": {"type": "OBJECT", "properties": {"seconds": {"type": "INTEGER"}}},
                }
            ]
        },
        {"code_execution": {}},
    ]
    assert body["generationConfig"]["response_modalities"] == ["TEXT"]


def test_parameterless_function_has_no_schema() -> None:
    request = Request(
        model="m", messages=(user("x"),), tools=(Tool("now", "Time.", {"type": "object", "properties": {}}),)
    )
    assert body_of(request)["tools"] == [{"functionDeclarations": [{"name": "now", "description": "Time."}]}]


# ================================================================================================ round trips
ROUND_TRIP_REQUEST = Request(
    model="gemini-2.5-flash",
    system=(Text("Be terse."), Text("Answer in English.")),
    messages=(
        Message(Role.USER, (Text("Weather in Paris?"), Image(data="iVBORw0KGgo=", mime_type="image/png"))),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("Need the weather.", signature="c2lnLWE="),
                ToolCall("call_1", "get_weather", '{"city":"Paris"}', signature="c2lnLWI="),
                ToolCall("call_2", "get_weather", '{"city":"Lyon"}'),
            ),
        ),
        Message(
            Role.TOOL,
            (
                ToolResult("call_1", (Text('{"temp_c":18}'),), name="get_weather"),
                ToolResult("call_2", (Text('{"error":"no data"}'),), name="get_weather", is_error=True),
            ),
        ),
        Message(
            Role.USER, (Text("And tomorrow?"), File(url="https://generativelanguage.googleapis.com/v1beta/files/f1"))
        ),
        Message(Role.ASSISTANT, (Reasoning("", signature="c2lnLXQ="), Text("Rain."))),
        Message(Role.ASSISTANT, (ToolCall("call_3", "get_time", "{}"),)),
        Message(Role.TOOL, (ToolResult("call_3", (Text('{"utc":"12:00"}'),), name="get_time"),)),
        user("Thanks"),
    ),
    tools=(
        Tool(
            "get_weather",
            "Weather.",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        ),
        Tool("get_time", "Time."),
    ),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
    sampling=Sampling(
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        max_tokens=512,
        stop=("END", "STOP"),
        seed=3,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        n=1,
    ),
    thinking=Thinking(enabled=True, budget_tokens=4096, include_thoughts=True),
    response_format=ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        schema={"type": "object", "properties": {"a": {"type": "string", "enum": ["x", "y"]}}, "required": ["a"]},
    ),
    stream=True,
    include_usage=True,
    extensions={
        "gemini": {
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}],
            "cachedContent": "cachedContents/c1",
        }
    },
)


def test_request_round_trip_through_gemini() -> None:
    """Everything Gemini can carry comes back: ToolCall/ToolResult pairs are merged into alternating turns and split
    again, the carrier signature rides on its text part, and the assistant turns merge (5 and 6 are one turn)."""
    wire = CODEC.emit_request(ROUND_TRIP_REQUEST, Target("gemini-2.5-flash", "k", stream=True))
    back = CODEC.parse_request(wire.body, hints(stream=True))
    merged_assistant = Message(
        Role.ASSISTANT, (Reasoning("", signature="c2lnLXQ="), Text("Rain."), ToolCall("call_3", "get_time", "{}"))
    )
    messages = ROUND_TRIP_REQUEST.messages
    assert back == replace(ROUND_TRIP_REQUEST, messages=(*messages[:4], merged_assistant, *messages[6:]))


def test_sdk_request_survives_a_trip_to_gemini() -> None:
    first = parse(gem("request_sdk_conversation.json"))
    wire = CODEC.emit_request(first, Target("gemini-2.5-flash", "k", stream=False))
    assert parse(wire.body) == first


@pytest.mark.parametrize(
    "stream",
    ["stream_thoughts_text.sse", "stream_function_calls.sse", "stream_signature_last.sse", "stream_prompt_blocked.sse"],
)
def test_events_round_trip_through_encoder_and_decoder(stream: str) -> None:
    events = decode_all(CODEC, gem(stream))
    start = events[0]
    assert isinstance(start, Start)
    out, _ = encode_all(events, info_for(id_=start.id, model=start.model))
    again = assert_split_invariant(CODEC, out)
    assert without_usage(again) == without_usage(events)
    assert accumulate(again) == accumulate(events)


def test_non_base64_signatures_survive_the_client_round_trip() -> None:
    events: list[Event] = [
        Start("r", "m"),
        ReasoningDelta(0, "thinking"),
        ReasoningSignature(0, "EqQBCkgI+anthropic/sig=="[:-2] + " with spaces"),
        ToolCallStart(1, "toolu_1", "f", "not:base64"),
        ToolCallDelta(1, '{"a":1}'),
        ToolCallEnd(1),
        Finish(FinishReason.TOOL_CALLS),
    ]
    out, _ = encode_all(events, info_for(id_="r", model="m"))
    for payload in sse_payloads(out):
        genai_types.GenerateContentResponse.model_validate(payload)
    assert without_usage(decode_all(CODEC, out)) == events


def test_response_round_trip() -> None:
    response = Response(
        id="resp_1",
        model="gemini-2.5-flash",
        parts=(
            Reasoning("Let me think.", "c2lnLWE="),
            Reasoning("", "c2lnLXQ="),
            Text("Calling the tool."),
            ToolCall("call_9", "get_weather", '{"city":"Paris"}', "c2lnLWI="),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=10, output_tokens=30, reasoning_tokens=12, cache_read_tokens=4),
    )
    body = CODEC.emit_response(response, info_for())
    assert CODEC.parse_response(body, "seed") == response


# ================================================================================================ client payloads (SDK)
def test_emit_response_shape_and_sdk_validation() -> None:
    response = Response(
        id="ignored",
        model="ignored",
        parts=(Reasoning("hmm", None), Text("Hi!"), ToolCall("call_1", "f", "", None), RedactedReasoning("opaque")),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=5, output_tokens=9, reasoning_tokens=3),
    )
    payload = json.loads(CODEC.emit_response(response, info_for()))
    assert payload == {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "hmm", "thought": True},
                        {"text": "Hi!"},
                        {"functionCall": {"id": "call_1", "name": "f", "args": {}}},
                    ],
                    "role": "model",
                },
                "index": 0,
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 6,
            "totalTokenCount": 14,
            "thoughtsTokenCount": 3,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp_1",
    }
    genai_types.GenerateContentResponse.model_validate(payload)


def test_sdk_reads_emitted_response() -> None:
    response = Response(
        id="r",
        model="m",
        parts=(Text("Paris is sunny."), ToolCall("call_1", "get_weather", '{"city":"Paris"}', SIG_CALL)),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=7, output_tokens=11),
    )
    client = serve(CODEC.emit_response(response, info_for()), content_type="application/json")
    result = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert result.text == "Paris is sunny."
    assert result.function_calls is not None
    call = result.function_calls[0]
    assert (call.id, call.name, call.args) == ("call_1", "get_weather", {"city": "Paris"})
    assert result.candidates is not None and result.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert result.usage_metadata is not None and result.usage_metadata.total_token_count == 18


def test_stream_encoder_chunks_exact() -> None:
    events: list[Event] = [
        Start("resp_1", "gemini-2.5-flash"),
        ReasoningDelta(0, "Plan."),
        ReasoningSignature(0, "c2lnLWE="),
        ReasoningSignature(1, "c2lnLXQ="),
        TextDelta(2, "Hel"),
        TextDelta(2, "lo"),
        ToolCallStart(3, "call_1", "f", "c2lnLWI="),
        ToolCallDelta(3, '{"a":'),
        ToolCallDelta(3, "1}"),
        ToolCallEnd(3),
        Finish(FinishReason.TOOL_CALLS),
        UsageUpdate(Usage(input_tokens=3, output_tokens=8, reasoning_tokens=2, cache_read_tokens=1)),
    ]
    out, encoder = encode_all(events)
    assert (encoder.content_type, encoder.keepalive) == ("text/event-stream", None)
    parts = [p["candidates"][0]["content"]["parts"] for p in sse_payloads(out)]
    assert parts == [
        [{"text": "Plan.", "thought": True}],
        [{"text": "", "thought": True, "thoughtSignature": "c2lnLWE="}],
        [{"text": "Hel", "thoughtSignature": "c2lnLXQ="}],
        [{"text": "lo"}],
        [{"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}, "thoughtSignature": "c2lnLWI="}],
        [],
    ]
    assert sse_payloads(out)[-1] == {
        "candidates": [{"content": {"parts": [], "role": "model"}, "index": 0, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 3,
            "candidatesTokenCount": 6,
            "totalTokenCount": 11,
            "thoughtsTokenCount": 2,
            "cachedContentTokenCount": 1,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp_1",
    }
    assert out.startswith(b'data: {"candidates":[{"content":{"parts":[{"text":"Plan.","thought":true}],"role":"model"}')
    for payload in sse_payloads(out):
        genai_types.GenerateContentResponse.model_validate(payload)


def test_each_encode_call_is_incremental() -> None:
    encoder = CODEC.new_encoder(info_for())
    assert encoder.encode(Start("resp_1", "m")) == b""
    first = encoder.encode(TextDelta(0, "a"))
    assert sse_payloads(first)[0]["candidates"][0]["content"]["parts"] == [{"text": "a"}]
    assert encoder.encode(ToolCallStart(1, "c", "f")) == b""  # buffered until its end
    assert encoder.encode(ToolCallDelta(1, "{}")) == b""
    assert sse_payloads(encoder.encode(ToolCallEnd(1)))[0]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": "c", "name": "f", "args": {}}}
    ]


def test_sdk_reads_emitted_stream() -> None:
    out, _ = encode_all(decode_all(CODEC, gem("stream_function_calls.sse")))
    client = serve(out)  # keep a reference: a collected client closes its httpx transport
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    first_parts = chunks[0].candidates[0].content.parts  # type: ignore[index, union-attr]
    assert first_parts is not None and first_parts[0].thought is True
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("call_seed_0", "get_weather", {"city": "Paris"}),
        ("call_seed_1", "get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    last = chunks[-1]
    assert last.candidates is not None and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (83, 31)
    assert last.usage_metadata.thoughts_token_count == 104


def test_json_array_dialect() -> None:
    request = parse({"contents": [{"parts": [{"text": "hi"}]}]}, stream=True, endpoint="json-array")
    events = decode_all(CODEC, gem("stream_thoughts_text.sse"))
    out, encoder = encode_all(events, info_for(request))
    assert (encoder.content_type, encoder.keepalive) == ("application/json", None)
    assert out.startswith(b'[{"candidates"') and out.endswith(b"}]")
    assert out.count(b",\r\n{") == 4
    payloads = json.loads(out)
    assert [p["candidates"][0]["content"]["parts"] for p in payloads] == [
        [{"text": "**Considering the request**\n\nThe user wants a haiku about autumn.", "thought": True}],
        [{"text": " Five, seven, five syllables; falling leaves.", "thought": True}],
        [{"text": "Crisp leaves drift and fall,\n", "thoughtSignature": SIG_TEXT}],
        [{"text": "amber light on quiet paths,\nthe year exhales slow."}],
        [],
    ]
    for payload in payloads:
        genai_types.GenerateContentResponse.model_validate(payload)


def test_json_array_error_keeps_the_array_valid() -> None:
    request = parse({"contents": [{"parts": [{"text": "hi"}]}]}, stream=True, endpoint="json-array")
    encoder = CODEC.new_encoder(info_for(request))
    out = encoder.encode(Start("r", "m")) + encoder.encode(TextDelta(0, "par"))
    out += encoder.error(UpstreamError(ErrorKind.OVERLOADED, "busy", status=503))
    payloads = json.loads(out)
    assert payloads[-1] == {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}
    assert json.loads(CODEC.new_encoder(info_for(request)).error(StreamTruncated())) == [
        {"error": {"code": 502, "message": "upstream stream ended before completion", "status": "INTERNAL"}}
    ]


def test_stream_error_makes_the_sdk_raise() -> None:
    encoder = CODEC.new_encoder(info_for())
    out = encoder.encode(Start("r", "m")) + encoder.encode(TextDelta(0, "Once"))
    tail = encoder.error(UpstreamError(ErrorKind.OVERLOADED, "The model is overloaded.", status=503))
    assert tail == b'{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}\r\n'
    client = serve(out + tail)
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    assert next(stream).text == "Once"
    with pytest.raises(genai_errors.ServerError) as info:
        next(stream)
    assert (info.value.code, info.value.status, info.value.message) == (503, "UNAVAILABLE", "The model is overloaded.")


@pytest.mark.parametrize(
    ("error", "status", "google_status"),
    [
        (ClientError(ErrorKind.INVALID_REQUEST, "contents is required", param="contents"), 400, "INVALID_ARGUMENT"),
        (ClientError(ErrorKind.AUTHENTICATION, "bad key"), 401, "UNAUTHENTICATED"),
        (ClientError(ErrorKind.PERMISSION, "nope"), 403, "PERMISSION_DENIED"),
        (ClientError(ErrorKind.NOT_FOUND, "unknown model"), 404, "NOT_FOUND"),
        (ClientError(ErrorKind.METHOD_NOT_ALLOWED, "use POST"), 405, "UNIMPLEMENTED"),
        (ClientError(ErrorKind.REQUEST_TOO_LARGE, "too big"), 413, "INVALID_ARGUMENT"),
        (UpstreamError(ErrorKind.CONTEXT_LENGTH, "too long", status=400), 400, "INVALID_ARGUMENT"),
        (CodecError("n > 1", kind=ErrorKind.UNSUPPORTED, param="n"), 400, "INVALID_ARGUMENT"),
        (UpstreamError(ErrorKind.RATE_LIMIT, "slow down", status=429, retry_after=12.5), 429, "RESOURCE_EXHAUSTED"),
        (UpstreamError(ErrorKind.OVERLOADED, "busy", status=503), 503, "UNAVAILABLE"),
        (UpstreamError(ErrorKind.TIMEOUT, "late", status=504), 504, "DEADLINE_EXCEEDED"),
        (UpstreamError(ErrorKind.UPSTREAM, "bad gateway", status=502), 502, "INTERNAL"),
        (MuxError(ErrorKind.INTERNAL, "bug"), 500, "INTERNAL"),
    ],
)
def test_emit_error(error: MuxError, status: int, google_status: str) -> None:
    got_status, body = CODEC.emit_error(error)
    expected: dict[str, Any] = {"code": status, "message": error.message, "status": google_status}
    if error.retry_after is not None:
        expected["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]
    assert (got_status, json.loads(body)) == (status, {"error": expected})


def test_sdk_raises_on_emitted_error() -> None:
    status, body = CODEC.emit_error(UpstreamError(ErrorKind.RATE_LIMIT, "slow down", status=429, retry_after=3))
    client = serve(body, status=status, content_type="application/json")
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (info.value.code, info.value.status, info.value.message) == (429, "RESOURCE_EXHAUSTED", "slow down")


def test_count_tokens_client_side() -> None:
    body = CODEC.emit_count_response(42)
    assert json.loads(body) == {"totalTokens": 42}
    genai_types.CountTokensResponse.model_validate(json.loads(body))
    client = serve(body, content_type="application/json")
    result = client.models.count_tokens(model="gemini-2.5-flash", contents="hi")
    assert result.total_tokens == 42


# ================================================================================================ provider errors
@pytest.mark.parametrize(
    ("name", "status", "kind", "client_status", "retry_after"),
    [
        ("error_rate_limit.json", 429, ErrorKind.RATE_LIMIT, 429, 37.0),
        ("error_stream_list.json", 429, ErrorKind.RATE_LIMIT, 429, 37.0),
        ("error_context_length.json", 400, ErrorKind.CONTEXT_LENGTH, 400, None),
        ("error_api_key_invalid.json", 400, ErrorKind.AUTHENTICATION, 502, None),
        ("error_permission_denied.json", 403, ErrorKind.PERMISSION, 502, None),
        ("error_location.json", 400, ErrorKind.PERMISSION, 502, None),
        ("error_not_found.json", 404, ErrorKind.NOT_FOUND, 404, None),
        ("error_overloaded.json", 503, ErrorKind.OVERLOADED, 503, None),
        ("error_internal.json", 500, ErrorKind.UPSTREAM, 502, None),
        ("error_deadline.json", 504, ErrorKind.TIMEOUT, 504, None),
    ],
)
def test_parse_error_fixtures(
    name: str, status: int, kind: ErrorKind, client_status: int, retry_after: float | None
) -> None:
    body = gem(name)
    raw = json.loads(body)
    google_error = (raw[0] if isinstance(raw, list) else raw)["error"]
    error = CODEC.parse_error(status, {"content-type": "application/json"}, body)
    assert (error.kind, error.status, error.provider_status) == (kind, client_status, status)
    assert (error.provider_type, error.message, error.retry_after) == (
        google_error["status"],
        google_error["message"],
        retry_after,
    )


def test_parse_error_without_json() -> None:
    error = CODEC.parse_error(502, {}, b"<html>Bad Gateway</html>")
    assert (error.kind, error.status, error.message, error.provider_type) == (
        ErrorKind.UPSTREAM,
        502,
        "<html>Bad Gateway</html>",
        None,
    )
    empty = CODEC.parse_error(429, {}, b"{}")
    assert (empty.kind, empty.message) == (ErrorKind.RATE_LIMIT, "Gemini API error 429")


# ================================================================================================ token counting
def test_emit_count_request_plain_and_wrapped() -> None:
    plain = CODEC.emit_count_request(
        Request(model="m", messages=(user("Count me."),)), Target("gemini-2.5-flash", "k", False)
    )
    assert plain is not None
    assert (plain.method, plain.path) == ("POST", "/v1beta/models/gemini-2.5-flash:countTokens")
    assert json.loads(plain.body) == {"contents": [{"role": "user", "parts": [{"text": "Count me."}]}]}
    request = parse(gem("count_tokens_generate_content_request.json"), endpoint="count_tokens")
    wrapped = CODEC.emit_count_request(request, Target("gemini-2.5-flash", "k", False))
    assert wrapped is not None
    assert json.loads(wrapped.body) == {
        "generateContentRequest": {
            "model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "Count me."}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [{"name": "noop"}]}],
        }
    }


def test_parse_count_response() -> None:
    assert CODEC.parse_count_response(b'{"totalTokens": 31, "promptTokensDetails": []}') == 31
    assert CODEC.parse_count_response(b"{}") == 0
    with pytest.raises(CodecError):
        CODEC.parse_count_response(b'{"totalTokens": "many"}')
    with pytest.raises(CodecError):
        CODEC.parse_count_response(b"[]")


# ================================================================================================ tables
def test_mapping_tables_are_total() -> None:
    assert set(gemini.FINISH_REASONS_OUT) == set(FinishReason)
    assert set(gemini.ERROR_STATUSES) == set(ErrorKind)
    assert set(gemini.TOOL_MODES_OUT) == set(ToolChoiceMode)
    assert set(gemini.THINKING_LEVELS.values()) == set(Effort) - {Effort.NONE}
    assert set(gemini.ROLES_OUT) == set(Role) - {Role.SYSTEM}
    sdk_reasons = {r.value for r in genai_types.FinishReason}
    assert set(gemini.FINISH_REASONS) <= sdk_reasons
    assert set(gemini.FINISH_REASONS_OUT.values()) <= sdk_reasons

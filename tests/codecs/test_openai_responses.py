"""OpenAI Responses codec: golden streams, SDK-validated output, requests as the SDK sends them, round trips, errors.

The official openai SDK is driven in-process through an ``httpx2.MockTransport`` (no sockets): to capture the exact
request bodies it sends, and to consume what the encoder writes the way a real client would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import InputTokenCountResponse, ResponseStreamEvent
from openai.types.responses import Response as SDKResponse
from pydantic import TypeAdapter

from muxtrio.codecs.base import Format, HostedToolPolicy, RequestHints, StreamInfo, Target
from muxtrio.codecs.openai_responses import CODEC, EXT, ResponsesStreamDecoder
from muxtrio.errors import ClientError, CodecError, ErrorKind, StreamTruncated, UpstreamError
from muxtrio.ir import (
    Effort,
    Event,
    File,
    Finish,
    FinishReason,
    HostedTool,
    HostedToolKind,
    Image,
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
)
from muxtrio.wire.sse import SSEDecoder
from tests.codecs.helpers import assert_split_invariant, decode_all, fixture

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}


# ------------------------------------------------------------------------------------------------ helpers
def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.OpenAI:
    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://muxtrio.test/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


def sse_response(body: bytes) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def capture_sdk_body(call: Callable[[openai.OpenAI], object]) -> bytes:
    """The exact body the official SDK sends for ``call``."""
    sent: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.content)
        body = orjson.loads(request.content)
        if body.get("stream"):
            return sse_response(_simple_stream(body.get("model", "m")))
        return httpx2.Response(200, content=CODEC.emit_response(_hello_response(), _info(Request("m", ()))))

    call(sdk_client(handler))
    assert len(sent) == 1
    return sent[0]


def _info(request: Request, *, id_: str = "resp_mux123", model: str = "gpt-5") -> StreamInfo:
    return StreamInfo(id=id_, model=model, created=1756480000, request=request)


def _hello_response() -> Response:
    return Response("resp_mux123", "gpt-5", (Text("Hello"),), FinishReason.STOP, Usage(5, 1))


def _simple_stream(model: str) -> bytes:
    return encode_stream([Start("resp_mux123", model), TextDelta(0, "Hello"), Finish(FinishReason.STOP)])


def encode_stream(events: list[Event], request: Request | None = None, *, error: Exception | None = None) -> bytes:
    encoder = CODEC.new_encoder(_info(request or Request("gpt-5", ())))
    out = b"".join(encoder.encode(event) for event in events)
    if error is not None:
        assert isinstance(error, ClientError | CodecError | UpstreamError)
        return out + encoder.error(error)
    return out + encoder.finish()


def sse_payloads(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    decoder = SSEDecoder()
    events = decoder.feed(data) + decoder.flush()
    return [(event.event, orjson.loads(event.data)) for event in events]


def parse(body: dict[str, Any], hints: RequestHints | None = None) -> Request:
    return CODEC.parse_request(orjson.dumps(body), hints or RequestHints())


def emitted_body(request: Request, *, model: str = "gpt-5", stream: bool = False) -> dict[str, Any]:
    wire = CODEC.emit_request(request, Target(model, "sk-up", stream))
    body: dict[str, Any] = orjson.loads(wire.body)
    return body


# ------------------------------------------------------------------------------------------------ golden streams
TEXT_ID = "resp_689a0b2545288193953c892439b42e2800b2e36c65a1fd4b"
TEXT_MODEL = "gpt-4o-mini-2024-07-18"
TEXT_ANSWER = (
    "I can't provide real-time updates, but you can easily check the current weather in San Francisco using a "
    "weather website or app. Typically, San Francisco has cool, foggy summers and mild winters, so it's good to "
    "be prepared for variable weather!"
)


def test_text_stream_golden() -> None:
    events = assert_split_invariant(CODEC, fixture("openai_responses/text.sse"))
    words = TEXT_ANSWER.split(" ")
    deltas = [TextDelta(0, w if i == 0 else " " + w) for i, w in enumerate(words)]
    assert events == [
        Start(TEXT_ID, TEXT_MODEL),
        *deltas,
        UsageUpdate(Usage(input_tokens=14, output_tokens=50)),
        Finish(FinishReason.STOP),
    ]


def test_text_nonstream_is_the_accumulated_stream() -> None:
    parsed = CODEC.parse_response(fixture("openai_responses/text.json"), "seed")
    assert parsed == Response(
        id=TEXT_ID,
        model=TEXT_MODEL,
        parts=(Text(TEXT_ANSWER),),
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=14, output_tokens=50),
        created=1754925861,
    )
    streamed = decode_all(CODEC, fixture("openai_responses/text.sse"))
    assert accumulate(streamed, created=1754925861) == parsed


REASONING_ID = "resp_68b1c3a0f2d88196a1e5cf7b2a4d9e0b0c1d2e3f4a5b6c7d"
ENCRYPTED = "gAAAAABosbOk3Jx0sT9q_EXAMPLE-ENCRYPTED-REASONING_9vQ2L7mYb3n0Z1xW8=="
SUMMARY_1 = "**Checking the weather**\n\nThe user wants the weather in Paris — I should call get_weather."
SUMMARY_2 = "**Choosing units**\n\nThey wrote °C, so I'll ask for celsius."


def test_reasoning_and_tool_call_stream_golden() -> None:
    events = assert_split_invariant(CODEC, fixture("openai_responses/reasoning_tool.sse"))
    arguments = ['{"', "city", '":"', "Paris", '","', "unit", '":"', "celsius", '"}']
    assert events == [
        Start(REASONING_ID, "gpt-5-2025-08-07"),
        ReasoningDelta(0, "**Checking the weather**\n\nThe user wants the "),
        ReasoningDelta(0, "weather in Paris — I should call "),
        ReasoningDelta(0, "get_weather."),
        ReasoningDelta(0, "\n\n"),
        ReasoningDelta(0, "**Choosing units**\n\nThey wrote °C, so "),
        ReasoningDelta(0, "I'll ask for celsius."),
        ReasoningSignature(0, ENCRYPTED),
        ToolCallStart(1, "call_Kx8eZ7mTq1W3aB2c", "get_weather"),
        *[ToolCallDelta(1, a) for a in arguments],
        ToolCallEnd(1),
        UsageUpdate(Usage(input_tokens=1291, output_tokens=219, reasoning_tokens=192, cache_read_tokens=1152)),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_reasoning_and_tool_call_nonstream_is_the_accumulated_stream() -> None:
    parsed = CODEC.parse_response(fixture("openai_responses/reasoning_tool.json"), "seed")
    assert parsed == Response(
        id=REASONING_ID,
        model="gpt-5-2025-08-07",
        parts=(
            Reasoning(SUMMARY_1 + "\n\n" + SUMMARY_2, signature=ENCRYPTED),
            ToolCall("call_Kx8eZ7mTq1W3aB2c", "get_weather", '{"city":"Paris","unit":"celsius"}'),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=1291, output_tokens=219, reasoning_tokens=192, cache_read_tokens=1152),
        created=1756480416,
    )
    streamed = decode_all(CODEC, fixture("openai_responses/reasoning_tool.sse"))
    assert accumulate(streamed, created=1756480416) == parsed


def test_incomplete_stream_finishes_with_length() -> None:
    events = assert_split_invariant(CODEC, fixture("openai_responses/incomplete.sse"))
    assert events[0] == Start("resp_68b1d0e5aa4c8190b7d1c2e3f4a5b6c70d1e2f3a4b5c6d7e", "gpt-4.1-2025-04-14")
    assert events[-2:] == [
        UsageUpdate(Usage(input_tokens=19, output_tokens=16)),
        Finish(FinishReason.LENGTH),
    ]
    parsed = CODEC.parse_response(fixture("openai_responses/incomplete.json"), "seed")
    assert parsed.parts == (Text("Once upon a time in a land far away"),)
    assert parsed.finish_reason is FinishReason.LENGTH
    assert accumulate(events, created=parsed.created) == parsed


def test_incomplete_for_content_filter() -> None:
    body = orjson.loads(fixture("openai_responses/incomplete.json"))
    body["incomplete_details"] = {"reason": "content_filter"}
    assert CODEC.parse_response(orjson.dumps(body), "s").finish_reason is FinishReason.CONTENT_FILTER


def test_failed_event_raises_upstream_error() -> None:
    data = fixture("openai_responses/failed.sse")
    for chunks in (None, [data[i : i + 1] for i in range(len(data))]):
        with pytest.raises(UpstreamError) as info:
            decode_all(CODEC, data, chunks=chunks)
        assert info.value.kind is ErrorKind.UPSTREAM
        assert info.value.provider_type == "server_error"
        assert info.value.message.startswith("An error occurred while processing your request.")
        assert info.value.status == 502


def test_error_event_raises_rate_limit() -> None:
    with pytest.raises(UpstreamError) as info:
        decode_all(CODEC, fixture("openai_responses/error_event.sse"))
    assert info.value.kind is ErrorKind.RATE_LIMIT
    assert info.value.status == 429
    assert "Please try again in 1.4s" in info.value.message


def test_error_event_with_nested_error_object() -> None:
    # Some servers (and this codec's own encoder) nest the details under `error`.
    data = (
        b'event: error\ndata: {"type":"error","sequence_number":3,"error":{"type":"invalid_request_error",'
        b'"code":"context_length_exceeded","message":"Your input exceeds the context window of this model.",'
        b'"param":"input"}}\n\n'
    )
    with pytest.raises(UpstreamError) as info:
        decode_all(CODEC, data)
    assert info.value.kind is ErrorKind.CONTEXT_LENGTH
    assert info.value.provider_type == "invalid_request_error"


def test_truncated_stream_raises_on_flush() -> None:
    data = fixture("openai_responses/truncated.sse")
    decoder = CODEC.new_decoder("seed")
    events = decoder.feed(data)
    assert events[0] == Start("resp_68b1d0e5aa4c8190b7d1c2e3f4a5b6c70d1e2f3a4b5c6d7e", "gpt-4.1-2025-04-14")
    assert events[1:] == [TextDelta(0, "Once"), TextDelta(0, " upon"), TextDelta(0, " a")]
    with pytest.raises(StreamTruncated):
        decoder.flush()


@pytest.mark.parametrize(
    "data",
    [
        b"event: response.output_text.delta\ndata: {not json}\n\n",
        b"data: [1, 2, 3]\n\n",
        b'data: {"type":"response.output_text.delta","output_index":0,"delta":7}\n\n',
        b'data: {"type":"response.output_item.added","output_index":0}\n\n',
        b'data: {"type":"response.function_call_arguments.delta","output_index":0,"delta":"{"}\n\n',
        b'data: {"type":"response.completed","response":"done"}\n\n',
    ],
    ids=["bad-json", "not-object", "delta-not-string", "added-without-item", "arguments-before-item", "bad-response"],
)
def test_malformed_events_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError) as info:
        decode_all(CODEC, data)
    assert info.value.kind is ErrorKind.UPSTREAM


def test_oversized_event_raises_codec_error() -> None:
    decoder = ResponsesStreamDecoder("seed", max_event_bytes=1024)
    with pytest.raises(CodecError, match="larger than 1024 bytes"):
        decoder.feed(b'data: {"type":"response.output_text.delta","delta":"' + b"x" * 2000)


def test_unknown_events_done_marker_and_trailing_events_are_ignored() -> None:
    data = fixture("openai_responses/text.sse")
    head, sep, tail = data.partition(b"event: response.output_item.added")
    noisy = (
        head + b'event: response.web_search_call.searching\ndata: {"type":"response.web_search_call.searching",'
        b'"sequence_number":2,"item_id":"ws_1","output_index":0}\n\n'
        + b": keepalive comment\n\n"
        + sep
        + tail
        + b"data: [DONE]\n\n"
        + b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"late"}\n\n'
    )
    assert assert_split_invariant(CODEC, noisy) == decode_all(CODEC, data)


def test_server_that_sends_only_finished_items() -> None:
    # Some compatible servers send no deltas: the finished items carry the content.
    body = orjson.loads(fixture("openai_responses/reasoning_tool.json"))
    created = {"type": "response.created", "response": {**body, "status": "in_progress", "output": []}}
    frames = [created]
    for index, item in enumerate(body["output"]):
        frames.append({"type": "response.output_item.done", "output_index": index, "item": item})
    frames.append({"type": "response.completed", "response": body})
    data = b"".join(b"data: " + orjson.dumps(frame) + b"\n\n" for frame in frames)
    events = assert_split_invariant(CODEC, data)
    assert accumulate(events, created=1756480416) == CODEC.parse_response(
        fixture("openai_responses/reasoning_tool.json"), "s"
    )


def test_server_that_sends_only_the_final_response() -> None:
    body = orjson.loads(fixture("openai_responses/text.json"))
    data = b"data: " + orjson.dumps({"type": "response.completed", "response": body}) + b"\n\n"
    assert decode_all(CODEC, data) == [
        Start(TEXT_ID, TEXT_MODEL),
        TextDelta(0, TEXT_ANSWER),
        UsageUpdate(Usage(input_tokens=14, output_tokens=50)),
        Finish(FinishReason.STOP),
    ]


def test_missing_response_id_uses_the_seed() -> None:
    data = b'data: {"type":"response.completed","response":{"status":"completed","output":[]}}\n\n'
    assert decode_all(CODEC, data, seed="abc") == [Start("abc", ""), Finish(FinishReason.STOP)]


def test_parse_response_rejects_failed_and_malformed_bodies() -> None:
    failed = {"id": "resp_1", "status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    with pytest.raises(UpstreamError) as info:
        CODEC.parse_response(orjson.dumps(failed), "s")
    assert info.value.kind is ErrorKind.RATE_LIMIT
    with pytest.raises(CodecError):
        CODEC.parse_response(b"<html>", "s")
    with pytest.raises(CodecError):
        CODEC.parse_response(b'{"id": "resp_1", "status": "in_progress"}', "s")


def test_parse_response_without_status_is_a_finished_answer() -> None:
    body = orjson.loads(fixture("openai_responses/text.json"))
    del body["status"]
    assert CODEC.parse_response(orjson.dumps(body), "s") == CODEC.parse_response(
        fixture("openai_responses/text.json"), "s"
    )


# ------------------------------------------------------------------------------------------------ stream encoder
RICH_EVENTS: list[Event] = [
    Start("resp_mux123", "gpt-5"),
    ReasoningDelta(0, "Let me "),
    ReasoningDelta(0, "think."),
    ReasoningSignature(0, "sig-A"),
    RedactedReasoningBlock(1, "opaque-B"),
    TextDelta(2, "Hel"),
    TextDelta(2, "lo é"),
    ToolCallStart(3, "call_9", "lookup", "gem-sig"),
    ToolCallDelta(3, '{"q":'),
    ToolCallDelta(3, '"x"}'),
    ToolCallEnd(3),
    UsageUpdate(
        Usage(input_tokens=100, output_tokens=50, reasoning_tokens=20, cache_read_tokens=10, cache_write_tokens=5)
    ),
    Finish(FinishReason.TOOL_CALLS),
]


def test_every_encoded_event_validates_against_the_sdk() -> None:
    data = encode_stream(RICH_EVENTS)
    payloads = sse_payloads(data)
    for n, (name, payload) in enumerate(payloads):
        assert name == payload["type"]
        assert payload["sequence_number"] == n
        STREAM_EVENT.validate_python(payload)
    final = payloads[-1][1]
    assert final["type"] == "response.completed"
    SDKResponse.model_validate(final["response"])


def test_encoded_event_sequence() -> None:
    data = encode_stream(
        [Start("resp_mux123", "gpt-5"), TextDelta(0, "Hi"), TextDelta(0, "!"), Finish(FinishReason.STOP)]
    )
    payloads = [payload for _, payload in sse_payloads(data)]
    assert [p["type"] for p in payloads] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert payloads[0]["response"]["status"] == "in_progress"
    assert payloads[0]["response"]["output"] == []
    assert payloads[2]["item"] == {
        "id": "msg_mux123_0",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert payloads[4] == {
        "item_id": "msg_mux123_0",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
        "logprobs": [],
        "type": "response.output_text.delta",
        "sequence_number": 4,
    }
    assert payloads[6]["text"] == "Hi!"
    done_item = {
        "id": "msg_mux123_0",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi!", "annotations": [], "logprobs": []}],
    }
    assert payloads[8]["item"] == done_item
    final = payloads[9]["response"]
    assert final["status"] == "completed"
    assert final["output"] == [done_item]
    assert final["usage"] == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }


def test_reasoning_and_tool_call_events() -> None:
    payloads = [p for _, p in sse_payloads(encode_stream(RICH_EVENTS))]
    types = [p["type"] for p in payloads]
    assert types[2:8] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    reasoning_done = payloads[8]
    assert reasoning_done["item"] == {
        "id": "rs_mux123_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Let me think."}],
        "encrypted_content": "sig-A",
    }
    carrier = next(p for p in payloads if p["type"] == "response.output_item.done" and p["output_index"] == 3)
    assert carrier["item"]["encrypted_content"] == "muxtrio.tool-signature:gem-sig"
    call_added = next(p for p in payloads if p["type"] == "response.output_item.added" and p["output_index"] == 4)
    assert call_added["item"] == {
        "id": "fc_mux123_4",
        "type": "function_call",
        "call_id": "call_9",
        "name": "lookup",
        "arguments": "",
        "status": "in_progress",
    }
    args_done = next(p for p in payloads if p["type"] == "response.function_call_arguments.done")
    assert args_done["arguments"] == '{"q":"x"}'


def test_events_round_trip_through_encoder_and_decoder() -> None:
    data = encode_stream(RICH_EVENTS)
    assert assert_split_invariant(CODEC, data) == RICH_EVENTS


def test_encoder_stream_and_emit_response_agree() -> None:
    request = Request("gpt-5", (Message(Role.USER, (Text("hi"),)),))
    final = sse_payloads(encode_stream(RICH_EVENTS, request))[-1][1]["response"]
    body = orjson.loads(CODEC.emit_response(accumulate(RICH_EVENTS), _info(request)))
    assert body == final


@pytest.mark.parametrize(
    ("reason", "event_type", "incomplete"),
    [
        (FinishReason.STOP, "response.completed", None),
        (FinishReason.STOP_SEQUENCE, "response.completed", None),
        (FinishReason.LENGTH, "response.incomplete", {"reason": "max_output_tokens"}),
        (FinishReason.CONTENT_FILTER, "response.incomplete", {"reason": "content_filter"}),
        (FinishReason.ERROR, "response.failed", None),
    ],
)
def test_finish_reason_mapping(reason: FinishReason, event_type: str, incomplete: object) -> None:
    data = encode_stream([Start("resp_mux123", "gpt-5"), TextDelta(0, "x"), Finish(reason)])
    name, payload = sse_payloads(data)[-1]
    STREAM_EVENT.validate_python(payload)
    assert name == event_type
    assert payload["response"]["incomplete_details"] == incomplete


def test_error_ends_the_stream_with_error_and_failed_events() -> None:
    error = UpstreamError(ErrorKind.RATE_LIMIT, "slow down please")
    payloads = sse_payloads(encode_stream([Start("resp_mux123", "gpt-5"), TextDelta(0, "partial")], error=error))
    for _, payload in payloads:
        STREAM_EVENT.validate_python(payload)
    (_, error_event), (_, failed) = payloads[-2:]
    assert error_event == {
        "code": "rate_limit_exceeded",
        "message": "slow down please",
        "param": None,
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
            "message": "slow down please",
            "param": None,
        },
        "type": "error",
        "sequence_number": len(payloads) - 2,
    }
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down please"}
    assert not any(p["type"] in ("response.completed", "response.incomplete") for _, p in payloads)


def test_error_before_any_event_still_starts_the_response() -> None:
    encoder = CODEC.new_encoder(_info(Request("gpt-5", ())))
    payloads = sse_payloads(encoder.error(CodecError("bad bytes")))
    assert [p["type"] for _, p in payloads] == ["response.created", "response.in_progress", "error", "response.failed"]


def test_tool_call_delta_without_start_is_an_internal_error() -> None:
    encoder = CODEC.new_encoder(_info(Request("gpt-5", ())))
    with pytest.raises(CodecError) as info:
        encoder.encode(ToolCallDelta(0, "{}"))
    assert info.value.kind is ErrorKind.INTERNAL


def test_sdk_stream_helper_reads_the_encoded_stream() -> None:
    events: list[Event] = [
        Start("resp_mux123", "gpt-5"),
        ReasoningDelta(0, "Plan."),
        TextDelta(1, "Calling the tool."),
        ToolCallStart(2, "call_1", "get_weather"),
        ToolCallDelta(2, '{"city":"Paris","unit":"celsius"}'),
        ToolCallEnd(2),
        UsageUpdate(Usage(input_tokens=12, output_tokens=7)),
        Finish(FinishReason.TOOL_CALLS),
    ]
    client = sdk_client(lambda request: sse_response(encode_stream(events)))
    with client.responses.stream(model="gpt-5", input="weather?") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert final.output_text == "Calling the tool."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_1", "get_weather", '{"city":"Paris","unit":"celsius"}')
    ]
    assert final.usage is not None and final.usage.total_tokens == 19


def test_sdk_stream_helper_accepts_carrier_items() -> None:
    client = sdk_client(lambda request: sse_response(encode_stream(RICH_EVENTS)))
    with client.responses.stream(model="gpt-5", input="x") as stream:
        assert sum(1 for _ in stream) == 26
        final = stream.get_final_response()
    assert [(item.type, item.id) for item in final.output] == [
        ("reasoning", "rs_mux123_0"),
        ("reasoning", "rs_mux123_1"),
        ("message", "msg_mux123_2"),
        ("reasoning", "rs_mux123_3"),
        ("function_call", "fc_mux123_4"),
    ]
    assert final.output_text == "Hello é"


def test_sdk_raises_on_the_encoded_error() -> None:
    error = UpstreamError(ErrorKind.OVERLOADED, "the provider is overloaded")
    body = encode_stream([Start("resp_mux123", "gpt-5"), TextDelta(0, "partial")], error=error)
    client = sdk_client(lambda request: sse_response(body))
    with pytest.raises(openai.APIError, match="the provider is overloaded"):
        for _ in client.responses.create(model="gpt-5", input="hi", stream=True):
            pass
    with (
        pytest.raises(openai.APIError, match="the provider is overloaded"),
        client.responses.stream(model="gpt-5", input="hi") as stream,
    ):
        stream.get_final_response()


# ------------------------------------------------------------------------------------------------ emit_response
def test_emit_response_validates_and_reads_back_through_the_sdk() -> None:
    request = parse(
        {
            "model": "gpt-5",
            "input": "hi",
            "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "lookup", "parameters": WEATHER_SCHEMA, "strict": True}],
            "tool_choice": {"type": "function", "name": "lookup"},
            "reasoning": {"effort": "low", "summary": "concise"},
            "text": {"format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}},
            "max_output_tokens": 300,
            "temperature": 0.5,
            "metadata": {"k": "v"},
            "store": True,
            "truncation": "auto",
            "service_tier": "flex",
        }
    )
    response = Response(
        "resp_up",
        "gpt-5-2025-08-07",
        (Reasoning("Think.", signature="enc-1"), Text('{"city":"Paris","unit":"celsius"}')),
        FinishReason.STOP,
        Usage(input_tokens=20, output_tokens=30, reasoning_tokens=10, cache_read_tokens=4),
    )
    body = orjson.loads(CODEC.emit_response(response, _info(request)))
    SDKResponse.model_validate(body)
    assert body["id"] == "resp_mux123"
    assert body["model"] == "gpt-5"
    assert body["status"] == "completed"
    assert body["output"] == [
        {
            "id": "rs_mux123_0",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Think."}],
            "encrypted_content": "enc-1",
        },
        {
            "id": "msg_mux123_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": '{"city":"Paris","unit":"celsius"}', "annotations": [], "logprobs": []}
            ],
        },
    ]
    assert body["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 10},
        "total_tokens": 50,
    }
    assert body["instructions"] == "Be brief."
    assert body["reasoning"] == {"effort": "low", "summary": "concise"}
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}
    }
    assert body["tool_choice"] == {"type": "function", "name": "lookup"}
    assert body["tools"] == [
        {"type": "function", "name": "lookup", "parameters": WEATHER_SCHEMA, "strict": True},
    ]
    assert (body["max_output_tokens"], body["temperature"], body["metadata"]) == (300, 0.5, {"k": "v"})
    assert (body["store"], body["truncation"], body["service_tier"]) == (True, "auto", "flex")

    client = sdk_client(lambda r: httpx2.Response(200, content=CODEC.emit_response(response, _info(request))))
    sdk_response = client.responses.create(model="gpt-5", input="hi")
    assert sdk_response.output_text == '{"city":"Paris","unit":"celsius"}'


@pytest.mark.parametrize(
    ("reason", "status", "incomplete"),
    [
        (FinishReason.LENGTH, "incomplete", {"reason": "max_output_tokens"}),
        (FinishReason.CONTENT_FILTER, "incomplete", {"reason": "content_filter"}),
        (FinishReason.TOOL_CALLS, "completed", None),
        (FinishReason.ERROR, "failed", None),
    ],
)
def test_emit_response_status(reason: FinishReason, status: str, incomplete: object) -> None:
    response = Response("r", "m", (Text("x"),), reason)
    body = orjson.loads(CODEC.emit_response(response, _info(Request("gpt-5", ()))))
    SDKResponse.model_validate(body)
    assert (body["status"], body["incomplete_details"]) == (status, incomplete)
    assert (body["error"] is not None) == (status == "failed")


# ------------------------------------------------------------------------------------------------ parse_request
FULL_SDK_INPUT: list[dict[str, Any]] = [
    {"role": "developer", "content": "Answer in French."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Weather in Paris?"},
            {"type": "input_image", "image_url": "https://example.com/paris.jpg", "detail": "low"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Need the tool."}],
        "encrypted_content": "gAAAA-enc",
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "18 °C, cloudy"},
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Il fait 18 °C.", "annotations": []}],
    },
    {
        "role": "user",
        "content": [
            {"type": "input_file", "file_id": "file-abc", "filename": "notes.pdf"},
            {"type": "input_text", "text": "And tomorrow?"},
        ],
    },
]

FULL_REQUEST = Request(
    model="gpt-5",
    system=(Text("You are a weather bot."), Text("Answer in French.")),
    messages=(
        Message(Role.USER, (Text("Weather in Paris?"), Image(url="https://example.com/paris.jpg", detail="low"))),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("Need the tool.", signature="gAAAA-enc", id="rs_1"),
                ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
            ),
        ),
        Message(Role.TOOL, (ToolResult("call_1", (Text("18 °C, cloudy"),), name="get_weather"),)),
        Message(Role.ASSISTANT, (Text("Il fait 18 °C."),)),
        Message(Role.USER, (File(file_id="file-abc", filename="notes.pdf"), Text("And tomorrow?"))),
    ),
    tools=(Tool("get_weather", "Current weather for a city.", WEATHER_SCHEMA, strict=True),),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
    parallel_tool_calls=False,
    sampling=Sampling(temperature=0.2, top_p=0.9, max_tokens=2048),
    thinking=Thinking(enabled=True, effort=Effort.HIGH, include_thoughts=True),
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, WEATHER_SCHEMA, name="weather", strict=True),
    stream=True,
    include_usage=True,
    user="user-42",
    metadata={"session": "s1"},
    service_tier="flex",
    previous_response_id="resp_prev",
    extensions={
        EXT: {
            "store": False,
            "truncation": "auto",
            "prompt_cache_key": "cache-key-1",
            "safety_identifier": "sid-9",
            "include": ["reasoning.encrypted_content"],
            "reasoning_summary": "detailed",
            "verbosity": "low",
        }
    },
)


def _full_sdk_call(client: openai.OpenAI) -> object:
    return client.responses.create(
        model="gpt-5",
        instructions="You are a weather bot.",
        input=FULL_SDK_INPUT,  # type: ignore[arg-type]  # plain dicts, as a client builds them
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_SCHEMA,
                "strict": True,
            }
        ],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=2048,
        reasoning={"effort": "high", "summary": "detailed"},
        text={
            "format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
            "verbosity": "low",
        },
        stream=True,
        previous_response_id="resp_prev",
        store=False,
        metadata={"session": "s1"},
        user="user-42",
        safety_identifier="sid-9",
        service_tier="flex",
        include=["reasoning.encrypted_content"],
        truncation="auto",
        prompt_cache_key="cache-key-1",
    )


def test_parse_request_as_the_sdk_sends_it() -> None:
    body = capture_sdk_body(_full_sdk_call)
    assert CODEC.parse_request(body, RequestHints()) == FULL_REQUEST


def test_parse_codex_request() -> None:
    request = CODEC.parse_request(fixture("openai_responses/request_codex.json"), RequestHints())
    shell_args = '{"command":["bash","-lc","ls"],"workdir":"/home/dev/project"}'
    assert request.system == (
        Text("You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI on a user's computer."),
        Text("<permissions instructions>Filesystem sandboxing: workspace-write.</permissions instructions>"),
    )
    assert request.messages == (
        Message(
            Role.USER,
            (
                Text(
                    "<environment_context>\n  <cwd>/home/dev/project</cwd>\n  <shell>bash</shell>\n"
                    "</environment_context>"
                ),
            ),
        ),
        Message(Role.USER, (Text("List the files in this repo."),)),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("**Listing files**\n\nI'll run ls.", signature="gAAAAABoEXAMPLE-codex-encrypted-reasoning=="),
                ToolCall("call_b2X9pQ", "shell", shell_args),
            ),
        ),
        Message(
            Role.TOOL,
            (
                ToolResult(
                    "call_b2X9pQ", (Text("Exit code: 0\nWall time: 0.1 seconds\nOutput:\nREADME.md\nsrc\n"),), "shell"
                ),
            ),
        ),
    )
    assert [(t.name, t.strict) for t in request.tools] == [("shell", False)]
    assert request.thinking == Thinking(enabled=True, effort=Effort.MEDIUM, include_thoughts=True)
    assert (request.stream, request.parallel_tool_calls) == (True, False)
    assert request.extensions == {
        EXT: {
            "store": False,
            "prompt_cache_key": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "include": ["reasoning.encrypted_content"],
            "reasoning_summary": "auto",
            "verbosity": "medium",
        }
    }
    # And it goes to OpenAI unchanged in substance: stateless, encrypted reasoning sent back, strict kept false.
    body = emitted_body(request, model="gpt-5-codex", stream=True)
    assert body["input"][0] == {
        "type": "message",
        "role": "system",
        "content": [
            {
                "type": "input_text",
                "text": "<permissions instructions>Filesystem sandboxing: workspace-write.</permissions instructions>",
            }
        ],
    }
    assert body["input"][3] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "**Listing files**\n\nI'll run ls."}],
        "encrypted_content": "gAAAAABoEXAMPLE-codex-encrypted-reasoning==",
    }
    assert body["tools"][0]["strict"] is False
    assert (body["store"], body["include"], body["prompt_cache_key"]) == (
        False,
        ["reasoning.encrypted_content"],
        "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )


def test_string_input_and_defaults() -> None:
    body = capture_sdk_body(lambda c: c.responses.create(model="gpt-5", input="Hello"))
    request = CODEC.parse_request(body, RequestHints())
    assert request == Request(
        model="gpt-5",
        messages=(Message(Role.USER, (Text("Hello"),)),),
        include_usage=True,
        extensions={EXT: {}},
    )


def test_content_parts() -> None:
    request = parse(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                        {"type": "input_image", "file_id": "file-img", "detail": "high"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                            "filename": "a.pdf",
                        },
                        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
                {"role": "assistant", "content": "plain string"},
            ],
        }
    )
    assert request.messages == (
        Message(
            Role.USER,
            (
                Image(url="data:image/png;base64,AAAA"),
                File(file_id="file-img", mime_type="image/*"),
                File(data="JVBERi0=", mime_type="application/pdf", filename="a.pdf"),
                File(url="https://example.com/b.pdf"),
            ),
        ),
        Message(Role.ASSISTANT, (Text("I can't help with that."), Text("plain string"))),
    )


def test_function_call_output_content_list_and_developer_message_mid_conversation() -> None:
    request = parse(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [
                        {"type": "input_text", "text": "see image"},
                        {"type": "input_image", "image_url": "https://example.com/s.png", "detail": "high"},
                    ],
                },
                {"role": "developer", "content": "Now summarise."},
            ],
        }
    )
    assert request.system == ()
    assert request.messages == (
        Message(Role.USER, (Text("go"),)),
        Message(Role.ASSISTANT, (ToolCall("c1", "shot", "{}"),)),
        Message(
            Role.TOOL,
            (ToolResult("c1", (Text("see image"), Image(url="https://example.com/s.png", detail="high")), "shot"),),
        ),
        Message(Role.SYSTEM, (Text("Now summarise."),)),
    )


def test_text_formats_and_reasoning_off() -> None:
    request = parse(
        {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}, "reasoning": {"effort": "none"}}
    )
    assert request.response_format == ResponseFormat(ResponseFormatType.JSON_OBJECT)
    assert request.thinking == Thinking(enabled=False, effort=Effort.NONE, include_thoughts=False)
    plain = parse({"model": "m", "input": "x", "text": {"format": {"type": "text"}}, "reasoning": {"summary": "auto"}})
    assert plain.response_format is None
    assert plain.thinking == Thinking(include_thoughts=True)


def test_previous_response_id_without_input_and_hints() -> None:
    request = parse(
        {"previous_response_id": "resp_prev"}, RequestHints(model="gpt-5", stream=True, endpoint="websocket")
    )
    assert (request.model, request.messages, request.stream) == ("gpt-5", (), True)
    assert request.previous_response_id == "resp_prev"
    assert request.extensions == {EXT: {"endpoint": "websocket"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "mystery"}]}, "input[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "m", "input": "x", "metadata": {"n": 1}}, "metadata.n"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ],
)
def test_invalid_requests(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as info:
        parse(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert info.value.param == param
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "item_reference"),
        ({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "patch"}]}, "tools[0].type", "'custom'"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "custom"}]}],
            },
            "tools[0].tools[0].type",
            "custom",
        ),
        ({"model": "m", "input": [{"type": "computer_call", "call_id": "c"}]}, "input[0].type", "computer_call"),
        ({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type", "web_search"),
        ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation", "conversation"),
        ({"model": "m", "input": "x", "background": True}, "background", "background"),
        (
            {
                "model": "m",
                "input": [
                    {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file", "file_id": "f"}]}
                ],
            },
            "input[0].output[0]",
            "function_call_output",
        ),
    ],
)
def test_unsupported_requests(body: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(ClientError) as info:
        parse(body)
    assert info.value.kind is ErrorKind.UNSUPPORTED
    assert info.value.param == param
    assert fragment in info.value.message


def test_content_must_be_string_or_array() -> None:
    with pytest.raises(ClientError, match="must be a string or an array") as info:
        parse({"model": "m", "input": [{"role": "user", "content": 3}]})
    assert info.value.param == "input[0].content"


def test_bad_json_body() -> None:
    with pytest.raises(ClientError):
        CODEC.parse_request(b"{", RequestHints())
    with pytest.raises(ClientError):
        CODEC.parse_request(b"[]", RequestHints())


# ------------------------------------------------------------------------------------------------ client round trip
def test_client_sends_back_our_output_items() -> None:
    """What the client gets back (opaque signatures, redacted reasoning, tool-call signatures) returns as the same
    IR parts in its next request, sent through the SDK from its own parsed ``Response`` objects."""
    parts = (
        Reasoning("Thinking…", signature="sig-A"),
        RedactedReasoning("opaque-B"),
        Text("Hello"),
        ToolCall("call_9", "lookup", "{}", signature="gem-sig"),
    )
    response = Response("resp_up", "gpt-5", parts, FinishReason.TOOL_CALLS)
    client = sdk_client(lambda r: httpx2.Response(200, content=CODEC.emit_response(response, _info(Request("m", ())))))
    first = client.responses.create(model="gpt-5", input="hi")

    def second_turn(c: openai.OpenAI) -> object:
        history: list[Any] = [*first.output, {"type": "function_call_output", "call_id": "call_9", "output": "42"}]
        return c.responses.create(model="gpt-5", input=history)

    request = CODEC.parse_request(capture_sdk_body(second_turn), RequestHints())
    assert request.messages == (
        Message(
            Role.ASSISTANT,
            (
                Reasoning("Thinking…", signature="sig-A", id="rs_mux123_0"),
                RedactedReasoning("opaque-B"),
                Text("Hello"),
                ToolCall("call_9", "lookup", "{}", signature="gem-sig"),
            ),
        ),
        Message(Role.TOOL, (ToolResult("call_9", (Text("42"),), name="lookup"),)),
    )


# ------------------------------------------------------------------------------------------------ emit_request
def test_emit_request_round_trips_everything_the_format_carries() -> None:
    stateful = Request(
        **{
            **{f: getattr(FULL_REQUEST, f) for f in FULL_REQUEST.__dataclass_fields__},
            "extensions": {EXT: {**FULL_REQUEST.extensions[EXT], "store": True}},
        }
    )
    wire = CODEC.emit_request(stateful, Target("gpt-5", "sk-up", True))
    assert CODEC.parse_request(wire.body, RequestHints()) == stateful


def test_emit_request_stateless_drops_reasoning_ids() -> None:
    body = emitted_body(FULL_REQUEST, stream=True)
    assert body["input"][2] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Need the tool."}],
        "encrypted_content": "gAAAA-enc",
    }
    reparsed = CODEC.parse_request(orjson.dumps(body), RequestHints())
    assert reparsed.messages[1].parts[0] == Reasoning("Need the tool.", signature="gAAAA-enc")
    assert reparsed.messages[2:] == FULL_REQUEST.messages[2:]


def test_emit_request_wire_and_body() -> None:
    wire = CODEC.emit_request(FULL_REQUEST, Target("gpt-5-2025-08-07", "sk-up", True))
    assert (wire.method, wire.path) == ("POST", "/responses")
    assert wire.headers == (("content-type", "application/json"), ("authorization", "Bearer sk-up"))
    body = orjson.loads(wire.body)
    assert body == {
        "model": "gpt-5-2025-08-07",
        "instructions": "You are a weather bot.",
        "input": [
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Answer in French."}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather in Paris?"},
                    {"type": "input_image", "image_url": "https://example.com/paris.jpg", "detail": "low"},
                ],
            },
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Need the tool."}],
                "encrypted_content": "gAAAA-enc",
            },
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18 °C, cloudy"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Il fait 18 °C.", "annotations": []}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_file", "file_id": "file-abc", "filename": "notes.pdf"},
                    {"type": "input_text", "text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "parameters": WEATHER_SCHEMA,
                "strict": True,
                "description": "Current weather for a city.",
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 2048,
        "reasoning": {"effort": "high", "summary": "detailed"},
        "text": {
            "format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
            "verbosity": "low",
        },
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": True,
        "previous_response_id": "resp_prev",
        "metadata": {"session": "s1"},
        "safety_identifier": "sid-9",
        "user": "user-42",
        "service_tier": "flex",
        "prompt_cache_key": "cache-key-1",
        "truncation": "auto",
    }


def test_emit_request_from_another_format() -> None:
    """An IR as an Anthropic or Gemini client would produce it: foreign opaque data stays home, tool schemas are not
    forced into strict mode, thinking asks for encrypted reasoning, and the rest maps to Responses items."""
    request = Request(
        model="claude-alias",
        system=(Text("Be terse."),),
        messages=(
            Message(Role.USER, (Text("look"), Image(data="iVBORw0KGgo=", mime_type="image/png"))),
            Message(
                Role.ASSISTANT,
                (
                    Reasoning("unsigned thoughts"),
                    RedactedReasoning("anthropic-opaque"),
                    Text("Checking."),
                    ToolCall("toolu_1", "search", '{"q":"x"}', signature="gemini-sig"),
                ),
            ),
            Message(
                Role.USER,
                (
                    ToolResult("toolu_1", (Text("boom"),), name="search", is_error=True),
                    ToolResult("toolu_2", (), name="search"),
                    Text("continue"),
                ),
            ),
        ),
        tools=(Tool("search", "Search.", {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}),),
        tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
        sampling=Sampling(max_tokens=1000, top_k=40, seed=7),
        thinking=Thinking(enabled=True, budget_tokens=3000),
    )
    body = emitted_body(request, model="gpt-5")
    assert body == {
        "model": "gpt-5",
        "instructions": "Be terse.",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
            },
            {"type": "function_call", "call_id": "toolu_1", "name": "search", "arguments": '{"q":"x"}'},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "boom"},
            {"type": "function_call_output", "call_id": "toolu_2", "output": ""},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "continue"}]},
        ],
        "tools": [
            {
                "type": "function",
                "name": "search",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": False,
                "description": "Search.",
            }
        ],
        "tool_choice": "required",
        "max_output_tokens": 1000,
        "reasoning": {"effort": "medium"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": False,
    }


@pytest.mark.parametrize(
    ("sampling", "param"),
    [(Sampling(stop=("END",)), "stop"), (Sampling(n=2), "n")],
)
def test_emit_request_refuses_what_responses_cannot_express(sampling: Sampling, param: str) -> None:
    request = Request("m", (Message(Role.USER, (Text("x"),)),), sampling=sampling)
    with pytest.raises(CodecError) as info:
        CODEC.emit_request(request, Target("gpt-5", "k", False))
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, param)


def test_emit_request_assistant_image_is_unsupported() -> None:
    request = Request("m", (Message(Role.ASSISTANT, (Image(url="https://example.com/x.png"),)),))
    with pytest.raises(CodecError) as info:
        CODEC.emit_request(request, Target("gpt-5", "k", False))
    assert (info.value.kind, info.value.param) == (ErrorKind.UNSUPPORTED, "messages[0].parts[0]")


def test_emit_request_without_key_and_thinking_off() -> None:
    request = Request("m", (Message(Role.USER, (Text("x"),)),), thinking=Thinking(enabled=False))
    wire = CODEC.emit_request(request, Target("llama", None, False))
    assert wire.headers == (("content-type", "application/json"),)
    body = orjson.loads(wire.body)
    assert body["reasoning"] == {"effort": "none"}
    assert "include" not in body


# ------------------------------------------------------------------------------------------------ token counting
def test_count_request_ignores_generation_only_limits() -> None:
    request = Request("m", (Message(Role.USER, (Text("x"),)),), sampling=Sampling(stop=("END",), temperature=0.3))
    wire = CODEC.emit_count_request(request, Target("gpt-5", "k", False))
    assert wire is not None
    assert orjson.loads(wire.body) == {
        "model": "gpt-5",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}],
    }


def test_count_tokens_both_sides() -> None:
    wire = CODEC.emit_count_request(FULL_REQUEST, Target("gpt-5", "sk-up", True))
    assert wire is not None
    assert (wire.method, wire.path) == ("POST", "/responses/input_tokens")
    body = orjson.loads(wire.body)
    assert sorted(body) == [
        "input",
        "instructions",
        "model",
        "parallel_tool_calls",
        "previous_response_id",
        "reasoning",
        "text",
        "tool_choice",
        "tools",
        "truncation",
    ]
    assert body["input"] == emitted_body(FULL_REQUEST)["input"]
    assert CODEC.parse_count_response(b'{"object":"response.input_tokens","input_tokens":1234}') == 1234
    with pytest.raises(CodecError):
        CODEC.parse_count_response(b'{"object":"response.input_tokens"}')
    with pytest.raises(CodecError):
        CODEC.parse_count_response(b"nope")
    emitted = CODEC.emit_count_response(77)
    assert InputTokenCountResponse.model_validate_json(emitted) == InputTokenCountResponse(
        input_tokens=77, object="response.input_tokens"
    )
    client = sdk_client(lambda r: httpx2.Response(200, content=emitted))
    assert client.responses.input_tokens.count(model="gpt-5", input="hi").input_tokens == 77


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status"),
    [
        (
            400,
            {
                "message": "Your input exceeds the context window of this model. Please adjust your input and "
                "try again.",
                "type": "invalid_request_error",
                "param": "input",
                "code": "context_length_exceeded",
            },
            ErrorKind.CONTEXT_LENGTH,
            400,
        ),
        (
            400,
            {
                "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "130012 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            },
            ErrorKind.CONTEXT_LENGTH,
            400,
        ),
        (
            429,
            {
                "message": "Rate limit reached for gpt-4.1 in organization org-x on tokens per min (TPM): Limit 30000.",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            },
            ErrorKind.RATE_LIMIT,
            429,
        ),
        (
            400,
            {
                "message": "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
                "Please try again with a different prompt.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_prompt",
            },
            ErrorKind.CONTENT_FILTER,
            400,
        ),
        (
            401,
            {
                "message": "Incorrect API key provided: sk-****abcd.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            },
            ErrorKind.AUTHENTICATION,
            502,
        ),
        (
            503,
            {
                "message": "The server is overloaded.",
                "type": "server_error",
                "param": None,
                "code": "server_is_overloaded",
            },
            ErrorKind.OVERLOADED,
            503,
        ),
        (
            500,
            {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            },
            ErrorKind.UPSTREAM,
            502,
        ),
        (
            400,
            {
                "message": "Unknown parameter: 'foo'.",
                "type": "invalid_request_error",
                "param": "foo",
                "code": "unknown_parameter",
            },
            ErrorKind.INVALID_REQUEST,
            400,
        ),
    ],
    ids=["context-code", "context-message", "rate-limit", "content-filter", "auth", "overloaded", "5xx", "bad-param"],
)
def test_parse_error(status: int, body: dict[str, Any], kind: ErrorKind, client_status: int) -> None:
    error = CODEC.parse_error(status, {}, orjson.dumps({"error": body}))
    assert error.kind is kind
    assert error.message == body["message"]
    assert error.provider_status == status
    assert error.provider_type == body["type"]
    assert error.status == client_status


def test_parse_error_without_json() -> None:
    error = CODEC.parse_error(502, {}, b"<html>Bad Gateway</html>")
    assert (error.kind, error.message, error.status) == (ErrorKind.UPSTREAM, "<html>Bad Gateway</html>", 502)
    empty = CODEC.parse_error(504, {}, b"")
    assert (empty.kind, empty.message, empty.status) == (ErrorKind.TIMEOUT, "upstream answered HTTP 504", 504)


@pytest.mark.parametrize(
    ("error", "status", "shape", "sdk_error"),
    [
        (
            ClientError(ErrorKind.INVALID_REQUEST, "`model` is required", param="model"),
            400,
            {"message": "`model` is required", "type": "invalid_request_error", "param": "model", "code": None},
            openai.BadRequestError,
        ),
        (
            UpstreamError(ErrorKind.CONTEXT_LENGTH, "too long", status=400),
            400,
            {"message": "too long", "type": "invalid_request_error", "param": None, "code": "context_length_exceeded"},
            openai.BadRequestError,
        ),
        (
            UpstreamError(ErrorKind.RATE_LIMIT, "slow down"),
            429,
            {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"},
            openai.RateLimitError,
        ),
        (
            ClientError(ErrorKind.AUTHENTICATION, "bad key"),
            401,
            {"message": "bad key", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"},
            openai.AuthenticationError,
        ),
        (
            UpstreamError(ErrorKind.OVERLOADED, "busy"),
            503,
            {"message": "busy", "type": "server_error", "param": None, "code": "server_is_overloaded"},
            openai.InternalServerError,
        ),
        (
            CodecError("no built-in tools", kind=ErrorKind.UNSUPPORTED, param="tools[0].type"),
            400,
            {
                "message": "no built-in tools",
                "type": "invalid_request_error",
                "param": "tools[0].type",
                "code": "unsupported_parameter",
            },
            openai.BadRequestError,
        ),
    ],
    ids=["invalid", "context", "rate-limit", "auth", "overloaded", "unsupported"],
)
def test_emit_error(
    error: Exception, status: int, shape: dict[str, Any], sdk_error: type[openai.APIStatusError]
) -> None:
    assert isinstance(error, ClientError | CodecError | UpstreamError)
    got_status, body = CODEC.emit_error(error)
    assert got_status == status
    assert orjson.loads(body) == {"error": shape}
    client = sdk_client(lambda r: httpx2.Response(status, content=body))
    with pytest.raises(sdk_error) as info:
        client.responses.create(model="gpt-5", input="hi")
    assert info.value.code == shape["code"]
    assert info.value.message == f"Error code: {status} - {shape['message']}"


def test_codec_identity() -> None:
    assert CODEC.format is Format.OPENAI_RESPONSES
    assert EXT == "openai-responses"


# ------------------------------------------------------------------------------------------------ namespace tools
NAMESPACE_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {}}, "strict": False},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Sub-agents.",
        "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Start one.", "strict": False,
             "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
        ],
    },
    {"type": "web_search", "external_web_access": False},
]


def test_namespace_members_are_flattened_with_the_namespace_description() -> None:
    request = parse({"model": "m", "input": "x", "tools": NAMESPACE_TOOLS})
    assert [(t.name, t.description) for t in request.tools] == [
        ("shell", None),
        ("multi_agent_v1__spawn_agent", "Sub-agents.\n\nStart one."),
    ]
    assert request.hosted_tools == ()  # the web search stays the client's own until a target is known


def test_namespace_tools_go_back_to_a_responses_provider_as_sent() -> None:
    request = parse({"model": "m", "input": "x", "tools": NAMESPACE_TOOLS})
    assert emitted_body(request)["tools"] == NAMESPACE_TOOLS


def test_namespaced_history_items_round_trip() -> None:
    history = [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "c1", "namespace": "multi_agent_v1", "name": "spawn_agent",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]
    request = parse({"model": "m", "input": history, "tools": NAMESPACE_TOOLS})
    call = request.messages[1].parts[0]
    assert call == ToolCall("c1", "multi_agent_v1__spawn_agent", "{}")
    sent = [i for i in emitted_body(request)["input"] if i["type"] == "function_call"]
    assert sent == [{"type": "function_call", "call_id": "c1", "namespace": "multi_agent_v1", "name": "spawn_agent",
                     "arguments": "{}"}]


def test_calls_of_namespace_members_are_shown_in_their_namespace() -> None:
    request = parse({"model": "m", "input": "x", "tools": NAMESPACE_TOOLS})
    answer = Response("resp_mux123", "gpt-5", (ToolCall("c1", "multi_agent_v1__spawn_agent", "{}"),),
                      FinishReason.TOOL_CALLS, Usage(5, 1))
    whole = SDKResponse.model_validate_json(CODEC.emit_response(answer, _info(request)))
    assert [(o.namespace, o.name) for o in whole.output if o.type == "function_call"] == [
        ("multi_agent_v1", "spawn_agent")
    ]
    events = [Start("resp_mux123", "gpt-5"), ToolCallStart(0, "c1", "multi_agent_v1__spawn_agent"),
              ToolCallDelta(0, "{}"), ToolCallEnd(0), Finish(FinishReason.TOOL_CALLS)]
    streamed = [STREAM_EVENT.validate_json(e.data) for e in SSEDecoder().feed(encode_stream(events, request))]
    done = [e.item for e in streamed if e.type == "response.output_item.done"]
    assert [(i.namespace, i.name) for i in done] == [("multi_agent_v1", "spawn_agent")]


def test_a_responses_provider_namespaced_call_reads_as_the_flattened_name() -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "c1", "namespace": "multi_agent_v1",
            "name": "spawn_agent", "arguments": "{}", "status": "completed"}
    body = {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5", "output": [item],
            "usage": {"input_tokens": 1, "output_tokens": 1}}
    answer = CODEC.parse_response(orjson.dumps(body), "seed")
    assert answer.parts == (ToolCall("c1", "multi_agent_v1__spawn_agent", "{}"),)


@pytest.mark.parametrize(
    ("target", "policy", "hosted", "dropped"),
    [
        (Format.ANTHROPIC, HostedToolPolicy.MAP, (HostedTool(HostedToolKind.WEB_SEARCH),), ()),
        (Format.GEMINI, HostedToolPolicy.MAP, (HostedTool(HostedToolKind.WEB_SEARCH),), ()),
        (Format.OPENAI_CHAT, HostedToolPolicy.MAP, (), ("web_search",)),
        (Format.ANTHROPIC, HostedToolPolicy.DROP, (), ("web_search",)),
    ],
)
def test_hosted_tools_toward_other_formats(
    target: Format, policy: HostedToolPolicy, hosted: tuple[HostedTool, ...], dropped: tuple[str, ...]
) -> None:
    request = parse({"model": "m", "input": "x", "tools": NAMESPACE_TOOLS})
    adaptation = CODEC.adapt_to_target(request, target, policy)
    assert (adaptation.request.hosted_tools, adaptation.dropped) == (hosted, dropped)


def test_hosted_tools_reject_refuses_what_cannot_be_translated() -> None:
    request = parse({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]})
    with pytest.raises(CodecError) as info:
        CODEC.adapt_to_target(request, Format.ANTHROPIC, HostedToolPolicy.REJECT)
    assert info.value.kind is ErrorKind.UNSUPPORTED and "file_search" in info.value.message


def test_client_protocol_headers_reach_a_responses_provider_only() -> None:
    request = parse({"model": "m", "input": "x"}, RequestHints(headers=(("openai-beta", "responses=experimental"),)))
    wire = CODEC.emit_request(request, Target("gpt-5", "sk-x", stream=False))
    assert ("openai-beta", "responses=experimental") in wire.headers

"""The Ollama codec: golden NDJSON transcripts, requests as the official python SDK sends them, payloads validated by
the SDK's own models (and parsed by the SDK client itself over an in-process ``httpx.MockTransport``), round trips
and errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
import ollama
import orjson
import pytest
from ollama._types import ChatRequest

from muxtrio.codecs import ids
from muxtrio.codecs.base import RequestHints, StreamInfo, Target
from muxtrio.codecs.ollama import CODEC, EFFORT_TO_THINK, OllamaDecoder, created_at, think_value
from muxtrio.errors import ClientError, CodecError, ErrorKind, StreamTruncated, UpstreamError
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
    response_events,
)
from tests.codecs.helpers import assert_split_invariant, decode_all, fixture

CHAT = RequestHints()
GENERATE = RequestHints(endpoint="generate")
PNG_B64 = "iVBORw0KGgp4eHh4"  # b"\x89PNG\r\n\x1a\nxxxx", as the SDK base64-encodes it
JPEG_B64 = "/9j/4GFiYw=="  # b"\xff\xd8\xff\xe0abc"
CREATED = 1691177005  # 2023-08-04T19:23:25Z


def chat_request(**overrides: Any) -> Request:
    body: dict[str, Any] = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return CODEC.parse_request(orjson.dumps(body), CHAT)


def info_for(request: Request, model: str = "llama3.2") -> StreamInfo:
    return StreamInfo(id="resp_1", model=model, created=CREATED, request=request)


def wire_body(request: Request, target: Target | None = None) -> dict[str, Any]:
    wire = CODEC.emit_request(request, target or Target("llama3.2", None, True))
    result: dict[str, Any] = orjson.loads(wire.body)
    return result


# ========================================================================================================== SDK harness
def sdk_client(handler: Callable[[httpx.Request], httpx.Response]) -> ollama.Client:
    """The official client, talking to ``handler`` in process (no socket)."""
    return ollama.Client(host="http://ollama.test", transport=httpx.MockTransport(handler))


def captured_body(call: Callable[[ollama.Client], object]) -> tuple[str, bytes]:
    """What the SDK puts on the wire for ``call``: (path, body)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"model": "m", "message": {"role": "assistant", "content": ""}, "done": True})

    call(sdk_client(handler))
    return seen[0].url.path, seen[0].content


def serve(payload: bytes, status: int = 200) -> ollama.Client:
    return sdk_client(lambda _request: httpx.Response(status, content=payload))


def get_weather(city: str, unit: str = "celsius") -> str:
    """
    Get the current weather for a city.

    Args:
      city: The city name
      unit: celsius or fahrenheit

    Returns:
      str: The weather
    """
    return f"18 degrees {unit} in {city}"


# ============================================================================================ provider: decoder goldens
def test_docs_chat_stream_without_done_reason() -> None:
    events = assert_split_invariant(CODEC, fixture("ollama/chat_stream_docs.ndjson"))
    assert events == [
        Start("ollama-seed", "llama3.2"),
        TextDelta(0, "The"),
        TextDelta(0, " sky"),
        TextDelta(0, " is blue."),
        UsageUpdate(Usage(input_tokens=26, output_tokens=282)),
        Finish(FinishReason.STOP),
    ]


def test_thinking_stream_blocks_in_order_and_cached_count() -> None:
    events = assert_split_invariant(CODEC, fixture("ollama/chat_stream_thinking.ndjson"))
    assert events == [
        Start("ollama-seed", "qwen3"),
        ReasoningDelta(0, "Count"),
        ReasoningDelta(0, " the r's in strawberry."),
        TextDelta(1, "There are"),
        TextDelta(1, " 3 r's."),
        UsageUpdate(Usage(input_tokens=18, output_tokens=42, cache_read_tokens=4)),
        Finish(FinishReason.STOP),
    ]


def test_blog_tool_stream_invents_ids_and_finishes_with_tool_calls() -> None:
    events = assert_split_invariant(CODEC, fixture("ollama/chat_stream_tools.ndjson"), seed="r1")
    assert events == [
        Start("ollama-r1", "qwen3"),
        TextDelta(0, "celsius"),
        TextDelta(0, "</think>"),
        ToolCallStart(1, "call_r1_0", "get_current_weather"),
        ToolCallDelta(1, '{"format":"celsius","location":"Toronto"}'),
        ToolCallEnd(1),
        UsageUpdate(Usage(input_tokens=214, output_tokens=95)),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_tool_stream_with_server_ids_keeps_them() -> None:
    events = assert_split_invariant(CODEC, fixture("ollama/chat_stream_tools_ids.ndjson"))
    assert events == [
        Start("ollama-seed", "qwen3:8b"),
        ReasoningDelta(0, "Two cities, two calls."),
        ToolCallStart(1, "call_lyywui55", "get_weather"),
        ToolCallDelta(1, '{"city":"Paris"}'),
        ToolCallEnd(1),
        ToolCallStart(2, "call_0scw2dos", "get_weather"),
        ToolCallDelta(2, '{"city":"London"}'),
        ToolCallEnd(2),
        UsageUpdate(Usage(input_tokens=160, output_tokens=61)),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_length_stream() -> None:
    events = assert_split_invariant(CODEC, fixture("ollama/chat_stream_length.ndjson"))
    assert events[-2:] == [UsageUpdate(Usage(input_tokens=31, output_tokens=3)), Finish(FinishReason.LENGTH)]
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta(0, "Once upon"), TextDelta(0, " a time")]


def test_text_after_a_tool_call_opens_a_new_block() -> None:
    data = (
        b'{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":'
        b'{"name":"f","arguments":{}}}]},"done":false}\n'
        b'{"model":"m","message":{"role":"assistant","content":"done","thinking":"hm"},"done":false}\n'
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length"}\n'
    )
    assert decode_all(CODEC, data, seed="s") == [
        Start("ollama-s", "m"),
        ToolCallStart(0, "call_s_0", "f"),
        ToolCallDelta(0, "{}"),
        ToolCallEnd(0),
        ReasoningDelta(1, "hm"),
        TextDelta(2, "done"),
        UsageUpdate(Usage()),
        Finish(FinishReason.LENGTH),
    ]


@pytest.mark.parametrize(
    ("done_reason", "expected"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("load", FinishReason.STOP),
        ("unload", FinishReason.STOP),
        ("something_new", FinishReason.STOP),
    ],
)
def test_done_reason_table(done_reason: str, expected: FinishReason) -> None:
    line = orjson.dumps(
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": done_reason}
    )
    assert decode_all(CODEC, line)[-1] == Finish(expected)


def test_last_line_without_newline_is_decoded_at_flush() -> None:
    data = fixture("ollama/chat_stream_docs.ndjson").rstrip(b"\n")
    assert decode_all(CODEC, data)[-1] == Finish(FinishReason.STOP)


def test_lines_after_done_are_ignored_and_crlf_accepted() -> None:
    data = fixture("ollama/chat_stream_docs.ndjson").replace(b"\n", b"\r\n") + b'{"model":"x","done":false}\n'
    assert decode_all(CODEC, data)[-1] == Finish(FinishReason.STOP)


# =========================================================================================== provider: decoder failures
def test_truncated_stream_raises() -> None:
    lines = fixture("ollama/chat_stream_docs.ndjson").splitlines(keepends=True)
    decoder = CODEC.new_decoder("seed")
    events = decoder.feed(b"".join(lines[:-1]))
    assert events[-1] == TextDelta(0, " is blue.")
    with pytest.raises(StreamTruncated):
        decoder.flush()


def test_connection_closed_done_reason_is_a_cut_answer() -> None:
    line = b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"connection_closed"}\n'
    with pytest.raises(StreamTruncated):
        CODEC.new_decoder("seed").feed(line)


def test_error_line_mid_stream_raises_upstream_error() -> None:
    decoder = CODEC.new_decoder("seed")
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(fixture("ollama/chat_stream_error.ndjson"))
    assert not isinstance(caught.value, StreamTruncated)
    assert caught.value.kind is ErrorKind.UPSTREAM
    assert caught.value.message == "an error was encountered while running the model: unexpected EOF"
    assert caught.value.status == 502


def test_context_length_error_line() -> None:
    with pytest.raises(UpstreamError) as caught:
        CODEC.new_decoder("seed").feed(b'{"error":"the input length exceeds the context length"}\n')
    assert caught.value.kind is ErrorKind.CONTEXT_LENGTH
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "line",
    [
        b'{"model":"m","message":{"role":"assistant","content":"a"\n',  # cut JSON
        b"[1,2]\n",  # not an object
        b'{"model":"m","message":{"role":"assistant","content":5},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":"","tool_calls":{}},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{}}]},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":7}\n',
    ],
)
def test_malformed_line_raises_codec_error(line: bytes) -> None:
    with pytest.raises(CodecError) as caught:
        CODEC.new_decoder("seed").feed(line)
    assert caught.value.kind is ErrorKind.UPSTREAM


def test_oversized_line_raises_codec_error() -> None:
    decoder = CODEC.new_decoder("seed")
    with pytest.raises(CodecError):
        decoder.feed(b'{"model":"m","message":{"role":"assistant","content":"' + b"x" * (21 * 1024 * 1024))


def test_decoder_line_limit_is_configurable() -> None:
    with pytest.raises(CodecError):
        OllamaDecoder("seed", max_line_bytes=64).feed(b'{"model":"' + b"m" * 100)


# ============================================================================================= provider: parse_response
def test_docs_tool_response() -> None:
    response = CODEC.parse_response(fixture("ollama/chat_response_tools.json"), "abc")
    assert response == Response(
        id="ollama-abc",
        model="llama3.2",
        parts=(
            ToolCall(ids.tool_call_id("abc", 0), "get_current_weather", '{"format":"celsius","location":"Paris, FR"}'),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=122, output_tokens=33),
    )


def test_docs_load_response_is_an_empty_stop() -> None:
    response = CODEC.parse_response(fixture("ollama/chat_response_load.json"), "abc")
    assert response == Response(id="ollama-abc", model="llama3.2", parts=(), finish_reason=FinishReason.STOP)


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        ("ollama/chat_stream_thinking.ndjson", "ollama/chat_response_thinking.json"),
        ("ollama/chat_stream_tools_ids.ndjson", "ollama/chat_response_tools_ids.json"),
    ],
)
def test_stream_and_non_stream_agree(stream: str, body: str) -> None:
    streamed = accumulate(decode_all(CODEC, fixture(stream), seed="z"))
    assert streamed == CODEC.parse_response(fixture(body), "z")


def test_thinking_response_parts() -> None:
    response = CODEC.parse_response(fixture("ollama/chat_response_thinking.json"), "z")
    assert response.parts == (Reasoning("Count the r's in strawberry."), Text("There are 3 r's."))
    assert response.usage == Usage(input_tokens=18, output_tokens=42, cache_read_tokens=4)


def test_error_body_with_200_raises() -> None:
    with pytest.raises(UpstreamError):
        CODEC.parse_response(b'{"error":"something broke"}', "z")


# ================================================================================================ provider: parse_error
@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status", "message"),
    [
        (
            404,
            b'{"error":"model \\"llama3\\" not found, try pulling it first"}',
            ErrorKind.NOT_FOUND,
            404,
            'model "llama3" not found, try pulling it first',
        ),
        (
            400,
            b'{"error":"the input length exceeds the context length"}',
            ErrorKind.CONTEXT_LENGTH,
            400,
            "the input length exceeds the context length",
        ),
        (
            500,
            b'{"error":"input exceeds maximum context length of 4096 tokens"}',
            ErrorKind.CONTEXT_LENGTH,
            400,
            "input exceeds maximum context length of 4096 tokens",
        ),
        (
            400,
            b'{"error":"\\"llama3.2\\" does not support thinking"}',
            ErrorKind.UNSUPPORTED,
            400,
            '"llama3.2" does not support thinking',
        ),
        (
            400,
            b'{"error":"registry.ollama.ai/library/gemma:2b does not support tools"}',
            ErrorKind.UNSUPPORTED,
            400,
            "registry.ollama.ai/library/gemma:2b does not support tools",
        ),
        (400, b'{"error":"invalid message format"}', ErrorKind.INVALID_REQUEST, 400, "invalid message format"),
        (401, b'{"error":"unauthorized"}', ErrorKind.AUTHENTICATION, 502, "unauthorized"),
        (403, b'{"error":"forbidden"}', ErrorKind.PERMISSION, 502, "forbidden"),
        (
            429,
            b'{"error":"you have reached your hourly usage limit"}',
            ErrorKind.RATE_LIMIT,
            429,
            "you have reached your hourly usage limit",
        ),
        (
            503,
            b'{"error":"server busy, please try again.  maximum pending requests exceeded"}',
            ErrorKind.OVERLOADED,
            503,
            "server busy, please try again.  maximum pending requests exceeded",
        ),
        (
            500,
            b'{"error":"llama runner process has terminated: exit status 2"}',
            ErrorKind.UPSTREAM,
            502,
            "llama runner process has terminated: exit status 2",
        ),
        (404, b"404 page not found", ErrorKind.NOT_FOUND, 404, "404 page not found"),
        (
            502,
            b"<html><body>Bad Gateway</body></html>",
            ErrorKind.UPSTREAM,
            502,
            "<html><body>Bad Gateway</body></html>",
        ),
        (504, b"", ErrorKind.TIMEOUT, 504, "HTTP 504"),
        (429, b'{"error":{"message":"slow down","type":"rate_limit"}}', ErrorKind.RATE_LIMIT, 429, "slow down"),
    ],
)
def test_parse_error(status: int, body: bytes, kind: ErrorKind, client_status: int, message: str) -> None:
    error = CODEC.parse_error(status, {}, body)
    assert (error.kind, error.status, error.provider_status, error.message) == (kind, client_status, status, message)


def test_no_token_count_endpoint() -> None:
    assert CODEC.emit_count_request(chat_request(), Target("m", None, False)) is None


# ================================================================================================ client: parse_request
def test_sdk_chat_request_every_field() -> None:
    path, body = captured_body(
        lambda c: c.chat(
            "qwen3",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?", "images": [b"\x89PNG\r\n\x1a\nxxxx"]},
                {
                    "role": "assistant",
                    "content": "",
                    "thinking": "Need the tool.",
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
                },
                {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"},
            ],
            tools=[get_weather],
            think="low",
            format={"type": "object", "properties": {"a": {"type": "integer"}}},
            options={
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 40,
                "num_predict": 256,
                "stop": ["\n\n"],
                "seed": 7,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "num_ctx": 8192,
            },
            keep_alive="10m",
        )
    )
    assert path == "/api/chat"
    call_id = "call_m2_0"
    assert CODEC.parse_request(body, CHAT) == Request(
        model="qwen3",
        system=(Text("Be brief."),),
        messages=(
            Message(Role.USER, (Text("Weather in Paris?"), Image(data=PNG_B64, mime_type="image/png"))),
            Message(
                Role.ASSISTANT, (Reasoning("Need the tool."), ToolCall(call_id, "get_weather", '{"city":"Paris"}'))
            ),
            Message(Role.TOOL, (ToolResult(call_id, (Text("18 degrees"),), name="get_weather"),)),
        ),
        tools=(
            Tool(
                "get_weather",
                "Get the current weather for a city.",
                {
                    "type": "object",
                    "required": ["city", "unit"],
                    "properties": {
                        "city": {"type": "string", "description": "The city name"},
                        "unit": {"type": "string", "description": "celsius or fahrenheit"},
                    },
                },
            ),
        ),
        sampling=Sampling(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            max_tokens=256,
            stop=("\n\n",),
            seed=7,
            frequency_penalty=0.2,
            presence_penalty=0.1,
        ),
        thinking=Thinking(enabled=True, effort=Effort.LOW, include_thoughts=True),
        response_format=ResponseFormat(
            ResponseFormatType.JSON_SCHEMA, schema={"type": "object", "properties": {"a": {"type": "integer"}}}
        ),
        stream=False,
        include_usage=True,
        extensions={"ollama": {"endpoint": "chat", "options": {"num_ctx": 8192}, "keep_alive": "10m"}},
    )


def test_sdk_generate_request_every_field() -> None:
    path, body = captured_body(
        lambda c: c.generate(
            "llama3.2",
            "Why is the sky blue?",
            system="Answer in French.",
            images=[b"\xff\xd8\xff\xe0abc"],
            think=True,
            format="json",
            options={"num_predict": -2},
        )
    )
    assert path == "/api/generate"
    assert CODEC.parse_request(body, GENERATE) == Request(
        model="llama3.2",
        system=(Text("Answer in French."),),
        messages=(Message(Role.USER, (Text("Why is the sky blue?"), Image(data=JPEG_B64, mime_type="image/jpeg"))),),
        thinking=Thinking(enabled=True, include_thoughts=True),
        response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT),
        stream=False,
        include_usage=True,
        extensions={"ollama": {"endpoint": "generate", "options": {"num_predict": -2}}},
    )


def test_docs_tool_request() -> None:
    request = CODEC.parse_request(fixture("ollama/request_chat_tools.json"), CHAT)
    assert request.messages == (Message(Role.USER, (Text("What is the weather today in Paris?"),)),)
    assert request.stream is False
    assert [t.name for t in request.tools] == ["get_current_weather"]
    assert request.tools[0].description == "Get the current weather for a location"
    assert request.tools[0].parameters is not None
    assert request.tools[0].parameters["required"] == ["location", "format"]


def test_docs_generate_options_request() -> None:
    request = CODEC.parse_request(fixture("ollama/request_generate_options.json"), GENERATE)
    assert request.sampling == Sampling(
        temperature=0.8,
        top_p=0.9,
        top_k=20,
        max_tokens=100,
        stop=("\n", "user:"),
        seed=42,
        frequency_penalty=1.0,
        presence_penalty=1.5,
    )
    assert request.extensions["ollama"]["options"] == {
        "num_keep": 5,
        "min_p": 0.0,
        "typical_p": 0.7,
        "repeat_last_n": 33,
        "repeat_penalty": 1.2,
        "mirostat": 1,
        "mirostat_tau": 0.8,
        "mirostat_eta": 0.6,
        "penalize_newline": True,
        "numa": False,
        "num_ctx": 1024,
        "num_batch": 2,
        "num_gpu": 1,
        "main_gpu": 0,
        "low_vram": False,
        "vocab_only": False,
        "use_mmap": True,
        "use_mlock": False,
        "num_thread": 8,
    }
    assert request.messages == (Message(Role.USER, (Text("Why is the sky blue?"),)),)


def test_stream_absent_means_true() -> None:
    assert chat_request().stream is True
    assert chat_request(stream=None).stream is True
    assert chat_request(stream=False).stream is False
    assert CODEC.parse_request(b'{"model":"m","prompt":"p"}', GENERATE).stream is True


@pytest.mark.parametrize(
    ("think", "thinking"),
    [
        (None, Thinking()),
        (True, Thinking(enabled=True, include_thoughts=True)),
        (False, Thinking(enabled=False)),
        ("low", Thinking(enabled=True, effort=Effort.LOW, include_thoughts=True)),
        ("medium", Thinking(enabled=True, effort=Effort.MEDIUM, include_thoughts=True)),
        ("high", Thinking(enabled=True, effort=Effort.HIGH, include_thoughts=True)),
    ],
)
def test_think_values(think: object, thinking: Thinking) -> None:
    assert chat_request(think=think).thinking == thinking


def test_num_predict_unlimited_is_no_max_tokens() -> None:
    for value in (-1, -2):
        request = chat_request(options={"num_predict": value})
        assert request.sampling.max_tokens is None
        assert request.extensions["ollama"]["options"] == {"num_predict": value}
        assert wire_body(request)["options"] == {"num_predict": value}


def test_roles_are_case_insensitive_and_mid_conversation_system_stays() -> None:
    request = chat_request(
        messages=[
            {"role": "USER", "content": "a"},
            {"role": "system", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    )
    assert request.system == ()
    assert [m.role for m in request.messages] == [Role.USER, Role.SYSTEM, Role.USER]


def test_data_url_images_are_tolerated() -> None:
    request = chat_request(messages=[{"role": "user", "content": "", "images": ["data:image/webp;base64,UklGRg=="]}])
    assert request.messages[0].parts == (Image(data="UklGRg==", mime_type="image/webp"),)


def test_image_media_type_is_sniffed() -> None:
    gif = "R0lGODlhAQABAAAAACw="
    request = chat_request(messages=[{"role": "user", "content": "x", "images": [gif, "not base64!"]}])
    assert request.messages[0].parts[1:] == (
        Image(data=gif, mime_type="image/gif"),
        Image(data="not base64!", mime_type="image/png"),
    )


# ------------------------------------------------------------------------------------------- tool result ids
def test_tool_results_match_calls_by_name_then_in_order() -> None:
    calls = [
        {"function": {"name": "a", "arguments": {}}},
        {"function": {"name": "b", "arguments": {"x": 1}}},
        {"function": {"name": "a", "arguments": {"y": 2}}},
    ]
    request = chat_request(
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "content": "rb", "tool_name": "b"},
            {"role": "tool", "content": "ra1", "tool_name": "a"},
            {"role": "tool", "content": "r?"},
        ]
    )
    assistant = request.messages[1]
    assert [p.id for p in assistant.parts if isinstance(p, ToolCall)] == ["call_m1_0", "call_m1_1", "call_m1_2"]
    results = [m.parts[0] for m in request.messages[2:]]
    assert results == [
        ToolResult("call_m1_1", (Text("rb"),), name="b"),
        ToolResult("call_m1_0", (Text("ra1"),), name="a"),
        ToolResult("call_m1_2", (Text("r?"),), name="a"),
    ]


def test_tool_results_use_ids_when_the_client_has_them() -> None:
    request = chat_request(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "call_x", "function": {"name": "f", "arguments": {}}},
                    {"id": "call_y", "function": {"name": "f", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "second", "tool_name": "f", "tool_call_id": "call_y"},
            {"role": "tool", "content": "first", "tool_name": "f"},
        ]
    )
    assert [m.parts[0] for m in request.messages[2:]] == [
        ToolResult("call_y", (Text("second"),), name="f"),
        ToolResult("call_x", (Text("first"),), name="f"),
    ]


def test_orphan_tool_result_gets_a_position_id() -> None:
    request = chat_request(messages=[{"role": "user", "content": "go"}, {"role": "tool", "content": "r"}])
    assert request.messages[1].parts == (ToolResult("call_m1_0", (Text("r"),)),)


# ------------------------------------------------------------------------------------------- client input errors
@pytest.mark.parametrize(
    ("body", "hints", "param"),
    [
        (b"not json", CHAT, None),
        (b"[]", CHAT, None),
        (b'{"messages":[]}', CHAT, "model"),
        (b'{"model":"","messages":[]}', CHAT, "model"),
        (b'{"model":"m"}', CHAT, "messages"),
        (b'{"model":"m","messages":{}}', CHAT, "messages"),
        (b'{"model":"m","messages":[]}', CHAT, "messages"),
        (b'{"model":"m","messages":["hi"]}', CHAT, "messages[0]"),
        (b'{"model":"m","messages":[{"content":"hi"}]}', CHAT, "messages[0].role"),
        (b'{"model":"m","messages":[{"role":"bot","content":"hi"}]}', CHAT, "messages[0].role"),
        (b'{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}', CHAT, "messages[0].content"),
        (b'{"model":"m","messages":[{"role":"user","content":"x","images":"abc"}]}', CHAT, "messages[0].images"),
        (
            b'{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":{}}}]}]}',
            CHAT,
            "messages[0].tool_calls[0].function.name",
        ),
        (
            b'{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":3}}]}]}',
            CHAT,
            "messages[0].tool_calls[0].function.arguments",
        ),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web"}]}', CHAT, "tools[0].type"),
        (
            b'{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"function":{}}]}',
            CHAT,
            "tools[0].function.name",
        ),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"format":"yaml"}', CHAT, "format"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"think":"max"}', CHAT, "think"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}', CHAT, "stream"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"options":[]}', CHAT, "options"),
        (
            b'{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"temperature":"hot"}}',
            CHAT,
            "options.temperature",
        ),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"top_k":2.5}}', CHAT, "options.top_k"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"seed":true}}', CHAT, "options.seed"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"stop":[1]}}', CHAT, "options.stop"),
        (b'{"model":"m"}', GENERATE, "prompt"),
        (b'{"model":"m","prompt":3}', GENERATE, "prompt"),
    ],
)
def test_bad_client_input(body: bytes, hints: RequestHints, param: str | None) -> None:
    with pytest.raises(ClientError) as caught:
        CODEC.parse_request(body, hints)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.status == 400
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"m","prompt":"def f(","suffix":"    return x"}', "suffix"),
        (b'{"model":"m","prompt":"[INST] hi [/INST]","raw":true}', "raw"),
        (b'{"model":"m","prompt":"and then?","context":[1,2,3]}', "context"),
        (b'{"model":"m","prompt":"hi","logprobs":true}', "logprobs"),
    ],
)
def test_generate_features_chat_cannot_carry(body: bytes, param: str) -> None:
    with pytest.raises(ClientError) as caught:
        CODEC.parse_request(body, GENERATE)
    assert (caught.value.kind, caught.value.param) == (ErrorKind.UNSUPPORTED, param)


def test_generate_defaults_the_sdk_used_to_send_are_accepted() -> None:
    # Older SDKs sent every field (tests/test_client.py in ollama-python): empty suffix, template, context, raw false.
    body = (
        b'{"model":"dummy","prompt":"Why is the sky blue?","suffix":"","system":"","template":"","context":[],'
        b'"stream":false,"raw":false,"images":[],"format":"","options":{},"keep_alive":null}'
    )
    request = CODEC.parse_request(body, GENERATE)
    assert request.system == ()
    assert request.messages == (Message(Role.USER, (Text("Why is the sky blue?"),)),)
    assert request.response_format is None
    assert request.extensions == {"ollama": {"endpoint": "generate"}}


# ================================================================================================ client: emit_response
ANSWER = Response(
    id="x",
    model="upstream-model",
    parts=(
        Reasoning("Think.", signature="sig"),
        Text("It is "),
        Text("sunny."),
        ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=3),
)


def test_chat_response_exact_and_valid_for_the_sdk() -> None:
    body = CODEC.emit_response(ANSWER, info_for(chat_request()))
    assert orjson.loads(body) == {
        "model": "llama3.2",
        "created_at": "2023-08-04T19:23:25Z",
        "message": {
            "role": "assistant",
            "content": "It is sunny.",
            "thinking": "Think.",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        "done": True,
        "done_reason": "stop",
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": 10,
        "prompt_eval_duration": 0,
        "eval_count": 5,
        "eval_duration": 0,
        "prompt_eval_cached_count": 3,
    }
    parsed = ollama.ChatResponse.model_validate(orjson.loads(body))
    assert parsed.message.tool_calls is not None
    assert parsed.message.tool_calls[0].function.arguments == {"city": "Paris"}


def test_sdk_client_reads_a_non_stream_chat_answer() -> None:
    request = chat_request(stream=False)
    answer = Response("x", "m", (Text("Hello!"),), FinishReason.LENGTH, Usage(input_tokens=26, output_tokens=298))
    response = serve(CODEC.emit_response(answer, info_for(request))).chat("llama3.2", messages=[], stream=False)
    assert (response.message.content, response.done, response.done_reason) == ("Hello!", True, "length")
    assert (response.prompt_eval_count, response.eval_count) == (26, 298)
    assert response.created_at == "2023-08-04T19:23:25Z"


def test_generate_response_exact_and_read_by_the_sdk() -> None:
    request = CODEC.parse_request(b'{"model":"llama3.2","prompt":"hi","stream":false}', GENERATE)
    answer = Response(
        "x", "m", (Reasoning("Hm."), Text("Hello.")), FinishReason.STOP, Usage(input_tokens=1, output_tokens=2)
    )
    body = CODEC.emit_response(answer, info_for(request))
    assert orjson.loads(body) == {
        "model": "llama3.2",
        "created_at": "2023-08-04T19:23:25Z",
        "response": "Hello.",
        "thinking": "Hm.",
        "done": True,
        "done_reason": "stop",
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": 1,
        "prompt_eval_duration": 0,
        "eval_count": 2,
        "eval_duration": 0,
    }
    result = serve(body).generate("llama3.2", "hi")
    assert (result.response, result.thinking, result.done_reason) == ("Hello.", "Hm.", "stop")


def test_generate_dialect_cannot_carry_tool_calls() -> None:
    request = CODEC.parse_request(b'{"model":"llama3.2","prompt":"hi"}', GENERATE)
    with pytest.raises(CodecError) as caught:
        CODEC.emit_response(ANSWER, info_for(request))
    assert caught.value.kind is ErrorKind.UNSUPPORTED


@pytest.mark.parametrize(
    ("reason", "done_reason"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.STOP_SEQUENCE, "stop"),
        (FinishReason.TOOL_CALLS, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
    ],
)
def test_finish_reason_table(reason: FinishReason, done_reason: str) -> None:
    body = CODEC.emit_response(Response("x", "m", (Text("a"),), reason), info_for(chat_request()))
    assert orjson.loads(body)["done_reason"] == done_reason


def test_invalid_tool_arguments_cannot_become_an_object() -> None:
    answer = Response("x", "m", (ToolCall("c", "f", "{not json"),), FinishReason.TOOL_CALLS)
    with pytest.raises(CodecError) as caught:
        CODEC.emit_response(answer, info_for(chat_request()))
    assert caught.value.kind is ErrorKind.UNSUPPORTED


def test_created_at_is_go_rfc3339() -> None:
    assert created_at(0) == "1970-01-01T00:00:00Z"
    assert created_at(1691177005) == "2023-08-04T19:23:25Z"


def test_emit_error() -> None:
    assert CODEC.emit_error(ClientError(ErrorKind.NOT_FOUND, 'model "x" not found')) == (
        404,
        b'{"error":"model \\"x\\" not found"}',
    )
    status, body = CODEC.emit_error(UpstreamError(ErrorKind.RATE_LIMIT, "slow down", status=429))
    assert (status, orjson.loads(body)) == (429, {"error": "slow down"})


# =============================================================================================== client: stream encoder
STREAM_EVENTS: list[Event] = [
    Start("ollama-seed", "llama3.2"),
    ReasoningDelta(0, "Let me"),
    ReasoningDelta(0, " check."),
    ReasoningSignature(0, "c2ln"),
    TextDelta(1, "Checking "),
    TextDelta(1, '"Paris"\n'),
    ToolCallStart(2, "call_9", "get_weather"),
    ToolCallDelta(2, '{"city":'),
    ToolCallDelta(2, '"Paris"}'),
    ToolCallEnd(2),
    UsageUpdate(Usage(input_tokens=7)),
    UsageUpdate(Usage(input_tokens=7, output_tokens=11)),
    Finish(FinishReason.TOOL_CALLS),
]


def encode_stream(info: StreamInfo, events: Sequence[Event]) -> list[bytes]:
    encoder = CODEC.new_encoder(info)
    chunks = [encoder.encode(event) for event in events]
    chunks.append(encoder.finish())
    return chunks


def test_encoder_framing_attributes() -> None:
    encoder = CODEC.new_encoder(info_for(chat_request()))
    assert (encoder.content_type, encoder.keepalive) == ("application/x-ndjson", None)


def test_chat_stream_lines_exact() -> None:
    chunks = encode_stream(info_for(chat_request()), STREAM_EVENTS)
    head = '{"model":"llama3.2","created_at":"2023-08-04T19:23:25Z",'
    assert b"".join(chunks).decode().splitlines() == [
        head + '"message":{"role":"assistant","content":"","thinking":"Let me"},"done":false}',
        head + '"message":{"role":"assistant","content":"","thinking":" check."},"done":false}',
        head + '"message":{"role":"assistant","content":"Checking "},"done":false}',
        head + '"message":{"role":"assistant","content":"\\"Paris\\"\\n"},"done":false}',
        head + '"message":{"role":"assistant","content":"","tool_calls":[{"id":"call_9","function":'
        '{"index":0,"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":false}',
        head + '"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":0,'
        '"load_duration":0,"prompt_eval_count":7,"prompt_eval_duration":0,"eval_count":11,"eval_duration":0}',
    ]
    # Start, the signature, the tool-call deltas and the usage/finish events produce no line of their own.
    assert [bool(c) for c in chunks] == [
        False,
        True,
        True,
        False,
        True,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]


def test_every_stream_line_is_a_valid_sdk_chat_response() -> None:
    for line in b"".join(encode_stream(info_for(chat_request()), STREAM_EVENTS)).splitlines():
        ollama.ChatResponse.model_validate(orjson.loads(line))


def test_sdk_client_reads_the_stream() -> None:
    payload = b"".join(encode_stream(info_for(chat_request()), STREAM_EVENTS))
    parts = list(serve(payload).chat("llama3.2", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "Let me check."
    assert "".join(p.message.content or "" for p in parts) == 'Checking "Paris"\n'
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert (parts[-1].done, parts[-1].done_reason, parts[-1].eval_count) == (True, "stop", 11)


def test_generate_stream_read_by_the_sdk() -> None:
    request = CODEC.parse_request(b'{"model":"llama3.2","prompt":"hi"}', GENERATE)
    events: list[Event] = [
        Start("s", "m"),
        ReasoningDelta(0, "Hm."),
        TextDelta(1, "The"),
        TextDelta(1, " sky"),
        UsageUpdate(Usage(input_tokens=2, output_tokens=3)),
        Finish(FinishReason.LENGTH),
    ]
    payload = b"".join(encode_stream(info_for(request), events))
    for line in payload.splitlines():
        ollama.GenerateResponse.model_validate(orjson.loads(line))
    parts = list(serve(payload).generate("llama3.2", "hi", stream=True))
    assert [(p.response, p.thinking, p.done) for p in parts] == [
        ("", "Hm.", False),
        ("The", None, False),
        (" sky", None, False),
        ("", None, True),
    ]
    assert (parts[-1].done_reason, parts[-1].prompt_eval_count, parts[-1].eval_count) == ("length", 2, 3)


def test_generate_stream_rejects_tool_calls() -> None:
    request = CODEC.parse_request(b'{"model":"llama3.2","prompt":"hi"}', GENERATE)
    with pytest.raises(CodecError):
        CODEC.new_encoder(info_for(request)).encode(ToolCallStart(0, "c", "f"))


def test_unclosed_tool_call_is_flushed_at_finish() -> None:
    encoder = CODEC.new_encoder(info_for(chat_request()))
    for event in (ToolCallStart(0, "c1", "f"), ToolCallDelta(0, '{"a":1}')):
        assert encoder.encode(event) == b""
    lines = (encoder.encode(Finish(FinishReason.TOOL_CALLS)) + encoder.finish()).splitlines()
    assert [orjson.loads(line)["message"].get("tool_calls") for line in lines] == [
        [{"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}],
        None,
    ]


def test_stream_error_line_raises_response_error_in_the_sdk() -> None:
    encoder = CODEC.new_encoder(info_for(chat_request()))
    payload = encoder.encode(TextDelta(0, "Hel")) + encoder.error(UpstreamError(ErrorKind.UPSTREAM, "upstream died"))
    assert payload.endswith(b'{"error":"upstream died"}\n')
    with pytest.raises(ollama.ResponseError) as caught:
        list(serve(payload).chat("llama3.2", messages=[{"role": "user", "content": "x"}], stream=True))
    assert caught.value.error == "upstream died"


def test_sdk_raises_on_emitted_error_status() -> None:
    status, body = CODEC.emit_error(ClientError(ErrorKind.INVALID_REQUEST, "messages is required"))
    with pytest.raises(ollama.ResponseError) as caught:
        serve(body, status).chat("llama3.2", messages=[], stream=False)
    assert (caught.value.status_code, caught.value.error) == (400, "messages is required")


# ========================================================================================================== round trips
def test_events_encoder_decoder_round_trip() -> None:
    events = [e for e in STREAM_EVENTS if not isinstance(e, ReasoningSignature)]
    payload = b"".join(encode_stream(info_for(chat_request()), events))
    # Ollama sends a tool call whole (its argument fragments arrive joined) and reports usage once, on the done
    # line (the two cumulative snapshots arrive as their merge); everything else comes back as it went in.
    assert assert_split_invariant(CODEC, payload) == [
        Start("ollama-seed", "llama3.2"),
        ReasoningDelta(0, "Let me"),
        ReasoningDelta(0, " check."),
        TextDelta(1, "Checking "),
        TextDelta(1, '"Paris"\n'),
        ToolCallStart(2, "call_9", "get_weather"),
        ToolCallDelta(2, '{"city":"Paris"}'),
        ToolCallEnd(2),
        UsageUpdate(Usage(input_tokens=7, output_tokens=11)),
        Finish(FinishReason.TOOL_CALLS),
    ]


def test_response_events_stream_equals_non_stream() -> None:
    info = info_for(chat_request())
    answer = Response(
        "ollama-seed",
        "llama3.2",
        (Reasoning("Think."), Text("Sunny."), ToolCall("call_1", "f", '{"a":[1,2]}')),
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=4, output_tokens=9),
    )
    streamed = b"".join(encode_stream(info, response_events(answer)))
    assert accumulate(decode_all(CODEC, streamed)) == answer
    assert CODEC.parse_response(CODEC.emit_response(answer, info), "seed") == answer


FULL_REQUEST = Request(
    model="qwen3:8b",
    system=(Text("You are terse."), Text("Answer in English.")),
    messages=(
        Message(Role.USER, (Text("Weather in Paris and London?"), Image(data=PNG_B64, mime_type="image/png"))),
        Message(
            Role.ASSISTANT,
            (
                Reasoning("Two calls."),
                Text("Checking."),
                ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_b", "get_weather", '{"city":"London"}'),
            ),
        ),
        Message(Role.TOOL, (ToolResult("call_a", (Text("18C"),), name="get_weather"),)),
        Message(Role.TOOL, (ToolResult("call_b", (Text("12C"),), name="get_weather"),)),
        Message(Role.SYSTEM, (Text("Be kind."),)),
        Message(Role.USER, (Text("Thanks"),)),
    ),
    tools=(
        Tool(
            "get_weather",
            "Weather for a city",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        ),
    ),
    sampling=Sampling(
        temperature=0.3,
        top_p=0.8,
        top_k=30,
        max_tokens=512,
        stop=("END",),
        seed=3,
        frequency_penalty=0.5,
        presence_penalty=0.25,
    ),
    thinking=Thinking(enabled=True, effort=Effort.HIGH, include_thoughts=True),
    response_format=ResponseFormat(
        ResponseFormatType.JSON_SCHEMA, schema={"type": "object", "properties": {"t": {"type": "number"}}}
    ),
    stream=True,
    include_usage=True,
    extensions={"ollama": {"endpoint": "chat", "options": {"num_ctx": 16384}, "keep_alive": "1h"}},
)


def test_request_round_trip() -> None:
    wire = CODEC.emit_request(FULL_REQUEST, Target("qwen3:8b", None, True))
    assert CODEC.parse_request(wire.body, CHAT) == FULL_REQUEST


def test_emitted_request_exact() -> None:
    body = wire_body(FULL_REQUEST, Target("qwen3:8b", None, False))
    assert body == {
        "model": "qwen3:8b",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Weather in Paris and London?", "images": [PNG_B64]},
            {
                "role": "assistant",
                "content": "Checking.",
                "thinking": "Two calls.",
                "tool_calls": [
                    {"id": "call_a", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"id": "call_b", "function": {"name": "get_weather", "arguments": {"city": "London"}}},
                ],
            },
            {"role": "tool", "content": "18C", "tool_name": "get_weather", "tool_call_id": "call_a"},
            {"role": "tool", "content": "12C", "tool_name": "get_weather", "tool_call_id": "call_b"},
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Thanks"},
        ],
        "stream": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
        "format": {"type": "object", "properties": {"t": {"type": "number"}}},
        "options": {
            "num_ctx": 16384,
            "temperature": 0.3,
            "top_p": 0.8,
            "top_k": 30,
            "num_predict": 512,
            "stop": ["END"],
            "seed": 3,
            "presence_penalty": 0.25,
            "frequency_penalty": 0.5,
        },
        "think": "high",
        "keep_alive": "1h",
    }
    # The SDK's own request model accepts it.
    ChatRequest.model_validate(body)


def test_sdk_request_round_trip_is_a_fixed_point() -> None:
    _, body = captured_body(
        lambda c: c.chat(
            "qwen3",
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
                },
                {"role": "tool", "content": "ok", "tool_name": "f"},
            ],
            tools=[get_weather],
            think=False,
            options={"seed": 1, "mirostat": 2},
        )
    )
    request = CODEC.parse_request(body, CHAT)
    again = CODEC.parse_request(CODEC.emit_request(request, Target("qwen3", None, False)).body, CHAT)
    assert again == request


# =============================================================================================== provider: emit_request
def test_wire_request_path_and_headers() -> None:
    wire = CODEC.emit_request(chat_request(), Target("llama3.2", None, True))
    assert (wire.method, wire.path, wire.headers) == ("POST", "/api/chat", (("content-type", "application/json"),))
    wire = CODEC.emit_request(chat_request(), Target("gpt-oss:120b", "secret-key", False))
    assert wire.headers == (("content-type", "application/json"), ("authorization", "Bearer secret-key"))


def test_generate_client_still_goes_to_api_chat() -> None:
    request = CODEC.parse_request(b'{"model":"m","prompt":"hi","system":"s"}', GENERATE)
    wire = CODEC.emit_request(request, Target("m", None, True))
    assert wire.path == "/api/chat"
    assert orjson.loads(wire.body)["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
    ]


def test_minimal_wire_body_omits_what_is_unset() -> None:
    request = Request(model="x", messages=(Message(Role.USER, (Text("hi"),)),))
    assert wire_body(request) == {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.parametrize(
    ("thinking", "think"),
    [
        (Thinking(), None),
        (Thinking(enabled=True), True),
        (Thinking(enabled=False), False),
        (Thinking(enabled=False, effort=Effort.HIGH), False),
        (Thinking(budget_tokens=-1), True),
        (Thinking(budget_tokens=0), False),
        (Thinking(enabled=True, budget_tokens=1024), "low"),
        (Thinking(enabled=True, budget_tokens=2048), "low"),
        (Thinking(enabled=True, budget_tokens=5000), "medium"),
        (Thinking(enabled=True, budget_tokens=20000), "high"),
        (Thinking(enabled=True, budget_tokens=64000), "high"),
        (Thinking(effort=Effort.NONE), False),
        (Thinking(effort=Effort.MINIMAL), "low"),
        (Thinking(effort=Effort.LOW), "low"),
        (Thinking(effort=Effort.MEDIUM), "medium"),
        (Thinking(effort=Effort.HIGH), "high"),
        (Thinking(effort=Effort.XHIGH), "high"),
    ],
)
def test_think_table(thinking: Thinking, think: bool | str | None) -> None:
    assert think_value(thinking) == think
    body = wire_body(Request(model="m", messages=(Message(Role.USER, (Text("x"),)),), thinking=thinking))
    assert body.get("think") == think


def test_effort_table_covers_every_effort() -> None:
    assert set(EFFORT_TO_THINK) == set(Effort)


def test_anthropic_style_history() -> None:
    # Tool results inside a user message (Anthropic), signatures and redacted thinking, error results, data URLs.
    request = Request(
        model="m",
        messages=(
            Message(
                Role.USER,
                (
                    Text("Look:"),
                    Image(url="data:image/jpeg;base64," + JPEG_B64),
                    File(data="QUJD", mime_type="image/gif"),
                ),
            ),
            Message(
                Role.ASSISTANT,
                (Reasoning("Hmm", signature="EqQBCkYI"), RedactedReasoning("opaque"), ToolCall("toolu_1", "read", "")),
            ),
            Message(Role.USER, (ToolResult("toolu_1", (Text("no such file"),), is_error=True), Text("Try again"))),
        ),
    )
    assert wire_body(request)["messages"] == [
        {"role": "user", "content": "Look:", "images": [JPEG_B64, "QUJD"]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Hmm",
            "tool_calls": [{"id": "toolu_1", "function": {"name": "read", "arguments": {}}}],
        },
        {"role": "tool", "content": "Error: no such file", "tool_name": "read", "tool_call_id": "toolu_1"},
        {"role": "user", "content": "Try again"},
    ]


def test_tool_choice_none_withholds_tools_and_auto_sends_them() -> None:
    tool = Tool("f", None, None)
    base = Request(model="m", messages=(Message(Role.USER, (Text("x"),)),), tools=(tool,))
    none = Request(model="m", messages=base.messages, tools=(tool,), tool_choice=ToolChoice(ToolChoiceMode.NONE))
    auto = Request(model="m", messages=base.messages, tools=(tool,), tool_choice=ToolChoice(ToolChoiceMode.AUTO))
    assert "tools" not in wire_body(none)
    expected = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    assert wire_body(auto)["tools"] == wire_body(base)["tools"] == expected


def test_schemas_are_normalized() -> None:
    request = Request(
        model="m",
        messages=(Message(Role.USER, (Text("x"),)),),
        tools=(Tool("f", None, {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}),),
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema={"type": "OBJECT"}),
    )
    body = wire_body(request)
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert body["format"] == {"type": "object"}


def test_response_format_variants() -> None:
    def fmt(response_format: ResponseFormat | None) -> object:
        return wire_body(
            Request(model="m", messages=(Message(Role.USER, (Text("x"),)),), response_format=response_format)
        ).get("format")

    assert fmt(None) is None
    assert fmt(ResponseFormat(ResponseFormatType.TEXT)) is None
    assert fmt(ResponseFormat(ResponseFormatType.JSON_OBJECT)) == "json"


USER = (Message(Role.USER, (Text("x"),)),)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (
            Request(model="m", messages=(Message(Role.USER, (Image(url="https://example.com/a.png"),)),)),
            "messages[0].parts[0]",
        ),
        (Request(model="m", messages=(Message(Role.USER, (File(file_id="file-1"),)),)), "messages[0].parts[0]"),
        (
            Request(model="m", messages=(Message(Role.USER, (File(data="JVBE", mime_type="application/pdf"),)),)),
            "messages[0].parts[0]",
        ),
        (
            Request(model="m", messages=(Message(Role.ASSISTANT, (ToolCall("c", "f", "{oops"),)),)),
            "messages[0].parts[0]",
        ),
        (Request(model="m", messages=(Message(Role.ASSISTANT, (ToolCall("c", "f", "[1]"),)),)), "messages[0].parts[0]"),
        (
            Request(model="m", messages=(Message(Role.TOOL, (ToolResult("c", (Image(url="https://x/y.png"),)),)),)),
            "messages[0].parts[0].content[0]",
        ),
        (Request(model="m", messages=USER, sampling=Sampling(n=2)), "n"),
        (
            Request(model="m", messages=USER, tools=(Tool("f"),), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED)),
            "tool_choice",
        ),
        (
            Request(model="m", messages=USER, tools=(Tool("f"),), tool_choice=ToolChoice(ToolChoiceMode.TOOL, "f")),
            "tool_choice",
        ),
        (Request(model="m", messages=USER, previous_response_id="resp_1"), "previous_response_id"),
    ],
)
def test_what_ollama_cannot_express(request_: Request, param: str) -> None:
    with pytest.raises(CodecError) as caught:
        CODEC.emit_request(request_, Target("m", None, True))
    assert (caught.value.kind, caught.value.param) == (ErrorKind.UNSUPPORTED, param)


def test_n_of_one_is_fine() -> None:
    assert wire_body(Request(model="m", messages=USER, sampling=Sampling(n=1))).get("options") is None


# =============================================================================================================== purity
def test_module_imports_nothing_impure() -> None:
    import muxtrio.codecs.ollama as module

    source = open(module.__file__, encoding="utf-8").read()  # noqa: SIM115
    for name in (
        "import trio",
        "import httpx",
        "import socket",
        "import time",
        "import random",
        "import uuid",
        "import json\n",
        "import logging",
    ):
        assert name not in source

"""Every client format x every provider format, through the pure layer only.

For a pair (client C, provider P):
- requests: an IR request -> ``C.emit_request`` (exactly the body a C client sends) -> ``C.parse_request`` ->
  ``P.emit_request`` -> ``P.parse_request``; what both formats can carry must survive.
- streams: IR answer events -> P's encoder (P's own wire bytes, as a P provider streams them) -> P's decoder -> C's
  encoder -> C's decoder; the accumulated answer must survive.
- non-stream answers: ``P.emit_response`` -> ``P.parse_response`` -> ``C.emit_response`` -> ``C.parse_response``.
- errors: a provider error in P's shape keeps its kind and reaches the client with C's status.
No pair is skipped; where a format cannot carry something, the expectation says so explicitly.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace

import pytest

from muxtrio.codecs.base import Codec, Format, RequestHints, StreamInfo, Target
from muxtrio.codecs.registry import get_codec
from muxtrio.errors import ErrorKind, MuxError, UpstreamError
from muxtrio.ir import (
    Event,
    Finish,
    FinishReason,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    ReasoningSignature,
    Request,
    Response,
    Role,
    Sampling,
    Start,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageUpdate,
    accumulate,
)

FORMATS = list(Format)
PAIRS = list(itertools.product(FORMATS, FORMATS))
SIGNED = {Format.ANTHROPIC, Format.GEMINI, Format.OPENAI_RESPONSES}  # formats that carry reasoning signatures
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = Tool(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def codec(fmt: Format) -> Codec:
    return get_codec(fmt)


def info(request: Request) -> StreamInfo:
    return StreamInfo(id="resp1", model="model-x", created=1_700_000_000, request=request)


def through_client(client: Format, request: Request) -> Request:
    """What a client of format ``client`` sends for ``request``, parsed back by the gateway."""
    c = codec(client)
    wire = c.emit_request(request, Target(model=request.model, api_key="k", stream=request.stream))
    return c.parse_request(wire.body, RequestHints(model=request.model, stream=request.stream))


def through_provider(provider: Format, request: Request) -> Request:
    """What a provider of format ``provider`` receives for ``request``, as the IR it describes."""
    p = codec(provider)
    wire = p.emit_request(request, Target(model=request.model, api_key="k", stream=request.stream))
    return p.parse_request(wire.body, RequestHints(model=request.model, stream=request.stream))


def texts(request: Request) -> list[tuple[str, str]]:
    out = [("system", t.text) for t in request.system]
    for m in request.messages:
        for part in m.parts:
            if isinstance(part, Text) and part.text:
                out.append((m.role.value, part.text))
    return out


def calls(parts: tuple[object, ...] | list[object]) -> list[tuple[str, object]]:
    return [(p.name, json.loads(p.arguments or "{}")) for p in parts if isinstance(p, ToolCall)]


def results(request: Request) -> list[tuple[str, str]]:
    """Tool results as (name of the call they answer, text); ids may be re-invented but must still match."""
    names = {p.id: p.name for m in request.messages for p in m.parts if isinstance(p, ToolCall)}
    out = []
    for m in request.messages:
        for p in m.parts:
            if isinstance(p, ToolResult):
                text = "".join(c.text for c in p.content if isinstance(c, Text))
                out.append((names.get(p.call_id, f"<unmatched {p.call_id}>"), _unwrap(text)))
    return out


def _unwrap(text: str) -> str:
    """Gemini and Ollama carry tool results as JSON objects; accept the codecs' documented wrapping."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        return inner if isinstance(inner, str) else json.dumps(inner, sort_keys=True)
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


# ------------------------------------------------------------------------------------------------ requests
CONVERSATION = Request(
    model="model-x",
    system=(Text("You are terse."),),
    messages=(
        Message(Role.USER, (Text("Weather in Paris?"),)),
        Message(Role.ASSISTANT, (ToolCall(id="call_a1", name="get_weather", arguments='{"city": "Paris"}'),)),
        Message(Role.TOOL, (ToolResult(call_id="call_a1", name="get_weather", content=(Text("18C and sunny"),)),)),
        Message(Role.ASSISTANT, (Text("It is 18C and sunny."),)),
        Message(Role.USER, (Text("And in Rome?"),)),
    ),
    tools=(WEATHER,),
    sampling=Sampling(max_tokens=512, temperature=0.5),
    stream=True,
)


@pytest.mark.parametrize(("client", "provider"), PAIRS, ids=[f"{c.value}->{p.value}" for c, p in PAIRS])
def test_request_survives(client: Format, provider: Format) -> None:
    parsed = through_client(client, CONVERSATION)
    sent = through_provider(provider, parsed)
    assert texts(sent) == texts(CONVERSATION)
    assert calls([p for m in sent.messages for p in m.parts]) == [("get_weather", {"city": "Paris"})]
    assert results(sent) == [("get_weather", "18C and sunny")]
    assert [t.name for t in sent.tools] == ["get_weather"]
    schema = sent.tools[0].parameters or {}
    assert str(schema.get("type", "")).lower() == "object" and "city" in (schema.get("properties") or {})
    assert sent.sampling.max_tokens == 512
    assert sent.sampling.temperature == 0.5


@pytest.mark.parametrize(("client", "provider"), PAIRS, ids=[f"{c.value}->{p.value}" for c, p in PAIRS])
def test_image_input_survives(client: Format, provider: Format) -> None:
    request = replace(
        CONVERSATION,
        messages=(Message(Role.USER, (Text("What is this?"), Image(data=PNG, mime_type="image/png"))),),
        tools=(),
    )
    sent = through_provider(provider, through_client(client, request))
    images = [p for m in sent.messages for p in m.parts if isinstance(p, Image)]
    assert len(images) == 1
    image = images[0]
    assert image.data == PNG or (image.url or "").endswith(PNG)


# ------------------------------------------------------------------------------------------------ answers
@dataclass(frozen=True)
class Scenario:
    name: str
    events: list[Event]


def _text(reason: FinishReason = FinishReason.STOP) -> list[Event]:
    return [
        Start("up-1", "model-x"),
        TextDelta(0, "Hello"),
        TextDelta(0, ", world"),
        UsageUpdate(Usage(input_tokens=12, output_tokens=3)),
        Finish(reason),
    ]


SCENARIOS = [
    Scenario("text", _text()),
    Scenario("length", _text(FinishReason.LENGTH)),
    Scenario(
        "tool_call",
        [
            Start("up-1", "model-x"),
            TextDelta(0, "Let me check."),
            ToolCallStart(1, "call_x", "get_weather"),
            ToolCallDelta(1, '{"city": '),
            ToolCallDelta(1, '"Rome"}'),
            ToolCallEnd(1),
            UsageUpdate(Usage(input_tokens=20, output_tokens=9)),
            Finish(FinishReason.TOOL_CALLS),
        ],
    ),
    Scenario(
        "parallel_tool_calls",
        [
            Start("up-1", "model-x"),
            ToolCallStart(0, "call_1", "get_weather"),
            ToolCallDelta(0, '{"city": "Rome"}'),
            ToolCallEnd(0),
            ToolCallStart(1, "call_2", "get_weather"),
            ToolCallDelta(1, '{"city": "Oslo"}'),
            ToolCallEnd(1),
            UsageUpdate(Usage(input_tokens=20, output_tokens=14)),
            Finish(FinishReason.TOOL_CALLS),
        ],
    ),
    Scenario(
        "thinking",
        [
            Start("up-1", "model-x"),
            ReasoningDelta(0, "Think "),
            ReasoningDelta(0, "carefully."),
            ReasoningSignature(0, "c2lnbmF0dXJlLWJ5dGVz"),
            TextDelta(1, "Answer."),
            UsageUpdate(Usage(input_tokens=8, output_tokens=30, reasoning_tokens=20)),
            Finish(FinishReason.STOP),
        ],
    ),
]
CASES = [(c, p, s) for c, p in PAIRS for s in SCENARIOS]
CASE_IDS = [f"{c.value}->{p.value}:{s.name}" for c, p, s in CASES]


def stream_through(fmt: Format, events: list[Event], request: Request) -> list[Event]:
    """Encode events in ``fmt``'s client framing, then decode them with ``fmt``'s provider decoder."""
    c = codec(fmt)
    encoder = c.new_encoder(info(request))
    wire = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    decoder = c.new_decoder("seed1")
    return decoder.feed(wire) + decoder.flush()


def expected_view(response: Response, client: Format, provider: Format) -> dict[str, object]:
    reasoning = [p for p in response.parts if isinstance(p, Reasoning)]
    return {
        "text": "".join(p.text for p in response.parts if isinstance(p, Text)),
        "calls": calls(list(response.parts)),
        "reasoning": "".join(p.text for p in reasoning),
        "signature": reasoning[0].signature if reasoning and {client, provider} <= SIGNED else None,
        "finish": response.finish_reason,
        "usage": (response.usage.input_tokens, response.usage.output_tokens),
    }


view = expected_view  # the same projection of what both formats can carry, applied to what came out


@pytest.mark.parametrize(("client", "provider", "scenario"), CASES, ids=CASE_IDS)
def test_stream_survives(client: Format, provider: Format, scenario: Scenario) -> None:
    request = replace(CONVERSATION, stream=True, include_usage=True)  # OpenAI chat streams usage only if asked
    from_provider = stream_through(provider, scenario.events, request)
    at_client = stream_through(client, from_provider, request)
    assert view(accumulate(at_client), client, provider) == expected_view(
        accumulate(scenario.events), client, provider
    )


@pytest.mark.parametrize(("client", "provider", "scenario"), CASES, ids=CASE_IDS)
def test_non_stream_answer_survives(client: Format, provider: Format, scenario: Scenario) -> None:
    request = replace(CONVERSATION, stream=False)
    answer = accumulate(scenario.events)
    p, c = codec(provider), codec(client)
    from_provider = p.parse_response(p.emit_response(answer, info(request)), "seed1")
    at_client = c.parse_response(c.emit_response(from_provider, info(request)), "seed2")
    assert view(at_client, client, provider) == expected_view(answer, client, provider)


ERROR_KINDS = [ErrorKind.RATE_LIMIT, ErrorKind.INVALID_REQUEST, ErrorKind.OVERLOADED, ErrorKind.NOT_FOUND]


@pytest.mark.parametrize(("client", "provider"), PAIRS, ids=[f"{c.value}->{p.value}" for c, p in PAIRS])
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_provider_error_reaches_the_client_in_its_shape(client: Format, provider: Format, kind: ErrorKind) -> None:
    p, c = codec(provider), codec(client)
    status, body = p.emit_error(MuxError(kind, "the provider says no"))
    error = p.parse_error(status, {}, body)
    assert isinstance(error, UpstreamError)
    assert error.kind is kind
    assert "the provider says no" in error.message
    client_status, client_body = c.emit_error(error)
    assert client_status == error.status
    assert b"the provider says no" in client_body

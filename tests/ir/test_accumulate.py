"""ir/accumulate.py: a stream becomes one answer, and an answer becomes the stream that carries it."""

from __future__ import annotations

import pytest

from muxtrio.errors import StreamTruncated
from muxtrio.ir.accumulate import Accumulator, accumulate, response_events
from muxtrio.ir.events import (
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoningBlock,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
)
from muxtrio.ir.request import Reasoning, RedactedReasoning, Text, ToolCall
from muxtrio.ir.response import FinishReason, Response, Usage

STREAM = [
    Start("r1", "m"),
    ReasoningDelta(0, "let me "),
    ReasoningDelta(0, "think"),
    ReasoningSignature(0, "sig-1"),
    RedactedReasoningBlock(1, "opaque"),
    TextDelta(2, "Hel"),
    TextDelta(2, "lo"),
    ToolCallStart(3, "call_1", "lookup", None),
    ToolCallDelta(3, '{"q":'),
    ToolCallDelta(3, '"x"}'),
    ToolCallEnd(3),
    UsageUpdate(Usage(input_tokens=10)),
    UsageUpdate(Usage(input_tokens=10, output_tokens=7, reasoning_tokens=3)),
    Finish(FinishReason.TOOL_CALLS),
]
ANSWER = Response(
    "r1",
    "m",
    (Reasoning("let me think", signature="sig-1"), RedactedReasoning("opaque"), Text("Hello"),
     ToolCall("call_1", "lookup", '{"q":"x"}')),
    FinishReason.TOOL_CALLS,
    Usage(input_tokens=10, output_tokens=7, reasoning_tokens=3),
)  # fmt: skip


def test_deltas_are_joined_per_block_and_usage_snapshots_merge() -> None:
    assert accumulate(STREAM) == ANSWER


def test_response_events_is_the_inverse_of_accumulate() -> None:
    assert accumulate(response_events(ANSWER)) == ANSWER
    events = response_events(ANSWER)
    assert events[0] == Start("r1", "m") and events[-1] == Finish(FinishReason.TOOL_CALLS)


def test_a_stream_without_finish_is_truncated_but_its_partial_answer_is_known() -> None:
    acc = Accumulator()
    for event in STREAM[:6]:
        acc.add(event)
    assert acc.partial_parts() == (Reasoning("let me think", signature="sig-1"), RedactedReasoning("opaque"),
                                   Text("Hel"))  # fmt: skip
    with pytest.raises(StreamTruncated):
        acc.response()


def test_stop_sequence_and_creation_time_are_carried() -> None:
    events = [Start("r", "m"), TextDelta(0, "a"), Finish(FinishReason.STOP_SEQUENCE, "###")]
    answer = accumulate(events, created=1700000000)
    assert (answer.stop_sequence, answer.created) == ("###", 1700000000)
    assert answer.finish_reason is FinishReason.STOP_SEQUENCE


def test_a_tool_call_without_arguments_streams_no_delta() -> None:
    answer = Response("r", "m", (ToolCall("c", "now", ""),), FinishReason.TOOL_CALLS, Usage())
    assert not any(isinstance(e, ToolCallDelta) for e in response_events(answer))
    assert accumulate(response_events(answer)) == answer

"""The regeneration splice and the stitching bookkeeping (pure: IR events in, IR events out)."""

from __future__ import annotations

import pytest

from muxtrio.engine.splice import PARTIAL_ANSWER_LIMIT, Progress, Splice, SpliceDiverged, Transcript
from muxtrio.ir import Finish, FinishReason, Message, Request, Role, Start, Text, TextDelta, UsageUpdate
from muxtrio.ir.events import (
    Event,
    ReasoningDelta,
    ReasoningSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from muxtrio.ir.response import Usage

REQUEST = Request(model="m", messages=(Message(Role.USER, (Text("hi"),)),), stream=True)


def transcript(*events: Event) -> Transcript:
    t = Transcript()
    for event in events:
        t.add(event)  # type: ignore[arg-type]
    return t


def feed_all(splice: Splice, *events: Event) -> list[Event]:
    out: list[Event] = []
    for event in events:
        out.extend(splice.feed(event))  # type: ignore[arg-type]
    return out


def test_matching_text_is_held_back_whatever_the_chunking() -> None:
    splice = Splice(transcript(TextDelta(0, "Hel"), TextDelta(0, "lo wor")))
    out = feed_all(splice, TextDelta(0, "Hello"), TextDelta(0, " world"), TextDelta(0, " again"))
    assert out == [TextDelta(0, "ld"), TextDelta(0, " again")]
    splice.finish()


def test_a_tool_call_is_resumed_with_the_id_the_client_already_has() -> None:
    sent = transcript(TextDelta(0, "Let me check."), ToolCallStart(1, "call_A", "get_weather"),
                      ToolCallDelta(1, '{"city":'))
    splice = Splice(sent)
    out = feed_all(
        splice,
        TextDelta(0, "Let me "), TextDelta(0, "check."),
        ToolCallStart(1, "call_B", "get_weather"),
        ToolCallDelta(1, '{"ci'), ToolCallDelta(1, 'ty":"Paris"}'),
        ToolCallEnd(1),
        ToolCallStart(2, "call_C", "get_time"), ToolCallDelta(2, "{}"), ToolCallEnd(2),
    )
    assert out == [ToolCallDelta(1, '"Paris"}'), ToolCallEnd(1),
                   ToolCallStart(2, "call_C", "get_time"), ToolCallDelta(2, "{}"), ToolCallEnd(2)]
    splice.finish()


def test_a_closed_block_and_a_delivered_signature_are_not_sent_twice() -> None:
    sent = transcript(ReasoningDelta(0, "think"), ReasoningSignature(0, "sig"), TextDelta(1, "Ans"))
    splice = Splice(sent)
    out = feed_all(splice, ReasoningDelta(0, "think"), ReasoningSignature(0, "sig2"), TextDelta(1, "Answer"))
    assert out == [TextDelta(1, "wer")]


@pytest.mark.parametrize(
    ("regenerated", "why"),
    [
        ([TextDelta(0, "Hello there")], "differs"),
        ([TextDelta(0, "Hel"), ToolCallStart(1, "c", "f")], "block 1 began before block 0 was reproduced"),
        ([ReasoningDelta(0, "Hello world")], "is reasoning"),
    ],
)
def test_divergence_is_detected(regenerated: list[Event], why: str) -> None:
    splice = Splice(transcript(TextDelta(0, "Hello wor")))
    with pytest.raises(SpliceDiverged, match=why):
        feed_all(splice, *regenerated)


def test_a_different_tool_or_a_longer_closed_block_diverges() -> None:
    sent = transcript(TextDelta(0, "A"), ToolCallStart(1, "c1", "search"), ToolCallDelta(1, "{}"))
    with pytest.raises(SpliceDiverged, match="calls 'fetch'"):
        feed_all(Splice(sent), TextDelta(0, "A"), ToolCallStart(1, "c9", "fetch"))
    with pytest.raises(SpliceDiverged, match="longer than the client saw it"):
        feed_all(Splice(sent), TextDelta(0, "AB"))


def test_ending_before_reproducing_everything_diverges() -> None:
    splice = Splice(transcript(TextDelta(0, "Hello world")))
    feed_all(splice, TextDelta(0, "Hello"))
    with pytest.raises(SpliceDiverged, match="ended before"):
        splice.finish()


def test_progress_regeneration_forwards_only_the_remainder_with_its_own_usage() -> None:
    progress = Progress(transcript=Transcript())
    held: list[Event] = []
    first = progress.stitch([Start("r1", "m"), UsageUpdate(Usage(input_tokens=5)), TextDelta(0, "alpha "),
                             TextDelta(0, "beta ")], held)
    assert [type(e) for e in first] == [Start, UsageUpdate, TextDelta, TextDelta]
    assert progress.regeneration(REQUEST) is REQUEST
    again = progress.stitch([Start("r2", "m"), TextDelta(0, "alpha beta gamma "), Finish(FinishReason.STOP),
                             UsageUpdate(Usage(input_tokens=5, output_tokens=3))], held)
    assert again == [TextDelta(0, "gamma "), Finish(FinishReason.STOP),
                     UsageUpdate(Usage(input_tokens=5, output_tokens=3))]


def test_continuation_after_a_regeneration_builds_on_everything_delivered() -> None:
    progress = Progress(transcript=Transcript())
    held: list[Event] = []
    progress.stitch([TextDelta(0, "alpha ")], held)
    progress.regeneration(REQUEST)
    progress.stitch([TextDelta(0, "alpha beta ")], held)
    request = progress.continuation(REQUEST)
    assert request is not None and request.messages[-1] == Message(Role.ASSISTANT, (Text("alpha beta"),))
    assert progress.stitch([TextDelta(0, " gamma")], held) == [TextDelta(0, "gamma")]


def _long_text_events(chars: int) -> list[Event]:
    """Text deltas of 7 characters each (a token-sized delta), ``chars`` characters in all."""
    text = "".join(f"t{i % 100000:05d} " for i in range(chars // 7 + 1))[:chars]
    return [TextDelta(0, text[i : i + 7]) for i in range(0, chars, 7)]


def test_a_long_answer_within_the_cap_is_continued_with_every_character_in_order() -> None:
    """Many small deltas are joined into pieces as they come; the prefill must still be the exact text."""
    events = _long_text_events(PARTIAL_ANSWER_LIMIT - 100)
    progress = Progress(transcript=Transcript())
    progress.stitch([Start("r1", "m"), *events], [])
    assert progress.transcript is not None
    assert len(progress.transcript.blocks[0].chunks) < len(events) // 100  # joined, not one string per delta
    request = progress.continuation(REQUEST)
    expected = "".join(e.text for e in events if isinstance(e, TextDelta)).rstrip()
    assert request is not None and request.messages[-1] == Message(Role.ASSISTANT, (Text(expected),))


def test_an_answer_past_the_cap_is_neither_continued_nor_regenerated() -> None:
    """Past ``PARTIAL_ANSWER_LIMIT`` characters the transcript is dropped: a cut then ends with the original error
    (the engine finds no recovery request), and the rest of the stream still flows to the client unchanged."""
    events = _long_text_events(PARTIAL_ANSWER_LIMIT + 7)
    progress = Progress(transcript=Transcript())
    out = progress.stitch([Start("r1", "m"), *events], [])
    assert out[1:] == events
    assert progress.transcript is None
    assert progress.stitch([TextDelta(0, "more")], []) == [TextDelta(0, "more")]
    assert progress.continuation(REQUEST) is None
    assert progress.regeneration(REQUEST) is None


def test_a_raised_cap_keeps_a_longer_answer_recoverable() -> None:
    """``recover-max-chars`` sets the cap: an answer past the default is still continued when the cap is higher."""
    events = _long_text_events(PARTIAL_ANSWER_LIMIT * 2)
    progress = Progress(transcript=Transcript(), transcript_limit=PARTIAL_ANSWER_LIMIT * 3)
    progress.stitch([Start("r1", "m"), *events], [])
    request = progress.continuation(REQUEST)
    expected = "".join(e.text for e in events if isinstance(e, TextDelta)).rstrip()
    assert request is not None and request.messages[-1] == Message(Role.ASSISTANT, (Text(expected),))

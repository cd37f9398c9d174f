"""Turn an event stream into a complete :class:`Response` — the one way a stream becomes a non-stream answer.

Used by the engine when a client did not ask to stream but the provider streamed, and by tests to check that a
format's stream and non-stream answers agree. Adjacent deltas are joined in lists and concatenated once.

Pure: standard library and ``ir`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import assert_never

from muxtrio.errors import StreamTruncated
from muxtrio.ir.events import (
    Event,
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
from muxtrio.ir.request import Part, Reasoning, RedactedReasoning, Text, ToolCall
from muxtrio.ir.response import FinishReason, Response, Usage


@dataclass(slots=True)
class _Block:
    kind: str  # text | reasoning | redacted | tool
    chunks: list[str] = field(default_factory=list)
    signature: str | None = None
    call_id: str = ""
    name: str = ""

    def build(self) -> Part:
        joined = "".join(self.chunks)
        if self.kind == "text":
            return Text(joined)
        if self.kind == "reasoning":
            return Reasoning(joined, signature=self.signature)
        if self.kind == "redacted":
            return RedactedReasoning(joined)
        return ToolCall(id=self.call_id, name=self.name, arguments=joined, signature=self.signature)


class Accumulator:
    """Feed events one by one (``add``), then ``response()``. Also usable incrementally, e.g. to know the partial
    answer at the moment a stream broke (``partial_parts``)."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.usage = Usage()
        self.finish: Finish | None = None
        self._blocks: dict[int, _Block] = {}

    def _block(self, index: int, kind: str) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = _Block(kind)
        return block

    def add(self, event: Event) -> None:
        match event:
            case Start(id=id_, model=model):
                self.id, self.model = id_, model
            case TextDelta(index=i, text=text):
                self._block(i, "text").chunks.append(text)
            case ReasoningDelta(index=i, text=text):
                self._block(i, "reasoning").chunks.append(text)
            case ReasoningSignature(index=i, signature=sig):
                self._block(i, "reasoning").signature = sig
            case RedactedReasoningBlock(index=i, data=data):
                self._block(i, "redacted").chunks.append(data)
            case ToolCallStart(index=i, id=call_id, name=name, signature=sig):
                block = self._block(i, "tool")
                block.call_id, block.name, block.signature = call_id, name, sig
            case ToolCallDelta(index=i, arguments=args):
                self._block(i, "tool").chunks.append(args)
            case ToolCallEnd():
                pass
            case UsageUpdate(usage=usage):
                self.usage = self.usage.merge(usage)
            case Finish():
                self.finish = event
            case _:
                assert_never(event)

    def partial_parts(self) -> tuple[Part, ...]:
        return tuple(self._blocks[i].build() for i in sorted(self._blocks))

    def response(self, *, created: int = 0) -> Response:
        if self.finish is None:
            raise StreamTruncated("stream ended without a finish event")
        return Response(
            id=self.id,
            model=self.model,
            parts=self.partial_parts(),
            finish_reason=self.finish.reason,
            usage=self.usage,
            created=created,
            stop_sequence=self.finish.stop_sequence,
        )


def accumulate(events: Iterable[Event], *, created: int = 0) -> Response:
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return acc.response(created=created)


def response_events(response: Response) -> list[Event]:
    """The inverse of :func:`accumulate`: a response as the events a stream of it would carry."""
    events: list[Event] = [Start(response.id, response.model)]
    for i, part in enumerate(response.parts):
        match part:
            case Text(text=text):
                events.append(TextDelta(i, text))
            case Reasoning(text=text, signature=sig):
                events.append(ReasoningDelta(i, text))
                if sig is not None:
                    events.append(ReasoningSignature(i, sig))
            case RedactedReasoning(data=data):
                events.append(RedactedReasoningBlock(i, data))
            case ToolCall(id=call_id, name=name, arguments=args, signature=sig):
                events.append(ToolCallStart(i, call_id, name, sig))
                if args:
                    events.append(ToolCallDelta(i, args))
                events.append(ToolCallEnd(i))
            case _:
                # Images, files and tool results are input-only parts; an answer never carries them.
                pass
    events.append(UsageUpdate(response.usage))
    events.append(Finish(response.finish_reason, response.stop_sequence))
    return events


__all__ = ["Accumulator", "FinishReason", "accumulate", "response_events"]

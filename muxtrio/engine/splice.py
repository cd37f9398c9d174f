"""Stitching attempts into the client's one stream: what was delivered, continuations, and regeneration splices.

Pure bookkeeping (no IO, no clock): the engine feeds each attempt's IR events to :meth:`Progress.stitch` and sends
what it returns to the client.

- :class:`Transcript` records what the client received, in the client's block numbering: per block its kind, text
  (or tool arguments), tool name, and whether it was closed or signed. A block's deltas are joined every
  ``_JOIN_EVERY`` into one piece, so the transcript costs about a byte per ASCII character, not a string object
  per token. It stops (``Progress.transcript`` becomes None, its memory freed) beyond ``Progress.transcript_limit``
  characters (``recover-max-chars``, default 64 Ki: about 16K tokens), so one stream's working memory stays within
  the large-answer budget
  (issue 19: ≤ 256 KB for a 100K-token answer); an answer cut after that point is neither continued nor
  regenerated: the client's stream ends with the original error.
- A *continuation* asks a prefill-capable model to go on from the partial answer (text only), sent as a final
  assistant message; its first text block is merged into the last delivered block (block indices shifted), and the
  whitespace stripped from the prefill's end is dropped from the continuation's start if it repeats it.
- A *regeneration* sends the original request again to a model without prefill, and a :class:`Splice` matches its
  output against the transcript: everything the client already has must come back exactly (text, reasoning and
  tool-call argument deltas compared character for character, tool names equal; tool ids and signatures the client
  has are kept) and is held back; only what comes after is forwarded. Any difference — other text, a block of
  another kind, a block longer than the client saw it complete, an end before everything was reproduced — raises
  :class:`SpliceDiverged`, and the client's stream ends with the original error. The client never sees duplicated
  or contradictory content.

Invariants: ``Start`` is forwarded once; usage given to the client is that of the attempts that produced the answer
(the cut part plus a continuation; a regeneration's own usage, since it produced the whole answer); nothing reaches
the client before an attempt's first content (Start and usage are held back until then).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeAlias

from muxtrio.errors import ErrorKind, MuxError
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
from muxtrio.ir.request import Message, Request, Role, Text, Thinking
from muxtrio.ir.response import Usage

ContentEvent: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | ReasoningSignature
    | RedactedReasoningBlock
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
)

PARTIAL_ANSWER_LIMIT = 64 * 1024  # `recover-max-chars` default: past it a cut stream is not continued or regenerated
_JOIN_EVERY = 128  # a block's small deltas are joined into one piece this often (pieces of ~a few hundred chars)

TEXT, REASONING, REDACTED, TOOL = "text", "reasoning", "redacted", "tool"


class SpliceDiverged(MuxError):
    """A regeneration produced something other than what the client already received."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.UPSTREAM, f"regenerated answer diverged from the delivered one: {message}")


def _kind_of(event: ContentEvent) -> str:
    if isinstance(event, TextDelta):
        return TEXT
    if isinstance(event, ReasoningDelta | ReasoningSignature):
        return REASONING
    if isinstance(event, RedactedReasoningBlock):
        return REDACTED
    return TOOL


def _content_of(event: ContentEvent) -> str:
    if isinstance(event, TextDelta | ReasoningDelta):
        return event.text
    if isinstance(event, ToolCallDelta):
        return event.arguments
    if isinstance(event, RedactedReasoningBlock):
        return event.data
    return ""


@dataclass(slots=True)
class _Block:
    kind: str
    chunks: list[str] = field(default_factory=list)  # joined pieces, then the deltas since the last join
    joined: int = 0  # how many leading entries of ``chunks`` are joined pieces
    name: str = ""  # tool name
    closed: bool = False  # the client saw it end (ToolCallEnd, or a later block began)
    signed: bool = False  # the client got its reasoning signature

    def append(self, text: str) -> None:
        chunks = self.chunks
        chunks.append(text)
        if len(chunks) - self.joined >= _JOIN_EVERY:  # join only the recent deltas: linear, not quadratic
            chunks[self.joined :] = ["".join(chunks[self.joined :])]
            self.joined += 1

    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks[:] = ["".join(self.chunks)]
            self.joined = 1
        return self.chunks[0] if self.chunks else ""


class Transcript:
    """The content the client received, block by block (client numbering)."""

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.chars = 0

    def add(self, event: ContentEvent) -> int:
        """Record a forwarded content event; returns the characters it added."""
        index = event.index
        if type(event) is TextDelta and index == len(self.blocks) - 1:  # the hot path: more text for the open block
            text = event.text
            self.blocks[index].append(text)
            self.chars += len(text)
            return len(text)
        while len(self.blocks) <= index:
            if self.blocks:
                self.blocks[-1].closed = True
            self.blocks.append(_Block(_kind_of(event)))
        block = self.blocks[index]
        if isinstance(event, ToolCallStart):
            block.name = event.name
        elif isinstance(event, ToolCallEnd):
            block.closed = True
        elif isinstance(event, ReasoningSignature):
            block.signed = True
        else:
            content = _content_of(event)
            block.append(content)
            self.chars += len(content)
            return len(content)
        return 0

    def text_only(self) -> bool:
        return bool(self.blocks) and all(b.kind == TEXT for b in self.blocks)


class Splice:
    """Matches a regeneration's events (same block numbering as the client's, since it answers the same request)
    against a transcript; :meth:`feed` returns what to forward, :meth:`finish` checks nothing was left out."""

    def __init__(self, transcript: Transcript) -> None:
        self._blocks = [(b.kind, b.text(), b.name, b.closed, b.signed) for b in transcript.blocks]
        self._matched = [0] * len(self._blocks)
        self._cursor = 0
        self._through = not self._blocks  # past everything the client has: forward as is

    def _complete(self, index: int) -> bool:
        return self._matched[index] == len(self._blocks[index][1])

    def _all_reproduced(self) -> bool:
        return all(self._complete(i) for i in range(len(self._blocks)))

    def feed(self, event: ContentEvent) -> list[ContentEvent]:
        if self._through:
            return [event]
        index = event.index
        last = len(self._blocks) - 1
        if index > last:
            if not self._all_reproduced():
                raise SpliceDiverged(f"block {index} began before block {self._cursor} was reproduced")
            self._through = True
            return [event]
        if index < self._cursor:
            raise SpliceDiverged(f"block {index} came back after block {self._cursor}")
        if index > self._cursor:
            if not self._complete(self._cursor):
                raise SpliceDiverged(f"block {self._cursor} ended shorter than delivered")
            self._cursor = index
        kind, text, name, closed, signed = self._blocks[index]
        if _kind_of(event) != kind:
            raise SpliceDiverged(f"block {index} is {_kind_of(event)}, the client got {kind}")
        if isinstance(event, ToolCallStart):
            if event.name != name:
                raise SpliceDiverged(f"block {index} calls {event.name!r}, the client got {name!r}")
            return []
        if isinstance(event, ToolCallEnd | ReasoningSignature):
            if not self._complete(index):
                raise SpliceDiverged(f"block {index} ended shorter than delivered")
            already = closed if isinstance(event, ToolCallEnd) else signed
            return [] if already or index < last else [event]
        if isinstance(event, RedactedReasoningBlock):
            if event.data != text:
                raise SpliceDiverged(f"redacted block {index} differs")
            self._matched[index] = len(text)
            return []
        content = _content_of(event)
        done = self._matched[index]
        overlap = min(len(content), len(text) - done)
        if content[:overlap] != text[done : done + overlap]:
            raise SpliceDiverged(f"block {index} differs at character {done}")
        self._matched[index] = done + overlap
        rest = content[overlap:]
        if not rest:
            return []
        if closed or index < last:
            raise SpliceDiverged(f"block {index} is longer than the client saw it")
        if isinstance(event, ToolCallDelta):
            return [ToolCallDelta(index, rest)]
        if isinstance(event, ReasoningDelta):
            return [ReasoningDelta(index, rest)]
        return [TextDelta(index, rest)]

    def finish(self) -> None:
        if not self._through and not self._all_reproduced():
            raise SpliceDiverged("it ended before reproducing what the client already has")


@dataclass(slots=True)
class Progress:
    """What one streaming request has delivered so far, across attempts, and how the current attempt's events map
    onto the client's stream."""

    started: bool = False  # a Start event has been forwarded
    emitted: bool = False  # content reached the consumer
    delivered: bool = False  # a first batch was handed to the consumer
    finished: bool = False
    offset: int = 0  # index shift applied to the current attempt's blocks (continuation)
    merge_first_text: bool = False  # the continuation's first text block extends the last partial block
    strip_prefix: str = ""  # whitespace removed from the prefill end, to drop from the continuation's start
    prior_usage: Usage = field(default_factory=Usage)
    attempt_usage: Usage = field(default_factory=Usage)
    attempt_chars: int = 0  # content characters the current attempt added to the client's stream
    transcript: Transcript | None = None  # what the client has, while a recovery stays possible
    transcript_limit: int = PARTIAL_ANSWER_LIMIT  # characters recorded at most (`recover-max-chars`)
    splice: Splice | None = None  # set while the current attempt is a regeneration

    def stitch(self, events: list[Event], held: list[Event]) -> list[Event]:
        """Rewrite an attempt's events into the client's single stream: one Start, block indices shifted after a
        continuation, a regeneration's repeat held back, usage summed over the attempts that produced the answer,
        content held back until the attempt proves it produces some. Raises :class:`SpliceDiverged`."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, Start):
                if not self.started:
                    held.append(event)
                continue
            if isinstance(event, UsageUpdate):
                self.attempt_usage = self.attempt_usage.merge(event.usage)
                event = UsageUpdate(self.prior_usage + self.attempt_usage)
                (out if self.emitted else held).append(event)
                continue
            if isinstance(event, Finish):
                if self.splice is not None:
                    self.splice.finish()
                self.finished = True
            elif self.splice is not None or self.offset or self.merge_first_text:
                for mapped in self._map(event):
                    self._record(mapped)
                    self._emit(mapped, out, held)
                continue
            elif self.transcript is not None:
                self._record(event)
            if self.emitted:
                out.append(event)
            else:
                self._emit(event, out, held)
        return out

    def _record(self, event: ContentEvent) -> None:
        transcript = self.transcript
        if transcript is not None:
            self.attempt_chars += transcript.add(event)
            if transcript.chars > self.transcript_limit:
                self.transcript = None  # too long to resend or to match: a cut will end with an error

    def _emit(self, event: Event, out: list[Event], held: list[Event]) -> None:
        if not self.emitted:
            self.emitted = True
            self.started = True
            out.extend(held)
            held.clear()
        out.append(event)

    def _map(self, event: ContentEvent) -> list[ContentEvent]:
        if self.splice is not None:
            return self.splice.feed(event)
        index = event.index
        if self.merge_first_text and index == 0 and isinstance(event, TextDelta):
            text = event.text
            if self.strip_prefix and text.startswith(self.strip_prefix):
                text = text[len(self.strip_prefix) :]
            self.strip_prefix = ""
            return [TextDelta(self.offset, text)]
        shift = self.offset + (1 if self.merge_first_text else 0)
        return [replace(event, index=index + shift)]

    def continuation(self, request: Request) -> Request | None:
        """The request that asks a prefill-capable model to continue the partial answer (None when the partial
        answer is not plain text)."""
        if self.transcript is None or not self.transcript.text_only():
            return None
        blocks = self.transcript.blocks
        text = "".join(b.text() for b in blocks)
        stripped = text.rstrip()
        self.strip_prefix = text[len(stripped) :]
        self.offset = len(blocks) - 1
        self.merge_first_text = True
        self.splice = None
        self._close_attempt()
        prefill = Message(Role.ASSISTANT, (Text(stripped),))
        # Thinking is off for the continuation: providers do not accept a prefill after which they would think.
        return replace(request, messages=(*request.messages, prefill), thinking=Thinking(enabled=False))

    def regeneration(self, request: Request) -> Request | None:
        """The original request, to regenerate on a model without prefill and splice (None when nothing of the
        delivered answer is known any more)."""
        if self.transcript is None:
            return None
        self.splice = Splice(self.transcript)
        self.offset = 0
        self.merge_first_text = False
        self.strip_prefix = ""
        self._close_attempt()
        self.prior_usage = Usage()  # the regeneration produces the whole answer, and reports its whole usage
        return request

    def _close_attempt(self) -> None:
        """Before a recovery attempt: the usage of the attempt that last added content joins the answer's."""
        if self.attempt_chars:
            self.prior_usage = self.prior_usage + _usage_or_estimate(self.attempt_usage, self.attempt_chars)
        self.attempt_usage = Usage()
        self.attempt_chars = 0


def _usage_or_estimate(usage: Usage, chars: int) -> Usage:
    if usage.output_tokens:
        return usage
    return replace(usage, output_tokens=max(1, chars // 4))

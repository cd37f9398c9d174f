"""IR stream events: what a provider stream decodes into and a client stream encodes from.

Ordering contract (decoders guarantee it, encoders rely on it):
- ``Start`` comes first, once.
- Content events carry ``index``: the position of their part in the answer's ``parts``. Indices are assigned in order
  of first appearance (0, 1, 2, ...) and blocks never interleave: once block ``i + 1`` has started, block ``i`` gets no
  more events. A decoder whose provider interleaves (OpenAI parallel tool-call deltas can) buffers to keep this.
- ``ToolCallStart`` precedes the ``ToolCallDelta``s of its index; ``ToolCallEnd`` closes it (encoders also close any
  open block when a new index starts or the stream finishes).
- ``UsageUpdate`` may come at any time, also after ``Finish``; its counters are cumulative (merge with field-wise max).
- ``Finish`` comes once, after all content. A stream that ends without ``Finish`` is truncated: the decoder's
  ``flush()`` raises, and the engine never calls an encoder's ``finish()`` for it.
- Errors are exceptions (``MuxError``), never events, so a ``match`` over events has no error case and a cut stream
  cannot be mistaken for a finished one.

Pure: standard library and ``ir`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from muxtrio.ir.response import FinishReason, Usage


@dataclass(frozen=True, slots=True)
class Start:
    id: str
    model: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningSignature:
    """The opaque signature of reasoning block ``index`` (usually its last event)."""

    index: int
    signature: str


@dataclass(frozen=True, slots=True)
class RedactedReasoningBlock:
    """A whole redacted-thinking block (opaque ``data``)."""

    index: int
    data: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    index: int


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None


Event: TypeAlias = (
    Start
    | TextDelta
    | ReasoningDelta
    | ReasoningSignature
    | RedactedReasoningBlock
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
    | UsageUpdate
    | Finish
)

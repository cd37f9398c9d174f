"""The signed-thinking cache: re-attaches a provider's signed reasoning to a later turn whose client dropped it.

Why: extended thinking with tools needs the signed thinking block that preceded a tool call to come back with the
call in the next turn (Anthropic refuses a tool loop with thinking on otherwise, and the gateway then turns thinking
off). Some clients hide thoughts from their history (Gemini CLI), so the block is lost on the client side even though
this gateway saw it. The engine remembers, per answer that made tool calls, the signed reasoning that preceded them,
keyed by the first call's id; when a later request's assistant turn holds those calls without any reasoning, the
blocks are put back in front of the calls — only toward a provider of the format that signed them.

Invariants:
- Bounded: at most ``max_entries`` answers and ``max_bytes`` of reasoning text, signatures and call data; the least
  recently used entries go first; an entry larger than ``max_bytes`` is not kept. Entries expire after ``ttl``
  seconds. ``max_entries == 0`` disables the cache.
- An entry is used only when the assistant turn's calls are exactly the remembered ones (same ids, same names, same
  order) and the turn carries no reasoning of its own: a client that kept its thinking is never changed.
- Only signed data is kept (reasoning with a signature, redacted reasoning): unsigned thoughts are useless to a
  provider. Never logged. Policy code takes ``now`` as an argument (tested without sleeping).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from muxtrio.ir.events import Event, ReasoningDelta, ReasoningSignature, RedactedReasoningBlock, ToolCallStart
from muxtrio.ir.request import Message, Part, Reasoning, RedactedReasoning, Request, Role, ToolCall

Signed = Reasoning | RedactedReasoning


@dataclass(frozen=True, slots=True)
class _Entry:
    format: str
    reasoning: tuple[Signed, ...]
    calls: tuple[tuple[str, str], ...]  # (id, name) of the calls the reasoning preceded, in order
    size: int
    expires: float


def _signed(part: Part) -> bool:
    return isinstance(part, RedactedReasoning) or (isinstance(part, Reasoning) and bool(part.signature))


def _size(reasoning: Iterable[Signed], calls: Iterable[tuple[str, str]]) -> int:
    total = 0
    for part in reasoning:
        if isinstance(part, Reasoning):
            total += len(part.text) + len(part.signature or "") + len(part.id or "")
        else:
            total += len(part.data)
    return total + sum(len(a) + len(b) for a, b in calls)


class ThinkingCache:
    """See the module docstring. ``remember`` after an answer, ``restore`` before a request goes out."""

    def __init__(self, max_entries: int, max_bytes: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def remember(self, fmt: str, parts: Sequence[Part], now: float) -> None:
        """Keep the signed reasoning that precedes the tool calls of an answer (``parts`` in answer order)."""
        if not self.enabled:
            return
        reasoning: list[Signed] = []
        calls: list[tuple[str, str]] = []
        for part in parts:
            if isinstance(part, ToolCall):
                calls.append((part.id, part.name))
            elif not calls and _signed(part):
                assert isinstance(part, Reasoning | RedactedReasoning)
                reasoning.append(part)
        if not reasoning or not calls:
            return
        size = _size(reasoning, calls)
        if size > self.max_bytes:
            return
        self._expire(now)
        key = calls[0][0]
        self._drop(key)
        self._entries[key] = _Entry(fmt, tuple(reasoning), tuple(calls), size, now + self.ttl)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def restore(self, request: Request, fmt: str, now: float) -> tuple[Request, int]:
        """``request`` with remembered reasoning put back before the calls of each assistant turn that lost it
        (toward a provider of format ``fmt`` only), and how many turns were repaired."""
        if not self._entries:
            return request, 0
        self._expire(now)
        messages: list[Message] | None = None
        repaired = 0
        for i, message in enumerate(request.messages):
            if message.role is not Role.ASSISTANT:
                continue
            calls = [(p.id, p.name) for p in message.parts if isinstance(p, ToolCall)]
            if not calls or any(isinstance(p, Reasoning | RedactedReasoning) for p in message.parts):
                continue
            entry = self._entries.get(calls[0][0])
            if entry is None or entry.format != fmt or entry.calls != tuple(calls):
                continue
            self._entries.move_to_end(calls[0][0])
            first_call = next(j for j, p in enumerate(message.parts) if isinstance(p, ToolCall))
            parts = (*message.parts[:first_call], *entry.reasoning, *message.parts[first_call:])
            if messages is None:
                messages = list(request.messages)
            messages[i] = replace(message, parts=parts)
            repaired += 1
        if messages is None:
            return request, 0
        return replace(request, messages=tuple(messages)), repaired

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def _expire(self, now: float) -> None:
        expired = [key for key, entry in self._entries.items() if entry.expires <= now]
        for key in expired:
            self._drop(key)


class AnswerTracker:
    """Collects, from one attempt's stream events, the parts the cache needs: signed reasoning blocks and the tool
    calls after them. Stops collecting once its text passes ``limit`` bytes (such an entry would not be kept)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._texts: dict[int, list[str]] = {}
        self._signatures: dict[int, str] = {}
        self._parts: dict[int, Part] = {}
        self.overflow = False

    def add(self, events: Iterable[Event]) -> None:
        if self.overflow:
            return
        for event in events:
            match event:
                case ReasoningDelta(index=index, text=text):
                    self._texts.setdefault(index, []).append(text)
                    self._size += len(text)
                case ReasoningSignature(index=index, signature=signature):
                    self._signatures[index] = signature
                    self._size += len(signature)
                case RedactedReasoningBlock(index=index, data=data):
                    self._parts[index] = RedactedReasoning(data)
                    self._size += len(data)
                case ToolCallStart(index=index, id=call_id, name=name):
                    self._parts[index] = ToolCall(call_id, name, "")
                case _:
                    pass
            if self._size > self._limit:
                self.overflow = True
                return

    def parts(self) -> list[Part]:
        if self.overflow:
            return []
        parts = dict(self._parts)
        for index, signature in self._signatures.items():
            parts[index] = Reasoning("".join(self._texts.get(index, ())), signature=signature)
        return [parts[i] for i in sorted(parts)]

"""The IR response (a complete, non-streamed answer), its usage and finish reasons.

Usage semantics (every codec converts to and from these):
- ``input_tokens`` is the whole prompt, *including* cache reads and cache writes (OpenAI's ``prompt_tokens``).
  Anthropic reports ``input_tokens`` without the cached parts; its codec adds/subtracts ``cache_*``.
- ``output_tokens`` is the whole completion, *including* reasoning (OpenAI's ``completion_tokens``). Gemini reports
  ``candidatesTokenCount`` without ``thoughtsTokenCount``; its codec adds/subtracts.
- Counters are cumulative: merging two snapshots takes the field-wise maximum (:meth:`Usage.merge`).

Pure: standard library and ``ir`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from muxtrio.ir.request import Part


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    STOP_SEQUENCE = "stop_sequence"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def merge(self, other: Usage) -> Usage:
        """Field-wise maximum: usage snapshots are cumulative, and providers repeat or refine them."""
        return Usage(
            input_tokens=max(self.input_tokens, other.input_tokens),
            output_tokens=max(self.output_tokens, other.output_tokens),
            reasoning_tokens=max(self.reasoning_tokens, other.reasoning_tokens),
            cache_read_tokens=max(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=max(self.cache_write_tokens, other.cache_write_tokens),
        )

    def __add__(self, other: Usage) -> Usage:
        """Sum of two *separate* attempts' usage (mid-stream continuation bills both parts of the answer)."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """A complete assistant answer. ``parts`` are in output order (reasoning, text, tool calls, ...)."""

    id: str
    model: str
    parts: tuple[Part, ...]
    finish_reason: FinishReason
    usage: Usage = Usage()
    created: int = 0
    stop_sequence: str | None = None

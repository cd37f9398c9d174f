"""The signed-thinking cache (engine/thinking_cache.py): what it keeps, when it restores, and its bounds."""

from __future__ import annotations

from muxtrio.engine.thinking_cache import AnswerTracker, ThinkingCache
from muxtrio.ir.events import ReasoningDelta, ReasoningSignature, RedactedReasoningBlock, TextDelta, ToolCallStart
from muxtrio.ir.request import Message, Reasoning, RedactedReasoning, Request, Role, Text, ToolCall, ToolResult

SIGNED = Reasoning("I should call the tool.", signature="sig-1")
CALL = ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')


def _turn(*assistant_parts: object) -> Request:
    return Request(
        model="m",
        messages=(
            Message(Role.USER, (Text("weather?"),)),
            Message(Role.ASSISTANT, tuple(assistant_parts)),  # type: ignore[arg-type]
            Message(Role.TOOL, (ToolResult("toolu_1", (Text("sunny"),), name="get_weather"),)),
        ),
    )


def _cache(entries: int = 8, size: int = 1 << 20, ttl: float = 60.0) -> ThinkingCache:
    return ThinkingCache(entries, size, ttl)


def test_restores_signed_thinking_before_the_calls_it_preceded() -> None:
    cache = _cache()
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    request, repaired = cache.restore(_turn(Text("Let me check."), CALL), "anthropic", now=1.0)
    assert repaired == 1
    assert request.messages[1].parts == (Text("Let me check."), SIGNED, CALL)


def test_only_toward_the_format_that_signed_it() -> None:
    cache = _cache()
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    request = _turn(CALL)
    assert cache.restore(request, "gemini", now=1.0) == (request, 0)


def test_a_turn_that_kept_its_thinking_is_left_alone() -> None:
    cache = _cache()
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    own = Reasoning("mine", signature="sig-own")
    request = _turn(own, CALL)
    assert cache.restore(request, "anthropic", now=1.0) == (request, 0)


def test_calls_must_match_exactly() -> None:
    cache = _cache()
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    other_name = _turn(ToolCall("toolu_1", "get_time", "{}"))
    extra_call = _turn(CALL, ToolCall("toolu_2", "get_weather", "{}"))
    assert cache.restore(other_name, "anthropic", now=1.0)[1] == 0
    assert cache.restore(extra_call, "anthropic", now=1.0)[1] == 0


def test_unsigned_reasoning_and_answers_without_calls_are_not_kept() -> None:
    cache = _cache()
    cache.remember("anthropic", [Reasoning("unsigned"), CALL], now=0.0)
    cache.remember("anthropic", [SIGNED, Text("no call")], now=0.0)
    assert len(cache) == 0


def test_redacted_thinking_is_kept_too() -> None:
    cache = _cache()
    cache.remember("anthropic", [RedactedReasoning("opaque"), SIGNED, CALL], now=0.0)
    request, _ = cache.restore(_turn(CALL), "anthropic", now=1.0)
    assert request.messages[1].parts == (RedactedReasoning("opaque"), SIGNED, CALL)


def test_entries_expire_after_the_ttl() -> None:
    cache = _cache(ttl=10.0)
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    assert cache.restore(_turn(CALL), "anthropic", now=10.0)[1] == 0
    assert len(cache) == 0


def test_bounded_by_entries_least_recently_used_first() -> None:
    cache = _cache(entries=2)
    for n in range(3):
        cache.remember("anthropic", [SIGNED, ToolCall(f"toolu_{n}", "f", "{}")], now=0.0)
    assert len(cache) == 2
    evicted = Request("m", (Message(Role.ASSISTANT, (ToolCall("toolu_0", "f", "{}"),)),))
    kept = Request("m", (Message(Role.ASSISTANT, (ToolCall("toolu_2", "f", "{}"),)),))
    assert cache.restore(evicted, "anthropic", now=1.0)[1] == 0
    assert cache.restore(kept, "anthropic", now=1.0)[1] == 1


def test_bounded_by_bytes() -> None:
    big = Reasoning("x" * 600, signature="s")
    cache = _cache(size=1000)
    cache.remember("anthropic", [big, ToolCall("toolu_a", "f", "{}")], now=0.0)
    cache.remember("anthropic", [big, ToolCall("toolu_b", "f", "{}")], now=0.0)
    assert len(cache) == 1 and cache.bytes <= 1000
    cache.remember("anthropic", [Reasoning("y" * 2000, signature="s"), ToolCall("toolu_c", "f", "{}")], now=0.0)
    assert len(cache) == 1  # larger than the whole cache: not kept, nothing else evicted for it


def test_disabled_with_zero_entries() -> None:
    cache = _cache(entries=0)
    cache.remember("anthropic", [SIGNED, CALL], now=0.0)
    assert len(cache) == 0 and not cache.enabled


def test_tracker_rebuilds_the_parts_from_stream_events() -> None:
    tracker = AnswerTracker(limit=1 << 20)
    tracker.add([
        ReasoningDelta(0, "I should "), ReasoningDelta(0, "call the tool."), ReasoningSignature(0, "sig-1"),
        RedactedReasoningBlock(1, "opaque"), TextDelta(2, "ok"), ToolCallStart(3, "toolu_1", "get_weather"),
    ])
    assert tracker.parts() == [SIGNED, RedactedReasoning("opaque"), ToolCall("toolu_1", "get_weather", "")]


def test_tracker_gives_up_past_its_limit() -> None:
    tracker = AnswerTracker(limit=10)
    tracker.add([ReasoningDelta(0, "x" * 11), ReasoningSignature(0, "s"), ToolCallStart(1, "toolu_1", "f")])
    assert tracker.parts() == []

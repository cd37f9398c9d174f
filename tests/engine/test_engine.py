"""The engine end to end against an in-process fault-injecting provider, under trio's autojump clock.

Each test asserts what the consumer got (a complete answer, or a clean error — never a truncated success) and what
the provider saw (attempts, their spacing, closed connections).
"""

from __future__ import annotations

import itertools
from dataclasses import replace as attrs_replace

import pytest
import trio
import trio.testing

from muxtrio.config import (
    Config,
    Credential,
    ModelConfig,
    ModelRuleConfig,
    PartialTimeouts,
    PayloadMatch,
    PayloadRuleConfig,
    ProviderConfig,
    ProviderType,
    Timeouts,
)
from muxtrio.engine.engine import Engine
from muxtrio.errors import ErrorKind, MuxError, UpstreamTimeout
from muxtrio.ir import Finish, FinishReason, Message, Request, Role, Start, Text, TextDelta, UsageUpdate, accumulate
from muxtrio.ir.request import Sampling
from tests.engine.fault_provider import WORDS, FaultProvider

FULL = "".join(WORDS[i % len(WORDS)] for i in range(6))


def provider(name: str, models: dict[str, str], keys: int = 1, prefill: bool | None = None) -> ProviderConfig:
    return ProviderConfig(
        type=ProviderType.OPENAI,
        name=name,
        base_url=f"http://{name}.test/v1",
        credentials=tuple(Credential(f"sk-{name}-{i}-secret") for i in range(keys)),
        models=tuple(ModelConfig(name=upstream, alias=alias, prefill=prefill) for alias, upstream in models.items()),
    )


def config(*providers: ProviderConfig, **kw: object) -> Config:
    base: dict[str, object] = {
        "providers": providers,
        "echo_model": False,
        "request_retry": 2,
        "max_retry_interval": 10.0,
        "timeouts": Timeouts(connect=5, first_byte=30, idle=10),
    }
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def ask(model: str, stream: bool = True) -> Request:
    return Request(model=model, messages=(Message(Role.USER, (Text("hi"),)),), stream=stream)


async def collect(engine: Engine, request: Request) -> list[object]:
    async with engine.stream(request) as events:
        return [event async for event in events]


def text_of(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_stream_ok(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "ok"})), transports={"p": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert isinstance(events[0], Start)
    assert text_of(events) == FULL
    assert [e for e in events if isinstance(e, Finish)] == [Finish(FinishReason.STOP)]
    response = accumulate(events)  # type: ignore[arg-type]
    assert response.usage.output_tokens == 6 and response.usage.input_tokens == 5
    assert len(fake.seen) == 1 and fake.seen[0].body["stream"] is True


async def test_complete_ok(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "ok"})), transports={"p": fake}) as engine:
        response = await engine.complete(ask("m", stream=False))
    assert response.parts == (Text(FULL),) and response.finish_reason is FinishReason.STOP
    assert fake.seen[0].body.get("stream") in (None, False)


async def test_429_with_retry_after_moves_to_the_next_key_and_cools_the_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "429-ra20"}), provider("b", {"m": "ok"}))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        events = await collect(engine, ask("m"))
        assert text_of(events) == FULL
        pool = engine.pools["a"]
        assert pool.credentials[0].cooling_until("429-ra20", trio.current_time()) > 0
        # While cooling, the next request does not touch the cooled key at all.
        await collect(engine, ask("m"))
    assert len(fake.requests_for("429-ra20")) == 1
    assert len(fake.requests_for("ok")) == 2


async def test_429_everywhere_waits_for_the_hint_then_succeeds_or_gives_429(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "429-ra5"}), request_retry=1)
    async with Engine(cfg, transports={"a": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
    assert info.value.kind is ErrorKind.RATE_LIMIT and info.value.status == 429
    times = [s.time for s in fake.seen]
    assert len(times) == 2 and times[1] - times[0] >= 5.0  # the Retry-After was honoured, not hammered


async def test_500_once_is_retried_after_a_backoff(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "500-once"})), transports={"p": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert text_of(events) == FULL
    times = [s.time for s in fake.seen]
    assert len(times) == 2 and times[1] > times[0]


async def test_persistent_503_is_bounded_and_spaced(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "503"}), request_retry=3), transports={"p": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
    assert info.value.status in (502, 503)
    times = [s.time for s in fake.seen]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap > 0 for gap in gaps) and gaps[-1] >= gaps[0]


async def test_reset_before_headers_fails_over_to_the_next_key(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "reset"}), provider("b", {"m": "ok"}))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert text_of(events) == FULL


async def test_silent_provider_hits_the_first_byte_timeout(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("p", {"m": "silent"}), request_retry=0)
    async with Engine(cfg, transports={"p": fake}) as engine:
        start = trio.current_time()
        with pytest.raises(UpstreamTimeout) as info:
            await collect(engine, ask("m"))
    assert info.value.phase == "first_byte"
    assert trio.current_time() - start == pytest.approx(30.0)


async def test_slow_first_token_within_the_timeout_is_fine(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "slow20"})), transports={"p": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert text_of(events) == FULL and len(fake.seen) == 1


async def test_stall_mid_stream_is_an_idle_timeout_never_a_finish(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    got: list[object] = []
    async with Engine(config(provider("p", {"m": "stall2"})), transports={"p": fake}) as engine:
        with pytest.raises(UpstreamTimeout) as info:
            async with engine.stream(ask("m")) as events:
                async for event in events:
                    got.append(event)
    assert info.value.phase == "idle"
    assert text_of(got) == "alpha beta "
    assert not any(isinstance(e, Finish) for e in got)


@pytest.mark.parametrize("fault", ["cut3", "malformed3", "noterm3"])
async def test_cut_stream_without_prefill_candidate_ends_with_an_error(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FaultProvider()
    got: list[object] = []
    cfg = config(provider("a", {"m": fault}, prefill=False), provider("b", {"m": "ok"}, prefill=False),
                 regenerate_on_cut=False)
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        with pytest.raises(MuxError):
            async with engine.stream(ask("m")) as events:
                async for event in events:
                    got.append(event)
    assert text_of(got) == "alpha beta gamma "
    assert not any(isinstance(e, Finish) for e in got)
    assert fake.requests_for("ok") == []  # nothing else could continue it, so nothing else was asked


@pytest.mark.parametrize("fault", ["cut3", "malformed3", "noterm3", "stall3"])
async def test_cut_stream_is_continued_on_a_prefill_candidate(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": fault}, prefill=True), provider("b", {"m": "ok"}, prefill=True))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert text_of(events) == FULL
    assert sum(isinstance(e, Start) for e in events) == 1
    assert [e for e in events if isinstance(e, Finish)] == [Finish(FinishReason.STOP)]
    assert {e.index for e in events if isinstance(e, TextDelta)} == {0}  # one text block, stitched
    continuation = fake.requests_for("ok")[0].body["messages"]
    assert continuation[-1] == {"role": "assistant", "content": "alpha beta gamma"}
    usage = [e for e in events if isinstance(e, UsageUpdate)][-1].usage
    # 4 estimated for the cut part (17 characters / 4; it never reported usage) + 3 reported by the continuation
    assert usage.output_tokens == 7


async def test_failed_continuation_reports_the_original_error(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "cut3"}, prefill=True), provider("b", {"m": "filter"}, prefill=True))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
    assert info.value.kind is ErrorKind.UPSTREAM  # the cut, not the continuation's 400


async def test_context_length_goes_to_the_fallback_without_retry(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("p", {"small": "ctx", "large": "ok"}), fallbacks={"small": ("large",)})
    async with Engine(cfg, transports={"p": fake}) as engine:
        events = await collect(engine, ask("small"))
    assert text_of(events) == FULL
    assert len(fake.requests_for("ctx")) == 1


async def test_content_filter_is_never_retried(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "filter"}, keys=3), fallbacks={"m": ("m2",)})
    async with Engine(cfg, transports={"a": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
    assert info.value.status == 400 and "content" in info.value.message
    assert len(fake.seen) == 1


async def test_primary_down_then_recovered_is_used_again(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(
        provider("primary", {"m": "down2"}),
        provider("backup", {"m2": "ok"}),
        fallbacks={"m": ("m2",)},
        request_retry=0,
        breaker_failures=2,
        breaker_open_seconds=30.0,
    )
    async with Engine(cfg, transports={"primary": fake, "backup": fake}) as engine:
        for _ in range(4):
            assert text_of(await collect(engine, ask("m"))) == FULL  # served by the fallback meanwhile
        assert len(fake.requests_for("down2")) == 2  # the breaker opened after two failures: no burst
        await trio.sleep(31)
        served = [await collect(engine, ask("m")) for _ in range(6)]
    assert all(text_of(s) == FULL for s in served)
    assert len(fake.requests_for("down2")) == 2 + 6
    assert fake.seen[-1].model == "down2"  # back on the primary once it recovered


async def test_slow_consumer_bounds_memory_and_backpressures_the_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FaultProvider()
    cfg = config(provider("p", {"m": "big4096"}), stream_buffer_bytes=4096)
    async with Engine(cfg, transports={"p": fake}) as engine, engine.stream(ask("m")) as events:
        first = await events.next_batch()
        assert first
        await trio.sleep(4)  # the consumer stalls (for less than the idle timeout, 10 s); the reader must stop
        stats = events.pool.statistics()
        sent_while_stalled = fake.seen[0].sent_tokens
        await trio.sleep(4)
        assert fake.seen[0].sent_tokens == sent_while_stalled  # the provider is not being read
        assert stats.in_use <= stats.capacity and stats.waits >= 1
        assert sent_while_stalled < 16 * 1024  # far less than the 4 MB the provider wants to send
        total = len(first)
        while (batch := await events.next_batch()) is not None:
            total += len(batch)
            assert events.pool.statistics().peak <= events.pool.capacity
    assert fake.seen[0].sent_tokens == 4096 * 1024 // 6  # resumed and completed


async def test_leaving_the_stream_closes_the_upstream_response(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider(tokens=1000, pace=0.01)
    async with Engine(config(provider("p", {"m": "ok"})), transports={"p": fake}) as engine:
        async with engine.stream(ask("m")) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break
        with trio.fail_after(1):
            await fake.seen[0].closed.wait()
        assert fake.seen[0].sent_tokens < 1000


async def test_cancelling_a_non_stream_request_closes_the_upstream(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "silent"})), transports={"p": fake}) as engine:
        with trio.move_on_after(3):
            await engine.complete(ask("m", stream=False))
        assert len(fake.seen) == 1
        assert engine.pools["p"].credentials[0].in_flight == 0


async def test_total_timeout_per_model(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider(tokens=100, pace=1.0)
    p = provider("p", {"m": "ok"})
    p = ProviderConfig(
        type=p.type, name=p.name, base_url=p.base_url, credentials=p.credentials,
        models=(ModelConfig(name="ok", alias="m", timeouts=PartialTimeouts(total=20.0)),),
    )
    async with Engine(config(p, request_retry=0), transports={"p": fake}) as engine:
        with pytest.raises(UpstreamTimeout) as info:
            await collect(engine, ask("m"))
    assert info.value.phase == "total"


async def test_unknown_model_is_a_404(autojump_clock: trio.testing.MockClock) -> None:
    async with Engine(config(provider("p", {"m": "ok"}))) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("nope"))
    assert info.value.status == 404


async def test_forcing_a_provider_by_name(autojump_clock: trio.testing.MockClock) -> None:
    fake_a, fake_b = FaultProvider(), FaultProvider()
    cfg = config(provider("a", {"m": "ok"}), provider("b", {"m": "ok"}))
    async with Engine(cfg, transports={"a": fake_a, "b": fake_b}) as engine:
        await collect(engine, ask("b/m"))
        await collect(engine, ask("b://m"))
    assert len(fake_b.seen) == 2 and fake_a.seen == []


async def test_keys_never_appear_in_statistics(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "429"}, keys=2)), transports={"p": fake}) as engine:
        with pytest.raises(MuxError):
            await collect(engine, ask("m"))
        assert "secret" not in repr(engine.statistics())


async def test_rejected_foreign_signatures_are_dropped_and_retried_once(autojump_clock: trio.testing.MockClock) -> None:
    from muxtrio.ir import Reasoning, ToolCall

    history = (
        Message(Role.USER, (Text("hi"),)),
        Message(Role.ASSISTANT, (Reasoning("hmm", signature="sig-from-another-provider"), Text("hello"))),
        Message(Role.USER, (Text("again"),)),
    )
    fake = FaultProvider()
    async with Engine(config(provider("p", {"m": "sig"})), transports={"p": fake}) as engine:
        events = await collect(engine, Request(model="m", messages=history, stream=True))
        assert text_of(events) == FULL and len(fake.seen) == 2
        # Without signatures in the history the same 400 is a plain client error: no retry.
        fresh = FaultProvider()
        plain = (Message(Role.USER, (Text("hi"),)), Message(Role.ASSISTANT, (ToolCall("c1", "f", "{}"),)))
    async with Engine(config(provider("p", {"m": "sig"})), transports={"p": fresh}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, Request(model="m", messages=plain, stream=True))
    assert info.value.status == 400 and len(fresh.seen) == 1


def test_without_signatures_keeps_everything_else() -> None:
    from muxtrio.ir import Reasoning, RedactedReasoning, ToolCall
    from muxtrio.ir.request import has_signatures, without_signatures

    request = Request(
        model="m",
        messages=(
            Message(Role.USER, (Text("q"),)),
            Message(Role.ASSISTANT, (RedactedReasoning("opaque"),)),
            Message(Role.ASSISTANT, (Reasoning("r", "s"), ToolCall("c1", "f", "{}", signature="g"), Text("t"))),
        ),
    )
    stripped = without_signatures(request)
    assert has_signatures(request) and not has_signatures(stripped)
    assert stripped.messages == (
        Message(Role.USER, (Text("q"),)),
        Message(Role.ASSISTANT, (ToolCall("c1", "f", "{}"), Text("t"))),
    )


async def test_connect_timeout_is_typed_and_fails_over(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "noconnect"}), provider("b", {"m": "ok"}))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        assert text_of(await collect(engine, ask("m"))) == FULL
    lone = FaultProvider()
    async with Engine(config(provider("a", {"m": "noconnect"}), request_retry=0), transports={"a": lone}) as engine:
        with pytest.raises(UpstreamTimeout) as info:
            await collect(engine, ask("m"))
    assert info.value.phase == "connect" and info.value.status == 504


async def test_each_attempt_gets_its_own_model_rule_and_the_changes_are_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FaultProvider()
    cfg = config(
        provider("p", {"small": "ctx", "large": "ok"}),
        fallbacks={"small": ("large",)},
        model_rules=(
            ModelRuleConfig(models=("ctx",), drop=("top_p",)),
            ModelRuleConfig(models=("ok",), drop=("seed",)),
        ),
        payload_override=(PayloadRuleConfig(models=(PayloadMatch("large"),), params=(("user", '"ops"'),)),),
    )
    request = attrs_replace(ask("small"), sampling=Sampling(temperature=0.5, top_p=0.9, seed=3))
    caplog.set_level("DEBUG", logger="muxtrio.engine")
    async with Engine(cfg, transports={"p": fake}) as engine:
        events = await collect(engine, request)
    assert text_of(events) == FULL
    [first] = fake.requests_for("ctx")
    [second] = fake.requests_for("ok")
    assert (first.body.get("top_p"), first.body.get("seed"), first.body.get("user")) == (None, 3, None)
    assert (second.body.get("top_p"), second.body.get("seed"), second.body.get("user")) == (0.9, None, "ops")
    logged = [r.getMessage() for r in caplog.records if r.name == "muxtrio.engine"]
    assert "model rule for ctx: top_p dropped: model-rules[0] refuses it" in logged
    assert "model rule for ok: seed dropped: model-rules[1] refuses it" in logged
    assert "payload rule for ok: override user" in logged

# ---------------------------------------------------------------------------------------------- regenerate on cut
@pytest.mark.parametrize("fault", ["cut3", "malformed3", "noterm3", "stall3"])
async def test_cut_stream_is_regenerated_and_spliced_without_prefill(
    fault: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": fault}, prefill=False), provider("b", {"m": "ok"}, prefill=False))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        events = await collect(engine, ask("m"))
    # The client got every word once: the regeneration's repeat of "alpha beta gamma " was held back.
    assert text_of(events) == FULL
    assert sum(isinstance(e, Start) for e in events) == 1
    assert [e for e in events if isinstance(e, Finish)] == [Finish(FinishReason.STOP)]
    [regenerated] = fake.requests_for("ok")
    assert regenerated.body["messages"] == [{"role": "user", "content": "hi"}]  # the original request, no prefill
    usage = [e for e in events if isinstance(e, UsageUpdate)][-1].usage
    assert usage.output_tokens == 6  # the regeneration produced (and reported) the whole answer


async def test_diverging_regeneration_ends_with_the_original_error(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    got: list[object] = []
    cfg = config(provider("a", {"m": "cut3"}, prefill=False), provider("b", {"m": "alt2"}, prefill=False))
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        with pytest.raises(MuxError) as info:
            async with engine.stream(ask("m")) as events:
                async for event in events:
                    got.append(event)
    assert text_of(got) == "alpha beta gamma "  # nothing of the diverging "omega" reached the client
    assert not any(isinstance(e, Finish) for e in got)
    assert "diverged" not in info.value.message and info.value.kind is ErrorKind.UPSTREAM  # the cut's error
    assert len(fake.requests_for("alt2")) == 1


async def test_failed_continuation_is_followed_by_a_regeneration(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "cut3"}, prefill=True), provider("b", {"m": "filter"}, prefill=True),
                 provider("c", {"m": "ok"}, prefill=False))
    async with Engine(cfg, transports={"a": fake, "b": fake, "c": fake}) as engine:
        events = await collect(engine, ask("m"))
    assert text_of(events) == FULL
    assert [s.model for s in fake.seen] == ["cut3", "filter", "ok"]


# ---------------------------------------------------------------------------------------------- credential lifecycle
async def test_refused_key_cools_and_is_reprobed_never_not_served(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("a", {"m": "refuse2"})), transports={"a": fake}) as engine:
        for _ in range(2):  # the refusing request, then one while the credential is out
            with pytest.raises(MuxError) as info:
                await collect(engine, ask("m"))
            assert info.value.status == 503 and info.value.kind is ErrorKind.UNAVAILABLE
            assert info.value.message.startswith("provider a: every credential was refused by the provider (401)")
            assert info.value.retry_after == 60
        assert len(fake.seen) == 1  # while out, the provider is not asked
        await trio.sleep(60)
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))  # the probe: refused again, so the next step of the ladder
        assert info.value.retry_after == 600 and len(fake.seen) == 2
        await trio.sleep(600)
        assert text_of(await collect(engine, ask("m"))) == FULL  # the probe succeeds: the key is back
        assert text_of(await collect(engine, ask("m"))) == FULL
    assert len(fake.seen) == 4


async def test_a_refused_key_fails_over_to_the_next_key(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("a", {"m": "refuse1"}, keys=2)), transports={"a": fake}) as engine:
        assert text_of(await collect(engine, ask("m"))) == FULL
        assert engine.pools["a"].credentials[0].refused_for("refuse1", trio.current_time())[1] == 401
    assert len(fake.seen) == 2


async def test_a_403_about_the_model_cools_that_model_only(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    async with Engine(config(provider("a", {"m": "noaccess", "n": "ok"})), transports={"a": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
        assert info.value.status == 503 and "(403)" in info.value.message
        assert text_of(await collect(engine, ask("n"))) == FULL  # the same key still serves other models


async def test_rate_limits_do_not_open_the_breaker(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "429", "n": "500-once"}), request_retry=3, breaker_failures=2)
    async with Engine(cfg, transports={"a": fake}) as engine:
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
        assert info.value.status == 429 and "rate-limited" in info.value.message
        cred = engine.pools["a"].credentials[0]
        assert cred.consecutive_failures == 0 and len(fake.requests_for("429")) == 4
        assert text_of(await collect(engine, ask("n"))) == FULL  # one 500, retried: the breaker stays closed
        assert cred.breaker == "closed"


async def test_open_breaker_is_a_503_with_its_reason_until_the_probe(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "down1"}), request_retry=0, breaker_failures=1, breaker_open_seconds=30.0)
    async with Engine(cfg, transports={"a": fake}) as engine:
        with pytest.raises(MuxError) as first:
            await collect(engine, ask("m"))
        assert first.value.status in (502, 503) and "circuit breaker" not in first.value.message
        await trio.sleep(10)
        with pytest.raises(MuxError) as info:
            await collect(engine, ask("m"))
        assert info.value.status == 503 and info.value.kind is ErrorKind.UNAVAILABLE
        assert "circuit breaker open after 1 consecutive failures" in info.value.message
        assert info.value.retry_after == 20
        assert len(fake.seen) == 1
        await trio.sleep(20)
        assert text_of(await collect(engine, ask("m"))) == FULL  # the half-open probe closes it


async def test_model_missing_is_a_404_naming_the_provider_rechecked_later(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FaultProvider()
    caplog.set_level("INFO", logger="muxtrio.engine")
    async with Engine(config(provider("a", {"m": "gone"})), transports={"a": fake}) as engine:
        for _ in range(2):
            with pytest.raises(MuxError) as info:
                await collect(engine, ask("m"))
            assert info.value.status == 404 and info.value.kind is ErrorKind.NOT_FOUND
            assert info.value.message == (
                "provider a: model 'gone' was not found by the provider (404: The model `gone` does not exist); "
                "it is checked again in 60 s"
            )
            assert info.value.retry_after is None
        assert len(fake.seen) == 1
        await trio.sleep(60)
        with pytest.raises(MuxError):
            await collect(engine, ask("m"))
        assert len(fake.seen) == 2  # re-checked after the period
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "model missing" in r.getMessage()]
    assert len(warnings) == 1


async def test_silent_route_fails_over_to_the_fallback_at_once(autojump_clock: trio.testing.MockClock) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "silent"}, keys=2), provider("b", {"m2": "ok"}), fallbacks={"m": ("m2",)},
                 request_retry=3)
    async with Engine(cfg, transports={"a": fake, "b": fake}) as engine:
        start = trio.current_time()
        assert text_of(await collect(engine, ask("m"))) == FULL
        elapsed = trio.current_time() - start
    assert len(fake.requests_for("silent")) == 2  # each key once, never the same silent route again
    assert elapsed == pytest.approx(60.0)  # two first-byte timeouts, no backoff


async def test_every_failed_attempt_is_logged_without_the_key(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FaultProvider()
    cfg = config(provider("a", {"m": "refuse"}), provider("b", {"m": "429-ra5"}), provider("c", {"m2": "ok"}),
                 fallbacks={"m": ("m2",)}, request_retry=0)
    caplog.set_level("INFO", logger="muxtrio.engine")
    async with Engine(cfg, transports={"a": fake, "b": fake, "c": fake}) as engine:
        assert text_of(await collect(engine, ask("m"))) == FULL
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("attempt failed")]
    assert len(lines) == 2
    assert {line.split("provider=")[1].split()[0] for line in lines} == {"a", "b"}
    refused = next(line for line in lines if "provider=a" in line)
    assert "credential=a#0" in refused and "error=authentication" in refused and "status=401" in refused
    assert "refused for every model, out for 60 s" in refused and "next=failover:b#0" in refused
    limited = next(line for line in lines if "provider=b" in line)
    assert "error=rate_limit status=429" in limited and "next=fallback" in limited
    assert "reason=" not in refused
    assert not any("secret" in r.getMessage() for r in caplog.records)


async def test_debug_logs_the_reason_scrubbed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FaultProvider()
    caplog.set_level("INFO", logger="muxtrio.engine")
    async with Engine(config(provider("a", {"m": "refuse"}), debug=True), transports={"a": fake}) as engine:
        with pytest.raises(MuxError):
            await collect(engine, ask("m"))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("attempt failed")]
    assert "reason='Incorrect API key provided: [redacted]" in line and "secret" not in line

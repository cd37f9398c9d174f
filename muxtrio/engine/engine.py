"""The engine: routes one IR request to providers, with retries, failover and mid-stream continuation, and hands
IR events to its consumer through a bounded channel.

Structure of one streaming request (``Engine.stream``): a nursery under one cancel scope; a producer task runs the
attempts (one upstream response at a time), decodes each chunk with the provider's codec and sends the events into
a memory channel whose byte budget is the stream's own :class:`BytePool`. The consumer iterates the channel.
Leaving the ``async with`` (normally, by error, or because the client went away) cancels the scope, which closes the
upstream response at once: no orphan generations.

Invariants:
- Nothing reaches the consumer before the first content event of an attempt (``Start`` and usage are held back),
  so failover before that is invisible.
- After content reached the consumer, a broken attempt is either *continued* on a candidate that accepts an
  assistant prefill (the partial answer is resent as a prefill and the continuation is stitched into the same
  blocks), or the stream ends with the error. A cut stream never ends with ``Finish``.
- A prefill attempt that fails re-raises the original error, never its own.
- Usage given to the consumer is that of the attempts that produced the answer; failed attempts are counted in
  statistics only.
- The engine never knows the client's format.
- Every error an attempt raised is scrubbed (:mod:`muxtrio.redact`: configured secrets, key-shaped tokens) before it
  is logged, judged, or handed on, so provider text echoing a key never reaches a client, a log or the statistics.
"""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from types import TracebackType

import httpx2
import trio

from muxtrio.codecs.base import Codec, Format, Target, WireRequest
from muxtrio.codecs.model_rules import ModelRule, ModelRules, apply_rule
from muxtrio.codecs.payload_rules import PayloadModel, PayloadRule, PayloadRules, apply_payload_rules, matching
from muxtrio.codecs.registry import get_codec, provider_codec
from muxtrio.config import Config, ModelRuleConfig, PayloadRuleConfig, ProviderConfig, ProviderType, config_secrets
from muxtrio.engine.pool import CredentialPool, CredentialState
from muxtrio.engine.retry import Action, Verdict, backoff, classify
from muxtrio.engine.routing import Deployment, Router
from muxtrio.engine.stream import Batch, BytePool, EventStream, Failure, StreamMeta
from muxtrio.engine.thinking_cache import AnswerTracker, ThinkingCache
from muxtrio.errors import (
    CapacityError,
    ClientError,
    ErrorKind,
    MuxError,
    StreamTruncated,
    UpstreamError,
    UpstreamTimeout,
)
from muxtrio.ir.accumulate import Accumulator
from muxtrio.ir.events import Event, Finish, Start, TextDelta, UsageUpdate
from muxtrio.ir.request import Message, Request, Role, Text, Thinking, has_signatures, without_signatures
from muxtrio.ir.response import Response, Usage
from muxtrio.ir.tokens import estimate_tokens
from muxtrio.redact import Scrubber, scrub_error
from muxtrio.upstream.client import ClientSettings, UpstreamClient, UpstreamResponse
from muxtrio.upstream.echo import EchoTransport
from muxtrio.upstream.providers import kind_of

log = logging.getLogger("muxtrio.engine")

CHANNEL_CAPACITY = 64
_FORMAT_NAMES = frozenset(f.value for f in Format)
MAX_ERROR_BODY = 1 << 20
MAX_RESPONSE_BODY = 256 << 20
PARTIAL_ANSWER_LIMIT = 1 << 20  # beyond this much answer text, a cut stream is not continued


@dataclass(slots=True)
class _Progress:
    """What one streaming request has delivered so far, across attempts."""

    started: bool = False  # a Start event has been forwarded
    emitted: bool = False  # content reached the consumer
    delivered: bool = False  # a first batch was handed to the consumer
    finished: bool = False
    offset: int = 0  # index shift applied to the current attempt's blocks
    merge_first_text: bool = False  # the continuation's first text block extends the last partial block
    strip_prefix: str = ""  # whitespace removed from the prefill end, to drop from the continuation's start
    prior_usage: Usage = field(default_factory=Usage)
    attempt_usage: Usage = field(default_factory=Usage)
    answer: Accumulator | None = None  # the partial answer, while continuation stays possible
    answer_chars: int = 0


@dataclass(frozen=True, slots=True)
class _Candidate:
    deployment: Deployment
    pool: CredentialPool
    credential: CredentialState


class Engine:
    """``async with Engine(config) as engine:`` then ``await engine.complete(request)`` or
    ``async with engine.stream(request) as events: async for event in events: ...``.

    ``transports`` replaces the network per provider name (tests, embedding with an in-process upstream).
    ``clock`` must be trio's clock in trio code (the default), ``rng`` seeds jitter (tests).
    """

    def __init__(
        self,
        config: Config,
        *,
        transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config)
        # Upstream error text loses every configured secret and key-shaped token before anyone sees it.
        self.scrubber = Scrubber(config_secrets(config))
        self.model_rules = ModelRules(model_rule_of(rule, index) for index, rule in enumerate(config.model_rules))
        self.payload_rules = PayloadRules(
            tuple(payload_rule_of(rule) for rule in config.payload_default),
            tuple(payload_rule_of(rule) for rule in config.payload_override),
        )
        self._transports = dict(transports or {})
        self._rng = rng or random.Random()
        self.pools: dict[str, CredentialPool] = {}
        self.clients: dict[str, UpstreamClient] = {}
        self._entered = False
        self.requests = 0
        self.failed_attempts = 0
        self.thinking_cache = ThinkingCache(
            config.thinking_cache_entries, config.thinking_cache_bytes, config.thinking_cache_ttl
        )

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Engine:
        for provider in self.router.providers.values():
            self.pools[provider.name] = CredentialPool(
                provider.name,
                [(c.key, c.proxy_url) for c in provider.credentials] or [(None, None)],
                strategy=str(self.config.routing_strategy),
                breaker_failures=self.config.breaker_failures,
                breaker_open_seconds=self.config.breaker_open_seconds,
            )
            transport = self._transports.get(provider.name)
            if transport is None and provider.type == ProviderType.ECHO:
                transport = EchoTransport()
            self.clients[provider.name] = UpstreamClient(
                provider.name,
                ClientSettings(
                    base_url=provider.base_url or "http://muxtrio-echo.invalid/v1",
                    http2=provider.http2,
                    max_connections=provider.max_connections,
                    max_keepalive=provider.max_keepalive,
                    connect_timeout=self.config.timeouts.merged(provider.timeouts).connect,
                    proxy_url=provider.proxy_url or self.config.proxy_url,
                    headers=tuple(provider.headers.items()),
                ),
                transport=transport,
            )
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = False
        with trio.CancelScope(shield=True):
            for client in self.clients.values():
                await client.aclose()

    def _require_entered(self) -> None:
        if not self._entered:
            raise RuntimeError("use the engine inside `async with Engine(config) as engine:`")

    # ------------------------------------------------------------------ public API
    @asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[EventStream]:
        """Stream ``request``. Errors are raised while iterating, as ``MuxError``."""
        self._require_entered()
        self.router.require(request.model)
        self.requests += 1
        send, receive = trio.open_memory_channel[Batch | Failure](CHANNEL_CAPACITY)
        pool = BytePool(self.config.stream_buffer_bytes)
        meta = StreamMeta()
        # The consumer's exception is taken out of the nursery and re-raised as itself, so callers catch a
        # MuxError (not an ExceptionGroup); the producer never raises (it reports through the channel).
        # Cancellation stays inside: cancel scopes find Cancelled in groups themselves.
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._produce, request, send, pool, meta)
            try:
                yield EventStream(receive, pool, meta)
            except Exception as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
                receive.close()
        if error is not None:
            raise error

    async def complete(self, request: Request, *, meta: StreamMeta | None = None) -> Response:
        """Answer ``request`` whole (the upstream is asked not to stream). ``meta`` receives which provider and
        model served it."""
        self._require_entered()
        self.router.require(request.model)
        self.requests += 1
        meta = meta if meta is not None else StreamMeta()
        outcome: list[Response] = []

        async def attempt(candidate: _Candidate, req: Request) -> None:
            outcome.append(await self._complete_once(candidate, req))

        await self._run_attempts(request, meta, attempt, _Progress())
        return outcome[-1]

    async def count_tokens(self, request: Request) -> tuple[int, bool]:
        """Input tokens of ``request``: ``(n, exact)``. Uses the serving provider's count endpoint where it has
        one, else the local estimate of :mod:`muxtrio.ir.tokens` (``exact`` False)."""
        self._require_entered()
        self.router.require(request.model)
        for name in self.router.chain(request.model):
            for deployment in self.router.resolve(name):
                codec = self._codec(deployment.provider)
                pool = self.pools[deployment.provider.name]
                cred = pool.pick(deployment.upstream_model, trio.current_time())
                if cred is None:
                    continue
                rule = self.model_rules.find(deployment.upstream_model, codec.format)
                counted = apply_rule(request, rule)[0] if rule is not None else request
                target = Target(
                    deployment.upstream_model,
                    cred.key,
                    stream=False,
                    adaptive_thinking=rule is not None and rule.adaptive_thinking,
                )
                wire = codec.emit_count_request(counted, target)
                if wire is None:
                    return estimate_tokens(request), False
                try:
                    with trio.fail_after(deployment.timeouts.first_byte):
                        async with self.clients[deployment.provider.name].open(wire, proxy_url=cred.proxy_url) as r:
                            body = await r.read(MAX_ERROR_BODY)
                            if r.status >= 400:
                                raise codec.parse_error(r.status, r.headers, body)
                            return codec.parse_count_response(body), True
                except (MuxError, trio.TooSlowError) as exc:
                    reason = scrub_error(exc, self.scrubber).message if isinstance(exc, MuxError) else "timeout"
                    log.info(
                        "count_tokens on %s failed (%s); using the local estimate", deployment.provider.name, reason
                    )
                    return estimate_tokens(request), False
        return estimate_tokens(request), False

    def statistics(self) -> dict[str, object]:
        now = trio.current_time() if self._entered else 0.0
        return {
            "requests": self.requests,
            "failed_attempts": self.failed_attempts,
            "providers": {
                name: [vars_of(s) for s in pool.statistics(now)] for name, pool in self.pools.items()
            },
        }

    # ------------------------------------------------------------------ attempts
    def _codec(self, provider: ProviderConfig) -> Codec:
        return provider_codec(provider.type, kind_of(provider.type).format)

    def _pick(self, deployments: list[Deployment], tried: set[tuple[str, int]], now: float) -> _Candidate | None:
        best: _Candidate | None = None
        for deployment in deployments:
            pool = self.pools[deployment.provider.name]
            exclude = frozenset(i for (p, i) in tried if p == deployment.provider.name)
            cred = pool.pick(deployment.upstream_model, now, exclude)
            if cred is not None and (best is None or cred.in_flight < best.credential.in_flight):
                best = _Candidate(deployment, pool, cred)
        return best

    def _next_available(self, deployments: list[Deployment], now: float) -> float | None:
        times = [
            t
            for d in deployments
            if (t := self.pools[d.provider.name].next_available_at(d.upstream_model, now)) is not None
        ]
        return min(times) if times else None

    async def _run_attempts(
        self,
        request: Request,
        meta: StreamMeta,
        attempt: Callable[[_Candidate, Request], Awaitable[None]],
        progress: _Progress,
    ) -> None:
        """Try candidates until one attempt succeeds; raise the error to show the client otherwise."""
        max_retries = self.config.request_retry  # per model: transient failures retried, and cooldowns waited out
        max_wait = self.config.max_retry_interval
        last_error: MuxError | None = None
        original_error: MuxError | None = None  # the cut that a continuation is repairing
        restore = True  # put signed thinking the client dropped back from the thinking cache
        for model in self.router.chain(request.model):
            deployments, unfit = self._fitting(request, self.router.resolve(model))
            if not deployments:
                last_error = last_error or unfit
                continue
            tried: set[tuple[str, int]] = set()
            retries = 0
            while True:
                now = trio.current_time()
                candidate = self._pick(deployments, tried, now)
                if candidate is None:
                    ready = self._next_available(deployments, now)
                    if ready is not None and ready - now <= max_wait and retries < max_retries and ready > now:
                        retries += 1  # waiting for a cooldown to end spends the retry budget too
                        await trio.sleep(ready - now)
                        tried.clear()
                        continue
                    if ready is not None and ready > now and last_error is None:
                        last_error = CapacityError(
                            f"every credential for model {model!r} is cooling down", retry_after=ready - now
                        )
                    elif ready is not None and ready > now and isinstance(last_error, UpstreamError):
                        last_error.retry_after = max(ready - now, last_error.retry_after or 0.0)
                    break
                if progress.emitted and not candidate.deployment.prefill:
                    tried.add((candidate.pool.provider, candidate.credential.index))
                    continue
                meta.attempts += 1
                meta.provider = candidate.deployment.provider.name
                meta.model = candidate.deployment.upstream_model
                meta.route = model
                req = self._prepare(request, kind_of(candidate.deployment.provider.type).format, meta, restore)
                if progress.emitted:
                    built = self._continuation(request, progress)
                    if built is None:
                        raise original_error or last_error or StreamTruncated()
                    req = self._prepare(built, kind_of(candidate.deployment.provider.type).format, meta, restore)
                candidate.pool.begin(candidate.credential)
                try:
                    await attempt(candidate, replace(req, model=candidate.deployment.upstream_model))
                except MuxError as err:
                    scrub_error(err, self.scrubber)
                    self.failed_attempts += 1
                    verdict = self._judge(candidate, err)
                    log.debug(
                        "attempt %d on %s for %s failed: %s -> %s",
                        meta.attempts, candidate.credential.name, candidate.deployment.upstream_model,
                        err.message, verdict.action,
                    )
                    if progress.emitted:
                        # Content reached the consumer: continue once on a prefill candidate, or end with the cut.
                        if original_error is None and self._continuable(progress):
                            original_error = err
                            tried.add((candidate.pool.provider, candidate.credential.index))
                            meta.failovers += 1
                            continue
                        raise (original_error or err) from None
                    last_error = err
                    if verdict.action is Action.FAIL:
                        if _rejects_signatures(err) and has_signatures(request):
                            # The history carries another provider's signatures: retry once without them.
                            request = without_signatures(request)
                            restore = False  # and do not put cached signatures back either
                            meta.notes.append("retried without reasoning signatures the provider rejected")
                            continue
                        raise
                    if verdict.action is Action.NEXT_MODEL:
                        break
                    tried.add((candidate.pool.provider, candidate.credential.index))
                    if verdict.action is Action.RETRY:
                        retries += 1
                        if retries > max_retries:
                            break  # this model failed for good: on to the fallbacks
                        if self._pick(deployments, tried, trio.current_time()) is None:
                            # Nobody else to ask: wait before asking the same credential again.
                            delay = verdict.cooldown or backoff(retries, max_wait, self._rng)
                            await trio.sleep(min(delay, max_wait))
                            tried.clear()
                    meta.failovers += 1
                    continue
                else:
                    candidate.pool.on_success(candidate.credential, candidate.deployment.upstream_model)
                    return
                finally:
                    candidate.pool.end(candidate.credential)
        if original_error is not None:
            raise original_error
        if last_error is not None:
            raise last_error
        raise ClientError(ErrorKind.NOT_FOUND, f"model {request.model!r} is not served by this gateway", param="model")

    def _adapt(self, request: Request, target: Format) -> tuple[Request, list[str], list[str]]:
        """``request`` made fit for a provider of format ``target`` by the codec of each other format present in
        its extensions (``Codec.adapt_to_target``, under the ``hosted-tools`` policy), then checked
        (``Codec.check_target``). Returns the request, the dropped provider-run tools and the ignored fields;
        raises UNSUPPORTED when the target cannot run it."""
        dropped: list[str] = []
        ignored: list[str] = []
        for fmt in list(request.extensions):
            if fmt in _FORMAT_NAMES and fmt != target.value:
                adaptation = get_codec(fmt).adapt_to_target(request, target, self.config.hosted_tools)
                request = adaptation.request
                dropped.extend(adaptation.dropped)
                ignored.extend(adaptation.ignored)
        for fmt in request.extensions:
            if fmt in _FORMAT_NAMES:
                get_codec(fmt).check_target(request, target)
        return request, dropped, ignored

    def _prepare(self, request: Request, target: Format, meta: StreamMeta, restore: bool) -> Request:
        """The request one attempt sends: adapted to the provider's format (dropped tools become a warning for the
        client and a log line, ignored fields a DEBUG line), with signed thinking the client dropped restored from
        the thinking cache where this gateway saw it (docs/resilience.md)."""
        request, dropped, ignored = self._adapt(request, target)
        for label in dropped:
            warning = f"provider-run tool {label!r} dropped: the serving provider ({target.value} format) cannot run it"
            if warning not in meta.warnings:
                meta.warnings.append(warning)
                log.info("request for %s: %s (hosted-tools: %s)", request.model, warning, self.config.hosted_tools)
        if ignored:
            log.debug("request for %s: fields a %s provider has no equivalent for, not sent: %s",
                      request.model, target.value, ", ".join(ignored))  # fmt: skip
        if restore and self.thinking_cache.enabled:
            request, repaired = self.thinking_cache.restore(request, target.value, trio.current_time())
            if repaired:
                meta.notes.append(f"restored signed thinking before the tool calls of {repaired} turn(s)")
                log.debug("request for %s: restored signed thinking for %d turn(s)", request.model, repaired)
        return request

    def _fitting(self, request: Request, deployments: list[Deployment]) -> tuple[list[Deployment], MuxError | None]:
        """The deployments whose provider format can run what the client's format put in the request's
        extensions (e.g. Anthropic server tools run on Anthropic only, unless the hosted-tools policy maps or drops
        them), and the reason for the first refusal."""
        if not request.extensions:
            return deployments, None
        fitting: list[Deployment] = []
        refusal: MuxError | None = None
        for deployment in deployments:
            target = kind_of(deployment.provider.type).format
            try:
                self._adapt(request, target)
            except MuxError as err:
                refusal = refusal or err
                continue
            fitting.append(deployment)
        return fitting, refusal

    def _judge(self, candidate: _Candidate, err: MuxError) -> Verdict:
        now = trio.current_time()
        headers = err.headers if isinstance(err, UpstreamError) else {}
        cred = candidate.credential
        verdict = classify(
            err,
            headers,
            now=_wall_clock(),
            failures=cred.consecutive_failures + 1,
            max_retry_interval=self.config.max_retry_interval,
            rng=self._rng,
        )
        if verdict.action is Action.FAIL or (verdict.action is Action.NEXT_MODEL and verdict.model_cooldown is None):
            candidate.pool.on_neutral(cred)
        else:
            candidate.pool.on_failure(
                cred,
                candidate.deployment.upstream_model,
                now,
                cooldown=verdict.cooldown if verdict.action is Action.NEXT_CREDENTIAL else None,
                disable=verdict.disable,
                model_cooldown=verdict.model_cooldown,
                breaker_failure=verdict.breaker_failure,
            )
        return verdict

    # ------------------------------------------------------------------ non-streaming attempt
    async def _complete_once(self, candidate: _Candidate, request: Request) -> Response:
        deployment = candidate.deployment
        codec = self._codec(deployment.provider)
        wire = self._wire_request(codec, candidate, request, stream=False)
        timeouts = deployment.timeouts
        with _total_deadline(timeouts.total) as total:
            deadline = trio.current_time() + timeouts.first_byte
            async with self._open(candidate, wire, codec, deadline) as response:
                body = await _read_body(response, timeouts.idle)
            answer = codec.parse_response(body, _seed())
        if total.cancelled_caught:
            raise UpstreamTimeout("total", timeouts.total or 0.0)
        if request.tools:
            self.thinking_cache.remember(codec.format.value, answer.parts, trio.current_time())
        return answer

    def _wire_request(self, codec: Codec, candidate: _Candidate, request: Request, *, stream: bool) -> WireRequest:
        """The provider request for one attempt: the model family's parameter rules applied to the IR, the codec's
        translation, then the operator's payload rules on the provider-format body (docs/config.md)."""
        deployment = candidate.deployment
        model = deployment.upstream_model
        rule = self.model_rules.find(model, codec.format)
        if rule is not None:
            request, notes = apply_rule(request, rule)
            for note in notes:
                log.debug("model rule for %s: %s", model, note)
        target = Target(
            model,
            candidate.credential.key,
            stream=stream,
            max_tokens_field=rule.output_limit_field if rule is not None else None,
            adaptive_thinking=rule is not None and rule.adaptive_thinking,
        )
        wire = codec.emit_request(request, target)
        if self.payload_rules:
            rules = matching(self.payload_rules, (model, deployment.alias, request.model), codec.format)
            if rules:
                wire, changes = apply_payload_rules(wire, rules)
                for change in changes:
                    log.debug("payload rule for %s: %s", model, change)
        return wire

    @asynccontextmanager
    async def _open(
        self, candidate: _Candidate, wire: WireRequest, codec: Codec, deadline: float
    ) -> AsyncIterator[UpstreamResponse]:
        """Open the upstream response before ``deadline`` (the first-byte timeout); provider errors are raised
        parsed, with their headers attached for the retry hints."""
        deployment = candidate.deployment
        client = self.clients[deployment.provider.name]
        first_byte = deployment.timeouts.first_byte
        with trio.move_on_at(deadline) as scope:
            async with client.open(wire, proxy_url=candidate.credential.proxy_url) as response:
                if response.status >= 400:
                    body = await response.read(MAX_ERROR_BODY)
                    error = scrub_error(codec.parse_error(response.status, response.headers, body), self.scrubber)
                    error.headers = dict(response.headers)
                    raise error
                scope.deadline = float("inf")
                yield response
        if scope.cancelled_caught:
            raise UpstreamTimeout("first_byte", first_byte)

    # ------------------------------------------------------------------ streaming attempt
    async def _produce(
        self, request: Request, send: trio.MemorySendChannel[Batch | Failure], pool: BytePool, meta: StreamMeta
    ) -> None:
        progress = _Progress()
        if any(d.prefill for m in self.router.chain(request.model) for d in self.router.resolve(m)):
            progress.answer = Accumulator()
        async with send:

            async def attempt(candidate: _Candidate, req: Request) -> None:
                await self._stream_once(candidate, req, send, pool, progress)

            try:
                await self._run_attempts(request, meta, attempt, progress)
            except MuxError as err:
                await _send_failure(send, err)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the consumer left
            except Exception:
                log.exception("internal error while streaming %s", request.model)
                await _send_failure(send, MuxError(ErrorKind.INTERNAL, "internal gateway error"))

    async def _stream_once(
        self,
        candidate: _Candidate,
        request: Request,
        send: trio.MemorySendChannel[Batch | Failure],
        pool: BytePool,
        progress: _Progress,
    ) -> None:
        deployment = candidate.deployment
        codec = self._codec(deployment.provider)
        wire = self._wire_request(codec, candidate, request, stream=True)
        timeouts = deployment.timeouts
        progress.attempt_usage = Usage()
        held: list[Event] = []  # Start/usage before the first content of this attempt
        cache = self.thinking_cache
        tracker = AnswerTracker(cache.max_bytes) if request.tools and cache.enabled else None
        with _total_deadline(timeouts.total) as total:
            first_deadline = trio.current_time() + timeouts.first_byte
            async with self._open(candidate, wire, codec, first_deadline) as response:
                decoder = codec.new_decoder(_seed())
                idle = timeouts.idle
                del wire  # the request body is sent; don't hold it (or orjson's buffer) for the stream's life
                got_events = False
                # One watchdog per attempt: the first-byte deadline until events flow, then the idle gap, re-armed
                # at most every `slack` seconds (moving a trio deadline per chunk cost ~8% of streaming CPU), so an
                # idle timeout fires between `idle` and `idle + slack` after the last chunk. It is lifted while the
                # reader waits on its own consumer: backpressure is not the provider's silence.
                slack = min(1.0, idle / 8)
                armed_at = -math.inf
                with trio.CancelScope(deadline=first_deadline) as watchdog:
                    async for chunk in response.chunks():
                        cost = pool.try_acquire(len(chunk))
                        if cost is None:
                            watchdog.deadline = math.inf
                            cost = await pool.acquire(len(chunk))
                        events = decoder.feed(chunk)
                        if events:
                            got_events = True
                            if tracker is not None:
                                tracker.add(events)
                            cost = await self._forward(events, cost, progress, held, send, watchdog)
                        pool.release(cost)
                        if got_events:
                            now = trio.current_time()
                            if now - armed_at > slack or watchdog.deadline == math.inf:
                                watchdog.deadline = now + idle
                                armed_at = now
                        elif watchdog.deadline == math.inf:
                            watchdog.deadline = first_deadline
                    events = decoder.flush()
                    if events:
                        await self._forward(events, 0, progress, held, send, watchdog)
                if watchdog.cancelled_caught:
                    if got_events:
                        raise UpstreamTimeout("idle", idle)
                    raise UpstreamTimeout("first_byte", timeouts.first_byte)
        if total.cancelled_caught:
            raise UpstreamTimeout("total", timeouts.total or 0.0)
        if not progress.finished:
            raise StreamTruncated()
        if tracker is not None:
            self.thinking_cache.remember(codec.format.value, tracker.parts(), trio.current_time())

    async def _forward(
        self,
        events: list[Event],
        cost: int,
        progress: _Progress,
        held: list[Event],
        send: trio.MemorySendChannel[Batch | Failure],
        watchdog: trio.CancelScope,
    ) -> int:
        """Send an attempt's events to the consumer; returns the pool budget still to release (0 once the batch
        carries it). The send does not switch tasks while the channel has room, so the reader drains what the
        upstream socket already delivered and the writer then sends it all in one write; only a full channel
        (or pool) makes the reader wait — that is the backpressure."""
        out = self._stitch(events, progress, held)
        if not out:
            return cost
        batch = Batch(out, cost)
        if not progress.delivered:
            # The first batch goes out with a task switch, so the client sees its first token at once (TTFT).
            progress.delivered = True
            watchdog.deadline = math.inf
            await send.send(batch)
            return 0
        try:
            send.send_nowait(batch)
        except trio.WouldBlock:
            watchdog.deadline = math.inf
            await send.send(batch)
        return 0

    def _stitch(self, events: list[Event], progress: _Progress, held: list[Event]) -> list[Event]:
        """Rewrite an attempt's events into the client's single stream: one Start, block indices shifted after
        a continuation, usage summed over the attempts that produced the answer, content held back until the
        attempt proves it produces some."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, Start):
                if not progress.started:
                    held.append(event)
                continue
            if isinstance(event, UsageUpdate):
                progress.attempt_usage = progress.attempt_usage.merge(event.usage)
                event = UsageUpdate(progress.prior_usage + progress.attempt_usage)
                (out if progress.emitted else held).append(event)
                continue
            if isinstance(event, Finish):
                progress.finished = True
            else:
                index: int = event.index
                if progress.offset or progress.merge_first_text:
                    if progress.merge_first_text and index == 0 and isinstance(event, TextDelta):
                        text = event.text
                        if progress.strip_prefix and text.startswith(progress.strip_prefix):
                            text = text[len(progress.strip_prefix) :]
                        progress.strip_prefix = ""
                        event = TextDelta(progress.offset, text)
                    else:
                        shift = progress.offset + (1 if progress.merge_first_text else 0)
                        event = replace(event, index=index + shift)
                if progress.answer is not None:
                    self._track(progress, event)
            if not progress.emitted:
                progress.emitted = True
                progress.started = True
                out.extend(held)
                held.clear()
            out.append(event)
        return out

    def _track(self, progress: _Progress, event: Event) -> None:
        answer = progress.answer
        assert answer is not None
        size = len(getattr(event, "text", "")) + len(getattr(event, "arguments", ""))
        progress.answer_chars += size
        if progress.answer_chars > PARTIAL_ANSWER_LIMIT:
            progress.answer = None  # too long to resend as a prefill: a cut will end with an error
            return
        answer.add(event)

    def _continuable(self, progress: _Progress) -> bool:
        if progress.answer is None:
            return False
        parts = progress.answer.partial_parts()
        return bool(parts) and isinstance(parts[-1], Text) and all(isinstance(p, Text) for p in parts)

    def _continuation(self, request: Request, progress: _Progress) -> Request | None:
        """The request that asks a prefill-capable model to continue the partial answer."""
        if not self._continuable(progress):
            return None
        assert progress.answer is not None
        parts = progress.answer.partial_parts()
        text = "".join(p.text for p in parts if isinstance(p, Text))
        stripped = text.rstrip()
        progress.strip_prefix = text[len(stripped) :]
        progress.offset = len(parts) - 1
        progress.merge_first_text = True
        progress.prior_usage = progress.prior_usage + _usage_or_estimate(progress.attempt_usage, text)
        progress.attempt_usage = Usage()
        prefill = Message(Role.ASSISTANT, (Text(stripped),))
        # Thinking is off for the continuation: providers do not accept a prefill after which they would think.
        return replace(request, messages=(*request.messages, prefill), thinking=Thinking(enabled=False))


# ---------------------------------------------------------------------------------------------- helpers
def model_rule_of(rule: ModelRuleConfig, index: int) -> ModelRule:
    """A ``model-rules:`` entry of the config as a table rule (config rules are tried before the built-in ones)."""
    return ModelRule(
        name=f"model-rules[{index}]",
        models=rule.models,
        formats=(Format(rule.protocol),) if rule.protocol is not None else (),
        drop=rule.drop,
        drop_with_reasoning=rule.drop_with_reasoning,
        reasoning_by_default=rule.reasoning_by_default,
        one_of=rule.one_of,
        output_limit_field=rule.output_limit_field,
        budget_min=rule.thinking_budget_min,
        budget_max=rule.thinking_budget_max,
        thinking_off=rule.thinking_off,
        source=rule.source or "config",
    )


def payload_rule_of(rule: PayloadRuleConfig) -> PayloadRule:
    """A ``payload:`` rule of the config with its values parsed once (the config keeps them as JSON text)."""
    return PayloadRule(
        tuple(PayloadModel(m.name, Format(m.protocol) if m.protocol is not None else None) for m in rule.models),
        tuple((path, json.loads(value)) for path, value in rule.params),
    )


def vars_of(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in getattr(obj, "__slots__", ())}


def _seed() -> str:
    return secrets.token_hex(6)


def _wall_clock() -> float:
    import time

    return time.time()


def _rejects_signatures(err: MuxError) -> bool:
    """A provider's 400 about reasoning signatures it cannot verify (Anthropic "Invalid `signature` in
    `thinking` block", Gemini "Corrupted thought signature")."""
    message = err.message.lower()
    return err.kind is ErrorKind.INVALID_REQUEST and ("signature" in message or "redacted_thinking" in message)


def _usage_or_estimate(usage: Usage, text: str) -> Usage:
    if usage.output_tokens:
        return usage
    return replace(usage, output_tokens=max(1, len(text) // 4))


class _total_deadline:
    """``move_on_after(total)`` when a total timeout is configured, else a scope that never fires."""

    def __init__(self, seconds: float | None) -> None:
        self._scope = trio.CancelScope()
        if seconds is not None:
            self._scope.deadline = trio.current_time() + seconds

    def __enter__(self) -> trio.CancelScope:
        return self._scope.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return self._scope.__exit__(exc_type, exc, tb)


async def _read_body(response: UpstreamResponse, idle: float) -> bytes:
    """The whole body, with at most ``idle`` seconds between chunks (one watchdog scope, deadline moved)."""
    parts: list[bytes] = []
    size = 0
    with trio.CancelScope(deadline=trio.current_time() + idle) as watchdog:
        async for chunk in response.chunks():
            size += len(chunk)
            if size > MAX_RESPONSE_BODY:
                raise UpstreamError(ErrorKind.UPSTREAM, f"provider response over {MAX_RESPONSE_BODY} bytes")
            parts.append(chunk)
            watchdog.deadline = trio.current_time() + idle
    if watchdog.cancelled_caught:
        raise UpstreamTimeout("idle", idle)
    return b"".join(parts)


async def _send_failure(send: trio.MemorySendChannel[Batch | Failure], err: MuxError) -> None:
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await send.send(Failure(err))

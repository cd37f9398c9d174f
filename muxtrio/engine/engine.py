"""The engine: routes one IR request to providers, with retries, failover and recovery of cut streams, and hands
IR events to its consumer through a bounded channel.

Structure of one streaming request (``Engine.stream``): a nursery under one cancel scope; a producer task runs the
attempts (one upstream response at a time), decodes each chunk with the provider's codec and sends the events into
a memory channel whose byte budget is the stream's own :class:`BytePool`. The consumer iterates the channel.
Leaving the ``async with`` (normally, by error, or because the client went away) cancels the scope, which closes the
upstream response at once: no orphan generations.

Invariants:
- Nothing reaches the consumer before the first content event of an attempt (``Start`` and usage are held back),
  so failover before that is invisible.
- After content reached the consumer, a broken attempt is *recovered* (``_recover``): continued on a candidate that
  accepts an assistant prefill, else regenerated on one that does not and spliced (``engine/splice.py``: only what
  comes after the delivered part is forwarded, and a diverging regeneration ends the stream), else the stream ends
  with the error. A cut stream never ends with ``Finish``; each candidate is asked once.
- A recovery that fails re-raises the original error, never its own.
- Every failed attempt is logged once (``_log_failure``): provider, credential label, error class, provider status,
  the effect on the credential and what happens next; never a key.
- Usage given to the consumer is that of the attempts that produced the answer; failed attempts are counted in
  statistics only.
- The engine never knows the client's format.
- Every error an attempt raised is scrubbed (:mod:`muxtrio.redact`: configured secrets, key-shaped tokens) before it
  is logged, judged, or handed on, so provider text echoing a key never reaches a client, a log or the statistics.
- Limits: an upstream event or NDJSON line over ``max_event_bytes`` and a non-stream body over
  ``max_response_bytes`` (both counted after content decoding, as the decoded bytes are produced) end the attempt
  with a typed, retryable error. Budget taken from the stream's pool is given back on every path, and every wait
  of the reader has a deadline (the provider's timeouts; the consumer's ``idle`` for backpressure waits).
"""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, suppress
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

import httpx2
import trio

from muxtrio.accounts.store import ACCOUNT_UNUSABLE, Account, AccountStore, Changes
from muxtrio.codecs.base import Codec, Format, Target, WireRequest
from muxtrio.codecs.model_rules import ModelRule, ModelRules, apply_rule
from muxtrio.codecs.payload_rules import PayloadModel, PayloadRule, PayloadRules, apply_payload_rules, matching
from muxtrio.codecs.registry import get_codec, provider_codec
from muxtrio.config import Config, ModelRuleConfig, PayloadRuleConfig, ProviderConfig, config_secrets
from muxtrio.engine.passthrough import PassThrough, RawReader, eligible
from muxtrio.engine.pool import ALL_MODELS, BreakerState, CredentialPool, CredentialState, OutageReason
from muxtrio.engine.retry import (
    Action,
    Effect,
    Move,
    Verdict,
    classify,
    error_class,
    next_step,
)
from muxtrio.engine.routing import Candidate, Candidates, Deployment, Route, Router, pick
from muxtrio.engine.splice import Progress, SpliceDiverged, Transcript
from muxtrio.engine.stream import Batch, BytePool, ConsumerStalled, EventStream, Failure, StreamMeta
from muxtrio.engine.thinking_cache import AnswerTracker, ThinkingCache
from muxtrio.errors import (
    ClientError,
    ErrorKind,
    MuxError,
    StreamTruncated,
    UpstreamError,
    UpstreamTimeout,
)
from muxtrio.ir.events import Event
from muxtrio.ir.request import Request, has_signatures, without_signatures
from muxtrio.ir.response import Response, Usage
from muxtrio.ir.tokens import estimate_tokens
from muxtrio.metrics import attempt_outcome
from muxtrio.redact import Scrubber, scrub_error
from muxtrio.state.pools import SharedPools
from muxtrio.state.store import StateStore, make_store

if TYPE_CHECKING:
    from muxtrio.metrics import Metrics
from muxtrio.upstream.client import ClientSettings, UpstreamClient, UpstreamResponse
from muxtrio.upstream.echo import EchoTransport
from muxtrio.upstream.providers import kind_of

log = logging.getLogger("muxtrio.engine")

CHANNEL_CAPACITY = 64

DeploymentFilter = Callable[[str, Deployment], bool]
"""``allow(step, deployment)``: whether the model name ``step`` (the requested name or a fallback) may be served by
``deployment`` for this request (a client key's model allowlist). Deployments it refuses are never tried."""
_FORMAT_NAMES = frozenset(f.value for f in Format)
MAX_ERROR_BODY = 1 << 20
FAILURE_DELIVERY_S = 5.0  # how long a failure waits for room in a full channel before the channel is just closed
USAGE_LIMIT = "usage_limit_reached"  # Codex's error type for a used-up subscription window (codecs/subscription.py)
ACCOUNT_ERROR_TYPES = frozenset({ACCOUNT_UNUSABLE, USAGE_LIMIT})


Access = tuple[str | None, tuple[tuple[str, str], ...]]
"""An attempt's credential: the key or access token, and the account's extras for ``Target.account``."""


class _Cut(Exception):
    """An attempt failed after content reached the consumer (already judged): the stream needs a recovery."""

    def __init__(self, error: MuxError, candidate: Candidate, state: str, request: Request, restore: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.candidate = candidate
        self.state = state
        self.request = request  # as the cut attempt had it (e.g. without signatures a provider rejected)
        self.restore = restore


class Engine:
    """``async with Engine(config) as engine:`` then ``await engine.complete(request)`` or
    ``async with engine.stream(request) as events: async for event in events: ...``.

    ``transports`` replaces the network per provider name (tests, embedding with an in-process upstream).
    ``clock`` must be trio's clock in trio code (the default), ``rng`` seeds jitter (tests). ``accounts`` replaces
    the subscription account store built from ``config.auth_dir`` (tests pass one whose OAuth calls go to fakes).

    ``previous`` (hot reload): the engine this one replaces, still serving its open streams. For every provider whose
    type and base URL are unchanged, credentials with the same key and proxy keep their state objects
    (:meth:`CredentialPool.inherit`), and an upstream client with identical settings is taken over (its
    connection pool continues; ``previous`` then no longer closes it). The account store is taken over too when
    ``auth-dir`` and ``accounts`` are unchanged (one watcher, one token refresher). Counters continue.
    """

    def __init__(
        self,
        config: Config,
        *,
        transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        accounts: AccountStore | None = None,
        previous: Engine | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config)
        self.metrics = metrics
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
        self._owned: set[str] = set()  # providers whose upstream client this engine closes
        self._owns_accounts = True  # False once a newer engine took the account store over
        self._account_watch: trio.CancelScope | None = None
        self._previous = previous
        self.requests: int = previous.requests if previous is not None else 0
        self.failed_attempts: int = previous.failed_attempts if previous is not None else 0
        cache = (config.thinking_cache_entries, config.thinking_cache_bytes, config.thinking_cache_ttl)
        if previous is not None and cache == (
            previous.config.thinking_cache_entries, previous.config.thinking_cache_bytes,
            previous.config.thinking_cache_ttl,
        ):
            self.thinking_cache: ThinkingCache = previous.thinking_cache  # hot reload: signatures stay known
        else:
            self.thinking_cache = ThinkingCache(*cache)
        self.live_pools: set[BytePool] = set()  # the byte pools of the streams in progress (metrics read them)
        self.buffer_high_water = 0  # the most bytes one stream's pool held since start
        self.accounts = accounts
        self._account_creds: dict[tuple[str, str], CredentialState] = {}  # (provider name, account key) -> cred
        self._background = AsyncExitStack()
        self.state = state or make_store(config.state, metrics)
        self.shared = SharedPools(self.state, self.pools, lease_ttl=config.state.lease_ttl,
                                  probe_ttl=config.state.probe_ttl, refresh_interval=config.state.refresh_interval)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Engine:
        taken: list[str] = []  # providers whose upstream client is taken over from the previous engine
        for provider in self.router.providers.values():
            keys: list[tuple[str | None, str | None]] = [(c.key, c.proxy_url) for c in provider.credentials]
            self.pools[provider.name] = CredentialPool(
                provider.name,
                keys or ([] if kind_of(provider.type).account else [(None, None)]),
                strategy=str(self.config.routing_strategy),
                breaker_failures=self.config.breaker_failures,
                breaker_open_seconds=self.config.breaker_open_seconds,
                refusal_cooldowns=self.config.refused_credential_cooldowns,
            )
            settings = ClientSettings(
                base_url=provider.base_url or "http://muxtrio-echo.invalid/v1",
                http2=provider.http2,
                max_connections=provider.max_connections,
                max_keepalive=provider.max_keepalive,
                connect_timeout=self.config.timeouts.merged(provider.timeouts).connect,
                proxy_url=provider.proxy_url or self.config.proxy_url,
                headers=tuple(provider.headers.items()),
            )
            previous = self._previous
            old = previous.router.providers.get(provider.name) if previous is not None else None
            same_upstream = old is not None and (old.type, old.base_url) == (provider.type, provider.base_url)
            if previous is not None and same_upstream:
                self.pools[provider.name].inherit(previous.pools[provider.name])
                client = previous.clients[provider.name]
                if client.settings == settings and provider.name in previous._owned:
                    taken.append(provider.name)
                    self.clients[provider.name] = client
                    continue
            transport = self._transports.get(provider.name)
            if transport is None and kind_of(provider.type).builtin:
                transport = EchoTransport()
            self.clients[provider.name] = UpstreamClient(provider.name, settings, transport=transport)
            self._owned.add(provider.name)
        previous = self._previous
        if previous is not None:  # only once everything is built: a failed build leaves the old engine whole
            previous._owned.difference_update(taken)
            self._owned.update(taken)
            same_accounts = (previous.config.auth_dir, previous.config.accounts) == (
                self.config.auth_dir, self.config.accounts
            )
            if self.accounts is None and previous.accounts is not None and previous._owns_accounts and same_accounts:
                self.accounts = previous._hand_over_accounts()
        self._previous = None  # the handover is done: don't keep the old engine alive
        await self._start_accounts()
        await self.state.start(self._background)
        await self.shared.start(self._background)
        self._entered = True
        return self

    def _hand_over_accounts(self) -> AccountStore | None:
        """Hot reload: stop watching the account store and stop following it; the next engine owns it now."""
        store = self.accounts
        if store is not None:
            self._owns_accounts = False
            if self._sync_accounts in store.listeners:
                store.listeners.remove(self._sync_accounts)
            if self._account_watch is not None:
                self._account_watch.cancel()
        return store

    # ------------------------------------------------------------------ subscription accounts
    async def _start_accounts(self) -> None:
        """Load the accounts of ``auth_dir`` into the pools of the account providers and watch the directory."""
        if not any(kind_of(p.type).account for p in self.router.providers.values()):
            return
        if self.accounts is None:
            if self.config.auth_dir is None:
                return
            settings = self.config.accounts
            self.accounts = AccountStore(
                self.config.auth_dir,
                endpoints=settings.endpoints,
                refresh_lead=settings.refresh_lead,
                watch_interval=settings.watch_interval,
            )
        self.accounts.listeners.append(self._sync_accounts)
        for account in self.accounts.accounts.values():
            self._sync_accounts(Changes(added=(account,)))
        nursery = await self._background.enter_async_context(trio.open_nursery())
        await nursery.start(self.accounts.watch)
        self._account_watch = nursery.cancel_scope
        self._background.callback(nursery.cancel_scope.cancel)

    def _sync_accounts(self, changes: Changes) -> None:
        """Mirror the store's changes in the pools: one credential per (account provider, account)."""
        for provider in self.router.providers.values():
            if not kind_of(provider.type).account:
                continue
            pool = self.pools[provider.name]
            for account in (*changes.added, *changes.updated):
                if account.provider != provider.type:
                    continue
                cred = self._account_creds.get((provider.name, account.key))
                if cred is None:
                    self._account_creds[(provider.name, account.key)] = pool.add(
                        account=account, label=account.label, proxy_url=provider.proxy_url
                    )
                else:
                    pool.revive(cred, account, account.label)
            for account in changes.removed:
                cred = self._account_creds.pop((provider.name, account.key), None)
                if cred is not None:
                    pool.retire(cred)

    async def _credential(self, candidate: Candidate, *, force_refresh: bool = False) -> Access:
        """What the attempt authenticates with: the API key, or a subscription account's fresh access token and
        its extras (``Target.account``)."""
        cred = candidate.credential
        if not isinstance(cred.account, Account) or self.accounts is None:
            return cred.key, ()
        token, extras = await self.accounts.access(cred.account, force=force_refresh)  # judged like a provider's
        return token, extras

    async def _account_attempt(
        self, attempt: Callable[[Candidate, Request], Awaitable[None]], candidate: Candidate, request: Request
    ) -> None:
        """One attempt; for a subscription account, a 401 first refreshes the token and tries once more, and a
        usage-limit 429 with a reset time cools the account for every model until then."""
        cred = candidate.credential
        try:
            await attempt(candidate, request)
        except UpstreamError as err:
            if not isinstance(cred.account, Account):
                raise
            scrub_error(err, Scrubber(cred.account.secrets()))  # a provider echoing the account's token
            if err.provider_type == USAGE_LIMIT and err.retry_after:
                cred.cooldown_until[ALL_MODELS] = trio.current_time() + err.retry_after
                raise
            if err.provider_status != 401 or self.accounts is None:
                raise
            log.info("%s: the provider refused the access token; refreshing once", cred.name)
            await self._credential(candidate, force_refresh=True)
            try:
                await attempt(candidate, request)
            except UpstreamError as again:
                if isinstance(cred.account, Account):
                    scrub_error(again, Scrubber(cred.account.secrets()))
                raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = False
        try:
            await self._background.aclose()  # the account watcher's nursery: exited in the scope it was opened in
        finally:
            await self._close_clients()

    async def _close_clients(self) -> None:
        with trio.CancelScope(shield=True):
            if self.accounts is not None and self._owns_accounts:
                await self.accounts.aclose()
            for name, client in self.clients.items():
                if name in self._owned:
                    await client.aclose()
            self._owned.clear()

    def _require_entered(self) -> None:
        if not self._entered:
            raise RuntimeError("use the engine inside `async with Engine(config) as engine:`")

    # ------------------------------------------------------------------ public API
    def stream(
        self, request: Request, *, allow: DeploymentFilter | None = None, passthrough: PassThrough | None = None
    ) -> OpenStream:
        """Stream ``request`` (``async with engine.stream(request) as events``). Errors are raised while
        iterating, as ``MuxError``. ``allow`` (see :data:`DeploymentFilter`) removes the deployments a client may
        not use, fallbacks included. ``passthrough``: the client takes the provider's bytes where an attempt is
        eligible (:mod:`muxtrio.engine.passthrough`); its batches then carry them."""
        self._require_entered()
        self.router.require(request.model)
        self.requests += 1
        return OpenStream(self, request, allow, passthrough)

    async def complete(
        self, request: Request, *, meta: StreamMeta | None = None, allow: DeploymentFilter | None = None
    ) -> Response:
        """Answer ``request`` whole (the upstream is asked not to stream). ``meta`` receives which provider and
        model served it; ``allow`` as for :meth:`stream`."""
        self._require_entered()
        self.router.require(request.model)
        self.requests += 1
        meta = meta if meta is not None else StreamMeta()
        outcome: list[Response] = []

        async def attempt(candidate: Candidate, req: Request) -> None:
            outcome.append(await self._complete_once(candidate, req))

        await self._run_attempts(request, meta, attempt, Progress(), allow)
        return outcome[-1]

    async def count_tokens(self, request: Request, *, allow: DeploymentFilter | None = None) -> tuple[int, bool]:
        """Input tokens of ``request``: ``(n, exact)``. Uses the serving provider's count endpoint where it has
        one, else the local estimate of :mod:`muxtrio.ir.tokens` (``exact`` False)."""
        self._require_entered()
        self.router.require(request.model)
        for name in self.router.chain(request.model):
            for deployment in self._resolve(name, allow):
                codec = self._codec(deployment.provider)
                pool = self.pools[deployment.provider.name]
                cred = pool.pick(deployment.upstream_model, trio.current_time())
                if cred is None:
                    continue
                rule = self.model_rules.find(deployment.upstream_model, codec.format)
                counted = apply_rule(request, rule)[0] if rule is not None else request
                try:
                    key, account = await self._credential(Candidate(deployment, pool, cred))
                except MuxError:
                    continue
                target = Target(
                    deployment.upstream_model,
                    key,
                    stream=False,
                    adaptive_thinking=rule is not None and rule.adaptive_thinking,
                    account=account,
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

    def buffer_statistics(self) -> tuple[int, int, int]:
        """Stream buffers now: (bytes held by the streams in progress, the largest any one stream's pool held since
        start, producers waiting on a full buffer)."""
        held = stalled = 0
        high_water = self.buffer_high_water
        for pool in self.live_pools:
            figures = pool.statistics()
            held += figures.in_use
            high_water = max(high_water, figures.peak)
            stalled += pool.waiting
        return held, high_water, stalled

    def statistics(self) -> dict[str, object]:
        now = trio.current_time() if self._entered else 0.0
        accounts = self.accounts
        return {
            "requests": self.requests,
            "failed_attempts": self.failed_attempts,
            "accounts": [a.status(_wall_clock()) for a in accounts.accounts.values()] if accounts is not None else [],
            "providers": {
                name: [vars_of(s) for s in pool.statistics(now)] for name, pool in self.pools.items()
            },
        }

    # ------------------------------------------------------------------ attempts
    def _resolve(self, model: str, allow: DeploymentFilter | None) -> list[Deployment]:
        deployments = self.router.resolve(model)
        return deployments if allow is None else [d for d in deployments if allow(model, d)]

    def _codec(self, provider: ProviderConfig) -> Codec:
        return provider_codec(provider.type, kind_of(provider.type).format)

    async def _run_attempts(
        self,
        request: Request,
        meta: StreamMeta,
        attempt: Callable[[Candidate, Request], Awaitable[None]],
        progress: Progress,
        allow: DeploymentFilter | None = None,
    ) -> None:
        """Try candidates until one attempt succeeds; raise the error to show the client otherwise. A stream cut
        after content reached the client is recovered on another candidate, or ends with the cut's error."""
        try:
            await self._answer(request, meta, attempt, progress, allow)
        except _Cut as cut:
            self._log_failure(cut.candidate, cut.error, cut.state, "recover_cut_stream")
            await self._recover(request, meta, attempt, progress, cut, allow)

    async def _answer(
        self,
        request: Request,
        meta: StreamMeta,
        attempt: Callable[[Candidate, Request], Awaitable[None]],
        progress: Progress,
        allow: DeploymentFilter | None = None,
    ) -> None:
        """The normal path: each model of the chain in turn, its credentials as they are available, transient
        failures retried within ``request-retry``, rate-limit cooldowns waited out within ``max-retry-interval``.
        Raises :class:`_Cut` when an attempt fails after content reached the consumer."""
        max_retries = self.config.request_retry  # per model: transient failures retried, and cooldowns waited out
        max_wait = self.config.max_retry_interval
        last_error: MuxError | None = None
        restore = True  # put signed thinking the client dropped back from the thinking cache
        chain = self.router.chain(request.model)
        await self.shared.refresh(d.provider.name for m in chain for d in self.router.resolve(m))
        for position, model in enumerate(chain):
            deployments, unfit = self._fitting(request, self._resolve(model, allow))
            if not deployments:
                last_error = last_error or unfit
                continue
            fallback_left = position + 1 < len(chain)
            candidates = Candidates(deployments, self.pools, max_retries, max_wait)
            async for candidate in candidates:
                if not await self.shared.claim(candidate.pool, candidate.credential,
                                               candidate.deployment.upstream_model):
                    continue  # another node holds this credential's one probe: it is out here now (picked no more)
                try:
                    await self._attempt(candidate, request, meta, attempt, progress, route=model, restore=restore)
                    return
                except _Cut:
                    raise
                except MuxError as err:
                    verdict, state = self._judge(candidate, err)
                    await self.shared.flush()  # what this failure taught, shared before anyone hears of it
                    last_error = _client_error(candidate, err, verdict)
                    if verdict.action is Action.FAIL and _rejects_signatures(err) and has_signatures(request):
                        # The history carries another provider's signatures: retry once without them.
                        request = without_signatures(request)
                        restore = False  # and do not put cached signatures back either
                        self._log_failure(candidate, err, state, "retry_without_signatures")
                        continue
                    other = candidates.failed(candidate)
                    step = next_step(
                        verdict,
                        other=other.credential.name if other is not None else None,
                        fallback_left=fallback_left,
                        retries=candidates.retries,
                        max_retries=max_retries,
                        max_wait=max_wait,
                        rng=self._rng,
                    )
                    self._log_failure(candidate, err, state, step.label)
                    candidates.retries += step.spends_retry
                    if step.move is Move.FAIL:
                        raise last_error from None
                    if step.move is Move.FALLBACK:
                        self._count_recovery("fallback", candidate)
                        break
                    if step.move is Move.LATER:
                        await candidates.later(step.delay)
                    meta.failovers += 1
                    self._count_recovery("retry" if step.move is Move.LATER else "failover", candidate)
            else:  # no candidate left for this model
                if candidates.outage is None:
                    last_error = last_error or self._no_credentials(deployments)
                else:
                    outage, upstream_model = candidates.outage
                    last_error = _account_error(last_error) or outage.error(upstream_model, candidates.ended_at)
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
                log.debug("request for %s: restored signed thinking for %d turn(s)", request.model, repaired)
        return request

    async def _recover(
        self,
        request: Request,
        meta: StreamMeta,
        attempt: Callable[[Candidate, Request], Awaitable[None]],
        progress: Progress,
        cut: _Cut,
        allow: DeploymentFilter | None = None,
    ) -> None:
        """Finish a cut stream: by continuation on prefill-capable candidates while the delivered answer is plain
        text, then by regeneration and splice on the others (``regenerate-on-cut``). Each candidate is asked once;
        the client gets the cut's error when none succeeds or a regeneration diverges."""
        original, request = cut.error, cut.request
        tried: set[Route] = {cut.candidate.route}
        for continuation in (True, False):
            for model in self.router.chain(request.model):
                deployments = [d for d in self._fitting(request, self._resolve(model, allow))[0]
                               if d.prefill == continuation]
                while (candidate := pick(deployments, self.pools, tried, trio.current_time())) is not None:
                    tried.add(candidate.route)
                    if continuation:
                        built = progress.continuation(request)
                    else:
                        built = progress.regeneration(request) if self.config.regenerate_on_cut else None
                    if built is None:
                        break
                    how = "continuation" if continuation else "regeneration"
                    log.info("cut stream: %s on %s (%s)", how, candidate.credential.name,
                             candidate.deployment.upstream_model)
                    meta.failovers += 1
                    self._count_recovery(how, candidate)
                    try:
                        await self._attempt(
                            candidate, built, meta, attempt, progress, route=model, restore=cut.restore, recovering=True
                        )
                        if continuation:
                            meta.continued = True
                        else:
                            meta.regenerated = True
                        return
                    except SpliceDiverged as err:
                        candidate.pool.on_neutral(candidate.credential)
                        self._log_failure(candidate, err, "", "end_stream_with_cut_error")
                        raise original from None
                    except _Cut as again:
                        self._log_failure(candidate, again.error, again.state, "next_recovery_candidate")
                    except MuxError as err:
                        _, state = self._judge(candidate, err)
                        self._log_failure(candidate, err, state, "next_recovery_candidate")
        raise original from None

    async def _attempt(
        self,
        candidate: Candidate,
        request: Request,
        meta: StreamMeta,
        attempt: Callable[[Candidate, Request], Awaitable[None]],
        progress: Progress,
        *,
        route: str,
        restore: bool,
        recovering: bool = False,
    ) -> None:
        """One attempt on ``candidate`` for the chain's model ``route``, with the request prepared for the provider
        (``_prepare``) and the pool's bookkeeping. A failure after content reached the consumer (outside a
        recovery) is raised as :class:`_Cut`, already judged."""
        meta.attempts += 1
        meta.provider = candidate.deployment.provider.name
        meta.model = candidate.deployment.upstream_model
        meta.route = route
        meta.credential = candidate.credential.name
        pool, cred, model = candidate.pool, candidate.credential, candidate.deployment.upstream_model
        prepared = self._prepare(request, kind_of(candidate.deployment.provider.type).format, meta, restore)
        pool.begin(cred, model, trio.current_time())
        self.shared.began(pool, cred)
        try:
            await self._account_attempt(attempt, candidate, replace(prepared, model=model))
        except MuxError as err:
            scrub_error(err, self.scrubber)
            self.failed_attempts += 1
            cut = progress.emitted and not isinstance(err, SpliceDiverged)
            self._count_attempt(candidate, attempt_outcome(err, cut=cut))
            if not recovering and progress.emitted:
                _, state = self._judge(candidate, err)
                raise _Cut(err, candidate, state, request, restore) from None
            raise
        except BaseException:
            pool.on_neutral(cred)  # cancelled (the client left): the attempt says nothing about the credential
            self.shared.record(pool, cred, None)  # frees a probe slot held for it (written by the next flush)
            raise
        else:
            had_state = cred.breaker is not BreakerState.CLOSED or bool(cred.cooldown_until or cred.refusals)
            pool.on_success(cred, model)
            self._count_attempt(candidate, "ok")
            if had_state:
                self.shared.record(pool, cred, model)
                await self.shared.flush()
        finally:
            pool.end(cred)
            self.shared.ended(pool, cred)

    def _count_attempt(self, candidate: Candidate, outcome: str) -> None:
        if self.metrics is not None:
            provider = candidate.deployment.provider.name
            self.metrics.attempts.labels(provider, candidate.credential.name, outcome).inc()

    def _count_recovery(self, kind: str, candidate: Candidate) -> None:
        if self.metrics is not None:
            self.metrics.recoveries.labels(kind, candidate.deployment.provider.name).inc()

    def _recoverable(self, request: Request) -> bool:
        """Whether a cut of this request's stream could be recovered (so the delivered answer is worth recording):
        some deployment takes a prefill, or regeneration is on and there is more than one credential to ask."""
        deployments = [d for m in self.router.chain(request.model) for d in self.router.resolve(m)]
        if any(d.prefill for d in deployments):
            return True
        routes = sum(len(self.pools[d.provider.name].credentials) for d in deployments)
        return self.config.regenerate_on_cut and routes > 1

    def _no_credentials(self, deployments: list[Deployment]) -> MuxError | None:
        """The error for deployments whose pools have nothing usable: no account logged in, or all disabled."""
        account_types = sorted({str(d.provider.type) for d in deployments if kind_of(d.provider.type).account})
        if not account_types:
            return None
        logins = " or ".join(f"`muxtrio login {t}`" for t in account_types)
        return MuxError(ErrorKind.UNAVAILABLE, f"no usable subscription account serves this model (run {logins})")

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

    def _judge_locally(self, candidate: Candidate, err: MuxError) -> tuple[Verdict, str]:
        """Classify a failed attempt and record what it says about the credential; returns the verdict and that
        effect in words, for the log."""
        now = trio.current_time()
        headers = err.headers if isinstance(err, UpstreamError) else {}
        pool, cred, model = candidate.pool, candidate.credential, candidate.deployment.upstream_model
        verdict = classify(
            err,
            headers,
            now=_wall_clock(),
            failures=cred.rate_limits + 1,
            max_retry_interval=self.config.max_retry_interval,
            rng=self._rng,
            model=model,
        )
        if verdict.effect is not Effect.NONE:
            cred.last_error = error_class(err)
        if verdict.effect is Effect.RATE_LIMITED:
            cooldown = verdict.cooldown or 0.0
            pool.on_rate_limit(cred, model, now, cooldown)
            return verdict, f"cooldown {cooldown:.1f} s"
        if verdict.effect is Effect.REFUSED:
            status = _provider_status(err)
            seconds = pool.on_refused(cred, model, now, status, model_scoped=verdict.model_scoped)
            scope = f"for {model!r}" if verdict.model_scoped else "for every model"
            return verdict, f"refused {scope}, out for {seconds:g} s"
        if verdict.effect is Effect.MODEL_MISSING:
            first = pool.on_model_missing(cred, model, now, err.message)
            again = "" if first else " (again)"
            return verdict, f"model missing{again}, checked again in {pool.missing_recheck_seconds:g} s"
        if verdict.effect is Effect.FAILURE:
            opened = pool.on_failure(cred, now, error_class(err))
            if opened:
                return verdict, f"circuit breaker opened for {pool.breaker_open_seconds:g} s"
            return verdict, f"failure {cred.consecutive_failures}/{pool.breaker_failures}"
        pool.on_neutral(cred)
        return verdict, ""

    def _judge(self, candidate: Candidate, err: MuxError) -> tuple[Verdict, str]:
        """Classify a failed attempt, record what it says about the credential (and queue it for the shared
        state: written by the next ``self.shared.flush()``); returns the verdict and that effect in words."""
        verdict, effect = self._judge_locally(candidate, err)
        self.shared.record(candidate.pool, candidate.credential, candidate.deployment.upstream_model)
        return verdict, effect

    def _log_failure(self, candidate: Candidate, err: MuxError, state: str, next_step: str) -> None:
        """One line per failed attempt: provider, credential label (never the key), upstream model, error class,
        provider status, the effect on the credential and what happens next; the reason text with ``debug``."""
        warn = state.startswith(("refused", "circuit breaker opened", "model missing,"))
        status = _provider_status(err)
        reason = ""
        if self.config.debug:
            reason = " reason=" + repr(err.message)  # scrubbed in _attempt (configured secrets, key-shaped tokens)
        log.log(
            logging.WARNING if warn else logging.INFO,
            "attempt failed: provider=%s credential=%s model=%s error=%s status=%s%s next=%s%s",
            candidate.deployment.provider.name, candidate.credential.name, candidate.deployment.upstream_model,
            error_class(err), status or "-", f" state={state!r}" if state else "", next_step, reason,
        )

    # ------------------------------------------------------------------ non-streaming attempt
    async def _complete_once(self, candidate: Candidate, request: Request) -> Response:
        deployment = candidate.deployment
        codec = self._codec(deployment.provider)
        wire = self._wire_request(codec, candidate, request, stream=False, access=await self._credential(candidate))
        timeouts = deployment.timeouts
        with _total_deadline(timeouts.total) as total:
            deadline = trio.current_time() + timeouts.first_byte
            response = await self._open(candidate, wire, codec, deadline)
            try:
                body = await _read_body(response, timeouts.idle, self.config.max_response_bytes)
            finally:
                await response.aclose()
            answer = codec.parse_response(body, _seed())
        if total.cancelled_caught:
            raise UpstreamTimeout("total", timeouts.total or 0.0)
        if request.tools:
            self.thinking_cache.remember(codec.format.value, answer.parts, trio.current_time())
        return answer

    def _wire_request(
        self, codec: Codec, candidate: Candidate, request: Request, *, stream: bool, access: Access
    ) -> WireRequest:
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
            access[0],
            stream=stream,
            max_tokens_field=rule.output_limit_field if rule is not None else None,
            adaptive_thinking=rule is not None and rule.adaptive_thinking,
            account=access[1],
        )
        wire = codec.emit_request(request, target)
        if self.payload_rules:
            rules = matching(self.payload_rules, (model, deployment.alias, request.model), codec.format)
            if rules:
                wire, changes = apply_payload_rules(wire, rules)
                for change in changes:
                    log.debug("payload rule for %s: %s", model, change)
        return wire

    async def _open(self, candidate: Candidate, wire: WireRequest, codec: Codec, deadline: float) -> UpstreamResponse:
        """Open the upstream response before ``deadline`` (the first-byte timeout); provider errors are raised
        parsed, with their headers attached for the retry hints. The caller closes the response (``aclose``) on
        every path: a plain ``try``/``finally`` per attempt instead of an async context manager's generator."""
        deployment = candidate.deployment
        client = self.clients[deployment.provider.name]
        with trio.move_on_at(deadline):
            response = await client.start(wire, proxy_url=candidate.credential.proxy_url)
            if response.status < 400:
                return response
            try:
                body = await response.read(MAX_ERROR_BODY)
            finally:
                await response.aclose()
            error = scrub_error(codec.parse_error(response.status, response.headers, body), self.scrubber)
            error.headers = dict(response.headers)
            raise error
        raise UpstreamTimeout("first_byte", deployment.timeouts.first_byte)

    # ------------------------------------------------------------------ streaming attempt
    async def _produce(
        self,
        request: Request,
        send: trio.MemorySendChannel[Batch | Failure],
        pool: BytePool,
        meta: StreamMeta,
        allow: DeploymentFilter | None = None,
        passthrough: PassThrough | None = None,
    ) -> None:
        progress = Progress()
        if self.config.recover_max_chars and self._recoverable(request):
            progress.transcript = Transcript()
            progress.transcript_limit = self.config.recover_max_chars
        async with send:

            def attempt(candidate: Candidate, req: Request) -> Awaitable[None]:
                # Not a coroutine of its own: the attempt's coroutine is ``_stream_once``'s, one suspended frame
                # fewer for every open stream. Called once meta names the attempt's route (pass-through decides).
                raw = passthrough is not None and eligible(
                    passthrough, self._codec(candidate.deployment.provider), meta, recovering=progress.emitted
                )
                return self._stream_once(candidate, req, send, pool, progress, raw=raw)

            try:
                await self._run_attempts(request, meta, attempt, progress, allow)
            except MuxError as err:
                await _send_failure(send, err)
            except ConsumerStalled as stalled:
                log.info("stream for %s abandoned: %s", request.model, stalled)
                await _send_failure(send, stalled.error())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the consumer left
            except Exception:
                log.exception("internal error while streaming %s", request.model)
                await _send_failure(send, MuxError(ErrorKind.INTERNAL, "internal gateway error"))
            else:
                meta.completed = True

    async def _stream_once(
        self,
        candidate: Candidate,
        request: Request,
        send: trio.MemorySendChannel[Batch | Failure],
        pool: BytePool,
        progress: Progress,
        *,
        raw: bool = False,
    ) -> None:
        deployment = candidate.deployment
        codec = self._codec(deployment.provider)
        wire = self._wire_request(codec, candidate, request, stream=True, access=await self._credential(candidate))
        timeouts = deployment.timeouts
        progress.attempt_usage = Usage()
        held: list[Event] = []  # Start/usage before the first content of this attempt
        cache = self.thinking_cache
        tracker = AnswerTracker(cache.max_bytes) if request.tools and cache.enabled else None
        with _total_deadline(timeouts.total) as total:
            first_deadline = trio.current_time() + timeouts.first_byte
            response = await self._open(candidate, wire, codec, first_deadline)
            try:
                decoder = codec.new_decoder(_seed(), max_event_bytes=self.config.max_event_bytes)
                # Pass-through: the provider's frames travel with their events (engine/passthrough.py).
                reader = RawReader(decoder, codec.format, request, self.config.max_event_bytes) if raw else None
                held_raw: list[bytes] = []  # the provider's bytes of the held events
                idle = timeouts.idle
                del wire  # the request body is sent; don't hold it (or orjson's buffer) for the stream's life
                got_events = False
                # One watchdog per attempt: the first-byte deadline until events flow, then the idle gap, re-armed
                # at most every `slack` seconds (moving a trio deadline per chunk cost ~8% of streaming CPU), so an
                # idle timeout fires between `idle` and `idle + slack` after the last chunk. It is lifted while the
                # reader waits on its own consumer: backpressure is not the provider's silence.
                slack = min(1.0, idle / 8)
                armed_at = -math.inf
                # Budget held by this reader right now; whatever path leaves the loop (a decoder refusing an
                # oversized event, a cut, cancellation) gives it back, so the next attempt never waits on a leak.
                cost: int | None = 0
                with trio.CancelScope(deadline=first_deadline) as watchdog:
                    try:
                        async for chunk in response.chunks():
                            cost = pool.try_acquire(len(chunk))
                            if cost is None:
                                # Waiting on the consumer is not the provider's silence: the watchdog is lifted and
                                # the consumer gets `idle` seconds to free budget.
                                watchdog.deadline = math.inf
                                cost = await pool.acquire(len(chunk), idle)
                            if reader is None:
                                events = decoder.feed(chunk)
                                if events:
                                    got_events = True
                                    if tracker is not None:
                                        tracker.add(events)
                                    cost = await self._forward(events, cost, progress, held, send, watchdog, idle)
                            else:
                                events, frames, tail = reader.feed(chunk)
                                if events:
                                    got_events = True
                                    if tracker is not None:
                                        tracker.add(events)
                                cost = await self._forward(
                                    events, cost, progress, held, send, watchdog, idle, frames, tail, held_raw
                                )
                            pool.release(cost)
                            cost = 0
                            if got_events:
                                now = trio.current_time()
                                if now - armed_at > slack or watchdog.deadline == math.inf:
                                    watchdog.deadline = now + idle
                                    armed_at = now
                            elif watchdog.deadline == math.inf:
                                watchdog.deadline = first_deadline
                    finally:
                        if cost:
                            pool.release(cost)
                    if reader is None:
                        events = decoder.flush()
                        if events:
                            await self._forward(events, 0, progress, held, send, watchdog, idle)
                    else:
                        events, frames, tail = reader.flush()
                        if tracker is not None and events:
                            tracker.add(events)
                        await self._forward(events, 0, progress, held, send, watchdog, idle, frames, tail, held_raw)
                if watchdog.cancelled_caught:
                    if got_events:
                        raise UpstreamTimeout("idle", idle)
                    raise UpstreamTimeout("first_byte", timeouts.first_byte)
            finally:
                await response.aclose()
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
        progress: Progress,
        held: list[Event],
        send: trio.MemorySendChannel[Batch | Failure],
        watchdog: trio.CancelScope,
        stall: float,
        raw: bytes | None = None,
        tail: bytes = b"",
        held_raw: list[bytes] | None = None,
    ) -> int:
        """Send an attempt's events to the consumer; returns the pool budget still to release (0 once the batch
        carries it). The send does not switch tasks while the channel has room, so the reader drains what the
        upstream socket already delivered and the writer then sends it all in one write; only a full channel
        (or pool) makes the reader wait — that is the backpressure, bounded by ``stall`` seconds
        (:class:`ConsumerStalled`).

        Pass-through (``held_raw`` given): ``raw``/``tail`` are the provider's bytes of ``events``; while the events
        are held (before the first content) their bytes are held with them, and frames without events (pings)
        still go to the client once content flows. ``raw`` None: translate (held bytes are dropped)."""
        out = progress.stitch(events, held) if events else []
        if held_raw is None:
            if not out:
                return cost
        elif raw is None:
            held_raw.clear()
            if not out:
                return cost
        elif not progress.emitted:
            if raw:
                held_raw.append(raw)
            return cost
        else:
            if held_raw:
                raw = b"".join(held_raw) + raw
                held_raw.clear()
            if not out and not raw and not tail:
                return cost
        batch = Batch(out, cost, raw, tail)
        if not progress.delivered:
            # The first batch goes out with a task switch, so the client sees its first token at once (TTFT).
            progress.delivered = True
            watchdog.deadline = math.inf
            await _send_within(send, batch, stall)
            return 0
        try:
            send.send_nowait(batch)
        except trio.WouldBlock:
            watchdog.deadline = math.inf
            await _send_within(send, batch, stall)
        return 0


class OpenStream:
    """What ``Engine.stream`` returns: on entry, the producer task starts in a nursery of its own and the consumer
    gets the :class:`EventStream`; on exit the producer is cancelled and the channel closed.

    A plain class rather than an ``@asynccontextmanager``: one open stream then holds no generator, no
    context-manager wrapper and no suspended frame for it (measured in ``perf/mem_server.py``). The semantics are
    the generator's: the consumer's exception leaves as itself (a ``MuxError``, not an ``ExceptionGroup``), after
    the producer has been cancelled and has finished; the producer never raises (it reports through the channel);
    a cancellation stays with the nursery, whose cancel scopes find ``Cancelled`` in groups themselves."""

    __slots__ = (
        "_allow", "_engine", "_manager", "_meta", "_nursery", "_passthrough", "_pool", "_receive", "_request"
    )

    def __init__(
        self, engine: Engine, request: Request, allow: DeploymentFilter | None, passthrough: PassThrough | None = None
    ) -> None:
        self._engine = engine
        self._request = request
        self._allow = allow
        self._passthrough = passthrough
        self._pool: BytePool | None = None
        self._meta: StreamMeta | None = None
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None
        self._receive: trio.MemoryReceiveChannel[Batch | Failure] | None = None

    async def __aenter__(self) -> EventStream:
        engine = self._engine
        send, receive = trio.open_memory_channel[Batch | Failure](CHANNEL_CAPACITY)
        pool = BytePool(engine.config.stream_buffer_bytes)
        meta = StreamMeta()
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._manager, self._nursery, self._receive, self._pool, self._meta = manager, nursery, receive, pool, meta
        engine.live_pools.add(pool)
        nursery.start_soon(engine._produce, self._request, send, pool, meta, self._allow, self._passthrough)
        return EventStream(receive, pool, meta)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        manager, nursery, receive, pool, meta = self._manager, self._nursery, self._receive, self._pool, self._meta
        assert manager is not None and nursery is not None and receive is not None
        assert pool is not None and meta is not None
        nursery.cancel_scope.cancel()
        receive.close()
        engine = self._engine
        engine.live_pools.discard(pool)
        figures = pool.statistics()
        meta.buffer_peak, meta.buffer_waits = figures.peak, figures.waits
        engine.buffer_high_water = max(engine.buffer_high_water, figures.peak)
        if exc is None or isinstance(exc, Exception):
            # The consumer's error (or none): wait for the cancelled producer, then let the error leave as itself.
            await manager.__aexit__(None, None, None)
            return
        # Cancelled, KeyboardInterrupt...: the nursery sees it (and may add the producer's own). It never swallows
        # it: its own cancel scope is cancelled only here, after the consumer's body ended.
        await manager.__aexit__(exc_type, exc, tb)


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


def _provider_status(err: MuxError) -> int:
    """The provider's HTTP status behind an error (0 when there was no response)."""
    if isinstance(err, UpstreamError) and err.provider_status:
        return err.provider_status
    return {ErrorKind.AUTHENTICATION: 401, ErrorKind.PERMISSION: 403}.get(err.kind, 0)


def _client_error(candidate: Candidate, err: MuxError, verdict: Verdict) -> MuxError:
    """What the client is told about a failed attempt, if it is the last one: the error itself, except a 404 for
    the model, which is said as a configuration fact naming the provider."""
    if verdict.effect is Effect.MODEL_MISSING:
        pool, model = candidate.pool, candidate.deployment.upstream_model
        now = trio.current_time()
        found = pool.outage(model, now)
        if found is not None and found.reason is OutageReason.MODEL_MISSING:
            return replace(found, status=_provider_status(err) or 404).error(model, now)
    return err


def _account_error(err: MuxError | None) -> MuxError | None:
    """A subscription account's own explanation (revoked: log in again; a usage limit and its reset), which says
    more to the client than the pool's summary of the outage it caused."""
    if isinstance(err, UpstreamError) and err.provider_type in ACCOUNT_ERROR_TYPES:
        return err
    return None


def _rejects_signatures(err: MuxError) -> bool:
    """A provider's 400 about reasoning signatures it cannot verify (Anthropic "Invalid `signature` in
    `thinking` block", Gemini "Corrupted thought signature")."""
    message = err.message.lower()
    return err.kind is ErrorKind.INVALID_REQUEST and ("signature" in message or "redacted_thinking" in message)


class _total_deadline:
    """``move_on_after(total)`` when a total timeout is configured. Without one, no scope is entered at all (an
    open stream then holds one cancel scope fewer); what ``with`` gives is a scope never entered, whose
    ``cancelled_caught`` stays False."""

    __slots__ = ("_scope",)

    def __init__(self, seconds: float | None) -> None:
        self._scope: trio.CancelScope | None = None
        if seconds is not None:
            self._scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def __enter__(self) -> trio.CancelScope:
        if self._scope is None:
            return _NEVER_ENTERED
        return self._scope.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._scope is None:
            return False
        return self._scope.__exit__(exc_type, exc, tb)


_NEVER_ENTERED = trio.CancelScope()
"""What ``_total_deadline`` gives when no total timeout is set: a scope no one enters (``cancelled_caught`` stays
False), shared rather than one per attempt."""


async def _read_body(response: UpstreamResponse, idle: float, limit: int) -> bytes:
    """The whole (decoded) body, at most ``limit`` bytes (:class:`ResponseTooLarge` beyond, raised as soon as the
    decoded bytes pass it), with at most ``idle`` seconds between chunks (one watchdog scope, deadline moved)."""
    with trio.CancelScope(deadline=trio.current_time() + idle) as watchdog:
        body = await response.read(limit, watchdog=watchdog, idle=idle)
    if watchdog.cancelled_caught:
        raise UpstreamTimeout("idle", idle)
    return body


async def _send_within(send: trio.MemorySendChannel[Batch | Failure], batch: Batch, stall: float) -> None:
    """Hand ``batch`` to the consumer, waiting at most ``stall`` seconds for room in the channel."""
    with trio.move_on_after(stall):
        await send.send(batch)
        return
    raise ConsumerStalled(stall)


async def _send_failure(send: trio.MemorySendChannel[Batch | Failure], err: MuxError) -> None:
    """Report ``err`` to the consumer. If the channel stays full (the consumer is stuck), give up: the channel then
    closes without ``StreamMeta.completed``, which the consumer reads as a truncated stream, never as an answer."""
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError), trio.move_on_after(FAILURE_DELIVERY_S):
        await send.send(Failure(err))

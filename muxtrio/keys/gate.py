"""The client-key gate of one worker: who a request's ``mx-`` key is, whether its limits admit the request, and
what the response used.

Request path (no database round trip in the common case):
1. :meth:`KeyGate.identify` — HMAC of the presented key (the database's secret), one dict lookup, then
   ``hmac.compare_digest`` on the stored digest. The lookup is by a keyed hash, so its timing says nothing about
   stored keys. A digest not in memory (a key made by another worker since the last refresh) is looked up once in
   the store; misses are remembered for a refresh interval. Revoked, disabled or expired -> 401.
2. :meth:`KeyGate.admit` — the model allowlist (403, and a :data:`DeploymentFilter` for the engine so no alias or
   fallback reaches a model the key may not use), then budgets (429 ``insufficient_quota``), the concurrency cap
   (429), requests per minute and tokens per minute (429 with ``Retry-After`` = seconds to the window's end). Units
   come from this worker's leases (:mod:`muxtrio.keys.limits`); only an exhausted lease costs a store call.
3. :meth:`KeyGate.settle` — when the response ends (whole, streamed, failed or cut by the client), the provider's
   reported usage replaces the input estimate reserved at admission; the concurrency slot is freed. Synchronous,
   so it runs in ``finally`` blocks even under cancellation.

Background (:meth:`KeyGate.run`): every ``sync-interval`` the batched settlements are written, idle leases given
back and last-used times recorded; every ``refresh-interval`` changed keys are reloaded (revocation, rotation and
new limits reach every worker within it; the worker that made the change applies it at once).

Invariants: the clear key is never stored, logged or kept past :meth:`identify`; a store outage never fails a
request (leases are then granted locally and written back when the store returns); the store is opened lazily, on
the first ``mx-`` key or management call, so gateways that never use client keys never touch it.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import trio

from muxtrio.config import Config
from muxtrio.engine.engine import DeploymentFilter
from muxtrio.engine.routing import Deployment, Router
from muxtrio.errors import ErrorKind, LimitError
from muxtrio.ir.events import Event, ReasoningDelta, TextDelta, ToolCallDelta
from muxtrio.ir.response import Usage
from muxtrio.ir.tokens import CHARS_PER_TOKEN
from muxtrio.keys.limits import (
    BUDGET_NAMES,
    BUDGETS,
    COST_KINDS,
    RPM,
    TOKEN_KINDS,
    TPM,
    Counter,
    KeyLimiter,
    Slots,
    reset_text,
)
from muxtrio.keys.model import ClientKey, Limits, hint, looks_like_client_key, new_key_id, new_secret
from muxtrio.keys.prices import input_cost, request_cost
from muxtrio.keys.store import COUNTER_RETENTION, KeyStore, open_key_store
from muxtrio.usage.store import default_sqlite_path

log = logging.getLogger("muxtrio.keys")

T = TypeVar("T")
MISS_CACHE_LIMIT = 10_000
CLEANUP_EVERY = 3600.0
_COST_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """The client key a request was made with (usage records read ``id`` and ``name``; never the key)."""

    id: str
    name: str
    key: ClientKey


@dataclass(slots=True)
class Ticket:
    """One admitted request: what it reserved, and what it used (filled in while it is served)."""

    identity: KeyIdentity
    model: str
    estimate: int
    reserved: dict[str, float] = field(default_factory=dict)
    allow: DeploymentFilter | None = None
    headers: tuple[tuple[str, str], ...] = ()
    usage: Usage | None = None
    served_model: str | None = None
    holds_slot: bool = False
    settled: bool = False
    finished: bool = False  # the response ended normally (so the provider's usage is final)
    produced_chars: int = 0  # text streamed so far (text, reasoning, tool arguments)

    def observe(self, usage: Usage, served_model: str | None) -> None:
        """Record the provider's usage so far (cumulative snapshots: the latest wins)."""
        self.usage = usage if self.usage is None else self.usage.merge(usage)
        if served_model:
            self.served_model = served_model

    def produced(self, event: Event) -> None:
        """Count what a stream delivered (for a settlement without the provider's final usage)."""
        if isinstance(event, ToolCallDelta):
            self.produced_chars += len(event.arguments)
        elif isinstance(event, TextDelta | ReasoningDelta):
            self.produced_chars += len(event.text)

    def final_usage(self) -> Usage | None:
        """The usage to settle with: the provider's when the response finished; for a stream cut short (client
        gone, provider failure) the larger of what the provider reported so far and the local estimate of what was
        streamed (:data:`CHARS_PER_TOKEN`), on top of the input estimate. None when nothing is known."""
        if self.finished or self.produced_chars == 0:
            return self.usage
        streamed = (self.produced_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
        usage = self.usage or Usage(input_tokens=self.estimate)
        return replace(usage, output_tokens=max(usage.output_tokens, streamed))


def _refused(kind: ErrorKind, message: str, **kw: Any) -> LimitError:
    return LimitError(kind, message, **kw)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


class KeyGate:
    """One per worker process (the app owns it). ``config`` is read on every call, so a reload may assign a new one
    (``api-keys``, ``prices``); the store's DSN is fixed once it is open."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: KeyStore | None = None
        self._open_lock = trio.Lock()
        self._slots_lock = trio.Lock()
        self._db = trio.CapacityLimiter(1)
        self._by_digest: dict[str, ClientKey] = {}
        self._by_id: dict[str, ClientKey] = {}
        self._limiters: dict[str, KeyLimiter] = {}
        self._misses: dict[str, float] = {}
        self._last_used: dict[str, float] = {}
        self._refreshed_at = 0.0
        self._synced_at = 0.0
        self._cleaned_at = 0.0
        self._store_down = False
        self.lease_calls = 0  # store calls made for leases (perf and docs report it)
        # This process's name for its concurrency-slot rows; rows without a heartbeat for ``stale_after`` seconds
        # (a worker that died) stop counting.
        self.worker = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.stale_after = max(10.0, 5 * config.client_keys.sync_interval)
        # Shared-state notifications (docs/deploy.md): ``on_change(key id)`` runs after every saved change (the
        # server publishes it to every node); :meth:`refresh_now` is what a node does when it hears of one.
        self.on_change: Callable[[str], Awaitable[None]] | None = None
        self._refresh_due = trio.Event()

    # ------------------------------------------------------------------ store access
    @property
    def enabled(self) -> bool:
        return self.config.client_keys.enabled and self.config.usage.enabled and not self.config.disable_auth

    @property
    def dsn(self) -> str:
        dsn = self.config.usage.dsn
        return dsn if dsn else f"sqlite://{default_sqlite_path()}"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._db)

    async def open(self) -> KeyStore:
        """The store, opened on first use (schema and secret created if absent) with every key loaded."""
        if self.store is not None:
            return self.store
        if not self.enabled:
            raise _refused(ErrorKind.UNAVAILABLE, "client keys are off (client-keys.enabled, or usage.dsn is \"\")")
        async with self._open_lock:
            if self.store is None:
                started = time.time()
                store = await self._call(open_key_store, self.dsn)
                for key in await self._call(store.all):
                    self._remember(key)
                self._refreshed_at = started
                self.store = store
                log.info("client keys: store %s opened, %d keys", store.label, len(self._by_id))
        assert self.store is not None
        return self.store

    def _remember(self, key: ClientKey) -> None:
        old = self._by_id.get(key.id)
        if old is not None and old.digest != key.digest:
            self._by_digest.pop(old.digest, None)
        self._by_id[key.id] = key
        self._by_digest[key.digest] = key
        self._misses.pop(key.digest, None)
        limiter = self._limiters.get(key.id)
        if limiter is not None:
            limiter.configure(key.limits)

    # ------------------------------------------------------------------ request path
    async def identify(self, presented: str | None) -> KeyIdentity | None:
        """The client key ``presented`` is, or None when it is not a client key (the flat ``api-keys`` list then
        decides). Raises a 401 for a client key that is unknown, revoked, disabled or expired — unless ``presented``
        is on the flat list, which keeps working unchanged."""
        if presented is None or not self.enabled or not looks_like_client_key(presented):
            return None
        store = self.store or await self.open()
        digest = store.digest(presented)
        key = self._by_digest.get(digest)
        if key is None:
            key = await self._lookup(store, digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            if any(hmac.compare_digest(presented.encode(), flat.encode()) for flat in self.config.api_keys):
                return None
            raise _refused(ErrorKind.AUTHENTICATION, "invalid API key: unknown client key")
        now = time.time()
        state = key.state(now)
        if state == "revoked":
            raise _refused(ErrorKind.AUTHENTICATION, f"client key {key.name!r} ({key.hint}) has been revoked")
        if state == "disabled":
            raise _refused(ErrorKind.AUTHENTICATION, f"client key {key.name!r} ({key.hint}) is disabled")
        if state == "expired":
            assert key.expires_at is not None
            raise _refused(
                ErrorKind.AUTHENTICATION, f"client key {key.name!r} ({key.hint}) expired at {_when(key.expires_at)}"
            )
        self._last_used[key.id] = now
        return KeyIdentity(key.id, key.name, key)

    def refuse_client_key(self, presented: str | None, where: str) -> None:
        """A 401 for a client key presented where client keys are not served (so none is served without its limits);
        keys on the flat list pass."""
        if presented is None or not looks_like_client_key(presented):
            return
        if any(hmac.compare_digest(presented.encode(), flat.encode()) for flat in self.config.api_keys):
            return
        raise _refused(
            ErrorKind.AUTHENTICATION, f"client keys (mx-…) are not accepted {where}; use HTTP, or a key of api-keys"
        )

    async def _lookup(self, store: KeyStore, digest: str) -> ClientKey | None:
        now = time.time()
        missed = self._misses.get(digest)
        if missed is not None and now - missed < self.config.client_keys.refresh_interval:
            return None
        try:
            key = await self._call(store.by_digest, digest)
        except Exception as exc:
            log.warning("client keys: store lookup failed (%s)", type(exc).__name__)
            return None
        if key is None:
            if len(self._misses) >= MISS_CACHE_LIMIT:
                self._misses.clear()
            self._misses[digest] = now
            return None
        self._remember(key)
        return key

    def access_filter(self, identity: KeyIdentity, model: str, router: Router) -> DeploymentFilter | None:
        """The engine filter for ``identity``'s allowlist (None when unrestricted); a 403 naming the model when the
        key may not use it, directly or through what it resolves to."""
        access = identity.key.access
        if access.unrestricted:
            return None
        name = identity.name
        if not access.names(model):
            raise _refused(ErrorKind.PERMISSION, f"model {model!r} is not allowed for client key {name!r}")

        def allow(step: str, deployment: Deployment) -> bool:
            return access.permits(step, (deployment.alias, deployment.upstream_model))

        served: list[str] = []
        for step in router.chain(model):
            deployments = router.resolve(step)
            if any(allow(step, d) for d in deployments):
                return allow
            for deployment in deployments:
                where = f"{deployment.alias} on {deployment.provider.name}"
                if where not in served:
                    served.append(where)
        if served:
            raise _refused(
                ErrorKind.PERMISSION,
                f"model {model!r} is not allowed for client key {name!r}: it resolves to "
                f"{', '.join(served)}, which the key may not use",
            )
        return allow  # nothing serves it at all: the engine answers its own 404

    def _limiter(self, key: ClientKey) -> KeyLimiter:
        limiter = self._limiters.get(key.id)
        if limiter is None:
            limiter = self._limiters[key.id] = KeyLimiter(key.id)
            limiter.configure(key.limits)
        return limiter

    async def admit(self, identity: KeyIdentity, model: str, estimate: int, router: Router) -> Ticket:
        """Admit one generation request of ``estimate`` input tokens on ``model``, or raise the 403/429."""
        ticket = Ticket(identity, model, estimate)
        ticket.allow = self.access_filter(identity, model, router)
        key = self._by_id.get(identity.id, identity.key)
        limiter = self._limiter(key)
        if not limiter.counters and limiter.slots is None:
            return ticket
        now = time.time()
        taken: list[tuple[Counter, float]] = []
        try:
            for kind in BUDGETS:
                counter = limiter.counters.get(kind)
                if counter is not None:
                    need = input_cost(self.config.prices, model, estimate) if kind in COST_KINDS else float(estimate)
                    amount = await self._take(key, counter, need, now, partial_ok=True)
                    if amount is None:
                        raise self._budget_spent(key, counter)
                    taken.append((counter, amount))
            slots = limiter.slots
            if slots is not None and not await self._take_slot(key, slots, now):
                raise _refused(
                    ErrorKind.RATE_LIMIT,
                    f"client key {key.name!r} has {slots.limit} requests in flight (across all workers); its "
                    f"concurrency cap is {slots.limit}",
                    retry_after=1.0,
                    headers=self._headers(limiter, now),
                )
            if slots is not None:
                ticket.holds_slot = True
            for kind, need in ((RPM, 1.0), (TPM, float(estimate))):
                counter = limiter.counters.get(kind)
                if counter is None:
                    continue
                need = min(need, counter.limit)
                amount = await self._take(key, counter, need, now, partial_ok=False)
                if amount is None:
                    what = "requests" if kind == RPM else "tokens"
                    raise _refused(
                        ErrorKind.RATE_LIMIT,
                        f"client key {key.name!r} is over its limit of {counter.limit:g} {what} per minute "
                        f"(this request needs {need:g}); retry in {math.ceil(counter.end - now)}s",
                        retry_after=counter.end - now,
                        headers=self._headers(limiter, now),
                    )
                taken.append((counter, amount))
        except LimitError:
            for counter, amount in taken:
                counter.refund(amount)
            if ticket.holds_slot and limiter.slots is not None:
                limiter.slots.release()
                ticket.holds_slot = False
            raise
        ticket.reserved = {counter.kind: amount for counter, amount in taken if counter.kind != RPM}
        ticket.headers = self._headers(limiter, now)
        return ticket

    async def _take(
        self, key: ClientKey, counter: Counter, need: float, now: float, *, partial_ok: bool
    ) -> float | None:
        """Spend ``need`` units, or None when refused. Budgets (``partial_ok``) admit while anything is left: they
        then spend what is left, and the settlement books the rest."""
        counter.roll(now)
        floor = (_COST_EPSILON if counter.kind in COST_KINDS else 1.0) if partial_ok else need
        need = max(need, floor)
        if counter.spend_local(need, now):
            return need
        if counter.dry_until <= now:
            await self._lease(key, counter, need, max(floor - counter.held, _COST_EPSILON))
        if counter.spend_local(need, now):
            return need
        if partial_ok and counter.held > 0 and counter.held >= floor - 1e-12:
            amount = counter.held
            counter.spend_local(amount, now)
            return amount
        # Nothing left in the store: later refusals stay local until units may have come back (another worker's
        # idle lease returned at its sync) or the window ends.
        counter.dry_until = min(now + self.config.client_keys.sync_interval, counter.end)
        return None

    async def _take_slot(self, key: ClientKey, slots: Slots, now: float) -> bool:
        """One concurrency slot: from this worker's leased slots, else leased from the store."""
        if slots.take_local(now):
            return True
        store = self.store
        assert store is not None
        async with self._slots_lock:  # a lease and a heartbeat never interleave (each writes this worker's row)
            if slots.take_local(now):
                return True
            holding = slots.held + slots.in_use
            self.lease_calls += 1
            try:
                granted, total = await self._call(
                    store.lease_slots, key.id, self.worker, slots.limit, slots.lease_size(), holding, now,
                    now - self.stale_after,
                )  # fmt: skip
            except Exception as exc:
                self._note_store_down(exc)
                granted, total = (1 if holding < slots.limit else 0), slots.total
            slots.held += granted
            slots.total = total
            slots.written = slots.held + slots.in_use
        return slots.take_local(now)

    def _note_store_down(self, exc: Exception) -> None:
        if not self._store_down:
            log.warning("client keys: store unavailable (%s); counting locally until it returns", type(exc).__name__)
            self._store_down = True

    async def _lease(self, key: ClientKey, counter: Counter, need: float, minimum: float) -> None:
        store = self.store
        assert store is not None
        want = counter.lease_size(need)
        spent, counter.pending = counter.pending, 0.0
        self.lease_calls += 1
        try:
            granted, used_after = await self._call(
                store.lease, key.id, counter.kind, counter.start, counter.limit, want, minimum, spent
            )
        except Exception as exc:
            counter.pending += spent
            self._note_store_down(exc)
            counter.held += need  # fail open: spend it here, write it back when the store returns
            counter.pending += need
            return
        self._store_down = False
        counter.granted(granted, used_after)

    def _budget_spent(self, key: ClientKey, counter: Counter) -> LimitError:
        unit = "" if counter.kind in COST_KINDS else " tokens"
        return _refused(
            ErrorKind.RATE_LIMIT,
            f"client key {key.name!r} has spent its {BUDGET_NAMES[counter.kind]} of {counter.limit:g}{unit}; "
            f"it resets at {_when(counter.end)}",
            code="insufficient_quota",
            retry_after=counter.end - time.time(),
        )

    def _headers(self, limiter: KeyLimiter, now: float) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for kind, what in ((RPM, "requests"), (TPM, "tokens")):
            counter = limiter.counters.get(kind)
            if counter is None:
                continue
            counter.roll(now)
            out += [
                (f"x-ratelimit-limit-{what}", f"{counter.limit:g}"),
                (f"x-ratelimit-remaining-{what}", f"{math.floor(counter.remaining()):d}"),
                (f"x-ratelimit-reset-{what}", reset_text(counter.end - now)),
            ]
        return tuple(out)

    def settle(self, ticket: Ticket) -> None:
        """The request ended: replace reservations with the provider's usage (kept as reserved when the provider
        reported none) and free the concurrency slot. Idempotent."""
        if ticket.settled:
            return
        ticket.settled = True
        limiter = self._limiters.get(ticket.identity.id)
        if limiter is None:
            return
        if ticket.holds_slot and limiter.slots is not None:
            limiter.slots.release()
        usage = ticket.final_usage()
        if usage is None:
            return
        tokens = float(usage.input_tokens + usage.output_tokens)
        cost = request_cost(self.config.prices, ticket.served_model, ticket.model, usage)
        now = time.time()
        for kind, counter in limiter.counters.items():
            if kind in TOKEN_KINDS:
                actual = tokens
            elif kind in COST_KINDS:
                actual = cost or 0.0
            else:
                continue
            counter.roll(now)
            counter.settle(actual - ticket.reserved.get(kind, 0.0))

    # ------------------------------------------------------------------ background
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync and refresh forever (start it in the lifespan's nursery); never raises."""
        task_status.started()
        settings = self.config.client_keys
        while True:
            with trio.move_on_after(min(settings.sync_interval, settings.refresh_interval)):
                await self._refresh_due.wait()
            due, self._refresh_due = self._refresh_due.is_set(), trio.Event()
            if self.store is None:
                continue
            now = time.time()
            try:
                if now - self._synced_at >= settings.sync_interval:
                    await self.sync()
                if due or now - self._refreshed_at >= settings.refresh_interval:
                    await self.refresh()
            except Exception as exc:
                log.warning("client keys: background sync failed (%s)", type(exc).__name__)

    async def refresh(self) -> None:
        store = self.store
        if store is None:
            return
        started = time.time()
        for key in await self._call(store.changed_since, self._refreshed_at - 1.0):
            self._remember(key)
        self._refreshed_at = started

    async def sync(self, *, final: bool = False) -> None:
        """Write batched settlements, return idle leases (all of them when ``final``), record last-used times."""
        store = self.store
        if store is None:
            return
        now = time.time()
        idle = 0.0 if final else self.config.client_keys.sync_interval
        async with self._slots_lock:
            heartbeats = []
            for key_id, limiter in self._limiters.items():
                slots = limiter.slots
                if slots is not None:
                    count = slots.idle_return(now, idle)
                    if count or slots.written:  # a row to refresh, or one to clear
                        heartbeats.append((key_id, self.worker, count))
                        slots.written = count
            await self._call(store.write_slots, heartbeats, now)
        deltas = []
        for key_id, limiter in self._limiters.items():
            for counter in limiter.counters.values():
                window, delta = counter.take_sync(now, idle)
                if delta:
                    deltas.append((key_id, counter.kind, window, delta))
        last_used, self._last_used = self._last_used, {}
        self._synced_at = now
        try:
            await self._call(store.adjust, deltas)
            await self._call(store.touch, last_used)
            if now - self._cleaned_at >= CLEANUP_EVERY:
                self._cleaned_at = now
                await self._call(store.delete_counters_before, now - COUNTER_RETENTION)
        except Exception:
            for key_id, kind, _window, delta in deltas:
                kept = self._limiters[key_id].counters.get(kind)
                if kept is not None and delta > 0:
                    kept.pending += delta
            raise

    async def close(self) -> None:
        """Give every lease back and write what is pending (shutdown)."""
        if self.store is None:
            return
        with trio.CancelScope(shield=True):
            try:
                await self.sync(final=True)
            except Exception as exc:
                log.warning("client keys: final sync failed (%s)", type(exc).__name__)
            await self._call(self.store.close)

    # ------------------------------------------------------------------ management
    async def create(
        self,
        name: str,
        *,
        models: tuple[str, ...] = (),
        limits: Limits | None = None,
        expires_at: float | None = None,
        owner: str | None = None,
        team: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[ClientKey, str]:
        """A new key: its record and the clear key (shown once, never stored)."""
        store = await self.open()
        secret = new_secret()
        key = ClientKey(
            id=new_key_id(), name=name, digest=store.digest(secret), hint=hint(secret), expires_at=expires_at,
            owner=owner, team=team, metadata=dict(metadata or {}), models=models, limits=limits or Limits(),
        )  # fmt: skip
        await self._call(store.insert, key)
        self._remember(key)
        return key, secret

    async def keys(self) -> list[ClientKey]:
        store = await self.open()
        return await self._call(store.all)

    async def find(self, ref: str) -> ClientKey | None:
        """A key by id, else by name (the newest not revoked one of that name)."""
        store = await self.open()
        key = await self._call(store.get, ref)
        if key is not None:
            return key
        named = [k for k in await self._call(store.all) if k.name == ref]
        live = [k for k in named if k.revoked_at is None] or named
        return live[-1] if live else None

    async def save(self, key: ClientKey) -> ClientKey:
        store = await self.open()
        key = replace(key, updated_at=max(time.time(), key.updated_at + 1e-6))
        await self._call(store.update, key)
        self._remember(key)
        if self.on_change is not None:
            await self.on_change(key.id)
        return key

    def refresh_now(self) -> None:
        """Reload changed keys now, not at the next ``refresh-interval`` (another node changed one)."""
        self._refresh_due.set()

    async def rotate(self, key: ClientKey) -> tuple[ClientKey, str]:
        """A new secret for the same key (id, limits, counters kept); the old secret stops working."""
        store = await self.open()
        secret = new_secret()
        rotated = await self.save(replace(key, digest=store.digest(secret), hint=hint(secret)))
        return rotated, secret

    async def revoke(self, key: ClientKey) -> ClientKey:
        return await self.save(replace(key, revoked_at=key.revoked_at or time.time(), enabled=False))

    async def usage_of(self, key: ClientKey) -> dict[str, float]:
        """Units used in the current windows, as the store counts them (leases included)."""
        store = await self.open()
        now = time.time()
        limiter = KeyLimiter(key.id)
        limiter.configure(key.limits)
        windows = {}
        for kind, counter in limiter.counters.items():
            counter.roll(now)
            windows[kind] = counter.start
        return await self._call(store.counters, key.id, windows)

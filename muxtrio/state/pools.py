"""The credential pools' shared view: what one node learns about a credential, every node acts on.

Per credential (named ``<provider>|<label>``, never by its key) one Redis hash ``muxtrio:cred:<provider>|<name>``
holds: ``cool:<model>`` (rate-limit cooldown end, epoch seconds; ``*`` = every model), ``refused:<scope>``
(``until|status|ladder step``) and ``breaker`` (``opened at|failures|last error class``, present only while open).
The one half-open probe of the cluster is ``muxtrio:probe:<provider>|<name>`` (``SET NX PX``, holder = node id).
In-flight counts are ``muxtrio:inflight:<provider>`` fields ``<node>|<name>``; a node is live while its lease in the
``muxtrio:nodes`` sorted set (scored by expiry, ms) is renewed, every ``lease_ttl / 3`` seconds; the fields of a node
whose lease expired are ignored at once and deleted by the next heartbeat of any node.

Invariants:
- Request path: :meth:`SharedPools.refresh` is the only awaited round trip before a pick (one pipeline for every
  credential of the request's providers), and with ``refresh_interval`` > 0 a node reads at most once per interval
  (requests arriving while a read is out wait for it instead of sending their own); :meth:`claim` adds one
  ``SET NX`` only when the pick is a probe; in-flight counts are published as absolute values every
  ``inflight_interval`` when they changed (no write per request); nothing is sent per streamed event. Failure and
  success outcomes that change a credential's state are written by :meth:`flush` (awaited, after the attempt) so a
  429 is shared before the client hears of it.
- Merging never shortens a local cooldown or refusal (the later end wins); an open breaker written by another node
  opens it here; a breaker no longer in Redis (closed by a successful probe elsewhere) closes here.
- Times in Redis are wall-clock epoch seconds; the pools keep trio's clock. Conversion happens here only.
- Redis down (the store answers None): nothing is merged, the pools act on local state; when it is back the re-sync
  hook writes every credential's state and this node's in-flight counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Final

import trio

from muxtrio.engine.pool import ALL_MODELS, BreakerState, CredentialPool, CredentialState
from muxtrio.state.store import PREFIX, Command, StateStore

NODES: Final = PREFIX + "nodes"
CRED_TTL_MS: Final = str(24 * 3600 * 1000)  # a credential's hash outlives any cooldown ladder step it holds


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(reply: object) -> dict[str, str]:
    """An HGETALL reply (a map under RESP3, a flat list under RESP2) as text."""
    if isinstance(reply, Mapping):
        return {_text(k): _text(v) for k, v in reply.items()}
    if isinstance(reply, list):
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    return {}


class SharedPools:
    """Keeps ``pools`` in step with the shared store (a no-op for a store that is not shared)."""

    def __init__(self, store: StateStore, pools: Mapping[str, CredentialPool], *, lease_ttl: float = 10.0,
                 probe_ttl: float = 60.0, refresh_interval: float = 0.0, inflight_interval: float = 0.1,
                 clock: Callable[[], float] = trio.current_time) -> None:
        self.store = store
        self.pools = pools
        self.lease_ttl = lease_ttl
        self.probe_ttl = probe_ttl
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.inflight_interval = inflight_interval
        self._refreshed_at: dict[tuple[str, ...], float] = {}
        self._refreshing: dict[tuple[str, ...], trio.Event] = {}
        self._dirty: set[tuple[str, CredentialState]] = set()  # in-flight counts changed since the last publish
        self._pending: list[Command] = []
        self._claimed: set[tuple[str, str]] = set()  # probes this node holds: (provider, credential name)

    @property
    def active(self) -> bool:
        return self.store.backend != "memory"

    async def start(self, stack: AsyncExitStack) -> None:
        if not self.active:
            return
        self.store.on_resync(self.resync)
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        nursery.start_soon(self._heartbeat)
        nursery.start_soon(self._publish_in_flight)

    def _offset(self) -> float:
        """Epoch seconds minus the pools' clock."""
        return time.time() - self.clock()

    @staticmethod
    def _cred_key(provider: str, cred: CredentialState) -> str:
        return f"{PREFIX}cred:{provider}|{cred.name}"

    @staticmethod
    def _probe_key(provider: str, cred: CredentialState) -> str:
        return f"{PREFIX}probe:{provider}|{cred.name}"

    # ------------------------------------------------------------------ request path
    async def refresh(self, providers: Iterable[str]) -> None:
        """Merge the shared view of every credential of ``providers`` into the pools: one round trip."""
        if not self.active or not self.store.shared:
            return
        names = tuple(p for p in dict.fromkeys(providers) if p in self.pools)
        if self.refresh_interval > 0:
            if self.clock() - self._refreshed_at.get(names, -math.inf) < self.refresh_interval:
                return  # fresh enough: another request of this node read it a moment ago
            running = self._refreshing.get(names)
            if running is not None:
                await running.wait()  # one round trip serves every request that arrives while it is out
                return
        done = self._refreshing[names] = trio.Event()
        try:
            started = self.clock()
            await self._read(names)
            self._refreshed_at[names] = started
        finally:
            done.set()
            if self._refreshing.get(names) is done:
                del self._refreshing[names]

    async def _read(self, names: tuple[str, ...]) -> None:
        now_ms = int(time.time() * 1000)
        commands: list[Command] = [["ZRANGEBYSCORE", NODES, str(now_ms), "+inf"]]
        for provider in names:
            commands.append(["HGETALL", f"{PREFIX}inflight:{provider}"])
            for cred in self.pools[provider].credentials:
                commands.append(["HGETALL", self._cred_key(provider, cred)])
                commands.append(["GET", self._probe_key(provider, cred)])
        replies = await self.store.pipeline(commands)
        if replies is None:
            return
        live = {_text(n) for n in replies[0]} if isinstance(replies[0], list) else set()
        offset = self._offset()
        at = 1
        for provider in names:
            elsewhere: dict[str, int] = {}
            for field, count in _fields(replies[at]).items():
                node, _, name = field.partition("|")
                if node != self.store.node and node in live:
                    elsewhere[name] = elsewhere.get(name, 0) + max(0, int(count))
            at += 1
            for cred in self.pools[provider].credentials:
                cred.in_flight_elsewhere = elsewhere.get(cred.name, 0)
                self._merge(provider, cred, _fields(replies[at]), offset)
                holder = replies[at + 1]
                cred.probe_elsewhere = holder is not None and _text(holder) != self.store.node
                at += 2

    def _merge(self, provider: str, cred: CredentialState, fields: dict[str, str], offset: float) -> None:
        breaker = None
        for field, value in fields.items():
            kind, _, scope = field.partition(":")
            if kind == "cool":
                until = float(value) - offset
                if until > cred.cooldown_until.get(scope, 0.0):
                    cred.cooldown_until[scope] = until
            elif kind == "refused":
                until_s, status, step = value.split("|")
                until = float(until_s) - offset
                if until > cred.refused_until.get(scope, 0.0):
                    cred.refused_until[scope] = until
                    cred.refusal_status[scope] = int(status)
                    cred.refusals[scope] = max(cred.refusals.get(scope, 0), int(step))
            elif kind == "breaker":
                breaker = value
        if breaker is not None:
            opened_s, failures, last = breaker.split("|", 2)
            opened = float(opened_s) - offset
            if cred.breaker is BreakerState.CLOSED or opened > cred.opened_at + 1e-3:
                cred.breaker = BreakerState.OPEN
                cred.opened_at = opened
                cred.consecutive_failures = max(cred.consecutive_failures, int(failures))
                cred.last_failure = last
        elif cred.breaker is not BreakerState.CLOSED and (provider, cred.name) not in self._claimed:
            cred.breaker = BreakerState.CLOSED  # a probe elsewhere succeeded
            cred.consecutive_failures = 0

    async def claim(self, pool: CredentialPool, cred: CredentialState, model: str) -> bool:
        """Before an attempt on ``cred``: when it is a probe, take the cluster's one probe slot. False (and the
        credential is out here until the holder is done) when another node holds it."""
        if not self.active or not cred.on_probation(model, self.clock()):
            return True
        key = self._probe_key(pool.provider, cred)
        replies = await self.store.pipeline(
            [["SET", key, self.store.node, "NX", "PX", str(int(self.probe_ttl * 1000))]])
        if replies is None:
            return True  # Redis down: local rules (one probe per node)
        if replies[0] is None:
            cred.probe_elsewhere = True
            return False
        self._claimed.add((pool.provider, cred.name))
        return True

    def began(self, pool: CredentialPool, cred: CredentialState) -> None:
        """``cred``'s in-flight count changed: published within ``inflight_interval`` (no write per request)."""
        if self.active:
            self._dirty.add((pool.provider, cred))

    ended = began

    async def _publish_in_flight(self) -> None:
        """Every ``inflight_interval``: queued outcomes, then this node's changed in-flight counts as absolute values
        (a round trip each, only when there is something to write)."""
        while True:
            await trio.sleep(self.inflight_interval)
            await self.flush()  # outcomes recorded on paths that do not flush themselves (stream recovery)
            if not self._dirty or not self.store.shared:
                continue
            dirty, self._dirty = self._dirty, set()
            by_provider: dict[str, list[str]] = {}
            for provider, cred in dirty:
                by_provider.setdefault(provider, []).extend([f"{self.store.node}|{cred.name}", str(cred.in_flight)])
            if await self.store.pipeline([["HSET", f"{PREFIX}inflight:{p}", *fields]
                                          for p, fields in by_provider.items()]) is None:
                self._dirty |= dirty  # the re-sync publishes every count anyway; keep them for the next try

    def record(self, pool: CredentialPool, cred: CredentialState, model: str | None) -> None:
        """After an outcome on ``cred`` for ``model``: queue its state for :meth:`flush` (set what is active,
        delete what that outcome cleared, free a probe this node held)."""
        if not self.active:
            return
        self._pending.extend(self._state_commands(pool.provider, cred, model))

    def _state_commands(self, provider: str, cred: CredentialState, model: str | None) -> list[Command]:
        now, offset = self.clock(), self._offset()
        key = self._cred_key(provider, cred)
        sets: list[str] = []
        dels: list[str] = []
        for scope, until in cred.cooldown_until.items():
            if until > now:
                sets += [f"cool:{scope}", f"{until + offset:.3f}"]
        for scope, until in cred.refused_until.items():
            if until > now:
                sets += [f"refused:{scope}",
                         f"{until + offset:.3f}|{cred.refusal_status.get(scope, 0)}|{cred.refusals.get(scope, 0)}"]
        if cred.breaker is BreakerState.OPEN:
            sets += ["breaker", f"{cred.opened_at + offset:.3f}|{cred.consecutive_failures}|{cred.last_failure}"]
        elif cred.breaker is BreakerState.CLOSED and model is not None:
            dels.append("breaker")
        if model is not None:
            for scope in (model, ALL_MODELS):
                if cred.cooldown_until.get(scope, 0.0) <= now:
                    dels.append(f"cool:{scope}")
                if cred.refusals.get(scope, 0) == 0:
                    dels.append(f"refused:{scope}")
        commands: list[Command] = []
        if sets:
            commands += [["HSET", key, *sets], ["PEXPIRE", key, CRED_TTL_MS]]
        if dels:
            commands.append(["HDEL", key, *dels])
        if (provider, cred.name) in self._claimed and not cred.probe_in_flight:
            self._claimed.discard((provider, cred.name))
            commands.append(["DEL", self._probe_key(provider, cred)])
        return commands

    async def flush(self) -> None:
        """Write what :meth:`record` queued (one round trip; none when nothing is queued)."""
        if not self._pending:
            return
        commands, self._pending = self._pending, []
        if await self.store.pipeline(commands) is None:
            return  # Redis down: the re-sync writes every credential's state when it is back

    # ------------------------------------------------------------------ liveness and re-sync
    async def _heartbeat(self) -> None:
        while True:
            await self._beat()
            await self.flush()
            await trio.sleep(self.lease_ttl / 3)

    async def _beat(self) -> None:
        now_ms = int(time.time() * 1000)
        replies = await self.store.pipeline([
            ["ZADD", NODES, str(now_ms + int(self.lease_ttl * 1000)), self.store.node],
            ["ZRANGEBYSCORE", NODES, "-inf", str(now_ms)],
            *(["HKEYS", f"{PREFIX}inflight:{p}"] for p in self.pools),
        ])
        if replies is None:
            return
        dead = {_text(n) for n in replies[1]} if isinstance(replies[1], list) else set()
        if not dead:
            return
        cleanup: list[Command] = [["ZREM", NODES, *sorted(dead)]]
        for provider, fields in zip(self.pools, replies[2:], strict=True):
            gone = [_text(f) for f in (fields if isinstance(fields, list) else [])
                    if _text(f).partition("|")[0] in dead]
            if gone:
                cleanup.append(["HDEL", f"{PREFIX}inflight:{provider}", *gone])
        await self.store.pipeline(cleanup)

    async def resync(self) -> None:
        """Redis is back (or first reached): publish this node's lease, in-flight counts and every credential's
        state, so what was learnt while apart is shared."""
        if not self.active:
            return
        now_ms = int(time.time() * 1000)
        commands: list[Command] = [["ZADD", NODES, str(now_ms + int(self.lease_ttl * 1000)), self.store.node]]
        for provider, pool in self.pools.items():
            counts = [x for c in pool.credentials for x in (f"{self.store.node}|{c.name}", str(c.in_flight))]
            if counts:
                commands.append(["HSET", f"{PREFIX}inflight:{provider}", *counts])
            for cred in pool.credentials:
                commands.extend(self._state_commands(provider, cred, None))
        self._pending.clear()
        await self.store.pipeline(commands, force=True)

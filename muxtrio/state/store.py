"""The shared state store: where every worker and node of one deployment keeps what they must agree on.

Two backends behind one class interface:
- :class:`MemoryStore` (``state.backend: memory``, the default): everything stays in this process. Its counters and
  pub/sub are real (a publish reaches this process's subscribers), so callers use one code path for both backends.
- :class:`RedisStore` (``state.backend: redis``): Redis through valkey-glide's async client, which runs under trio
  (docs/design.md, "Which Redis client under trio"). Commands travel as pipelines (:meth:`RedisStore.pipeline`: one
  round trip for any number of commands) or as background writes (:meth:`RedisStore.enqueue`: batched by one writer
  task, never awaited by a request).

Invariants:
- Never fails a request because of Redis: a command that errors or outlasts ``state.timeout`` marks the store *down*;
  while down, :meth:`pipeline` answers None at once (callers keep their local state), background writes are dropped
  (the callers' re-sync hooks re-publish their view), the counter primitives fall back to this process's own
  counters, and ``muxtrio_state_fallbacks_total`` counts every fallback. One WARNING per minute at most.
- While down, a reconnect task pings Redis with exponential backoff (0.1 s doubling to 5 s); when it answers, every
  hook registered with :meth:`StateStore.on_resync` runs before the store is marked up again.
- Every key starts with ``muxtrio:``. No secret is ever written: credentials are named by their label.
- The Redis URL may hold a password: it never reaches a log line (only host and port are named).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

import trio

if TYPE_CHECKING:
    from glide import GlideClient, GlideClientConfiguration

    from muxtrio.config import StateConfig
    from muxtrio.metrics import Metrics

log = logging.getLogger("muxtrio.state")

PREFIX: Final = "muxtrio:"
EVENTS_CHANNEL: Final = PREFIX + "events"  # every notification travels here as b"<topic>\n<payload>"
CLIENT_KEYS_TOPIC: Final = "client-keys"  # payload: the id of a client key changed on some node
WARN_INTERVAL_S: Final = 60.0
RECONNECT_FIRST_S: Final = 0.1
RECONNECT_MAX_S: Final = 5.0
WRITE_QUEUE: Final = 10_000  # background writes waiting for the writer; beyond that they are dropped (counted)

Command = Sequence[str | bytes]
Handler = Callable[[bytes], None]

# INCRBY with an expiry set only when the key is new (a fixed window that starts with its first hit): the count.
_INCR_WINDOW: Final = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""
# A slot under a cap: ZSET of holders scored by expiry (ms); expired holders are swept first. 1 taken, 0 full.
_ACQUIRE_SLOT: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StateStore:
    """What the engine, the server and the client-key limiter use; :class:`MemoryStore` is the local meaning of
    each call and :class:`RedisStore` the shared one.

    Counter primitives (for the client-key limiter, issue 16), atomic on Redis (a Lua script each):
    - ``await incr_window(key, amount, window_s)`` → the count in the fixed window that began with the key's first
      increment (the key expires with the window): requests or tokens per minute.
    - ``await acquire_slot(key, holder, limit, ttl_s)`` → True when ``holder`` took one of ``limit`` slots (a
      concurrency cap); a holder that never releases (its node died) is swept after ``ttl_s``;
      ``await release_slot(key, holder)`` gives it back.
    - ``await add(key, amount, ttl_s)`` → the running total (budgets), expiring ``ttl_s`` after its last change.
    Keys are the caller's names (``muxtrio:`` is prepended).
    """

    backend = "memory"

    def __init__(self, node: str | None = None) -> None:
        self.node = node or uuid.uuid4().hex[:12]
        self._handlers: dict[str, list[Handler]] = {}
        self._resync: list[Callable[[], Awaitable[None]]] = []
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (expires at, count)
        self._slots: dict[str, dict[str, float]] = {}  # key -> holder -> expires at
        self._totals: dict[str, tuple[float, int]] = {}

    @property
    def shared(self) -> bool:
        """Whether what this store holds is seen by other processes right now."""
        return False

    async def start(self, stack: AsyncExitStack) -> None:
        """Start the store's tasks in a nursery that ``stack`` closes."""

    # ------------------------------------------------------------------ notifications
    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` for every notification on ``topic`` (from this or, when shared, any node);
        returns the function that unsubscribes. Handlers run on the event loop and must not block."""
        self._handlers.setdefault(topic, []).append(handler)
        return lambda: self._handlers.get(topic, []).remove(handler) if handler in self._handlers.get(topic, []) \
            else None

    async def publish(self, topic: str, payload: bytes) -> None:
        """Notify every subscriber of ``topic`` (with Redis: on every node, this one included)."""
        self._deliver(topic, payload)

    def _deliver(self, topic: str, payload: bytes) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                handler(payload)
            except Exception:
                log.exception("state: a %r notification handler failed", topic)

    def on_resync(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` whenever the shared store comes back after being down (re-publish the local view)."""
        self._resync.append(hook)

    # ------------------------------------------------------------------ counters (local meaning)
    async def incr_window(self, key: str, amount: int, window_s: float) -> int:
        return self._local_incr_window(key, amount, window_s)

    async def acquire_slot(self, key: str, holder: str, limit: int, ttl_s: float) -> bool:
        return self._local_acquire(key, holder, limit, ttl_s)

    async def release_slot(self, key: str, holder: str) -> None:
        self._slots.get(key, {}).pop(holder, None)

    async def add(self, key: str, amount: int, ttl_s: float) -> int:
        return self._local_add(key, amount, ttl_s)

    def _local_incr_window(self, key: str, amount: int, window_s: float) -> int:
        now = time.monotonic()
        expires, count = self._windows.get(key, (0.0, 0))
        if expires <= now:
            expires, count = now + window_s, 0
        count += amount
        self._windows[key] = (expires, count)
        return count

    def _local_acquire(self, key: str, holder: str, limit: int, ttl_s: float) -> bool:
        now = time.monotonic()
        holders = {h: t for h, t in self._slots.get(key, {}).items() if t > now}
        self._slots[key] = holders
        if len(holders) >= limit:
            return False
        holders[holder] = now + ttl_s
        return True

    def _local_add(self, key: str, amount: int, ttl_s: float) -> int:
        now = time.monotonic()
        expires, total = self._totals.get(key, (0.0, 0))
        total = (total if expires > now else 0) + amount
        self._totals[key] = (now + ttl_s, total)
        return total

    # ------------------------------------------------------------------ raw commands (shared stores only)
    async def pipeline(self, commands: Sequence[Command], *, force: bool = False) -> list[object] | None:
        """Every command in one round trip; their replies, or None when there is no shared store to ask.
        ``force`` sends even while the store is marked down (the re-sync hooks, before it is marked up)."""
        return None

    def enqueue(self, commands: Sequence[Command]) -> None:
        """Write in the background (never awaited by a request); nothing to do without a shared store."""


class MemoryStore(StateStore):
    """``state.backend: memory``: one process."""


def redis_address(url: str) -> tuple[str, int, int, str | None, str | None]:
    """``redis://[user:password@]host[:port][/db]`` → (host, port, db, user, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("expected a redis:// URL")
    db = int(parts.path.strip("/") or 0)
    return (parts.hostname or "127.0.0.1", parts.port or 6379, db,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


class RedisStore(StateStore):
    """``state.backend: redis``: Redis through valkey-glide, with local fallback (see the module docstring)."""

    backend = "redis"

    def __init__(self, url: str, *, timeout: float = 0.25, node: str | None = None,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        super().__init__(node)
        self.host, self.port, self.db, self._user, self._password = redis_address(url)
        self.tls = url.startswith("rediss://")
        self.timeout = timeout
        self._client: GlideClient | None = None
        self._subscriber: GlideClient | None = None
        self._up = False
        self._warned_at = -WARN_INTERVAL_S
        self._wake = trio.Event()
        self._writes_send, self._writes_recv = trio.open_memory_channel[Sequence[Command]](WRITE_QUEUE)
        self._on_fallback = on_fallback
        self._token: trio.lowlevel.TrioToken | None = None
        self.fallbacks = 0

    @property
    def shared(self) -> bool:
        return self._up

    def _config(self, *, subscribe: bool) -> GlideClientConfiguration:
        from glide import GlideClientConfiguration, NodeAddress, ServerCredentials

        credentials = ServerCredentials(self._password, self._user) if self._password else None
        subscriptions = None
        if subscribe:
            modes = GlideClientConfiguration.PubSubChannelModes
            subscriptions = GlideClientConfiguration.PubSubSubscriptions(
                channels_and_patterns={modes.Exact: {EVENTS_CHANNEL}}, callback=self._on_message, context=None)
        return GlideClientConfiguration(
            [NodeAddress(self.host, self.port)], use_tls=self.tls, credentials=credentials, database_id=self.db,
            request_timeout=max(1, int(self.timeout * 1000)), lazy_connect=True, client_name=f"muxtrio-{self.node}",
            pubsub_subscriptions=subscriptions)

    async def start(self, stack: AsyncExitStack) -> None:
        from glide import GlideClient as Client
        from glide import Logger, LogLevel

        Logger.set_logger_config(LogLevel.OFF)  # outages are reported once a minute by muxtrio, not per command
        self._token = trio.lowlevel.current_trio_token()
        self._client = await Client.create(self._config(subscribe=False))
        self._subscriber = await Client.create(self._config(subscribe=True))
        stack.push_async_callback(self._close)
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        nursery.start_soon(self._writer)
        nursery.start_soon(self._reconnect)
        # Up from the start when Redis answers (the first resync publishes this node's view).
        self._wake.set()

    async def _close(self) -> None:
        with trio.CancelScope(shield=True):
            for client in (self._subscriber, self._client):
                if client is not None:
                    with trio.move_on_after(2), suppress(Exception):  # the server may already be gone
                        await client.close()

    # ------------------------------------------------------------------ health
    def _fallback(self, why: str) -> None:
        self.fallbacks += 1
        if self._on_fallback is not None:
            self._on_fallback(why)
        if self._up:
            self._up = False
            self._wake.set()
        self._warn(why)

    def _warn(self, why: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_INTERVAL_S:
            self._warned_at = now
            log.warning("state: Redis at %s:%d unavailable (%s); using local state until it answers again",
                        self.host, self.port, why)

    async def _reconnect(self) -> None:
        delay = RECONNECT_FIRST_S
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while not self._up:
                if await self._ping(self._client) and await self._ping(self._subscriber):
                    for hook in list(self._resync):
                        try:
                            await hook()
                        except Exception:
                            log.exception("state: a re-sync hook failed")
                    self._up = await self._ping(self._client)
                    if self._up:
                        log.info("state: Redis at %s:%d answering; shared state in use", self.host, self.port)
                        delay = RECONNECT_FIRST_S
                        break
                else:
                    self._warn("not answering")  # also when it was never reached (down at start)
                await trio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _ping(self, client: GlideClient | None) -> bool:
        """Whether ``client`` reaches Redis (a lazily connecting client, the subscriber's included, connects and
        subscribes on its first command)."""
        if client is None:
            return False
        try:
            with trio.fail_after(self.timeout * 2):
                await client.custom_command(["PING"])
            return True
        except Exception:  # any failure means "not yet": glide raises its own errors, trio a timeout
            return False

    # ------------------------------------------------------------------ commands
    async def pipeline(self, commands: Sequence[Command], *, force: bool = False) -> list[object] | None:
        if not commands:
            return []
        if not (self._up or force):
            if not self._up:
                self.fallbacks += 1
                if self._on_fallback is not None:
                    self._on_fallback("down")
            return None
        return await self._exec(commands)

    async def _exec(self, commands: Sequence[Command]) -> list[object] | None:
        from glide import Batch

        if self._client is None:
            return None
        batch = Batch(is_atomic=False)
        for command in commands:
            batch.custom_command(list(command))
        try:
            with trio.fail_after(self.timeout):
                replies = await self._client.exec(batch, raise_on_error=True)
        except trio.TooSlowError:
            self._fallback("timeout")
            return None
        except Exception as err:  # glide's RequestError family: connection, timeout, closing
            self._fallback(type(err).__name__)
            return None
        return list(replies or [])

    def enqueue(self, commands: Sequence[Command]) -> None:
        if not self._up:
            return  # the re-sync hooks re-publish what matters
        try:
            self._writes_send.send_nowait(commands)
        except trio.WouldBlock:
            self._fallback("write queue full")

    async def _writer(self) -> None:
        while True:
            batch = list(await self._writes_recv.receive())
            while len(batch) < 1000:  # everything queued meanwhile goes in the same round trip
                try:
                    batch.extend(self._writes_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if self._up:
                await self._exec(batch)

    # ------------------------------------------------------------------ notifications
    def _on_message(self, message: object, context: object) -> None:
        raw = getattr(message, "message", b"")
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        topic, _, payload = data.partition(b"\n")
        if self._token is None:
            return
        with suppress(trio.RunFinishedError):  # glide may call from its own thread: hand it to the event loop
            self._token.run_sync_soon(self._deliver, topic.decode(errors="replace"), payload)

    async def publish(self, topic: str, payload: bytes) -> None:
        replies = await self.pipeline([["PUBLISH", EVENTS_CHANNEL, topic.encode() + b"\n" + payload]])
        if replies is None:
            self._deliver(topic, payload)  # Redis down: this node at least hears it

    # ------------------------------------------------------------------ counters (shared meaning)
    async def incr_window(self, key: str, amount: int, window_s: float) -> int:
        replies = await self.pipeline([["EVAL", _INCR_WINDOW, "1", PREFIX + key, str(amount),
                                        str(max(1, int(window_s * 1000)))]])
        if replies is None or not isinstance(replies[0], int):
            return self._local_incr_window(key, amount, window_s)
        return replies[0]

    async def acquire_slot(self, key: str, holder: str, limit: int, ttl_s: float) -> bool:
        now_ms = int(time.time() * 1000)
        ttl_ms = max(1, int(ttl_s * 1000))
        replies = await self.pipeline([["EVAL", _ACQUIRE_SLOT, "1", PREFIX + key, str(now_ms), str(limit),
                                        str(now_ms + ttl_ms), holder, str(ttl_ms)]])
        if replies is None:
            return self._local_acquire(key, holder, limit, ttl_s)
        return replies[0] == 1

    async def release_slot(self, key: str, holder: str) -> None:
        self._slots.get(key, {}).pop(holder, None)
        self.enqueue([["ZREM", PREFIX + key, holder]])

    async def add(self, key: str, amount: int, ttl_s: float) -> int:
        replies = await self.pipeline([["INCRBY", PREFIX + key, str(amount)],
                                       ["PEXPIRE", PREFIX + key, str(max(1, int(ttl_s * 1000)))]])
        if replies is None or not isinstance(replies[0], int):
            return self._local_add(key, amount, ttl_s)
        return replies[0]



def make_store(config: StateConfig, metrics: Metrics | None = None) -> StateStore:
    """The store ``state:`` asks for; fallbacks counted in ``metrics`` when given."""
    if config.backend.value == "memory" or not config.url:
        return MemoryStore()
    count = None if metrics is None else (lambda why: metrics.state_fallbacks.labels(why).inc())
    return RedisStore(config.url, timeout=config.timeout, on_fallback=count)

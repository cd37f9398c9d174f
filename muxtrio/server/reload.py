"""Hot reload: the live configuration and engine of a worker, swapped atomically without cutting a stream.

Role: own the worker's :class:`Live` state (config + engine + scrubber), reload the config file on a trigger (the
file changed on disk, SIGHUP, the management API), keep the reload history, and carry operator actions on
credentials to every worker.

Semantics:
- A request pins the :class:`Live` it started with (:meth:`Reloader.acquire`) and finishes on it, streams included.
  New requests see the new one as soon as it is swapped in. A replaced engine is closed when its last request ends.
- Credential state (in-flight, cooldowns, breaker, counters) carries over for credentials whose provider (type,
  base URL) and key/proxy did not change (:meth:`muxtrio.engine.engine.Engine` ``previous``); removed credentials
  get no new requests, their open streams finish on the old engine.
- The file is read whole and validated whole (:func:`muxtrio.config.load_config_text`); an invalid file changes
  nothing, is logged once with the key path, and is the ``error`` of the last history record. The same content
  (SHA-256) is never applied twice.
- Settings that cannot change in a running process (:data:`RESTART_ONLY`: listeners, workers, TLS, shutdown grace,
  usage store, metrics, logging) keep their running values and are reported as ``needs_restart`` until a restart.
- Watching is a poll of ``os.stat`` every ``reload.poll-interval`` (default 1 s), then a 150 ms settle (debounce)
  until the file stops changing. Why polling and not inotify (``watchfiles``): it costs about a microsecond per poll,
  needs no native dependency or thread, and sees every way a file is replaced (editors' rename, Kubernetes
  ConfigMap symlink swaps, bind mounts, network filesystems) where inotify on the file misses some.
- With ``--workers N`` every worker watches the file and handles SIGHUP itself (the parent forwards it). Credential
  actions and API reloads are appended to a journal file in the directory named by ``MUXTRIO_WORKER_CONTROL`` (set
  by the parent) and applied by every other worker on its next poll (250 ms), whether it watches the file or not.
- Across nodes (``state.backend: redis``) the same actions go out on the shared store's ``control`` topic: a
  credential action applies on every node, an API reload carries the new file's text, which every other node
  validates, writes atomically to its own config file and applies (docs/deploy.md). A node ignores its own messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import attrs
import orjson
import trio

from muxtrio.config import Config, StateBackend, load_config_text
from muxtrio.config_edit import write_atomic
from muxtrio.engine.engine import Engine
from muxtrio.errors import ConfigError
from muxtrio.redact import Scrubber
from muxtrio.state.store import StateStore

if TYPE_CHECKING:
    import httpx2

    from muxtrio.metrics import Metrics

log = logging.getLogger("muxtrio.reload")

CONTROL_TOPIC = "control"  # shared-state topic: credential actions and reloads for every node
PROCESS_ID = uuid.uuid4().hex  # this process, in control messages (a process ignores its own)
PUBLISH_WAIT_S = 5.0  # how long a control message waits for a just-started store to connect (then: local only)

RESTART_ONLY = (
    "host", "port", "workers", "tls", "shutdown_grace", "http2", "keep_alive_timeout", "usage", "metrics", "logging",
    "client_keys",
)  # fmt: skip
"""Config fields a running process cannot change (listeners, processes, TLS files, stores, log handlers)."""
_NOT_SETTINGS = frozenset({"source", "warnings", "legacy_mappings"})
HISTORY = 20
SETTLE_S = 0.15
CONTROL_DIR_ENV = "MUXTRIO_WORKER_CONTROL"
_JOURNAL = "credential-actions.jsonl"


def yaml_key(field_name: str) -> str:
    return field_name.replace("_", "-")


@dataclass(eq=False, slots=True)
class Live:
    """One generation of a worker's state. ``users`` counts the requests pinned to it; ``done`` tells its host task
    to close the engine (retired and unused)."""

    config: Config
    engine: Engine
    scrubber: Scrubber
    users: int = 0
    retired: bool = False
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(slots=True)
class ReloadRecord:
    at: float
    trigger: str  # startup | watch | signal | api
    result: str  # applied | unchanged | rejected
    hash: str | None = None
    changes: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "trigger": self.trigger,
            "result": self.result,
            "hash": self.hash,
            "changes": self.changes,
            "needs_restart": self.needs_restart,
            "error": self.error,
        }


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _settings_diff(old: Config, new: Config) -> list[str]:
    return [
        yaml_key(a.name)
        for a in attrs.fields(Config)
        if a.name not in _NOT_SETTINGS and getattr(old, a.name) != getattr(new, a.name)
    ]


class Reloader:
    """The worker's live state and its reloads. Each engine lives in its own host task (engines own nurseries,
    which must be entered and exited by one task), started in :meth:`run`'s nursery and ended when its ``Live`` is
    retired and unused. ``on_swap`` callbacks see every new ``Live``; ``on_record`` every history record."""

    def __init__(
        self,
        config: Config,
        *,
        transports: dict[str, httpx2.AsyncBaseTransport] | None = None,
        metrics: Metrics | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.transports = transports
        self.metrics = metrics
        self.env = env
        self.on_swap: list[Callable[[Live], None]] = []
        self.on_record: list[Callable[[ReloadRecord], None]] = []
        self._nursery: trio.Nursery | None = None
        self.source = config.source
        self.live: Live | None = None
        self.history: deque[ReloadRecord] = deque(maxlen=HISTORY)
        self.last_error: str | None = None
        self.applied_hash: str | None = None
        self.draining: set[Live] = set()
        self._startup_file: Config | None = None  # the file as parsed at startup: what "needs restart" compares to
        self._lock = trio.Lock()
        self.initial = config
        self._journal_offset = 0
        self.action_handler: Callable[[dict[str, object]], None] | None = None
        if self.source is not None:
            text = self._read(self.source)
            if text is not None:
                self.applied_hash = content_hash(text)
                try:
                    self._startup_file = load_config_text(text, self.source, env=self.env)
                except ConfigError:
                    self._startup_file = None

    # ------------------------------------------------------------------ lifecycle
    async def _host(
        self, config: Config, previous: Engine | None, *, task_status: trio.TaskStatus[Live] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Enter an engine for ``config``, hand its ``Live`` over, and close it when that ``Live`` is done (or the
        worker stops). A failure to start raises to whoever started this task."""
        async with Engine(config, transports=self.transports, metrics=self.metrics, previous=previous) as engine:
            engine.state.subscribe(CONTROL_TOPIC, self._on_peer)
            live = Live(config, engine, engine.scrubber)
            task_status.started(live)
            await live.done.wait()

    def acquire(self) -> Live:
        """Pin the current state for one request; pair with :meth:`release`."""
        live = self.live
        if live is None:
            raise RuntimeError("the reloader is not open")
        live.users += 1
        return live

    async def release(self, live: Live) -> None:
        live.users -= 1
        if live.retired and live.users == 0 and live in self.draining:
            self.draining.discard(live)
            live.done.set()
            log.info("the previous configuration's last request finished; its engine closes")

    # ------------------------------------------------------------------ reloading
    @staticmethod
    def _read(path: str) -> str | None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError):
            return None

    def needs_restart(self, file_config: Config) -> list[str]:
        baseline = self._startup_file or self.initial
        return [yaml_key(name) for name in RESTART_ONLY if getattr(file_config, name) != getattr(baseline, name)]

    def validate(self, text: str) -> Config:
        """The config ``text`` would give (raises :class:`ConfigError` naming the key path)."""
        if self.source is None:
            raise ConfigError("", "the gateway runs without a config file")
        return load_config_text(text, self.source, env=self.env)

    async def reload(self, trigger: str, *, quiet_unchanged: bool = False) -> ReloadRecord:
        """Read the config file and apply it when its content changed."""
        async with self._lock:
            if self.source is None:
                return self._record(ReloadRecord(time.time(), trigger, "rejected", error="no config file"))
            text = self._read(self.source)
            if text is None:
                error = f"cannot read config file {self.source!r}"
                log.warning("config reload (%s) rejected: %s; still serving the previous configuration", trigger, error)
                self.last_error = error
                return self._record(ReloadRecord(time.time(), trigger, "rejected", error=error))
            digest = content_hash(text)
            if digest == self.applied_hash:
                record = ReloadRecord(time.time(), trigger, "unchanged", digest)
                return record if quiet_unchanged else self._record(record)
            try:
                file_config = self.validate(text)
            except ConfigError as exc:
                error = str(exc)
                log.warning(
                    "config reload (%s) rejected: %s; still serving the previous configuration", trigger, error
                )
                self.last_error = error
                return self._record(ReloadRecord(time.time(), trigger, "rejected", digest, error=error))
            try:
                return await self._apply(file_config, digest, trigger)
            except Exception as exc:  # building the new engine failed: keep serving the old one
                log.exception("config reload (%s) failed while building the new engine; still serving the previous "
                              "configuration", trigger)
                self.last_error = f"the new configuration could not be started ({type(exc).__name__})"
                return self._record(ReloadRecord(time.time(), trigger, "rejected", digest, error=self.last_error))

    async def _apply(self, file_config: Config, digest: str, trigger: str) -> ReloadRecord:
        old = self.live
        assert old is not None
        pinned = attrs.evolve(file_config, **{name: getattr(old.config, name) for name in RESTART_ONLY})
        changes = _settings_diff(old.config, pinned)
        needs_restart = self.needs_restart(file_config)
        assert self._nursery is not None
        new: Live = await self._nursery.start(self._host, pinned, old.engine)
        # Nothing below can fail: from here on the swap is complete.
        self.live = new
        self.applied_hash = digest
        self.last_error = None
        old.retired = True
        if old.users == 0:
            old.done.set()
        else:
            self.draining.add(old)
        for callback in self.on_swap:
            callback(new)
        for warning in file_config.warnings:
            log.warning("config: %s", warning)
        log.info(
            "config reloaded (%s): changed %s%s; %d request(s) finish on the previous configuration",
            trigger, ", ".join(changes) or "nothing that affects serving",
            f"; needs restart: {', '.join(needs_restart)}" if needs_restart else "", old.users,
        )  # fmt: skip
        return self._record(ReloadRecord(time.time(), trigger, "applied", digest, changes, needs_restart))

    def _record(self, record: ReloadRecord) -> ReloadRecord:
        self.history.append(record)
        for callback in self.on_record:
            callback(record)
        return record

    # ------------------------------------------------------------------ background tasks
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the first engine (raising when it cannot start), then watch the file, SIGHUP and the workers'
        journal until cancelled; cancelling closes every engine."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.live = await nursery.start(self._host, self.initial, None)
            self.history.append(ReloadRecord(time.time(), "startup", "applied", self.applied_hash))
            config = self.initial
            if self.source is not None and config.reload.watch:
                nursery.start_soon(self._watch, self.source, config.reload.poll_interval)
            if os.environ.get(CONTROL_DIR_ENV):
                nursery.start_soon(self._follow_journal, config.reload.poll_interval)
            await nursery.start(self._signals)
            task_status.started()

    async def _signals(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if threading.current_thread() is not threading.main_thread():
            task_status.started()  # signals reach the main thread only; embedding in a thread has no SIGHUP
            return
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                log.info("received SIGHUP: reloading the config file")
                await self.reload("signal")

    async def _watch(self, path: str, interval: float) -> None:
        last = _stat(path)
        while True:
            await trio.sleep(interval)
            current = _stat(path)
            if current == last:
                continue
            # Debounce: editors write in several steps; wait until the file stops changing.
            while True:
                await trio.sleep(SETTLE_S)
                settled = _stat(path)
                if settled == current:
                    break
                current = settled
            last = current
            await self.reload("watch", quiet_unchanged=True)

    # ------------------------------------------------------------------ credential actions across workers
    def broadcast(self, action: dict[str, object], *, config_text: str | None = None) -> None:
        """Append ``action`` to the workers' journal (no-op with one worker) and, with a shared state store, publish
        it to every other node (a reload with ``config_text``: the file this node applied)."""
        self._publish(action, config_text)
        directory = os.environ.get(CONTROL_DIR_ENV)
        if not directory:
            return
        line = orjson.dumps({**action, "pid": os.getpid()}) + b"\n"
        fd = os.open(os.path.join(directory, _JOURNAL), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one small O_APPEND write: never interleaved with another worker's line
        finally:
            os.close(fd)

    async def _follow_journal(self, interval: float) -> None:
        directory = os.environ[CONTROL_DIR_ENV]
        path = os.path.join(directory, _JOURNAL)
        while True:
            if self._apply_journal(path):
                await self.reload("api", quiet_unchanged=True)
            await trio.sleep(min(interval, 0.25))

    def _apply_journal(self, path: str) -> bool:
        """Apply the other workers' new credential actions; True when one of them asked for a reload."""
        try:
            with open(path, "rb") as handle:
                handle.seek(self._journal_offset)
                data = handle.read()
        except OSError:
            return False  # not written yet (or the run directory is gone at shutdown)
        end = data.rfind(b"\n") + 1
        self._journal_offset += end
        reload = False
        for raw in data[:end].splitlines():
            try:
                action = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(action, dict) or action.get("pid") == os.getpid():
                continue
            if action.get("action") == "reload":
                reload = True
            elif self.action_handler is not None:
                self.action_handler(action)
        return reload


    # ------------------------------------------------------------------ actions across nodes (shared state)
    def _publish(self, action: dict[str, object], config_text: str | None) -> None:
        live, nursery = self.live, self._nursery
        if live is None or nursery is None or live.config.state.backend is not StateBackend.REDIS:
            return
        message: dict[str, object] = {**action, "origin": PROCESS_ID}
        if config_text is not None:
            message["config"] = config_text
        nursery.start_soon(self._send, live.engine.state, orjson.dumps(message))

    @staticmethod
    async def _send(store: StateStore, payload: bytes) -> None:
        """Publish once the store is connected: an engine a reload just started connects in the background."""
        with trio.move_on_after(PUBLISH_WAIT_S):
            while not store.shared:  # noqa: ASYNC110 (the store exposes a flag, not an event)
                await trio.sleep(0.05)
        await store.publish(CONTROL_TOPIC, payload)

    def _on_peer(self, payload: bytes) -> None:
        """A control message from the shared store (runs on the event loop: never blocks)."""
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("origin") == PROCESS_ID or self._nursery is None:
            return
        if message.get("action") == "reload":
            text = message.get("config")
            self._nursery.start_soon(self._peer_reload, text if isinstance(text, str) else None)
        elif self.action_handler is not None:
            self.action_handler(message)

    async def _peer_reload(self, text: str | None) -> None:
        """Another node reloaded through its API: take its file (validated whole first) and apply it."""
        if text is not None and self.source is not None and content_hash(text) != self.applied_hash:
            try:
                self.validate(text)
            except ConfigError as exc:
                log.warning("config from another node rejected: %s; still serving the previous configuration", exc)
                return
            await trio.to_thread.run_sync(write_atomic, self.source, text)
        await self.reload("peer", quiet_unchanged=True)


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino

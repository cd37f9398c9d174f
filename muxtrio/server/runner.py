"""Run the gateway under Hypercorn's trio worker: one process, or ``workers`` processes sharing one listening socket.

Invariants:
- SIGINT/SIGTERM stop accepting; open streams get ``shutdown-grace`` seconds to finish; then the engine closes. A
  second SIGINT/SIGTERM during that drain stops at once (one log line, no traceback). SIGHUP reloads the config
  file (:mod:`muxtrio.server.reload`, handled by the app); the parent of several workers forwards it to each worker.
  The last line logged is ``stopped``.
- Connections are accepted and supervised by :mod:`muxtrio.server.listener`: one connection's failure never ends the
  process; HTTP/2 only when ``http2`` is enabled.
- Every log line is one line: the formatter escapes control characters in the message (:mod:`muxtrio.logs`).
- A port already in use (or any bind error) is one line on stderr and exit code 1, not a traceback.
- With several workers the parent binds the sockets once and passes them to spawned children, so all workers
  accept on the same port; each child runs its own trio loop and Engine (no shared state between workers).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from multiprocessing.synchronize import Event as EventType
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets

from muxtrio import logs
from muxtrio.config import Config, redact_url
from muxtrio.metrics import cleanup_multiprocess, prepare_multiprocess, worker_exited
from muxtrio.server import listener
from muxtrio.server.app import MuxApp
from muxtrio.server.observe import usage_dsn
from muxtrio.server.reload import CONTROL_DIR_ENV

log = logging.getLogger("muxtrio")


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"[{config.host}]:{config.port}" if ":" in config.host else f"{config.host}:{config.port}"]
    hc.worker_class = "trio"
    hc.accesslog = None
    hc.errorlog = logging.getLogger("muxtrio.hypercorn")
    hc.graceful_timeout = config.shutdown_grace
    hc.keep_alive_max_requests = 1_000_000  # SDK clients keep connections for long; don't cut them every 1000
    hc.backlog = 1024
    hc.h11_max_incomplete_size = 64 * 1024
    # Above our own limit, so the app answers an oversized WebSocket message with an error event and keeps the
    # socket, instead of Hypercorn closing it with 1009.
    hc.websocket_max_message_size = config.max_request_bytes + 64 * 1024
    hc.websocket_ping_interval = config.keepalive_interval
    hc.keep_alive_timeout = config.keep_alive_timeout
    if config.tls.enable:
        hc.certfile = config.tls.cert
        hc.keyfile = config.tls.key
    return hc


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _serve(config: Config, hc: HypercornConfig, sockets: Sockets | None, parent: _Stop | None) -> None:
    app = MuxApp(config)
    stop, now = trio.Event(), trio.Event()
    # Everything imported so far lives for the whole process: move it out of the collector's generations so
    # full collections (the p99 latency spikes) scan only per-request objects.
    gc.collect()
    gc.freeze()
    async with trio.open_nursery() as nursery:
        if parent is not None:
            nursery.start_soon(_follow_parent, parent, stop, now)
        else:
            nursery.start_soon(_watch_signals, config, stop, now)
        await listener.serve(app, hc, http2=config.http2, sockets=sockets, stop=stop, now=now)
        nursery.cancel_scope.cancel()


async def _watch_signals(config: Config, stop: trio.Event, now: trio.Event) -> None:
    """First SIGINT/SIGTERM: drain; second: stop at once. (SIGHUP is the app's: a reload.)"""
    with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        async for signum in signals:
            _on_signal(signum, config, stop.is_set())
            if stop.is_set():
                now.set()
            stop.set()


def _on_signal(signum: int, config: Config, draining: bool) -> None:
    name = signal.Signals(signum).name
    if signum == signal.SIGHUP:
        log.info("received %s: every worker reloads the config file", name)
    elif draining:
        log.warning("received %s again: stopping now, without waiting for open requests", name)
    else:
        log.info(
            "received %s: shutting down, draining open requests for up to %gs (send it again to stop at once)",
            name, config.shutdown_grace,
        )  # fmt: skip


class _Stop:
    """The parent's two stop requests, shared with spawned workers (a multiprocessing Event cannot wake trio)."""

    def __init__(self, ctx: Any) -> None:
        self.pid = os.getpid()  # made in the parent: a worker whose parent pid differs is an orphan
        self.drain: EventType = ctx.Event()
        self.now: EventType = ctx.Event()


async def _follow_parent(parent: _Stop, stop: trio.Event, now: trio.Event) -> None:
    """Drain when the parent asks, stop at once when it asks again — or when it is gone (killed with SIGKILL, say):
    a worker never outlives its parent, holding the port and the parent's output pipes."""
    def orphaned() -> bool:
        return os.getppid() != parent.pid  # the parent's pid as it recorded it: also right if it died before we ran

    while not parent.drain.is_set() and not orphaned():  # noqa: ASYNC110 (polling: see _Stop)
        await trio.sleep(0.2)
    if orphaned():
        log.warning("the parent process is gone: stopping this worker now")
        stop.set()
        now.set()
        return
    stop.set()
    while not parent.now.is_set() and not orphaned():  # noqa: ASYNC110
        await trio.sleep(0.2)
    now.set()


def _worker(config: Config, sockets: Sockets, parent: _Stop, index: int) -> None:
    # The parent owns the signals: a Ctrl-C or a hang-up reaches the whole process group. (SIGHUP: the app's reload
    # takes it over while serving; the parent forwards its own, so a group-wide hang-up reloads twice, the second
    # time "unchanged".)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(config, rotate=index == 0)  # one rotating writer per log file; the others follow it
    hc = hypercorn_config(config)
    for sock in sockets.insecure_sockets + sockets.secure_sockets:
        sock.listen(hc.backlog)
    trio.run(_serve, config, hc, sockets, parent)


def run(config: Config) -> int:
    """Serve until SIGINT/SIGTERM. Returns the process exit code."""
    logs.configure(config, rotate=config.workers <= 1)
    hc = hypercorn_config(config)
    try:
        sockets = hc.create_sockets()
    except OSError as exc:
        print(f"muxtrio: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    scheme = "https" if config.tls.enable else "http"
    log.info("muxtrio listening on %s://%s:%d (%d worker(s))", scheme, config.host, config.port, config.workers)
    for line in startup_summary(config):
        log.info("%s", line)
    if config.workers <= 1:
        for sock in sockets.insecure_sockets + sockets.secure_sockets:
            sock.listen(hc.backlog)
        trio.run(_serve, config, hc, sockets, None)
        log.info("stopped")
        return 0
    metrics_dir = prepare_multiprocess()  # one Prometheus view of every worker (see muxtrio.metrics)
    try:
        code = _run_workers(config, sockets)
    finally:
        cleanup_multiprocess(metrics_dir)
    log.info("stopped")
    return code


def startup_summary(config: Config) -> list[str]:
    """What this gateway serves, in a few log lines: providers with credential counts and models, the usage store."""
    lines = []
    for provider in config.providers:
        if not provider.enabled:
            continue
        names = ", ".join(m.client_name for m in provider.models) or "any name its type serves"
        lines.append(
            f"provider {provider.name} ({provider.type.value}): {len(provider.credentials)} credential(s); "
            f"models: {names}"
        )
    dsn = usage_dsn(config)
    lines.append(f"usage records: {redact_url(dsn) if dsn else 'off'}")
    return lines


def _run_workers(config: Config, sockets: Sockets) -> int:
    ctx = multiprocessing.get_context("spawn")
    parent = _Stop(ctx)
    processes = [
        ctx.Process(target=_worker, args=(config, sockets, parent, index), daemon=False)
        for index in range(config.workers)
    ]

    def on_signal(signum: int, frame: object) -> None:
        _on_signal(signum, config, parent.drain.is_set())
        if signum == signal.SIGHUP:
            for process in processes:  # each worker reloads the file itself (muxtrio.server.reload)
                if process.pid is not None and process.exitcode is None:
                    os.kill(process.pid, signal.SIGHUP)
            return
        if parent.drain.is_set():
            parent.now.set()
        parent.drain.set()

    for sig in (*_STOP_SIGNALS, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # Credential actions taken through the management API on one worker reach the others through a journal here.
    control = tempfile.mkdtemp(prefix="muxtrio-workers-")
    os.environ[CONTROL_DIR_ENV] = control  # inherited by the spawned workers
    code = 0
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
            if process.pid is not None:
                worker_exited(process.pid)
            code = code or (process.exitcode or 0)
    finally:
        shutil.rmtree(control, ignore_errors=True)
    for sock in sockets.insecure_sockets + sockets.secure_sockets:
        sock.close()
    return code

"""Run the gateway under Hypercorn's trio worker: one process, or ``workers`` processes sharing one listening socket.

Invariants:
- SIGINT/SIGTERM stop accepting; open streams get ``shutdown-grace`` seconds to finish; then the engine closes.
- A port already in use (or any bind error) is one line on stderr and exit code 1, not a traceback.
- With several workers the parent binds the sockets once and passes them to spawned children, so all workers
  accept on the same port; each child runs its own trio loop and Engine (no shared state between workers).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import signal
import sys
from multiprocessing.synchronize import Event as EventType
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from muxtrio.config import Config
from muxtrio.server.app import MuxApp

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
    hc.keep_alive_timeout = 75
    if config.tls.enable:
        hc.certfile = config.tls.cert
        hc.keyfile = config.tls.key
    return hc


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx2", "httpcore2", "hpack", "hypercorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(config: Config, hc: HypercornConfig, sockets: Sockets | None, stop: EventType | None) -> None:
    app = MuxApp(config)

    async def shutdown_trigger() -> None:
        if stop is not None:
            # A multiprocessing Event cannot wake a trio task: poll it (the parent sets it on SIGINT/SIGTERM).
            while not stop.is_set():  # noqa: ASYNC110
                await trio.sleep(0.2)
            return
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                log.info("shutting down: draining open streams for up to %gs", config.shutdown_grace)
                return

    wrapped = wrap_app(app, hc.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    # Everything imported so far lives for the whole process: move it out of the collector's generations so
    # full collections (the p99 latency spikes) scan only per-request objects.
    gc.collect()
    gc.freeze()
    await worker_serve(wrapped, hc, sockets=sockets, shutdown_trigger=shutdown_trigger)


def _worker(config: Config, sockets: Sockets, stop: EventType) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(config.debug)
    hc = hypercorn_config(config)
    for sock in sockets.insecure_sockets + sockets.secure_sockets:
        sock.listen(hc.backlog)
    trio.run(_serve, config, hc, sockets, stop)


def run(config: Config) -> int:
    """Serve until SIGINT/SIGTERM. Returns the process exit code."""
    setup_logging(config.debug)
    hc = hypercorn_config(config)
    try:
        sockets = hc.create_sockets()
    except OSError as exc:
        print(f"muxtrio: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    scheme = "https" if config.tls.enable else "http"
    log.info("muxtrio listening on %s://%s:%d (%d worker(s))", scheme, config.host, config.port, config.workers)
    if config.workers <= 1:
        for sock in sockets.insecure_sockets + sockets.secure_sockets:
            sock.listen(hc.backlog)
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(_serve, config, hc, sockets, None)
        return 0
    return _run_workers(config, sockets)


def _run_workers(config: Config, sockets: Sockets) -> int:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    processes = [
        ctx.Process(target=_worker, args=(config, sockets, stop), daemon=False) for _ in range(config.workers)
    ]
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    for process in processes:
        process.start()
    code = 0
    for process in processes:
        process.join()
        code = code or (process.exitcode or 0)
    for sock in sockets.insecure_sockets + sockets.secure_sockets:
        sock.close()
    return code

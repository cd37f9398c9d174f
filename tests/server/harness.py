"""Run the real ASGI app under Hypercorn's trio worker on 127.0.0.1 (an OS-chosen port) inside a test's nursery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import httpx2
import trio
from hypercorn.config import Config as HypercornConfig

from muxtrio.config import Config
from muxtrio.server.app import MuxApp
from muxtrio.server.listener import serve


@asynccontextmanager
async def serving(
    config: Config, transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None
) -> AsyncIterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a running gateway; stop it on exit."""
    app = MuxApp(config, transports=dict(transports or {}))
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, hc, http2=config.http2, stop=trio.Event()))
        base = binds[0]
        async with httpx2.AsyncClient() as client:
            for _ in range(200):
                if (await client.get(base + "/healthz")).status_code == 200:
                    break
                await trio.sleep(0.01)
        try:
            yield base
        finally:
            nursery.cancel_scope.cancel()

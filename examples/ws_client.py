"""Many generations over one WebSocket with the trio client library (``muxtrio.client``, protocol ``/v1/ws``).

    python examples/ws_client.py                          # starts a gateway in-process (echo model), offline
    python examples/ws_client.py ws://127.0.0.1:8317 KEY  # or talk to a running `muxtrio serve`

Three streams run at once on one socket, each in another format: OpenAI Chat chunks, Anthropic events and IR events.
One of them is left early, which cancels its generation upstream. Credit is granted by the library as we read.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig

import muxtrio
import muxtrio.client
from muxtrio import ir
from muxtrio.server.app import MuxApp
from muxtrio.server.listener import serve

MODEL = "muxtrio-echo"


@asynccontextmanager
async def local_gateway() -> AsyncIterator[str]:
    """A gateway on 127.0.0.1 (random port) for this example only; yields its ws:// URL."""
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = hc.errorlog = None
    hc.graceful_timeout = 0.5
    stopping = trio.Event()
    app = MuxApp(muxtrio.Config(disable_auth=True))
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, hc, http2=False, stop=stopping))
        try:
            yield binds[0].replace("http://", "ws://") + "/v1/ws"
        finally:
            stopping.set()


async def chat(mux: muxtrio.client.Mux) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "chunks in the OpenAI Chat format"}]}
    async with mux.stream("openai-chat", body) as events:
        async for chunk in events:
            for choice in chunk["choices"]:
                print("[openai-chat]", repr(choice["delta"].get("content", "")))
    print("[openai-chat] usage:", events.usage)


async def anthropic_first_words(mux: muxtrio.client.Mux) -> None:
    body = {"model": MODEL, "max_tokens": 100,
            "messages": [{"role": "user", "content": "this stream is left after three words of text"}]}
    words = 0
    async with mux.stream("anthropic", body) as events:
        async for event in events:
            if event["type"] == "content_block_delta":
                print("[anthropic]", repr(event["delta"]["text"]))
                words += 1
                if words == 3:
                    break  # leaving the block sends `cancel`: the upstream generation stops
    print("[anthropic] left early")


async def ir_events(mux: muxtrio.client.Mux) -> None:
    request = ir.Request(model=MODEL, messages=(ir.Message(ir.Role.USER, (ir.Text("typed IR events"),)),))
    async with mux.stream("ir", request, window=8) as events:
        async for event in events:
            print("[ir]", event)


async def main(url: str | None, key: str | None) -> None:
    async with local_gateway() if url is None else _given(url) as target, \
            muxtrio.client.connect(target, api_key=key) as mux, trio.open_nursery() as nursery:
        nursery.start_soon(chat, mux)
        nursery.start_soon(anthropic_first_words, mux)
        nursery.start_soon(ir_events, mux)


@asynccontextmanager
async def _given(url: str) -> AsyncIterator[str]:
    yield url


if __name__ == "__main__":
    args = sys.argv[1:]
    trio.run(main, args[0] if args else None, args[1] if len(args) > 1 else None)

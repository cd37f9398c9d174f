"""A real headless Chromium (the Debian ``chromium`` package) driven over the DevTools protocol, for the dashboard test.

The browser is started with ``--remote-debugging-port=0``; it writes the port it chose and its WebSocket path to
``DevToolsActivePort`` in its (temporary) profile directory. One WebSocket (``trio-websocket``) carries every command;
a page is a flattened target session on it (``Target.attachToTarget`` with ``flatten``). Events that the test cares
about (uncaught exceptions, console errors, CSP violations) are kept in :attr:`Page.problems`.

Also here: a minimal PNG reader (zlib + the five scanline filters) so a screenshot can be checked for being blank
without an imaging library. Tests that need the browser skip with the reason only where the package is missing
(``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import itertools
import shutil
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

START_LIMIT_S = 60.0  # hang guard for the browser to come up
CALL_LIMIT_S = 60.0  # hang guard for one DevTools command
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)  # fmt: skip


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(Exception):
    pass


class Browser:
    """One DevTools WebSocket; commands are matched to replies by id, events go to the session they name."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}

    async def read_forever(self) -> None:
        while True:
            message = orjson.loads(await self.ws.get_message())
            if "id" in message:
                channel = self._waiting.pop(message["id"], None)
                if channel is not None:
                    channel.send_nowait(message)
            elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                page.event(message["method"], message.get("params", {}))

    async def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        ident = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ident] = send
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_message(orjson.dumps(message).decode())
        with trio.fail_after(CALL_LIMIT_S):
            reply = await receive.receive()
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def new_page(self, width: int, height: int) -> Page:
        target = await self.call("Target.createTarget", {"url": "about:blank"})
        attached = await self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session] = page
        await page.call("Runtime.enable")
        await page.call("Log.enable")
        await page.call("Page.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page


@dataclass
class Page:
    browser: Browser
    session: str
    problems: list[str] = field(default_factory=list)

    def event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append(f"exception: {details.get('exception', {}).get('description') or details}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("source") == "security" or (
                entry.get("level") == "error" and entry.get("source") not in ("network",)
            ):
                self.problems.append(f"{entry.get('source')}: {entry.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.problems.append(f"console.error: {params.get('args')}")

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.call(method, params, self.session)

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete' && location.href === " + _js(url), what="load")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, what: str, limit_s: float = 45.0) -> Any:
        """Evaluate until the value is truthy; ``limit_s`` is a hang guard, not a timing expectation."""
        value: Any = None
        with trio.move_on_after(limit_s):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await trio.sleep(0.1)
        with trio.move_on_after(5):
            text = await self.evaluate("document.body.innerText.slice(0, 4000)")
            raise AssertionError(
                f"waited {limit_s:.0f} s for {what}; last value {value!r}; problems {self.problems}; page:\n{text}"
            )
        raise AssertionError(f"waited {limit_s:.0f} s for {what}; last value {value!r}; problems {self.problems}")

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({_js(selector)}).focus()")
        await self.call("Input.insertText", {"text": text})

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (it must be visible and not covered)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({_js(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            )

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data


def _js(value: str) -> str:
    return orjson.dumps(value).decode()


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    """Start headless Chromium with a fresh profile in ``profile``; yield a connected :class:`Browser`."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("the Debian chromium package is not installed")
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile.parent / "chromium.log").open("wb")
    process = await trio.lowlevel.open_process(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        active = profile / "DevToolsActivePort"
        with trio.fail_after(START_LIMIT_S):
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                if process.poll() is not None:
                    raise RuntimeError(f"chromium exited with {process.returncode}; see {log.name}")
                await trio.sleep(0.05)
        port, path = active.read_text().splitlines()[:2]
        async with open_websocket_url(f"ws://127.0.0.1:{port}{path}", max_message_size=64 << 20) as ws:
            browser = Browser(ws)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(browser.read_forever)
                try:
                    yield browser
                finally:
                    with suppress(Exception), trio.move_on_after(5):
                        await browser.call("Browser.close")
                    nursery.cancel_scope.cancel()
    finally:
        with suppress(ProcessLookupError):
            process.terminate()
        with trio.move_on_after(10) as waited:
            await process.wait()
        if waited.cancelled_caught:
            process.kill()
            await process.wait()
        log.close()


# ---------------------------------------------------------------------------------------------------- PNG
def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) into (width, height, RGB pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset = 8
    idat = bytearray()
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels.extend(
            (line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)
        )
        previous = line
    return width, height, pixels


def luminance_spread(pixels: list[tuple[int, int, int]]) -> tuple[float, int]:
    """(variance of luminance, number of distinct colours) over the pixels."""
    values = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in pixels]
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return variance, len(set(pixels))

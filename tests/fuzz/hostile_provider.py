"""A hostile upstream provider for the provider-side fuzz and limit tests: a raw HTTP/1.1 server on 127.0.0.1 that
writes whatever bytes a test scripts, byte for byte (status line and headers included), then ends the connection
the scripted way.

A test sets :attr:`HostileProvider.script`, a function from the received request (:class:`Seen`) to a list of steps:
``bytes`` are written as they are (each one socket write), :data:`RESET` aborts the connection with a TCP RST,
:data:`HANG` sends nothing more until the gateway hangs up (bounded by :data:`HANG_GUARD_S`, a hang detector, never a
pass condition), and the connection is closed (FIN) after the last step. Helpers build the usual framings: a
whole response with ``content-length``, a close-delimited or chunked stream, gzip.

The raw transcripts of real provider answers (``tests/fixtures/transcripts/wire``) are the material the fuzz cuts,
corrupts and reframes; :data:`APIS` maps each provider API to the muxtrio provider type that speaks it.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio

from muxtrio.config import Config, Credential, ModelConfig, ProviderConfig, ProviderType, Timeouts
from tests.server.harness import serving

RESET = "reset"
HANG = "hang"
HANG_GUARD_S = 30.0
Step = bytes | str

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "wire"

# provider API -> (provider type, base-URL suffix, stream transcript extension)
APIS: dict[str, tuple[ProviderType, str, str]] = {
    "openai": (ProviderType.OPENAI, "/v1", "sse"),
    "responses": (ProviderType.OPENAI_RESPONSES, "/v1", "sse"),
    "anthropic": (ProviderType.ANTHROPIC, "", "sse"),
    "gemini": (ProviderType.GEMINI, "", "sse"),
    "ollama": (ProviderType.OLLAMA, "", "ndjson"),
}
STREAM_TYPES = {"sse": b"text/event-stream", "ndjson": b"application/x-ndjson"}


def transcript(api: str, name: str = "text", *, stream: bool) -> bytes:
    """A real-shaped provider answer: the stream body (``stream``) or the whole JSON body (compact, as providers
    send it; the fixture files are indented for reading)."""
    if stream:
        return (WIRE / api / f"{name}.{APIS[api][2]}").read_bytes()
    return orjson.dumps(orjson.loads((WIRE / api / f"{name}.json").read_bytes()))


def stream_content_type(api: str) -> bytes:
    return STREAM_TYPES[APIS[api][2]]


def head(status: int = 200, headers: dict[bytes, bytes] | None = None) -> bytes:
    lines = [b"HTTP/1.1 %d X" % status, b"connection: close", *(k + b": " + v for k, v in (headers or {}).items())]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def whole(body: bytes, content_type: bytes = b"application/json", status: int = 200,
          encoding: bytes | None = None) -> list[Step]:
    headers = {b"content-type": content_type, b"content-length": str(len(body)).encode()}
    if encoding:
        headers[b"content-encoding"] = encoding
    return [head(status, headers), body]


def close_delimited(parts: list[Step], content_type: bytes, encoding: bytes | None = None) -> list[Step]:
    """A body that ends when the connection does (HTTP/1.1 without length): a cut looks like a clean end."""
    headers = {b"content-type": content_type}
    if encoding:
        headers[b"content-encoding"] = encoding
    return [head(200, headers), *parts]


def chunked(parts: list[Step], content_type: bytes, *, terminate: bool = True) -> list[Step]:
    """A chunked body, one chunk per ``bytes`` part; without ``terminate`` the last-chunk marker never comes."""
    out: list[Step] = [head(200, {b"content-type": content_type, b"transfer-encoding": b"chunked"})]
    for part in parts:
        out.append(b"%x\r\n%s\r\n" % (len(part), part) if isinstance(part, bytes) and part else part)
    if terminate:
        out.append(b"0\r\n\r\n")
    return [p for p in out if p != b""]


def gzip_bytes(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return compressor.compress(data) + compressor.flush()


def gzip_bomb(inflated: int) -> bytes:
    """``inflated`` bytes of ``a`` (no newline anywhere) gzipped: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"a" * (1 << 20)
    out = [compressor.compress(block) for _ in range(inflated // len(block))]
    out.append(compressor.flush())
    return b"".join(out)


def split(data: bytes, size: int) -> list[Step]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class Seen:
    path: str
    body: bytes
    hung_up: trio.Event = field(default_factory=trio.Event)  # the gateway closed the connection


class HostileProvider:
    def __init__(self) -> None:
        self.script: Callable[[Seen], list[Step]] = lambda seen: whole(b"{}")
        self.seen: list[Seen] = []
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        task_status.started(self.url)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            seen = await self._read_request(stream)
            if seen is None:
                return
            self.seen.append(seen)
            for step in self.script(seen):
                if step == RESET:
                    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if step == HANG:
                    with trio.move_on_after(HANG_GUARD_S):
                        while await stream.receive_some(65536):
                            pass
                    return
                assert isinstance(step, bytes)
                await stream.send_all(step)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the gateway hung up mid-answer: what a gateway giving up must do
        finally:
            if self.seen and self.seen[-1].path:
                self.seen[-1].hung_up.set()
            with trio.move_on_after(1):
                await stream.aclose()

    async def _read_request(self, stream: trio.SocketStream) -> Seen | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            data += chunk
        head_bytes, body = data.split(b"\r\n\r\n", 1)
        lines = head_bytes.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            body += chunk
        return Seen(lines[0].split(b" ")[1].decode("latin-1"), body)


def model_for(api: str) -> str:
    """The model name a client asks for to reach the hostile provider through ``api``."""
    return f"hostile-{api}"


@asynccontextmanager
async def hostile_gateway(**overrides: Any) -> AsyncIterator[tuple[str, HostileProvider]]:
    """The real gateway (Hypercorn, loopback) with one provider per API, all served by one hostile provider.
    ``overrides`` are Config fields; by default one attempt per request (``request_retry=0``) so each request
    meets exactly one scripted answer, and no circuit breaker between cases."""
    provider = HostileProvider()
    async with trio.open_nursery() as nursery:
        await nursery.start(provider.serve)
        providers = tuple(
            ProviderConfig(
                type=ptype,
                name=f"hostile-{api}",
                base_url=provider.url + suffix,
                credentials=(Credential(f"sk-hostile-{api}-0001"),) if ptype is not ProviderType.OLLAMA else (),
                models=(ModelConfig(name="m", alias=model_for(api)),),
            )
            for api, (ptype, suffix, _) in APIS.items()
        )
        settings: dict[str, Any] = {
            "providers": providers,
            "disable_auth": True,
            "echo_model": False,
            "request_retry": 0,
            "breaker_failures": 1_000_000,  # a run of refused answers must not open the breaker for the next case
            "timeouts": Timeouts(connect=5, first_byte=5, idle=5),
        }
        settings.update(overrides)
        async with serving(Config(**settings)) as url:
            yield url, provider
        nursery.cancel_scope.cancel()


COMPLETE = "complete"
ERROR = "error"


def chat_outcome(status: int, body: bytes, stream: bool) -> str:
    """What an OpenAI Chat client got, as :data:`COMPLETE` or :data:`ERROR`; an ``AssertionError`` for anything
    else: a 5xx/4xx not in the OpenAI error shape, a stream that ends neither with ``[DONE]`` after a finish reason
    nor with an error event, ``[DONE]`` after an error, or text after the end."""
    if status != 200:
        assert 400 <= status < 600, status
        error = orjson.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"], body[:300]
        assert "Traceback" not in error["message"]
        return ERROR
    if not stream:
        answer = orjson.loads(body)
        assert answer["object"] == "chat.completion", body[:300]
        assert answer["choices"][0]["finish_reason"] is not None, body[:300]
        return COMPLETE
    assert body.endswith(b"\n\n"), body[-300:]
    frames = [f for f in body.split(b"\n\n") if f and not f.startswith(b":")]
    finished = done = errored = False
    for frame in frames:
        assert frame.startswith(b"data: "), frame[:300]
        assert not done and not errored, f"a frame after the end: {frame[:300]!r}"
        data = frame[len(b"data: ") :]
        if data == b"[DONE]":
            done = True
            continue
        chunk = orjson.loads(data)
        if "error" in chunk:
            assert isinstance(chunk["error"]["message"], str) and chunk["error"]["message"]
            errored = True
            continue
        for choice in chunk.get("choices", []):
            finished = finished or choice.get("finish_reason") is not None
    if errored:
        return ERROR
    assert done and finished, f"a stream that ends without [DONE] after a finish reason: {body[-300:]!r}"
    return COMPLETE


def chat_text(body: bytes) -> str:
    """The answer text of a complete OpenAI Chat stream."""
    text: list[str] = []
    for frame in body.split(b"\n\n"):
        if frame.startswith(b"data: {"):
            for choice in orjson.loads(frame[6:]).get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)

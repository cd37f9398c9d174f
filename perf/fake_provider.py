"""A fast fake LLM provider for benchmarks: raw trio sockets, hand-rolled HTTP/1.1 keep-alive, pre-built byte templates.

It must never be the bottleneck, so it does the least work a provider can: it reads the request, looks at a handful
of JSON fields, and writes pre-built bytes (one socket write per event, as real providers do). Its own ceiling is
measured by the suite (scenario ``fake_ceiling``) and reported beside the gateway numbers.

Formats, chosen by path (any base-URL prefix is accepted):
- OpenAI chat:  ``POST .../chat/completions``                      (SSE ``data:`` chunks, ``[DONE]``)
- Anthropic:    ``POST .../messages``                              (SSE with ``event:`` lines, strict block order)
- Gemini:       ``POST .../models/{m}:generateContent`` / ``:streamGenerateContent?alt=sse`` (SSE, CRLF)
- Ollama:       ``POST /api/chat`` and ``/api/generate``           (NDJSON; streams unless ``"stream": false``)
- ``GET /_stats``: counters as JSON (streams started/finished/aborted, stream bytes sent) and ``POST /_reset``.

Stream shape, from the model name's suffixes (they survive every gateway, which passes model names on), else from
the request:
- ``-dNN``  NN milliseconds between events (pace); default 0 (as fast as the socket takes them).
- ``-nNN``  NN content events; default: the request's max tokens field, else 1000.
- ``-sNN``  NN bytes of text per content event; default a short ``tokN `` text.
e.g. ``fake-d200-n30`` (30 events, 5 per second) or ``fake-n1-s20000000`` (one 20 MB event).
Non-streaming answers are a short fixed text, unless the name has ``-n`` or ``-s``: then the answer's text is what
the stream of that shape would carry, all of it (``fake-n100000``: a 100K-token non-stream answer).

All traffic is loopback; the server runs until it is killed (the suite owns its process).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import trio

CREATED = int(time.time())
_DELAY = re.compile(r"-d(\d+)(?=-|$)")
_COUNT = re.compile(r"-n(\d+)(?=-|$)")
_SIZE = re.compile(r"-s(\d+)(?=-|$)")

# stream_bytes counts live (per event), so a stalled stream's progress can be read while it is stuck.
STATS: dict[str, int] = {"requests": 0, "streams": 0, "finished": 0, "aborted": 0, "stream_bytes": 0, "last_bytes": 0}


@dataclass(frozen=True, slots=True)
class Shape:
    delay: float
    count: int
    size: int


def shape_of(model: str, max_tokens: object) -> Shape:
    d, n, s = _DELAY.search(model), _COUNT.search(model), _SIZE.search(model)
    count = int(n.group(1)) if n else (max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 1000)
    return Shape(int(d.group(1)) / 1000 if d else 0.0, count, int(s.group(1)) if s else 0)


def _text(shape: Shape, i: int) -> bytes:
    return b"x" * shape.size if shape.size else b"tok%d " % i


_SHORT_ANSWER = "Hello from the fake provider."


def answer_text(model: str) -> str:
    """A non-stream answer's text: the whole text of the model's stream shape when the name has ``-n`` or ``-s``."""
    if not (_COUNT.search(model) or _SIZE.search(model)):
        return _SHORT_ANSWER
    shape = shape_of(model, None)
    return b"".join(_text(shape, i) for i in range(shape.count)).decode()


# ---------------------------------------------------------------------------------------------- wire templates
# Each format: (head events, one content event for i, tail events), all as complete frames. Content events for
# sized text are built once and reused, so a 100 MB stream costs the fake one bytes object.
def openai_stream(model: str, shape: Shape, usage: bool) -> Iterator[bytes]:
    head = b'data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":%d,"model":"%s",' % (
        CREATED, model.encode())
    yield head + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    fixed = head + b'"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % _text(shape, 0)
    for i in range(shape.count):
        yield fixed if shape.size else (
            head + b'"choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}\n\n' % i)
    yield head + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    if usage:
        yield head + b'"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (
            shape.count, shape.count + 5)
    yield b"data: [DONE]\n\n"


def openai_body(model: str) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text(model)},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    })


def anthropic_stream(model: str, shape: Shape) -> Iterator[bytes]:
    start = {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}
    yield b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n"
    yield (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
           b'"content_block":{"type":"text","text":""}}\n\n')
    pre = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
           b'"delta":{"type":"text_delta","text":"')
    fixed = pre + _text(shape, 0) + b'"}}\n\n'
    for i in range(shape.count):
        yield fixed if shape.size else pre + b'tok%d "}}\n\n' % i
    yield b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    yield (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
           b'"stop_sequence":null},"usage":{"output_tokens":%d}}\n\n' % shape.count)
    yield b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def anthropic_body(model: str) -> bytes:
    return orjson.dumps({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": answer_text(model)}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7},
    })


_GEMINI_USAGE = b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":%d,"totalTokenCount":%d}'


def gemini_stream(model: str, shape: Shape) -> Iterator[bytes]:
    pre = b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"'
    post = b'"}]},"index":0}],' + _GEMINI_USAGE % (1, 6) + b',"modelVersion":"%s"}\r\n\r\n' % model.encode()
    fixed = pre + _text(shape, 0) + post
    for i in range(shape.count):
        yield fixed if shape.size else pre + b"tok%d " % i + post
    yield (b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],'
           + _GEMINI_USAGE % (shape.count, shape.count + 5) + b',"modelVersion":"%s"}\r\n\r\n' % model.encode())


def gemini_body(model: str) -> bytes:
    return orjson.dumps({
        "candidates": [{"content": {"role": "model", "parts": [{"text": answer_text(model)}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
        "modelVersion": model,
    })


def ollama_stream(model: str, shape: Shape, chat: bool) -> Iterator[bytes]:
    head = b'{"model":"%s","created_at":"2026-01-01T00:00:00Z",' % model.encode()
    if chat:
        pre, post = b'"message":{"role":"assistant","content":"', b'"},"done":false}\n'
        last = b'"message":{"role":"assistant","content":""},'
    else:
        pre, post, last = b'"response":"', b'","done":false}\n', b'"response":"",'
    fixed = head + pre + _text(shape, 0) + post
    for i in range(shape.count):
        yield fixed if shape.size else head + pre + b"tok%d " % i + post
    yield (head + last + b'"done":true,"done_reason":"stop","total_duration":1000,"load_duration":1,'
           b'"prompt_eval_count":5,"prompt_eval_duration":1,"eval_count":%d,"eval_duration":1}\n' % shape.count)


def ollama_body(model: str, chat: bool) -> bytes:
    obj: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": True, "done_reason": "stop",
                           "total_duration": 1000, "load_duration": 1, "prompt_eval_count": 5,
                           "prompt_eval_duration": 1, "eval_count": 7, "eval_duration": 1}
    if chat:
        obj["message"] = {"role": "assistant", "content": answer_text(model)}
    else:
        obj["response"] = answer_text(model)
    return orjson.dumps(obj)


# ---------------------------------------------------------------------------------------------- HTTP
def _response(status: bytes, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (status, ctype, len(body), body)


def _stream_head(ctype: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n" % (
        ctype)


def route(path: bytes, query: bytes, req: dict[str, Any]) -> tuple[bytes, Iterator[bytes] | None, Shape | None]:
    """(whole response, or stream head bytes + event iterator + shape)."""
    model = str(req.get("model") or "fake")
    if path.endswith(b"/chat/completions"):
        shape = shape_of(model, req.get("max_tokens") or req.get("max_completion_tokens"))
        if req.get("stream"):
            usage = bool((req.get("stream_options") or {}).get("include_usage"))
            return _stream_head(b"text/event-stream"), openai_stream(model, shape, usage), shape
        return _response(b"200 OK", openai_body(model)), None, None
    if path.endswith(b"/messages"):
        shape = shape_of(model, req.get("max_tokens"))
        if req.get("stream"):
            return _stream_head(b"text/event-stream"), anthropic_stream(model, shape), shape
        return _response(b"200 OK", anthropic_body(model)), None, None
    if b":generateContent" in path or b":streamGenerateContent" in path:
        model = path.rsplit(b"/", 1)[-1].split(b":", 1)[0].decode()
        config = req.get("generationConfig") or {}
        shape = shape_of(model, config.get("maxOutputTokens"))
        if b":streamGenerateContent" in path:
            return _stream_head(b"text/event-stream"), gemini_stream(model, shape), shape
        return _response(b"200 OK", gemini_body(model)), None, None
    if path in (b"/api/chat", b"/api/generate"):
        chat = path == b"/api/chat"
        shape = shape_of(model, (req.get("options") or {}).get("num_predict"))
        if req.get("stream", True):
            return _stream_head(b"application/x-ndjson"), ollama_stream(model, shape, chat), shape
        return _response(b"200 OK", ollama_body(model, chat)), None, None
    if path == b"/_stats":
        return _response(b"200 OK", orjson.dumps(STATS)), None, None
    if path == b"/_reset":
        for key in STATS:
            STATS[key] = 0
        return _response(b"200 OK", b"{}"), None, None
    if path.endswith(b"/models") or path == b"/healthz":
        return _response(b"200 OK", b'{"object":"list","data":[{"id":"fake","object":"model"}]}'), None, None
    print(f"fake provider: no route for {path!r}", flush=True)
    return _response(b"404 Not Found", b'{"error":{"message":"not found","type":"not_found"}}'), None, None


async def _stream(conn: trio.SocketStream, head: bytes, events: Iterator[bytes], shape: Shape) -> None:
    STATS["streams"] += 1
    sent = 0
    try:
        await conn.send_all(head)
        for event in events:
            await conn.send_all(b"%x\r\n%s\r\n" % (len(event), event))
            sent += len(event)
            STATS["stream_bytes"] += len(event)
            if shape.delay:
                await trio.sleep(shape.delay)
        await conn.send_all(b"0\r\n\r\n")
        STATS["finished"] += 1
    except BaseException:
        STATS["aborted"] += 1
        raise
    finally:
        STATS["last_bytes"] = sent


async def handle(conn: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while True:
            while (end := buf.find(b"\r\n\r\n")) < 0:
                data = await conn.receive_some(1 << 16)
                if not data:
                    return
                buf += data
            lines = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            _method, target, _ = lines[0].split(b" ", 2)
            path, _, query = target.partition(b"?")
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            while len(buf) < length:
                data = await conn.receive_some(1 << 20)
                if not data:
                    return
                buf += data
            body = bytes(buf[:length])
            del buf[:length]
            STATS["requests"] += 1
            req = orjson.loads(body) if body else {}
            whole, events, shape = route(path, query, req if isinstance(req, dict) else {})
            if events is None or shape is None:
                await conn.send_all(whole)
            else:
                await _stream(conn, whole, events, shape)
            if close:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        return


async def serve(host: str, port: int) -> None:
    print(f"fake provider on http://{host}:{port}", flush=True)
    await trio.serve_tcp(handle, port, host=host, backlog=4096)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9101)
    args = ap.parse_args()
    trio.run(serve, args.host, args.port)


if __name__ == "__main__":
    main()

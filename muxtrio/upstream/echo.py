"""The built-in ``muxtrio-echo`` provider: an in-process OpenAI-compatible upstream that answers with the last user
message, streamed word by word.

It is an httpx2 transport, so a request to it goes through exactly the same path as a real provider: routing,
the OpenAI Chat codec's ``emit_request``, the upstream client, the stream decoder, the channel and the client's
encoder. Nothing is bypassed; only the socket is replaced. It never fails and needs no key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson
import trio

_CREATED = 1_700_000_000


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _answer(body: dict[str, Any]) -> tuple[str, int]:
    """The echo text and a rough prompt token count (words)."""
    messages = body.get("messages") or []
    prompt_words = sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text.strip():
                return text, prompt_words
    return "(muxtrio-echo: send a user message and it comes back word by word)", prompt_words


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


class _EchoStream(httpx2.AsyncByteStream):
    def __init__(self, model: str, text: str, prompt_tokens: int) -> None:
        self._model = model
        self._text = text
        self._prompt = prompt_tokens

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": _CREATED, "model": self._model}
        words = _words(self._text)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            obj = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for word in words:
            await trio.lowlevel.checkpoint()
            yield chunk({"content": word})
        yield chunk({}, "stop")
        usage = {"prompt_tokens": self._prompt, "completion_tokens": len(words),
                 "total_tokens": self._prompt + len(words)}
        yield b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


class EchoTransport(httpx2.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(await request.aread())
        model = str(body.get("model", "muxtrio-echo"))
        text, prompt_tokens = _answer(body)
        if body.get("stream"):
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, stream=_EchoStream(model, text, prompt_tokens)
            )
        words = _words(text)
        answer = {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                      "total_tokens": prompt_tokens + len(words)},
        }
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=orjson.dumps(answer))

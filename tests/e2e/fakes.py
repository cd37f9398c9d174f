"""Fake upstream providers for the end-to-end tests: real HTTP/1.1 servers on 127.0.0.1 that speak each provider's
exact wire format, so the gateway's upstream client goes over real sockets.

One :class:`FakeProvider` per provider kind:
- ``openai``: ``POST /v1/chat/completions`` (SSE ``data:`` chunks ending with ``data: [DONE]``, usage chunk when
  ``stream_options.include_usage``), ``POST /v1/responses`` (SSE ``event:``/``data:`` with ``sequence_number``, ending
  with ``response.completed``), ``POST /v1/responses/input_tokens``.
- ``anthropic``: ``POST /v1/messages`` (SSE with ``event:`` lines in strict block order: ``message_start``, ``ping``,
  per block ``content_block_start``/``content_block_delta``*/``content_block_stop``, ``message_delta``,
  ``message_stop``), ``POST /v1/messages/count_tokens``.
- ``gemini``: ``POST /v1beta/models/{m}:generateContent`` (or Vertex's ``/v1/publishers/google/models/{m}:...``),
  ``:streamGenerateContent?alt=sse`` (``data:`` events with
  CRLF framing and ``usageMetadata`` repeated on every chunk; a JSON array without ``alt=sse``), ``:countTokens``.
- ``ollama``: ``POST /api/chat`` (NDJSON, streaming unless ``"stream": false``).

What a fake answers is chosen by the *upstream model name* the gateway sends (``text``, ``think``, ``tool``,
``thinktool``, ``ratelimit``, ``ctxlimit``, ``hold``, ``cut``, ``endless``, ``keyed``, ``continue``); any other name
gets the provider's 404. ``tool``/``thinktool`` call ``get_weather`` (after thinking, with a signature, for
``thinktool``) and, once the conversation ends with the tool result, answer with text that quotes it; ``tools2``
calls it twice in one turn (Paris, then Tokyo) and quotes both results, in order. ``keyed`` is a
429 for keys ending in ``-first``. ``continue`` continues an assistant prefill. ``midstream`` sends two chunks and
then the provider's in-band error event; ``badrequest`` is a 400 (not context length), ``flaky`` a 500 on the first
request for that model and a normal answer after, ``down`` always the provider's overloaded status, ``silent``
never answers at all (no status line) until the gateway gives up and closes the connection. ``long`` is a
12,000-delta text answer (``LONG_DELTAS``), for the large-answer tests.
The answers are provider-neutral scripts (``tests/fixtures/transcripts/scripts.json``) rendered here into each wire
format; error bodies are data too (``tests/fixtures/transcripts/errors.json``). Shapes follow the providers' API
references: platform.openai.com/docs/api-reference/chat-streaming and /responses-streaming,
docs.claude.com/en/docs/build-with-claude/streaming, ai.google.dev/api/generate-content, github.com/ollama/ollama
docs/api.md — and the official SDKs' typed models.

Every request is recorded as a :class:`Seen` (path, query, lower-case headers, parsed body) so tests can assert on the
translated request; ``Seen.disconnected`` is set when the gateway closed the connection before the fake finished
(what a client disconnect must cause), ``Seen.finished`` once the fake sent its whole answer.

Control steps in a script: ``hold`` (stop sending until the test sets :attr:`FakeProvider.release`, bounded by a hang
guard), ``cut`` (close the socket in the middle of the chunked body: a mid-stream cut), ``forever`` (send nothing
more, keep the connection open).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11
import orjson
import trio

from tests.e2e.family_rules import FAMILY_MODELS, family_refusal

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
SCRIPTS: dict[str, Any] = json.loads((TRANSCRIPTS / "scripts.json").read_text(encoding="utf-8"))
ERRORS: dict[str, Any] = json.loads((TRANSCRIPTS / "errors.json").read_text(encoding="utf-8"))
LONG_DELTAS = 12_000  # ``long``: a long answer of token-sized deltas (~84K chars: past the failover transcript cap)
SCRIPTS["long"] = [["text", f"w{i:05d} "] for i in range(LONG_DELTAS)]

BEHAVIOURS = (
    "text", "think", "tool", "thinktool", "ratelimit", "ctxlimit", "hold", "cut", "endless", "keyed", "continue",
    "midstream", "badrequest", "flaky", "down", "silent", "tools2", "nstool", "long",
)  # fmt: skip
CREATED = 1_700_000_000
CREATED_AT = "2025-01-01T00:00:00.000000Z"
INPUT_TOKENS = 11
COUNT_TOKENS = 42  # what every native token-count endpoint of the fakes answers
HANG_GUARD_S = 20.0  # a held stream gives up waiting after this long (a test bug, never a pass condition)

# Opaque reasoning signatures shaped like each provider's: Anthropic's are long base64-like strings (not always valid
# base64 as a whole), Responses' encrypted_content is a Fernet token (base64url: '-' and '_'), Gemini's
# thoughtSignature is proper base64 (a bytes field). Chat and Ollama have no field for one.
SIGNATURES = {
    "anthropic": "EqQBCkYIBxgCKkBFakeThinkingSignature+/w==CkYIBxgCKkA",
    "responses": "gAAAAABoFake-encrypted_reasoning-content_0123456789abcdef==",
    "gemini": "RmFrZVNpZ25hdHVyZS0wMQ==",
}

# Tool-call ids as each provider shapes them; Gemini and Ollama send none.
TOOL_IDS = {
    "openai": ("call_fakeWeather01", "call_fakeWeather02"),
    "responses": ("call_fakeWeather01", "call_fakeWeather02"),
    "anthropic": ("toolu_01FakeWeather", "toolu_02FakeWeather"),
}


class Control:
    """A control step inside a rendered stream."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


HOLD = Control("hold")
CUT = Control("cut")
FOREVER = Control("forever")
ERROR = Control("error")  # a placeholder the renderers replace with the provider's in-band error event
CONTROLS = {"hold": HOLD, "cut": CUT, "forever": FOREVER}
ENDS = ("cut", "forever", "error")  # steps after which a stream has no normal end

Frame = bytes | Control


@dataclass
class Seen:
    """One request a fake received."""

    api: str  # openai | responses | anthropic | gemini | ollama (which wire format was spoken)
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    body: Any
    model: str = ""
    stream: bool = False
    key: str | None = None
    status: int = 0
    finished: bool = False
    disconnected: trio.Event = field(default_factory=trio.Event)


@dataclass
class Whole:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Streamed:
    frames: list[Frame]
    content_type: str


class Silent:
    """No answer at all: the request is read, then nothing is sent until the gateway closes the connection."""


Reply = Whole | Streamed | Silent


# ----------------------------------------------------------------------------------------------------- scripts
def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def script(name: str, label: str, tool_result: str = "") -> list[tuple[str, Any]]:
    """The steps of a named script with ``{label}`` and ``{tool_result}`` filled in."""
    steps: list[tuple[str, Any]] = []
    calls = 0
    for kind, value in SCRIPTS[name]:
        if isinstance(value, str):
            value = value.replace("{label}", label).replace("{tool_result}", tool_result)
            value = value.replace("{signature}", SIGNATURES.get(label, SIGNATURES["gemini"]))
        if kind == "tool":
            value = {**value, "n": calls}  # the call's position in its turn (its index, and which id it gets)
            calls += 1
        steps.append((kind, value))
    return steps


def script_text(name: str, label: str, tool_result: str = "") -> str:
    return "".join(v for k, v in script(name, label, tool_result) if k == "text")


def script_output_tokens(name: str) -> int:
    """The output tokens every fake reports for a script (one per chunk, a tool call counts 5)."""
    return _output_tokens(script(name, ""))[0]


def script_thinking(name: str = "think") -> str:
    return "".join(v for k, v in script(name, "") if k == "thinking")


def script_signature(label: str) -> str:
    """The reasoning signature the fake for ``label`` sends."""
    return next(v for k, v in script("think", label) if k == "signature")


@dataclass
class Ctx:
    """What a renderer needs besides the steps."""

    api: str
    model: str
    include_usage: bool = True

    def call_id(self, n: int) -> str:
        return TOOL_IDS[self.api][n] if self.api in TOOL_IDS else ""


def midstream_error(api: str) -> bytes:
    """The provider's in-band error event, as the stream framing of ``api`` carries it."""
    body = dumps(ERRORS["responses" if api == "responses" else _FAMILY[api]]["midstream"]["body"])
    if api == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    if api == "gemini":
        return b"data: " + body + b"\r\n\r\n"
    if api == "ollama":
        return body + b"\n"
    return b"data: " + body + b"\n\n"  # OpenAI Chat (the Responses renderer frames its own, with a sequence number)


def _output_tokens(steps: list[tuple[str, Any]]) -> tuple[int, int]:
    """(output tokens, of which reasoning): one per chunk, a tool call counts 5."""
    out = reasoning = 0
    for kind, _ in steps:
        if kind == "text":
            out += 1
        elif kind == "thinking":
            out += 1
            reasoning += 1
        elif kind == "tool":
            out += 5
    return out, reasoning


def _content_steps(steps: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Steps without controls; a script that is cut or never ends has no whole form past the control."""
    out: list[tuple[str, Any]] = []
    for kind, value in steps:
        if kind in ENDS:
            break
        if kind != "hold":
            out.append((kind, value))
    return out


# ----------------------------------------------------------------------------------------------------- OpenAI chat
def chat_stream(steps: list[tuple[str, Any]], c: Ctx) -> list[Frame]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": "chatcmpl-fake01", "object": "chat.completion.chunk", "created": CREATED, "model": c.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }  # fmt: skip
        return b"data: " + dumps(obj) + b"\n\n"

    frames: list[Frame] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    finish = "stop"
    for kind, value in steps:
        if kind == "thinking":
            frames.append(chunk({"reasoning_content": value}))  # DeepSeek/vLLM's field for reasoning
        elif kind == "text":
            frames.append(chunk({"content": value}))
        elif kind == "tool":
            function = {"name": value["name"], "arguments": ""}
            head = {"index": value["n"], "id": c.call_id(value["n"]), "type": "function", "function": function}
            frames.append(chunk({"tool_calls": [head]}))
            for fragment in value["fragments"]:
                frames.append(chunk({"tool_calls": [{"index": value["n"], "function": {"arguments": fragment}}]}))
            finish = "tool_calls"
        elif kind == "error":
            frames.append(midstream_error(c.api))
            return frames
        elif kind in CONTROLS:
            frames.append(CONTROLS[kind])
            if kind != "hold":
                return frames
        # "signature": Chat Completions has no field for it
    frames.append(chunk({}, finish))
    if c.include_usage:
        out, reasoning = _output_tokens(steps)
        usage = {
            "prompt_tokens": INPUT_TOKENS, "completion_tokens": out, "total_tokens": INPUT_TOKENS + out,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }  # fmt: skip
        obj = {"id": "chatcmpl-fake01", "object": "chat.completion.chunk", "created": CREATED, "model": c.model,
               "system_fingerprint": "fp_fake", "choices": [], "usage": usage}
        frames.append(b"data: " + dumps(obj) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def chat_whole(steps: list[tuple[str, Any]], c: Ctx) -> dict[str, Any]:
    steps = _content_steps(steps)
    text = "".join(v for k, v in steps if k == "text")
    reasoning = "".join(v for k, v in steps if k == "thinking")
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None, "annotations": []}
    if reasoning:
        message["reasoning_content"] = reasoning
    finish = "stop"
    for kind, value in steps:
        if kind == "tool":
            message.setdefault("tool_calls", []).append(
                {"id": c.call_id(value["n"]), "type": "function",
                 "function": {"name": value["name"], "arguments": "".join(value["fragments"])}}
            )
            finish = "tool_calls"
    out, reasoning_tokens = _output_tokens(steps)
    return {
        "id": "chatcmpl-fake01", "object": "chat.completion", "created": CREATED, "model": c.model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": out, "total_tokens": INPUT_TOKENS + out,
                  "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}},
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------------- OpenAI Responses
def _response_object(c: Ctx, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake01", "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": c.model,
        "output": output, "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": False, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage, "metadata": {},
    }  # fmt: skip


def _responses_usage(steps: list[tuple[str, Any]]) -> dict[str, Any]:
    out, reasoning = _output_tokens(steps)
    return {
        "input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": INPUT_TOKENS + out,
    }  # fmt: skip


def _responses_items(steps: list[tuple[str, Any]], c: Ctx) -> list[dict[str, Any]]:
    """The completed output items of the (control-free) steps."""
    items: list[dict[str, Any]] = []
    for kind, value in _content_steps(steps):
        last = items[-1] if items else None
        n = len(items)
        if kind == "thinking":
            if last is not None and last["type"] == "reasoning":
                last["summary"][0]["text"] += value
            else:
                items.append({"id": f"rs_fake{n}", "type": "reasoning",
                              "summary": [{"type": "summary_text", "text": value}]})
        elif kind == "signature":
            if last is not None and last["type"] == "reasoning":
                last["encrypted_content"] = value
        elif kind == "text":
            if last is not None and last["type"] == "message":
                last["content"][0]["text"] += value
            else:
                items.append({"id": f"msg_fake{n}", "type": "message", "status": "completed", "role": "assistant",
                              "content": [{"type": "output_text", "text": value, "annotations": [], "logprobs": []}]})
        elif kind == "tool":
            items.append({"id": f"fc_fake{n}", "type": "function_call", "status": "completed",
                          "arguments": "".join(value["fragments"]), "call_id": c.call_id(value["n"]),
                          **_namespace_of(value), "name": value["name"]})
    return items


def responses_stream(steps: list[tuple[str, Any]], c: Ctx) -> list[Frame]:
    seq = count()

    def event(type_: str, **fields: Any) -> bytes:
        obj = {"type": type_, "sequence_number": next(seq), **fields}
        return b"event: " + type_.encode() + b"\ndata: " + dumps(obj) + b"\n\n"

    frames: list[Frame] = [
        event("response.created", response=_response_object(c, "in_progress", [], None)),
        event("response.in_progress", response=_response_object(c, "in_progress", [], None)),
    ]
    done: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        nonlocal current
        if current is None:
            return
        item, index = current, len(done)
        if item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            part = {"type": "summary_text", "text": text}
            frames.append(event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                                summary_index=0, text=text))
            frames.append(event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                                summary_index=0, part=part))
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            frames.append(event("response.output_text.done", item_id=item["id"], output_index=index,
                                content_index=0, text=text, logprobs=[]))
            frames.append(event("response.content_part.done", item_id=item["id"], output_index=index,
                                content_index=0, part={"type": "output_text", "text": text, "annotations": []}))
            item["status"] = "completed"
        frames.append(event("response.output_item.done", output_index=index, item=item))
        done.append(item)
        current = None

    for kind, value in steps:
        index = len(done)
        if kind == "thinking":
            if current is None or current["type"] != "reasoning":
                close()
                index = len(done)
                current = {"id": f"rs_fake{index}", "type": "reasoning", "summary": []}
                frames.append(event("response.output_item.added", output_index=index, item=dict(current)))
                frames.append(event("response.reasoning_summary_part.added", item_id=current["id"],
                                    output_index=index, summary_index=0, part={"type": "summary_text", "text": ""}))
                current["summary"] = [{"type": "summary_text", "text": ""}]
            current["summary"][0]["text"] += value
            frames.append(event("response.reasoning_summary_text.delta", item_id=current["id"], output_index=index,
                                summary_index=0, delta=value))
        elif kind == "signature":
            if current is not None and current["type"] == "reasoning":
                current["encrypted_content"] = value
        elif kind == "text":
            if current is None or current["type"] != "message":
                close()
                index = len(done)
                current = {"id": f"msg_fake{index}", "type": "message", "status": "in_progress",
                           "role": "assistant", "content": []}
                frames.append(event("response.output_item.added", output_index=index, item=dict(current)))
                frames.append(event("response.content_part.added", item_id=current["id"], output_index=index,
                                    content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
                current["content"] = [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]
            current["content"][0]["text"] += value
            frames.append(event("response.output_text.delta", item_id=current["id"], output_index=index,
                                content_index=0, delta=value, logprobs=[]))
        elif kind == "tool":
            close()
            index = len(done)
            args = "".join(value["fragments"])
            item = {"id": f"fc_fake{index}", "type": "function_call", "status": "in_progress", "arguments": "",
                    "call_id": c.call_id(value["n"]), **_namespace_of(value), "name": value["name"]}
            frames.append(event("response.output_item.added", output_index=index, item=dict(item)))
            for fragment in value["fragments"]:
                frames.append(event("response.function_call_arguments.delta", item_id=item["id"],
                                    output_index=index, delta=fragment))
            frames.append(event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                arguments=args))
            current = {**item, "status": "completed", "arguments": args}
            close()
        elif kind == "error":
            frames.append(event("error", **ERRORS["responses"]["midstream"]["body"]))
            return frames
        elif kind in CONTROLS:
            frames.append(CONTROLS[kind])
            if kind != "hold":
                return frames
    close()
    frames.append(event("response.completed",
                        response=_response_object(c, "completed", done, _responses_usage(steps))))
    return frames


def responses_whole(steps: list[tuple[str, Any]], c: Ctx) -> dict[str, Any]:
    return _response_object(c, "completed", _responses_items(steps, c), _responses_usage(_content_steps(steps)))


# ----------------------------------------------------------------------------------------------------- Anthropic
def _anthropic_usage(output: int) -> dict[str, Any]:
    return {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": output}


def anthropic_stream(steps: list[tuple[str, Any]], c: Ctx) -> list[Frame]:
    def event(type_: str, **fields: Any) -> bytes:
        return b"event: " + type_.encode() + b"\ndata: " + dumps({"type": type_, **fields}) + b"\n\n"

    message = {"id": "msg_01FakeMessage", "type": "message", "role": "assistant", "model": c.model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": _anthropic_usage(1)}
    frames: list[Frame] = [event("message_start", message=message), event("ping")]
    index = -1
    open_type: str | None = None
    stop_reason = "end_turn"

    def open_block(block: dict[str, Any]) -> None:
        nonlocal index, open_type
        close_block()
        index += 1
        open_type = block["type"]
        frames.append(event("content_block_start", index=index, content_block=block))

    def close_block() -> None:
        nonlocal open_type
        if open_type is not None:
            frames.append(event("content_block_stop", index=index))
            open_type = None

    for kind, value in steps:
        if kind == "thinking":
            if open_type != "thinking":
                open_block({"type": "thinking", "thinking": "", "signature": ""})
            frames.append(event("content_block_delta", index=index,
                                delta={"type": "thinking_delta", "thinking": value}))
        elif kind == "signature":
            # The signature arrives as the last delta of its thinking block, just before content_block_stop.
            frames.append(event("content_block_delta", index=index,
                                delta={"type": "signature_delta", "signature": value}))
        elif kind == "text":
            if open_type != "text":
                open_block({"type": "text", "text": ""})
            frames.append(event("content_block_delta", index=index, delta={"type": "text_delta", "text": value}))
        elif kind == "tool":
            open_block({"type": "tool_use", "id": c.call_id(value["n"]), "name": value["name"], "input": {}})
            for fragment in ["", *value["fragments"]]:
                frames.append(event("content_block_delta", index=index,
                                    delta={"type": "input_json_delta", "partial_json": fragment}))
            close_block()
            stop_reason = "tool_use"
        elif kind == "error":
            frames.append(midstream_error(c.api))
            return frames
        elif kind in CONTROLS:
            frames.append(CONTROLS[kind])
            if kind != "hold":
                return frames
    close_block()
    out, _ = _output_tokens(steps)
    frames.append(event("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None},
                        usage={"output_tokens": out}))
    frames.append(event("message_stop"))
    return frames


def anthropic_whole(steps: list[tuple[str, Any]], c: Ctx) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    stop_reason = "end_turn"
    steps = _content_steps(steps)
    for kind, value in steps:
        last = content[-1] if content else None
        if kind == "thinking":
            if last is not None and last["type"] == "thinking":
                last["thinking"] += value
            else:
                content.append({"type": "thinking", "thinking": value, "signature": ""})
        elif kind == "signature" and last is not None and last["type"] == "thinking":
            last["signature"] = value
        elif kind == "text":
            if last is not None and last["type"] == "text":
                last["text"] += value
            else:
                content.append({"type": "text", "text": value})
        elif kind == "tool":
            content.append({"type": "tool_use", "id": c.call_id(value["n"]), "name": value["name"],
                            "input": value["arguments"]})
            stop_reason = "tool_use"
    out, _ = _output_tokens(steps)
    return {"id": "msg_01FakeMessage", "type": "message", "role": "assistant", "model": c.model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": _anthropic_usage(out)}


# ----------------------------------------------------------------------------------------------------- Gemini
def _gemini_usage(out: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": out - thoughts,
                             "totalTokenCount": INPUT_TOKENS + out}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _gemini_parts(steps: list[tuple[str, Any]]) -> list[tuple[dict[str, Any] | Control, int, int]]:
    """One part per content step (a pending thoughtSignature goes on the next non-thought part), with the running
    (output, thoughts) token counts."""
    parts: list[tuple[dict[str, Any] | Control, int, int]] = []
    signature: str | None = None
    out = thoughts = 0
    for kind, value in steps:
        part: dict[str, Any] | None = None
        if kind == "thinking":
            out += 1
            thoughts += 1
            part = {"text": value, "thought": True}
        elif kind == "signature":
            signature = value
        elif kind == "text":
            out += 1
            part = {"text": value}
        elif kind == "tool":
            out += 5
            part = {"functionCall": {"name": value["name"], "args": value["arguments"]}}
        elif kind == "error":
            parts.append((ERROR, out, thoughts))
            break
        elif kind in CONTROLS:
            parts.append((CONTROLS[kind], out, thoughts))
            if kind != "hold":
                break
        if part is not None:
            if signature is not None and not part.get("thought"):
                part["thoughtSignature"] = signature
                signature = None
            parts.append((part, out, thoughts))
    return parts


def _gemini_chunk(c: Ctx, parts: list[dict[str, Any]], out: int, thoughts: int, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": _gemini_usage(out, thoughts), "modelVersion": c.model,
            "responseId": "fakeGeminiResponse01"}


def gemini_stream(steps: list[tuple[str, Any]], c: Ctx, *, sse: bool = True) -> list[Frame]:
    parts = _gemini_parts(steps)
    ends = not any(p is CUT or p is FOREVER or p is ERROR for p, _, _ in parts)
    last_content = max((i for i, (p, _, _) in enumerate(parts) if isinstance(p, dict)), default=-1)
    frames: list[Frame] = []
    first = True
    for i, (part, out, thoughts) in enumerate(parts):
        if part is ERROR:
            frames.append(midstream_error(c.api) if sse else b",\r\n" + midstream_error(c.api).strip()[6:])
            continue
        if isinstance(part, Control):
            frames.append(part)
            continue
        obj = dumps(_gemini_chunk(c, [part], out, thoughts, finish=ends and i == last_content))
        if sse:
            frames.append(b"data: " + obj + b"\r\n\r\n")  # the Gemini API frames its SSE with CRLF
        else:
            frames.append((b"[" if first else b",\r\n") + obj)
        first = False
    if not sse and ends:
        frames.append(b"]")
    return frames


def gemini_whole(steps: list[tuple[str, Any]], c: Ctx) -> dict[str, Any]:
    merged: list[dict[str, Any]] = []
    out = thoughts = 0
    for part, out_so_far, thoughts_so_far in _gemini_parts(_content_steps(steps)):
        assert isinstance(part, dict)
        out, thoughts = out_so_far, thoughts_so_far
        last = merged[-1] if merged else None
        mergeable = (
            last is not None and "text" in part and "text" in last
            and bool(last.get("thought")) == bool(part.get("thought")) and "thoughtSignature" not in part
        )  # fmt: skip
        if mergeable:
            assert last is not None
            last["text"] += part["text"]
        else:
            merged.append(dict(part))
    return _gemini_chunk(c, merged, out, thoughts, finish=True)


# ----------------------------------------------------------------------------------------------------- Ollama
def _ollama_line(c: Ctx, message: dict[str, Any], done: bool = False, **final: Any) -> dict[str, Any]:
    return {"model": c.model, "created_at": CREATED_AT, "message": {"role": "assistant", **message}, "done": done,
            **final}


def _ollama_final(steps: list[tuple[str, Any]]) -> dict[str, Any]:
    out, _ = _output_tokens(steps)
    return {"done_reason": "stop", "total_duration": 123456789, "load_duration": 1234567,
            "prompt_eval_count": INPUT_TOKENS, "prompt_eval_duration": 2345678, "eval_count": out,
            "eval_duration": 98765432}


def ollama_stream(steps: list[tuple[str, Any]], c: Ctx) -> list[Frame]:
    frames: list[Frame] = []
    for kind, value in steps:
        line: dict[str, Any] | None = None
        if kind == "thinking":
            line = _ollama_line(c, {"content": "", "thinking": value})
        elif kind == "text":
            line = _ollama_line(c, {"content": value})
        elif kind == "tool":
            line = _ollama_line(c, {"content": "", "tool_calls": [
                {"function": {"name": value["name"], "arguments": value["arguments"]}}]})
        elif kind == "error":
            frames.append(midstream_error(c.api))
            return frames
        elif kind in CONTROLS:
            frames.append(CONTROLS[kind])
            if kind != "hold":
                return frames
        if line is not None:
            frames.append(dumps(line) + b"\n")
    frames.append(dumps(_ollama_line(c, {"content": ""}, True, **_ollama_final(steps))) + b"\n")
    return frames


def ollama_whole(steps: list[tuple[str, Any]], c: Ctx) -> dict[str, Any]:
    steps = _content_steps(steps)
    message: dict[str, Any] = {"content": "".join(v for k, v in steps if k == "text")}
    thinking = "".join(v for k, v in steps if k == "thinking")
    if thinking:
        message["thinking"] = thinking
    calls = [{"function": {"name": v["name"], "arguments": v["arguments"]}} for k, v in steps if k == "tool"]
    if calls:
        message["tool_calls"] = calls
    return _ollama_line(c, message, True, **_ollama_final(steps))


# ----------------------------------------------------------------------------------------------------- requests
def _text_of(content: Any) -> str:
    """The text of a content value in any of the formats: a string, a list of text blocks/parts, or an object."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(p) for p in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content", "result"):
            if key in content:
                return _text_of(content[key])
        values = list(content.values())
        if len(values) == 1:
            return _text_of(values[0])
        return json.dumps(content)
    return ""


def tool_results_of(api: str, body: Any) -> list[str]:
    """The texts of the tool results that end the conversation, in order (empty when it does not end with any)."""
    if not isinstance(body, dict):
        return []
    if api in ("openai", "ollama"):
        messages = body.get("messages") or []
        trailing: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.insert(0, _text_of(message.get("content")))
        return trailing
    if api == "responses":
        items = body.get("input")
        outputs: list[str] = []
        for item in reversed(items if isinstance(items, list) else []):
            if item.get("type") != "function_call_output":
                break
            outputs.insert(0, _text_of(item.get("output")))
        return outputs
    if api == "anthropic":
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "user" and isinstance(messages[-1].get("content"), list):
            return [_text_of(b.get("content")) for b in messages[-1]["content"] if b.get("type") == "tool_result"]
    elif api == "gemini":
        contents = body.get("contents") or []
        if contents:
            parts = contents[-1].get("parts", [])
            return [_text_of(p["functionResponse"].get("response")) for p in parts if "functionResponse" in p]
    return []


def tool_result_of(api: str, body: Any) -> str | None:
    """The tool results that end the conversation joined with "; ", or None when it does not end with any."""
    results = tool_results_of(api, body)
    return "; ".join(results) if results else None


def prefill_of(api: str, body: Any) -> str | None:
    """The assistant prefill text when the conversation ends with an assistant turn, else None."""
    if not isinstance(body, dict):
        return None
    if api in ("openai", "anthropic", "ollama"):
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "assistant":
            content = messages[-1].get("content")
            if isinstance(content, list):
                content = [b for b in content if b.get("type") == "text"]
            return _text_of(content)
    elif api == "responses":
        items = body.get("input")
        if isinstance(items, list) and items and items[-1].get("role") == "assistant":
            return _text_of(items[-1].get("content"))
    elif api == "gemini":
        contents = body.get("contents") or []
        if contents and contents[-1].get("role") == "model":
            return "".join(p.get("text", "") for p in contents[-1].get("parts", []))
    return None


def continuation(api: str, body: Any, label: str) -> list[tuple[str, Any]]:
    """``continued``, or when the request ends with a prefill of it, the rest after that prefill (as a model
    continuing its own partial answer would), in two chunks."""
    prefill = prefill_of(api, body)
    full = script_text("continued", label)
    if not prefill or not full.startswith(prefill):
        return script("continued", label)
    rest = full[len(prefill) :]
    half = len(rest) // 2
    return [("text", rest[:half]), ("text", rest[half:])]


def error_reply(family: str, name: str, model: str = "") -> Whole:
    spec = ERRORS[family][name]
    body = json.dumps(spec["body"]).replace("{model}", model).encode()
    return Whole(spec["status"], body, dict(spec["headers"]))


_FAMILY = {"openai": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gemini", "ollama": "ollama"}

_RENDER: dict[str, tuple[Callable[[list[tuple[str, Any]], Ctx], list[Frame]], Callable[..., dict[str, Any]], str]] = {
    "openai": (chat_stream, chat_whole, "text/event-stream"),
    "responses": (responses_stream, responses_whole, "text/event-stream"),
    "anthropic": (anthropic_stream, anthropic_whole, "text/event-stream"),
    "gemini": (gemini_stream, gemini_whole, "text/event-stream"),
    "ollama": (ollama_stream, ollama_whole, "application/x-ndjson"),
}


# ----------------------------------------------------------------------------------------------------- the server
class FakeProvider:
    """A fake provider of one kind (``openai``, ``anthropic``, ``gemini``, ``ollama``) on 127.0.0.1, port from the OS.

    ``keys``: the API keys it accepts (an Ollama fake accepts any, as a local Ollama does). ``events``: a log shared
    with the test, for ordering assertions (``provider:held``, ``provider:finished``...).
    """

    def __init__(self, kind: str, keys: set[str], events: list[str] | None = None) -> None:
        self.kind = kind
        self.keys = keys
        self.events = events if events is not None else []
        self.seen: list[Seen] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.release = trio.Event()
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        task_status.started(self.url)
        await trio.serve_listeners(self._connection, listeners)

    # ------------------------------------------------------------------ HTTP/1.1 over one connection
    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                seen = await self._read_request(conn, stream)
                if seen is None:
                    return
                reply = self._reply(seen)
                if isinstance(reply, Silent):
                    await self._stay_silent(stream, seen)
                    return
                seen.status = reply.status if isinstance(reply, Whole) else 200
                if isinstance(reply, Whole):
                    await self._send_whole(conn, stream, reply)
                    seen.finished = True
                elif not await self._send_stream(conn, stream, reply, seen):
                    return  # cut, or the gateway went away: the connection is gone
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await stream.aclose()

    async def _next(self, conn: h11.Connection, stream: trio.SocketStream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await stream.receive_some(65536))

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream) -> Seen | None:
        event = await self._next(conn, stream)
        if not isinstance(event, h11.Request):
            return None
        chunks: list[bytes] = []
        while True:
            part = await self._next(conn, stream)
            if isinstance(part, h11.Data):
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None
        raw = b"".join(chunks)
        target = event.target.decode("latin-1")
        path, _, query = target.partition("?")
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        seen = Seen(
            api=self.kind,
            method=event.method.decode(),
            path=unquote(path),
            query=dict(parse_qsl(query)),
            headers={k.decode().lower(): v.decode("latin-1") for k, v in event.headers},
            raw=raw,
            body=body,
        )
        self.seen.append(seen)
        return seen

    async def _stay_silent(self, stream: trio.SocketStream, seen: Seen) -> None:
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                seen.disconnected.set()
                self.events.append(f"provider:{seen.api}:disconnected")
                return

    async def _send_whole(self, conn: h11.Connection, stream: trio.SocketStream, reply: Whole) -> None:
        headers = [("content-type", reply.content_type), ("content-length", str(len(reply.body)))]
        headers += list(reply.headers.items())
        await stream.send_all(conn.send(h11.Response(status_code=reply.status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=reply.body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    async def _send_stream(
        self, conn: h11.Connection, stream: trio.SocketStream, reply: Streamed, seen: Seen
    ) -> bool:
        """Send a chunked streaming body frame by frame while watching for the gateway closing the connection.
        Returns whether the connection can be reused."""
        headers = [("content-type", reply.content_type), ("cache-control", "no-cache")]
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
        gone = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal gone
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:  # EOF: the gateway closed its upstream connection mid-answer
                    gone = True
                    seen.disconnected.set()
                    self.events.append(f"provider:{seen.api}:disconnected")
                    nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                for frame in reply.frames:
                    if frame is HOLD:
                        self.events.append(f"provider:{seen.api}:held")
                        with trio.move_on_after(HANG_GUARD_S) as guard:
                            await self.release.wait()
                        if guard.cancelled_caught:
                            self.events.append(f"provider:{seen.api}:hang-guard")
                        continue
                    if frame is FOREVER:
                        await trio.sleep_forever()
                    if frame is CUT:
                        self.events.append(f"provider:{seen.api}:cut")
                        gone = True
                        nursery.cancel_scope.cancel()
                        break
                    assert isinstance(frame, bytes)
                    await stream.send_all(conn.send(h11.Data(data=frame)))
                    await trio.sleep(0)  # let each frame leave as its own write
                else:
                    await stream.send_all(conn.send(h11.EndOfMessage()))
                    seen.finished = True
                    self.events.append(f"provider:{seen.api}:finished")
                    nursery.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone = True
                if not seen.disconnected.is_set():
                    seen.disconnected.set()
                    self.events.append(f"provider:{seen.api}:disconnected")
                nursery.cancel_scope.cancel()
        return not gone

    # ------------------------------------------------------------------ what to answer
    def _reply(self, seen: Seen) -> Reply:
        try:
            if self.kind == "openai":
                return self._openai(seen)
            if self.kind == "anthropic":
                return self._anthropic(seen)
            if self.kind == "gemini":
                return self._gemini(seen)
            return self._ollama(seen)
        except Exception as exc:  # a fake bug must show up in the test, not hang it
            return Whole(599, json.dumps({"fake_error": repr(exc)}).encode())

    def _generate(self, seen: Seen, family: str) -> Reply:
        refusal = family_refusal(seen.api, seen.model, seen.body)  # what the real model family refuses (400)
        if refusal is not None:
            return Whole(400, dumps(refusal))
        behaviour = FAMILY_MODELS.get(seen.model, seen.model)
        if behaviour not in BEHAVIOURS:
            return error_reply(family, "not_found", seen.model)
        if behaviour == "ratelimit" or (behaviour == "keyed" and (seen.key or "").endswith("-first")):
            return error_reply(family, "ratelimit")
        if behaviour == "silent":
            return Silent()
        if behaviour in ("ctxlimit", "badrequest", "down"):
            return error_reply(family, behaviour)
        self.counts[(seen.api, behaviour)] = self.counts.get((seen.api, behaviour), 0) + 1
        if behaviour == "flaky" and self.counts[(seen.api, behaviour)] == 1:
            return error_reply(family, "flaky")
        name = behaviour
        tool_result = tool_result_of(seen.api, seen.body)
        if behaviour in ("tool", "nstool"):
            name = "tool_answer" if tool_result is not None else "tool_call"
        elif behaviour == "tools2":
            name = "tool_answer" if tool_result is not None else "two_tool_calls"
        elif behaviour == "thinktool":
            name = "tool_answer" if tool_result is not None else "think_tool_call"
        elif behaviour in ("keyed", "flaky"):
            name = "text"
        elif behaviour == "midstream":
            if not seen.stream:
                return error_reply(family, "flaky")
            name = "midstream_error"
        if behaviour == "continue":
            steps = continuation(seen.api, seen.body, seen.api)
        else:
            steps = script(name, seen.api, tool_result or "")
        if behaviour == "nstool":
            steps = call_offered_tool(seen.api, seen.body, steps)
        stream_fn, whole_fn, content_type = _RENDER[seen.api]
        include_usage = bool(((seen.body or {}).get("stream_options") or {}).get("include_usage"))
        ctx = Ctx(seen.api, seen.model, include_usage=include_usage)
        if not seen.stream:
            if any(k in ("cut", "forever") for k, _ in steps):
                return Streamed(_broken_body(steps), "application/json")
            return Whole(200, dumps(whole_fn(steps, ctx)))
        if seen.api == "gemini" and seen.query.get("alt") != "sse":
            return Streamed(gemini_stream(steps, ctx, sse=False), "application/json")
        return Streamed(stream_fn(steps, ctx), content_type)

    def _openai(self, seen: Seen) -> Reply:
        auth = seen.headers.get("authorization", "")
        seen.key = auth[7:] if auth.lower().startswith("bearer ") else None
        seen.api = "responses" if seen.path.startswith("/v1/responses") else "openai"
        if seen.method != "POST" or seen.path not in ("/v1/chat/completions", "/v1/responses",
                                                      "/v1/responses/input_tokens"):
            return Whole(404, dumps({"error": {"message": f"Invalid URL ({seen.method} {seen.path})",
                                               "type": "invalid_request_error", "param": None, "code": None}}))
        if seen.key not in self.keys:
            return error_reply("openai", "unauthorized")
        body = seen.body if isinstance(seen.body, dict) else {}
        seen.model = str(body.get("model", ""))
        seen.stream = body.get("stream") is True
        if seen.path == "/v1/responses/input_tokens":
            return Whole(200, dumps({"object": "response.input_tokens", "input_tokens": COUNT_TOKENS}))
        return self._generate(seen, "openai")

    def _anthropic(self, seen: Seen) -> Reply:
        seen.key = seen.headers.get("x-api-key")
        if seen.method != "POST" or seen.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return Whole(404, dumps({"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}))
        if seen.key not in self.keys:
            return error_reply("anthropic", "unauthorized")
        if "anthropic-version" not in seen.headers:
            return Whole(400, dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "anthropic-version: header is required"}}))
        body = seen.body if isinstance(seen.body, dict) else {}
        refusal = anthropic_rule_violation(seen.headers, body)
        if refusal is not None:
            return Whole(400, dumps({"type": "error", "error": {"type": "invalid_request_error", "message": refusal}}))
        seen.model = str(body.get("model", ""))
        seen.stream = body.get("stream") is True
        if seen.path == "/v1/messages/count_tokens":
            return Whole(200, dumps({"input_tokens": COUNT_TOKENS}))
        return self._generate(seen, "anthropic")

    def _gemini(self, seen: Seen) -> Reply:
        seen.key = seen.headers.get("x-goog-api-key") or seen.query.get("key")
        # Gemini API paths, and Vertex AI's API-key (express mode) paths for vertex-compat providers.
        prefix = next((p for p in ("/v1beta/models/", "/v1/publishers/google/models/") if seen.path.startswith(p)), "")
        model, _, action = seen.path.removeprefix(prefix).rpartition(":")
        if seen.method != "POST" or not prefix or action not in (
            "generateContent", "streamGenerateContent", "countTokens"
        ):
            return Whole(404, dumps({"error": {"code": 404, "message": f"Method not found: {seen.path}",
                                               "status": "NOT_FOUND"}}))
        if seen.key not in self.keys:
            return error_reply("gemini", "unauthorized")
        seen.model = model
        seen.stream = action == "streamGenerateContent"
        if action == "countTokens":
            return Whole(200, dumps({"totalTokens": COUNT_TOKENS,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": COUNT_TOKENS}]}))
        return self._generate(seen, "gemini")

    def _ollama(self, seen: Seen) -> Reply:
        auth = seen.headers.get("authorization", "")
        seen.key = auth[7:] if auth.lower().startswith("bearer ") else None
        if seen.method != "POST" or seen.path != "/api/chat":
            return Whole(404, b"404 page not found", content_type="text/plain")
        body = seen.body if isinstance(seen.body, dict) else {}
        seen.model = str(body.get("model", ""))
        seen.stream = body.get("stream", True) is not False  # Ollama streams unless told not to
        return self._generate(seen, "ollama")


# ------------------------------------------------------------------------- rules the real APIs enforce (cited)
# tests/fixtures/transcripts/provider_rules.source.txt gives the documentation behind each rule.
ANTHROPIC_BETA_FIELDS = {"context_management": "context-management-2025-06-27", "mcp_servers": "mcp-client-2025-04-04"}
"""Anthropic body fields accepted only with their ``anthropic-beta`` header (without it: "Extra inputs are not
permitted")."""


def anthropic_rule_violation(headers: dict[str, str], body: dict[str, Any]) -> str | None:
    """The 400 message Anthropic answers for a request breaking one of the rules the fakes enforce, else None."""
    betas = {b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()}
    for field_name, beta in ANTHROPIC_BETA_FIELDS.items():
        if field_name in body and beta not in betas:
            return f"{field_name}: Extra inputs are not permitted"
    thinking = body.get("thinking")
    if not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")):
        return None
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    ends_with_results = (
        last.get("role") == "user"
        and isinstance(last.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])
    )
    if not ends_with_results or len(messages) < 2:
        return None
    assistant = messages[-2]
    blocks = assistant.get("content") if isinstance(assistant.get("content"), list) else []
    first = blocks[0] if blocks and isinstance(blocks[0], dict) else {}
    signed = (first.get("type") == "thinking" and first.get("signature")) or first.get("type") == "redacted_thinking"
    if not signed:
        return (
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start with a "
            "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you "
            "include thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
        )
    return None


def _namespace_of(value: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": value["namespace"]} if value.get("namespace") else {}


def call_offered_tool(api: str, body: Any, steps: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``nstool``: the call goes to the tool the request offers whose name ends with ``get_weather`` (a namespace
    member flattened by the gateway), under that name; a Responses request's namespace member is called as the
    Responses API calls it: its own ``name`` plus the ``namespace``."""
    name, namespace = "get_weather", None
    for tool in (body or {}).get("tools") or []:
        members = tool.get("tools") or [] if tool.get("type") == "namespace" else []
        if api == "responses" and any(t.get("name") == "get_weather" for t in members):
            namespace = tool.get("name")
        candidates = [tool.get("name"), (tool.get("function") or {}).get("name")]
        candidates += [d.get("name") for d in tool.get("functionDeclarations") or []]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate.endswith("get_weather"):
                name = candidate
    return [(k, {**v, "name": name, "namespace": namespace} if k == "tool" else v) for k, v in steps]


def _broken_body(steps: list[tuple[str, Any]]) -> list[Frame]:
    """A non-streaming answer that is cut or never ends: a partial JSON body, then the control."""
    for kind, _ in steps:
        if kind in ("cut", "forever"):
            return [b'{"partial": ', CONTROLS[kind]]
    return []


# ----------------------------------------------------------------------------------------------------- transcripts
# The rendered scripts, as wire transcripts under tests/fixtures/transcripts/wire/ (what the fakes send, for review;
# test_fakes.py checks they are current). Regenerate with: python -m tests.e2e.fakes
# script -> the model name the fake echoes
WIRE_SCRIPTS = {"text": "text", "think": "think", "tool_call": "tool", "think_tool_call": "thinktool",
                "two_tool_calls": "tools2", "tool_answer": "tool", "midstream_error": "midstream"}
TRANSCRIPT_TOOL_RESULT = "sunny, 21 C"
WIRE_DIR = TRANSCRIPTS / "wire"


def render_transcripts() -> dict[str, bytes]:
    """Every API's rendering of every wire script: ``<api>/<script>.sse|.ndjson`` (stream) and ``.json`` (whole);
    Gemini's JSON-array stream dialect as ``gemini/<script>.array.json``."""
    out: dict[str, bytes] = {}
    for api, (stream_fn, whole_fn, content_type) in _RENDER.items():
        ext = "ndjson" if content_type == "application/x-ndjson" else "sse"
        for name, model in WIRE_SCRIPTS.items():
            steps = script(name, api, TRANSCRIPT_TOOL_RESULT)
            ctx = Ctx(api, model, include_usage=True)
            out[f"{api}/{name}.{ext}"] = b"".join(f for f in stream_fn(steps, ctx) if isinstance(f, bytes))
            if name == "midstream_error":
                continue
            out[f"{api}/{name}.json"] = orjson.dumps(whole_fn(steps, ctx), option=orjson.OPT_INDENT_2) + b"\n"
            if api == "gemini":
                array = b"".join(f for f in gemini_stream(steps, ctx, sse=False) if isinstance(f, bytes))
                out[f"{api}/{name}.array.json"] = array
    return out


def write_transcripts() -> None:
    for relative, data in render_transcripts().items():
        path = WIRE_DIR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


if __name__ == "__main__":
    write_transcripts()

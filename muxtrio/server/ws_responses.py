"""OpenAI Responses WebSocket mode (``/v1/responses``, ``docs/websocket.md``): ``response.create`` in; the Responses
stream events out, one per message.

Invariants:
- A turn's events are the Responses SSE events of the codec's encoder, each ``data:`` payload sent as one text
  message (byte-identical to SSE, no re-serialisation).
- ``previous_response_id`` resolves against this connection's memory (the full IR conversation: the earlier messages
  plus the answer's parts, and the system / developer text that came as input items — only ``instructions`` belong
  to their own turn, as OpenAI documents); it is never sent upstream, so any provider can serve every turn. A
  warm-up (``generate: false``) is remembered too: Codex CLI sends its base instructions as the warm-up's only input
  item. With shared state every turn is also kept in the store, so the next turn may come on any node.
- Turns on one ``stream_id`` lane run in order; lanes run concurrently. An error before a turn's first event is a
  lone ``error`` event with ``status``; after it, the encoder's own ``error`` + ``response.failed`` events, as over
  SSE.

Imports: server (:mod:`muxtrio.server.ws_connection`, handlers), engine, state, codecs and IR.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import trio

from muxtrio.codecs.base import Format, RequestHints, StreamEncoder, StreamInfo
from muxtrio.codecs.ir_json import request_from_json, request_to_json
from muxtrio.codecs.registry import get_codec
from muxtrio.engine.engine import Engine
from muxtrio.engine.stream import StreamMeta
from muxtrio.errors import ClientError, ErrorKind, MuxError
from muxtrio.ir.accumulate import Accumulator
from muxtrio.ir.events import Start
from muxtrio.ir.request import Message, Part, Request, Role, Text, ToolCall, ToolResult
from muxtrio.server.handlers import ID_PREFIX, RequestLog, checked_model, internal_error, new_request_id
from muxtrio.server.http import Receive, Send
from muxtrio.server.stream_writer import State
from muxtrio.server.ws_connection import MAX_ID_CHARS, Connection, Owner, PayloadWriter, generate, invalid, log
from muxtrio.state.store import PREFIX as STATE_PREFIX

RESPONSES_PATH = "/v1/responses"
MAX_LANES = 256
"""Concurrent Responses ``stream_id`` lanes per connection."""
LANE_QUEUE = 16
"""``response.create`` messages waiting on one lane."""
REMEMBERED_RESPONSES = 128
"""Responses kept per connection for ``previous_response_id`` (least recently used ones are forgotten). With shared
state (``state.backend: redis``) every turn is also kept in Redis for ``state.responses-ttl``, so the next turn may
come on any node."""
RECALL_RETRY_S = 0.1
"""With shared state, an unknown ``previous_response_id`` is looked up once more after this long."""


class PreviousResponseNotFound(ClientError):
    """``previous_response_id`` names no response this connection remembers (OpenAI: 400
    ``previous_response_not_found``)."""

    code = "previous_response_not_found"

    def __init__(self, response_id: str) -> None:
        super().__init__(
            ErrorKind.INVALID_REQUEST,
            f"Previous response with id '{response_id}' not found on this connection.",
            param="previous_response_id",
        )


class _Lane(Owner):
    __slots__ = ("id", "id_json")

    def __init__(self, lane_id: str | None) -> None:
        super().__init__()
        self.id = lane_id
        self.id_json = orjson.dumps(lane_id) if lane_id is not None else None


@dataclass(frozen=True, slots=True)
class _Remembered:
    """What a later turn continues from: the system/developer text given as input items (carried over, unlike
    ``instructions``) and the conversation, the answer included."""

    system: tuple[Text, ...] = ()
    messages: tuple[Message, ...] = ()


class ResponsesConnection(Connection):
    """Responses WebSocket mode: ``response.create`` in; the Responses stream events out, one per message."""

    def __init__(self, engine: Engine, receive: Receive, send: Send, max_message_bytes: int) -> None:
        super().__init__(engine, receive, send, max_message_bytes)
        self.codec = get_codec(Format.OPENAI_RESPONSES)
        self.lanes: dict[str | None, tuple[_Lane, trio.MemorySendChannel[dict[str, Any]]]] = {}
        self.memory: OrderedDict[str, _Remembered] = OrderedDict()

    async def reject(self, err: MuxError, message: Mapping[str, Any] | None) -> None:
        lane_id = message.get("stream_id") if message is not None else None
        lane = _Lane(lane_id if isinstance(lane_id, str) else None)
        await self.write(None, self._error_event(err, lane))

    def _error_event(self, err: MuxError, lane: _Lane) -> bytes:
        status, body = self.codec.emit_error(err)
        error = orjson.loads(body)["error"]
        if isinstance(err, PreviousResponseNotFound):
            error["code"] = err.code
        event: dict[str, Any] = {"type": "error", "status": status, "error": error}
        if lane.id is not None:
            event["stream_id"] = lane.id
        return orjson.dumps(event)

    async def on_message(self, message: dict[str, Any], nursery: trio.Nursery) -> None:
        kind = message.get("type")
        if kind != "response.create":
            what = "steering" if kind == "response.steer" else f"client event {kind!r}"
            await self.reject(ClientError(ErrorKind.UNSUPPORTED, f"{what} is not supported", param="type"), message)
            return
        lane_id = message.get("stream_id")
        if lane_id is not None and (not isinstance(lane_id, str) or not lane_id or len(lane_id) > MAX_ID_CHARS):
            await self.reject(invalid("`stream_id` must be a non-empty string", "stream_id"), None)
            return
        found = self.lanes.get(lane_id)
        if found is None:
            if len(self.lanes) >= MAX_LANES:
                err = MuxError(ErrorKind.RATE_LIMIT, f"more than {MAX_LANES} stream_id lanes on one connection")
                await self.reject(err, message)
                return
            lane = _Lane(lane_id)
            send, receive = trio.open_memory_channel[dict[str, Any]](LANE_QUEUE)
            found = self.lanes[lane_id] = (lane, send)
            nursery.start_soon(self._lane, lane, receive)
        try:
            found[1].send_nowait(message)
        except trio.WouldBlock:
            err = MuxError(ErrorKind.RATE_LIMIT, f"more than {LANE_QUEUE} response.create waiting on this lane")
            await self.reject(err, message)

    async def _lane(self, lane: _Lane, queue: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async with queue:
            async for message in queue:
                await self._turn(lane, message)

    async def _emit(self, lane: _Lane, frame: bytes) -> None:
        if lane.id_json is not None:
            frame = b'{"stream_id":' + lane.id_json + b"," + frame[1:]
        await self.write(lane, frame)

    async def _turn(self, lane: _Lane, message: dict[str, Any]) -> None:
        entry = RequestLog("WS", RESPONSES_PATH, Format.OPENAI_RESPONSES.value, new_request_id())
        response_id = ID_PREFIX[Format.OPENAI_RESPONSES] + entry.request_id
        writer: PayloadWriter | None = None
        entry.status = 499
        answer = Accumulator()
        generating = False

        async def emit(frames: list[bytes]) -> None:
            if entry.ttfb is None:
                entry.ttfb = time.perf_counter() - entry.start
            for frame in frames:
                await self._emit(lane, frame)

        try:
            body = {k: v for k, v in message.items() if k not in ("type", "stream_id", "stream")}
            client_request = checked_model(self.codec.parse_request(orjson.dumps(body), RequestHints(stream=True)))
            entry.model = client_request.model
            history = await self._recall(client_request.previous_response_id)
            # The codec puts `instructions` first in `system`, then the leading system/developer input items.
            instructions = client_request.system[:1] if isinstance(body.get("instructions"), str) else ()
            carried = history.system + client_request.system[len(instructions):]
            messages = history.messages + _name_tool_results(client_request.messages, history.messages)
            request = replace(client_request, system=instructions + carried, messages=messages,
                              previous_response_id=None, stream=True)
            created = int(time.time())

            def encoder(model: str) -> StreamEncoder:
                return self.codec.new_encoder(StreamInfo(response_id, model, created, client_request))

            writer = PayloadWriter(self.engine.config, request, encoder, emit, observe=answer.add)
            if body.get("generate") is False:
                # Warm-up: remember the input, answer with an empty completed response.
                warm = writer.encoder = encoder(request.model)
                frames = [*warm.frames(Start(response_id, request.model)), *warm.final_frames()]
                await writer.write(frames, StreamMeta())
                await self._remember(response_id, _Remembered(carried, messages))
                entry.status = 200
                return
            generating = True
            self._begin(entry)
            meta = await generate(self.engine, request, writer, entry)
            entry.status = 200
            entry.provider = meta.provider or "-"
            parts = answer.partial_parts()
            answered = messages + ((Message(Role.ASSISTANT, parts),) if parts else ())
            await self._remember(response_id, _Remembered(carried, answered))
        except MuxError as err:
            entry.status, entry.error = err.status, err.message
            await self._fail(lane, writer, err)
        except Exception:
            log.exception("internal error in a Responses WebSocket turn")
            internal = internal_error()
            entry.status, entry.error = internal.status, internal.message
            await self._fail(lane, writer, internal)
        finally:
            if generating:
                self._end(entry, answer.usage)
            entry.emit()

    async def _fail(self, lane: _Lane, writer: PayloadWriter | None, err: MuxError) -> None:
        if writer is not None and writer.state is State.STREAMING and writer.encoder is not None:
            writer.state = State.FAILED
            for _name, payload in writer.encoder.error_frames(err):
                await self._emit(lane, payload)
        else:
            await self.write(lane, self._error_event(err, lane))

    async def _recall(self, response_id: str | None) -> _Remembered:
        """This connection's memory first; then, with shared state, what any node remembered (one round trip)."""
        if response_id is None:
            return _Remembered()
        history = self.memory.get(response_id)
        if history is None:
            history = await _shared_recall(self.engine, response_id)
            if history is None:
                raise PreviousResponseNotFound(response_id)
            self.memory[response_id] = history
        self.memory.move_to_end(response_id)
        return history

    async def _remember(self, response_id: str, turns: _Remembered) -> None:
        self.memory[response_id] = turns
        while len(self.memory) > REMEMBERED_RESPONSES:
            self.memory.popitem(last=False)
        await _shared_remember(self.engine, response_id, turns)


def _response_key(response_id: str) -> str:
    return f"{STATE_PREFIX}response:{response_id}"


async def _shared_remember(engine: Engine, response_id: str, turns: _Remembered) -> None:
    """With shared state, keep the turn for ``state.responses-ttl`` where every node finds it (awaited: one round
    trip per turn, after its last event; none while it streams)."""
    if not engine.state.shared:
        return
    body = request_to_json(Request(model="-", system=turns.system, messages=turns.messages))
    ttl_ms = str(max(1, int(engine.config.state.responses_ttl * 1000)))
    await engine.state.pipeline([["SET", _response_key(response_id), orjson.dumps(body), "PX", ttl_ms]])


async def _shared_recall(engine: Engine, response_id: str) -> _Remembered | None:
    if not engine.state.shared or len(response_id) > MAX_ID_CHARS:
        return None
    replies = await engine.state.pipeline([["GET", _response_key(response_id)]])
    if replies is not None and replies[0] is None:
        # The turn may have ended on another node a moment ago, its write still on the way: look once more.
        await trio.sleep(RECALL_RETRY_S)
        replies = await engine.state.pipeline([["GET", _response_key(response_id)]])
    if not replies or not isinstance(replies[0], bytes | str):
        return None
    stored = request_from_json(orjson.loads(replies[0]))
    return _Remembered(tuple(p for p in stored.system if isinstance(p, Text)), stored.messages)



def _name_tool_results(messages: tuple[Message, ...], history: tuple[Message, ...]) -> tuple[Message, ...]:
    """Give tool results of a continued turn the tool name from the remembered call (formats such as Gemini need
    it; the Responses ``function_call_output`` item only carries the call id)."""
    if not history:
        return messages
    names = {
        part.id: part.name for message in history for part in message.parts if isinstance(part, ToolCall)
    }
    out: list[Message] = []
    for message in messages:
        if any(isinstance(p, ToolResult) and p.name is None and p.call_id in names for p in message.parts):
            parts: tuple[Part, ...] = tuple(
                replace(p, name=names[p.call_id]) if isinstance(p, ToolResult) and p.name is None
                and p.call_id in names else p
                for p in message.parts
            )
            message = replace(message, parts=parts)
        out.append(message)
    return tuple(out)

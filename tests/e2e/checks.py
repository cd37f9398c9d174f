"""Assertions on what the fake providers received (the gateway's translated request in each provider's own format),
and validation of wire bodies with the official SDKs' own types (strict ``model_validate``: the SDKs themselves parse
leniently, but clients in other languages, and the SDKs' typed accessors, rely on required fields being there)."""

from __future__ import annotations

import base64
import typing
from typing import Any

import anthropic.types as atypes
import ollama
import orjson
from google.genai import types as gtypes
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from tests.e2e.conftest import CLIENT_KEY, provider_key
from tests.e2e.fakes import TOOL_IDS, Seen, _text_of


def user_text(api: str, body: Any) -> str:
    """All user-authored text of a provider request, in order."""
    out: list[str] = []
    if api in ("openai", "anthropic", "ollama"):
        for message in body.get("messages") or []:
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    content = [b for b in content if b.get("type") == "text"]
                out.append(_text_of(content))
    elif api == "responses":
        items = body.get("input")
        if isinstance(items, str):
            out.append(items)
        for item in items if isinstance(items, list) else []:
            if item.get("role") == "user":
                out.append(_text_of(item.get("content")))
    elif api == "gemini":
        for content in body.get("contents") or []:
            if content.get("role", "user") == "user":
                out.append("".join(p.get("text", "") for p in content.get("parts", [])))
    return "".join(out)


def check_request(upstream: str, seen: Seen, *, behaviour: str, stream: bool, prompt: str | None = None) -> None:
    """The request is in ``upstream``'s format, at its path, with its provider key (never the client's key), for the
    bare upstream model name, asking to stream exactly when ``stream``."""
    body = seen.body
    assert isinstance(body, dict), seen.raw[:200]
    assert seen.method == "POST"
    key = provider_key(upstream)
    if upstream == "openai":
        assert seen.path == "/v1/chat/completions"
        assert seen.headers.get("authorization") == f"Bearer {key}"
        assert body["model"] == behaviour
        assert body.get("stream", False) is stream
    elif upstream == "responses":
        assert seen.path == "/v1/responses"
        assert seen.headers.get("authorization") == f"Bearer {key}"
        assert body["model"] == behaviour
        assert body.get("stream", False) is stream
    elif upstream == "anthropic":
        assert seen.path == "/v1/messages"
        assert seen.headers.get("x-api-key") == key
        assert seen.headers.get("anthropic-version"), "Anthropic requires the anthropic-version header"
        assert body["model"] == behaviour
        assert isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0
        assert body.get("stream", False) is stream
    elif upstream == "gemini":
        action = "streamGenerateContent" if stream else "generateContent"
        assert seen.path == f"/v1beta/models/{behaviour}:{action}"
        assert key in (seen.headers.get("x-goog-api-key"), seen.query.get("key"))
        if stream:
            assert seen.query.get("alt") == "sse"
        assert "model" not in body or body["model"].removeprefix("models/") == behaviour
        assert isinstance(body.get("contents"), list)
    elif upstream == "ollama":
        assert seen.path == "/api/chat"
        assert body["model"] == behaviour
        assert body.get("stream", True) is stream  # Ollama streams when "stream" is absent
    else:
        raise AssertionError(upstream)
    assert CLIENT_KEY.encode() not in seen.raw, "the client's gateway key leaked upstream"
    assert all(CLIENT_KEY not in v for v in seen.headers.values()), "the client's gateway key leaked upstream"
    if prompt is not None:
        assert prompt in user_text(upstream, body)


def thinking_requested(upstream: str, body: dict[str, Any]) -> bool:
    """Whether the provider request turns thinking/reasoning on, in that provider's own terms."""
    if upstream == "openai":
        return body.get("reasoning_effort") not in (None, "none")
    if upstream == "responses":
        return (body.get("reasoning") or {}).get("effort") not in (None, "none")
    if upstream == "anthropic":
        return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    if upstream == "gemini":
        config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        return bool(config.get("includeThoughts"))
    if upstream == "ollama":
        return body.get("think") not in (None, False)
    raise AssertionError(upstream)


def check_tool_result(upstream: str, seen: Seen, result: str, *, provider_ids: bool) -> None:
    """The second turn carries the assistant's tool call and the tool result, linked as ``upstream`` links them.

    ``provider_ids``: the client kept the provider's tool-call id, so the provider must get its own id back; a
    client format without ids (Ollama) gets ids from the gateway, which must then link call and result consistently.
    """
    body = seen.body
    assert isinstance(body, dict)
    if upstream == "openai":
        call, reply = body["messages"][-2], body["messages"][-1]
        assert call["role"] == "assistant" and [c["function"]["name"] for c in call["tool_calls"]] == ["get_weather"]
        call_id = call["tool_calls"][0]["id"]
        assert reply["role"] == "tool" and reply["tool_call_id"] == call_id
        assert call_id == TOOL_IDS["openai"][0] or (not provider_ids and call_id)
        assert result in _text_of(reply["content"])
    elif upstream == "responses":
        items = body["input"]
        calls = [i for i in items if i.get("type") == "function_call"]
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert [c["name"] for c in calls] == ["get_weather"]
        call_id = calls[0]["call_id"]
        assert [o["call_id"] for o in outputs] == [call_id]
        assert call_id == TOOL_IDS["responses"][0] or (not provider_ids and call_id)
        assert result in _text_of(outputs[0]["output"])
    elif upstream == "anthropic":
        call, reply = body["messages"][-2], body["messages"][-1]
        uses = [b for b in call["content"] if b.get("type") == "tool_use"]
        assert call["role"] == "assistant" and [u["name"] for u in uses] == ["get_weather"]
        assert uses[0]["input"] == {"city": "Paris"}
        call_id = uses[0]["id"]
        results = [b for b in reply["content"] if b.get("type") == "tool_result"]
        assert reply["role"] == "user" and [r["tool_use_id"] for r in results] == [call_id]
        assert call_id == TOOL_IDS["anthropic"][0] or (not provider_ids and call_id)
        assert result in _text_of(results[0].get("content"))
    elif upstream == "gemini":
        call, reply = body["contents"][-2], body["contents"][-1]
        calls = [p["functionCall"] for p in call["parts"] if "functionCall" in p]
        assert call["role"] == "model" and [c["name"] for c in calls] == ["get_weather"]
        assert calls[0]["args"] == {"city": "Paris"}
        responses = [p["functionResponse"] for p in reply["parts"] if "functionResponse" in p]
        assert [r["name"] for r in responses] == ["get_weather"]
        assert result in _text_of(responses[0]["response"])
    elif upstream == "ollama":
        call, reply = body["messages"][-2], body["messages"][-1]
        assert call["role"] == "assistant"
        assert [c["function"]["name"] for c in call["tool_calls"]] == ["get_weather"]
        assert call["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
        assert reply["role"] == "tool" and result in _text_of(reply["content"])
    else:
        raise AssertionError(upstream)


# ----------------------------------------------------------------------------------------------------- SDK types
def _by_type(union_annotation: Any) -> dict[str, Any]:
    """Event ``type`` -> the SDK's model class, from a discriminated union of stream events."""
    union = typing.get_args(union_annotation)[0]
    return {typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in typing.get_args(union)}


RESPONSES_EVENTS = _by_type(ResponseStreamEvent)
ANTHROPIC_EVENTS = _by_type(atypes.RawMessageStreamEvent)


def _sse(frames: bytes, sep: bytes) -> list[tuple[str | None, bytes]]:
    out: list[tuple[str | None, bytes]] = []
    for block in frames.split(sep):
        if not block.strip():
            continue
        event: str | None = None
        data = b""
        for line in block.splitlines():
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if data:  # a block of comments only (": ping") carries no event
            out.append((event, data))
    return out


def validate_stream(api: str, raw: bytes) -> int:
    """Validate every event of a rendered stream with the SDK's types; returns how many were checked."""
    checked = 0
    if api == "openai":
        events = _sse(raw, b"\n\n")
        for _, data in events:
            if data == b"[DONE]":
                continue
            obj = orjson.loads(data)
            if "error" in obj:
                assert set(obj["error"]) >= {"message", "type"}
            else:
                ChatCompletionChunk.model_validate(obj)
            checked += 1
    elif api == "responses":
        for event, data in _sse(raw, b"\n\n"):
            obj = orjson.loads(data)
            assert obj["type"] == event
            RESPONSES_EVENTS[obj["type"]].model_validate(obj)
            checked += 1
    elif api == "anthropic":
        for event, data in _sse(raw, b"\n\n"):
            obj = orjson.loads(data)
            assert obj["type"] == event
            if event == "ping":
                continue
            if event == "error":
                atypes.ErrorResponse.model_validate({**obj, "request_id": None})
            else:
                ANTHROPIC_EVENTS[event].model_validate(obj)
            checked += 1
    elif api == "gemini":
        assert raw.endswith(b"\r\n\r\n") and b"\n\n" not in raw.replace(b"\r\n", b"")
        for _, data in _sse(raw, b"\r\n\r\n"):
            obj = orjson.loads(data)
            if "error" in obj:
                assert set(obj["error"]) >= {"code", "message", "status"}
            else:
                gtypes.GenerateContentResponse.model_validate_json(data)
            checked += 1
    elif api == "ollama":
        for line in raw.splitlines():
            obj = orjson.loads(line)
            if "error" in obj:
                assert isinstance(obj["error"], str)
            else:
                ollama.ChatResponse.model_validate(obj)
            checked += 1
    return checked


def validate_whole(api: str, body: dict[str, Any]) -> None:
    if api == "openai":
        ChatCompletion.model_validate(body)
    elif api == "responses":
        Response.model_validate(body)
    elif api == "anthropic":
        atypes.Message.model_validate(body)
    elif api == "gemini":
        gtypes.GenerateContentResponse.model_validate_json(orjson.dumps(body))
    elif api == "ollama":
        ollama.ChatResponse.model_validate(body)


def check_parallel_results(upstream: str, seen: Seen, expected: dict[str, str], *, provider_ids: bool) -> None:
    """The turn after two parallel calls: each call (by its city) gets back exactly its own result — by id where the
    format has ids (the provider's own ids where the client kept them), by order where it has none."""
    body = seen.body
    assert isinstance(body, dict)
    pairs: list[tuple[str, str]] = []  # (city of the call, text of the result linked to it)
    ids: list[str] = []
    if upstream in ("openai", "ollama"):
        messages = body["messages"]
        split = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        calls = messages[split]["tool_calls"]
        results = messages[split + 1 :]
        assert [r["role"] for r in results] == ["tool"] * len(calls)
        if upstream == "openai":
            ids = [c["id"] for c in calls]
            by_id = {r["tool_call_id"]: _text_of(r["content"]) for r in results}
            pairs = [(orjson.loads(c["function"]["arguments"])["city"], by_id[c["id"]]) for c in calls]
        else:
            pairs = [(c["function"]["arguments"]["city"], _text_of(r["content"])) for c, r in zip(calls, results)]
    elif upstream == "responses":
        calls = [i for i in body["input"] if i.get("type") == "function_call"]
        ids = [c["call_id"] for c in calls]
        by_id = {o["call_id"]: _text_of(o["output"]) for o in body["input"] if o.get("type") == "function_call_output"}
        pairs = [(orjson.loads(c["arguments"])["city"], by_id[c["call_id"]]) for c in calls]
    elif upstream == "anthropic":
        uses = [b for b in body["messages"][-2]["content"] if b.get("type") == "tool_use"]
        ids = [u["id"] for u in uses]
        by_id = {b["tool_use_id"]: _text_of(b.get("content"))
                 for b in body["messages"][-1]["content"] if b.get("type") == "tool_result"}
        pairs = [(u["input"]["city"], by_id[u["id"]]) for u in uses]
    elif upstream == "gemini":
        calls = [p["functionCall"] for p in body["contents"][-2]["parts"] if "functionCall" in p]
        responses = [p["functionResponse"] for p in body["contents"][-1]["parts"] if "functionResponse" in p]
        assert len(calls) == len(responses)
        pairs = [(c["args"]["city"], _text_of(r["response"])) for c, r in zip(calls, responses)]
    else:
        raise AssertionError(upstream)
    assert [city for city, _ in pairs] == list(expected), pairs
    for city, text in pairs:
        assert expected[city] in text, (city, text)
    if ids:
        assert len(set(ids)) == len(ids) and all(ids)
        if provider_ids:
            assert ids == list(TOOL_IDS[upstream])


def images_in(upstream: str, body: dict[str, Any]) -> list[tuple[str | None, bytes]]:
    """The images of the last user turn of a provider request: (mime type or None where the format has none, bytes)."""

    def std(data: str) -> bytes:
        # OpenAI data URLs, Anthropic base64 sources and Ollama images take standard base64 (RFC 4648 section 4).
        return base64.b64decode(data, validate=True)

    def from_url(url: str) -> tuple[str | None, bytes]:
        head, _, data = url.partition(",")
        assert head.startswith("data:") and head.endswith(";base64"), head
        return head[5:-7], std(data)

    out: list[tuple[str | None, bytes]] = []
    if upstream == "openai":
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        for part in user["content"] if isinstance(user["content"], list) else []:
            if part["type"] == "image_url":
                out.append(from_url(part["image_url"]["url"]))
    elif upstream == "responses":
        items = body["input"]
        user = [i for i in items if i.get("role") == "user"][-1] if isinstance(items, list) else {"content": []}
        for part in user["content"] if isinstance(user["content"], list) else []:
            if part["type"] == "input_image":
                out.append(from_url(part["image_url"]))
    elif upstream == "anthropic":
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        for block in user["content"] if isinstance(user["content"], list) else []:
            if block["type"] == "image":
                assert block["source"]["type"] == "base64"
                out.append((block["source"]["media_type"], std(block["source"]["data"])))
    elif upstream == "gemini":
        user = [c for c in body["contents"] if c.get("role", "user") == "user"][-1]
        for part in user["parts"]:
            blob = part.get("inlineData") or part.get("inline_data")
            if blob is not None:
                # Gemini's bytes fields follow the proto3 JSON mapping: standard or URL-safe base64.
                data = blob["data"].replace("+", "-").replace("/", "_")
                out.append((blob.get("mimeType") or blob.get("mime_type"), base64.urlsafe_b64decode(data)))
    elif upstream == "ollama":
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        out += [(None, std(image)) for image in user.get("images") or []]
    else:
        raise AssertionError(upstream)
    return out


def system_text(upstream: str, body: dict[str, Any]) -> str:
    """The system prompt of a provider request, in that provider's own place for it."""
    if upstream in ("openai", "ollama"):
        return "".join(_text_of(m["content"]) for m in body["messages"] if m["role"] in ("system", "developer"))
    if upstream == "responses":
        items = body.get("input") if isinstance(body.get("input"), list) else []
        extra = "".join(_text_of(i.get("content")) for i in items if i.get("role") in ("system", "developer"))
        return (body.get("instructions") or "") + extra
    if upstream == "anthropic":
        system = body.get("system") or ""
        return system if isinstance(system, str) else "".join(b["text"] for b in system if b.get("type") == "text")
    if upstream == "gemini":
        instruction = body.get("systemInstruction") or body.get("system_instruction") or {}
        return "".join(p.get("text", "") for p in instruction.get("parts", []))
    raise AssertionError(upstream)


def sampling_of(upstream: str, body: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """(temperature, max output tokens, stop sequences) of a provider request, from that provider's own fields."""
    if upstream == "openai":
        stop = body.get("stop") or []
        return (body.get("temperature"), body.get("max_completion_tokens") or body.get("max_tokens"),
                [stop] if isinstance(stop, str) else stop)
    if upstream == "responses":
        return body.get("temperature"), body.get("max_output_tokens"), []
    if upstream == "anthropic":
        return body.get("temperature"), body.get("max_tokens"), body.get("stop_sequences") or []
    if upstream == "gemini":
        config = body.get("generationConfig") or {}
        return config.get("temperature"), config.get("maxOutputTokens"), config.get("stopSequences") or []
    if upstream == "ollama":
        options = body.get("options") or {}
        return options.get("temperature"), options.get("num_predict"), options.get("stop") or []
    raise AssertionError(upstream)


def forced_tool(upstream: str, body: dict[str, Any]) -> str | None:
    """The tool a provider request forces, read from that provider's own tool-choice field (None: not forced)."""
    if upstream == "openai":
        choice = body.get("tool_choice")
        return choice["function"]["name"] if isinstance(choice, dict) else None
    if upstream == "responses":
        choice = body.get("tool_choice")
        return choice["name"] if isinstance(choice, dict) and choice.get("type") == "function" else None
    if upstream == "anthropic":
        choice = body.get("tool_choice") or {}
        return choice.get("name") if choice.get("type") == "tool" else None
    if upstream == "gemini":
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        names = config.get("allowedFunctionNames") or []
        return names[0] if config.get("mode") == "ANY" and len(names) == 1 else None
    raise AssertionError(upstream)

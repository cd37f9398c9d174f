"""One adapter per official SDK, so the matrix tests can say the same thing to every client format.

Each adapter wraps the SDK's *sync* client (``openai.OpenAI`` for Chat Completions and for Responses,
``anthropic.Anthropic``, ``google.genai.Client``, ``ollama.Client``), pointed at the gateway, with the SDK's own retries
off (a 429 must surface, not be retried by the client). ``ask`` sends one turn, streamed or not, and reads the answer
with the SDK's own types into an :class:`Answer`: text, the client's *own* reasoning field (Chat
``reasoning_content``, Responses reasoning summary, Anthropic ``thinking`` block, Gemini ``thought`` parts, Ollama
``thinking``), the signature where the format has one, tool calls, and how the stream ended. ``after_tool`` extends the
conversation with the assistant's tool call and the tool result, as that SDK's users write it.

``error_status(exc)`` checks that an exception is the SDK's own class for HTTP errors and returns
``(status, retry_after)``; the SDK-specific class for 401/429 is asserted by the tests through ``RATE_LIMIT`` and
``AUTH`` below.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

PROMPT = "Say hello"
TOOL_PROMPT = "What is the weather in Paris?"
TOOL_RESULT = "sunny, 21 C"
TOOL_RESULTS = {"Paris": TOOL_RESULT, "Tokyo": "rainy, 17 C"}  # what get_weather "returns", per city
TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Current weather in a city"
TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIMEOUT_S = 30.0

# One TLS context for every HTTP client of the suite: each SDK client would otherwise build its own and load the CA
# bundle (~25 ms a client, most of a test's time); all e2e traffic is plain HTTP on loopback anyway.
TLS = ssl.create_default_context()


def openai_client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S,
                         http_client=openai.DefaultHttpxClient(verify=TLS))


def openai_async_client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S,
                              http_client=openai.DefaultAsyncHttpxClient(verify=TLS))


def anthropic_client(url: str, key: str | None = None, *, auth_token: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, auth_token=auth_token, max_retries=0, timeout=TIMEOUT_S,
                               http_client=anthropic.DefaultHttpxClient(verify=TLS))


def anthropic_async_client(url: str, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=TIMEOUT_S,
                                    http_client=anthropic.DefaultAsyncHttpxClient(verify=TLS))


def genai_client(url: str, key: str) -> genai.Client:
    options = gtypes.HttpOptions(base_url=url, api_version="v1beta", timeout=int(TIMEOUT_S * 1000),
                                 client_args={"verify": TLS})
    return genai.Client(api_key=key, http_options=options)


def ollama_client(url: str, key: str) -> ollama.Client:
    # The ollama client sends no key of its own: the gateway's key goes in a header, as Open WebUI does.
    return ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S, verify=TLS)


def raw_client(url: str, **kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=url, verify=TLS, **{"timeout": TIMEOUT_S, **kwargs})


@dataclass
class Call:
    id: str | None
    name: str
    arguments: dict[str, Any]


def result_for(call: Call) -> str:
    return TOOL_RESULTS.get(str(call.arguments.get("city")), TOOL_RESULT)


@dataclass(frozen=True)
class Sampling:
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()


@dataclass
class Answer:
    text: str = ""
    reasoning: str = ""
    signature: str | bytes | None = None
    tool_calls: list[Call] = field(default_factory=list)
    finish: str | None = None
    chunks: int = 0  # content-bearing stream events the SDK yielded
    model: str = ""
    usage: tuple[int, int] | None = None  # (input tokens, output tokens including reasoning) as the client saw them
    raw: Any = None  # what after_tool needs (the assistant turn as the SDK returned it)


class Adapter:
    """``on_chunk`` (if set) is called from the SDK's stream loop with the answer so far, after each content event;
    ``last`` is the answer being read, so a test still sees the partial answer when the SDK raises mid-stream."""

    name = ""
    on_chunk: Callable[[Answer], None] | None = None
    last: Answer | None = None
    system: str | None = None  # a system prompt, sent the way this SDK's users send one
    sampling: Sampling | None = None  # sampling settings, in this SDK's own parameters
    force_tool: bool = False  # force the get_weather call (tool_choice), where the SDK's format can

    def _fresh(self, **fields: Any) -> Answer:
        self.last = Answer(**fields)
        return self.last

    def _chunk(self, answer: Answer) -> None:
        answer.chunks += 1
        if self.on_chunk is not None:
            self.on_chunk(answer)

    def start(self, prompt: str = PROMPT) -> list[Any]:
        raise NotImplementedError

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        """A first user turn with text and a PNG image, as this SDK's users send one."""
        raise NotImplementedError

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        raise NotImplementedError

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        """The conversation continued with the assistant's tool calls and one result per call, in order."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def tool_round_trip(self, model: str, *, stream: bool, think: bool = False) -> tuple[Answer, Answer]:
        messages = self.start(TOOL_PROMPT)
        first = self.ask(model, messages, stream=stream, tools=True, think=think)
        if not first.tool_calls:
            return first, Answer()
        results = [result_for(call) for call in first.tool_calls]
        final = self.ask(model, self.after_tool(messages, first, results), stream=stream, tools=True, think=think)
        return first, final


# ----------------------------------------------------------------------------------------------------- OpenAI Chat
class OpenAIChat(Adapter):
    name = "openai-chat"

    def __init__(self, url: str, key: str) -> None:
        self.client = openai_client(url, key)

    def close(self) -> None:
        self.client.close()

    def start(self, prompt: str = PROMPT) -> list[Any]:
        return [{"role": "user", "content": prompt}]

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        return [{"role": "user", "content": [{"type": "text", "text": prompt},
                                             {"type": "image_url", "image_url": {"url": url}}]}]

    def _kwargs(self, model: str, messages: list[Any], think: bool, tools: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 512}
        if self.system is not None:
            kwargs["messages"] = [{"role": "system", "content": self.system}, *messages]
        if self.sampling is not None:
            kwargs |= {"temperature": self.sampling.temperature, "max_tokens": self.sampling.max_tokens}
            if self.sampling.stop:
                kwargs["stop"] = list(self.sampling.stop)
        if tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": TOOL_SCHEMA}}]
            if self.force_tool:
                kwargs["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
        if think:
            kwargs["reasoning_effort"] = "medium"
        return kwargs

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        kwargs = self._kwargs(model, messages, think, tools)
        if not stream:
            r = self.client.chat.completions.create(**kwargs)
            m = r.choices[0].message
            return Answer(
                text=m.content or "",
                reasoning=getattr(m, "reasoning_content", None) or "",
                tool_calls=[Call(t.id, t.function.name, json.loads(t.function.arguments)) for t in m.tool_calls or []],
                finish=r.choices[0].finish_reason,
                model=r.model,
                raw=[t.model_dump(exclude_none=True) for t in m.tool_calls or []],
                usage=(r.usage.prompt_tokens, r.usage.completion_tokens) if r.usage else None,
            )
        answer = self._fresh()
        calls: dict[int, dict[str, Any]] = {}
        with self.client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        ) as events:
            for chunk in events:
                answer.model = chunk.model
                if chunk.usage is not None:
                    answer.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        answer.text += delta.content
                        self._chunk(answer)
                    reasoning = getattr(delta, "reasoning_content", None)
                    if reasoning:
                        answer.reasoning += reasoning
                        self._chunk(answer)
                    for tc in delta.tool_calls or []:
                        call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        call["id"] = tc.id or call["id"]
                        call.update(tc.model_extra or {})  # e.g. extra_content (Gemini's thought signature)
                        if tc.function is not None:
                            call["name"] = tc.function.name or call["name"]
                            call["arguments"] += tc.function.arguments or ""
                        self._chunk(answer)
                    if choice.finish_reason:
                        answer.finish = choice.finish_reason
        ordered = [c for _, c in sorted(calls.items())]
        answer.tool_calls = [Call(c["id"], c["name"], json.loads(c["arguments"])) for c in ordered]
        answer.raw = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]},
             **{k: v for k, v in c.items() if k not in ("id", "name", "arguments")}}
            for c in ordered
        ]
        return answer

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        # The tool calls go back exactly as the SDK returned them, extra fields included (what Google documents for
        # its OpenAI-compatible endpoint: extra_content.google.thought_signature).
        return [
            *messages,
            {"role": "assistant", "content": answer.text or None, "tool_calls": answer.raw},
            *({"role": "tool", "tool_call_id": c.id, "content": r} for c, r in zip(answer.tool_calls, results)),
        ]


# ----------------------------------------------------------------------------------------------------- OpenAI Responses
CONTENT_EVENTS = (
    "response.output_text.delta",
    "response.reasoning_summary_text.delta",
    "response.function_call_arguments.delta",
)


class OpenAIResponses(Adapter):
    name = "openai-responses"

    def __init__(self, url: str, key: str) -> None:
        self.client = openai_client(url, key)

    def close(self) -> None:
        self.client.close()

    def start(self, prompt: str = PROMPT) -> list[Any]:
        return [{"role": "user", "content": prompt}]

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        return [{"role": "user", "content": [{"type": "input_text", "text": prompt},
                                             {"type": "input_image", "image_url": url, "detail": "auto"}]}]

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        kwargs: dict[str, Any] = {"model": model, "input": messages, "max_output_tokens": 512, "store": False}
        if self.system is not None:
            kwargs["instructions"] = self.system
        if self.sampling is not None:  # the Responses API has no stop sequences
            kwargs |= {"temperature": self.sampling.temperature, "max_output_tokens": self.sampling.max_tokens}
        if tools:
            kwargs["tools"] = [{"type": "function", "name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                                "parameters": TOOL_SCHEMA, "strict": False}]
            if self.force_tool:
                kwargs["tool_choice"] = {"type": "function", "name": TOOL_NAME}
        if think:
            kwargs["reasoning"] = {"effort": "medium", "summary": "auto"}
            kwargs["include"] = ["reasoning.encrypted_content"]
        if not stream:
            return self._read(self.client.responses.create(**kwargs))
        answer = self._fresh()
        final = None
        with self.client.responses.create(**kwargs, stream=True) as events:
            for event in events:
                if event.type in CONTENT_EVENTS:
                    if event.type == "response.output_text.delta":
                        answer.text += event.delta
                    elif event.type == "response.reasoning_summary_text.delta":
                        answer.reasoning += event.delta
                    self._chunk(answer)
                elif event.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = event.response
                    answer.finish = event.type
                elif event.type == "error":
                    answer.finish = "error"
        if final is not None:
            read = self._read(final)
            read.chunks, read.finish = answer.chunks, answer.finish
            return read
        return answer

    def _read(self, response: Any) -> Answer:
        answer = Answer(model=response.model, finish=response.status, raw=response.output)
        if response.usage is not None:
            answer.usage = (response.usage.input_tokens, response.usage.output_tokens)
        for item in response.output:
            if item.type == "message":
                answer.text += "".join(c.text for c in item.content if c.type == "output_text")
            elif item.type == "reasoning":
                answer.reasoning += "".join(s.text for s in item.summary or [])
                if item.encrypted_content:
                    answer.signature = item.encrypted_content
            elif item.type == "function_call":
                answer.tool_calls.append(Call(item.call_id, item.name, json.loads(item.arguments)))
        return answer

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        # Every output item goes back verbatim, as Codex sends them (reasoning items carry encrypted_content).
        items: list[Any] = list(messages)
        items += [item.model_dump(exclude_none=True, mode="json") for item in answer.raw or []]
        items += [{"type": "function_call_output", "call_id": c.id, "output": r}
                  for c, r in zip(answer.tool_calls, results)]
        return items


# ----------------------------------------------------------------------------------------------------- Anthropic
class Anthropic(Adapter):
    name = "anthropic"

    def __init__(self, url: str, key: str) -> None:
        self.client = anthropic_client(url, key)

    def close(self) -> None:
        self.client.close()

    def start(self, prompt: str = PROMPT) -> list[Any]:
        return [{"role": "user", "content": prompt}]

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}
        return [{"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image", "source": source}]}]

    def kwargs(self, model: str, messages: list[Any], think: bool, tools: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 2048, "messages": messages}
        if self.system is not None:
            kwargs["system"] = self.system
        if self.sampling is not None:  # this SDK version has no temperature parameter any more
            kwargs["max_tokens"] = self.sampling.max_tokens
            if self.sampling.stop:
                kwargs["stop_sequences"] = list(self.sampling.stop)
        if tools:
            kwargs["tools"] = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": TOOL_SCHEMA}]
            if self.force_tool:
                kwargs["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        if think:
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": 1024}
        return kwargs

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        kwargs = self.kwargs(model, messages, think, tools)
        if not stream:
            return self.read(self.client.messages.create(**kwargs))
        partial = self._fresh()
        with self.client.messages.stream(**kwargs) as events:
            for event in events:
                if event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        partial.text += event.delta.text
                    elif event.delta.type == "thinking_delta":
                        partial.reasoning += event.delta.thinking
                    self._chunk(partial)
                elif event.type == "message_stop":
                    partial.finish = "message_stop"
            message = events.get_final_message()
        answer = self.read(message)
        answer.chunks = partial.chunks
        return answer

    @staticmethod
    def read(message: Any) -> Answer:
        answer = Answer(model=message.model, finish=message.stop_reason, raw=message.content)
        u = message.usage
        answer.usage = (
            u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0), u.output_tokens
        )
        for block in message.content:
            if block.type == "text":
                answer.text += block.text
            elif block.type == "thinking":
                answer.reasoning += block.thinking
                answer.signature = block.signature
            elif block.type == "tool_use":
                answer.tool_calls.append(Call(block.id, block.name, dict(block.input)))
        return answer

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        content = [b.model_dump(exclude_none=True) for b in answer.raw]
        return [
            *messages,
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c.id, "content": r}
                                         for c, r in zip(answer.tool_calls, results)]},
        ]


# ----------------------------------------------------------------------------------------------------- Gemini
class Gemini(Adapter):
    name = "gemini"

    def __init__(self, url: str, key: str) -> None:
        self.client = genai_client(url, key)

    def close(self) -> None:
        self.client.close()

    def start(self, prompt: str = PROMPT) -> list[Any]:
        return [gtypes.Content(role="user", parts=[gtypes.Part(text=prompt)])]

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        parts = [gtypes.Part(text=prompt), gtypes.Part.from_bytes(data=png, mime_type="image/png")]
        return [gtypes.Content(role="user", parts=parts)]

    def config(self, think: bool, tools: bool) -> gtypes.GenerateContentConfig:
        config = gtypes.GenerateContentConfig(
            max_output_tokens=512,
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        )
        if self.system is not None:
            config.system_instruction = self.system
        if self.sampling is not None:
            config.temperature = self.sampling.temperature
            config.max_output_tokens = self.sampling.max_tokens
            if self.sampling.stop:
                config.stop_sequences = list(self.sampling.stop)
        if tools:
            config.tools = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(
                name=TOOL_NAME, description=TOOL_DESCRIPTION, parameters_json_schema=TOOL_SCHEMA)])]
            if self.force_tool:
                config.tool_config = gtypes.ToolConfig(function_calling_config=gtypes.FunctionCallingConfig(
                    mode=gtypes.FunctionCallingConfigMode.ANY, allowed_function_names=[TOOL_NAME]))
        if think:
            config.thinking_config = gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
        return config

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        config = self.config(think, tools)
        if not stream:
            response = self.client.models.generate_content(model=model, contents=messages, config=config)
            answer = Answer(model=response.model_version or "")
            self._read(answer, response)
            return answer
        answer = self._fresh(raw=[])
        for chunk in self.client.models.generate_content_stream(model=model, contents=messages, config=config):
            answer.model = chunk.model_version or answer.model
            if self._read(answer, chunk):
                self._chunk(answer)
        return answer

    @staticmethod
    def _read(answer: Answer, response: Any) -> bool:
        if answer.raw is None:
            answer.raw = []
        got = False
        u = response.usage_metadata
        if u is not None and u.prompt_token_count is not None:
            answer.usage = (u.prompt_token_count, (u.candidates_token_count or 0) + (u.thoughts_token_count or 0))
        for candidate in response.candidates or []:
            if candidate.finish_reason is not None:
                answer.finish = str(candidate.finish_reason.value)
            for part in (candidate.content.parts if candidate.content else None) or []:
                answer.raw.append(part)
                if part.thought_signature:
                    answer.signature = part.thought_signature
                if part.function_call is not None:
                    fc = part.function_call
                    answer.tool_calls.append(Call(fc.id, fc.name or "", dict(fc.args or {})))
                    got = True
                elif part.text:
                    if part.thought:
                        answer.reasoning += part.text
                    else:
                        answer.text += part.text
                    got = True
        return got

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        responses = []
        for call, result in zip(answer.tool_calls, results):
            response = gtypes.Part.from_function_response(name=call.name, response={"result": result})
            if call.id:
                assert response.function_response is not None
                response.function_response.id = call.id
            responses.append(response)
        return [
            *messages,
            gtypes.Content(role="model", parts=list(answer.raw)),
            gtypes.Content(role="user", parts=responses),
        ]


# ----------------------------------------------------------------------------------------------------- Ollama
class Ollama(Adapter):
    name = "ollama"

    def __init__(self, url: str, key: str) -> None:
        self.client = ollama_client(url, key)

    def close(self) -> None:
        self.client.close()

    def start(self, prompt: str = PROMPT) -> list[Any]:
        return [{"role": "user", "content": prompt}]

    def start_with_image(self, prompt: str, png: bytes) -> list[Any]:
        return [{"role": "user", "content": prompt, "images": [png]}]  # the SDK base64-encodes the bytes

    def ask(
        self, model: str, messages: list[Any], *, stream: bool = False, think: bool = False, tools: bool = False
    ) -> Answer:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "options": {"num_predict": 512}}
        if self.system is not None:
            kwargs["messages"] = [{"role": "system", "content": self.system}, *messages]
        if self.sampling is not None:
            options = {"temperature": self.sampling.temperature, "num_predict": self.sampling.max_tokens}
            if self.sampling.stop:
                options["stop"] = list(self.sampling.stop)
            kwargs["options"] = options
        if tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": TOOL_SCHEMA}}]
        if think:
            kwargs["think"] = True
        if not stream:
            r = self.client.chat(**kwargs, stream=False)
            answer = Answer(model=r.model or "", finish=r.done_reason, usage=(r.prompt_eval_count, r.eval_count))
            self._read(answer, r.message)
            return answer
        answer = self._fresh()
        for part in self.client.chat(**kwargs, stream=True):
            answer.model = part.model or answer.model
            if self._read(answer, part.message):
                self._chunk(answer)
            if part.done:
                answer.finish = part.done_reason
                answer.usage = (part.prompt_eval_count, part.eval_count)
        return answer

    @staticmethod
    def _read(answer: Answer, message: Any) -> bool:
        got = False
        if message.content:
            answer.text += message.content
            got = True
        if message.thinking:
            answer.reasoning += message.thinking
            got = True
        for tc in message.tool_calls or []:
            answer.tool_calls.append(Call(None, tc.function.name, dict(tc.function.arguments)))
            got = True
        return got

    def after_tool(self, messages: list[Any], answer: Answer, results: list[str]) -> list[Any]:
        return [
            *messages,
            {"role": "assistant", "content": answer.text,
             "tool_calls": [{"function": {"name": c.name, "arguments": c.arguments}} for c in answer.tool_calls]},
            *({"role": "tool", "content": r, "tool_name": c.name} for c, r in zip(answer.tool_calls, results)),
        ]


ADAPTERS: dict[str, type[Adapter]] = {
    a.name: a for a in (OpenAIChat, OpenAIResponses, Anthropic, Gemini, Ollama)
}
CLIENT_NAMES = tuple(ADAPTERS)
PER_CLIENT = pytest.mark.parametrize("client", CLIENT_NAMES, ids=[f"{c}-sdk" for c in CLIENT_NAMES])

# The SDK's own exception class for a 429 and a 401.
RATE_LIMIT: dict[str, type[BaseException]] = {
    "openai-chat": openai.RateLimitError,
    "openai-responses": openai.RateLimitError,
    "anthropic": anthropic.RateLimitError,
    "gemini": genai_errors.ClientError,
    "ollama": ollama.ResponseError,
}
AUTH: dict[str, type[BaseException]] = {
    "openai-chat": openai.AuthenticationError,
    "openai-responses": openai.AuthenticationError,
    "anthropic": anthropic.AuthenticationError,
    "gemini": genai_errors.ClientError,
    "ollama": ollama.ResponseError,
}


BAD_REQUEST: dict[str, type[BaseException]] = {
    "openai-chat": openai.BadRequestError,
    "openai-responses": openai.BadRequestError,
    "anthropic": anthropic.BadRequestError,
    "gemini": genai_errors.ClientError,
    "ollama": ollama.ResponseError,
}


def error_status(exc: BaseException) -> tuple[int, str | None]:
    """The HTTP status an SDK exception carries, and the ``Retry-After`` it saw (None where the SDK hides it)."""
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return exc.status_code, exc.response.headers.get("retry-after")
    if isinstance(exc, genai_errors.APIError):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        return exc.code, headers.get("retry-after")
    if isinstance(exc, ollama.ResponseError):
        return exc.status_code, None
    raise AssertionError(f"not an SDK HTTP error: {exc!r}")


def make(name: str, url: str, key: str) -> Adapter:
    return ADAPTERS[name](url, key)

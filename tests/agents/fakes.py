"""Strict fake providers for the agent-CLI tests: the e2e fakes' HTTP servers and wire renderers, answering as a model
driving one shell-tool round trip, and refusing what the real API refuses (``tests/agents/rules.py``).

What an :class:`AgentProvider` answers to a generation request, after the request passed every rule:
- the request declares the CLI's shell tool (``plan.tool``) and does not end with tool results: a call of that tool
  with ``plan.arguments``, after signed reasoning where the request asked for thinking (and always on Gemini 3, whose
  function calls carry a thought signature);
- it ends with tool results: ``The command printed: <result>`` (the tool output, whitespace-trimmed);
- it does not declare the shell tool (the CLIs' side requests: titles, summaries, routing, JSON checks): ``OK`` —
  or ``{}`` when the request asks for JSON output.
A request a rule refuses gets the provider's 400 in its own error shape, and the refusal is kept in
:attr:`AgentProvider.refusals` so the test can say which rule broke.

Every signature / encrypted reasoning the fake sends is new (a counter in the value) and remembered, so the rules can
refuse one the fake never issued. Tool-call ids are new per call, shaped as each provider shapes them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from tests.agents.rules import CHECKS, Refusal
from tests.e2e.fakes import (
    _RENDER,
    Ctx,
    FakeProvider,
    Reply,
    Seen,
    Streamed,
    Whole,
    dumps,
    tool_results_of,
)

REASONING_TEXT = "The user asked me to run a shell command, so I call the shell tool."
FINAL_PREFIX = "The command printed: "


@dataclass(frozen=True)
class ShellPlan:
    """Which tool the fake calls and with which arguments (the CLI's own shell tool and its argument schema)."""

    tool: str
    arguments: dict[str, Any]


@dataclass
class AgentCtx(Ctx):
    """A rendering context whose tool-call ids are the ones this answer issued."""

    ids: list[str] = field(default_factory=list)

    def call_id(self, n: int) -> str:
        return self.ids[n] if n < len(self.ids) else ""


@dataclass(frozen=True)
class Declared:
    name: str
    schema: Any


def declared_tools(api: str, body: dict[str, Any]) -> list[Declared]:
    """The function tools a request declares, in the provider format ``api``."""
    tools = body.get("tools") or []
    found: list[Declared] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if api == "anthropic" and "name" in tool:
            found.append(Declared(tool["name"], tool.get("input_schema")))
        elif api == "openai" and tool.get("type") == "function":
            function = tool.get("function") or {}
            found.append(Declared(function.get("name", ""), function.get("parameters")))
        elif api == "responses":
            if tool.get("type") == "function":
                found.append(Declared(tool.get("name", ""), tool.get("parameters")))
            elif tool.get("type") == "namespace":
                for inner in tool.get("tools") or []:
                    if isinstance(inner, dict) and inner.get("type") == "function":
                        found.append(Declared(inner.get("name", ""), inner.get("parameters")))
        elif api == "gemini":
            for decl in tool.get("functionDeclarations", tool.get("function_declarations")) or []:
                schema = decl.get("parameters", decl.get("parametersJsonSchema", decl.get("parameters_json_schema")))
                found.append(Declared(decl.get("name", ""), schema))
    return found


def schema_mismatch(schema: Any, arguments: dict[str, Any]) -> str:
    """Why ``arguments`` do not fit a declared JSON schema's properties / required list ("" when they do)."""
    if not isinstance(schema, dict):
        return ""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            return f"unknown arguments {unknown} (declared: {sorted(properties)})"
    missing = sorted(set(schema.get("required") or []) - set(arguments))
    return f"missing required arguments {missing}" if missing else ""


def thinking_requested(api: str, model: str, body: dict[str, Any]) -> tuple[bool, bool]:
    """(send reasoning text, send a signature) for a request, as the real model would."""
    if api == "anthropic":
        on = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        return on, on
    if api == "openai":
        return body.get("reasoning_effort") not in (None, "none", "minimal"), False
    if api == "responses":
        on = (body.get("reasoning") or {}).get("effort") not in ("none",) and "reasoning" in body
        return on, on and "reasoning.encrypted_content" in (body.get("include") or [])
    config = body.get("generationConfig") or body.get("generation_config") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    wants_text = bool(thinking.get("includeThoughts", thinking.get("include_thoughts")))
    return wants_text, model.startswith("gemini-3") or wants_text


def system_prompt(api: str, body: dict[str, Any]) -> str:
    """The system prompt a request carries, in the provider format ``api`` (all of its text, joined)."""

    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "".join(text(v) for v in value)
        if isinstance(value, dict):
            return text(value.get("text", value.get("parts", value.get("content", ""))))
        return ""

    if api == "anthropic":
        return text(body.get("system"))
    if api == "gemini":
        return text(body.get("systemInstruction", body.get("system_instruction")))
    if api == "openai":
        return "".join(text(m.get("content")) for m in body.get("messages") or []
                       if m.get("role") in ("system", "developer"))
    items = body.get("input")
    leading = "".join(text(i.get("content")) for i in items if isinstance(i, dict)
                      and i.get("role") in ("system", "developer")) if isinstance(items, list) else ""
    return text(body.get("instructions")) + leading


def wants_json(api: str, body: dict[str, Any]) -> bool:
    if api == "gemini":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        return config.get("responseMimeType", config.get("response_mime_type")) == "application/json"
    if api == "openai":
        return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
    if api == "responses":
        return ((body.get("text") or {}).get("format") or {}).get("type") in ("json_object", "json_schema")
    return False


def refusal_reply(api: str, refusal: Refusal) -> Whole:
    if api == "anthropic":
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": refusal.message}}
    elif api == "gemini":
        body = {"error": {"code": refusal.status, "message": refusal.message, "status": "INVALID_ARGUMENT"}}
    else:
        body = {"error": {"message": refusal.message, "type": "invalid_request_error", "param": refusal.param,
                          "code": None}}
    return Whole(refusal.status, dumps(body))


class AgentProvider(FakeProvider):
    """A strict fake of one kind (``openai`` serves Chat and Responses, ``anthropic``, ``gemini``)."""

    def __init__(self, kind: str, keys: set[str], plan: ShellPlan) -> None:
        super().__init__(kind, keys)
        self.plan = plan
        self.refusals: list[tuple[Seen, Refusal]] = []
        self.issued: set[str] = set()  # signatures / encrypted reasoning this fake sent
        self.calls: list[str] = []  # tool-call ids this fake issued
        self.final_answers: list[str] = []
        self.system_prompts: list[str] = []  # of every request that declared the shell tool, in order
        self._serial = count(1)

    def _signature(self, api: str) -> str:
        n = next(self._serial)
        if api == "anthropic":
            value = f"EqQBCkYIBxgCKkBAgentSignature{n:04d}+/w=="
        elif api == "responses":
            value = f"gAAAAABoAgent-encrypted_reasoning-{n:04d}_0123456789abcdef=="
        else:
            value = base64.b64encode(f"agent-thought-signature-{n:04d}".encode()).decode()
        self.issued.add(value)
        return value

    def _call_id(self, api: str) -> str:
        n = next(self._serial)
        value = {"anthropic": f"toolu_01Agent{n:08d}", "gemini": ""}.get(api, f"call_agent{n:08d}")
        self.calls.append(value)
        return value

    def _generate(self, seen: Seen, family: str) -> Reply:
        body = seen.body if isinstance(seen.body, dict) else {}
        refusal = CHECKS[seen.api](seen.model, body, seen.headers, self.issued)
        if refusal is not None:
            self.refusals.append((seen, refusal))
            return refusal_reply(seen.api, refusal)
        ids: list[str] = []
        steps = self._answer(seen, body, ids)
        stream_fn, whole_fn, content_type = _RENDER[seen.api]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        ctx = AgentCtx(seen.api, seen.model, include_usage=include_usage, ids=ids)
        if not seen.stream:
            return Whole(200, dumps(whole_fn(steps, ctx)))
        if seen.api == "gemini" and seen.query.get("alt") != "sse":
            from tests.e2e.fakes import gemini_stream

            return Streamed(gemini_stream(steps, ctx, sse=False), "application/json")
        return Streamed(stream_fn(steps, ctx), content_type)

    def _answer(self, seen: Seen, body: dict[str, Any], ids: list[str]) -> list[tuple[str, Any]]:
        api = seen.api
        shell = next((d for d in declared_tools(api, body) if d.name == self.plan.tool), None)
        if shell is None:
            return [("text", "{}" if wants_json(api, body) else "OK")]
        self.system_prompts.append(system_prompt(api, body))
        mismatch = schema_mismatch(shell.schema, self.plan.arguments)
        if mismatch:  # the CLI changed its tool: say so in the answer the test reads, rather than call it wrongly
            return [("text", f"fake: the {shell.name} tool as declared does not take the planned call: {mismatch}")]
        results = tool_results_of(api, body)
        if results:
            text = FINAL_PREFIX + "; ".join(r.strip() for r in results)
            self.final_answers.append(text)
            return [("text", text)]
        steps: list[tuple[str, Any]] = []
        reasoning, signed = thinking_requested(api, seen.model, body)
        if reasoning:
            steps.append(("thinking", REASONING_TEXT))
        if signed:
            steps.append(("signature", self._signature(api)))
        ids.append(self._call_id(api))
        arguments = dumps(self.plan.arguments).decode()
        half = len(arguments) // 2
        steps.append(("tool", {"name": self.plan.tool, "arguments": self.plan.arguments,
                               "fragments": [arguments[:half], arguments[half:]], "n": 0}))
        return steps

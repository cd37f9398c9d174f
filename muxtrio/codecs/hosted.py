"""Provider-run ("hosted") tools across formats: which target format can run which neutral kind, and the one
place the ``hosted-tools`` policy is applied (:func:`translate_hosted`, called by the client codecs'
``adapt_to_target``).

Facts behind :data:`HOSTED_KINDS` (the equivalents of a web search tool):
- Anthropic: the ``web_search_20250305`` server tool (docs.claude.com, "Web search tool"), with ``allowed_domains``
  or ``blocked_domains`` (not both).
- Gemini: ``{"googleSearch": {}}`` grounding (ai.google.dev/gemini-api/docs/google-search); Gemini 3 models take it
  together with function declarations (ai.google.dev/gemini-api/docs/tool-combination). No domain filters.
- OpenAI Responses: ``{"type": "web_search"}`` with ``filters.allowed_domains``.
- OpenAI Chat Completions and Ollama: no provider-run tools.

Pure: no IO, no logging (the engine logs what :class:`~muxtrio.codecs.base.Adaptation` reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from muxtrio.codecs.base import Format, HostedToolPolicy
from muxtrio.errors import CodecError, ErrorKind
from muxtrio.ir.request import HostedTool, HostedToolKind

HOSTED_KINDS: Mapping[Format, frozenset[HostedToolKind]] = {
    Format.ANTHROPIC: frozenset({HostedToolKind.WEB_SEARCH}),
    Format.GEMINI: frozenset({HostedToolKind.WEB_SEARCH}),
    Format.OPENAI_RESPONSES: frozenset({HostedToolKind.WEB_SEARCH}),
    Format.OPENAI_CHAT: frozenset(),
    Format.OLLAMA: frozenset(),
}


def translate_hosted(
    candidates: Iterable[tuple[str, HostedTool | None]], target: Format, policy: HostedToolPolicy
) -> tuple[list[HostedTool], list[str]]:
    """Apply ``policy`` to a client's provider-run tools, each given as ``(label, neutral form or None)``: returns
    the neutral tools ``target`` will run and the labels of those left out. ``REJECT`` raises UNSUPPORTED for the
    first one that cannot be translated."""
    mapped: list[HostedTool] = []
    dropped: list[str] = []
    for label, neutral in candidates:
        runnable = neutral is not None and neutral.kind in HOSTED_KINDS[target]
        if runnable and policy is not HostedToolPolicy.DROP:
            assert neutral is not None
            if neutral not in mapped:
                mapped.append(neutral)
            continue
        if policy is HostedToolPolicy.REJECT:
            raise CodecError(
                f"the serving provider ({target.value} format) cannot run the provider-run tool {label!r} "
                "(hosted-tools: reject)",
                kind=ErrorKind.UNSUPPORTED,
                param="tools",
            )
        dropped.append(label)
    return mapped, dropped

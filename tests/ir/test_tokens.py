"""ir/tokens.py: the local token estimate (4 characters a token, 85 an image, 4 a message)."""

from __future__ import annotations

from muxtrio.ir.request import Image, Message, Request, Role, Text, Tool, ToolCall, ToolResult
from muxtrio.ir.tokens import CHARS_PER_TOKEN, IMAGE_TOKENS, MESSAGE_OVERHEAD, estimate_tokens


def user(*parts: Text | Image | ToolResult) -> Message:
    return Message(Role.USER, parts)


def test_an_empty_request_costs_nothing() -> None:
    assert estimate_tokens(Request(model="m", messages=())) == 0


def test_text_counts_four_characters_a_token_plus_the_message_framing() -> None:
    request = Request(model="m", messages=(user(Text("x" * 40)),))
    assert estimate_tokens(request) == MESSAGE_OVERHEAD + 40 // CHARS_PER_TOKEN


def test_partial_tokens_round_up() -> None:
    assert estimate_tokens(Request(model="m", messages=(), system=(Text("abcde"),))) == 2


def test_images_count_a_fixed_amount_also_inside_tool_results() -> None:
    image = Image(url="https://example.invalid/a.png")
    plain = Request(model="m", messages=(user(image),))
    nested = Request(model="m", messages=(user(ToolResult("c", (image,))),))
    assert estimate_tokens(plain) == estimate_tokens(nested) == MESSAGE_OVERHEAD + IMAGE_TOKENS


def test_tool_calls_and_definitions_count_their_text() -> None:
    call = Message(Role.ASSISTANT, (ToolCall("c", "abcd", "efgh"),))
    tool = Tool("t", parameters={"é": 1})  # the schema counts as compact UTF-8 JSON: {"é":1} is 9 bytes
    request = Request(model="m", messages=(call,), tools=(tool,))
    assert estimate_tokens(request) == (MESSAGE_OVERHEAD * CHARS_PER_TOKEN + 8 + 1 + 9 + 3) // CHARS_PER_TOKEN

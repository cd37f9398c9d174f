"""codecs/ir_json.py, the "ir" format of /v1/ws: bad fields are 400s naming their path, read by the shared readers.
(Round trips of every IR value are in tests/server/test_websocket.py, next to the protocol that carries them.)"""

from __future__ import annotations

from typing import Any

import pytest

from muxtrio.codecs.ir_json import FORMAT, event_from_json, request_from_json, usage_from_json
from muxtrio.errors import ClientError, ErrorKind
from muxtrio.ir.events import TextDelta
from muxtrio.ir.request import Role
from muxtrio.ir.response import Usage

MESSAGE = {"role": "user", "parts": [{"type": "text", "text": "hi"}]}


def test_the_format_name_is_ir() -> None:
    assert FORMAT == "ir"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": 3, "messages": []}, "body.model", "`body.model` must be a string"),
        ({"messages": []}, "body.model", "`body.model` is required"),
        ({"model": "m"}, "body.messages", "`body.messages` must be an array"),
        ({"model": "m", "messages": [MESSAGE], "user": ["u"]}, "body.user", "`body.user` must be a string"),
        ({"model": "m", "messages": [{"role": "user", "parts": [{"type": "text"}]}]},
         "body.messages[0].parts[0].text", "`body.messages[0].parts[0].text` is required"),
        ({"model": "m", "messages": [MESSAGE], "sampling": {"max_tokens": 2.5}},
         "body.sampling.max_tokens", "`body.sampling.max_tokens` must be an integer (64-bit)"),
        ({"model": "m", "messages": [MESSAGE], "metadata": {"k": 1}},
         "body.metadata.k", "`body.metadata.k` must be a string"),
    ],
)  # fmt: skip
def test_a_bad_request_field_is_a_400_naming_its_path(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(ClientError) as caught:
        request_from_json(body)
    assert (caught.value.kind, caught.value.param, caught.value.message) == (ErrorKind.INVALID_REQUEST, param, message)


def test_a_request_always_streams_and_integral_floats_are_integers() -> None:
    request = request_from_json({"model": "m", "messages": [MESSAGE], "sampling": {"max_tokens": 64.0}})
    assert request.stream and request.sampling.max_tokens == 64 and request.messages[0].role is Role.USER


def test_event_fields_are_read_like_request_fields() -> None:
    assert event_from_json({"type": "text_delta", "index": 1.0, "text": "a"}) == TextDelta(1, "a")
    with pytest.raises(ClientError) as caught:
        event_from_json({"type": "text_delta", "index": "1", "text": "a"})
    assert caught.value.param == "event.index"
    with pytest.raises(ClientError) as caught:
        usage_from_json({"input_tokens": 2**64})
    assert caught.value.param == "usage.input_tokens"
    assert usage_from_json({"output_tokens": 5}) == Usage(output_tokens=5)

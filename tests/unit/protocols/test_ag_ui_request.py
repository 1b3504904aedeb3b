"""AG-UI's request (`app.protocols.ag_ui_request`): `RunAgentInput` as `HttpAgent` POSTs it,
read for its last user message within the service's limits, or refused with the reason."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.protocols.ag_ui_request import AgUiRunRequest, AgUiVersion


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threadId": "thread-1",
        "runId": "run-1",
        "protocolVersion": "1.0",
        "state": {"tasks": []},
        "messages": [
            {"id": "m1", "role": "user", "content": "hello"},
            {"id": "m2", "role": "assistant", "content": "hi", "toolCalls": []},
            {"id": "m3", "role": "user", "content": [{"type": "text", "text": "add milk"}]},
        ],
        "tools": [{"name": "confirm", "description": "Ask", "parameters": {}}],
        "context": [{"description": "page", "value": "home"}],
        "forwardedProps": {"anything": 1},
    }
    body.update(changes)
    return body


def _parse(body: dict[str, Any], max_message_chars: int = 100) -> AgUiRunRequest:
    return AgUiRunRequest.model_validate_json(
        json.dumps(body), context={"max_message_chars": max_message_chars}
    )


def test_the_request_is_read_for_its_last_user_message_only() -> None:
    request = _parse(_body())
    assert (request.text, request.message_id) == ("add milk", "m3")
    assert request.version is AgUiVersion.V1
    assert request.ignored_tool_names == ["confirm"]


@pytest.mark.parametrize(
    ("version", "line"),
    [
        (None, AgUiVersion.LEGACY),
        ("0.9", AgUiVersion.LEGACY),
        ("1.0", AgUiVersion.V1),
        ("1.3", AgUiVersion.V1),
        ("2.0", AgUiVersion.V1),
    ],
)
def test_the_client_line_is_read_from_protocol_version(
    version: str | None, line: AgUiVersion
) -> None:
    body = _body(protocolVersion=version) if version else _body()
    if version is None:
        del body["protocolVersion"]
    assert _parse(body).version is line
    assert AgUiVersion.of(version) is line  # as the resume GET reads it from its query


@pytest.mark.parametrize("version", ["", "1", "v1.0", "1.0.0", "1.0\n", "\u0661.\u0660", "12345.0"])
def test_a_protocol_version_that_is_not_one_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="not a protocol version"):
        AgUiVersion.of(version)


def test_a_retried_run_of_the_same_message_has_the_same_key_and_another_message_another() -> None:
    key = _parse(_body()).idempotency_key
    assert _parse(_body(runId="run-2")).idempotency_key == key
    assert _parse(_body(threadId="thread-2")).idempotency_key != key
    other = _body()
    other["messages"][-1]["id"] = "m4"
    assert _parse(other).idempotency_key != key
    assert len(key) <= 255


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"messages": [{"id": "m1", "role": "assistant", "content": "hi"}]}, "the user's"),
        ({"messages": []}, "at least 1"),
        ({"messages": [{"id": "m1", "role": "user", "content": "  "}]}, "must have text"),
        ({"messages": [{"id": "m1", "role": "user", "content": "x" * 101}]}, "at most 100"),
        ({"messages": [{"id": "m1", "role": "user", "content": "a\u0000"}]}, "U+0000"),
        ({"messages": [{"id": "", "role": "user", "content": "hi"}]}, "id must be"),
        (
            {
                "messages": [
                    {
                        "id": "m",
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {
                                "type": "image",
                                "source": {"type": "url", "value": "https://x/y.png"},
                            },
                        ],
                    }
                ]
            },
            "not 'image'",
        ),
        ({"messages": [{"id": "m", "role": "user", "content": 5}]}, "string or a list"),
        ({"threadId": "a/b"}, "without /"),
        ({"threadId": ".."}, "without /"),
        ({"runId": "x" * 201}, "1 to 200"),
        ({"protocolVersion": "1"}, "should match"),
        ({"protocolVersion": "one.zero"}, "should match"),
        ({"tools": {"name": "x"}}, "valid array"),
    ],
)
def test_a_request_the_service_cannot_answer_is_refused_with_the_reason(
    change: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        _parse(_body(**change))


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    ),
    st.sampled_from(["threadId", "runId", "protocolVersion", "messages", "tools", "state"]),
)
def test_any_value_anywhere_is_read_or_refused_never_a_crash(value: Any, key: str) -> None:
    try:
        request = _parse(_body(**{key: value}))
    except ValidationError:
        return
    assert request.text and request.version in AgUiVersion

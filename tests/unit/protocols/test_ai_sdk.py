"""The AI SDK's protocol, without I/O: a run's events as UI message stream chunks, the bytes,
and the body the transport sends (`app.protocols.ai_sdk`)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.events import (
    Done,
    Event,
    LoggedEvent,
    Start,
    Text,
    Thinking,
    ToolCallEvent,
    ToolResultEvent,
    encode,
    error_event,
    interrupted,
)
from app.protocols.ai_sdk import (
    DONE,
    AiChatRequest,
    UiMessageStream,
)
from app.protocols.client_input import CLIENT_ID_SCHEMA, client_id_is_valid
from app.web.streaming import writes

RUN = "7c9e0000-0000-0000-0000-000000000001"
USAGE = {"requests": 2, "input_tokens": 46, "output_tokens": 12, "total_tokens": 58}


def _logged(*events: Event) -> list[LoggedEvent]:
    return [encode(event, seq) for seq, event in enumerate(events, start=1)]


def _chunks(*events: Event) -> list[dict[str, Any]]:
    stream = UiMessageStream()
    return [chunk for logged in _logged(*events) for chunk in stream.chunks(logged)]


def test_a_tool_using_turn_is_two_steps_with_the_tool_call_and_its_output_in_the_first() -> None:
    chunks = _chunks(
        Start(1, 10, RUN),
        Thinking("Adding it."),
        ToolCallEvent("call_1", "add_task", {"title": "Buy milk"}),
        ToolResultEvent("call_1", "add_task", {"task": {"id": 3, "title": "Buy milk"}}),
        Text("Added"),
        Text(" it."),
        Done(1, 11, USAGE),
    )
    assert chunks == [
        {
            "type": "start",
            "messageId": RUN,
            "messageMetadata": {"conversation_id": 1, "run_id": RUN},
        },
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-2"},
        {"type": "reasoning-delta", "id": "reasoning-2", "delta": "Adding it."},
        {"type": "reasoning-end", "id": "reasoning-2"},
        {
            "type": "tool-input-available",
            "toolCallId": "call_1",
            "toolName": "add_task",
            "input": {"title": "Buy milk"},
        },
        {
            "type": "tool-output-available",
            "toolCallId": "call_1",
            "output": {"task": {"id": 3, "title": "Buy milk"}},
        },
        {"type": "finish-step"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-5"},
        {"type": "text-delta", "id": "text-5", "delta": "Added"},
        {"type": "text-delta", "id": "text-5", "delta": " it."},
        {"type": "text-end", "id": "text-5"},
        {"type": "finish-step"},
        {
            "type": "finish",
            "finishReason": "stop",
            "messageMetadata": {
                "conversation_id": 1,
                "run_id": RUN,
                "message_id": 11,
                "usage": USAGE,
                "status": "complete",
            },
        },
    ]


def test_two_calls_in_one_model_response_are_one_step_and_text_after_thinking_ends_it() -> None:
    chunks = _chunks(
        Start(1, 10, RUN),
        ToolCallEvent("a", "add_task", {"title": "A"}),
        ToolCallEvent("b", "add_task", {"title": "B"}),
        ToolResultEvent("a", "add_task", {"task": {}}),
        ToolResultEvent("b", "add_task", {"task": {}}),
        Thinking("Both added."),
        Text("Done."),
        Done(1, 11, USAGE),
    )
    types = [chunk["type"] for chunk in chunks]
    assert types == [
        "start",
        "start-step",
        "tool-input-available",
        "tool-input-available",
        "tool-output-available",
        "tool-output-available",
        "finish-step",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]


def test_thinking_after_text_ends_the_text_part_first() -> None:
    chunks = _chunks(Start(1, 10, RUN), Text("So"), Thinking("hmm"), Text("then"))
    assert [chunk["type"] for chunk in chunks[2:]] == [
        "text-start",
        "text-delta",
        "text-end",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
    ]


def test_a_tool_that_answers_with_our_error_is_a_tool_output_error_with_its_message() -> None:
    failed = {"error": "not_found", "task_id": 9, "message": "There is no task #9."}
    chunks = _chunks(Start(1, 10, RUN), ToolResultEvent("c", "complete_task", failed))
    assert chunks[-1] == {
        "type": "tool-output-error",
        "toolCallId": "c",
        "errorText": "There is no task #9.",
    }


def test_an_error_closes_the_open_part_and_the_step_then_says_our_code_as_json() -> None:
    chunks = _chunks(
        Start(1, 10, RUN), Text("Half"), error_event("model_unavailable", retryable=True)
    )
    assert [chunk["type"] for chunk in chunks[-3:]] == ["text-end", "finish-step", "error"]
    assert json.loads(chunks[-1]["errorText"]) == {
        "error": {
            "code": "model_unavailable",
            "message": "The assistant can't be reached right now. Please try again shortly.",
            "retryable": True,
        }
    }


def test_a_cancelled_run_finishes_with_reason_other_and_its_status() -> None:
    chunks = _chunks(Start(1, 10, RUN), Text("Hal"), Done(1, 11, USAGE, "cancelled"))
    assert chunks[-1]["finishReason"] == "other"
    assert chunks[-1]["messageMetadata"]["status"] == "cancelled"


async def _batches(*batches: list[LoggedEvent]) -> AsyncIterator[list[LoggedEvent]]:
    for batch in batches:
        yield batch


async def _bytes(*batches: list[LoggedEvent]) -> list[bytes]:
    return [out async for out in writes(UiMessageStream(), _batches(*batches))]


async def test_the_stream_is_data_lines_one_write_per_batch_and_done_after_the_final_event() -> (
    None
):
    start, text, done = _logged(Start(1, 10, RUN), Text("Hi"), Done(1, 11, USAGE))
    writes = await _bytes([start], [text, done])
    assert len(writes) == 2
    assert writes[0] == (
        b'data: {"type":"start","messageId":"' + RUN.encode() + b'","messageMetadata":'
        b'{"conversation_id":1,"run_id":"' + RUN.encode() + b'"}}\n\n'
        b'data: {"type":"start-step"}\n\n'
    )
    assert writes[1].endswith(b"\n\n" + DONE)
    assert writes[1].count(DONE) == 1
    assert "é".encode() in b"".join(await _bytes(_logged(Start(1, 10, RUN), Text("é"))))


async def test_a_stream_that_ends_without_the_runs_final_event_has_no_done() -> None:
    writes = await _bytes(_logged(Start(1, 10, RUN), Text("Hi")))
    assert DONE not in b"".join(writes)


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chat-1",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "old"}]},
            {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "sure"}]},
            {
                "id": "u2",
                "role": "user",
                "parts": [{"type": "text", "text": "add milk"}, {"type": "file", "url": "x"}],
            },
        ],
        "trigger": "submit-message",
    }
    return body | changes


def _request(body: dict[str, Any], **context: Any) -> AiChatRequest:
    return AiChatRequest.model_validate_json(json.dumps(body), context=context)


def test_only_the_last_user_messages_text_is_read_and_unknown_fields_are_ignored() -> None:
    request = _request(_body(sessionId="app's own"))
    assert request.text == "add milk"
    two_parts = _body()
    two_parts["messages"][-1]["parts"].append({"type": "text", "text": "and eggs"})
    assert _request(two_parts).text == "add milk\nand eggs"


@pytest.mark.parametrize(
    "last",
    [
        {"id": "a2", "role": "assistant", "parts": [{"type": "text", "text": "hi"}]},
        {"id": "u3", "role": "user", "parts": [{"type": "file", "url": "x"}]},
        {"id": "u3", "role": "user", "parts": [{"type": "text", "text": "  \n"}]},
        {"id": "u3", "role": "user", "parts": [{"type": "text", "text": "a\u0000b"}]},
    ],
    ids=["an answer", "no text", "blank", "unstorable"],
)
def test_a_last_message_that_is_not_the_users_text_is_refused(last: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _request(_body(messages=[last]))


def test_the_last_message_is_held_to_the_message_limit() -> None:
    assert _request(_body(), max_message_chars=8).text == "add milk"
    with pytest.raises(ValidationError):
        _request(_body(), max_message_chars=7)


def test_no_messages_is_refused() -> None:
    with pytest.raises(ValidationError):
        _request(_body(messages=[]))


def test_a_plain_send_is_keyed_by_chat_and_message_id_an_edit_is_not() -> None:
    assert _request(_body()).idempotency_key == "ai-sdk:chat-1:u2"
    assert _request(_body(messageId="u2")).idempotency_key is None


@pytest.mark.parametrize(
    ("chat_id", "valid"),
    [
        ("chat-1", True),
        ("aB3_-.~:x", True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("", False),
        ("a/b", False),
        ("a\\b", False),
        (".", False),
        ("..", False),
        ("a b\n", False),
        ("café", False),
    ],
)
def test_a_chat_id_fits_one_path_segment(chat_id: str, valid: bool) -> None:
    assert client_id_is_valid(chat_id) is valid
    if not valid:
        with pytest.raises(ValidationError):
            _request(_body(id=chat_id))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Bodies shaped as the transport sends them, with what a client controls varied inside; and
# any JSON at all.
_PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "text", "file"]), "text": st.text(max_size=12)}
)
_MESSAGE = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "role": st.sampled_from(["user", "user", "assistant", "system"]),
        "parts": st.lists(_PART, max_size=3),
    },
    optional={"metadata": _JSON},
)
_BODY = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["chat-1", "a.b:c~"]) | st.text(max_size=210),
        "messages": st.lists(_MESSAGE, max_size=3),
    },
    optional={
        "trigger": st.sampled_from(["submit-message", "regenerate-message"]),
        "messageId": st.none() | st.text(max_size=8),
        "extra": _JSON,
    },
)


@given(body=_BODY | _JSON)
@settings(max_examples=200, deadline=None)
def test_any_body_is_a_request_whose_text_is_the_users_or_a_validation_error(body: Any) -> None:
    try:
        request = _request(body, max_message_chars=4000)
    except ValidationError:
        return
    assert request.messages[-1].role == "user"
    assert request.text.strip() and len(request.text) <= 4000
    assert client_id_is_valid(request.id)


ID_SCHEMA = CLIENT_ID_SCHEMA


@given(st.text(max_size=210) | st.from_regex(ID_SCHEMA["pattern"]) | st.sampled_from([".", ".."]))
def test_the_chat_id_schema_in_openapi_json_says_what_the_service_checks(chat_id: str) -> None:
    """/openapi.json gives the chat id as a pattern and lengths; Schemathesis takes an id that
    fits them for one the service must accept. (`fullmatch`: JSON Schema's `$` is the end.)"""
    fits = (
        ID_SCHEMA["minLength"] <= len(chat_id) <= ID_SCHEMA["maxLength"]
        and re.fullmatch(ID_SCHEMA["pattern"], chat_id) is not None
    )
    assert fits == client_id_is_valid(chat_id)


def test_the_end_of_a_run_closed_after_its_instance_died_says_where_the_stored_answer_ends() -> (
    None
):
    """Its final event is numbered above what the dead instance could have shown and says
    the stored answer's last seq: the error's body carries it (other errors do not)."""
    stream = UiMessageStream()
    logged = _logged(Start(1, 10, RUN), Text("Hal"), Text("f"))
    logged.append(encode(interrupted(retryable=True, stored_through=3), 1004))
    chunks = [chunk for event in logged for chunk in stream.chunks(event)]
    assert [chunk["type"] for chunk in chunks[-3:]] == ["text-end", "finish-step", "error"]
    assert json.loads(chunks[-1]["errorText"]) == {
        "error": {
            "code": "interrupted",
            "message": "The answer was interrupted. Please send your message again.",
            "retryable": True,
            "stored_through": 3,
        }
    }

"""Events as they are logged and sent: one JSON line each, read back as the same event
(hypothesis over every event type), and the transcript rebuilt from them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.domain import MessageStatus, ToolCall, has_unstorable, storable_json
from app.events import (
    ERROR_MESSAGES,
    Done,
    Error,
    Event,
    Start,
    Text,
    Thinking,
    ToolCallEvent,
    ToolResultEvent,
    Transcript,
    decode,
    encode,
    error_event,
    error_message,
    interrupted,
    stored_through,
    to_payload,
)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_usage = st.dictionaries(st.sampled_from(["requests", "input_tokens"]), st.integers(0, 10**6))

events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Start, st.integers(1, 2**62), st.integers(1, 2**62), st.uuids().map(str)),
    st.builds(Thinking, st.text()),
    st.builds(ToolCallEvent, st.text(), st.text(), _json),
    st.builds(ToolResultEvent, st.text(), st.text(), _json),
    st.builds(Text, st.text()),
    st.builds(
        Done, st.integers(1), st.integers(1), _usage, st.sampled_from(["complete", "cancelled"])
    ),
    st.builds(Error, st.text(), st.text(), st.booleans(), st.none() | st.integers(0, 2**31 - 1)),
)


@given(events, st.integers(1, 2**31 - 1))
def test_an_event_reads_back_as_itself_from_one_line_with_its_type_first_and_seq_last(
    event: Event, seq: int
) -> None:
    logged = encode(event, seq)
    assert "\n" not in logged.data and "\r" not in logged.data
    payload: dict[str, Any] = json.loads(logged.data)
    assert list(payload)[:: len(payload) - 1] == ["type", "seq"]
    assert (payload["type"], payload["seq"], logged.seq) == (event.type, seq, seq)
    assert logged.type == event.type
    assert logged.terminal == isinstance(event, Done | Error)
    # The same event, but for what PostgreSQL cannot store (U+0000, lone surrogates).
    assert to_payload(decode(logged)) == storable_json(to_payload(event))
    assert not has_unstorable(json.dumps(payload, ensure_ascii=False))
    if storable_json(to_payload(event)) == to_payload(event):
        assert decode(logged) == event


def test_what_postgresql_cannot_store_becomes_a_replacement_character() -> None:
    logged = encode(ToolCallEvent("c\x00", "add_task", {"title": "a\x00b\ud800"}), 1)
    assert decode(logged) == ToolCallEvent("c\ufffd", "add_task", {"title": "a\ufffdb\ufffd"})


def test_every_error_code_has_its_message_and_unknown_codes_are_refused() -> None:
    for code in ERROR_MESSAGES:
        for retryable in (True, False):
            message = error_message(code, retryable=retryable)
            assert error_event(code, retryable=retryable) == Error(code, message, retryable)
    try:
        error_event("no_such_code")
    except KeyError:
        pass
    else:
        raise AssertionError("an error event with no message for its code")


# Words that invite the user to send the same request once more.
_RESEND = ("again", "retry", "resend", "re-send", "repeat")


@given(
    st.sampled_from(sorted(ERROR_MESSAGES)),
    st.booleans(),
    st.none() | st.integers(0, 2**31),
)
def test_an_error_message_invites_a_resend_exactly_when_its_flag_says_retryable(
    code: str, retryable: bool, stored: int | None
) -> None:
    """Every error event (each code, both flags, the interrupted ones with or without
    `stored_through`) is built by `error_event` or `interrupted`: its words must not contradict
    its flag, which decides whether the page offers Retry. A resend after a tool ran would do it
    twice, so a final error never says "send again" then."""
    built = [error_event(code, retryable=retryable)]
    if code == "interrupted":
        built.append(interrupted(retryable=retryable, stored_through=stored))
    for event in built:
        assert event.retryable is retryable
        words = event.message.lower()
        invites = [word for word in _RESEND if word in words]
        if retryable:
            assert invites, f"{code}: a retryable error that does not say to send again"
        else:
            assert not invites, f"{code}: not retryable, yet says {invites}: {event.message!r}"
            assert "check your list" in words
        # The message rides the wire as it is, and reads back as itself.
        assert decode(encode(event, 7)) == event


def test_a_transcript_keeps_the_text_and_each_call_with_its_result() -> None:
    transcript = Transcript.of(
        [
            Start(1, 1, "run"),
            Thinking("adding"),
            Text("Added "),
            ToolCallEvent("c1", "add_task", {"title": "Milk"}),
            ToolResultEvent("c1", "add_task", {"task": {"id": 1}}),
            ToolResultEvent("c2", "list_tasks", []),  # its call was never seen
            Text("Milk."),
        ]
    )
    assert transcript.content == "Added Milk."
    assert list(transcript.tool_calls.values()) == [
        ToolCall("c1", "add_task", {"title": "Milk"}, {"task": {"id": 1}}),
        ToolCall("c2", "list_tasks", None, []),
    ]
    assert transcript.failed_status() is MessageStatus.INCOMPLETE


def test_an_answer_that_never_began_fails_as_an_error_not_as_incomplete() -> None:
    assert Transcript.of([Start(1, 1, "run"), Thinking("hm")]).failed_status() is (
        MessageStatus.ERROR
    )
    assert Transcript.of([Text("")]).failed_status() is MessageStatus.INCOMPLETE


def test_the_json_on_the_wire_is_utf_8_and_an_error_is_final_unless_said_otherwise() -> None:
    """Text as it is, not \\u escapes (six bytes for one accented letter, per token, per
    client); and `error_event`'s default is not retryable (make mutate found both untested)."""
    assert encode(Text("Café ☕"), 3).data == '{"type":"text","content":"Café ☕","seq":3}'
    assert error_event("agent_failed").retryable is False


def test_where_the_stored_answer_ends_is_said_only_by_the_final_event_that_declares_it() -> None:
    """Left out while None: every other event is on the wire as it was."""
    plain = encode(error_event("interrupted", retryable=True), 4)
    assert list(json.loads(plain.data)) == ["type", "code", "message", "retryable", "seq"]
    declared = encode(interrupted(retryable=True, stored_through=3), 1004)
    assert json.loads(declared.data)["stored_through"] == 3
    assert decode(declared) == interrupted(retryable=True, stored_through=3)
    assert (stored_through(declared), stored_through(plain)) == (3, None)
    assert stored_through(encode(Done(1, 2, {}), 4)) is None
    assert stored_through(encode(Text("x"), 4)) is None

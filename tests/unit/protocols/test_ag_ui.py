"""AG-UI's events without I/O (`app.protocols.ag_ui`): a run's events as the frames
`@ag-ui/client` reads, checked against recorded frames (ag_ui_recorded/, which
tests/protocols/test_ag_ui_clients.py shows the real clients accept) and, for any run the engine
can produce, against the rules the client's `verify` enforces."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.agent.tools import TODO_TOOLS
from app.agent.tools import task_json as tools_task_json
from app.events import Done, Start, Text, ToolResultEvent, encode, error_event, interrupted
from app.protocols.ag_ui import PING, TASK_DELETING_TOOL, TASK_WRITING_TOOLS
from app.protocols.ag_ui_request import AgUiVersion
from tests.unit.protocols.ag_ui_runs import (
    CANCELLED,
    CONVERSATION,
    FAILED,
    RUN,
    SCRIPTED,
    TOOL_TURN,
    ScriptedRun,
    scripted_runs,
    task,
)

RECORDED = Path(__file__).parent / "ag_ui_recorded"
AgUiEvent = dict[str, Any]
Group = tuple[list[AgUiEvent], str]

# The fields of each event the stream may send: the 1.0 schema's (@ag-ui/core 1.0.0,
# src/generated/schemas.ts), less what the service never sends. 1.0 strips any other field
# with a warning; the 0.0 line knows neither RUN_STARTED.protocolVersion nor a cancelled outcome.
FIELDS: dict[str, set[str]] = {
    "RUN_STARTED": {"threadId", "runId", "protocolVersion", "metadata"},
    "STATE_SNAPSHOT": {"snapshot"},
    "STATE_DELTA": {"delta"},
    "TEXT_MESSAGE_START": {"messageId", "role"},
    "TEXT_MESSAGE_CONTENT": {"messageId", "delta"},
    "TEXT_MESSAGE_END": {"messageId"},
    "REASONING_START": {"messageId"},
    "REASONING_MESSAGE_START": {"messageId", "role"},
    "REASONING_MESSAGE_CONTENT": {"messageId", "delta"},
    "REASONING_MESSAGE_END": {"messageId"},
    "REASONING_END": {"messageId"},
    "TOOL_CALL_START": {"toolCallId", "toolCallName", "parentMessageId"},
    "TOOL_CALL_ARGS": {"toolCallId", "delta"},
    "TOOL_CALL_END": {"toolCallId"},
    "TOOL_CALL_RESULT": {"messageId", "toolCallId", "content", "role"},
    "RUN_FINISHED": {"threadId", "runId", "outcome", "result", "usage", "metadata"},
    "RUN_ERROR": {"message", "code", "metadata"},
}
NOT_FOR_LEGACY = {("RUN_STARTED", "protocolVersion"), ("RUN_FINISHED", "outcome")}


def _groups(wire: bytes) -> list[Group]:
    """The stream as the client's parser splits it (on exactly "\\n\\n"), each block's `data:`
    JSON, gathered into groups by the `id:` line that ends each."""
    text = wire.decode()
    assert "\r" not in text
    blocks = text.split("\n\n")
    assert blocks.pop() == "", "the stream ends with a whole block"
    groups: list[Group] = []
    events: list[AgUiEvent] = []
    for block in blocks:
        lines = block.split("\n")
        if lines == [": ping"]:
            continue
        if lines[0].startswith("data: "):
            events.append(json.loads(lines.pop(0)[6:]))
        if lines:
            assert len(lines) == 1 and lines[0].startswith("id: "), block
            groups.append((events, lines[0][4:]))
            events = []
    assert events == [], "every event's blocks end with its id"
    return groups


def _events(wire: bytes) -> list[AgUiEvent]:
    return [event for events, _ in _groups(wire) for event in events]


def _valid_run(events: list[AgUiEvent], version: AgUiVersion) -> None:
    """What `verifyEvents` (@ag-ui/client, src/verify/verify.ts) demands of one run, and the
    fields each event may have."""
    assert events[0]["type"] == "RUN_STARTED"
    assert events[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR")
    text: set[str] = set()
    spans: set[str] = set()
    reasoning: set[str] = set()
    calls: set[str] = set()
    for position, event in enumerate(events):
        kind = event["type"]
        fields = set(event) - {"type"}
        assert fields <= FIELDS[kind], event
        if version is AgUiVersion.LEGACY:
            assert not {(kind, name) for name in fields} & NOT_FOR_LEGACY, event
        if kind in ("RUN_FINISHED", "RUN_ERROR"):
            assert position == len(events) - 1, "nothing after the final event"
        if kind == "RUN_STARTED":
            assert position == 0
        if kind == "RUN_FINISHED":
            assert not (text or spans or reasoning or calls), "every START closed"
        message = event.get("messageId", "")
        call = event.get("toolCallId", "")
        match kind:
            case "TEXT_MESSAGE_START":
                _opens(text, message)
            case "TEXT_MESSAGE_CONTENT":
                assert message in text and event["delta"]
            case "TEXT_MESSAGE_END":
                text.remove(message)
            case "REASONING_START":
                _opens(spans, message)
            case "REASONING_MESSAGE_START":
                _opens(reasoning, message)
                assert event["role"] == "reasoning"
            case "REASONING_MESSAGE_CONTENT":
                assert message in reasoning and event["delta"]
            case "REASONING_MESSAGE_END":
                reasoning.remove(message)
            case "REASONING_END":
                spans.remove(message)
            case "TOOL_CALL_START":
                _opens(calls, call)
                assert event["parentMessageId"].startswith(f"{RUN}-assistant-")
            case "TOOL_CALL_ARGS":
                assert call in calls
            case "TOOL_CALL_END":
                calls.remove(call)
            case "RUN_FINISHED":
                usage = event.get("usage", [])
                assert all(type(n) is int and n >= 0 for entry in usage for n in entry.values())


def _opens(open_ids: set[str], entity: str) -> None:
    assert entity not in open_ids, f"{entity} opened twice"
    open_ids.add(entity)


def _state(events: list[AgUiEvent]) -> list[dict[str, Any]]:
    """The task list as the client keeps it: the snapshot, then each delta (RFC 6902, as
    fast-json-patch applies it: an index out of range fails)."""
    tasks: list[dict[str, Any]] | None = None
    for event in events:
        if event["type"] == "STATE_SNAPSHOT":
            tasks = list(event["snapshot"]["tasks"])
        elif event["type"] == "STATE_DELTA":
            assert tasks is not None, "a delta before any snapshot"
            for op in event["delta"]:
                _, root, index = op["path"].split("/")
                assert root == "tasks"
                if op["op"] == "add":
                    assert index == "-"
                    tasks.append(op["value"])
                else:
                    assert 0 <= int(index) < len(tasks), op
                    if op["op"] == "replace":
                        tasks[int(index)] = op["value"]
                    else:
                        assert op["op"] == "remove"
                        del tasks[int(index)]
    assert tasks is not None
    return tasks


def _ids(groups: list[Group]) -> list[int]:
    seqs = []
    for _, event_id in groups:
        run, _, seq = event_id.rpartition(":")
        assert run == RUN
        seqs.append(int(seq))
    return seqs


# --- recorded frames -------------------------------------------------------------------------


RECORDINGS = [
    (name, version, after_seq)
    for name in SCRIPTED
    for version in AgUiVersion
    for after_seq in (0, 4)
    if after_seq == 0 or name == "tool_turn"
]


@pytest.mark.parametrize(("name", "version", "after_seq"), RECORDINGS)
def test_the_frames_are_the_recorded_ones(name: str, version: AgUiVersion, after_seq: int) -> None:
    """The recorded frames are what the real clients are shown to accept. AG_UI_RECORD=1
    records them anew (then read the diff)."""
    wire = b"".join(SCRIPTED[name].writes(version, after_seq=after_seq))
    path = RECORDED / f"{name}.{version.name.lower()}.after-{after_seq}.sse"
    if os.environ.get("AG_UI_RECORD"):
        path.write_bytes(wire)
    assert wire == path.read_bytes()


def test_a_tool_turn_is_one_assistant_message_per_step_with_its_calls_under_it() -> None:
    events = _events(b"".join(TOOL_TURN.writes(AgUiVersion.V1)))
    step = f"{RUN}-assistant-4"
    assert [(e["type"], e.get("messageId") or e.get("toolCallId")) for e in events] == [
        ("RUN_STARTED", None),
        ("STATE_SNAPSHOT", None),
        ("REASONING_START", f"{RUN}-reasoning-2"),
        ("REASONING_MESSAGE_START", f"{RUN}-reasoning-2"),
        ("REASONING_MESSAGE_CONTENT", f"{RUN}-reasoning-2"),
        ("REASONING_MESSAGE_CONTENT", f"{RUN}-reasoning-2"),
        ("REASONING_MESSAGE_END", f"{RUN}-reasoning-2"),
        ("REASONING_END", f"{RUN}-reasoning-2"),
        ("TEXT_MESSAGE_START", step),
        ("TEXT_MESSAGE_CONTENT", step),
        ("TEXT_MESSAGE_CONTENT", step),
        ("TEXT_MESSAGE_END", step),
        ("TOOL_CALL_START", f"{RUN}-call_1"),
        ("TOOL_CALL_ARGS", f"{RUN}-call_1"),
        ("TOOL_CALL_END", f"{RUN}-call_1"),
        ("TOOL_CALL_START", f"{RUN}-call_2"),
        ("TOOL_CALL_ARGS", f"{RUN}-call_2"),
        ("TOOL_CALL_END", f"{RUN}-call_2"),
        ("TOOL_CALL_RESULT", f"{RUN}-tool-8"),
        ("STATE_DELTA", None),
        ("TOOL_CALL_RESULT", f"{RUN}-tool-9"),
        ("STATE_DELTA", None),
        ("TEXT_MESSAGE_START", f"{RUN}-assistant-10"),
        ("TEXT_MESSAGE_CONTENT", f"{RUN}-assistant-10"),
        ("TEXT_MESSAGE_CONTENT", f"{RUN}-assistant-10"),
        ("TEXT_MESSAGE_CONTENT", f"{RUN}-assistant-10"),
        ("TEXT_MESSAGE_END", f"{RUN}-assistant-10"),
        ("RUN_FINISHED", None),
    ]
    calls = [e for e in events if e["type"] == "TOOL_CALL_START"]
    assert {e["parentMessageId"] for e in calls} == {step}
    assert [e["toolCallName"] for e in calls] == ["add_task", "complete_task"]
    results = [e for e in events if e["type"] == "TOOL_CALL_RESULT"]
    assert [e["toolCallId"] for e in results] == [f"{RUN}-call_1", f"{RUN}-call_2"]
    assert json.loads(results[0]["content"])["task"]["title"] == "Buy bread"
    assert _state(events) == TOOL_TURN.tasks_after


def test_the_client_thread_and_run_are_echoed_and_ours_ride_in_metadata() -> None:
    started, *_, finished = _events(b"".join(TOOL_TURN.writes(AgUiVersion.V1)))
    ours = {"run_id": RUN, "conversation_id": CONVERSATION}
    assert started == {
        "type": "RUN_STARTED",
        "threadId": "thread-1",
        "runId": "client-run-1",
        "protocolVersion": "1.0",
        "metadata": {"todo_chat": ours},
    }
    result = {**ours, "message_id": 70, "status": "complete"}
    assert finished == {
        "type": "RUN_FINISHED",
        "threadId": "thread-1",
        "runId": "client-run-1",
        "outcome": {"type": "success"},
        "result": result,
        "usage": [{"inputTokens": 46, "outputTokens": 12, "totalTokens": 58}],
        "metadata": {"todo_chat": result},
    }


def test_a_cancelled_run_is_said_the_way_each_line_accepts() -> None:
    *_, v1 = _events(b"".join(CANCELLED.writes(AgUiVersion.V1)))
    assert v1["outcome"] == {"type": "cancelled"} and "result" not in v1
    assert v1["metadata"]["todo_chat"]["status"] == "cancelled"
    *_, legacy = _events(b"".join(CANCELLED.writes(AgUiVersion.LEGACY)))
    assert "outcome" not in legacy
    assert legacy["result"]["status"] == "cancelled"


def test_an_error_closes_the_open_message_then_says_our_code_and_message_only() -> None:
    *_, closed, failed = _events(b"".join(FAILED.writes(AgUiVersion.V1)))
    assert closed == {"type": "TEXT_MESSAGE_END", "messageId": f"{RUN}-assistant-2"}
    error = error_event("model_unavailable", retryable=True)
    assert failed == {
        "type": "RUN_ERROR",
        "message": error.message,
        "code": "model_unavailable",
        "metadata": {
            "todo_chat": {"run_id": RUN, "conversation_id": CONVERSATION, "retryable": True}
        },
    }


@pytest.mark.parametrize(
    ("usage", "sent"),
    [
        ({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}, True),
        ({"input_tokens": 3.5, "output_tokens": True, "total_tokens": -1}, False),
        ({}, False),
    ],
)
def test_usage_is_sent_as_non_negative_integers_or_not_at_all(
    usage: dict[str, Any], sent: bool
) -> None:
    run = ScriptedRun([[Start(1, 2, RUN), Done(1, 2, usage)]], [])
    *_, finished = _events(b"".join(run.writes(AgUiVersion.V1)))
    expected = [{"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}]
    assert finished.get("usage") == (expected if sent else None)


def test_the_keep_alive_is_a_comment_block_and_nothing_follows_the_final_event() -> None:
    stream = TOOL_TURN.stream(AgUiVersion.V1)
    assert stream.keep_alive == PING == b": ping\n\n"
    for batch in TOOL_TURN.logged():
        stream.frames(batch)
    assert stream.ended
    assert stream.frames([encode(Text("late"), 99)]) == b""
    assert stream.closing() == b""


def test_a_run_whose_start_is_not_in_view_still_opens_with_run_started() -> None:
    run = ScriptedRun([[Text("hi"), Done(1, 2, {})]], [task(1, "a")])
    events = _events(b"".join(run.writes(AgUiVersion.V1)))
    _valid_run(events, AgUiVersion.V1)
    assert events[0]["metadata"] == {"todo_chat": {"run_id": RUN}}


def test_the_state_holds_tasks_as_the_todo_tools_return_them() -> None:
    """Choice 3: the snapshot's tasks and the tools' results have one shape, so a delta's
    value and the snapshot's entries agree; the tools whose results change it exist."""
    stored = task(3, "Call Bob", completed=True)
    stream = ScriptedRun([], [stored]).stream(AgUiVersion.V1)
    _, snapshot = _events(stream.frames([encode(Start(1, 2, RUN), 1)]))
    assert snapshot["snapshot"] == {"tasks": [tools_task_json(stored)]}
    assert TASK_WRITING_TOOLS | {TASK_DELETING_TOOL} <= {tool.name for tool in TODO_TOOLS}


def test_a_result_the_list_already_holds_changes_nothing() -> None:
    """A retried send replays the run over a list read after it: no delta that would add the
    task twice."""
    stream = ScriptedRun([], [task(2, "Buy bread")]).stream(AgUiVersion.V1)
    stream.frames([encode(Start(1, 2, RUN), 1)])
    added = ToolResultEvent("c", "add_task", {"task": tools_task_json(task(2, "Buy bread"))})
    gone = ToolResultEvent("d", "delete_task", {"deleted": tools_task_json(task(5, "x"))})
    events = _events(stream.frames([encode(added, 2), encode(gone, 3)]))
    assert [e["type"] for e in events] == ["TOOL_CALL_RESULT", "TOOL_CALL_RESULT"]


# --- any run ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripted_runs(), st.sampled_from(AgUiVersion), st.booleans())
def test_any_run_is_a_stream_the_client_accepts(
    run: ScriptedRun, version: AgUiVersion, read_after: bool
) -> None:
    """Whatever the run and however it is batched: one valid run, an id per event of ours in
    order, and the state ends as the tasks were left, whether the route read the list before
    the run or after it (a retried send that joins the run)."""
    read = [task(t["id"], t["title"], completed=t["completed"]) for t in run.tasks_after]
    stream = ScriptedRun(run.batches, read if read_after else run.tasks).stream(version)
    writes = [stream.frames(batch) for batch in run.logged()]
    assert all(writes), "every batch is written"
    groups = _groups(b"".join(writes))
    _valid_run([e for events, _ in groups for e in events], version)
    assert _ids(groups) == list(range(1, run.last_seq + 1))
    assert _state([e for events, _ in groups for e in events]) == run.tasks_after
    assert stream.ended and stream.frames(run.logged()[-1]) == b""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripted_runs(), st.sampled_from(AgUiVersion), st.data())
def test_a_resumed_stream_starts_a_valid_run_where_the_client_was(
    run: ScriptedRun, version: AgUiVersion, data: st.DataObject
) -> None:
    """From any Last-Event-ID short of the final event: nothing the client had, a fresh run
    (RUN_STARTED, the state, the message left open reopened under its id), then the rest;
    and the state still ends as the tasks were left."""
    after = data.draw(st.integers(1, run.last_seq - 1))
    read = [task(t["id"], t["title"], completed=t["completed"]) for t in run.tasks_after]
    stream = ScriptedRun(run.batches, read).stream(version, after_seq=after)
    groups = _groups(b"".join(stream.frames(batch) for batch in run.logged()))
    events = [e for group, _ in groups for e in group]
    _valid_run(events, version)
    assert _ids(groups) == list(range(after, run.last_seq + 1))
    assert _state(events) == run.tasks_after


def test_a_client_that_had_the_final_event_gets_nothing() -> None:
    stream = TOOL_TURN.stream(AgUiVersion.V1, after_seq=TOOL_TURN.last_seq)
    assert b"".join(stream.frames(batch) for batch in TOOL_TURN.logged()) == b""
    assert stream.ended


def test_a_resume_at_the_tip_of_a_running_run_answers_at_once() -> None:
    """The client has every event so far: the fresh run's opening goes out with the batch
    that reaches its position, not with the next event, whenever that comes."""
    first = TOOL_TURN.logged()[:3]
    stream = TOOL_TURN.stream(AgUiVersion.V1, after_seq=first[-1][-1].seq)
    wire = b"".join(stream.frames(batch) for batch in first)
    groups = _groups(wire)
    assert [event_id for _, event_id in groups] == [f"{RUN}:{first[-1][-1].seq}"]
    assert [e["type"] for e in groups[0][0]] == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "TEXT_MESSAGE_START",
    ]


@pytest.mark.parametrize("after", [0, 2, 3, 6])
def test_a_run_closed_after_its_instance_died_ends_saying_where_the_stored_answer_ends(
    after: int,
) -> None:
    """Its log holds events 1 to 3, then a final event above anything the dead instance could
    have shown (a client may be back from 6): the client gets a valid run ending in RUN_ERROR,
    whose metadata says the stored answer's last seq."""
    logged = [
        encode(Start(CONVERSATION, 11, RUN), 1),
        encode(Text("Let me "), 2),
        encode(Text("look"), 3),
        encode(interrupted(retryable=True, stored_through=3), 1004),
    ]
    for version in AgUiVersion:
        stream = FAILED.stream(version, after_seq=after)
        groups = _groups(stream.frames(logged[:2]) + stream.frames(logged[2:]))
        events = [e for group, _ in groups for e in group]
        _valid_run(events, version)
        assert groups[-1][1] == f"{RUN}:1004"
        assert events[-1]["type"] == "RUN_ERROR"
        assert events[-1]["metadata"]["todo_chat"] == {
            "run_id": RUN,
            "conversation_id": CONVERSATION,
            "retryable": True,
            "stored_through": 3,
        }

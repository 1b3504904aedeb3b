"""Whatever a client sends — path, query, headers, body — gets a 4xx with the error envelope
or a whole answer, never a 500 and never a cut stream. Hypothesis generates the inputs, over
each endpoint; the classes it found before they were handled: U+0000 in text, integers past
PostgreSQL's bigint, other scripts' digits that `str.isdigit()` accepts and `int()` refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.settings import Settings
from tests.support import LiveServer, User, serve

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
# Path segments and query values as a client could put them in a URL.
segments = st.one_of(
    st.text(min_size=1, max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["٣", "²", "0" * 30, "9" * 19, "1e3", " 1", "1\x00"]),
)
# Header values HTTP allows (RFC 9110: visible ASCII, spaces and tabs inside, obs-text);
# others the HTTP layer refuses before the service sees them.
header_values = (
    st.lists(
        st.sampled_from([*range(0x21, 0x7F), 0x20, 0x09, *range(0x80, 0x100)]),
        min_size=1,
        max_size=300,
    )
    .map(bytes)
    .filter(lambda value: value.strip(b" \t") == value)
)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    async with serve(create_app(settings), settings) as server:
        yield server
        await server.registry.wait_idle()


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


async def _read_whole_stream(user: User, response: httpx.Response) -> None:
    """A stream that began must end with `done` or `error`."""
    events = [json.loads(line[6:]) async for line in response.aiter_lines() if line[:6] == "data: "]
    assert events and events[-1]["type"] in ("done", "error"), events[-1:]


@EXAMPLES
@given(
    path=st.sampled_from(
        [
            "/conversations/{}/messages",
            "/conversations/{}/stream",
            "/conversations/{}",
            "/runs/{}",
            "/runs/{}/events",
            "/tasks/{}",
            "/ai/chat/{}/stream",
            "/ai/chat/{}/cancel",
            "/ag-ui/{}/stream",
            "/ag-ui/{}/cancel",
        ]
    ),
    method=st.sampled_from(["GET", "DELETE", "PATCH", "POST"]),
    segment=segments,
)
async def test_any_id_in_a_path(live: LiveServer, path: str, method: str, segment: str) -> None:
    user = live.user()
    url = user.url(path.format(quote(segment, safe="")))
    response = await user.client.request(
        method, url, headers=user.headers, json={"completed": True}
    )
    _check(response)


@EXAMPLES
@given(
    limit=segments,
    status=st.text(max_size=20),
    last_event_id=segments,
)
async def test_any_query(live: LiveServer, limit: str, status: str, last_event_id: str) -> None:
    user = live.user()
    _check(await user.get("/conversations", params={"limit": limit}))
    _check(await user.get("/tasks", params={"status": status}))
    run_id = "0b6f3c1e-5a4d-4d7e-9a53-2f1c8e7d6b5a"
    _check(await user.get(f"/runs/{run_id}/events", params={"last_event_id": last_event_id}))


@EXAMPLES
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"title": json_values}, optional={"description": json_values, "completed": json_values}
    )
)
async def test_any_task_body(live: LiveServer, body: Any) -> None:
    user = live.user()
    created = await user.post("/tasks", json=body)
    _check(created)
    task = await user.post("/tasks", json={"title": "a task"})
    _check(await user.patch(f"/tasks/{task.json()['id']}", json=body))


@EXAMPLES
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"message": json_values},
            optional={"conversation_id": json_values, "cancel_active": json_values},
        ),
        st.fixed_dictionaries({"message": st.text(min_size=1, max_size=50)}),
    ),
    last_event_id=st.none() | header_values,
    idempotency_key=st.none() | header_values,
    accept=st.none() | header_values,
)
async def test_any_chat_request(
    live: LiveServer,
    body: Any,
    last_event_id: bytes | None,
    idempotency_key: bytes | None,
    accept: bytes | None,
) -> None:
    user = live.user()
    headers = [(b"Authorization", user.headers["Authorization"].encode())]
    for name, value in (
        (b"Last-Event-ID", last_event_id),
        (b"Idempotency-Key", idempotency_key),
        (b"Accept", accept),
    ):
        if value is not None:
            headers.append((name, value))
    async with user.client.stream(
        "POST", user.url("/chat/stream"), json=body, headers=headers
    ) as response:
        if response.status_code == 200:
            await _read_whole_stream(user, response)
        else:
            await response.aread()
            _check(response)


# What the AI SDK's transport POSTs, and everything near it.
ui_parts = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "file"]) | json_values})
    | st.fixed_dictionaries({"type": st.just("text"), "text": json_values | st.text()}),
    max_size=3,
)
ui_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]) | json_values, "parts": ui_parts},
        optional={"id": json_values},
    )
    | json_values,
    max_size=3,
)
ai_chat_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"id": st.text(max_size=30) | json_values, "messages": ui_messages},
        optional={
            "trigger": st.sampled_from(["submit-message", "regenerate-message"]) | json_values,
            "messageId": json_values,
        },
    ),
    st.text(min_size=1, max_size=50).map(
        lambda text: {
            "id": "chat-1",
            "messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": text}]}],
        }
    ),
)


@EXAMPLES
@given(
    body=ai_chat_bodies,
    idempotency_key=st.none() | header_values,
    accept=st.none() | header_values,
)
async def test_any_ai_sdk_chat_request(
    live: LiveServer, body: Any, idempotency_key: bytes | None, accept: bytes | None
) -> None:
    """A stream that began ends with the protocol's `[DONE]` after a `finish` or an `error`."""
    user = live.user()
    headers = [(b"Authorization", user.headers["Authorization"].encode())]
    for name, value in ((b"Idempotency-Key", idempotency_key), (b"Accept", accept)):
        if value is not None:
            headers.append((name, value))
    async with user.client.stream(
        "POST", user.url("/ai/chat"), json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            await response.aread()
            _check(response)
            return
        data = [line[6:] async for line in response.aiter_lines() if line[:6] == "data: "]
    assert data[-1] == "[DONE]", data[-2:]
    assert json.loads(data[-2])["type"] in ("finish", "error"), data[-2:]


# What AG-UI's HttpAgent POSTs (RunAgentInput), and everything near it: any thread id.
_HI = {"id": "m", "role": "user", "content": "hi"}
thread_ids = segments | st.sampled_from(
    ["", ".", "..", "a/b", "a\\b", "t\x00", "é", "x" * 201, "%2F", "?", "#"]
)
ag_ui_contents = st.text() | st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image"]) | json_values})
    | st.fixed_dictionaries({"type": st.just("text"), "text": json_values | st.text()}),
    max_size=3,
)
ag_ui_messages = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=20) | json_values,
            "role": st.sampled_from(["user", "assistant", "tool"]) | json_values,
        },
        optional={"content": ag_ui_contents | json_values},
    )
    | json_values,
    max_size=3,
)
ag_ui_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "threadId": st.text(max_size=30) | json_values,
            "runId": st.text(max_size=30) | json_values,
            "messages": ag_ui_messages,
        },
        optional={
            "protocolVersion": st.sampled_from(["1.0", "0.9", "2.1"]) | st.text() | json_values,
            "tools": json_values,
            "context": json_values,
            "state": json_values,
            "forwardedProps": json_values,
        },
    ),
    st.tuples(st.text(min_size=1, max_size=50), thread_ids | st.just("\ud800")).map(
        lambda drawn: {
            "threadId": drawn[1],
            "runId": "r",
            "messages": [{"id": "m", "role": "user", "content": drawn[0]}],
        }
    ),
)


@EXAMPLES
@given(body=ag_ui_bodies)
@example(body={"threadId": "t\x00", "runId": "r", "messages": [_HI]})
@example(body={"threadId": "t", "runId": "r\x00", "messages": [_HI]})
async def test_any_ag_ui_run_request(live: LiveServer, body: Any) -> None:
    """A stream that began ends with RUN_FINISHED or RUN_ERROR, each event one block that
    ends in "\n\n" (what the client splits on), and nothing after it."""
    user = live.user()
    # As JSON escapes it: a lone surrogate in a thread id is text httpx would not encode.
    content = json.dumps(body)
    headers = {**user.headers, "Content-Type": "application/json"}
    async with user.client.stream(
        "POST", user.url("/ag-ui"), content=content, headers=headers
    ) as response:
        if response.status_code != 200:
            await response.aread()
            _check(response)
            return
        text = (await response.aread()).decode()
    blocks = [block for block in text.split("\n\n") if block.startswith("data: ")]
    events = [json.loads(block.split("\n")[0][6:]) for block in blocks]
    assert "\r" not in text and text.endswith("\n\n"), text[-200:]
    assert events[0]["type"] == "RUN_STARTED", events[:1]
    assert events[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR"), events[-1:]


_AG_UI_RUNS: dict[int, tuple[User, str]] = {}


async def _ag_ui_run(live: LiveServer) -> tuple[User, str]:
    """A user with one ended run on thread "t", made once per server."""
    if id(live) not in _AG_UI_RUNS:
        user = live.user()
        body = {
            "threadId": "t",
            "runId": "r",
            "messages": [{"id": "m", "role": "user", "content": "hi"}],
        }
        response = await user.client.post(user.url("/ag-ui"), json=body, headers=user.headers)
        run_id = response.text.split("id: ", 1)[1].split(":", 1)[0]
        _AG_UI_RUNS[id(live)] = user, run_id
    return _AG_UI_RUNS[id(live)]


@EXAMPLES
@given(
    thread=st.just("t") | thread_ids,
    last_event_id=st.none() | header_values | st.integers(min_value=0, max_value=9),
    run_id=st.none() | st.text(max_size=30),
    protocol_version=st.none() | st.text(max_size=10),
)
@example(thread="t\x00", last_event_id=None, run_id=None, protocol_version=None)
async def test_any_ag_ui_resume_and_cancel(
    live: LiveServer,
    thread: str,
    last_event_id: bytes | int | None,
    run_id: str | None,
    protocol_version: str | None,
) -> None:
    """Any thread id, cursor (a drawn one, or one of the run of thread "t"), run id and
    version: a 4xx, a 204, or the rest of the run, ending with its final event; and a cancel
    of any thread id."""
    user, ended_run = await _ag_ui_run(live)
    if isinstance(last_event_id, int):
        last_event_id = f"{ended_run}:{last_event_id}".encode()
    query = {
        name: value
        for name, value in (("runId", run_id), ("protocolVersion", protocol_version))
        if value is not None
    }
    headers = [(b"Authorization", user.headers["Authorization"].encode())]
    if last_event_id is not None:
        headers.append((b"Last-Event-ID", last_event_id))
    path = f"/ag-ui/{quote(thread, safe='')}"
    response = await user.client.get(user.url(f"{path}/stream"), params=query, headers=headers)
    _check(response)
    _check(await user.post(f"{path}/cancel"))
    if response.status_code == 200:
        events = [
            json.loads(line[6:]) for line in response.text.split("\n") if line[:6] == "data: "
        ]
        assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] == "RUN_FINISHED"


@EXAMPLES
@given(body=st.binary(max_size=200))
async def test_any_bytes_as_a_body(live: LiveServer, body: bytes) -> None:
    user = live.user()
    for path in ("/tasks", "/chat", "/ai/chat", "/ag-ui"):
        response = await user.client.post(
            user.url(path),
            content=body,
            headers={**user.headers, "Content-Type": "application/json"},
        )
        _check(response)

"""The AG-UI module's frames read by the real clients: `@ag-ui/client` 1.0.0 and 0.0.59 (the
version CopilotKit's React packages pin), run by Node (tests/clients/ag_ui_client.mjs). A
throwaway HTTP server on a free port parses the body each client POSTs with the service's own
request model and answers with what `AgUiStream` makes of a scripted run, one chunk per batch,
as the transport writes it. No database and no service: these hold the protocol itself to the
clients, and stay true when the routes serve it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings

from app.events import error_event
from app.protocols.ag_ui import AgUiStream
from app.protocols.ag_ui_request import AgUiRunRequest, AgUiVersion
from tests.support import node_with_clients, run_node
from tests.unit.protocols.ag_ui_runs import (
    CANCELLED,
    FAILED,
    RUN,
    TOOL_TURN,
    ScriptedRun,
    scripted_runs,
)

CLIENTS = ["1.0.0", "0.0.59"]
THREAD = "thread-1"
USER = {"id": "u1", "role": "user", "content": "Add bread, and milk is done."}
Result = dict[str, Any]


@dataclass
class Route:
    """A scripted run as the server serves it; `cut` drops the first POST's connection once
    that many bytes are sent (`end_cleanly`: as a finished body, without the run's end), and
    a POST sent again is answered whole, as the service replays a run; `hold` stops after that
    many batches until the client goes away."""

    run: ScriptedRun
    cut: int | None = None
    end_cleanly: bool = False
    hold: int | None = None
    service_run_id: str = RUN
    mangle: Callable[[bytes], bytes] = lambda wire: wire
    cut_made: bool = False


@dataclass
class FramesServer:
    routes: dict[str, Route] = field(default_factory=dict)
    posts: list[AgUiRunRequest] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def serve(
        self, path: str, version: AgUiVersion, run_id: str, after_seq: int
    ) -> Iterator[bytes]:
        route = self.routes[path.strip("/").split("/")[0]]
        stream = AgUiStream(
            thread_id=THREAD,
            run_id=run_id,
            service_run_id=route.service_run_id,
            version=version,
            tasks=route.run.tasks,
            after_seq=after_seq,
        )
        for number, batch in enumerate(route.run.logged()):
            yield route.mangle((stream.opening() if number == 0 else b"") + stream.frames(batch))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        request = AgUiRunRequest.model_validate_json(body, context={"max_message_chars": 4000})
        self.server.frames.posts.append(request)
        route = self.server.frames.routes[self.path.strip("/")]
        self._send(self.server.frames.serve(self.path, request.version, request.runId, 0), route)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        event_id = self.headers["last-event-id"] or f"{RUN}:0"
        self.server.frames.resumes.append({"lastEventId": event_id, **query})
        run, _, seq = event_id.rpartition(":")
        assert run == RUN
        version = AgUiVersion.V1 if query.get("protocolVersion") else AgUiVersion.LEGACY
        self._send(self.server.frames.serve(url.path, version, query["runId"], int(seq)), None)

    def _send(self, writes: Iterator[bytes], route: Route | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        left = route.cut if route and route.cut is not None and not route.cut_made else None
        for number, data in enumerate(writes):
            if route is not None and number == route.hold:
                self.rfile.read()  # until the client closes the connection
                self.close_connection = True
                return
            if route is not None and left is not None and len(data) >= left:
                route.cut_made = True
                self._chunk(data[:left])
                if route.end_cleanly:
                    self._chunk(b"")
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if left is not None:
                left -= len(data)
            if data:  # a resume's replayed batches are written as nothing
                self._chunk(data)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    frames: FramesServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a cut, an abort) is what these tests do on purpose."""


@pytest.fixture
def frames() -> Iterator[FramesServer]:
    node_with_clients()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.frames = FramesServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.frames
    server.shutdown()
    server.server_close()


def _client_run(frames: FramesServer, client: str, path: str, **more: Any) -> dict[str, Any]:
    return {
        "client": client,
        "url": f"{frames.url}/{path}",
        "threadId": THREAD,
        "messages": [USER],
        **more,
    }


async def _runs(*runs: dict[str, Any]) -> list[Result]:
    result = await run_node("ag_ui_client.mjs", json.dumps({"runs": list(runs)}))
    runs_seen: list[Result] = result["runs"]
    return runs_seen


async def _one(frames: FramesServer, client: str, route: Route, **more: Any) -> Result:
    frames.routes["run"] = route
    (seen,) = await _runs(_client_run(frames, client, "run", **more))
    return seen


def _clean(seen: Result) -> None:
    assert (seen["failed"], seen["threw"], seen["warnings"]) == ([], None, [])


def _tool_call(call: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"{RUN}-{call}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


TOOL_TURN_MESSAGES: list[dict[str, Any]] = [
    USER,
    {
        "id": f"{RUN}-reasoning-2",
        "role": "reasoning",
        "content": "The user wants bread and milk done.",
    },
    {
        "id": f"{RUN}-assistant-4",
        "role": "assistant",
        "content": "I'll add bread and tick off milk.",
        "toolCalls": [
            _tool_call("call_1", "add_task", '{"title":"Buy bread"}'),
            _tool_call("call_2", "complete_task", '{"task_id":1}'),
        ],
    },
    {
        "id": f"{RUN}-tool-8",
        "role": "tool",
        "toolCallId": f"{RUN}-call_1",
        "content": json.dumps(
            {"task": TOOL_TURN.tasks_after[1]}, separators=(",", ":"), ensure_ascii=False
        ),
    },
    {
        "id": f"{RUN}-tool-9",
        "role": "tool",
        "toolCallId": f"{RUN}-call_2",
        "content": json.dumps(
            {"task": TOOL_TURN.tasks_after[0]}, separators=(",", ":"), ensure_ascii=False
        ),
    },
    {
        "id": f"{RUN}-assistant-10",
        "role": "assistant",
        "content": "Added bread and ticked off milk.",
    },
]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_tool_turn_is_read_as_the_messages_and_tasks_it_made(
    frames: FramesServer, client: str
) -> None:
    seen = await _one(frames, client, Route(TOOL_TURN))
    _clean(seen)
    (request,) = frames.posts
    assert (request.text, request.message_id) == (USER["content"], "u1")
    assert request.version is (AgUiVersion.V1 if client == "1.0.0" else AgUiVersion.LEGACY)
    events = seen["events"]
    assert events[0] == "RUN_STARTED" and events[-1] == "RUN_FINISHED"
    assert events.count("TEXT_MESSAGE_CONTENT") == 5
    assert seen["messages"] == TOOL_TURN_MESSAGES
    assert seen["state"] == {"tasks": TOOL_TURN.tasks_after}
    ours = {"run_id": RUN, "conversation_id": 7, "message_id": 70, "status": "complete"}
    assert seen["result"] == ours
    assert seen["finished"] == [{"outcome": "success", "result": ours}]


@pytest.mark.parametrize("client", CLIENTS)
async def test_the_next_run_on_the_thread_keeps_its_tool_calls_apart(
    frames: FramesServer, client: str
) -> None:
    """The model of the next run reuses `call_1`: its call is still the next run's own, not
    taken for a replay of the first run's (the client matches tool calls by id)."""
    frames.routes["first"] = Route(TOOL_TURN)
    frames.routes["next"] = Route(TOOL_TURN, service_run_id="run-2")
    again = {"id": "u2", "role": "user", "content": "Once more."}
    first = _client_run(frames, client, "first")
    (seen,) = await _runs({**first, "then": [{"url": f"{frames.url}/next", "message": again}]})
    _clean(seen)
    next_run = json.loads(json.dumps(TOOL_TURN_MESSAGES[1:]).replace(RUN, "run-2"))
    assert seen["messages"] == [*TOOL_TURN_MESSAGES, again, *next_run]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_failed_run_resolves_with_the_error_event(
    frames: FramesServer, client: str
) -> None:
    seen = await _one(frames, client, Route(FAILED))
    _clean(seen)
    assert seen["events"][-1] == "RUN_ERROR"
    error = error_event("model_unavailable", retryable=True)
    assert seen["runErrors"] == [{"code": error.code, "message": error.message}]
    assert seen["finished"] == []
    assert seen["messages"][-1] == {
        "id": f"{RUN}-assistant-2",
        "role": "assistant",
        "content": "Let me look.",
    }


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_cancelled_run_is_cancelled_in_each_clients_terms(
    frames: FramesServer, client: str
) -> None:
    seen = await _one(frames, client, Route(CANCELLED))
    _clean(seen)
    ours = {"run_id": RUN, "conversation_id": 7, "message_id": 70, "status": "cancelled"}
    if client == "1.0.0":
        assert seen["finished"] == [{"outcome": "cancelled", "result": None}]
    else:
        assert seen["finished"] == [{"outcome": "success", "result": ours}]
    assert seen["messages"][-1]["content"] == "Sure, one moment"


def _resume_url(frames: FramesServer) -> str:
    return f"{frames.url}/run/stream"


def _inside_second_call(wire: bytes) -> int:
    return wire.index(b'"toolCallName":"complete_task"')


@pytest.mark.parametrize(
    ("end_cleanly", "clone"),
    [(False, False), (True, False), (False, True)],
    ids=["dropped", "ended", "dropped-in-a-clone"],
)
@pytest.mark.parametrize("client", CLIENTS)
async def test_the_resuming_agent_rebuilds_a_cut_run(
    frames: FramesServer, client: str, end_cleanly: bool, clone: bool
) -> None:
    """The POST's connection is cut inside the second tool call's group: the subclass passes
    on nothing of that group, resumes from the last whole one, and ends as an uncut run; a
    clone of it too (CopilotKit's runtime runs a clone of the agent it is given)."""
    version = AgUiVersion.V1 if client == "1.0.0" else AgUiVersion.LEGACY
    cut = _inside_second_call(b"".join(TOOL_TURN.writes(version)))
    route = Route(TOOL_TURN, cut=cut, end_cleanly=end_cleanly)
    seen = await _one(frames, client, route, resumeUrl=_resume_url(frames), clone=clone)
    _clean(seen)
    (post,) = frames.posts
    assert frames.resumes == [
        {"lastEventId": f"{RUN}:6", "runId": post.runId}
        | ({"protocolVersion": "1.0"} if client == "1.0.0" else {})
    ]
    assert seen["events"].count("RUN_STARTED") == 2
    assert seen["events"].count("RUN_FINISHED") == 1
    assert seen["messages"] == TOOL_TURN_MESSAGES
    assert seen["state"] == {"tasks": TOOL_TURN.tasks_after}
    assert seen["result"]["status"] == "complete"


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_run_cut_before_its_first_whole_group_is_sent_again(
    frames: FramesServer, client: str
) -> None:
    """No whole group came, so there is no cursor to resume from: the agent POSTs the same
    input again (the service joins or replays the run by the last message's id)."""
    route = Route(TOOL_TURN, cut=10)
    seen = await _one(frames, client, route, resumeUrl=_resume_url(frames))
    _clean(seen)
    first, again = frames.posts
    assert (again.message_id, again.runId) == (first.message_id, first.runId)
    assert frames.resumes == []
    assert seen["messages"] == TOOL_TURN_MESSAGES


@pytest.mark.parametrize("client", CLIENTS)
async def test_an_aborted_run_is_not_resumed(frames: FramesServer, client: str) -> None:
    """`abortRun()` drops the connection, and nothing resumes: the server holds the stream
    after the text until the client goes away."""
    route = Route(TOOL_TURN, hold=3)
    seen = await _one(
        frames, client, route, resumeUrl=_resume_url(frames), abortOn="TEXT_MESSAGE_CONTENT"
    )
    assert frames.resumes == []
    assert "RUN_FINISHED" not in seen["events"]
    assert (seen["failed"], seen["threw"]) == ([], None)
    assert [error["code"] for error in seen["runErrors"]] == ["abort"]  # the client's own


# --- the checks can fail: each defect, made on the wire, is caught ---------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_crlf_framing_fails_the_run(frames: FramesServer, client: str) -> None:
    seen = await _one(frames, client, Route(TOOL_TURN, mangle=lambda w: w.replace(b"\n", b"\r\n")))
    assert seen["failed"] and "RUN_FINISHED" not in seen["events"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_an_unclosed_message_fails_the_run(frames: FramesServer, client: str) -> None:
    def unclosed(wire: bytes) -> bytes:
        return wire.replace(
            b'"type":"TEXT_MESSAGE_END"', b'"type":"TEXT_MESSAGE_CONTENT","delta":"."'
        )

    seen = await _one(frames, client, Route(TOOL_TURN, mangle=unclosed))
    assert any("still active" in failure for failure in seen["failed"])


@pytest.mark.parametrize("client", CLIENTS)
async def test_tool_calls_without_their_parent_are_messages_of_their_own(
    frames: FramesServer, client: str
) -> None:
    def orphaned(wire: bytes) -> bytes:
        return wire.replace(f',"parentMessageId":"{RUN}-assistant-4"'.encode(), b"")

    seen = await _one(frames, client, Route(TOOL_TURN, mangle=orphaned))
    _clean(seen)
    assert seen["messages"] != TOOL_TURN_MESSAGES
    assert seen["messages"][2] == {
        k: v for k, v in TOOL_TURN_MESSAGES[2].items() if k != "toolCalls"
    }


# --- any run ---------------------------------------------------------------------------------


def _drawn(count: int) -> list[ScriptedRun]:
    drawn: list[ScriptedRun] = []

    @settings(max_examples=count, database=None, derandomize=True)
    @given(scripted_runs())
    def collect(run: ScriptedRun) -> None:
        drawn.append(run)

    collect()
    return drawn


@pytest.mark.parametrize("client", CLIENTS)
async def test_any_run_is_read_whole_and_a_cut_anywhere_is_resumed_to_the_same(
    frames: FramesServer, client: str
) -> None:
    """Runs drawn as the engine can produce them, each read whole, and each cut at a byte
    drawn from its stream and resumed: no failure, no warning, the tasks as the run left them,
    and the same messages either way."""
    version = AgUiVersion.V1 if client == "1.0.0" else AgUiVersion.LEGACY
    runs = _drawn(40)
    requests = []
    for number, run in enumerate(runs):
        wire = b"".join(run.writes(version))
        frames.routes[f"whole{number}"] = Route(run)
        frames.routes[f"cut{number}"] = Route(run, cut=(number * 7919) % len(wire))
        requests.append(_client_run(frames, client, f"whole{number}"))
        resume = f"{frames.url}/cut{number}/stream"
        requests.append(_client_run(frames, client, f"cut{number}", resumeUrl=resume))
    seen = await _runs(*requests)
    for run, whole, resumed in zip(runs, seen[::2], seen[1::2], strict=True):
        for each in (whole, resumed):
            _clean(each)
            assert each["events"][-1] in ("RUN_FINISHED", "RUN_ERROR")
            assert each["state"] == {"tasks": run.tasks_after}
        assert whole["events"][0] == "RUN_STARTED"
        assert resumed["messages"] == whole["messages"]

"""AG-UI's endpoints, under /api/{user_id}/ag-ui: `@ag-ui/client`'s `HttpAgent`, and CopilotKit
on top of it, runs the service's agent with no adapter code. `app.protocols.ag_ui_request` reads
the request, `app.protocols.ag_ui` frames the events; these are the same runs as `/chat/stream`
(`ChatService.send`, `follow`, `cancel`), sent by the same transport.

- `POST /ag-ui` takes `RunAgentInput`. Its `threadId` is a thread (`app.domain.Thread`): per
  user, one conversation, made by the first run. Of the history the client resends, only the
  last message is read, the user's new one; its `id` keys the send, so a retried run of the
  same message joins (or replays) the run the first one started, never a second turn. The
  stream's state is the user's task list, read as `GET /tasks` reads it (the first
  `MAX_TASKS`, in the order they were added), before the send: a database error reading it
  then refuses a run that was never stored, rather than answering an error for one that goes
  on.
- `GET /ag-ui/{thread_id}/stream` is a resume, which AG-UI itself lacks (a client's `connect()`
  calls it; README, "AG-UI"). With `Last-Event-ID: <run_id>:<seq>` it follows that run of the
  thread from there, on any instance, from the durable log; without one, the run going in the
  thread, from its start. 204 when there is nothing to send: no run going, or the client has
  the named run's final event. An empty 200 would do for AG-UI's parser, but a 204 is what the
  service's other resumes answer, and it lets a client tell "nothing to follow" from a stream
  without reading a body (the resuming agent ends its resumes on it). `runId` and
  `protocolVersion` in the query stand in for the body a GET lacks: the run id to echo, and
  which client line to serve.
- `POST /ag-ui/{thread_id}/cancel` stops the run going in that thread, as
  `POST /runs/{id}/cancel` does; its stream ends cancelled. The client's `abortRun()` only
  drops its connection, and the run goes on.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from app.domain import Run, RunNotFound, RunStatus, Task, Thread, TooManyFollowers
from app.metrics import RESUMES
from app.protocols.ag_ui import AgUiStream
from app.protocols.ag_ui_request import (
    PROTOCOL,
    PROTOCOL_VERSION_PATTERN,
    AgUiRunRequest,
    AgUiVersion,
)
from app.protocols.client_input import CLIENT_ID_RULE, CLIENT_ID_SCHEMA, client_id_is_valid
from app.tasks import UserTasks
from app.web.errors import ApiError
from app.web.openapi.operation import (
    BODY_ERRORS,
    LAST_EVENT_ID,
    LAST_EVENT_ID_QUERY,
    TURN_ERRORS,
    ApiRoute,
    Operation,
    Param,
    Stream,
    stream_content,
)
from app.web.requests import last_event_id, read_body, sent_last_event_id, thread_in_path, user_id
from app.web.routes.tasks import MAX_TASKS
from app.web.routes.threads import cancel_in_thread
from app.web.schemas import RunOut
from app.web.state import AppState, state_of
from app.web.streaming import stream_response

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""The client resends the whole history on every run, of which one message is read."""

AG_UI_EVENTS = Stream(
    "The AG-UI events",
    stream_content(
        {
            "type": "string",
            "contentMediaType": "application/json",
            "description": (
                "One AG-UI event as JSON (`RUN_STARTED`, `STATE_SNAPSHOT`, "
                "`TEXT_MESSAGE_CONTENT`, `TOOL_CALL_START`, `RUN_FINISHED`, `RUN_ERROR`…: "
                "`@ag-ui/core`'s `EventSchemas`; app/protocols/ag_ui.py says which, and how)."
            ),
        },
        'data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"7c9e6679-assistant-6",'
        '"delta":"Added"}\n'
        "id: 7c9e6679-7425-40de-944b-e07fc1f90ae7:6\n\n",
        id={
            "type": "string",
            "description": "`<run_id>:<seq>`, on the last block of each of our events",
        },
    ),
)
"""AG-UI's stream, described in words: `@ag-ui/core` is its schema, and tests/clients runs
`@ag-ui/client` against us."""

_THREAD_ID = {"thread_id": {**CLIENT_ID_SCHEMA, "description": "The agent's `threadId`."}}
_RUN_ID = Param(
    "runId",
    "query",
    CLIENT_ID_SCHEMA,
    "The client's `runId` of the run resumed, echoed in `RUN_STARTED` (default: ours).",
)
_PROTOCOL_VERSION = Param(
    "protocolVersion",
    "query",
    {"type": "string", "pattern": PROTOCOL_VERSION_PATTERN},
    'The `protocolVersion` the client sends in its runs (`@ag-ui/client` 1.0: "1.0"); '
    "without it, the stream is the 0.0 line's.",
    "1.0",
)


def _thread(request: Request) -> Thread:
    return thread_in_path(request, PROTOCOL, "thread_id")


async def _tasks(state: AppState, user: str) -> list[Task]:
    """The task list the stream's state starts from, bounded as `GET /tasks` bounds a page."""
    return await UserTasks(state.database, user).list(limit=MAX_TASKS)


async def run_agent(request: Request) -> Response:
    state, user = state_of(request), user_id(request)
    body = await read_body(
        request,
        AgUiRunRequest,
        limit=MAX_BODY_BYTES,
        max_message_chars=state.settings.max_message_chars,
    )
    if body.tools:
        # Frontend tools are not run here (app/protocols/ag_ui_request.py says why).
        names = [name[:64] for name in body.ignored_tool_names[:10]]
        logger.info("AG-UI run: %d frontend tools ignored: %s", len(body.tools), names)
    tasks = await _tasks(state, user)
    sent = await state.chat.send(
        user,
        body.text,
        thread=Thread(PROTOCOL, body.threadId),
        idempotency_key=body.idempotency_key,
    )
    stream = AgUiStream(
        thread_id=body.threadId,
        run_id=body.runId,
        service_run_id=sent.run_id,
        version=body.version,
        tasks=tasks,
    )
    source = "local" if sent.started else "followed"
    return stream_response(stream, sent.batches, state.settings, source=source)


_RUN_AGENT = Operation(
    "Run the agent for AG-UI's `HttpAgent` (its `RunAgentInput`; the last message, the "
    "user's, is the one sent), as a stream of AG-UI events",
    body=AgUiRunRequest,
    stream=AG_UI_EVENTS,
    raises=(*TURN_ERRORS, TooManyFollowers),
    errors=BODY_ERRORS,
)


def _client_run_id(request: Request) -> str | None:
    raw = request.query_params.get("runId")
    if raw is not None and not client_id_is_valid(raw):
        raise ApiError(422, "invalid_request", f"runId: must be {CLIENT_ID_RULE}")
    return raw


def _version(request: Request) -> AgUiVersion:
    try:
        return AgUiVersion.of(request.query_params.get("protocolVersion"))
    except ValueError:
        raise ApiError(
            422, "invalid_request", "protocolVersion: must be a version such as 1.0"
        ) from None


async def resume(request: Request) -> Response:
    thread = _thread(request)
    state, user = state_of(request), user_id(request)
    version, client_run_id = _version(request), _client_run_id(request)
    named_run, after_seq = last_event_id(request)
    if named_run:
        run: Run | None = await state.chat.thread_run(user, thread, named_run)
    else:
        run = await state.chat.thread_active_run(user, thread)
    if run is None or (run.status is not RunStatus.ACTIVE and after_seq >= run.last_seq):
        return Response(status_code=204)
    if sent_last_event_id(request):
        RESUMES.inc()
    stream = AgUiStream(
        thread_id=thread.thread_id,
        run_id=client_run_id or run.id,
        service_run_id=run.id,
        version=version,
        tasks=await _tasks(state, user),
        after_seq=after_seq,
    )
    # From the run's first event even so: those up to `after_seq` rebuild the stream's state
    # (the message open at the cut, the task list) and are sent as nothing.
    return stream_response(stream, state.chat.follow(run, 0), state.settings)


_RESUME = Operation(
    "Follow a run of the thread as AG-UI events: after Last-Event-ID (that run), or the run "
    "going in it from its start (the resume a client's `connect()` calls)",
    stream=AG_UI_EVENTS,
    no_content="Nothing to send: no run is going in the thread, or the client has the end of "
    "the run it names.",
    params=(LAST_EVENT_ID, LAST_EVENT_ID_QUERY, _RUN_ID, _PROTOCOL_VERSION),
    path_params=_THREAD_ID,
    raises=(RunNotFound, TooManyFollowers),
)


async def cancel(request: Request) -> Response:
    """The cancelled run (`RunOut`), or 204 when nothing was going in that thread."""
    return await cancel_in_thread(request, _thread(request))


_CANCEL = Operation(
    "Stop the run going in the thread (the client's `abortRun()` only drops its connection)",
    answer=RunOut,
    no_content="No run was going in the thread.",
    path_params=_THREAD_ID,
    raises=(RunNotFound,),
)


routes = [
    ApiRoute("/ag-ui", run_agent, methods=["POST"], operation=_RUN_AGENT),
    ApiRoute("/ag-ui/{thread_id}/stream", resume, methods=["GET"], operation=_RESUME),
    ApiRoute("/ag-ui/{thread_id}/cancel", cancel, methods=["POST"], operation=_CANCEL),
]

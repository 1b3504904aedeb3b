"""HTTP endpoints. Everything under /api/{user_id} has passed `RequireUser` first.

Endpoints let domain errors (`ConversationNotFound`, `RunActive`, …) propagate: the table in
`app.errors` turns each into its status, code and message."""

from __future__ import annotations

import base64
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.chat import ChatService
from app.db.migrations import current_revision
from app.db.uow import Database
from app.domain import Conversation, Run, RunStatus, TaskChanges, TaskFilter
from app.events import Done, Error, LoggedEvent, Transcript, decode
from app.metrics import RESUMES, exposition, open_stream
from app.settings import Settings
from app.tasks import UserTasks
from app.web.errors import ApiError, error_response, invalid_request
from app.web.schemas import (
    ChatRequest,
    ConversationOut,
    MessageOut,
    RunOut,
    TaskCreate,
    TaskOut,
    TaskUpdate,
)
from app.web.streaming import event_stream, framing_for, parse_event_id

Body = TypeVar("Body", bound=BaseModel)

READY_TIMEOUT_SECONDS = 5
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_CONVERSATIONS = 200
MAX_MESSAGES = 1000
MAX_TASKS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _chat(request: Request) -> ChatService:
    chat: ChatService = request.app.state.chat
    return chat


def _user_id(request: Request) -> str:
    user_id: str = request.path_params["user_id"]
    return user_id


def _is_number(raw: str, *, digits: int) -> bool:
    """ASCII digits, at most `digits` of them (`str.isdigit()` alone also takes other scripts'
    digits and superscripts, which `int()` refuses or no column holds)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= digits


def _int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not _is_number(raw, digits=18):
        raise ApiError(404, "not_found", "No such resource.")
    return int(raw)


async def _read_body(
    request: Request, schema: type[Body], *, limit: int | None = None, **context: Any
) -> Body:
    limit = limit or _settings(request).max_body_bytes
    declared = request.headers.get("content-length", "")
    if _is_number(declared, digits=30) and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"The body must be at most {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"The body must be at most {limit} bytes.")
    try:
        return schema.model_validate_json(bytes(body), context=context)
    except ValidationError as error:
        raise invalid_request(error) from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isascii() and key.isprintable()
    ):
        raise ApiError(
            422,
            "invalid_request",
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
        )
    return key


async def _send(request: Request) -> tuple[str, AsyncIterator[list[LoggedEvent]]]:
    """The user's message sent: a new run, or, for an `Idempotency-Key` sent before, the run
    that send started. Its id, and its events from the first."""
    max_chars = _settings(request).max_message_chars
    key = _idempotency_key(request)
    body = await _read_body(request, ChatRequest, max_message_chars=max_chars)
    chat = _chat(request)
    started = await chat.begin(
        _user_id(request),
        body.message,
        body.conversation_id,
        cancel_active=body.cancel_active,
        idempotency_key=key,
    )
    if isinstance(started, Run):
        return started.id, chat.follow(started, 0)
    return started.run_id, chat.start(started).subscribe(0).batches()


def _last_event_id(request: Request, run_id: str | None = None) -> tuple[str | None, int]:
    """The run and sequence number a client asks to resume after: `Last-Event-ID`, or the
    `last_event_id` parameter; when `run_id` is given, the id must name that run, or none."""
    raw = _raw_last_event_id(request)
    if not raw:
        return run_id, 0
    try:
        named_run, seq = parse_event_id(raw)
        if run_id is not None and named_run not in ("", run_id):
            raise ValueError("another run's event id")
    except ValueError:
        raise ApiError(
            422, "invalid_request", "last_event_id: not an event id of this run"
        ) from None
    return named_run or run_id, seq


def _raw_last_event_id(request: Request) -> str | None:
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


async def _find_run(request: Request, run_id: str) -> Run:
    return await _chat(request).get_run(_user_id(request), run_id)


def _event_stream(
    request: Request,
    run_id: str,
    batches: AsyncIterator[list[LoggedEvent]],
    after_seq: int,
    source: str = "followed",
) -> Response:
    settings = _settings(request)
    return event_stream(
        run_id,
        open_stream(source, batches),
        framing=framing_for(request.headers.get("accept")),
        after_seq=after_seq,
        ping_seconds=settings.sse_ping_seconds,
        send_timeout_seconds=settings.send_timeout_seconds,
        shutdown_grace_seconds=settings.stream_close_seconds,
    )


def _follow(request: Request, run: Run, after_seq: int) -> Response:
    if _raw_last_event_id(request):
        RESUMES.inc()
    return _event_stream(request, run.id, _chat(request).follow(run, after_seq), after_seq)


def _reconnect(request: Request, run: Run, after_seq: int) -> Response:
    """A GET that resumes a run. Once the client has the run's final event, 204 No Content:
    the one answer that makes an EventSource stop reconnecting (an empty 200 would bring it
    back every few seconds, for ever)."""
    if run.status is not RunStatus.ACTIVE and after_seq >= run.last_seq:
        return Response(status_code=204)
    return _follow(request, run, after_seq)


async def chat_stream(request: Request) -> Response:
    if request.headers.get("last-event-id"):
        # fetch-event-source retrying its POST: resume the run it was following, never start a
        # second turn. Past the run's end this is an empty stream, not a 204, which that
        # client would take for a failure and retry for ever.
        run_id, after_seq = _last_event_id(request)
        return _follow(request, await _find_run(request, run_id or ""), after_seq)
    run_id, batches = await _send(request)
    return _event_stream(request, run_id, batches, 0, "local")


async def chat(request: Request) -> Response:
    run_id, batches = await _send(request)
    transcript = Transcript()
    async for batch in batches:
        for logged in batch:
            event = decode(logged)
            transcript.record(event)
            if isinstance(event, Error):
                status = 503 if event.retryable else 502
                return error_response(status, event.code, event.message, retryable=event.retryable)
            if isinstance(event, Done):
                return JSONResponse(
                    {
                        "conversation_id": event.conversation_id,
                        "message_id": event.message_id,
                        "run_id": run_id,
                        "response": transcript.content,
                        "tool_calls": [call.as_dict() for call in transcript.tool_calls.values()],
                        "usage": event.usage,
                    }
                )
    # Only a replay can get here: the run it names ended, and its log has been pruned since.
    raise ApiError(410, "replay_expired", "That send's answer is no longer kept to be replayed.")


async def run_events(request: Request) -> Response:
    run = await _find_run(request, request.path_params["run_id"])  # 404 before anything else
    _, after_seq = _last_event_id(request, run.id)
    return _reconnect(request, run, after_seq)


async def get_run(request: Request) -> Response:
    return JSONResponse(RunOut.of(await _find_run(request, request.path_params["run_id"])))


async def cancel_run(request: Request) -> Response:
    await _find_run(request, request.path_params["run_id"])  # 404 before anything else
    run = await _chat(request).cancel(_user_id(request), request.path_params["run_id"])
    return JSONResponse(RunOut.of(run))


async def conversation_stream(request: Request) -> Response:
    conversation_id = _int_param(request, "conversation_id")
    active = await _chat(request).active_run(_user_id(request), conversation_id)  # or 404
    named_run, after_seq = _last_event_id(request)  # or 422, whether or not a run is going
    if active is None:
        return Response(status_code=204)
    if named_run not in (None, active.id):
        after_seq = 0  # the client saw an earlier run of this conversation end: this one whole
    return _reconnect(request, active, after_seq)


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit", str(default))
    if not _is_number(raw, digits=6) or not 1 <= int(raw) <= maximum:
        raise ApiError(422, "invalid_request", f"limit: must be a whole number from 1 to {maximum}")
    return int(raw)


def _id_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _is_number(raw, digits=18):
        raise ApiError(422, "invalid_request", f"{name}: must be an id from the previous page")
    return int(raw)


def _conversation_cursor(conversation: Conversation) -> str:
    """Where the next page of conversations starts: opaque to clients."""
    moment = (conversation.updated_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{moment}.{conversation.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_conversation_cursor(request: Request) -> tuple[datetime, int] | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    try:
        moment, _, conversation_id = (
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii").partition(".")
        )
        if not (_is_number(moment, digits=18) and _is_number(conversation_id, digits=18)):
            raise ValueError(raw)
        when = _EPOCH + timedelta(microseconds=int(moment))
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        raise ApiError(
            422, "invalid_request", "before: must be a next_before from the previous page"
        ) from None
    return when, int(conversation_id)


async def list_conversations(request: Request) -> Response:
    """A page of the user's conversations, the most recently active first; `next_before` is
    the cursor of the next page (`?before=`), null on the last."""
    limit = _limit(request, 50, MAX_CONVERSATIONS)
    before = _read_conversation_cursor(request)
    conversations = await _chat(request).conversations(
        _user_id(request), limit=limit + 1, before=before
    )
    page, more = conversations[:limit], len(conversations) > limit
    return JSONResponse(
        {
            "conversations": [ConversationOut.of(c) for c in page],
            "next_before": _conversation_cursor(page[-1]) if more else None,
        }
    )


async def list_messages(request: Request) -> Response:
    """The conversation and its last messages, oldest first; `next_before` is the id to ask
    the earlier ones with (`?before=`), null when there are none."""
    conversation_id = _int_param(request, "conversation_id")
    limit = _limit(request, 200, MAX_MESSAGES)
    conversation, messages = await _chat(request).messages(
        _user_id(request), conversation_id, limit=limit + 1, before_id=_id_query(request, "before")
    )
    page, more = messages[-limit:], len(messages) > limit
    return JSONResponse(
        {
            "conversation": ConversationOut.of(conversation),
            "messages": [MessageOut.of(message) for message in page],
            "next_before": page[0].id if more else None,
        }
    )


async def delete_conversation(request: Request) -> Response:
    conversation_id = _int_param(request, "conversation_id")
    await _chat(request).delete_conversation(_user_id(request), conversation_id)
    return Response(status_code=204)


def _tasks(request: Request) -> UserTasks:
    return UserTasks(_database(request), _user_id(request))


async def list_tasks(request: Request) -> Response:
    """A page of the user's tasks in the order they were added; `next_after` is the id to ask
    the next page with (`?after=`), null on the last."""
    raw_status = request.query_params.get("status", "all")
    try:
        status = TaskFilter(raw_status)
    except ValueError:
        raise ApiError(
            422, "invalid_request", "status: must be one of pending, completed, all"
        ) from None
    limit = _limit(request, 200, MAX_TASKS)
    after_id = _id_query(request, "after") or 0
    tasks = await _tasks(request).list(status, limit=limit + 1, after_id=after_id)
    page, more = tasks[:limit], len(tasks) > limit
    return JSONResponse(
        {
            "tasks": [TaskOut.of(task) for task in page],
            "next_after": page[-1].id if more else None,
        }
    )


async def create_task(request: Request) -> Response:
    body = await _read_body(request, TaskCreate)
    task = await _tasks(request).add(body.title, body.description)
    return JSONResponse(TaskOut.of(task), status_code=201)


async def update_task(request: Request) -> Response:
    task_id = _int_param(request, "task_id")
    body = await _read_body(request, TaskUpdate)
    changes = TaskChanges(title=body.title, description=body.description, completed=body.completed)
    task = await _tasks(request).update(task_id, changes)
    return JSONResponse(TaskOut.of(task))


async def delete_task(request: Request) -> Response:
    task_id = _int_param(request, "task_id")
    await _tasks(request).delete(task_id)
    return Response(status_code=204)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    expected: str | None = request.app.state.head_revision
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            async with _database(request).unit_of_work() as uow:
                revision = await current_revision(uow.connection)
    except (OSError, TimeoutError, SQLAlchemyError):
        return error_response(503, "database_unavailable", "The database cannot be reached.")
    if revision != expected:
        return error_response(
            503,
            "schema_outdated",
            "The database schema is not at the latest migration.",
            revision=revision,
            expected=expected,
        )
    return JSONResponse({"status": "ready", "revision": revision})


async def metrics(request: Request) -> Response:
    """The metrics in the Prometheus text format; with METRICS_TOKEN set, for its bearer only."""
    token = _settings(request).metrics_token
    given = request.headers.get("authorization", "")
    if token is not None and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error_response(
            401,
            "not_authenticated",
            "Send Authorization: Bearer with METRICS_TOKEN.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body, content_type = exposition()
    return Response(body, headers={"Content-Type": content_type})


user_routes = [
    Route("/chat/stream", chat_stream, methods=["POST"]),
    # The seed's server sketch has both; its clients call either.
    Route("/chat/stream-tools", chat_stream, methods=["POST"]),
    Route("/chat", chat, methods=["POST"]),
    Route("/conversations", list_conversations, methods=["GET"]),
    Route("/conversations/{conversation_id}/messages", list_messages, methods=["GET"]),
    Route("/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/conversations/{conversation_id}/stream", conversation_stream, methods=["GET"]),
    Route("/runs/{run_id}", get_run, methods=["GET"]),
    Route("/runs/{run_id}/events", run_events, methods=["GET"]),
    Route("/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks/{task_id}", update_task, methods=["PATCH"]),
    Route("/tasks/{task_id}", delete_task, methods=["DELETE"]),
]

service_routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

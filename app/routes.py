"""HTTP endpoints. Everything under /api/{user_id} has passed `RequireUser` first."""

from __future__ import annotations

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
from app.domain import ChatTurn, ConversationNotFound, TaskChanges, TaskFilter, TaskNotFound
from app.errors import ApiError, error_response, invalid_request
from app.events import Done, Error, Text, ToolCallEvent, ToolResultEvent
from app.schemas import ChatRequest, ConversationOut, MessageOut, TaskCreate, TaskOut, TaskUpdate
from app.settings import Settings
from app.sse import event_stream
from app.tasks import UserTasks

Body = TypeVar("Body", bound=BaseModel)

READY_TIMEOUT_SECONDS = 5
MAX_CONVERSATIONS = 200


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


def _int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", "No such resource.")
    return int(raw)


async def _read_body(request: Request, schema: type[Body], **context: Any) -> Body:
    limit = _settings(request).max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
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


async def _begin_turn(request: Request) -> ChatTurn:
    settings = _settings(request)
    body = await _read_body(request, ChatRequest, max_message_chars=settings.max_message_chars)
    try:
        return await _chat(request).begin(_user_id(request), body.message, body.conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from None


async def chat_stream(request: Request) -> Response:
    turn = await _begin_turn(request)
    events = _chat(request).start(turn)
    return event_stream(events, ping_seconds=_settings(request).sse_ping_seconds)


async def chat(request: Request) -> Response:
    turn = await _begin_turn(request)
    text: list[str] = []
    tool_calls: dict[str, dict[str, Any]] = {}
    with _chat(request).start(turn) as events:
        async for event in events:
            if isinstance(event, Text):
                text.append(event.content)
            elif isinstance(event, ToolCallEvent):
                tool_calls[event.call_id] = {
                    "call_id": event.call_id,
                    "name": event.name,
                    "arguments": event.arguments,
                    "output": None,
                }
            elif isinstance(event, ToolResultEvent) and event.call_id in tool_calls:
                tool_calls[event.call_id]["output"] = event.output
            elif isinstance(event, Error):
                status = 503 if event.retryable else 502
                return error_response(status, event.code, event.message, retryable=event.retryable)
            elif isinstance(event, Done):
                return JSONResponse(
                    {
                        "conversation_id": event.conversation_id,
                        "message_id": event.message_id,
                        "response": "".join(text),
                        "tool_calls": list(tool_calls.values()),
                        "usage": event.usage,
                    }
                )
    raise RuntimeError("a chat turn ended without done or error")


async def list_conversations(request: Request) -> Response:
    raw_limit = request.query_params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_CONVERSATIONS:
        raise ApiError(
            422, "invalid_request", f"limit: must be a whole number from 1 to {MAX_CONVERSATIONS}"
        )
    conversations = await _chat(request).conversations(_user_id(request), limit=int(raw_limit))
    return JSONResponse({"conversations": [ConversationOut.of(c) for c in conversations]})


async def list_messages(request: Request) -> Response:
    conversation_id = _int_param(request, "conversation_id")
    try:
        conversation, messages = await _chat(request).messages(_user_id(request), conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from None
    return JSONResponse(
        {
            "conversation": ConversationOut.of(conversation),
            "messages": [MessageOut.of(message) for message in messages],
        }
    )


async def delete_conversation(request: Request) -> Response:
    conversation_id = _int_param(request, "conversation_id")
    try:
        await _chat(request).delete_conversation(_user_id(request), conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from None
    return Response(status_code=204)


def _tasks(request: Request) -> UserTasks:
    return UserTasks(_database(request).unit_of_work, _user_id(request))


async def list_tasks(request: Request) -> Response:
    raw_status = request.query_params.get("status", "all")
    try:
        status = TaskFilter(raw_status)
    except ValueError:
        raise ApiError(
            422, "invalid_request", "status: must be one of pending, completed, all"
        ) from None
    tasks = await _tasks(request).list(status)
    return JSONResponse({"tasks": [TaskOut.of(task) for task in tasks]})


async def create_task(request: Request) -> Response:
    body = await _read_body(request, TaskCreate)
    task = await _tasks(request).add(body.title, body.description)
    return JSONResponse(TaskOut.of(task), status_code=201)


async def update_task(request: Request) -> Response:
    task_id = _int_param(request, "task_id")
    body = await _read_body(request, TaskUpdate)
    changes = TaskChanges(title=body.title, description=body.description, completed=body.completed)
    try:
        task = await _tasks(request).update(task_id, changes)
    except TaskNotFound:
        raise ApiError(404, "task_not_found", "No such task.") from None
    return JSONResponse(TaskOut.of(task))


async def delete_task(request: Request) -> Response:
    task_id = _int_param(request, "task_id")
    try:
        await _tasks(request).delete(task_id)
    except TaskNotFound:
        raise ApiError(404, "task_not_found", "No such task.") from None
    return Response(status_code=204)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    expected: str | None = request.app.state.head_revision
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            async with _database(request).engine.connect() as connection:
                revision = await current_revision(connection)
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


user_routes = [
    Route("/chat/stream", chat_stream, methods=["POST"]),
    Route("/chat", chat, methods=["POST"]),
    Route("/conversations", list_conversations, methods=["GET"]),
    Route("/conversations/{conversation_id}/messages", list_messages, methods=["GET"]),
    Route("/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks/{task_id}", update_task, methods=["PATCH"]),
    Route("/tasks/{task_id}", delete_task, methods=["DELETE"]),
]

service_routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]

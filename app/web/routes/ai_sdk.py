"""The Vercel AI SDK's endpoints, under /api/{user_id}/ai/chat: `useChat` with
`DefaultChatTransport` talks to the service with no adapter code. `app.ai_sdk` is the protocol;
these are the same runs as `/chat/stream` (`ChatService.begin`, `start`, `follow`), framed for
the SDK.

- `POST /ai/chat` takes the transport's body. Its chat `id` names a conversation
  (`ChatService.ai_chat_conversation`, a new one the first time), so the next send with that id
  continues it. A retry of the same send (the same message id) joins the run the first one
  started instead of starting another (`AiChatRequest.idempotency_key`; an `Idempotency-Key`
  header, when sent, is used instead). The body may carry the whole history the SDK keeps, of
  which only the last message is read: it may be up to `MAX_BODY_BYTES`.
  `trigger: "regenerate-message"` is refused (422 `regenerate_unsupported`): the stored history
  is append-only, and an answer has no "superseded" state to keep the old one in.
- `GET /ai/chat/{id}/stream` is `useChat({resume: true})`'s reconnect: 204 when no run is
  going in that chat, else the run from its first event (a replay).
- `POST /ai/chat/{id}/cancel` stops the run going in that chat, as `POST /runs/{id}/cancel`
  does: the SDK's `stop()` only aborts its fetch, and the run goes on without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.domain import RegenerateUnsupported, Run
from app.events import LoggedEvent
from app.metrics import open_stream
from app.protocols.ai_sdk import HEADERS, PING, AiChatRequest, chat_id_is_valid, ui_message_stream
from app.web.errors import ApiError
from app.web.routes.runs import _chat, _idempotency_key, _read_body, _settings, _user_id
from app.web.schemas import RunOut
from app.web.streaming import byte_stream

MAX_BODY_BYTES = 1024 * 1024


def _ui_stream(
    request: Request, batches: AsyncIterator[list[LoggedEvent]], source: str = "followed"
) -> Response:
    """The run's events as the SDK's stream, counted in `todo_chat_streams_open` as every
    stream is (`local`: the turn this request started)."""
    settings = _settings(request)
    return byte_stream(
        ui_message_stream(open_stream(source, batches)),
        ping=PING,
        ping_seconds=settings.sse_ping_seconds,
        send_timeout_seconds=settings.send_timeout_seconds,
        shutdown_grace_seconds=settings.stream_close_seconds,
        headers=HEADERS,
    )


def _chat_id(request: Request) -> str:
    chat_id: str = request.path_params["chat_id"]
    if not chat_id_is_valid(chat_id):
        raise ApiError(404, "not_found", "No such resource.")
    return chat_id


async def ai_chat(request: Request) -> Response:
    header_key = _idempotency_key(request)
    max_chars = _settings(request).max_message_chars
    body = await _read_body(
        request, AiChatRequest, limit=MAX_BODY_BYTES, max_message_chars=max_chars
    )
    if body.trigger == "regenerate-message":
        raise RegenerateUnsupported
    chat, user_id = _chat(request), _user_id(request)
    conversation_id = await chat.ai_chat_conversation(user_id, body.id, body.text)
    started = await chat.begin(
        user_id, body.text, conversation_id, idempotency_key=header_key or body.idempotency_key
    )
    if isinstance(started, Run):
        return _ui_stream(request, chat.follow(started, 0))
    return _ui_stream(request, chat.start(started).subscribe(0).batches(), "local")


async def ai_chat_stream(request: Request) -> Response:
    chat_id = _chat_id(request)
    chat = _chat(request)
    active = await chat.ai_chat_active_run(_user_id(request), chat_id)
    if active is None:
        return Response(status_code=204)
    return _ui_stream(request, chat.follow(active, 0))


async def ai_chat_cancel(request: Request) -> Response:
    """The cancelled run (`RunOut`), or 204 when nothing was going in that chat."""
    chat_id = _chat_id(request)
    chat, user_id = _chat(request), _user_id(request)
    active = await chat.ai_chat_active_run(user_id, chat_id)
    if active is None:
        return Response(status_code=204)
    return JSONResponse(RunOut.of(await chat.cancel(user_id, active.id)))


ai_routes = [
    Route("/ai/chat", ai_chat, methods=["POST"]),
    Route("/ai/chat/{chat_id}/stream", ai_chat_stream, methods=["GET"]),
    Route("/ai/chat/{chat_id}/cancel", ai_chat_cancel, methods=["POST"]),
]

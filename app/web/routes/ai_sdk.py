"""The Vercel AI SDK's endpoints, under /api/{user_id}/ai/chat: `useChat` with
`DefaultChatTransport` talks to the service with no adapter code. `app.protocols.ai_sdk` is the
protocol; these are the same runs as `/chat/stream` (`ChatService.send`, `follow`), framed for
the SDK by the same transport.

- `POST /ai/chat` takes the transport's body. Its chat `id` is a thread (`app.domain.Thread`)
  naming a conversation, a new one the first time, so the next send with that id continues it.
  A retry of the same send (the same message id) joins the run the first one started instead of
  starting another (`AiChatRequest.idempotency_key`; an `Idempotency-Key` header, when sent, is
  used instead). The body may carry the whole history the SDK keeps, of which only the last
  message is read: it may be up to `MAX_BODY_BYTES`. `trigger: "regenerate-message"` is refused
  (422 `regenerate_unsupported`): the stored history is append-only, and an answer has no
  "superseded" state to keep the old one in.
- `GET /ai/chat/{id}/stream` is `useChat({resume: true})`'s reconnect: 204 when no run is
  going in that chat, else the run from its first event (a replay).
- `POST /ai/chat/{id}/cancel` stops the run going in that chat, as `POST /runs/{id}/cancel`
  does: the SDK's `stop()` only aborts its fetch, and the run goes on without it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.domain import RegenerateUnsupported, RunNotFound, Thread, TooManyFollowers
from app.protocols.ai_sdk import (
    DONE,
    PROTOCOL,
    AiChatRequest,
    UiMessageStream,
)
from app.protocols.client_input import CLIENT_ID_SCHEMA
from app.web.openapi.operation import (
    BODY_ERRORS,
    IDEMPOTENCY_KEY,
    TURN_ERRORS,
    ApiRoute,
    Operation,
    Stream,
    stream_content,
)
from app.web.requests import idempotency_key, read_body, thread_in_path, user_id
from app.web.routes.threads import cancel_in_thread
from app.web.schemas import RunOut
from app.web.state import state_of
from app.web.streaming import stream_response

MAX_BODY_BYTES = 1024 * 1024

UI_CHUNKS = Stream(
    "The chunks",
    stream_content(
        {
            "type": "string",
            "description": (
                "One UI message chunk as JSON (`start`, `text-delta`, `tool-output-available`, "
                "`finish`, `error`…: the `ai` package's `UIMessageChunk`), then `[DONE]` after "
                "the run's last (app/protocols/ai_sdk.py)."
            ),
        },
        'data: {"type":"text-delta","id":"text-2","delta":"Added"}\n\n' + DONE.decode(),
    ),
)
"""The Vercel AI SDK's UI message stream, described in words: the `ai` package is its schema,
and tests/clients runs that package against us."""

_CHAT_ID = {"chat_id": {**CLIENT_ID_SCHEMA, "description": "The `id` the SDK's chat was given."}}


def _thread(request: Request) -> Thread:
    return thread_in_path(request, PROTOCOL, "chat_id")


async def ai_chat(request: Request) -> Response:
    state = state_of(request)
    header_key = idempotency_key(request)
    body = await read_body(
        request,
        AiChatRequest,
        limit=MAX_BODY_BYTES,
        max_message_chars=state.settings.max_message_chars,
    )
    if body.trigger == "regenerate-message":
        raise RegenerateUnsupported
    sent = await state.chat.send(
        user_id(request),
        body.text,
        thread=Thread(PROTOCOL, body.id),
        idempotency_key=header_key or body.idempotency_key,
    )
    source = "local" if sent.started else "followed"
    return stream_response(UiMessageStream(), sent.batches, state.settings, source=source)


_AI_CHAT = Operation(
    "One chat turn for the Vercel AI SDK's `useChat` (its `DefaultChatTransport`'s body), as "
    "the SDK's UI message stream",
    body=AiChatRequest,
    stream=UI_CHUNKS,
    params=(IDEMPOTENCY_KEY,),
    raises=(*TURN_ERRORS, TooManyFollowers, RegenerateUnsupported),
    errors=BODY_ERRORS,
)


async def ai_chat_stream(request: Request) -> Response:
    thread = _thread(request)
    state = state_of(request)
    active = await state.chat.thread_active_run(user_id(request), thread)
    if active is None:
        return Response(status_code=204)
    return stream_response(UiMessageStream(), state.chat.follow(active, 0), state.settings)


_AI_CHAT_STREAM = Operation(
    "The run going in that chat, from its first event, as the SDK's stream (`useChat` with "
    "`resume: true`)",
    stream=UI_CHUNKS,
    no_content="No run is going in that chat.",
    path_params=_CHAT_ID,
    raises=(TooManyFollowers,),
)


async def ai_chat_cancel(request: Request) -> Response:
    """The cancelled run (`RunOut`), or 204 when nothing was going in that chat."""
    return await cancel_in_thread(request, _thread(request))


_AI_CHAT_CANCEL = Operation(
    "Stop the run going in that chat (the SDK's `stop()` only aborts its fetch)",
    answer=RunOut,
    no_content="No run was going in that chat.",
    path_params=_CHAT_ID,
    raises=(RunNotFound,),
)


routes = [
    ApiRoute("/ai/chat", ai_chat, methods=["POST"], operation=_AI_CHAT),
    ApiRoute(
        "/ai/chat/{chat_id}/stream", ai_chat_stream, methods=["GET"], operation=_AI_CHAT_STREAM
    ),
    ApiRoute(
        "/ai/chat/{chat_id}/cancel", ai_chat_cancel, methods=["POST"], operation=_AI_CHAT_CANCEL
    ),
]

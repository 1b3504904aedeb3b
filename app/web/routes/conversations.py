"""A user's conversations: a page of them, one's messages, its run in progress, deleting one."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.domain import Conversation, ConversationNotFound, RunActive
from app.web.errors import ApiError
from app.web.openapi.operation import (
    ID_SCHEMA,
    ApiRoute,
    Operation,
    Param,
    id_cursor,
    limit_param,
)
from app.web.requests import (
    ID_DIGITS,
    id_in_path,
    id_in_query,
    is_number,
    last_event_id,
    page_size,
    user_id,
)
from app.web.routes.runs import reconnect, reconnecting
from app.web.schemas import ConversationOut, ConversationPage, MessageOut, MessagePage
from app.web.state import state_of

MAX_CONVERSATIONS = 200
MAX_MESSAGES = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONVERSATION_ID = {"conversation_id": ID_SCHEMA}


def _cursor(conversation: Conversation) -> str:
    """Where the next page of conversations starts: opaque to clients."""
    moment = (conversation.updated_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{moment}.{conversation.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(request: Request) -> tuple[datetime, int] | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    try:
        moment, _, conversation_id = (
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii").partition(".")
        )
        if not (
            is_number(moment, digits=ID_DIGITS) and is_number(conversation_id, digits=ID_DIGITS)
        ):
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
    limit = page_size(request, 50, MAX_CONVERSATIONS)
    before = _read_cursor(request)
    conversations = await state_of(request).chat.conversations(
        user_id(request), limit=limit + 1, before=before
    )
    page, more = conversations[:limit], len(conversations) > limit
    return JSONResponse(
        {
            "conversations": [ConversationOut.of(c) for c in page],
            "next_before": _cursor(page[-1]) if more else None,
        }
    )


_LIST_CONVERSATIONS = Operation(
    "A page of the user's conversations, the most recently active first",
    answer=ConversationPage,
    params=(
        limit_param(50, MAX_CONVERSATIONS),
        Param(
            "before",
            "query",
            {"type": "string", "minLength": 1},
            "`next_before` of the previous page (opaque).",
        ),
    ),
)


async def list_messages(request: Request) -> Response:
    """The conversation and its last messages, oldest first; `next_before` is the id to ask
    the earlier ones with (`?before=`), null when there are none."""
    conversation_id = id_in_path(request, "conversation_id")
    limit = page_size(request, 200, MAX_MESSAGES)
    conversation, messages = await state_of(request).chat.messages(
        user_id(request), conversation_id, limit=limit + 1, before_id=id_in_query(request, "before")
    )
    page, more = messages[-limit:], len(messages) > limit
    return JSONResponse(
        {
            "conversation": ConversationOut.of(conversation),
            "messages": [MessageOut.of(message) for message in page],
            "next_before": page[0].id if more else None,
        }
    )


_LIST_MESSAGES = Operation(
    "A conversation and its last messages, oldest first",
    answer=MessagePage,
    params=(
        limit_param(200, MAX_MESSAGES),
        id_cursor("before", "`next_before` of the previous page: the messages before it."),
    ),
    path_params=_CONVERSATION_ID,
    raises=(ConversationNotFound,),
)


async def delete_conversation(request: Request) -> Response:
    conversation_id = id_in_path(request, "conversation_id")
    await state_of(request).chat.delete_conversation(user_id(request), conversation_id)
    return Response(status_code=204)


_DELETE_CONVERSATION = Operation(
    "Delete a conversation and its messages",
    status=204,
    path_params=_CONVERSATION_ID,
    raises=(ConversationNotFound, RunActive),
)


async def conversation_stream(request: Request) -> Response:
    conversation_id = id_in_path(request, "conversation_id")
    active = await state_of(request).chat.active_run(user_id(request), conversation_id)  # or 404
    named_run, after_seq = last_event_id(request)  # or 422, whether or not a run is going
    if active is None:
        return Response(status_code=204)
    if named_run not in (None, active.id):
        after_seq = 0  # the client saw an earlier run of this conversation end: this one whole
    return reconnect(request, active, after_seq)


_CONVERSATION_STREAM = reconnecting(
    "The conversation's run in progress, as a stream",
    "No run is in progress, or the client has its last event.",
    raises=(ConversationNotFound,),
    path_params=_CONVERSATION_ID,
)


routes = [
    ApiRoute("/conversations", list_conversations, methods=["GET"], operation=_LIST_CONVERSATIONS),
    ApiRoute(
        "/conversations/{conversation_id}/messages",
        list_messages,
        methods=["GET"],
        operation=_LIST_MESSAGES,
    ),
    ApiRoute(
        "/conversations/{conversation_id}",
        delete_conversation,
        methods=["DELETE"],
        operation=_DELETE_CONVERSATION,
    ),
    ApiRoute(
        "/conversations/{conversation_id}/stream",
        conversation_stream,
        methods=["GET"],
        operation=_CONVERSATION_STREAM,
    ),
]

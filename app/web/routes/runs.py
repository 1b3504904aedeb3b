"""A chat turn and its run, in our own stream (`app.protocols.native`): send a message (streamed,
or answered as one JSON object), read a run, follow or resume its events, cancel it.

Like every routes module under /api/{user_id}, these have passed `RequireUser` first, and let
domain errors (`ConversationNotFound`, `RunActive`, …) propagate: the table in
`app.web.errors` turns each into its status, code and message.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.chat import Sent
from app.domain import Run, RunNotFound, RunStatus, TooManyFollowers
from app.events import ERROR_MESSAGES, Done, Error, Transcript, decode
from app.metrics import RESUMES
from app.protocols.native import framing_for
from app.web.errors import ApiError, error_response
from app.web.openapi.operation import (
    BODY_ERRORS,
    EVENTS,
    IDEMPOTENCY_KEY,
    LAST_EVENT_ID,
    RESUME_PARAMS,
    TURN_ERRORS,
    ApiRoute,
    Operation,
    Schema,
)
from app.web.requests import (
    idempotency_key,
    last_event_id,
    read_body,
    sent_last_event_id,
    user_id,
)
from app.web.schemas import ChatRequest, ChatResponse, RunOut
from app.web.state import state_of
from app.web.streaming import Batches, stream_response


async def _send(request: Request) -> Sent:
    """The user's message sent (`ChatService.send`): a new run, or, for an `Idempotency-Key`
    sent before, the run that send started."""
    state = state_of(request)
    key = idempotency_key(request)
    body = await read_body(request, ChatRequest, max_message_chars=state.settings.max_message_chars)
    return await state.chat.send(
        user_id(request),
        body.message,
        conversation_id=body.conversation_id,
        cancel_active=body.cancel_active,
        idempotency_key=key,
    )


def event_stream(
    request: Request, run_id: str, batches: Batches, after_seq: int, *, source: str = "followed"
) -> Response:
    """A run's events after `after_seq`, in the framing the client's `Accept` asks for."""
    framing = framing_for(request.headers.get("accept"))(run_id, after_seq)
    return stream_response(framing, batches, state_of(request).settings, source=source)


def follow(request: Request, run: Run, after_seq: int) -> Response:
    if sent_last_event_id(request):
        RESUMES.inc()
    batches = state_of(request).chat.follow(run, after_seq)
    return event_stream(request, run.id, batches, after_seq)


def reconnect(request: Request, run: Run, after_seq: int) -> Response:
    """A GET that resumes a run. Once the client has the run's final event, 204 No Content:
    the one answer that makes an EventSource stop reconnecting (an empty 200 would bring it
    back every few seconds, for ever)."""
    if run.status is not RunStatus.ACTIVE and after_seq >= run.last_seq:
        return Response(status_code=204)
    return follow(request, run, after_seq)


def reconnecting(
    summary: str,
    no_content: str,
    *,
    raises: tuple[type[Exception], ...],
    path_params: Mapping[str, Schema] | None = None,
) -> Operation:
    """The operation of a GET that answers with `reconnect`: the run's events after the client's
    Last-Event-ID (422 if it is not one), or 204; 429 past the user's followed streams."""
    return Operation(
        summary,
        stream=EVENTS,
        no_content=no_content,
        params=RESUME_PARAMS,
        path_params=path_params or {},
        raises=(*raises, TooManyFollowers),
    )


async def _find_run(request: Request, run_id: str) -> Run:
    return await state_of(request).chat.get_run(user_id(request), run_id)


async def chat_stream(request: Request) -> Response:
    if request.headers.get("last-event-id"):
        # fetch-event-source retrying its POST: resume the run it was following, never start a
        # second turn. Past the run's end this is an empty stream, not a 204, which that
        # client would take for a failure and retry for ever.
        run_id, after_seq = last_event_id(request)
        return follow(request, await _find_run(request, run_id or ""), after_seq)
    sent = await _send(request)
    source = "local" if sent.started else "followed"
    return event_stream(request, sent.run_id, sent.batches, 0, source=source)


_CHAT_STREAM = Operation(
    "One chat turn as a stream of events (or, with Last-Event-ID, a run resumed)",
    body=ChatRequest,
    stream=EVENTS,
    params=(IDEMPOTENCY_KEY, LAST_EVENT_ID),
    raises=(*TURN_ERRORS, RunNotFound, TooManyFollowers),
    errors=BODY_ERRORS,
)


async def chat(request: Request) -> Response:
    sent = await _send(request)
    transcript = Transcript()
    async for batch in sent.batches:
        for logged in batch:
            event = decode(logged)
            transcript.record(event)
            if isinstance(event, Error):
                if event.code == "events_missing" and not sent.started:
                    break  # a replay of a run whose log no longer holds it whole: 410 below
                status = 503 if event.retryable else 502
                return error_response(status, event.code, event.message, retryable=event.retryable)
            if isinstance(event, Done):
                return JSONResponse(
                    {
                        "conversation_id": event.conversation_id,
                        "message_id": event.message_id,
                        "run_id": sent.run_id,
                        "response": transcript.content,
                        "tool_calls": [call.as_dict() for call in transcript.tool_calls.values()],
                        "usage": event.usage,
                    }
                )
    # Only a replay can get here: the run it names ended, and its log has been pruned since
    # (its reader is told `events_missing`), or lost part of it.
    raise ApiError(410, "replay_expired", "That send's answer is no longer kept to be replayed.")


_CHAT = Operation(
    "One chat turn as one JSON object",
    body=ChatRequest,
    answer=ChatResponse,
    params=(IDEMPOTENCY_KEY,),
    raises=(*TURN_ERRORS, TooManyFollowers),
    errors=(
        *BODY_ERRORS,
        (410, "replay_expired"),
        *((502, code) for code in ERROR_MESSAGES),
        *((503, code) for code in ERROR_MESSAGES),
    ),
)


async def run_events(request: Request) -> Response:
    run = await _find_run(request, request.path_params["run_id"])  # 404 before anything else
    _, after_seq = last_event_id(request, run.id)
    return reconnect(request, run, after_seq)


_RUN_EVENTS = reconnecting(
    "A run's events after Last-Event-ID, then followed live until its last",
    "The client has the last event of the ended run.",
    raises=(RunNotFound,),
)


async def get_run(request: Request) -> Response:
    return JSONResponse(RunOut.of(await _find_run(request, request.path_params["run_id"])))


_GET_RUN = Operation("A run: its status and last event", answer=RunOut, raises=(RunNotFound,))


async def cancel_run(request: Request) -> Response:
    await _find_run(request, request.path_params["run_id"])  # 404 before anything else
    run = await state_of(request).chat.cancel(user_id(request), request.path_params["run_id"])
    return JSONResponse(RunOut.of(run))


_CANCEL_RUN = Operation(
    "Stop a run (idempotent) and wait for its end", answer=RunOut, raises=(RunNotFound,)
)


routes = [
    ApiRoute("/chat/stream", chat_stream, methods=["POST"], operation=_CHAT_STREAM),
    # The seed's server sketch has both; its clients call either.
    ApiRoute("/chat/stream-tools", chat_stream, methods=["POST"], operation=_CHAT_STREAM),
    ApiRoute("/chat", chat, methods=["POST"], operation=_CHAT),
    ApiRoute("/runs/{run_id}", get_run, methods=["GET"], operation=_GET_RUN),
    ApiRoute("/runs/{run_id}/events", run_events, methods=["GET"], operation=_RUN_EVENTS),
    ApiRoute("/runs/{run_id}/cancel", cancel_run, methods=["POST"], operation=_CANCEL_RUN),
]

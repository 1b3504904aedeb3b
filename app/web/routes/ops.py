"""What operators and their tools ask: whether the process is up (`/health`), whether it can
serve (`/ready`: the database answers, at the schema's latest migration, and so does the event
log where it is kept apart: Redis), and its metrics."""

from __future__ import annotations

import hmac

import anyio
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.db.migrations import current_revision
from app.domain import EventLogUnavailable
from app.metrics import exposition
from app.web.errors import error_response
from app.web.openapi.operation import ApiRoute, Operation
from app.web.state import state_of

READY_TIMEOUT_SECONDS = 5


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


_HEALTH = Operation("200 while the process is up")


async def ready(request: Request) -> Response:
    state = state_of(request)
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            async with state.database.unit_of_work() as uow:
                revision = await current_revision(uow.connection)
    except (OSError, TimeoutError, SQLAlchemyError):
        return error_response(503, "database_unavailable", "The database cannot be reached.")
    if revision != state.head_revision:
        return error_response(
            503,
            "schema_outdated",
            "The database schema is not at the latest migration.",
            revision=revision,
            expected=state.head_revision,
        )
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            # The check a send makes: while it fails, every send would get this same 503.
            await state.registry.check_log()
    except TimeoutError:
        raise EventLogUnavailable from None
    return JSONResponse({"status": "ready", "revision": revision})


_READY = Operation(
    "200 when the database answers, its schema is current, and the event log answers",
    raises=(EventLogUnavailable,),
    errors=((503, "database_unavailable"), (503, "schema_outdated")),
)


async def metrics(request: Request) -> Response:
    """The metrics in the Prometheus text format; with METRICS_TOKEN set, for its bearer only."""
    token = state_of(request).settings.metrics_token
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


_METRICS = Operation(
    "The service's metrics, in the Prometheus text format (summed over the workers)",
    errors=((401, "not_authenticated"),),
    # The token when METRICS_TOKEN is set, none when it is not.
    security=({"metricsToken": []}, {}),
)


routes = [
    ApiRoute("/health", health, methods=["GET"], operation=_HEALTH),
    ApiRoute("/ready", ready, methods=["GET"], operation=_READY),
    ApiRoute("/metrics", metrics, methods=["GET"], operation=_METRICS),
]

"""The application: routes, middleware, and the lifespan that owns the shared objects."""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

import anyio
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Mount

from app import logs, metrics
from app.agent import Model, TodoAgent, open_model
from app.chat import ChatService
from app.db.gate import ConnectionWaitTimeout
from app.db.migrations import head_revision
from app.db.notifications import Listener
from app.db.uow import Database
from app.runs.log.base import EventLog
from app.runs.log.memory import MemoryEventLog
from app.runs.log.postgres import PostgresEventLog
from app.runs.log.redis_streams import redis_streams_log
from app.runs.log.writer import EventWriter
from app.runs.record.postgres import PostgresRunRecord
from app.runs.recovery import Recovery
from app.runs.registry import RunRegistry
from app.settings import ConfigError, Settings
from app.web.access_log import AccessLog
from app.web.auth import RequireUser, TokenVerifier
from app.web.errors import (
    DOMAIN_ERRORS,
    ApiError,
    handle_api_error,
    handle_busy,
    handle_client_gone,
    handle_database_error,
    handle_domain_error,
    handle_http_exception,
    handle_unexpected,
)
from app.web.openapi.docs import docs_routes
from app.web.route_table import RouteTemplates
from app.web.routes import service_routes, user_routes
from app.web.routes.page import page_routes
from app.web.state import AppState, share
from app.web.streaming import server_exiting


def create_app(settings: Settings | None = None, *, model: Model | None = None) -> Starlette:
    """The ASGI app. `uvicorn --factory app.main:create_app` reads the environment; tests pass
    their own settings, and a scripted `model` in place of the configured one."""
    if settings is None:
        settings = Settings.from_env()
        logs.configure(settings.log_format)  # a process of its own: uvicorn --factory
    database_url = settings.database_url
    if database_url is None:
        raise ConfigError("DATABASE_URL is not set (`make run` starts an embedded PostgreSQL)")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _refuse_a_memory_log_shared_by_processes(settings)
        async with AsyncExitStack() as resources:
            agent_model = (
                model
                if model is not None
                else await resources.enter_async_context(open_model(settings))
            )
            database = Database(
                database_url,
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout_seconds,
            )
            resources.push_async_callback(database.dispose)
            resources.callback(metrics.process_exiting)
            retention_seconds = settings.run_retention_hours * 3600
            listener = Listener(database.engine)  # one LISTEN connection, every channel
            log = await resources.enter_async_context(
                _event_log(settings, database, listener, retention_seconds)
            )
            writer = EventWriter(log)
            record = PostgresRunRecord(database, listener, final_kept_seconds=retention_seconds)
            task_group = await resources.enter_async_context(anyio.create_task_group())
            task_group.start_soon(listener.listen_forever)
            task_group.start_soon(log.serve)
            task_group.start_soon(writer.write_forever)
            registry = RunRegistry(
                log, writer, record, task_group, grace_seconds=settings.shutdown_grace_seconds
            )
            recovery = Recovery(log, record, registry, retention_seconds=retention_seconds)
            task_group.start_soon(recovery.maintain_forever)
            task_group.start_soon(_stop_runs_on_exit, registry)
            agent = TodoAgent(
                agent_model, max_turns=settings.agent_max_turns, tracing=settings.agent_tracing
            )
            chat = ChatService(
                database,
                agent,
                registry,
                history_messages=settings.history_messages,
                max_active_runs=settings.max_active_runs,
            )
            shared = AppState(
                settings=settings,
                database=database,
                registry=registry,
                recovery=recovery,
                chat=chat,
                head_revision=head_revision(),
            )
            share(app, shared)
            resources.enter_context(garbage_collection_for_serving())
            yield
            await registry.shutdown()
            with anyio.move_on_after(2, shield=True):
                await recovery.leave()
            task_group.cancel_scope.cancel()

    verifier = TokenVerifier.from_settings(settings)
    user_api = Mount(
        "/api/{user_id}",
        routes=user_routes,
        middleware=[Middleware(RequireUser, verifier=verifier)],
    )
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"],
        max_age=3600,
    )
    table: list[BaseRoute] = [*service_routes, *page_routes(settings), user_api]
    table[len(service_routes) : len(service_routes)] = docs_routes(settings, lambda: table)
    return Starlette(
        routes=table,
        middleware=[
            Middleware(AccessLog, route_of=RouteTemplates(table)),
            *([cors] if settings.cors_origins else []),
        ],
        lifespan=lifespan,
        exception_handlers={
            ApiError: handle_api_error,
            ClientDisconnect: handle_client_gone,
            **dict.fromkeys(DOMAIN_ERRORS, handle_domain_error),
            HTTPException: handle_http_exception,
            DBAPIError: handle_database_error,
            PoolTimeout: handle_busy,
            ConnectionWaitTimeout: handle_busy,
            # asyncpg raises OSError when it cannot connect; endpoints do no other I/O.
            OSError: handle_database_error,
            Exception: handle_unexpected,
        },
    )


@asynccontextmanager
async def _event_log(
    settings: Settings, database: Database, listener: Listener, retention_seconds: float
) -> AsyncIterator[EventLog]:
    """The event log `EVENT_LOG` names (`app.runs.log`; `redis` by default when REDIS_URL is
    set), closed with the lifespan. Whichever it is, the record stays PostgreSQL's: runs'
    status and end, cancels and heartbeats are a few statements a run, not a row a token."""
    if settings.event_log == "redis":
        assert settings.redis_url is not None  # Settings.validate
        async with redis_streams_log(
            settings.redis_url,
            cluster=settings.redis_cluster,
            retention_seconds=retention_seconds,
        ) as log:
            yield log
    elif settings.event_log == "memory":
        yield MemoryEventLog()
    else:
        yield PostgresEventLog(database, listener)


def _refuse_a_memory_log_shared_by_processes(settings: Settings) -> None:
    """A log in memory is seen by one process only: in a worker that uvicorn's supervisor
    started (`--workers`, or `--reload`), followers on the other workers would wait for events
    they can never read. Refused as the lifespan starts, where a failure makes the supervisor
    stop rather than start the worker again. (gunicorn's forked workers go unnoticed: the
    README says so.)"""
    if settings.event_log == "memory" and multiprocessing.parent_process() is not None:
        raise ConfigError(
            "EVENT_LOG=memory keeps runs' events in one process, and this is a worker of "
            "several (uvicorn --workers or --reload): use EVENT_LOG=postgres"
        )


# Young objects are collected after this many allocations instead of 700: a chat turn makes
# thousands of short-lived objects, and each collection of the young generation costs time; a
# fixed few MB more of garbage await collection (docs/performance.md has the measurement).
YOUNG_GENERATION_THRESHOLD = 10_000


@contextmanager
def garbage_collection_for_serving() -> Iterator[None]:
    """Freeze what start-up allocated (the collector stops walking it on every full
    collection) and collect young objects less often."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _stop_runs_on_exit(registry: RunRegistry) -> None:
    """On SIGTERM, stop taking runs at once and start the grace period, while the server still
    holds the open streams that will carry the runs' last events."""
    await server_exiting()
    registry.begin_shutdown()

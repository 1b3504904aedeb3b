"""The run engine's backends as the service builds them, opened for the shared suites
(test_event_logs.py, test_run_records.py): each event log with the record it is paired with, and
a second instance on the same store.

A backend is one entry of `BACKENDS`: its name, and how to open it (with what fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pytest
import sqlalchemy.event

from app.db.notifications import Listener
from app.db.uow import Database
from app.runs.log.base import EventLog
from app.runs.log.memory import MemoryEventLog
from app.runs.log.postgres import PostgresEventLog
from app.runs.log.redis_streams import redis_streams_log
from app.runs.record.base import RunRecord
from app.runs.record.memory import MemoryRunRecord
from app.runs.record.postgres import PostgresRunRecord
from tests.redis_servers import RedisCluster, RedisServer

KEPT_SECONDS = 3_600.0
"""How long the records keep an ended run's final event for its readers."""


@dataclass
class Instance:
    """One instance of the service, as far as the run engine goes: its log and its record."""

    log: EventLog
    record: RunRecord
    looks: Callable[[], int] | None = None
    """How many times the log has looked in its store (a statement answered): a test knows a
    reader has looked and found nothing once this has moved and the reader still waits. None
    where a read looks without awaiting anything (in this process)."""


@dataclass
class Backend:
    """A log and its record, twice: `one` and `other` are two instances on the same store (for
    the memory backend, one process: the same log and record)."""

    name: str
    one: Instance
    other: Instance
    start: Callable[[str], Awaitable[tuple[str, int, int]]]
    """Store a new run, begun by the named instance, as `ChatService.begin` does: its id, its
    conversation's and the id reserved for its answer."""
    begun: dict[str, tuple[int, int]] = field(default_factory=dict)
    expires: bool = False
    """Its entries expire by themselves (Redis: each stream, `retention` after its last
    append; tests/integration/test_redis_log.py checks the expiry): `prune` answers 0."""

    async def begin(self, instance: str) -> str:
        """A new run begun by `instance`; its id."""
        run_id, conversation_id, answer_id = await self.start(instance)
        self.begun[run_id] = (conversation_id, answer_id)
        return run_id


Opener = Callable[[], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def memory() -> AsyncIterator[Backend]:
    here = Instance(MemoryEventLog(), MemoryRunRecord(final_kept_seconds=KEPT_SECONDS))
    record = here.record
    assert isinstance(record, MemoryRunRecord)

    async def start(instance: str) -> tuple[str, int, int]:
        run = record.start(str(uuid.uuid4()), "suite", instance)
        return run.id, run.conversation_id, await record.reserve_answer_id()

    yield Backend("memory", here, here, start)


LogOf = Callable[[Database, Listener], AbstractAsyncContextManager[EventLog]]
"""Opens an instance's event log (closed on leaving), given its database and LISTEN connection."""


@asynccontextmanager
async def postgres_log(database: Database, listener: Listener) -> AsyncIterator[EventLog]:
    yield PostgresEventLog(database, listener)


def redis_looks(servers: RedisServer | RedisCluster) -> int:
    """The XRANGEs the servers have answered (INFO commandstats): a read that found nothing
    there waits on the blocking reader, which hands it whatever is appended after its seq."""
    nodes = servers.nodes if isinstance(servers, RedisCluster) else [servers]
    total = 0
    for node in nodes:
        for line in node.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_xrange:"):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


def redis_log(servers: RedisServer | RedisCluster) -> LogOf:
    """A log on our own Redis (a single server or a three-master cluster), as `app.main` opens
    it with REDIS_URL: its own client and blocking reader per instance."""

    def open_log(_database: Database, _listener: Listener) -> AbstractAsyncContextManager[EventLog]:
        return redis_streams_log(
            servers.url,
            cluster=isinstance(servers, RedisCluster),
            retention_seconds=KEPT_SECONDS,
        )

    return open_log


@asynccontextmanager
async def postgres(
    database_url: str,
    log_of: LogOf = postgres_log,
    name: str = "postgres",
    looks: Callable[[], int] | None = None,
) -> AsyncIterator[Backend]:
    """Two instances on one PostgreSQL database, each with its pool and its LISTEN connection;
    `log_of` opens each one's event log (the record is always PostgreSQL's: a log kept
    elsewhere, Redis, is opened as `postgres(url, redis_log(servers), "redis")`)."""
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(_postgres_instance(database_url, log_of, looks))
        other = await stack.enter_async_context(_postgres_instance(database_url, log_of, looks))
        yield Backend(
            name,
            one[0],
            other[0],
            partial(_begin_in, one[1]),
            expires=name.startswith("redis"),
        )


@asynccontextmanager
async def _postgres_instance(
    database_url: str, log_of: LogOf, looks: Callable[[], int] | None
) -> AsyncIterator[tuple[Instance, Database]]:
    database = Database(database_url, pool_size=3)
    listener = Listener(database.engine)
    looked = [0]

    def look(record: Any) -> None:
        if "FROM run_events" in record.query:
            looked[0] += 1

    def count_looks(connection: Any, _record: Any) -> None:
        # The log's statements run on asyncpg itself (`app.db.driver`): counted as it ran them.
        connection.driver_connection.add_query_logger(look)

    sqlalchemy.event.listen(database.engine.sync_engine, "connect", count_looks)
    async with AsyncExitStack() as stack:
        log = await stack.enter_async_context(log_of(database, listener))
        counted = (lambda: looked[0]) if isinstance(log, PostgresEventLog) else looks
        yield await stack.enter_async_context(_serving(database, listener, log, counted))


@asynccontextmanager
async def _serving(
    database: Database, listener: Listener, log: EventLog, looks: Callable[[], int] | None
) -> AsyncIterator[tuple[Instance, Database]]:
    instance = Instance(
        log,
        PostgresRunRecord(database, listener, final_kept_seconds=KEPT_SECONDS),
        looks,
    )
    listening = asyncio.ensure_future(listener.listen_forever())
    serving = asyncio.ensure_future(log.serve())
    try:
        with anyio.fail_after(30):
            await listener.ready.wait()
        yield instance, database
    finally:
        for task in (listening, serving):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await database.dispose()


async def _begin_in(database: Database, instance: str) -> tuple[str, int, int]:
    run_id = str(uuid.uuid4())
    async with database.single_statement() as uow:
        started = await uow.runs.start_in_new_conversation(run_id, "suite", "Suite", "hi", instance)
    return run_id, started.conversation_id, started.answer_message_id


def _on_redis(request: pytest.FixtureRequest, name: str, servers_fixture: str) -> Opener:
    servers = request.getfixturevalue(servers_fixture)
    return partial(
        postgres,
        request.getfixturevalue("suite_database"),
        redis_log(servers),
        name,
        partial(redis_looks, servers),
    )


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Opener]] = {
    "memory": lambda request: memory,
    "postgres": lambda request: partial(postgres, request.getfixturevalue("suite_database")),
    "redis": lambda request: _on_redis(request, "redis", "redis_single"),
    "redis-cluster": lambda request: _on_redis(request, "redis-cluster", "redis_three_masters"),
}
"""Every backend of the event log, by name: a new backend is one more entry here."""

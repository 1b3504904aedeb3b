"""The unit of work: one short transaction, committed explicitly or rolled back."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.db.repositories import (
    ConversationRepository,
    MessageRepository,
    RunEventRepository,
    RunRepository,
    TaskRepository,
)


class ConnectionWaitTimeout(TimeoutError):
    """No connection came within the pool's timeout: the service has more work than its pool."""


class UnitOfWork:
    """`async with uow: ...; await uow.commit()`. Leaving the block without commit rolls back,
    and the connection goes back to the pool as soon as the block ends.

    With `single_statement`, each statement is its own transaction (autocommit): no BEGIN and
    COMMIT round trips, for work that is one statement, which is atomic on its own.

    A unit of work with a `gate` first takes a place in it (waiting at most `timeout`, else
    `ConnectionWaitTimeout`), then a connection; one without goes straight to the pool, whose
    own wait is bounded by the same timeout (SQLAlchemy's `TimeoutError`)."""

    conversations: ConversationRepository
    messages: MessageRepository
    tasks: TaskRepository
    runs: RunRepository
    run_events: RunEventRepository

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timeout: float,
        gate: asyncio.Semaphore | None = None,
        single_statement: bool = False,
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._gate = gate
        self._single_statement = single_statement

    async def __aenter__(self) -> UnitOfWork:
        if self._gate is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._gate.acquire()
            except TimeoutError:
                raise ConnectionWaitTimeout from None
        try:
            # SQLAlchemy Core on a connection: the repositories map rows to domain objects
            # themselves, so the ORM session's bookkeeping would be pure cost.
            self._connection: AsyncConnection = await self._engine.connect()
            if self._single_statement:
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            if self._gate is not None:
                self._gate.release()
            raise
        self.conversations = ConversationRepository(self._connection)
        self.messages = MessageRepository(self._connection)
        self.tasks = TaskRepository(self._connection)
        self.runs = RunRepository(self._connection)
        self.run_events = RunEventRepository(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._connection.close()
        finally:
            if self._gate is not None:
                self._gate.release()

    async def commit(self) -> None:
        await self._connection.commit()


class Database:
    """The engine and the units of work made from it; built in the lifespan, disposed there.

    A fifth of the pool is kept for `priority` work, storing what runs have already done (their
    events, their ends): under load, new turns wait for a connection, while the runs already
    going are still stored on time."""

    def __init__(self, url: str, *, pool_size: int, pool_timeout: float = 30.0) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_timeout=pool_timeout
        )
        self.reserved_connections = pool_size // 5
        self._gate = asyncio.Semaphore(pool_size - self.reserved_connections)
        self._timeout = pool_timeout

    def unit_of_work(self, *, priority: bool = False) -> UnitOfWork:
        gate = None if priority else self._gate
        return UnitOfWork(self.engine, timeout=self._timeout, gate=gate)

    def single_statement(self, *, priority: bool = False) -> UnitOfWork:
        """A unit of work for one statement: see `UnitOfWork`."""
        gate = None if priority else self._gate
        return UnitOfWork(self.engine, timeout=self._timeout, gate=gate, single_statement=True)

    async def dispose(self) -> None:
        await self.engine.dispose()

"""The unit of work: one short transaction, committed explicitly or rolled back."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.db.driver import Driver
from app.db.gate import ConnectionGate, Priority
from app.db.repositories.conversations import ConversationRepository
from app.db.repositories.instances import InstanceRepository
from app.db.repositories.messages import MessageRepository
from app.db.repositories.runs import RunRepository
from app.db.repositories.threads import ThreadRepository


class UnitOfWork:
    """`async with uow: ...; await uow.commit()`. Leaving the block without commit rolls back,
    and the connection goes back to the pool as soon as the block ends.

    With `single_statement`, each statement is its own transaction (autocommit): no BEGIN and
    COMMIT round trips, for work that is one statement, which is atomic on its own.

    It first takes a place at the `gate`, by its `priority`, then a connection, which is then
    free."""

    conversations: ConversationRepository
    messages: MessageRepository
    runs: RunRepository
    instances: InstanceRepository
    threads: ThreadRepository

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        gate: ConnectionGate,
        priority: Priority,
        single_statement: bool = False,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._priority = priority
        self._single_statement = single_statement

    async def __aenter__(self) -> UnitOfWork:
        # SQLAlchemy Core on a connection: the repositories map rows to domain objects
        # themselves, so the ORM session's bookkeeping would be pure cost.
        self._connection: AsyncConnection = await self._gate.connect(
            self._priority, self._engine.connect
        )
        if self._single_statement:
            try:
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        self.conversations = ConversationRepository(self._connection)
        self.messages = MessageRepository(self._connection)
        self.runs = RunRepository(self._connection)
        self.instances = InstanceRepository(self._connection)
        self.threads = ThreadRepository(self._connection)
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
            self._gate.release()

    @property
    def connection(self) -> AsyncConnection:
        """The connection itself, for work outside these repositories (the schema's revision;
        the event log's own, `app.runs.log.postgres`)."""
        return self._connection

    async def commit(self) -> None:
        await self._connection.commit()


class Database:
    """The engine and the units of work made from it; built in the lifespan, disposed there.

    Connections go by `Priority`, and a fifth of the pool is kept from `NEW` work: under load,
    new turns wait for a connection while the runs already going still call their tools and
    are stored on time."""

    def __init__(self, url: str, *, pool_size: int, pool_timeout: float = 30.0) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_timeout=pool_timeout
        )
        self._gate = ConnectionGate(pool_size, reserved=pool_size // 5, timeout=pool_timeout)

    def unit_of_work(self, priority: Priority = Priority.NEW) -> UnitOfWork:
        return UnitOfWork(self.engine, gate=self._gate, priority=priority)

    def single_statement(self, priority: Priority = Priority.NEW) -> UnitOfWork:
        """A unit of work for one statement: see `UnitOfWork`."""
        return UnitOfWork(self.engine, gate=self._gate, priority=priority, single_statement=True)

    def driver(self, priority: Priority = Priority.NEW) -> Driver:
        """asyncpg's connection, for statements of their own on every turn: see `Driver`."""
        return Driver(self.engine, self._gate, priority)

    async def dispose(self) -> None:
        await self.engine.dispose()

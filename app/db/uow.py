"""The unit of work: one short transaction, committed explicitly or rolled back."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db.repositories import (
    ConversationRepository,
    MessageRepository,
    RunEventRepository,
    RunRepository,
    TaskRepository,
)


class UnitOfWork:
    """`async with uow: ...; await uow.commit()`. Leaving the block without commit rolls back,
    and the connection goes back to the pool as soon as the block ends."""

    conversations: ConversationRepository
    messages: MessageRepository
    tasks: TaskRepository
    runs: RunRepository
    run_events: RunEventRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        self.conversations = ConversationRepository(self._session)
        self.messages = MessageRepository(self._session)
        self.tasks = TaskRepository(self._session)
        self.runs = RunRepository(self._session)
        self.run_events = RunEventRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()


class Database:
    """The engine and the units of work made from it; built in the lifespan, disposed there."""

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=0, pool_recycle=1800
        )
        self._session_factory = async_sessionmaker(self.engine, expire_on_commit=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._session_factory)

    async def dispose(self) -> None:
        await self.engine.dispose()

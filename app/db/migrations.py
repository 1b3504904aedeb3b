"""Running Alembic from the app and the tests, and checking the schema is current."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.settings import PROJECT_ROOT


def alembic_config() -> Config:
    return Config(toml_file=str(PROJECT_ROOT / "pyproject.toml"))


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(url: str, revision: str = "head") -> None:
    await _alembic(url, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    await _alembic(url, lambda config: command.downgrade(config, revision))


async def current_revision(connection: AsyncConnection) -> str | None:
    def read(sync_connection: Connection) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()

    return await connection.run_sync(read)


async def _alembic(url: str, apply: Callable[[Config], None]) -> None:
    """Run an Alembic command on one connection to `url` (Alembic is synchronous)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def on_connection(sync_connection: Connection) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                apply(config)

            await connection.run_sync(on_connection)
            await connection.commit()
    finally:
        await engine.dispose()

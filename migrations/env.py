"""Alembic environment, async. The database URL comes from the app's settings.

`alembic upgrade head` (the Procfile's release step) reads DATABASE_URL; the app and the
tests call `app.db.migrations.upgrade()`, which hands Alembic a connection of its own.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.models import Base
from app.settings import ConfigError, Settings

target_metadata = Base.metadata


def run_with_connection(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    try:
        url = Settings.from_env().database_url
        if url is None:
            raise ConfigError("DATABASE_URL is not set")
    except ConfigError as error:
        # The release phase's log says what to set in one line, as `python -m app` does.
        raise SystemExit(f"configuration error: {error}") from None
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with_connection)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with_connection(connection)
else:
    asyncio.run(run_online())

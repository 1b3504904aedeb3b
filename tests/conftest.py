"""Fixtures: a real PostgreSQL built by the migrations, and the service on a real port.

The database is TEST_DATABASE_URL when it is set, else an embedded PostgreSQL in a temporary
directory. Tests stay apart by using users of their own, never by sharing rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.embedded import start_embedded_postgres
from app.db.migrations import upgrade
from app.main import create_app
from app.settings import Settings, normalize_database_url
from tests.support import LiveServer, PlainSql, serve

TEST_SECRET = "test-secret-c0fe2ae3e0dba5d717f4eb70ae41705b6cd32f154dc01248"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A database on the server the tests use (not yet migrated)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield normalize_database_url(configured)
        return
    directory = Path(tempfile.mkdtemp(prefix="todo-chat-test-"))
    directory.chmod(0o755)
    yield normalize_database_url(start_embedded_postgres(directory / "pg", cleanup="delete"))


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> str:
    await upgrade(server_url)
    return server_url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[PlainSql]:
    engine = create_async_engine(database_url, pool_size=2)
    yield PlainSql(engine)
    await engine.dispose()


@pytest.fixture
async def fresh_database(server_url: str, db: PlainSql) -> AsyncIterator[str]:
    """An empty database of its own on the same server, dropped afterwards."""
    async with database_of_its_own(server_url, db) as url:
        yield url


@asynccontextmanager
async def database_of_its_own(server_url: str, db: PlainSql) -> AsyncIterator[str]:
    """An empty database on the same server (not migrated), dropped afterwards."""
    name = f"todo_chat_{uuid.uuid4().hex[:12]}"
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, query = server_url.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        async with db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test",
        database_url=database_url,
        jwt_secret=TEST_SECRET,
        agent_model="offline",
        shutdown_grace_seconds=5,
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with serve(create_app(settings), settings) as live:
        yield live
        await live.registry.wait_idle()


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)

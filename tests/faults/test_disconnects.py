"""Clients that hang up mid-answer, many at once: every answer is stored all the same, and
every database connection goes back to the pool."""

from __future__ import annotations

import asyncio
import json

import anyio
from sqlalchemy.pool import QueuePool

from app.main import create_app
from app.settings import Settings
from app.web.state import state_of
from tests.conftest import with_settings
from tests.faults.conftest import scale
from tests.support import PlainSql, User, serve


async def _hang_up_after_first_text(user: User) -> str:
    async with user.client.stream(
        "POST", user.url("/chat/stream"), json={"message": "hello"}, headers=user.headers
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "start":
                    run_id: str = event["run_id"]
                if event["type"] == "text":
                    return run_id  # and hang up
    raise AssertionError("the answer had no text")


async def test_clients_that_hang_up_mid_answer_still_have_their_answers_stored(
    fault_settings: Settings, private_db: PlainSql
) -> None:
    count = scale(500, 60)
    paced = with_settings(
        fault_settings, offline_token_delay_ms=20, max_active_runs=1, db_pool_size=10
    )
    async with serve(create_app(paced), paced) as live:
        users = [live.user("hangup") for _ in range(count)]
        with anyio.fail_after(300):
            run_ids = await asyncio.gather(*(_hang_up_after_first_text(u) for u in users))
            await live.registry.wait_idle()
        pool = state_of(live.app).database.engine.pool
        assert isinstance(pool, QueuePool)
        checked_out = pool.checkedout()
    stored = await private_db.rows(
        "SELECT r.status, length(m.content) > 0 AS said FROM runs r"
        " JOIN messages m ON m.id = r.assistant_message_id WHERE r.id = ANY(CAST(:ids AS uuid[]))",
        ids=run_ids,
    )
    assert len(stored) == count
    assert all(row == {"status": "complete", "said": True} for row in stored)
    assert checked_out == 0, "a connection was left checked out"

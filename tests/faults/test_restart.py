"""PostgreSQL restarted (`pg_ctl restart -m fast`: every session cut, the server refusing
connections while it stops and starts) in the middle of streaming runs."""

from __future__ import annotations

import asyncio
import time

import anyio

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.faults.conftest import PrivatePostgres, scale
from tests.faults.streams import Stream, read_stream
from tests.support import PlainSql, serve, text_of


async def test_a_restart_mid_stream_loses_no_event_and_stores_every_answer(
    fault_settings: Settings, private_postgres: PrivatePostgres, private_db: PlainSql
) -> None:
    count = scale(50, 12)
    paced = with_settings(fault_settings, offline_token_delay_ms=80, db_pool_size=10)
    async with serve(create_app(paced), paced) as live:
        users = [live.user("restart") for _ in range(count)]
        streams = [Stream() for _ in users]
        reading = [
            asyncio.create_task(read_stream(user, "hello", stream=stream))
            for user, stream in zip(users, streams, strict=True)
        ]
        with anyio.fail_after(60):
            for stream in streams:
                await stream.answering.wait()
        restarted = time.monotonic()
        await asyncio.to_thread(private_postgres.restart)
        # Requests that meet the database as it comes back: 200 or 503, never a 500.
        statuses = [(await users[0].get("/conversations")).status_code for _ in range(5)]
        with anyio.fail_after(60):
            await asyncio.gather(*reading)
            await live.registry.wait_idle()
        recovered = time.monotonic() - restarted

    assert set(statuses) <= {200, 503}, statuses
    for stream in streams:
        assert stream.status == 200 and not stream.cut
        events = stream.events
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("done") == 1
        assert stream.final["type"] == "done", stream.final
        run_id = events[0]["run_id"]
        logged = await private_db.rows(
            "SELECT seq, data FROM run_events WHERE run_id = :id ORDER BY seq", id=run_id
        )
        assert [row["seq"] for row in logged] == [e["seq"] for e in events], "an event is missing"
        stored = await private_db.rows(
            "SELECT r.status, m.content FROM runs r JOIN messages m"
            " ON m.id = r.assistant_message_id WHERE r.id = :id",
            id=run_id,
        )
        assert stored == [{"status": "complete", "content": text_of(events)}]
    print(f"{count} runs through a restart, all stored {recovered:.1f} s after it began")

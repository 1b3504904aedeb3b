"""Whether an instance is alive: never judged by one lost connection, and a killed one's runs
closed by another within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

import anyio
import httpx

from app.main import create_app
from app.runs.recovery import SILENT_SECONDS
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import with_settings
from tests.faults.conftest import scale
from tests.faults.streams import Stream, read_stream
from tests.support import (
    PlainSql,
    User,
    serve,
    start_service,
    text_of,
)

LISTENERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
)


async def test_losing_every_listen_connection_closes_no_live_run(
    fault_settings: Settings, private_db: PlainSql
) -> None:
    """Every instance's LISTEN connection cut, and cut again as soon as it is back, for longer
    than an instance may be silent; their pools work. No instance takes another's run over."""
    slow = with_settings(fault_settings, offline_token_delay_ms=120)
    async with serve(create_app(slow), slow) as owner, serve(create_app(slow), slow) as other:
        user = owner.user("listen")
        for n in range(30):
            await user.post("/tasks", json={"title": f"errand {n}"})
        stream = Stream()
        reading = asyncio.create_task(read_stream(user, "show my tasks", stream=stream))
        with anyio.fail_after(30):
            await stream.answering.wait()
        cut_until = time.monotonic() + SILENT_SECONDS + 1
        while time.monotonic() < cut_until:
            await private_db.execute(LISTENERS)
            await anyio.sleep(0.2)
        closed_by_other = await other.recovery.close_orphans()
        mid_run = await private_db.rows(
            "SELECT status FROM runs WHERE id = :id", id=stream.events[0]["run_id"]
        )
        with anyio.fail_after(60):
            await reading
        await owner.registry.wait_idle()

    assert mid_run == [{"status": "active"}], "the run ended while its owner streamed it"
    assert closed_by_other == 0
    assert stream.final["type"] == "done"
    stored = await private_db.rows(
        "SELECT r.status, m.content FROM runs r JOIN messages m ON m.id = r.assistant_message_id"
        " WHERE r.id = :id",
        id=stream.events[0]["run_id"],
    )
    assert stored == [{"status": "complete", "content": text_of(stream.events)}]


async def test_the_runs_of_a_killed_instance_are_closed_by_another_within_seconds(
    fault_settings: Settings, private_db: PlainSql, tmp_path: Path
) -> None:
    count = scale(20, 5)
    database_url = fault_settings.database_url
    assert database_url is not None
    process, base_url = start_service(
        database_url, tmp_path / "server.log", OFFLINE_TOKEN_DELAY_MS="100"
    )
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            users = [
                User(name, issue_token(fault_settings, name), client)
                for name in (f"killed-{n}-{time.monotonic_ns()}" for n in range(count))
            ]
            streams = [Stream() for _ in users]
            reading = [
                asyncio.create_task(read_stream(user, "hello", stream=stream))
                for user, stream in zip(users, streams, strict=True)
            ]
            with anyio.fail_after(60):
                for stream in streams:
                    await stream.answering.wait()
            process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.gather(*reading)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(30)
    run_ids = [stream.events[0]["run_id"] for stream in streams]

    async with serve(create_app(fault_settings), fault_settings) as successor:

        async def active() -> int:
            rows = await private_db.rows(
                "SELECT count(*) AS n FROM runs WHERE status = 'active' AND id = ANY(:ids)",
                ids=run_ids,
            )
            return int(rows[0]["n"])

        with anyio.fail_after(60):
            while await active():  # noqa: ASYNC110 (the state is in the database)
                await anyio.sleep(0.1)
        closed_after = time.monotonic() - killed
        replays = [
            await User(user.id, user.token, successor.client).get(f"/runs/{run_id}/events")
            for user, run_id in zip(users, run_ids, strict=True)
        ]

    for replay, stream in zip(replays, streams, strict=True):
        assert replay.status_code == 200
        logged = [json.loads(line[6:]) for line in replay.text.splitlines() if line[:6] == "data: "]
        assert [e["type"] for e in logged].count("error") == 1
        assert (logged[-1]["code"], logged[-1]["retryable"]) == ("interrupted", True)
        # What the killed instance had logged is a prefix of what its client saw.
        assert logged[:-1] == stream.events[: len(logged) - 1]
    # Silence of SILENT_SECONDS, then at most one recovery period: 13 s by design.
    assert closed_after < 30, f"closed {closed_after:.1f} s after the kill"
    print(f"{count} runs of a killed instance closed {closed_after:.1f} s after the kill")

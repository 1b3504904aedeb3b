"""The service as a process of its own: SIGTERM with streams open, and a killed process whose
runs the next instance closes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import TEST_SECRET
from tests.support import (
    PlainSql,
    User,
    eventually,
    serve,
    start_service,
    text_of,
)


async def _stream(
    client: httpx.AsyncClient,
    user_id: str,
    started: asyncio.Event,
    events: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The events of one turn (into `events`, as they come, when given); `started` is set
    at the first text."""
    token = issue_token(Settings(jwt_secret=TEST_SECRET), user_id)
    events = [] if events is None else events
    async with client.stream(
        "POST",
        f"/api/{user_id}/chat/stream",
        json={"message": "hello"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        try:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] == "text":
                        started.set()
        except httpx.RemoteProtocolError:
            pass  # the server died mid-stream: keep what arrived
    return events


async def test_sigterm_ends_every_open_stream_with_a_final_event(
    database_url: str, db: PlainSql, tmp_path: Path
) -> None:
    process, base_url = start_service(
        database_url,
        tmp_path / "server.log",
        OFFLINE_TOKEN_DELAY_MS="150",
        SHUTDOWN_GRACE_SECONDS="1",
    )
    users = [f"sigterm-{n}-{time.monotonic_ns()}" for n in range(3)]
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        started = [asyncio.Event() for _ in users]
        streams = [
            asyncio.create_task(_stream(client, user, event))
            for user, event in zip(users, started, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 30)
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*streams), 30)
    exit_code = await asyncio.to_thread(process.wait, 30)
    elapsed = time.monotonic() - stopping

    assert exit_code in (0, -signal.SIGTERM)
    assert elapsed < 25, "the process outlived the platform's grace period"
    for events in results:
        assert events[-1]["type"] == "error", events[-1]
        assert events[-1]["code"] == "server_restarting" and events[-1]["retryable"] is True
        stored = await db.rows(
            "SELECT r.status, m.status AS message_status, m.content FROM runs r"
            " JOIN messages m ON m.id = r.assistant_message_id WHERE r.id = :id",
            id=events[0]["run_id"],
        )
        assert stored == [
            {"status": "incomplete", "message_status": "incomplete", "content": text_of(events)}
        ]


async def test_the_runs_of_a_killed_process_are_closed_by_the_next_one(
    database_url: str, settings: Settings, db: PlainSql, tmp_path: Path
) -> None:
    process, base_url = start_service(
        database_url, tmp_path / "server.log", OFFLINE_TOKEN_DELAY_MS="100"
    )
    user_id = f"killed-{time.monotonic_ns()}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            started, so_far = asyncio.Event(), list[dict[str, Any]]()
            stream = asyncio.create_task(_stream(client, user_id, started, so_far))
            await asyncio.wait_for(started.wait(), 30)

            async def three_texts_logged() -> bool:
                logged = await db.rows(
                    "SELECT count(*) AS n FROM run_events WHERE run_id = :id"
                    " AND CAST(data AS jsonb) ->> 'type' = 'text'",
                    id=so_far[0]["run_id"],
                )
                return bool(logged[0]["n"] >= 3)

            # Killed once some of the answer is in the log (it was a 0.5 s sleep): the next
            # instance has text to keep when it closes the run.
            await eventually(three_texts_logged, "three text events of the run in its log")
            process.kill()
            received = await asyncio.wait_for(stream, 30)
    finally:
        process.kill()
        process.wait(30)
    run_id = received[0]["run_id"]
    assert (await db.rows("SELECT status FROM runs WHERE id = :id", id=run_id)) == [
        {"status": "active"}
    ]

    async with serve(create_app(settings), settings) as live:
        deadline = time.monotonic() + 30
        while (await db.rows("SELECT status FROM runs WHERE id = :id", id=run_id))[0][
            "status"
        ] == "active":
            assert time.monotonic() < deadline, "the orphaned run was not closed"
            await asyncio.sleep(0.1)
        user = User(user_id, issue_token(settings, user_id), live.client)
        replay = await user.get(f"/runs/{run_id}/events")
        logged = [
            json.loads(line[6:]) for line in replay.text.splitlines() if line.startswith("data: ")
        ]

    assert logged[-1]["type"] == "error" and logged[-1]["code"] == "interrupted"
    assert logged[-1]["retryable"] is True
    stored = await db.rows(
        "SELECT m.status, m.content FROM runs r JOIN messages m ON m.id = r.assistant_message_id"
        " WHERE r.id = :id",
        id=run_id,
    )
    assert stored[0]["status"] == "incomplete"
    assert stored[0]["content"] == text_of(logged) and stored[0]["content"]
    shared = min(len(stored[0]["content"]), len(text_of(received)))
    assert stored[0]["content"][:shared] == text_of(received)[:shared]

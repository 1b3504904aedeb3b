"""A send repeated with its `Idempotency-Key` (a client's retry, a double click, a network
that lost the first answer) joins or replays the first run; it never starts a second."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.support import PlainSql, User, serve


async def _send(user: User, key: str | bytes, message: str = "add buy milk", **body: Any) -> Any:
    async with user.client.stream(
        "POST",
        user.url("/chat/stream"),
        json={"message": message, **body},
        headers=[
            *((name.encode(), value.encode()) for name, value in user.headers.items()),
            (b"Idempotency-Key", key if isinstance(key, bytes) else key.encode()),
        ],
    ) as response:
        if response.status_code != 200:
            return response.status_code, json.loads(await response.aread())
        lines = [line async for line in response.aiter_lines()]
    return 200, [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


async def test_a_repeated_send_replays_the_first_run_and_adds_nothing(
    settings: Settings, db: PlainSql
) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        key = str(uuid.uuid4())
        status, first = await _send(user, key)
        again_status, again = await _send(user, key)
        other_status, other = await _send(user, str(uuid.uuid4()), "add buy bread")
        as_json = await user.client.post(
            user.url("/chat"),
            json={"message": "add buy milk"},
            headers={**user.headers, "Idempotency-Key": key},
        )
        await live.registry.wait_idle()

    assert (status, again_status, other_status) == (200, 200, 200)
    assert again == first, "the replay is the first run's stream, event for event"
    assert other[0]["run_id"] != first[0]["run_id"]
    assert as_json.status_code == 200 and as_json.json()["run_id"] == first[0]["run_id"]
    runs = await db.rows("SELECT count(*) AS n FROM runs WHERE user_id = :u", u=user.id)
    tasks = await db.rows("SELECT title FROM tasks WHERE user_id = :u ORDER BY id", u=user.id)
    assert runs == [{"n": 2}]
    assert tasks == [{"title": "Buy milk"}, {"title": "Buy bread"}]


async def test_sends_with_one_key_at_once_start_one_run(settings: Settings, db: PlainSql) -> None:
    paced = with_settings(settings, offline_token_delay_ms=5)
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        key = str(uuid.uuid4())
        results = await asyncio.gather(*(_send(user, key) for _ in range(5)))
        await live.registry.wait_idle()
    assert {status for status, _ in results} == {200}
    assert len({events[0]["run_id"] for _, events in results}) == 1
    assert all(events[-1]["type"] == "done" for _, events in results)
    tasks = await db.rows("SELECT count(*) AS n FROM tasks WHERE user_id = :u", u=user.id)
    assert tasks == [{"n": 1}]


async def test_a_key_sent_again_with_another_request_is_refused(settings: Settings) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        key = str(uuid.uuid4())
        await _send(user, key)
        reused = await _send(user, key, "add buy bread")
        bad = await _send(user, "ключ".encode())
        too_long = await _send(user, "k" * 256)
        someone_else = await _send(live.user(), key)  # keys are per user
        await live.registry.wait_idle()
    assert reused[0] == 422 and reused[1]["error"]["code"] == "idempotency_key_reused"
    assert bad[0] == 422 and too_long[0] == 422
    assert someone_else[0] == 200


async def test_a_retry_of_a_run_that_called_tools_is_not_offered(settings: Settings) -> None:
    """An error after a tool ran says `retryable: false`: sending the message again (with a
    new key) would repeat what the tool did."""
    shutting = with_settings(settings, offline_token_delay_ms=40, shutdown_grace_seconds=0.01)
    async with serve(create_app(shutting), shutting) as live:
        user = live.user()
        sent = asyncio.create_task(_send(user, str(uuid.uuid4()), "add buy milk"))
        quiet = asyncio.create_task(_send(user, str(uuid.uuid4()), "hello"))
        while len(live.registry.running_here()) < 2:  # noqa: ASYNC110 (both begun)
            await asyncio.sleep(0.01)
        live.registry.begin_shutdown()
        (_, with_tool), (_, without) = await asyncio.gather(sent, quiet)
    assert "tool_call" in [e["type"] for e in with_tool]
    assert (with_tool[-1]["code"], with_tool[-1]["retryable"]) == ("server_restarting", False)
    assert (without[-1]["code"], without[-1]["retryable"]) == ("server_restarting", True)
    # Its words agree with its flag: the page shows them without a Retry button.
    assert "again" not in with_tool[-1]["message"] and "again" in without[-1]["message"]

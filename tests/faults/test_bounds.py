"""Bounds on what followers cost: one log reader per remote run per instance, whatever the
number of its followers there; a per-user cap on streams. (Clients that stop reading:
test_stopped_readers.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import anyio
import pytest
import sqlalchemy.event
from httpx_sse import aconnect_sse

from app import chat
from app.main import create_app
from app.settings import Settings
from app.web.state import state_of
from tests.conftest import with_settings
from tests.faults.streams import Stream, read_stream
from tests.support import LiveServer, User, serve


def _count_log_reads(server: LiveServer) -> list[int]:
    reads = [0]

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM run_events" in statement and "SELECT" in statement:
            reads[0] += 1

    engine = state_of(server.app).database.engine.sync_engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    return reads


async def _follow_remotely(
    owner: LiveServer, other: LiveServer, followers: int
) -> tuple[int, list[list[dict[str, Any]]]]:
    user = owner.user("followed")
    elsewhere = User(user.id, user.token, other.client)
    reads = _count_log_reads(other)
    stream = Stream()
    reading = asyncio.create_task(read_stream(user, "hello", stream=stream))
    with anyio.fail_after(30):
        await stream.answering.wait()
    run_id = stream.events[0]["run_id"]

    async def follow() -> list[dict[str, Any]]:
        async with aconnect_sse(
            elsewhere.client,
            "GET",
            elsewhere.url(f"/runs/{run_id}/events"),
            headers=elsewhere.headers,
        ) as source:
            return [json.loads(event.data) async for event in source.aiter_sse() if event.data]

    followed = await asyncio.gather(*(follow() for _ in range(followers)))
    await reading
    await owner.registry.wait_idle()
    assert all(events == stream.events for events in followed)
    return reads[0], followed


async def test_followers_of_a_remote_run_share_one_reader_of_its_log(settings: Settings) -> None:
    slow = with_settings(settings, offline_token_delay_ms=40)
    async with serve(create_app(slow), slow) as owner, serve(create_app(slow), slow) as other:
        alone, _ = await _follow_remotely(owner, other, 1)
        crowd, _ = await _follow_remotely(owner, other, 15)
    # Each follower reading the log itself made it 15 times as many reads.
    assert crowd <= 2 * alone + 4, (alone, crowd)
    print(f"log reads on the following instance: 1 follower {alone}, 15 followers {crowd}")


async def test_a_user_may_follow_only_so_many_streams_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat, "MAX_FOLLOWERS_PER_USER", 3)
    slow = with_settings(settings, offline_token_delay_ms=100)
    async with serve(create_app(slow), slow) as live:
        user = live.user()
        for n in range(30):
            await user.post("/tasks", json={"title": f"errand {n}"})
        stream = Stream()  # a long answer: it runs while the followers come and go
        reading = asyncio.create_task(read_stream(user, "show my tasks", stream=stream))
        with anyio.fail_after(30):
            await stream.answering.wait()
        url = user.url(f"/runs/{stream.events[0]['run_id']}/events")
        async with contextlib.AsyncExitStack() as held:
            following = []  # kept: an iterator dropped would close its stream
            for _ in range(3):
                response = await held.enter_async_context(
                    user.client.stream("GET", url, headers=user.headers)
                )
                assert response.status_code == 200
                following.append(response.aiter_bytes())
                await anext(following[-1])  # its first bytes: it is following
            refused = await user.get(f"/runs/{stream.events[0]['run_id']}/events")
        again = user.client.stream("GET", url, headers=user.headers)
        async with again as response:
            allowed = response.status_code
        still_running = not reading.done()
        await reading
        await live.registry.wait_idle()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_streams"
    assert allowed == 200, "a stream that closed frees its place"
    assert still_running, "the run ended before the test was done: it tested nothing"

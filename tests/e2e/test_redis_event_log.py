"""Two service processes with REDIS_URL on one PostgreSQL, and a Redis of the test's own: a
stream cut on one instance resumes on the other with `Last-Event-ID`, without a gap, and the
run's events are in its Redis stream, not in PostgreSQL's `run_events`; a cancel asked of the
other instance stops the run (cancels stay on PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import with_settings
from tests.redis_servers import RedisServer, redis_server
from tests.support import PlainSql, User, eventually, serve, start_service

TASKS = 30
Event = dict[str, Any]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _read(response: httpx.Response, events: list[Event], *, until: int | None = None) -> None:
    """The stream's events, up to `until` of them, or to its end."""
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
            if until is not None and len(events) >= until:
                return


@dataclass
class TwoInstances:
    """A user with `TASKS` tasks, as seen through each of two service processes."""

    on_one: User
    on_two: User


@asynccontextmanager
async def _two_instances(
    redis: RedisServer, database_url: str, settings: Settings, tmp_path: Path
) -> AsyncIterator[TwoInstances]:
    env = {"OFFLINE_TOKEN_DELAY_MS": "20", "REDIS_URL": redis.url}
    one, one_url = start_service(database_url, tmp_path / "one.log", **env)
    two, two_url = start_service(database_url, tmp_path / "two.log", **env)
    try:
        async with (
            httpx.AsyncClient(base_url=one_url, timeout=60) as on_one,
            httpx.AsyncClient(base_url=two_url, timeout=60) as on_two,
        ):
            user_id = f"redis-{uuid.uuid4().hex[:8]}"
            user = User(user_id, issue_token(settings, user_id), on_one)
            for n in range(TASKS):
                assert (await user.post("/tasks", json={"title": f"errand {n}"})).status_code == 201
            yield TwoInstances(user, User(user_id, user.token, on_two))
    finally:
        _stop(one)
        _stop(two)


async def test_a_stream_cut_on_one_instance_resumes_on_the_other_from_redis(
    redis: RedisServer, database_url: str, db: PlainSql, settings: Settings, tmp_path: Path
) -> None:
    async with _two_instances(redis, database_url, settings, tmp_path) as user:
        before: list[Event] = []
        async with user.on_one.client.stream(
            "POST",
            user.on_one.url("/chat/stream"),
            json={"message": "show my tasks"},
            headers=user.on_one.headers,
        ) as cut:
            await _read(cut, before, until=8)  # then the connection is dropped
        run_id = before[0]["run_id"]
        after: list[Event] = []
        async with user.on_two.client.stream(
            "GET",
            user.on_two.url(f"/runs/{run_id}/events"),
            headers={**user.on_two.headers, "Last-Event-ID": f"{run_id}:{before[-1]['seq']}"},
        ) as resumed:
            assert resumed.status_code == 200
            await _read(resumed, after)
        whole: list[Event] = []
        async with user.on_two.client.stream(
            "GET", user.on_two.url(f"/runs/{run_id}/events"), headers=user.on_two.headers
        ) as replayed:
            await _read(replayed, whole)

    seqs = [event["seq"] for event in before + after]
    assert seqs == list(range(1, len(seqs) + 1)), "resumed on the other instance, gapless"
    assert after[-1]["type"] == "done"
    assert before + after == whole
    in_redis = redis.cli("XRANGE", f"todo-chat:{{{run_id}}}:events", "-", "+")
    entries = [line for line in in_redis.splitlines() if line.endswith("-0")]
    assert entries == [f"{seq}-0" for seq in seqs], "every event in the run's Redis stream"
    assert await db.rows("SELECT seq FROM run_events WHERE run_id = :id", id=run_id) == []
    stored = await db.rows("SELECT status FROM runs WHERE id = :id", id=run_id)
    assert stored == [{"status": "complete"}]


async def test_a_cancel_on_the_other_instance_stops_a_run_streaming_through_redis(
    redis: RedisServer, database_url: str, db: PlainSql, settings: Settings, tmp_path: Path
) -> None:
    async with _two_instances(redis, database_url, settings, tmp_path) as user:
        events: list[Event] = []
        async with user.on_one.client.stream(
            "POST",
            user.on_one.url("/chat/stream"),
            json={"message": "show my tasks"},
            headers=user.on_one.headers,
        ) as streaming:
            reading = asyncio.create_task(_read(streaming, events))
            await eventually(_async(lambda: len(events) >= 4), "the answer has begun")
            cancelled = await user.on_two.post(f"/runs/{events[0]['run_id']}/cancel")
            await reading

    assert cancelled.status_code in (200, 202), cancelled.text
    assert (events[-1]["type"], events[-1]["status"]) == ("done", "cancelled")
    stored = await db.rows("SELECT status FROM runs WHERE id = :id", id=events[0]["run_id"])
    assert stored == [{"status": "cancelled"}]


async def test_ready_is_503_while_the_redis_event_log_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    """`/ready` asks the event log what a send asks (`RunRegistry.check_log`): with Redis
    stopped, not ready (503 `event_log_unavailable`, as every send would get), ready again
    once it is back. A Redis of the test's own, never the machine's."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        on_redis = with_settings(settings, event_log="redis", redis_url=server.url)
        async with serve(create_app(on_redis), on_redis) as live:
            before = await live.client.get("/ready")
            server.stop()
            away = await live.client.get("/ready")
            server.start()
            back = await live.client.get("/ready")
    finally:
        server.stop()
    assert before.status_code == 200 and before.json()["status"] == "ready"
    assert away.status_code == 503 and away.headers["retry-after"] == "5"
    assert away.json()["error"] == {
        "code": "event_log_unavailable",
        "message": "The service cannot reach its event log. Please try again shortly.",
    }
    assert back.status_code == 200

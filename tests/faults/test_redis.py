"""The event log on Redis when Redis or an instance fails, with real processes: two service
processes (`python -m app serve`, REDIS_URL set) on the fault suite's PostgreSQL, and Redis
servers of the test's own (a single server, and a three-master cluster), keeping nothing on
disk, as a cache-configured Redis would not.

- **Redis stopped, then started again empty, in the middle of runs**: a send while it is away
  is refused with a retryable 503 (`event_log_unavailable`); every stream still ends with a
  final event or a typed error (the run's own on the instance running it, whole; a follower on
  the other instance gets the run whole, or is told events are missing), every answer is
  stored, no conversation is left answering (409), no request gets a 500.
- **An instance killed** while its runs stream through Redis: followers on the other instance
  get the final event its recovery stores, and the conversations take new messages.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from app.runs.live import UNLOGGED_WINDOW
from app.settings import Settings
from app.web.auth import issue_token
from tests.faults.conftest import PrivatePostgres, scale
from tests.faults.streams import Stream, read_stream
from tests.redis_servers import (
    RedisCluster,
    Servers,
    start_all_empty,
    stop_all,
)
from tests.support import PlainSql, User, eventually, start_service, text_of

TASKS = 40
"""Each user's tasks: "show my tasks" is then an answer of a few hundred tokens, paced."""
TOKEN_DELAY_MS = 25
Event = dict[str, Any]


def _services(
    postgres: PrivatePostgres, servers: Servers, tmp_path: Path
) -> list[tuple[subprocess.Popen[bytes], str, Path]]:
    env = {
        "OFFLINE_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS),
        "REDIS_URL": servers.url,
        "REDIS_CLUSTER": "1" if isinstance(servers, RedisCluster) else "0",
    }
    started = []
    for name in ("one", "two"):
        log = tmp_path / f"{name}.log"
        process, url = start_service(postgres.url, log, **env)
        started.append((process, url, log))
    return started


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _user(client: httpx.AsyncClient, settings: Settings, name: str) -> User:
    user_id = f"{name}-{uuid.uuid4().hex[:8]}"
    user = User(user_id, issue_token(settings, user_id), client)
    for n in range(TASKS):
        created = await user.post("/tasks", json={"title": f"errand number {n}"})
        assert created.status_code == 201, created.text
    return user


async def _follow(user: User, run_id: str, events: list[Event]) -> int:
    """A follower of the run (`GET /runs/{id}/events`) on `user`'s instance; its status."""
    async with user.client.stream(
        "GET", user.url(f"/runs/{run_id}/events"), headers=user.headers
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
        return response.status_code


def _on(user: User, client: httpx.AsyncClient) -> User:
    return User(user.id, user.token, client)


def _no_500(logs: list[Path]) -> None:
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Exception in ASGI application" not in text, f"{log.name}: an exception escaped"
        assert not [line for line in text.splitlines() if " 500 " in line], f"{log.name}: a 500"


async def _until(check: Any, what: str) -> None:
    async def checked() -> bool:
        return bool(check())

    await eventually(checked, what, within=60)


@dataclass
class Traffic:
    """Runs streaming on one instance (`reading`, into `streams`), each followed from the other
    (`following`, into `followed`) once its first text arrived."""

    users: list[User]
    streams: list[Stream]
    reading: list[asyncio.Task[Stream]]
    followed: list[list[Event]]
    following: list[asyncio.Task[int]]


async def _traffic(
    owner: httpx.AsyncClient,
    other: httpx.AsyncClient,
    settings: Settings,
    name: str,
    count: int,
) -> Traffic:
    users = [await _user(owner, settings, name) for _ in range(count)]
    streams = [Stream() for _ in users]
    reading = [
        asyncio.create_task(read_stream(user, "show my tasks", stream=stream))
        for user, stream in zip(users, streams, strict=True)
    ]
    with anyio.fail_after(60):
        for stream in streams:
            await stream.answering.wait()
    followed: list[list[Event]] = [[] for _ in users]
    following = [
        asyncio.create_task(_follow(_on(user, other), stream.events[0]["run_id"], seen))
        for user, stream, seen in zip(users, streams, followed, strict=True)
    ]
    return Traffic(users, streams, reading, followed, following)


async def test_redis_stopped_and_restarted_empty_mid_runs(
    servers: Servers,
    fault_settings: Settings,
    private_postgres: PrivatePostgres,
    private_db: PlainSql,
    tmp_path: Path,
) -> None:
    count = scale(20, 4)
    (one, one_url, one_log), (two, two_url, two_log) = _services(
        private_postgres, servers, tmp_path
    )
    try:
        async with (
            httpx.AsyncClient(base_url=one_url, timeout=60) as on_one,
            httpx.AsyncClient(base_url=two_url, timeout=60) as on_two,
        ):
            traffic = await _traffic(on_one, on_two, fault_settings, "redis-restart", count)
            users, streams, reading = traffic.users, traffic.streams, traffic.reading
            followed, following = traffic.followed, traffic.following
            await _until(lambda: all(len(seen) >= 3 for seen in followed), "followers follow")

            await asyncio.to_thread(stop_all, servers)
            refused = await users[0].post("/chat/stream", json={"message": "hello"})
            await asyncio.to_thread(start_all_empty, servers)

            with anyio.fail_after(120):
                await asyncio.gather(*reading)
                statuses = await asyncio.gather(*following)
            # No conversation is left answering: each takes a new message.
            again = [
                await user.post(
                    "/chat/stream",
                    json={"message": "hello", "conversation_id": s.events[0]["conversation_id"]},
                )
                for user, s in zip(users, streams, strict=True)
            ]
            # Empty once more, after the runs' end: nobody holds them to append again. A
            # replay, and a resume from an id, are told that events are missing.
            await asyncio.to_thread(stop_all, servers)
            await asyncio.to_thread(start_all_empty, servers)
            run_id = streams[0].events[0]["run_id"]
            replayed: list[Event] = []
            replay_status = await _follow(_on(users[0], on_two), run_id, replayed)
            resumed: list[Event] = []
            async with on_two.stream(
                "GET",
                users[0].url(f"/runs/{run_id}/events"),
                headers={**users[0].headers, "Last-Event-ID": f"{run_id}:3"},
            ) as response:
                resume_status = response.status_code
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        resumed.append(json.loads(line[6:]))
    finally:
        for process in (one, two):
            _stop(process)

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "event_log_unavailable"
    assert refused.headers["retry-after"]
    assert set(statuses) == {200}
    assert [response.status_code for response in again] == [200] * count
    last = streams[0].events[-1]["seq"]
    for told in (replayed, resumed):
        (error,) = told
        assert (error["type"], error["code"], error["seq"]) == ("error", "events_missing", last - 1)
    assert (replay_status, resume_status) == (200, 200)
    missing = 0
    for stream, seen in zip(streams, followed, strict=True):
        events = stream.events
        assert stream.status == 200 and not stream.cut
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("done") == 1 and events[-1]["type"] == "done"
        # The follower elsewhere: the run whole, or told that events are missing.
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs)), "each event once, in order"
        assert seen[-1]["type"] in ("done", "error"), f"cut: {seen[-1]}"
        if seen[-1]["type"] == "done":
            assert seen == events, "a follower's run is the run, whole"
        else:
            assert seen[-1]["code"] == "events_missing", seen[-1]
            assert seen[:-1] == events[: len(seen) - 1]
            missing += 1
        stored = await private_db.rows(
            "SELECT r.status, m.content FROM runs r JOIN messages m"
            " ON m.id = r.assistant_message_id WHERE r.id = :id",
            id=events[0]["run_id"],
        )
        assert stored == [{"status": "complete", "content": text_of(events)}]
        in_postgres = await private_db.rows(
            "SELECT count(*) AS n FROM run_events WHERE run_id = :id", id=events[0]["run_id"]
        )
        assert in_postgres == [{"n": 0}]
    _no_500([one_log, two_log])
    print(f"{count} runs through a Redis restarted empty; {missing} followers told of a gap")


async def test_an_instance_killed_while_its_runs_stream_through_redis_is_recovered(
    servers: Servers,
    fault_settings: Settings,
    private_postgres: PrivatePostgres,
    private_db: PlainSql,
    tmp_path: Path,
) -> None:
    count = scale(10, 3)
    (doomed, doomed_url, _), (survivor, survivor_url, survivor_log) = _services(
        private_postgres, servers, tmp_path
    )
    try:
        async with (
            httpx.AsyncClient(base_url=doomed_url, timeout=60) as on_doomed,
            httpx.AsyncClient(base_url=survivor_url, timeout=60) as on_survivor,
        ):
            traffic = await _traffic(on_doomed, on_survivor, fault_settings, "redis-kill", count)
            users, streams, reading = traffic.users, traffic.streams, traffic.reading
            followed, following = traffic.followed, traffic.following
            await _until(lambda: all(len(seen) >= 5 for seen in followed), "followers follow")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
            with anyio.fail_after(120):
                await asyncio.gather(*reading)
                statuses = await asyncio.gather(*following)
            again = [
                await _on(user, on_survivor).post(
                    "/chat/stream",
                    json={"message": "hello", "conversation_id": s.events[0]["conversation_id"]},
                )
                for user, s in zip(users, streams, strict=True)
            ]
    finally:
        for process in (doomed, survivor):
            _stop(process)

    assert set(statuses) == {200}
    assert [response.status_code for response in again] == [200] * count
    for stream, seen in zip(streams, followed, strict=True):
        assert stream.cut, "the killed instance's own streams are cut"
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs))
        final = seen[-1]
        assert (final["type"], final["code"]) == ("error", "interrupted"), final
        stored_through = final["stored_through"]
        assert final["seq"] == stored_through + UNLOGGED_WINDOW + 1
        assert seqs[:-1] == list(range(1, stored_through + 1)), "the log, whole, then the end"
        shown = min(len(seen) - 1, len(stream.events))
        assert seen[:shown] == stream.events[:shown], "the follower's events are the run's"
        run = await private_db.rows(
            "SELECT r.status, m.content FROM runs r JOIN messages m"
            " ON m.id = r.assistant_message_id WHERE r.id = :id",
            id=seen[0]["run_id"],
        )
        upto = [e for e in seen[:-1] if e["seq"] <= stored_through]
        assert run == [{"status": "incomplete", "content": text_of(upto)}]
    _no_500([survivor_log])

"""SIGTERM to two instances at once, with streams open on both: the runs' own streams on the
instance running them, and followers of those runs on the other. Every stream ends with the
run's one final event before the processes exit."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from app.settings import Settings
from app.web.auth import issue_token
from tests.faults.conftest import scale
from tests.faults.streams import Stream, read_stream
from tests.support import User, start_service

PACED = {"OFFLINE_TOKEN_DELAY_MS": "150", "SHUTDOWN_GRACE_SECONDS": "1"}


async def _follow(user: User, run_id: str, following: asyncio.Event) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with user.client.stream(
        "GET", user.url(f"/runs/{run_id}/events"), headers=user.headers
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                following.set()
    return events


async def test_sigterm_to_two_instances_ends_every_stream_with_the_runs_final_event(
    fault_settings: Settings, tmp_path: Path
) -> None:
    count = scale(10, 3)
    assert fault_settings.database_url is not None
    owner, owner_url = start_service(fault_settings.database_url, tmp_path / "owner.log", **PACED)
    other, other_url = start_service(fault_settings.database_url, tmp_path / "other.log", **PACED)
    processes = [owner, other]
    try:
        async with (
            httpx.AsyncClient(base_url=owner_url, timeout=60) as at_owner,
            httpx.AsyncClient(base_url=other_url, timeout=60) as at_other,
        ):
            names = [f"sigterm2-{n}-{time.monotonic_ns()}" for n in range(count)]
            tokens = [issue_token(fault_settings, name) for name in names]
            streams = [Stream() for _ in names]
            reading = [
                asyncio.create_task(
                    read_stream(User(name, token, at_owner), "hello", stream=stream)
                )
                for name, token, stream in zip(names, tokens, streams, strict=True)
            ]
            with anyio.fail_after(60):
                for stream in streams:
                    await stream.answering.wait()
            following = [asyncio.Event() for _ in names]
            followers = [
                asyncio.create_task(
                    _follow(User(name, token, at_other), stream.events[0]["run_id"], event)
                )
                for name, token, stream, event in zip(
                    names, tokens, streams, following, strict=True
                )
            ]
            with anyio.fail_after(60):
                for event in following:
                    await event.wait()
            stopping = time.monotonic()
            for process in processes:
                process.send_signal(signal.SIGTERM)
            with anyio.fail_after(60):
                await asyncio.gather(*reading)
                followed = await asyncio.gather(*followers)
        codes = [await asyncio.to_thread(process.wait, 60) for process in processes]
        elapsed = time.monotonic() - stopping
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)

    assert all(code in (0, -signal.SIGTERM) for code in codes), codes
    for stream, events in zip(streams, followed, strict=True):
        assert not stream.cut
        final = stream.final
        assert (final["type"], final["code"]) == ("error", "server_restarting"), final
        assert events[-1] == final, "the follower on the other instance got the same end"
        assert [e["type"] for e in events].count("error") == 1
    assert elapsed < 30, f"the processes outlived the platform's 30 s: {elapsed:.1f} s"
    print(f"{count} runs and their followers elsewhere: both gone {elapsed:.1f} s after SIGTERM")

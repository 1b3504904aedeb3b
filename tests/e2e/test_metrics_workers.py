"""/metrics with two workers: the Procfile's `web` line run as the platform runs it, with
WEB_CONCURRENCY=2. Requests and turns served by each worker appear summed whichever worker
answers the scrape, live gauges of both are summed, and a new start begins from zero (the
directory of the last start is not read)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import httpx

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from tests.conftest import TEST_SECRET
from tests.deploy.test_heroku import _until_ready, _worker_of, procfile
from tests.e2e.test_metrics import scrape, value
from tests.support import environment, free_port

TOKEN = "metrics-a5f437d0e41f56f7610db59cfd6d480287b30030f2906e3c"


async def _one_round(database_url: str) -> None:
    port = free_port()
    env = environment(
        DATABASE_URL=database_url,
        PORT=str(port),
        JWT_SECRET=TEST_SECRET,
        APP_ENV="production",
        METRICS_TOKEN=TOKEN,
        WEB_CONCURRENCY="2",
    )
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        procfile("web"),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _until_ready(process, base_url)
        user = "workers-" + os.urandom(4).hex()
        headers = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=TEST_SECRET), user)}"}
        served: Counter[int] = Counter()
        turns: Counter[int] = Counter()
        scrapes: dict[int, dict[str, float]] = {}
        for _ in range(200):
            if len(scrapes) == 2:
                break
            async with httpx.AsyncClient(
                base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=1)
            ) as client:
                probe = await client.get("/health")
                worker = _worker_of(probe, port, process.pid)
                served[worker] += 1
                if not turns[worker]:
                    answer = await client.post(
                        f"/api/{user}/chat", json={"message": "add buy milk"}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text
                    turns[worker] += 1
                elif len(turns) == 2 and worker not in scrapes:
                    samples = await scrape(client, TOKEN)
                    scrapes[worker] = {
                        "health": value(
                            samples,
                            "todo_chat_http_requests_total",
                            method="GET",
                            route="/health",
                            status="200",
                        ),
                        "runs": value(samples, "todo_chat_runs_total", outcome="complete", code=""),
                        "in_progress": value(samples, "todo_chat_runs_in_progress"),
                    }
                    scrapes[worker]["served_then"] = sum(served.values())
        assert len(scrapes) == 2, "every connection went to the same worker"
        for seen in scrapes.values():
            assert seen["health"] == seen["served_then"]  # both workers' requests, summed
            assert seen["runs"] == 2  # one turn on each worker
            assert seen["in_progress"] == 0
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)


async def test_two_workers_are_summed_and_each_start_begins_at_zero(database_url: str) -> None:
    await _one_round(database_url)
    await _one_round(database_url)  # the same counts again: nothing of the first start is read

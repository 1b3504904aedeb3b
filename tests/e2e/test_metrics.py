"""GET /metrics over HTTP: each metric moves when its event happens, and no label names a user.

Counters are compared before and after (the tests share one process, and so its metrics)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.db.gate import Priority
from app.db.uow import Database
from app.main import create_app
from app.settings import Settings
from app.web.state import state_of
from tests.conftest import with_settings
from tests.e2e.test_runs import _Pausing
from tests.support import LiveServer, eventually, serve

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _streams_closed(live: LiveServer) -> Samples:
    """The metrics once the runs have ended and every stream's gauge is back to 0 (a gauge
    falls as its response ends, just after the client has read the last byte)."""
    await live.registry.wait_idle()

    async def closed() -> bool:
        now = await scrape(live.client)
        return all(
            value(now, "todo_chat_streams_open", source=source) == 0
            for source in ("local", "followed")
        )

    await eventually(closed, "the streams' gauges back to 0")
    return await scrape(live.client)


@pytest.fixture
async def paced(settings: Settings) -> AsyncIterator[LiveServer]:
    """Tokens 30 ms apart: a run lasts long enough to be seen in progress."""
    paced_settings = with_settings(settings, offline_token_delay_ms=30, max_active_runs=1)
    async with serve(create_app(paced_settings), paced_settings) as live:
        yield live
        await live.registry.wait_idle()


async def test_a_turn_with_a_tool_moves_the_run_metrics(paced: LiveServer) -> None:
    user = paced.user("metrics")
    before = await scrape(paced.client)
    events = await user.chat("add buy milk")
    assert events[-1]["type"] == "done"
    after = await scrape(paced.client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("todo_chat_runs_total", outcome="complete", code="") == 1
    assert moved("todo_chat_run_duration_seconds_count", outcome="complete") == 1
    assert moved("todo_chat_time_to_first_token_seconds_count") == 1
    texts = sum(1 for event in events if event["type"] == "text")
    assert moved("todo_chat_inter_token_seconds_count") == texts - 1
    assert moved("todo_chat_tool_calls_total", tool="add_task", outcome="ok") == 1
    usage = events[-1]["usage"]
    assert moved("todo_chat_tokens_total", direction="input") == usage["input_tokens"]
    assert moved("todo_chat_tokens_total", direction="output") == usage["output_tokens"]
    assert moved("todo_chat_event_log_batch_events_count") >= 1
    assert moved("todo_chat_event_log_write_seconds_count") >= 1
    route = "/api/{user_id}/chat/stream"
    assert moved("todo_chat_http_requests_total", method="POST", route=route, status="200") == 1
    assert moved("todo_chat_http_response_start_seconds_count", method="POST", route=route) == 1
    text = (await paced.client.get("/metrics")).text
    assert user.id not in text and "metrics-" not in text  # no user id in any label


async def test_ai_sdk_streams_are_counted_as_open_streams(paced: LiveServer) -> None:
    user = paced.user()
    body = {
        "id": "metrics-chat",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    }
    async with paced.client.stream(
        "POST", user.url("/ai/chat"), json=body, headers=user.headers
    ) as stream:
        lines = stream.aiter_lines()
        async for line in lines:
            if line.startswith("data: "):
                break
        during = await scrape(paced.client)
        async with paced.client.stream(
            "GET", user.url("/ai/chat/metrics-chat/stream"), headers=user.headers
        ) as resumed:
            assert resumed.status_code == 200
            both = await scrape(paced.client)
            async for _ in resumed.aiter_lines():
                pass
        async for _ in lines:
            pass
    await _streams_closed(paced)
    assert value(during, "todo_chat_streams_open", source="local") == 1
    assert value(both, "todo_chat_streams_open", source="followed") == 1


async def test_ag_ui_streams_are_counted_as_open_streams_and_a_resume_as_one(
    paced: LiveServer,
) -> None:
    user = paced.user()
    before = await scrape(paced.client)
    body = {
        "threadId": "metrics-thread",
        "runId": "r1",
        "messages": [{"id": "m1", "role": "user", "content": "hi"}],
    }
    async with paced.client.stream(
        "POST", user.url("/ag-ui"), json=body, headers=user.headers
    ) as stream:
        lines = stream.aiter_lines()
        async for line in lines:
            if line.startswith("id: "):
                cursor = line[4:]
                break
        during = await scrape(paced.client)
        async with paced.client.stream(
            "GET",
            user.url("/ag-ui/metrics-thread/stream"),
            headers={**user.headers, "Last-Event-ID": cursor},
        ) as resumed:
            assert resumed.status_code == 200
            both = await scrape(paced.client)
            async for _ in resumed.aiter_lines():
                pass
        async for _ in lines:
            pass
    after = await _streams_closed(paced)
    assert value(during, "todo_chat_streams_open", source="local") == 1
    assert value(both, "todo_chat_streams_open", source="followed") == 1
    assert value(after, "todo_chat_resumes_total") - value(before, "todo_chat_resumes_total") == 1


async def test_a_tool_that_fails_is_counted_by_its_error(server: LiveServer) -> None:
    user = server.user()
    before = await scrape(server.client)
    await user.chat("complete task 999999")
    after = await scrape(server.client)
    name, labels = "todo_chat_tool_calls_total", {"tool": "complete_task", "outcome": "not_found"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


async def test_live_gauges_refusals_and_resumes(paced: LiveServer) -> None:
    user = paced.user()
    before = await scrape(paced.client)
    headers = {**user.headers, "Accept": "text/event-stream"}
    body = {"message": "add call the plumber and water the plants"}
    async with paced.client.stream(
        "POST", user.url("/chat/stream"), json=body, headers=headers
    ) as stream:
        lines = stream.aiter_lines()
        run_id = ""
        async for line in lines:
            if line.startswith("data: ") and '"type":"start"' in line:
                run_id = re.search(r'"run_id":"([^"]+)"', line)[1]  # type: ignore[index]
                break
        during = await scrape(paced.client)
        assert value(during, "todo_chat_runs_in_progress") == 1
        assert value(during, "todo_chat_streams_open", source="local") == 1
        # The stream is timed to its start, while it is still open: its duration stays out.
        route = {"method": "POST", "route": "/api/{user_id}/chat/stream"}
        started = "todo_chat_http_response_start_seconds_count"
        assert value(during, started, **route) - value(before, started, **route) == 1
        ended = "todo_chat_http_requests_total"
        assert value(during, ended, **route, status="200") == value(
            before, ended, **route, status="200"
        )

        conversation = (await user.get("/conversations")).json()["conversations"][0]["id"]
        busy = await user.post("/chat", json={"message": "hi", "conversation_id": conversation})
        assert busy.status_code == 409
        too_many = await user.post("/chat", json={"message": "hi"})
        assert too_many.status_code == 429

        async with paced.client.stream(
            "GET",
            user.url(f"/runs/{run_id}/events"),
            headers={**headers, "Last-Event-ID": f"{run_id}:1"},
        ) as follower:
            assert follower.status_code == 200
            following = await scrape(paced.client)
            assert value(following, "todo_chat_streams_open", source="followed") == 1
            async for _ in follower.aiter_lines():
                pass
        async for _ in lines:
            pass
    after = await _streams_closed(paced)
    assert value(after, "todo_chat_runs_in_progress") == 0
    for status, code in (("409", "run_active"), ("429", "too_many_runs")):
        name, labels = "todo_chat_refusals_total", {"status": status, "code": code}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert value(after, "todo_chat_resumes_total") - value(before, "todo_chat_resumes_total") == 1


async def test_metrics_token(settings: Settings) -> None:
    guarded = with_settings(settings, metrics_token="m" * 40)
    async with serve(create_app(guarded), guarded) as live:
        refused = await live.client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "not_authenticated"
        wrong = await live.client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 39})
        assert wrong.status_code == 401
        assert "todo_chat_runs_in_progress" in str(await scrape(live.client, "m" * 40))


async def test_the_connection_gate_counts_its_queue(settings: Settings) -> None:
    """A pool of one connection, held by the test: a request waits in the gate's queue (the
    gauge says 1 meanwhile), then takes the connection once it is let go (one wait counted)."""
    one = with_settings(settings, db_pool_size=1)
    async with serve(create_app(one), one) as live:
        user = live.user()
        before = await scrape(live.client)
        database: Database = state_of(live.app).database
        async with database.unit_of_work(Priority.END) as held:
            await held.connection.exec_driver_sql("SELECT 1")
            waiting = asyncio.create_task(user.get("/tasks"))

            async def queued() -> bool:
                now = await scrape(live.client)
                return value(now, "todo_chat_db_queue", priority="new") == 1

            await eventually(queued, "the request queued for the connection")
        assert (await waiting).status_code == 200
        after = await scrape(live.client)
    name = "todo_chat_db_wait_seconds_count"
    assert value(after, name, priority="new") - value(before, name, priority="new") >= 1
    assert value(after, "todo_chat_db_queue", priority="new") == 0


async def test_a_cancelled_run_is_counted_as_cancelled(settings: Settings) -> None:
    """Stopped by its user, a run ends with `done` (status cancelled): its outcome is
    `cancelled`, not `complete`, in the runs counter and the duration histogram."""
    model = _Pausing({"add buy milk": (2,)})
    async with serve(create_app(settings, model=model), settings) as live:
        user = live.user()
        before = await scrape(live.client)
        body = {
            "id": "metrics-cancel",
            "messages": [
                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "add buy milk"}]}
            ],
        }

        async def send() -> list[str]:
            async with live.client.stream(
                "POST", user.url("/ai/chat"), json=body, headers=user.headers
            ) as stream:
                return [line async for line in stream.aiter_lines()]

        posted = asyncio.create_task(send())
        await model.reached["add buy milk", 2].wait()
        cancelled = await user.post("/ai/chat/metrics-cancel/cancel")
        await posted
        after = await _streams_closed(live)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("todo_chat_runs_total", outcome="cancelled", code="") == 1
    assert moved("todo_chat_runs_total", outcome="complete", code="") == 0
    assert moved("todo_chat_run_duration_seconds_count", outcome="cancelled") == 1

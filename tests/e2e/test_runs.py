"""Durable runs: resume after a cut at every event, cancel, one run per conversation, limits,
isolation, and two instances sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from agents.items import TResponseStreamEvent
from httpx_sse import aconnect_sse
from openai.types.responses import ResponseTextDeltaEvent

from app.agent.offline import OfflineModel
from app.events import error_message
from app.main import create_app
from app.runs import registry
from app.settings import Settings
from tests.conftest import with_settings
from tests.postgres_proxy import Drop, DroppingProxy
from tests.support import LiveServer, PlainSql, User, eventually, serve, text_of, types_of

Events = list[dict[str, Any]]


class _Pausing(OfflineModel):
    """The offline model, stopping before chosen text deltas until the test lets it go on (a
    cancel ends the wait too), at `pace_ms` a token. `stops` says where: for a turn whose
    input holds the marker, before which of its text deltas (indices; -1 is the last).
    `reached[marker, index]` is set there, `go_on[marker, index]` lets it go on.

    A run is then still going, or has reached a point, because the test says so, not because
    its tokens are slow enough: the tests below waited 0.2 s and 0.3 s for that before."""

    def __init__(self, stops: dict[str, tuple[int, ...]], *, pace_ms: int = 0) -> None:
        super().__init__()
        self._stops = stops
        self._pace = pace_ms / 1000
        keys = [(marker, index) for marker, indices in stops.items() for index in indices]
        self.reached = {key: anyio.Event() for key in keys}
        self.go_on = {key: anyio.Event() for key in keys}

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        events = [event async for event in super().stream_response(*args, **kwargs)]
        said = json.dumps(args[1], default=str)
        mine = next((marker for marker in self._stops if marker in said), None)
        texts = [n for n, event in enumerate(events) if isinstance(event, ResponseTextDeltaEvent)]
        stops = {texts[i]: (mine, i) for i in self._stops[mine]} if mine and texts else {}
        for position, event in enumerate(events):
            if position in stops:
                self.reached[stops[position]].set()
                await self.go_on[stops[position]].wait()
            if mine and self._pace and isinstance(event, ResponseTextDeltaEvent):
                await asyncio.sleep(self._pace)
            yield event


@pytest.fixture
def paced(settings: Settings) -> Settings:
    """The offline model at 4 ms a token: runs last long enough to be cut, joined, cancelled."""
    return with_settings(settings, offline_token_delay_ms=4)


async def _post_until(user: User, message: str, count: int, **body: Any) -> Events:
    """POST a message, read `count` events with the seed's parsing, then hang up."""
    events: Events = []
    buffer = ""
    payload = {"message": message, **body}
    async with user.client.stream(
        "POST", user.url("/chat/stream"), json=payload, headers=user.headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_text():
            buffer += chunk
            blocks = buffer.split("\n\n")
            buffer = blocks.pop()
            for block in blocks:
                if block.startswith("data: "):
                    events.append(json.loads(block[6:]))
                    if len(events) == count:
                        return events
    return events


async def _read_run(user: User, run_id: str, *, last_event_id: str | None = None) -> Events:
    """GET a run's events to the end with a spec-compliant SSE client."""
    headers = dict(user.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with aconnect_sse(
        user.client, "GET", user.url(f"/runs/{run_id}/events"), headers=headers
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [json.loads(event.data) async for event in source.aiter_sse() if event.data]


async def test_resuming_after_every_event_gives_the_whole_stream_once(
    paced: Settings,
) -> None:
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        complete = await _post_until(user, "hello", 10_000)
        whole = await _read_run(user, complete[0]["run_id"])
        assert whole == complete, "the log replays exactly what was streamed"
        for cut in range(1, len(whole)):
            first = await _post_until(user, "hello", cut)
            rest = await _read_run(user, first[0]["run_id"], last_event_id=str(first[-1]["seq"]))
            joined = first + rest
            assert [e["seq"] for e in joined] == list(range(1, len(joined) + 1))
            assert types_of(joined) == types_of(whole)
            assert text_of(joined) == text_of(whole)
        await live.registry.wait_idle()


async def test_a_spec_compliant_client_resumes_by_itself_on_both_endpoints(
    paced: Settings,
) -> None:
    """Like EventSource (GET) and fetch-event-source (POST): reconnect with Last-Event-ID."""
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        reference = await _post_until(user, "show my tasks", 10_000)
        for cut in range(1, len(reference)):
            received: Events = []
            last_id: str | None = None
            # fetch-event-source retries the POST itself; EventSource reconnects to a GET URL.
            by_post = cut % 2 == 1
            url, method = user.url("/chat/stream"), "POST"
            body: dict[str, str] | None = {"message": "show my tasks"}
            while not received or received[-1]["type"] not in ("done", "error"):
                headers = dict(user.headers)
                if last_id is not None:
                    headers["Last-Event-ID"] = last_id
                async with aconnect_sse(
                    user.client, method, url, json=body, headers=headers
                ) as source:
                    assert source.response.status_code == 200
                    async for event in source.aiter_sse():
                        last_id = event.id
                        if not event.data:
                            continue
                        received.append(json.loads(event.data))
                        if (
                            len(received) == cut
                            and method == "POST"
                            and "Last-Event-ID" not in headers
                        ):
                            break  # the network fails once, after `cut` events
                if not by_post:
                    url, method, body = (
                        user.url(f"/runs/{received[0]['run_id']}/events"),
                        "GET",
                        None,
                    )
            assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
            assert types_of(received) == types_of(reference)
            assert text_of(received) == text_of(reference)
        await live.registry.wait_idle()


async def test_cancel_during_text_keeps_the_partial_answer(paced: Settings, db: PlainSql) -> None:
    slow = with_settings(paced, offline_token_delay_ms=40)
    async with serve(create_app(slow), slow) as live:
        user = live.user()
        first = await _post_until(user, "hello", 3)
        run_id = first[0]["run_id"]
        assert types_of(first)[-1] == "text"
        cancelled = await user.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        again = await user.post(f"/runs/{run_id}/cancel")
        assert again.status_code == 200 and again.json() == cancelled.json()
        events = await _read_run(user, run_id)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "cancelled"
    stored = await db.rows(
        "SELECT status, content FROM messages WHERE id = :id", id=events[-1]["message_id"]
    )
    assert stored == [{"status": "cancelled", "content": text_of(events)}]
    assert 0 < len(text_of(events)) < 100


async def test_cancel_during_a_tool_call(paced: Settings, db: PlainSql) -> None:
    slow = with_settings(paced, offline_token_delay_ms=40)
    async with serve(create_app(slow), slow) as live:
        user = live.user()
        await user.post("/tasks", json={"title": "Buy milk"})
        first = await _post_until(user, "done with milk", 4)  # start thinking tool_call ...
        assert "tool_call" in types_of(first)
        run_id = first[0]["run_id"]
        assert (await user.post(f"/runs/{run_id}/cancel")).json()["status"] == "cancelled"
        events = await _read_run(user, run_id)
        run = (await user.get(f"/runs/{run_id}")).json()
    assert events[-1] == {**events[-1], "type": "done", "status": "cancelled"}
    assert run["status"] == "cancelled" and run["assistant_message_id"] == events[-1]["message_id"]
    stored = await db.rows(
        "SELECT status, tool_calls FROM messages WHERE id = :id", id=events[-1]["message_id"]
    )
    assert stored[0]["status"] == "cancelled"
    assert stored[0]["tool_calls"][0]["name"] == "list_tasks"


async def test_one_run_per_conversation_and_a_limit_per_user(paced: Settings) -> None:
    limited = with_settings(paced, offline_token_delay_ms=30, max_active_runs=2)
    async with serve(create_app(limited), limited) as live:
        user = live.user()
        first = await _post_until(user, "hello", 1)
        conversation_id, run_id = first[0]["conversation_id"], first[0]["run_id"]

        busy = await user.post(
            "/chat/stream", json={"message": "again", "conversation_id": conversation_id}
        )
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "run_active"
        assert busy.json()["error"]["run_id"] == run_id
        assert (await user.delete(f"/conversations/{conversation_id}")).status_code == 409

        await _post_until(user, "hello", 1)  # a second run, in a new conversation
        over = await user.post("/chat/stream", json={"message": "a third"})
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "too_many_runs"

        replaced = await _post_until(
            user, "show my tasks", 10_000, conversation_id=conversation_id, cancel_active=True
        )
        assert replaced[-1]["type"] == "done"
        assert (await user.get(f"/runs/{run_id}")).json()["status"] == "cancelled"
        await live.registry.wait_idle()


async def test_joining_a_conversations_active_run(paced: Settings) -> None:
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        first = await _post_until(user, "hello", 2)
        conversation_id = first[0]["conversation_id"]
        async with aconnect_sse(
            user.client,
            "GET",
            user.url(f"/conversations/{conversation_id}/stream"),
            headers=user.headers,
        ) as source:
            joined = [json.loads(e.data) async for e in source.aiter_sse() if e.data]
        assert joined[:2] == first and joined[-1]["type"] == "done"
        idle = await user.get(f"/conversations/{conversation_id}/stream")
        assert idle.status_code == 204


async def test_someone_elses_run_is_404_everywhere(paced: Settings) -> None:
    async with serve(create_app(paced), paced) as live:
        alice, bob = live.user("alice"), live.user("bob")
        first = await _post_until(alice, "hello", 1)
        run_id, conversation_id = first[0]["run_id"], first[0]["conversation_id"]
        for response in (
            await bob.get(f"/runs/{run_id}"),
            await bob.get(f"/runs/{run_id}/events"),
            await bob.post(f"/runs/{run_id}/cancel"),
            await bob.client.post(
                bob.url("/chat/stream"), headers={**bob.headers, "Last-Event-ID": f"{run_id}:1"}
            ),
            await bob.get("/runs/not-a-run/events"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "run_not_found"
        other = await bob.get(f"/conversations/{conversation_id}/stream")
        assert other.status_code == 404
        assert (await alice.get(f"/runs/{run_id}")).json()["status"] in ("active", "complete")
        await live.registry.wait_idle()


async def test_an_access_token_in_the_query_works_on_the_get_streams_only(
    paced: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        run_id = (await _post_until(user, "hello", 10_000))[0]["run_id"]
        with caplog.at_level(logging.INFO, logger="app.access"):
            async with aconnect_sse(
                live.client,
                "GET",
                user.url(f"/runs/{run_id}/events"),
                params={"access_token": user.token},
            ) as source:
                events = [json.loads(e.data) async for e in source.aiter_sse() if e.data]
        assert events[-1]["type"] == "done"
        assert user.token not in caplog.text and f"/runs/{run_id}/events 200" in caplog.text
        conversation = await live.client.get(
            user.url(f"/conversations/{events[0]['conversation_id']}/stream"),
            params={"access_token": user.token},
        )
        assert conversation.status_code == 204  # authenticated; no run in progress
        elsewhere = await live.client.get(user.url("/tasks"), params={"access_token": user.token})
        assert elsewhere.status_code == 401


async def test_two_instances_share_runs_through_the_database(
    settings: Settings, db: PlainSql
) -> None:
    # a's model stops before its fourth text delta, until the cancel: b's follower has then
    # read all the log holds (up to seq 4: start and three texts) and waits for more.
    model = _Pausing({"hello": (3,)})
    async with (
        serve(create_app(settings, model=model), settings) as a,
        serve(create_app(settings), settings) as b,
    ):
        on_a = a.user()
        on_b = User(on_a.id, on_a.token, b.client)
        first = await _post_until(on_a, "hello", 2)
        run_id = first[0]["run_id"]
        assert a.registry.is_running_here(run_id) and not b.registry.is_running_here(run_id)

        rest: Events = []
        caught_up = asyncio.Event()

        async def follow_on_b() -> None:
            headers = {**on_b.headers, "Last-Event-ID": f"{run_id}:2"}
            url = on_b.url(f"/runs/{run_id}/events")
            async with aconnect_sse(on_b.client, "GET", url, headers=headers) as source:
                assert source.response.status_code == 200
                async for event in source.aiter_sse():
                    if event.data:
                        rest.append(json.loads(event.data))
                        if rest[-1]["seq"] == 4:
                            caught_up.set()

        follower = asyncio.create_task(follow_on_b())
        await model.reached["hello", 3].wait()
        await asyncio.wait_for(caught_up.wait(), 30)
        assert a.registry.is_running_here(run_id), "the run is paused, not over"
        cancelled = await on_b.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        await follower
        await a.registry.wait_idle()

    joined = first + rest
    assert [e["seq"] for e in joined] == list(range(1, len(joined) + 1))
    assert joined[-1]["type"] == "done" and joined[-1]["status"] == "cancelled"
    stored = await db.rows(
        "SELECT status, content FROM messages WHERE id = :id", id=joined[-1]["message_id"]
    )
    assert stored == [{"status": "cancelled", "content": text_of(joined)}]


async def test_a_service_of_one_process_keeps_its_runs_events_in_memory(
    settings: Settings, db: PlainSql
) -> None:
    """EVENT_LOG=memory: a turn streams, ends, is stored and replays as with PostgreSQL's log,
    and not one of its events is in `run_events`."""
    alone = with_settings(settings, event_log="memory")
    async with serve(create_app(alone), alone) as live:
        user = live.user()
        streamed = await _post_until(user, "hello", 10_000)
        await live.registry.wait_idle()
        run_id = streamed[0]["run_id"]
        replayed = await _read_run(user, run_id)
        resumed = await _read_run(user, run_id, last_event_id=f"{run_id}:2")
    assert streamed[-1]["type"] == "done" and replayed == streamed
    assert resumed == streamed[2:]
    assert await db.rows("SELECT seq FROM run_events WHERE run_id = :id", id=run_id) == []
    stored = await db.rows("SELECT status, final_event FROM runs WHERE id = :id", id=run_id)
    assert stored[0]["status"] == "complete"
    assert json.loads(stored[0]["final_event"]) == streamed[-1]


async def test_old_event_logs_are_pruned(settings: Settings, db: PlainSql) -> None:
    """Past retention a run's events are gone: a reader is told so (`events_missing`, in
    place of the final event, whose seq `last_seq` still names), and a replay of its send
    gets 410, never a stream or an answer that passes what is left off as the whole run."""
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        key = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
        sent = await user.client.post(user.url("/chat"), json={"message": "hi"}, headers=key)
        assert sent.status_code == 200, sent.text
        run_id = sent.json()["run_id"]
        await live.registry.wait_idle()
        await db.execute(
            "UPDATE runs SET finished_at = now() - interval '25 hours' WHERE id = :id",
            id=run_id,
        )
        await live.recovery.prune()
        assert await db.rows("SELECT seq FROM run_events WHERE run_id = :id", id=run_id) == []
        run = (await user.get(f"/runs/{run_id}")).json()
        assert run["status"] == "complete"
        read = await _read_run(user, run_id)
        replayed = await user.client.post(user.url("/chat"), json={"message": "hi"}, headers=key)
    assert [(e["type"], e.get("code"), e["seq"]) for e in read] == [
        ("error", "events_missing", run["last_seq"])
    ]
    assert replayed.status_code == 410 and replayed.json()["error"]["code"] == "replay_expired"


END_OF_RUN = b"WITH finished AS"  # in the one statement that stores a run's end


@contextlib.asynccontextmanager
async def _dropping_the_end_of_a_run(
    settings: Settings, when: Drop
) -> AsyncIterator[tuple[LiveServer, DroppingProxy, User]]:
    """The service on a database reached through a proxy that drops the connection of the
    next statement that stores a run's end, as `when` says."""
    assert settings.database_url is not None
    async with DroppingProxy(settings.database_url) as proxy:
        proxied = with_settings(settings, database_url=proxy.url)
        async with serve(create_app(proxied), proxied) as live:
            proxy.drop(END_OF_RUN, when)
            yield live, proxy, live.user()


async def test_a_run_whose_end_was_stored_but_never_confirmed_ends_as_stored(
    settings: Settings, db: PlainSql
) -> None:
    """The end's statement commits, then the connection drops before its reply arrives: the
    client hears `done`, as the database holds it, not a retryable error that
    would have its user send the message (and add the task) again."""
    async with _dropping_the_end_of_a_run(settings, Drop.REPLY) as (live, proxy, user):
        events = await _post_until(user, "add buy milk", 10_000)
        await live.registry.wait_idle()
    assert proxy.dropped.is_set(), "no reply was lost: the test tested nothing"
    assert events[-1]["type"] == "done", events[-1]
    run = await db.rows("SELECT status FROM runs WHERE id = :id", id=events[0]["run_id"])
    assert run == [{"status": "complete"}]
    answer = await db.rows(
        "SELECT status FROM messages WHERE id = :id", id=events[-1]["message_id"]
    )
    assert answer == [{"status": "complete"}]
    tasks = await db.rows("SELECT title FROM tasks WHERE user_id = :user", user=user.id)
    assert tasks == [{"title": "Buy milk"}]


async def test_a_run_whose_end_never_reached_the_database_is_stored_on_a_retry(
    settings: Settings, db: PlainSql
) -> None:
    """The connection drops before the end's statement reaches the server: the statement is
    sent again, and the client hears `done`, as stored."""
    async with _dropping_the_end_of_a_run(settings, Drop.STATEMENT) as (live, proxy, user):
        events = await _post_until(user, "add buy milk", 10_000)
        await live.registry.wait_idle()
    assert proxy.dropped.is_set(), "no statement was lost: the test tested nothing"
    assert events[-1]["type"] == "done", events[-1]
    run = await db.rows("SELECT status, last_seq FROM runs WHERE id = :id", id=events[0]["run_id"])
    assert run == [{"status": "complete", "last_seq": events[-1]["seq"]}]
    answer = await db.rows(
        "SELECT content FROM messages WHERE id = :id", id=events[-1]["message_id"]
    )
    assert answer == [{"content": text_of(events)}]


async def test_a_run_whose_end_cannot_be_stored_in_time_has_one_final_event_all_the_same(
    settings: Settings, db: PlainSql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the end's statement for longer than a run's end may take: the
    client hears a retryable `interrupted`; once the database takes it again, recovery closes
    the run with that same event, at the same place, and the whole answer is stored."""
    monkeypatch.setattr(registry, "FINISH_TIMEOUT_SECONDS", 1.5)
    assert settings.database_url is not None
    async with DroppingProxy(settings.database_url) as proxy:
        proxied = with_settings(settings, database_url=proxy.url)
        async with serve(create_app(proxied), proxied) as live:
            user = live.user()
            proxy.drop(END_OF_RUN, Drop.STATEMENT, every=True)
            events = await _post_until(user, "add buy milk", 10_000)
            run_id = events[0]["run_id"]
            still = await db.rows("SELECT status FROM runs WHERE id = :id", id=run_id)
            proxy.stop_dropping()
            closed = await live.recovery.close_orphans()
            replay = await _read_run(user, run_id)
    assert still == [{"status": "active"}]
    assert events[-1] == {
        "type": "error",
        "code": "interrupted",
        "message": error_message("interrupted", retryable=False),
        "retryable": False,  # its tool added the task: sending again would add it twice
        "seq": events[-2]["seq"] + 1,
    }
    assert closed == 1
    assert replay == events, "the log holds what the client was told, final event included"
    run = await db.rows("SELECT status, assistant_message_id FROM runs WHERE id = :id", id=run_id)
    assert run[0]["status"] == "incomplete"
    answer = await db.rows(
        "SELECT content, status FROM messages WHERE id = :id", id=run[0]["assistant_message_id"]
    )
    assert answer == [{"content": text_of(events), "status": "incomplete"}]


async def test_a_run_the_database_refuses_does_not_hold_up_the_others_log(
    paced: Settings, db: PlainSql
) -> None:
    # The doomed run stops before its first text until its row is gone, then talks at 20 ms a
    # token (every event refused), and stops again before its last text; the healthy run stops
    # after its first ten events. Both are still going when those ten are in the log, by
    # construction: the healthy run's end writes its events itself, so a log held up by the
    # doomed run's events (the whole batch retried for ever) passed this test when the healthy
    # run was free to finish within the 0.3 s it used to sleep.
    model = _Pausing({"show my tasks": (0, -1), "hello": (9,)}, pace_ms=20)
    async with serve(create_app(paced, model=model), paced) as live:
        doomed, healthy = live.user("doomed"), live.user("healthy")
        for n in range(30):
            await doomed.post("/tasks", json={"title": f"errand {n}"})
        first = await _post_until(doomed, "show my tasks", 2)
        doomed_run = first[0]["run_id"]
        await model.reached["show my tasks", 0].wait()
        # The doomed run's row vanishes under it: its next events break the foreign key.
        await db.execute("DELETE FROM runs WHERE id = :id", id=doomed_run)
        model.go_on["show my tasks", 0].set()
        seen = await _post_until(healthy, "hello", 10)  # start and nine texts

        async def ten_logged() -> bool:
            logged = await db.rows(
                "SELECT count(*) AS n FROM run_events WHERE run_id = :id", id=seen[0]["run_id"]
            )
            return bool(logged[0]["n"] >= 10)

        await eventually(ten_logged, "the healthy run's first ten events in the log")
        assert live.registry.is_running_here(doomed_run), "the doomed run is still going"
        assert live.registry.is_running_here(seen[0]["run_id"]), "so is the healthy one"
        for stop in model.go_on.values():
            stop.set()
        await live.registry.wait_idle()
        logged = await _read_run(healthy, seen[0]["run_id"])
    assert logged[:10] == seen and logged[-1]["type"] == "done"


async def test_the_limit_per_user_counts_for_a_follow_up_in_an_idle_conversation(
    paced: Settings,
) -> None:
    limited = with_settings(paced, offline_token_delay_ms=30, max_active_runs=1)
    async with serve(create_app(limited), limited) as live:
        user = live.user()
        idle = await _post_until(user, "hello", 10_000)  # a conversation with no run going
        await live.registry.wait_idle()
        going = await _post_until(user, "hello", 1)  # the user's one run, elsewhere
        follow_up = await user.post(
            "/chat/stream",
            json={"message": "show my tasks", "conversation_id": idle[0]["conversation_id"]},
        )
        assert follow_up.status_code == 429, follow_up.text
        assert follow_up.json()["error"]["code"] == "too_many_runs"
        await user.post(f"/runs/{going[0]['run_id']}/cancel")
        await live.registry.wait_idle()


async def test_resume_by_query_parameter_and_only_with_this_runs_ids(paced: Settings) -> None:
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        first = await _post_until(user, "hello", 10_000)
        other = await _post_until(user, "hello", 10_000)
        await live.registry.wait_idle()
        run_id = first[0]["run_id"]
        async with aconnect_sse(
            user.client,
            "GET",
            user.url(f"/runs/{run_id}/events"),
            params={"last_event_id": f"{run_id}:3"},
            headers=user.headers,
        ) as source:
            rest = [json.loads(e.data) async for e in source.aiter_sse() if e.data]
        assert rest == first[3:]
        for foreign in (f"{other[0]['run_id']}:3", "x:3", f"{run_id}:three", f"{run_id}:-1"):
            response = await user.client.get(
                user.url(f"/runs/{run_id}/events"),
                headers={**user.headers, "Last-Event-ID": foreign},
            )
            assert response.status_code == 422, (foreign, response.text)
            assert response.json()["error"]["code"] == "invalid_request"

"""The standard SSE clients, unchanged, against the live service: `@microsoft/fetch-event-source`
(an unguarded `JSON.parse(ev.data)`, its own retry of the POST) and the WHATWG `EventSource`
(the npm `eventsource`: its own reconnection, and the 204 that stops it). A proxy between
client and service cuts the first connection at a chosen point; whatever the point, the client
ends with every event once, in order, and the turn is stored once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx_sse import aconnect_sse

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.cutting_proxy import Cut, CuttingProxy
from tests.support import LiveServer, PlainSql, User, node_with_clients, run_node, seed_parse, serve

# Longer than fetch-event-source's 1 s retry: a cut early in the turn is resumed while the run
# is still going (from memory), a late one after it ended (from the log).
TOKEN_DELAY_MS = 100
# EventSource reconnects after 3 s by default; a client that came back would do so within this.
STAY_AFTER_CLOSE_MS = 3_500


@pytest.fixture(autouse=True)
def _node() -> None:
    node_with_clients()


@pytest.fixture
def paced(settings: Settings) -> Settings:
    # Keep-alive pings every 50 ms, so that several fall between the events of a turn.
    return with_settings(settings, offline_token_delay_ms=TOKEN_DELAY_MS, sse_ping_seconds=0.05)


def _port(live: LiveServer) -> int:
    port = live.client.base_url.port
    assert port is not None
    return port


async def _fetch_event_source(
    proxy: CuttingProxy, user: User, message: str, path: str = "chat/stream"
) -> list[dict[str, Any]]:
    config = {
        "url": f"{proxy.base_url}/api/{user.id}/{path}",
        "token": user.token,
        "body": {"message": message},
    }
    result = await run_node("sse_clients.mjs", "fetch-event-source", json.dumps(config))
    assert not result["gaveUp"], result
    events: list[dict[str, Any]] = result["events"]
    return events


async def _assert_stored_once(db: PlainSql, user: User, events: list[dict[str, Any]]) -> None:
    runs = await db.rows("SELECT id FROM runs WHERE user_id = :user", user=user.id)
    assert [str(row["id"]) for row in runs] == [events[0]["run_id"]], "one turn, not two"
    messages = await db.rows(
        "SELECT role, status FROM messages WHERE conversation_id = :id ORDER BY id",
        id=events[0]["conversation_id"],
    )
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    tasks = (await user.get("/tasks")).json()["tasks"]
    assert [task["title"] for task in tasks] == ["Buy milk"], "the tool ran once"


def _assert_whole_and_in_order(events: list[dict[str, Any]]) -> None:
    run_id = events[0]["run_id"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert [event["lastEventId"] for event in events] == [f"{run_id}:{e['seq']}" for e in events]
    assert events[-1]["type"] == "done"
    text = "".join(event["content"] for event in events if event["type"] == "text")
    assert text.startswith('Added "Buy milk" to your list as task #')


async def test_fetch_event_source_reads_a_turn_with_an_unguarded_json_parse(
    paced: Settings, db: PlainSql
) -> None:
    async with serve(create_app(paced), paced) as live, CuttingProxy(_port(live)) as proxy:
        user = live.user()
        events = await _fetch_event_source(proxy, user, "add buy milk")
        _assert_whole_and_in_order(events)
        assert proxy.requests == 1, "no message broke its handler, so it never retried"
        await live.registry.wait_idle()
        await _assert_stored_once(db, user, events)


CUTS = {
    "inside the first event": Cut(b'"type":"start"', offset=4),
    "between two events": Cut(b'"type":"thinking"', at_block_end=True),
    "in the middle of the text": Cut(b'"type":"text"', occurrence=3, offset=6),
    "after the final event": Cut(b'"type":"done"', at_block_end=True),
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("path", ["chat/stream", "chat/stream-tools"])
async def test_fetch_event_source_retries_a_cut_stream_into_the_same_turn(
    paced: Settings, db: PlainSql, cut: Cut, path: str
) -> None:
    async with serve(create_app(paced), paced) as live:
        async with CuttingProxy(_port(live), cut) as proxy:
            user = live.user()
            events = await _fetch_event_source(proxy, user, "add buy milk", path)
            assert proxy.cut_made.is_set()
            assert proxy.requests == 2, "cut once, retried once"
        _assert_whole_and_in_order(events)
        await live.registry.wait_idle()
        await _assert_stored_once(db, user, events)


async def _start_a_run(user: User, conversation_id: int | None = None) -> dict[str, Any]:
    """POST a message, read its first event, hang up: the run goes on without a client."""
    body = {"message": "add buy milk", "conversation_id": conversation_id}
    async with user.client.stream(
        "POST", user.url("/chat/stream"), json=body, headers=user.headers
    ) as response:
        async for chunk in response.aiter_text():
            events = seed_parse([chunk])
            if events:
                return events[0]
    raise AssertionError("the stream had no event")


async def test_event_source_resumes_by_itself_then_stops_on_204(
    paced: Settings, db: PlainSql
) -> None:
    cut = Cut(b'"type":"text"', occurrence=2, offset=6)
    async with serve(create_app(paced), paced) as live, CuttingProxy(_port(live), cut) as proxy:
        user = live.user()
        run_id = (await _start_a_run(user))["run_id"]
        config = {
            "url": f"{proxy.base_url}/api/{user.id}/runs/{run_id}/events?access_token={user.token}",
            "stayMs": STAY_AFTER_CLOSE_MS,
            "giveUpMs": 30_000,
        }
        result = await run_node("sse_clients.mjs", "eventsource", json.dumps(config))
        assert not result["gaveUp"], result
        assert proxy.cut_made.is_set()
        _assert_whole_and_in_order(result["events"])
        # Cut (it reconnects), the end of the run (it reconnects), then 204: closed for good.
        assert result["errors"] == [
            {"code": None, "readyState": 0},
            {"code": None, "readyState": 0},
            {"code": 204, "readyState": 2},
        ]
        assert result["opens"] == 2
        assert proxy.requests == 3, "nothing after the 204"
        await _assert_stored_once(db, user, result["events"])


async def test_a_reconnect_at_or_past_a_finished_runs_end_is_204_else_the_rest(
    server: LiveServer,
) -> None:
    user = server.user()
    events = await user.chat("add buy milk")
    run_id, last = events[0]["run_id"], events[-1]["seq"]
    await server.registry.wait_idle()
    for seen in (last, last + 5):
        headers = {**user.headers, "Accept": "text/event-stream", "Last-Event-ID": f"{seen}"}
        gone = await user.client.get(user.url(f"/runs/{run_id}/events"), headers=headers)
        assert (gone.status_code, gone.content) == (204, b"")
    headers = {**user.headers, "Last-Event-ID": f"{run_id}:{last - 1}"}
    rest = await user.client.get(user.url(f"/runs/{run_id}/events"), headers=headers)
    assert rest.status_code == 200
    assert [event["seq"] for event in seed_parse([rest.text])] == [last]
    # A POST that resumes past the end (fetch-event-source) gets an empty stream: a 204 would
    # look like a failure to that client, and it would retry for ever.
    headers = {**user.headers, "Accept": "text/event-stream", "Last-Event-ID": f"{run_id}:{last}"}
    after = await user.client.post(
        user.url("/chat/stream"), json={"message": "add buy milk"}, headers=headers
    )
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/event-stream")
    assert "data:" not in after.text


async def test_a_conversation_stream_reconnecting_from_an_earlier_run_gets_the_new_one_whole(
    paced: Settings,
) -> None:
    """EventSource on a conversation's stream, back after its run ended while the next began."""
    async with serve(create_app(paced), paced) as live:
        user = live.user()
        first = await user.chat("hello")
        await live.registry.wait_idle()
        conversation_id = first[0]["conversation_id"]
        second = await _start_a_run(user, conversation_id)
        headers = {
            **user.headers,
            "Accept": "text/event-stream",
            "Last-Event-ID": f"{first[0]['run_id']}:{first[-1]['seq']}",
        }
        async with aconnect_sse(
            user.client,
            "GET",
            user.url(f"/conversations/{conversation_id}/stream"),
            headers=headers,
        ) as source:
            assert source.response.status_code == 200
            events = [json.loads(e.data) async for e in source.aiter_sse() if e.data]
        assert events[0] == second
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        await live.registry.wait_idle()

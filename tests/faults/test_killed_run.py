"""The end of a run whose instance is killed (`kill -9`) while it streams, as each kind of client
lives it. Two service processes share the database behind a balancer (a proxy that, once the
first is dead, sends new connections to the second); the first runs three answers, paced by
the offline model, followed by the real clients:

- `@microsoft/fetch-event-source` sends one message and, cut, retries its POST with the
  Last-Event-ID it had; the npm `eventsource` follows that same run (GET, its own reconnection
  with Last-Event-ID, then the 204 that stops it);
- the AI SDK (`ai`): `useChat`'s chat sends another message, cut, then `useChat({resume: true})`
  on a new page resumes it (the transport's GET);
- the chat page, in Chromium, sends the third, and follows the rest with EventSource.

The event log is held behind (its table locked) before the kill, so that every client has been
shown events the log never got. Then the second instance's recovery closes the three runs.
Each client gets the run's one final event, which is the one stored, numbered above anything
it was shown and saying where the stored answer ends; no seq names two events (each client's
events against the log and against each other); the stored answer is what that final event
says; the page marks what it was shown past it, and shows the stored answer alone on reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import text

from app.runs.live import UNLOGGED_WINDOW
from app.settings import Settings
from app.web.auth import issue_token
from tests.browser.conftest import LAUNCH_ARGS, WAIT_MS, chromium
from tests.cutting_proxy import CuttingProxy
from tests.faults.conftest import PrivatePostgres
from tests.support import PlainSql, User, eventually, node_with_clients, run_node, start_service

TASKS = 60
"""Each user's tasks: "show my tasks" is then an answer of some 400 words, 30 ms apart."""
TOKEN_DELAY_MS = 30
TEXTS_BEFORE_THE_LOG_STOPS = 6
WRITER_WAITING = (
    "SELECT count(*) AS n FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO run_events%'"
)
Event = dict[str, Any]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


def _port(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


async def _user(client: httpx.AsyncClient, settings: Settings, name: str) -> User:
    user_id = f"{name}-{uuid.uuid4().hex[:8]}"
    user = User(user_id, issue_token(settings, user_id), client)
    for n in range(TASKS):
        created = await user.post("/tasks", json={"title": f"errand number {n}"})
        assert created.status_code == 201, created.text
    return user


async def _run_of(db: PlainSql, user: User) -> str:
    """The id of the user's one run, once it is stored."""
    found: list[str] = []

    async def started() -> bool:
        rows = await db.rows("SELECT id FROM runs WHERE user_id = :user", user=user.id)
        found[:] = [str(row["id"]) for row in rows]
        return bool(found)

    await eventually(started, f"{user.id}'s run begun")
    return found[0]


async def _texts_logged(db: PlainSql, run_ids: list[str]) -> int:
    """The fewest text events any of these runs has in the log."""
    rows = await db.rows(
        "SELECT r.id, count(e.seq) AS n FROM runs r LEFT JOIN run_events e ON e.run_id = r.id"
        " AND CAST(e.data AS jsonb) ->> 'type' = 'text' WHERE r.id = ANY(:ids) GROUP BY r.id",
        ids=run_ids,
    )
    return min(int(row["n"]) for row in rows) if len(rows) == len(run_ids) else 0


async def _stored(db: PlainSql, run_id: str) -> tuple[list[Event], dict[str, Any]]:
    """The run's log, and the run with its stored answer."""
    rows = await db.rows("SELECT data FROM run_events WHERE run_id = :id ORDER BY seq", id=run_id)
    run = await db.rows(
        "SELECT r.status, r.last_seq, m.content FROM runs r"
        " JOIN messages m ON m.id = r.assistant_message_id WHERE r.id = :id",
        id=run_id,
    )
    return [json.loads(row["data"]) for row in rows], run[0]


def _text(events: list[Event]) -> str:
    return "".join(event["content"] for event in events if event["type"] == "text")


def _without_ids(events: list[Event]) -> list[Event]:
    return [{k: v for k, v in event.items() if k != "lastEventId"} for event in events]


def _check_client(name: str, shown: list[Event], log: list[Event]) -> dict[str, int]:
    """One client's events of a run against the run's log: in order, once each; each seq the
    log holds names there the event the client had; the log's final event is the client's
    last and only one, above every seq it was shown, declaring where the stored answer ends,
    which the client was shown past. Its figures."""
    final = log[-1]
    seqs = [event["seq"] for event in shown]
    assert seqs == sorted(set(seqs)), f"{name}: each event once, in order"
    by_seq = {event["seq"]: event for event in log}
    assert all(by_seq.get(e["seq"], e) == e for e in shown), f"{name}: a seq named two events"
    assert [e["type"] in ("done", "error") for e in shown].count(True) == 1, f"{name}: finals"
    assert shown[-1] == final, f"{name}: its final event is the one stored"
    before = shown[:-1]
    stored_through = final["stored_through"]
    assert final["seq"] == stored_through + UNLOGGED_WINDOW + 1
    assert before[-1]["seq"] > stored_through, f"{name} was shown nothing the log lacked"
    assert all(event["seq"] not in by_seq for event in before if event["seq"] > stored_through)
    unstored = sum(1 for event in before if event["seq"] > stored_through)
    return {
        "shown_through": before[-1]["seq"],
        "stored_through": stored_through,
        "final": final["seq"],
        "shown_unstored_events": unstored,
    }


async def _answer_grows(page: Page, times: int) -> None:
    """Until the page's streaming answer has grown `times` more times."""
    for _ in range(times):
        length = await page.locator(".message.assistant .content").last.evaluate(
            "(node) => node.textContent.length"
        )
        await page.wait_for_function(
            """(length) => {
                const answer = [...document.querySelectorAll('.message.assistant')].pop();
                return answer.querySelector('.content').textContent.length > length;
            }""",
            arg=length,
        )


async def test_every_client_of_a_killed_instance_gets_the_one_final_event_and_what_was_stored(
    fault_settings: Settings,
    private_postgres: PrivatePostgres,
    private_db: PlainSql,
    browser: Browser,
    tmp_path: Path,
) -> None:
    node_with_clients()
    env = {"APP_ENV": "development", "OFFLINE_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS)}
    doomed, doomed_url = start_service(private_postgres.url, tmp_path / "doomed.log", **env)
    survivor, survivor_url = start_service(private_postgres.url, tmp_path / "survivor.log", **env)
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    try:
        async with (
            CuttingProxy(_port(doomed_url)) as balancer,
            httpx.AsyncClient(base_url=balancer.base_url, timeout=60) as client,
        ):
            base = balancer.base_url
            fes, paged, sdk = [
                await _user(client, fault_settings, n) for n in ("fes", "page", "sdk")
            ]

            # The page: signed in as its user, sending the message.
            page = await context.new_page()
            await page.goto(base)
            await page.get_by_label("Your name").fill(paged.id)
            await page.get_by_label("Your name").press("Enter")
            await page.get_by_label("Message", exact=True).fill("show my tasks")
            await page.get_by_label("Message", exact=True).press("Enter")

            # fetch-event-source's turn, and EventSource on the same run.
            fes_config = {
                "url": f"{base}/api/{fes.id}/chat/stream",
                "token": fes.token,
                "body": {"message": "show my tasks"},
            }
            fetch_event_source = asyncio.create_task(
                run_node("sse_clients.mjs", "fetch-event-source", json.dumps(fes_config))
            )
            fes_run = await _run_of(private_db, fes)
            es_config = {
                "url": f"{base}/api/{fes.id}/runs/{fes_run}/events?access_token={fes.token}",
                "giveUpMs": 80_000,
            }
            event_source = asyncio.create_task(
                run_node("sse_clients.mjs", "eventsource", json.dumps(es_config))
            )

            # The AI SDK's chat.
            sdk_config = {"api": f"{base}/api/{sdk.id}/ai/chat", "token": sdk.token}
            chat_id = f"chat-{uuid.uuid4().hex[:8]}"
            chatting = asyncio.create_task(
                run_node(
                    "ai_sdk_client.mjs",
                    "chat",
                    json.dumps({**sdk_config, "chatId": chat_id, "texts": ["show my tasks"]}),
                )
            )
            runs = [fes_run, await _run_of(private_db, paged), await _run_of(private_db, sdk)]

            async def answering() -> bool:
                return await _texts_logged(private_db, runs) >= TEXTS_BEFORE_THE_LOG_STOPS

            await eventually(answering, "six texts of each answer in the log")
            async with private_db.engine.begin() as locker:
                # The log stops taking appends (a slow database): the answers go on, shown
                # at once, unlogged. The lock goes with this transaction, after the kill.
                await locker.execute(text("LOCK TABLE run_events IN EXCLUSIVE MODE"))

                async def writer_waits() -> bool:
                    rows = await private_db.rows(WRITER_WAITING)
                    return bool(rows[0]["n"])

                await eventually(writer_waits, "the instance's log writer waiting")
                await _answer_grows(page, 5)
                doomed.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                balancer.send_new_connections_to(_port(survivor_url))

            chat = await chatting
            resumed = await run_node(
                "ai_sdk_client.mjs", "resume", json.dumps({**sdk_config, "chatId": chat_id})
            )
            fetched = await fetch_event_source
            followed = await event_source
            await expect(page.locator(".message.assistant").last).to_have_attribute(
                "data-status", "error"
            )
            closed_after = time.monotonic() - killed
            answer = page.locator(".message.assistant").last
            page_text = await answer.locator(".content").evaluate(
                "(node) => [...node.childNodes].map((child) => child.textContent)"
            )
            note = await answer.locator(".unsaved-note").count()
            await page.reload()
            await expect(page.locator(".message.assistant")).to_have_count(1)
            reloaded = await page.locator(".message.assistant .content").inner_text()
            struck_on_reload = await page.locator(".message.assistant del").count()
    finally:
        await context.close()
        for process in (doomed, survivor):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in (doomed, survivor):
            process.wait(30)

    figures: dict[str, dict[str, int]] = {}
    # fetch-event-source and EventSource, on one run.
    fes_log, fes_stored = await _stored(private_db, fes_run)
    assert not fetched["gaveUp"] and not followed["gaveUp"], (fetched, followed)
    fes_events, es_events = _without_ids(fetched["events"]), _without_ids(followed["events"])
    figures["fetch-event-source"] = _check_client("fetch-event-source", fes_events, fes_log)
    figures["eventsource"] = _check_client("eventsource", es_events, fes_log)
    es_by_seq = {event["seq"]: event for event in es_events}
    assert all(es_by_seq.get(e["seq"], e) == e for e in fes_events), "the two clients disagree"
    assert [e["code"] for e in followed["errors"]][-1] == 204, "EventSource stopped by a 204"
    assert all(e["lastEventId"] == f"{fes_run}:{e['seq']}" for e in followed["events"])
    final = fes_log[-1]
    assert fes_stored["content"] == _text(fes_log[:-1]), "the stored answer is the log's"
    assert (fes_stored["status"], fes_stored["last_seq"]) == ("incomplete", final["seq"])
    assert _text(fes_events).startswith(fes_stored["content"])

    # The AI SDK: cut, then resumed by a new chat; the resumed message is the stored answer.
    sdk_log, sdk_stored = await _stored(private_db, runs[2])
    assert chat["status"] == "error", chat
    shown_text = "".join(
        part["text"] for part in chat["messages"][-1]["parts"] if part["type"] == "text"
    )
    assert resumed["status"] == "error", resumed
    resumed_text = "".join(
        part["text"] for part in resumed["messages"][-1]["parts"] if part["type"] == "text"
    )
    assert resumed["messages"][-1]["id"] == runs[2]
    assert resumed_text == sdk_stored["content"] == _text(sdk_log[:-1])
    assert len(shown_text) > len(resumed_text) and shown_text.startswith(resumed_text)
    stored_through = sdk_log[-1]["stored_through"]
    assert json.loads(resumed["error"]) == {
        "error": {
            "code": "interrupted",
            "message": sdk_log[-1]["message"],
            "retryable": sdk_log[-1]["retryable"],
            "stored_through": stored_through,
        }
    }
    figures["ai-sdk"] = {
        "stored_through": stored_through,
        "final": sdk_log[-1]["seq"],
        "shown_unstored_characters": len(shown_text) - len(resumed_text),
    }

    # The page: the stored part as it is, what it was shown past it struck through and said.
    page_log, page_stored = await _stored(private_db, runs[1])
    kept, *struck = page_text
    assert kept == page_stored["content"] == _text(page_log[:-1])
    assert len(struck) == 1 and struck[0], "the page was shown nothing the log lacked"
    assert note == 1
    assert reloaded == page_stored["content"] and struck_on_reload == 0
    figures["page"] = {
        "stored_through": page_log[-1]["stored_through"],
        "final": page_log[-1]["seq"],
        "struck_characters": len(struck[0]),
    }

    print(
        f"3 runs of a killed instance; the page had their end {closed_after:.1f} s after the kill"
    )
    for name, figure in figures.items():
        print(f"  {name}: {figure}")

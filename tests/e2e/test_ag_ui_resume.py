"""AG-UI's resume and cancel, beyond the protocol, against the live service: the resuming
`HttpAgent` subclass (tests/clients/ag_ui_resuming_agent.mjs) through a connection cut inside
an event, on another instance; the GET's answers; a cancel through our endpoint while the run
is held, in each client line's terms; `abortRun()`, which only drops the connection."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.cutting_proxy import Cut, CuttingProxy
from tests.e2e.ag_ui_driving import (
    CLIENT_LINES,
    WatchedAgent,
    agent_run,
    base_url,
    clean,
    new_thread,
    resume_url,
    run_agents,
    user_message,
)
from tests.e2e.test_runs import _Pausing
from tests.support import LiveServer, PlainSql, User, eventually, node_with_clients, serve


@pytest.fixture(autouse=True)
def _node() -> None:
    node_with_clients()


def _port(live: LiveServer) -> int:
    port = live.client.base_url.port
    assert port is not None
    return port


CUTS = {
    "inside-a-tool-call": Cut(b'"type":"TOOL_CALL_ARGS"', offset=5),
    "inside-the-text": Cut(b'"type":"TEXT_MESSAGE_CONTENT"', occurrence=2, offset=5),
}


@pytest.mark.parametrize("cut", list(CUTS))
@pytest.mark.parametrize("client", CLIENT_LINES)
async def test_the_resuming_agent_rebuilds_a_cut_run_from_another_instance(
    settings: Settings, client: str, cut: str
) -> None:
    """The POST goes to instance a through a proxy that cuts it inside an event; the agent
    resumes from instance b, which follows a's run from the durable log while a's model is
    held. It ends with the messages and state of the run read whole (the same input sent
    again: the service replays the run)."""
    model = _Pausing({"add buy milk": (2,)})
    async with (
        serve(create_app(settings, model=model), settings) as a,
        serve(create_app(settings), settings) as b,
        CuttingProxy(_port(a), CUTS[cut]) as proxy,
    ):
        on_a, thread = a.user(), new_thread()
        on_b = User(on_a.id, on_a.token, b.client)
        asked = [user_message("add buy milk")]
        run = agent_run(
            proxy.base_url,
            on_a,
            thread,
            asked,
            client,
            resumeUrl=resume_url(base_url(b), on_b, thread),
        )
        async with WatchedAgent(run) as agent:
            await model.reached["add buy milk", 2].wait()

            async def b_follows() -> bool:
                return b.registry.following(on_a.id) == 1

            await eventually(b_follows, "the agent follows the run from instance b")
            model.go_on["add buy milk", 2].set()
            resumed = await agent.result()
        await a.registry.wait_idle()
        [whole] = await run_agents(agent_run(b, on_b, thread, asked, client))

    assert proxy.cut_made.is_set()
    clean(resumed)
    clean(whole)
    assert resumed["events"].count("RUN_STARTED") == 2, "the POST, then the resume"
    assert resumed["events"][-1] == "RUN_FINISHED"
    assert resumed["messages"] == whole["messages"]
    assert resumed["state"] == whole["state"] and len(whole["state"]["tasks"]) == 1
    assert whole["messages"][-1]["content"].startswith('Added "Buy milk"')


def _blocks(body: str) -> list[dict[str, Any]]:
    """The body's blocks, split as `@ag-ui/client` splits it (on "\\n\\n" alone)."""
    blocks = []
    for block in body.split("\n\n")[:-1]:
        lines = block.split("\n")
        data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
        ids = [line[4:] for line in lines if line.startswith("id: ")]
        blocks.append({"data": data[0] if data else None, "id": ids[0] if ids else None})
    return blocks


async def _get(user: User, thread: str, **headers_and_query: str) -> httpx.Response:
    query = {k: v for k, v in headers_and_query.items() if k in ("runId", "protocolVersion")}
    headers = {k.replace("_", "-"): v for k, v in headers_and_query.items() if k not in query}
    return await user.client.get(
        user.url(f"/ag-ui/{thread}/stream"), headers={**user.headers, **headers}, params=query
    )


async def test_the_resume_get_answers_the_rest_of_a_run_or_204_or_a_json_error(
    server: LiveServer,
) -> None:
    user, thread = server.user(), new_thread()
    [seen] = await run_agents(agent_run(server, user, thread, [user_message("add buy milk")]))
    await server.registry.wait_idle()
    clean(seen)
    run_id = seen["result"]["run_id"]
    final = (await user.get(f"/runs/{run_id}")).json()["last_seq"]

    rest = await _get(user, thread, Last_Event_ID=f"{run_id}:3", runId="r-1", protocolVersion="1.0")
    assert rest.status_code == 200 and "\r" not in rest.text
    blocks = _blocks(rest.text)
    started = blocks[0]["data"]
    assert (started["type"], started["runId"], started["threadId"]) == (
        "RUN_STARTED",
        "r-1",
        thread,
    )
    assert started["protocolVersion"] == "1.0"
    assert blocks[1] == {
        "data": {"type": "STATE_SNAPSHOT", "snapshot": seen["state"]},
        "id": f"{run_id}:3",
    }
    seqs = [int(block["id"].rpartition(":")[2]) for block in blocks if block["id"]]
    assert seqs == list(range(3, final + 1)), "each event after the cursor, once, in order"
    assert blocks[-1]["data"]["type"] == "RUN_FINISHED" and blocks[-1]["data"]["runId"] == "r-1"
    legacy = await _get(user, thread, Last_Event_ID=f"{run_id}:3", runId="r-1")
    assert "protocolVersion" not in _blocks(legacy.text)[0]["data"]

    assert (await _get(user, thread, Last_Event_ID=f"{run_id}:{final}")).status_code == 204
    assert (await _get(user, thread)).status_code == 204, "nothing going in the thread"
    assert (await _get(user, new_thread())).status_code == 204, "a thread never run"

    # A run of this user's, named on another of their threads, is not found there.
    other_thread, stranger = new_thread(), server.user()
    clean((await run_agents(agent_run(server, user, other_thread, [user_message("hi")])))[0])
    for asker, on in [(user, other_thread), (user, new_thread()), (stranger, thread)]:
        refused = await _get(asker, on, Last_Event_ID=f"{run_id}:1")
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "run_not_found")
    for bad in ({"Last_Event_ID": "x"}, {"runId": "a\\b"}, {"protocolVersion": "one"}):
        refused = await _get(user, thread, **bad)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")


@pytest.mark.parametrize("client", CLIENT_LINES)
async def test_a_cancel_ends_the_run_as_cancelled_in_each_clients_terms(
    settings: Settings, db: PlainSql, client: str
) -> None:
    model = _Pausing({"add buy milk": (1,)})
    async with serve(create_app(settings, model=model), settings) as live:
        user, thread = live.user(), new_thread()
        assert (await user.post(f"/ag-ui/{thread}/cancel")).status_code == 204, "nothing going"
        run = agent_run(live, user, thread, [user_message("add buy milk")], client)
        async with WatchedAgent(run) as agent:
            await model.reached["add buy milk", 1].wait()
            cancelled = await user.post(f"/ag-ui/{thread}/cancel")
            seen = await agent.result()
        await live.registry.wait_idle()
        assert (await user.post(f"/ag-ui/{thread}/cancel")).status_code == 204, "it has ended"

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    clean(seen)
    assert seen["events"][-1] == "RUN_FINISHED"
    ours = {
        "run_id": cancelled.json()["id"],
        "conversation_id": cancelled.json()["conversation_id"],
        "message_id": cancelled.json()["assistant_message_id"],
        "status": "cancelled",
    }
    if client == "1.0.0":
        assert seen["finished"] == [{"outcome": "cancelled", "result": None}]
    else:
        assert seen["finished"] == [{"outcome": "success", "result": ours}]
    stored = await db.rows(
        "SELECT status, content FROM messages WHERE id = :id", id=ours["message_id"]
    )
    assert stored == [{"status": "cancelled", "content": seen["messages"][-1]["content"]}]


async def test_abort_run_only_drops_the_connection_and_the_run_goes_on(
    settings: Settings, db: PlainSql
) -> None:
    model = _Pausing({"add buy milk": (1,)})
    async with serve(create_app(settings, model=model), settings) as live:
        user, thread = live.user(), new_thread()
        run = agent_run(
            live, user, thread, [user_message("add buy milk")], abortOn="TEXT_MESSAGE_CONTENT"
        )
        [seen] = await run_agents(run)
        going = await db.rows("SELECT id, status FROM runs WHERE user_id = :u", u=user.id)
        assert [row["status"] for row in going] == ["active"], "the run goes on"
        model.go_on["add buy milk", 1].set()
        await live.registry.wait_idle()

    assert (seen["failed"], seen["threw"]) == ([], None)
    assert "RUN_FINISHED" not in seen["events"]
    assert [error["code"] for error in seen["runErrors"]] == ["abort"]  # the client's own
    ended = await db.rows("SELECT status FROM runs WHERE id = :id", id=going[0]["id"])
    assert ended == [{"status": "complete"}]


async def test_connecting_on_mount_follows_the_threads_run_or_finds_nothing(
    settings: Settings,
) -> None:
    """`connectAgent()` with the resuming agent, as CopilotKit calls it when a chat mounts: on
    an idle thread the 204 is an empty stream, and no failure; with a run going, the whole
    run, as the agent that started it saw it."""
    model = _Pausing({"add buy milk": (1,)})
    async with serve(create_app(settings, model=model), settings) as live:
        user, thread = live.user(), new_thread()
        resume = resume_url(base_url(live), user, thread)
        mount = agent_run(live, user, thread, [], connect=True, resumeUrl=resume)
        [idle] = await run_agents(mount)
        async with WatchedAgent(
            agent_run(live, user, thread, [user_message("add buy milk")])
        ) as running:
            await model.reached["add buy milk", 1].wait()
            async with WatchedAgent(mount) as mounted:

                async def both_follow() -> bool:
                    return live.registry.following(user.id) == 1

                await eventually(both_follow, "the mounted agent follows the run")
                model.go_on["add buy milk", 1].set()
                joined, started = await mounted.result(), await running.result()
        await live.registry.wait_idle()

    clean(idle)
    assert (idle["events"], idle["messages"]) == ([], [])
    clean(joined)
    clean(started)
    assert joined["events"][0] == "RUN_STARTED" and joined["events"][-1] == "RUN_FINISHED"
    assert joined["messages"] == started["messages"][1:], "all but the user's own message"
    assert joined["state"] == started["state"]

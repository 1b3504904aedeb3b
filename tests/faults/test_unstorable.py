"""What PostgreSQL cannot store, produced by a model: the run ends and is stored all the same;
and one run that recovery cannot close does not stop it closing the others."""

from __future__ import annotations

import uuid

from agents.testing import ScriptedModel, assistant_message, function_call

from app.main import create_app
from app.settings import Settings
from tests.support import PlainSql, serve


async def test_a_model_that_emits_u0000_in_arguments_and_text_has_its_run_stored(
    settings: Settings, db: PlainSql
) -> None:
    model = ScriptedModel(
        [
            [function_call("add_task", {"title": "a\u0000b"}, call_id="call_1")],
            [assistant_message("Added a\u0000b.")],
        ]
    )
    async with serve(create_app(settings, model=model), settings) as live:
        user = live.user()
        events = await user.chat("add it")
        await live.registry.wait_idle()
        replay = await user.get(f"/runs/{events[0]['run_id']}/events")

    assert events[-1]["type"] == "done", events[-1]
    assert events[-2] == {"type": "text", "content": "Added a\ufffdb.", "seq": events[-2]["seq"]}
    stored = await db.rows(
        "SELECT r.status, m.content, m.tool_calls FROM runs r"
        " JOIN messages m ON m.id = r.assistant_message_id WHERE r.id = :id",
        id=events[0]["run_id"],
    )
    assert stored[0]["status"] == "complete" and stored[0]["content"] == "Added a\ufffdb."
    assert stored[0]["tool_calls"][0]["arguments"] == {"title": "a\ufffdb"}
    tasks = await db.rows("SELECT title FROM tasks WHERE user_id = :u", u=user.id)
    assert tasks == [{"title": "a\ufffdb"}]
    assert replay.status_code == 200 and "\\u0000" not in replay.text


async def test_a_run_recovery_cannot_close_does_not_stop_it_closing_the_others(
    settings: Settings, db: PlainSql
) -> None:
    """Two runs left active by an instance long gone: one's log holds an event no reader
    knows. Recovery logs that one and closes the other."""
    user = f"orphans-{uuid.uuid4().hex[:8]}"
    runs = {name: str(uuid.uuid4()) for name in ("broken", "healthy")}
    for name, run_id in runs.items():
        data = '{"type":"text","content":"Hel","seq":1}'
        if name == "broken":
            data = '{"type":"no-such-event","seq":1}'
        await db.execute(
            """
            WITH conversation AS (
                INSERT INTO conversations (user_id, title) VALUES (:u, :t) RETURNING id
            ), message AS (
                INSERT INTO messages (conversation_id, role, content)
                SELECT id, 'user', 'hi' FROM conversation RETURNING id, conversation_id
            ), run AS (
                INSERT INTO runs (id, user_id, conversation_id, user_message_id, instance_id,
                    created_at)
                SELECT :id, :u, conversation_id, id, 'gone-instance', now() - interval '1 hour'
                FROM message RETURNING id
            )
            INSERT INTO run_events (run_id, seq, data) SELECT id, 1, :data FROM run
            """,
            u=user,
            t=name,
            id=run_id,
            data=data,
        )
    async with serve(create_app(settings), settings) as live:
        closed = await live.recovery.close_orphans()
    statuses = await db.rows(
        "SELECT id::text AS id, status FROM runs WHERE user_id = :u ORDER BY status", u=user
    )
    await db.execute("DELETE FROM conversations WHERE user_id = :u", u=user)  # and its runs
    assert closed == 1
    assert {row["id"]: row["status"] for row in statuses} == {
        runs["broken"]: "active",
        runs["healthy"]: "incomplete",
    }

"""Lists come in pages: every item once, in order, however many there are, and never more
than the limit in one answer (a 50,000-message conversation once came back as 56 MB)."""

from __future__ import annotations

from typing import Any

from app.agent.tools import MAX_LISTED_TASKS
from app.main import create_app
from app.settings import Settings
from tests.support import PlainSql, User, serve


async def _all_pages(user: User, path: str, key: str, cursor: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    query: dict[str, Any] = dict(params)
    while True:
        response = await user.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body[key]) <= params["limit"]
        items.extend(body[key])
        if body[cursor] is None:
            return items
        query = {**params, cursor.removeprefix("next_"): body[cursor]}


async def test_tasks_come_in_pages_each_once_in_order(settings: Settings, db: PlainSql) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        for n in range(23):
            await user.post("/tasks", json={"title": f"errand {n}"})
        paged = await _all_pages(user, "/tasks", "tasks", "next_after", limit=5)
        whole = (await user.get("/tasks")).json()
        bad = await user.get("/tasks", params={"after": "x"})
    assert [t["title"] for t in paged] == [f"errand {n}" for n in range(23)]
    assert paged == whole["tasks"] and whole["next_after"] is None
    assert bad.status_code == 422


async def test_conversations_come_in_pages_most_recent_first(
    settings: Settings, db: PlainSql
) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        for n in range(7):
            await user.post("/chat", json={"message": f"hello {n}"})
        paged = await _all_pages(user, "/conversations", "conversations", "next_before", limit=3)
        forged = await user.get("/conversations", params={"before": "not-a-cursor"})
    assert [c["title"] for c in paged] == [f"hello {n}" for n in reversed(range(7))]
    assert forged.status_code == 422


async def test_a_long_conversation_comes_in_pages_from_its_end(
    settings: Settings, db: PlainSql
) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        first = (await user.post("/chat", json={"message": "hello 0"})).json()
        conversation = first["conversation_id"]
        for n in range(1, 4):
            body = {"message": f"hello {n}", "conversation_id": conversation}
            assert (await user.post("/chat", json=body)).status_code == 200
        path = f"/conversations/{conversation}/messages"
        latest = (await user.get(path, params={"limit": 3})).json()
        pages = [latest["messages"]]
        cursor = latest["next_before"]
        while cursor is not None:
            page = (await user.get(path, params={"limit": 3, "before": cursor})).json()
            pages.insert(0, page["messages"])
            cursor = page["next_before"]
    messages = [m for page in pages for m in page]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 4
    assert [m["content"] for m in messages[::2]] == [f"hello {n}" for n in range(4)]
    assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)
    assert [m["content"] for m in latest["messages"]][-2] == "hello 3"


async def test_the_model_is_shown_a_bounded_list(settings: Settings, db: PlainSql) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        await db.execute(
            "INSERT INTO tasks (user_id, title) SELECT :u, 'errand ' || n"
            " FROM generate_series(1, :count) n",
            u=user.id,
            count=MAX_LISTED_TASKS + 5,
        )
        events = await user.chat("show my tasks")
        await live.registry.wait_idle()
    [result] = [e for e in events if e["type"] == "tool_result"]
    assert len(result["output"]["tasks"]) == MAX_LISTED_TASKS
    assert result["output"]["truncated"] is True

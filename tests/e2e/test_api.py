"""The JSON endpoints: tasks, conversations, health and readiness."""

from __future__ import annotations

from app.db.migrations import head_revision
from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.support import LiveServer, PlainSql, serve


async def test_task_crud_and_status_filter(server: LiveServer) -> None:
    user = server.user()
    created = await user.post("/tasks", json={"title": "  Buy   milk ", "description": "2 litres"})
    assert created.status_code == 201
    milk = created.json()
    assert (milk["title"], milk["description"], milk["completed"]) == (
        "Buy milk",
        "2 litres",
        False,
    )
    eggs = (await user.post("/tasks", json={"title": "Buy eggs"})).json()

    patched = await user.patch(f"/tasks/{milk['id']}", json={"completed": True})
    assert patched.status_code == 200
    assert patched.json()["completed"] is True
    assert patched.json()["updated_at"] >= milk["updated_at"]

    async def titles(status: str) -> list[str]:
        response = await user.get("/tasks", params={"status": status})
        return [task["title"] for task in response.json()["tasks"]]

    assert await titles("all") == ["Buy milk", "Buy eggs"]
    assert await titles("pending") == ["Buy eggs"]
    assert await titles("completed") == ["Buy milk"]

    renamed = await user.patch(f"/tasks/{eggs['id']}", json={"title": "Buy a dozen eggs"})
    assert renamed.json()["title"] == "Buy a dozen eggs"
    assert (await user.delete(f"/tasks/{eggs['id']}")).status_code == 204
    assert await titles("all") == ["Buy milk"]
    assert (await user.delete(f"/tasks/{eggs['id']}")).status_code == 404


async def test_deleting_a_conversation_deletes_its_messages(
    server: LiveServer, db: PlainSql
) -> None:
    user = server.user()
    conversation_id = (await user.chat("add buy milk"))[0]["conversation_id"]
    assert (await user.delete(f"/conversations/{conversation_id}")).status_code == 204
    assert (await user.get(f"/conversations/{conversation_id}/messages")).status_code == 404
    assert (
        await db.rows("SELECT id FROM messages WHERE conversation_id = :id", id=conversation_id)
        == []
    )
    # The task the conversation created is the user's, and stays.
    assert [t["title"] for t in (await user.get("/tasks")).json()["tasks"]] == ["Buy milk"]


async def test_conversations_are_newest_first_and_limited(server: LiveServer) -> None:
    user = server.user()
    ids = [(await user.chat(f"add task {n}"))[0]["conversation_id"] for n in range(3)]
    await user.chat("show my tasks", ids[0])  # the oldest becomes the most recently active
    listed = (await user.get("/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [ids[0], ids[2], ids[1]]
    limited = (await user.get("/conversations", params={"limit": 2})).json()["conversations"]
    assert [c["id"] for c in limited] == [ids[0], ids[2]]


async def test_long_messages_make_short_titles(server: LiveServer) -> None:
    user = server.user()
    message = "add " + "very " * 30 + "long task"
    conversation_id = (await user.chat(message))[0]["conversation_id"]
    listed = (await user.get("/conversations")).json()["conversations"]
    title = next(c["title"] for c in listed if c["id"] == conversation_id)
    assert len(title) <= 50 and title.endswith("…")
    assert message.startswith(title[:-1])


async def test_health_and_ready(server: LiveServer) -> None:
    assert (await server.client.get("/health")).json() == {"status": "ok"}
    ready = await server.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "revision": head_revision()}


async def test_ready_is_503_on_a_database_without_the_schema(
    settings: Settings, fresh_database: str
) -> None:
    unmigrated = with_settings(settings, database_url=fresh_database)
    async with serve(create_app(unmigrated), unmigrated) as live:
        assert (await live.client.get("/health")).status_code == 200
        ready = await live.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "schema_outdated"


async def test_ready_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    nowhere = with_settings(settings, database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    async with serve(create_app(nowhere), nowhere) as live:
        ready = await live.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"] == {
            "code": "database_unavailable",
            "message": "The database cannot be reached.",
        }


async def test_browsers_on_an_allowed_origin_may_call_the_api(settings: Settings) -> None:
    cors = with_settings(settings, cors_origins=("https://app.example",))
    async with serve(create_app(cors), cors) as live:
        user = live.user()
        preflight = await live.client.options(
            user.url("/chat/stream"),
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        async with live.client.stream(
            "POST",
            user.url("/chat/stream"),
            json={"message": "hi"},
            headers={**user.headers, "Origin": "https://app.example"},
        ) as response:
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            await response.aread()

        other = await live.client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_an_unreachable_database_is_a_503_without_details(settings: Settings) -> None:
    nowhere = with_settings(settings, database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    async with serve(create_app(nowhere), nowhere) as live:
        user = live.user()
        for response in (
            await user.get("/tasks"),
            await user.post("/tasks", json={"title": "Buy milk"}),
            await user.post("/chat/stream", json={"message": "add buy milk"}),
        ):
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.json()["error"]["code"] == "database_unavailable"
            assert "127.0.0.1" not in response.text and "nobody" not in response.text

"""Every error a client can cause: status code, stable code, JSON body, nothing leaked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from jose import jwt

from app.main import create_app
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import TEST_SECRET, with_settings
from tests.support import LiveServer, PlainSql, serve


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def _hs256_by_hand(claims: dict[str, Any], key: str) -> str:
    """An HS256 token keyed with any string: the algorithm-confusion attack, which jose's own
    encoder refuses to build when the key is a public key."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def _token(sub: str | None = "alice", *, secret: str = TEST_SECRET, **claims: Any) -> str:
    payload: dict[str, Any] = {"exp": int(time.time()) + 600, **claims}
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/chat/stream"),
        ("POST", "/chat"),
        ("GET", "/conversations"),
        ("GET", "/conversations/1/messages"),
        ("DELETE", "/conversations/1"),
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("PATCH", "/tasks/1"),
        ("DELETE", "/tasks/1"),
    ],
)
async def test_every_user_path_needs_a_token(server: LiveServer, method: str, path: str) -> None:
    response = await server.client.request(method, f"/api/alice{path}", json={"message": "hi"})
    _error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Basic YWxpY2U6cHc=", "invalid_token"),
        ("Bearer", "invalid_token"),
        ("Bearer not-a-jwt", "invalid_token"),
        (f"Bearer {_token(secret='another-secret-' + 'y' * 40)}", "invalid_token"),
        (f"Bearer {_token(exp=int(time.time()) - 3600)}", "token_expired"),
        (f"Bearer {_token(None)}", "invalid_token"),
        (f"Bearer {jwt.encode({'sub': 'alice'}, TEST_SECRET, algorithm='HS256')}", "invalid_token"),
        (
            "Bearer "
            + jwt.encode({"sub": "alice", "exp": 9999999999}, TEST_SECRET, algorithm="HS512"),
            "invalid_token",
        ),
    ],
    ids=["basic", "empty", "garbage", "wrong-key", "expired", "no-sub", "no-exp", "other-alg"],
)
async def test_bad_tokens_are_401(server: LiveServer, authorization: str, code: str) -> None:
    response = await server.client.get("/api/alice/tasks", headers={"Authorization": authorization})
    _error(response, 401, code)


@pytest.mark.parametrize("path_user", ["alice", "bobby", "bo", "BOB", "Bob", "bob ", "bob/x"])
async def test_a_token_for_another_user_is_403(server: LiveServer, path_user: str) -> None:
    """The token's user and the path's are the same string, exactly: not a prefix, not in
    another case."""
    token = issue_token(server.settings, "bob")
    headers = {"Authorization": f"Bearer {token}"}
    response = await server.client.get(f"/api/{path_user}/tasks", headers=headers)
    if path_user == "bob/x":
        _error(response, 404, "not_found")  # no such route: never bob's tasks
    else:
        _error(response, 403, "forbidden")
    assert (await server.client.get("/api/bob/tasks", headers=headers)).status_code == 200


async def test_audience_and_issuer_are_checked_when_configured(settings: Settings) -> None:
    configured = with_settings(
        settings, jwt_audience="todo-chat", jwt_issuer="https://auth.example"
    )
    async with serve(create_app(configured), configured) as live:
        good = live.user()  # issued with the configured audience and issuer
        assert (await good.get("/tasks")).status_code == 200
        for claims in ({"aud": "other", "iss": "https://auth.example"}, {"aud": "todo-chat"}):
            token = _token(good.id, **claims)
            response = await live.client.get(
                good.url("/tasks"), headers={"Authorization": f"Bearer {token}"}
            )
            _error(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   \n\t "}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({"message": 5}, "message"),
        ({}, "message"),
        ({"message": "hi", "conversation_id": "1"}, "conversation_id"),
        ({"message": "hi", "conversation_id": True}, "conversation_id"),
        ({"message": "hi", "conversation_id": 0}, "conversation_id"),
        ({"message": "hi", "user_id": "bob"}, "user_id"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/chat/stream", "/chat"])
async def test_invalid_chat_bodies_are_422_and_store_nothing(
    server: LiveServer, db: PlainSql, body: dict[str, Any], field: str, endpoint: str
) -> None:
    user = server.user()
    error = _error(await user.post(endpoint, json=body), 422, "invalid_request")
    assert field in [item["field"] for item in error["fields"]]
    assert await db.rows("SELECT id FROM conversations WHERE user_id = :u", u=user.id) == []


async def test_malformed_json_is_422(server: LiveServer) -> None:
    user = server.user()
    response = await user.post("/chat/stream", content=b'{"message": "hi"')
    error = _error(response, 422, "invalid_request")
    assert error["fields"][0]["field"] == "body"


async def test_the_message_limit_is_configurable(settings: Settings) -> None:
    limited = with_settings(settings, max_message_chars=10)
    async with serve(create_app(limited), limited) as live:
        user = live.user()
        error = _error(await user.post("/chat", json={"message": "x" * 11}), 422, "invalid_request")
        assert "at most 10 characters" in error["message"]
        assert (await user.post("/chat", json={"message": "x" * 10})).status_code == 200


async def test_a_body_over_the_size_limit_is_413(server: LiveServer) -> None:
    user = server.user()
    huge = {"message": "x" * (server.settings.max_body_bytes + 1)}
    _error(await user.post("/chat/stream", json=huge), 413, "body_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(100):
            yield b"x" * 1024

    _error(await user.post("/tasks", content=chunks()), 413, "body_too_large")


async def test_someone_elses_conversation_is_404_everywhere(
    server: LiveServer, db: PlainSql
) -> None:
    alice, bob = server.user("alice"), server.user("bob")
    events = await alice.chat("add buy milk")
    conversation_id = events[0]["conversation_id"]

    for endpoint in ("/chat/stream", "/chat"):
        response = await bob.post(
            endpoint, json={"message": "hi", "conversation_id": conversation_id}
        )
        _error(response, 404, "conversation_not_found")
    _error(
        await bob.get(f"/conversations/{conversation_id}/messages"), 404, "conversation_not_found"
    )
    _error(await bob.delete(f"/conversations/{conversation_id}"), 404, "conversation_not_found")
    missing = await alice.post("/chat/stream", json={"message": "hi", "conversation_id": 2**62})
    assert missing.json() == (await bob.get(f"/conversations/{conversation_id}/messages")).json()

    # Nothing of bob's was stored, nothing of alice's was touched.
    assert await db.rows("SELECT id FROM conversations WHERE user_id = :u", u=bob.id) == []
    count = await db.rows(
        "SELECT count(*) AS n FROM messages WHERE conversation_id = :id", id=conversation_id
    )
    assert count == [{"n": 2}]


async def test_someone_elses_task_is_404(server: LiveServer) -> None:
    alice, bob = server.user("alice"), server.user("bob")
    task = (await alice.post("/tasks", json={"title": "Alice's task"})).json()
    _error(await bob.patch(f"/tasks/{task['id']}", json={"completed": True}), 404, "task_not_found")
    _error(await bob.delete(f"/tasks/{task['id']}"), 404, "task_not_found")
    assert (await alice.get("/tasks")).json()["tasks"][0]["completed"] is False
    _error(await alice.patch("/tasks/abc", json={"completed": True}), 404, "not_found")
    _error(await alice.delete("/tasks/99999999999999999999999"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tasks", {"title": ""}),
        ("POST", "/tasks", {"title": "   "}),
        ("POST", "/tasks", {"title": "x" * 201}),
        ("POST", "/tasks", {"title": "ok", "description": "x" * 2001}),
        ("POST", "/tasks", {"title": "ok", "completed": True}),
        ("POST", "/tasks", {"title": 3}),
        ("PATCH", "/tasks/1", {}),
        ("PATCH", "/tasks/1", {"completed": "yes"}),
    ],
)
async def test_invalid_task_bodies_are_422(
    server: LiveServer, method: str, path: str, body: dict[str, Any]
) -> None:
    user = server.user()
    response = await user.client.request(method, user.url(path), json=body, headers=user.headers)
    _error(response, 422, "invalid_request")


async def test_invalid_query_parameters_are_422(server: LiveServer) -> None:
    user = server.user()
    _error(await user.get("/tasks", params={"status": "someday"}), 422, "invalid_request")
    _error(await user.get("/conversations", params={"limit": "0"}), 422, "invalid_request")


async def test_unknown_paths_and_methods_answer_in_json(server: LiveServer) -> None:
    user = server.user()
    _error(await server.client.get("/nowhere"), 404, "not_found")
    _error(await user.get("/nowhere"), 404, "not_found")
    _error(
        await user.client.put(user.url("/tasks"), headers=user.headers), 405, "method_not_allowed"
    )


async def test_tokens_signed_with_a_private_key_are_verified_with_the_public_key(
    settings: Settings,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs256 = with_settings(settings, jwt_algorithm="RS256", jwt_public_key=public_pem)
    async with serve(create_app(rs256), rs256) as live:
        token = jwt.encode(
            {"sub": "carol", "exp": int(time.time()) + 60}, private_pem, algorithm="RS256"
        )
        response = await live.client.get(
            "/api/carol/tasks", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        forged = _hs256_by_hand({"sub": "carol", "exp": int(time.time()) + 60}, public_pem)
        response = await live.client.get(
            "/api/carol/tasks", headers={"Authorization": f"Bearer {forged}"}
        )
        _error(response, 401, "invalid_token")


async def test_an_event_id_that_is_not_one_is_422_whether_or_not_a_run_is_going(
    server: LiveServer,
) -> None:
    """Checked before the answer that nothing is going (204), after the answer that the
    conversation or run does not exist (404)."""
    user = server.user()
    events = await user.chat("hello")
    conversation, run = events[0]["conversation_id"], events[0]["run_id"]

    async def resume(path: str, event_id: str) -> httpx.Response:
        headers = {**user.headers, "Last-Event-ID": event_id}
        return await user.client.get(user.url(path), headers=headers)

    past_the_largest_seq = "9999999999"
    ended = await resume(f"/conversations/{conversation}/stream", past_the_largest_seq)
    _error(ended, 422, "invalid_request")
    _error(await resume(f"/runs/{run}/events", past_the_largest_seq), 422, "invalid_request")
    unknown = "0b6f3c1e-5a4d-4d7e-9a53-2f1c8e7d6b5a"
    _error(await resume(f"/runs/{unknown}/events", past_the_largest_seq), 404, "run_not_found")
    nowhere = await resume("/conversations/999999999/stream", past_the_largest_seq)
    _error(nowhere, 404, "conversation_not_found")
    at_the_end = await resume(f"/conversations/{conversation}/stream", f"{run}:{events[-1]['seq']}")
    assert at_the_end.status_code == 204

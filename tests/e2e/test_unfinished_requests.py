"""Requests that never finish, against the service as a process of its own, over raw sockets:
a head or a body that does not arrive in time is answered 408 and its connection closed, a head
past the cap 431, a connection past the cap 503; the answers are the JSON error envelope. The
deadlines are set to 1 s here; each test waits for the server to close the socket, not for a
time."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from app.http_protocol import protocol_for
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import TEST_SECRET
from tests.support import eventually, start_service

# Bounds a wait that would otherwise be endless when the protection is missing; the outcome
# never depends on it.
GIVE_UP_SECONDS = 60.0


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def port(self) -> int:
        port = urlsplit(self.base_url).port
        assert port is not None
        return port

    def open_descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@contextmanager
def service(database_url: str, log: Path, **env: str) -> Iterator[Service]:
    process, base_url = start_service(database_url, log, **env)
    try:
        yield Service(process, base_url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="module")
def strict(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("strict") / "service.log"
    with service(
        database_url,
        log,
        REQUEST_HEAD_TIMEOUT_SECONDS="1",
        REQUEST_BODY_TIMEOUT_SECONDS="1",
        MAX_HEADER_BYTES="4096",
        OFFLINE_TOKEN_DELAY_MS="150",
    ) as started:
        yield started


@dataclass
class Answer:
    raw: bytes

    @property
    def status(self) -> int:
        return int(self.raw.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {name.lower(): value.strip() for name, value in (h.split(":", 1) for h in head)}

    @property
    def error(self) -> dict[str, Any]:
        body = json.loads(self.raw.split(b"\r\n\r\n", 1)[1])
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        return error


async def until_closed(port: int, sent: bytes) -> bytes:
    """Send `sent`, then read until the server closes the connection; what it sent back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
    finally:
        writer.close()


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def refused(answer: bytes, status: int, code: str) -> Answer:
    parsed = Answer(answer)
    assert parsed.status == status, answer[:300]
    assert parsed.headers["content-type"] == "application/json"
    assert parsed.headers["connection"] == "close"
    assert parsed.error["code"] == code
    return parsed


HALF_HEADS = [
    b"G",
    b"GET /hea",
    b"GET /health HTTP/1.1\r\n",
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1",
    b"POST /api/u/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n",
]


async def test_heads_that_never_finish_are_answered_408_and_closed(strict: Service) -> None:
    baseline = strict.open_descriptors()
    partial = [HALF_HEADS[n % len(HALF_HEADS)] for n in range(300)]
    answers = await asyncio.gather(*(until_closed(strict.port, sent) for sent in partial))
    for answer in answers:
        refused(answer, 408, "request_timeout")
    # A connection that asked nothing is closed without an answer.
    assert await until_closed(strict.port, b"") == b""

    async def descriptors_released() -> bool:
        # Give or take the database pool's connections, opened as the service needs them.
        return strict.open_descriptors() <= baseline + 10

    await eventually(descriptors_released, "the server closed its side of every socket")
    async with httpx.AsyncClient(base_url=strict.base_url) as client:
        assert (await client.get("/health")).status_code == 200
        metrics = (await client.get("/metrics")).text
    counted = re.search(
        r'^todo_chat_refusals_total\{code="request_timeout",status="408"\} (\S+)$', metrics, re.M
    )
    assert counted is not None and float(counted[1]) >= 300, metrics[-3000:]


async def test_a_reused_connections_next_head_has_a_deadline_too(strict: Service) -> None:
    sent = request("GET", "/health") + b"GET /health HTTP/1.1\r\nHo"
    answer = await until_closed(strict.port, sent)
    first, second = answer.split(b"HTTP/1.1 ", 2)[1:]
    assert first.startswith(b"200 ")
    refused(b"HTTP/1.1 " + second, 408, "request_timeout")


async def test_a_body_that_stalls_is_answered_408(strict: Service) -> None:
    token = issue_token(Settings(jwt_secret=TEST_SECRET), "staller")
    sent = request(
        "POST",
        "/api/staller/tasks",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        "Content-Length: 100",
        body=b"{",
    )
    answers = await asyncio.gather(*(until_closed(strict.port, sent) for _ in range(20)))
    for answer in answers:
        refused(answer, 408, "request_timeout")
    # The app, waiting for those bodies, was told the clients left: no error on its side.
    said = strict.log.read_text()
    assert "Exception in ASGI application" not in said and "unhandled error" not in said, said
    async with httpx.AsyncClient(base_url=strict.base_url) as client:
        complete = await client.post(
            "/api/staller/tasks",
            json={"title": "after the stall"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert complete.status_code == 201, complete.text


def padded_head(size: int) -> bytes:
    """A GET of /health whose line and headers, blank line included, are `size` bytes."""
    bare = request("GET", "/health", "Connection: close", "X-Pad: ")
    head = request("GET", "/health", "Connection: close", "X-Pad: " + "p" * (size - len(bare)))
    assert len(head) == size
    return head


async def test_a_head_past_the_cap_is_answered_431(strict: Service) -> None:
    """MAX_HEADER_BYTES is 4096 here: a head of exactly that is served, one byte more is not."""
    at_cap = await until_closed(strict.port, padded_head(4096))
    assert at_cap.startswith(b"HTTP/1.1 200 "), at_cap[:200]
    refused(await until_closed(strict.port, padded_head(4097)), 431, "headers_too_large")
    # Sent a piece at a time, the same.
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\n")
        for _ in range(10):
            writer.write(b"X-Pad: " + b"p" * 500 + b"\r\n")
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
    finally:
        writer.close()
    refused(answer, 431, "headers_too_large")


async def test_a_stream_outlives_the_deadlines(strict: Service) -> None:
    """The deadlines are for a request's arrival, not for its answer: a stream of 1.5 s or more
    (tokens 150 ms apart) is not cut at 1 s."""
    token = issue_token(Settings(jwt_secret=TEST_SECRET), "streamer")
    async with (
        httpx.AsyncClient(base_url=strict.base_url, timeout=GIVE_UP_SECONDS) as client,
        client.stream(
            "POST",
            "/api/streamer/chat/stream",
            json={"message": "add buy milk, call mom and water the plants"},
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        ) as response,
    ):
        events = [
            json.loads(line[6:]) async for line in response.aiter_lines() if line[:6] == "data: "
        ]
    assert events[-1]["type"] == "done", events[-3:]
    assert sum(event["type"] == "text" for event in events) >= 10  # 1.5 s at least


async def test_a_head_pipelined_behind_a_stream_waits_for_it(strict: Service) -> None:
    """Half a request sent on a connection whose stream is still going: the stream is not cut
    or written into; once it has ended, the half request gets its 408."""
    token = issue_token(Settings(jwt_secret=TEST_SECRET), "pipeliner")
    body = json.dumps({"message": "add buy milk, call mom and water the plants"}).encode()
    stream = request(
        "POST",
        "/api/pipeliner/chat/stream",
        f"Authorization: Bearer {token}",
        "Accept: text/event-stream",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        body=body,
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    try:
        writer.write(stream)
        await asyncio.wait_for(reader.readuntil(b'"type":"text"'), GIVE_UP_SECONDS)
        writer.write(b"GET /hea")  # then nothing more, for longer than the 1 s deadline
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
    finally:
        writer.close()
    streamed, _, after = rest.partition(b"\r\n0\r\n\r\n")  # the stream's last chunk
    assert b"HTTP/1.1" not in streamed and b'"type":"done"' in streamed, rest[-500:]
    refused(after, 408, "request_timeout")


async def test_a_head_pipelined_behind_a_request_not_yet_answered_waits_for_its_answer(
    strict: Service,
) -> None:
    """Half a request sent right behind a whole one that the app takes longer than the head's
    deadline to answer (a turn answered as JSON, at the end): the first answer comes first and
    whole, then the half request's 408."""
    token = issue_token(Settings(jwt_secret=TEST_SECRET), "pipeliner")
    body = json.dumps({"message": "add buy milk, call mom and water the plants"}).encode()
    turn = request(
        "POST",
        "/api/pipeliner/chat",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        body=body,
    )
    answers = await until_closed(strict.port, turn + b"GET /hea")
    assert Answer(answers).status == 200, answers[:300]
    answered, _, after = answers.partition(b"\r\n\r\n")[2].partition(b"HTTP/1.1 ")
    assert answered.startswith(b'{"conversation_id"') and b'"response":' in answered, answers[:600]
    refused(b"HTTP/1.1 " + after, 408, "request_timeout")


@pytest.fixture
async def capped(database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    with service(database_url, tmp_path / "service.log", MAX_CONNECTIONS="3") as started:
        yield started


async def test_a_connection_past_the_cap_is_answered_503(capped: Service) -> None:
    held = [await asyncio.open_connection("127.0.0.1", capped.port) for _ in range(3)]
    try:
        for _, writer in held:
            writer.write(b"GET /health HTTP/1.1\r\n")  # half a head: each holds its connection
            await writer.drain()
        over = refused(
            await until_closed(capped.port, request("GET", "/health")), 503, "overloaded"
        )
        assert over.headers["retry-after"] == "5"
    finally:
        for _, writer in held:
            writer.close()

    async with httpx.AsyncClient(base_url=capped.base_url) as client:

        async def served() -> bool:
            return (await client.get("/health")).status_code == 200

        await eventually(served, "a request is served once the held connections are gone")


async def test_a_body_the_app_has_not_asked_for_yet_is_not_timed_out() -> None:
    """With `Expect: 100-continue` the client sends its body once the app asks for it: a body
    deadline passing before then is this side's wait, not the client's stall. Here the app
    asks only after the deadline has passed (the protocol says so), and the request is served."""
    settings = replace(Settings(), request_body_timeout_seconds=0.05)
    deadline_passed = asyncio.Event()
    release = asyncio.Event()

    class Watched(protocol_for(settings)):  # type: ignore[misc]
        def _body_expired(self) -> None:
            super()._body_expired()
            deadline_passed.set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"got " + body})

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, http=Watched, lifespan="off", log_level="warning"
        )
    )
    sock = socket.create_server(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(
            request("POST", "/", "Expect: 100-continue", "Content-Length: 5", "Connection: close")
        )
        await writer.drain()
        await asyncio.wait_for(deadline_passed.wait(), GIVE_UP_SECONDS)
        release.set()
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
        assert continued == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        answer = await asyncio.wait_for(reader.read(), GIVE_UP_SECONDS)
        writer.close()
        assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK" and b"got hello" in answer
    finally:
        server.should_exit = True
        await serving
        sock.close()

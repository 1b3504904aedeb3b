"""Test helpers: a live server on a loopback port, and the two kinds of SSE client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from httpx_sse import aconnect_sse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.runs.recovery import Recovery
from app.runs.registry import RunRegistry
from app.settings import Settings
from app.web.auth import issue_token
from app.web.state import state_of


class PlainSql:
    """Plain SQL on the test database, for checking what the service stored without going
    through its code (the `db` fixture)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row._mapping) for row in result]

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(text(sql), params)


@dataclass
class LiveServer:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings

    @property
    def registry(self) -> RunRegistry:
        return state_of(self.app).registry

    @property
    def recovery(self) -> Recovery:
        return state_of(self.app).recovery

    def user(self, name: str = "user") -> User:
        user_id = f"{name}-{uuid.uuid4().hex[:10]}"
        return User(user_id, issue_token(self.settings, user_id), self.client)


@dataclass
class User:
    id: str
    token: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"/api/{self.id}{path}"

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(self.url(path), headers=self.headers, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(self.url(path), headers=self.headers, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.patch(self.url(path), headers=self.headers, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.delete(self.url(path), headers=self.headers, **kwargs)

    async def chat(
        self, message: str, conversation_id: int | None = None, *, reader: str = "seed"
    ) -> list[dict[str, Any]]:
        """Send one message to the stream endpoint; the events as `reader` parses them."""
        body = {"message": message, "conversation_id": conversation_id}
        if reader == "httpx-sse":
            return await read_with_httpx_sse(
                self.client, self.url("/chat/stream"), body, self.headers
            )
        raw = await read_raw(self.client, self.url("/chat/stream"), body, self.headers)
        return seed_parse(raw)


@asynccontextmanager
async def serve(app: Starlette, settings: Settings) -> AsyncIterator[LiveServer]:
    """Run the service under uvicorn on a free loopback port, with its lifespan."""
    async with running(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield LiveServer(app, client, settings)


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[str]:
    """Run any ASGI app under uvicorn on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def read_raw(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> list[str]:
    """The response body of a stream as the chunks the network delivered."""
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [chunk async for chunk in response.aiter_text()]


async def read_with_httpx_sse(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> list[dict[str, Any]]:
    async with aconnect_sse(client, "POST", url, json=body, headers=headers) as source:
        source.response.raise_for_status()
        # httpx-sse hands over the id-only blocks too, with empty data: EventSource would not.
        return [json.loads(event.data) async for event in source.aiter_sse() if event.data]


def seed_parse(chunks: Iterable[str]) -> list[dict[str, Any]]:
    """A line-for-line port of the parsing loop of the seed's `useChat` and `StreamingMessage`.

    The one change: where the JavaScript swallows a JSON error, this raises, so a framing
    mistake fails the test instead of silently dropping an event.
    """
    buffer = ""
    events: list[dict[str, Any]] = []
    for chunk in chunks:
        buffer += chunk
        lines = buffer.split("\n\n")
        buffer = lines.pop() or ""
        for line in lines:
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                return events
            events.append(json.loads(data))
    return events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(event["content"] for event in events if event["type"] == "text")


def types_of(events: list[dict[str, Any]]) -> list[str]:
    """Event types, with runs of `text` folded into one."""
    folded: list[str] = []
    for event in events:
        if not (event["type"] == "text" and folded and folded[-1] == "text"):
            folded.append(event["type"])
    return folded


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, within: float = 30.0
) -> None:
    """Wait for a state, not for a time: ask `check` (say, a query of what the database
    holds) until it says yes. `within` only bounds a wait that would otherwise be endless: a
    slow machine waits longer, and the test's outcome stays the same."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {within} s")
        await asyncio.sleep(0.02)


def process_memory(pid: int | str, field: str = "VmRSS") -> int:
    """A memory figure of /proc/<pid>/status (`VmRSS`, its peak `VmHWM`…), in bytes; `pid`
    may be "self"."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"/proc/{pid}/status has no {field}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "JWT_", "APP_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(values)
    return env


def start_service(database_url: str, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """The service as a process of its own, `python -m app serve` on a free port, with the
    tests' secret, APP_ENV=test and `env`; what it logs goes to `log`. Its process, and its
    base URL once it answers."""
    from app.settings import PROJECT_ROOT
    from tests.conftest import TEST_SECRET

    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=PROJECT_ROOT,
            env=environment(
                **{"APP_ENV": "test", "JWT_SECRET": TEST_SECRET, **env},
                DATABASE_URL=database_url,
                PORT=str(port),
            ),
            stdout=output,
            stderr=output,
        )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{base_url}/health", process)
    return process, base_url


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


CLIENTS = Path(__file__).parent / "clients"


def node_with_clients() -> str:
    """Node, with the client packages of tests/clients installed (`make install` runs `npm ci`
    there). Without them a test skips with the reason, except in CI (`CI` set), where it fails:
    a CI machine must not drop the client tests silently."""
    node = shutil.which("node")
    if node is None:
        missing = "Node.js is not installed"
    elif not (CLIENTS / "node_modules").is_dir():
        missing = "the client packages are not installed: run `make install`"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"{missing} (CI must run the JavaScript client tests)")
    pytest.skip(missing)


async def run_node(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one of the scripts in tests/clients; the JSON object it prints."""
    process = await asyncio.create_subprocess_exec(
        node_with_clients(),
        str(CLIENTS / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, (stdout, stderr)
    result: dict[str, Any] = json.loads(stdout)
    return result

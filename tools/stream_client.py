"""A client of the service's streams on raw asyncio sockets (cheap enough to run hundreds beside
the servers): a turn sent and read on one instance, and followed on another through the event
log. Each text token's lag is read from the wall-clock stamp the bench's model put in it
(`tools.bench_server`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Stream:
    """What one client read of one run's stream."""

    ok: bool = False
    failure: str = ""
    tokens: int = 0
    lags: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    live_from: float = 0.0


async def read_stream(
    reader: asyncio.StreamReader, stream: Stream, started: Callable[[str], None] | None = None
) -> None:
    """Read SSE events until `done` or `error`: each text token's lag from its stamp, the gaps
    between live tokens, and the run's id (from `start`) handed to `started`."""
    buffer, last = b"", None
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        wall = time.time()
        buffer += chunk
        while b"\n\n" in buffer:
            block, _, buffer = buffer.partition(b"\n\n")
            at = block.find(b'data: {"type":"')
            if at < 0:
                continue
            kind = block[at + 15 : block.index(b'"', at + 15)]
            if kind == b"text":
                stamp = float(block[block.index(b'"content":" ') + 12 :].split(b'"', 1)[0])
                stream.tokens += 1
                if stamp >= stream.live_from:
                    stream.lags.append(wall - stamp)
                    if last is not None:
                        stream.gaps.append(wall - last)
                    last = wall
            elif kind == b"start" and started is not None:
                started(json.loads(block[at + 6 :].split(b"\n", 1)[0])["run_id"])
            elif kind == b"done":
                stream.ok, stream.failure = True, ""
                return
            elif kind == b"error":
                error = json.loads(block[at + 6 :].split(b"\n", 1)[0])
                stream.failure = "error:" + str(error.get("code", "?"))
                return


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def request(port: int, head: str, body: bytes, stream: Stream) -> Connection | None:
    """Send one request; the connection past a 200's head, or None (the failure in `stream`).
    The writer is kept while reading: a writer collected closes the connection."""
    stream.failure = "cut"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head.encode() + body)
        answer = await reader.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError):
        return None
    if not answer.startswith(b"HTTP/1.1 200"):
        stream.failure = answer[9:12].decode()
        writer.close()
        return None
    return reader, writer


def headers(method: str, path: str, token: str, extra: str = "") -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\nConnection: close\r\n{extra}\r\n"
    )


async def follow(port: int, user: str, token: str, run_id: str, stream: Stream) -> None:
    """A client of the run on the other instance: its events through the event log."""
    head = headers("GET", f"/api/{user}/runs/{run_id}/events", token)
    connection = await request(port, head, b"", stream)
    if connection is not None:
        stream.live_from = time.time()
        await read_to_end(connection, stream)


async def read_to_end(
    connection: Connection, stream: Stream, started: Callable[[str], None] | None = None
) -> None:
    reader, writer = connection
    try:
        await read_stream(reader, stream, started)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        stream.ok = False
    finally:
        writer.close()


async def turn(
    ports: tuple[int, int], user: str, token: str, message: str, followed: bool
) -> tuple[Stream, Stream | None]:
    """One turn sent to `ports[0]`, read there, and (if `followed`) followed on `ports[1]`."""
    own, other = Stream(), Stream() if followed else None
    followers: list[asyncio.Task[None]] = []

    def started(run_id: str) -> None:
        if other is not None:
            followers.append(asyncio.create_task(follow(ports[1], user, token, run_id, other)))

    body = json.dumps({"message": message}).encode()
    head = headers(
        "POST",
        f"/api/{user}/chat/stream",
        token,
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n",
    )
    connection = await request(ports[0], head, body, own)
    if connection is not None:
        await read_to_end(connection, own, started)
    await asyncio.gather(*followers)
    if other is not None and not followers:
        other.failure = "never started"
    return own, other

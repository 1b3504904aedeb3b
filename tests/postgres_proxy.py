"""A TCP proxy in front of PostgreSQL that can make one statement's connection drop: either
after the statement ran and committed, before its reply reaches the client, or before the
statement reaches the server at all. This is the network failing at the worst moments, with
nothing of ours faked."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit

PARSE, BIND = ord("P"), ord("B")
COMMAND_COMPLETE, READY_FOR_QUERY = ord("C"), ord("Z")
ENCRYPTION_REQUESTS = (80877103, 80877104)  # SSLRequest, GSSENCRequest


class Drop(Enum):
    REPLY = "the statement commits, its reply is lost"
    STATEMENT = "the statement never reaches the server"


@dataclass
class Link:
    """One client's connection through the proxy: what its marked statement is doing."""

    marked: bytes | None = None  # the marked statement's name, once parsed
    executing: Drop | None = None


class DroppingProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = dict(parse_qsl(parts.query))
        self._url = parts
        # A server reached over TCP, or over its Unix socket (as the embedded one is).
        port = int(query.get("port") or parts.port or 5432)
        socket_dir = query.get("host", "")
        self._socket = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir.startswith("/") else None
        self._address = (socket_dir or parts.hostname or "127.0.0.1", port)
        self._marker: bytes | None = None
        self._drop = Drop.REPLY
        self._every = False
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.dropped = asyncio.Event()
        self.holds_hangups = False
        """When the server hangs up, pass on all it sent but keep the client's side open (an
        ended session's last message read, its end not yet seen); `hung_up` is then set."""
        self.hung_up = asyncio.Event()

    @property
    def url(self) -> str:
        """The database's URL through the proxy (in the clear, so that it can read it)."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        netloc = self._url.netloc.rsplit("@", 1)[0] + "@" if "@" in self._url.netloc else ""
        dropped = ("host", "port", "ssl", "sslmode")
        query = [(k, v) for k, v in parse_qsl(self._url.query) if k not in dropped]
        return self._url._replace(
            netloc=f"{netloc}127.0.0.1:{port}", query=urlencode([*query, ("ssl", "disable")])
        ).geturl()

    def drop(self, marker: bytes, when: Drop, *, every: bool = False) -> None:
        """Drop the connection of the next statement whose text holds `marker` (of every one
        until `stop_dropping()`, with `every`)."""
        self._marker, self._drop, self._every = marker, when, every

    def stop_dropping(self) -> None:
        self._marker, self._every = None, False

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        writers = [client_out]
        try:
            if self._socket is not None:
                server_in, server_out = await asyncio.open_unix_connection(self._socket)
            else:
                server_in, server_out = await asyncio.open_connection(*self._address)
            writers.append(server_out)
            link = Link()
            directions = [
                asyncio.ensure_future(self._to_server(link, client_in, server_out)),
                asyncio.ensure_future(self._to_client(link, server_in, client_out)),
            ]
            try:
                await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for direction in directions:
                    direction.cancel()
                await asyncio.gather(*directions, return_exceptions=True)
        finally:
            for writer in writers:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            self._connections.discard(task)

    async def _to_server(
        self, link: Link, client_in: asyncio.StreamReader, out: asyncio.StreamWriter
    ) -> None:
        messages = ClientMessages()
        while data := await client_in.read(65536):
            for kind, body in messages.feed(data):
                name, _, rest = body.partition(b"\0")
                if kind == PARSE and self._marker is not None and self._marker in rest:
                    link.marked = name
                    if not self._every:
                        self._marker = None
                elif kind == BIND and rest.partition(b"\0")[0] == link.marked:
                    link.executing = self._drop
                    if self._drop is Drop.STATEMENT:
                        self.dropped.set()
                        return
            out.write(data)
            await out.drain()

    async def _to_client(
        self, link: Link, server_in: asyncio.StreamReader, out: asyncio.StreamWriter
    ) -> None:
        buffer = b""
        completed = False
        while data := await server_in.read(65536):
            if link.executing is not Drop.REPLY:
                out.write(data)
                await out.drain()
                continue
            # The marked statement is executing: pass its messages on until it completes, then
            # hold everything back until the server is ready for the next query (its implicit
            # transaction has committed by then), and hang up.
            buffer += data
            while len(buffer) >= 5:
                size = 1 + int.from_bytes(buffer[1:5], "big")
                if len(buffer) < size:
                    break
                message, buffer = buffer[:size], buffer[size:]
                if completed and message[0] == READY_FOR_QUERY:
                    self.dropped.set()
                    return
                completed = completed or message[0] == COMMAND_COMPLETE
                if not completed:
                    out.write(message)
            await out.drain()
        if self.holds_hangups:
            self.hung_up.set()
            await asyncio.Event().wait()  # until the proxy closes


class ClientMessages:
    """The client's side of the protocol, cut into messages: first the untyped start-up ones
    (an SSL or GSS request, then the start-up message), then typed ones."""

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        messages: list[tuple[int, bytes]] = []
        while True:
            if not self._started:
                if len(self._buffer) < 8:
                    return messages
                size = int.from_bytes(self._buffer[:4], "big")
                if len(self._buffer) < size:
                    return messages
                code = int.from_bytes(self._buffer[4:8], "big")
                self._started = code not in ENCRYPTION_REQUESTS
                self._buffer = self._buffer[size:]
                continue
            if len(self._buffer) < 5:
                return messages
            size = 1 + int.from_bytes(self._buffer[1:5], "big")
            if len(self._buffer) < size:
                return messages
            messages.append((self._buffer[0], self._buffer[5:size]))
            self._buffer = self._buffer[size:]

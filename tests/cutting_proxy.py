"""A TCP proxy in front of the service that cuts one response at a chosen point of what the
service sent: the network failing mid-stream, for a real client's own retry logic to handle.
The point is found in the bytes as they pass (an event's type, the end of a block), so a test
names "inside the first event" rather than a byte count that moves with every run id."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from types import TracebackType

_REQUEST_LINE = re.compile(rb"(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) /\S* HTTP/1\.1\r\n")


@dataclass(frozen=True)
class Cut:
    """Cut `offset` bytes past the start of the `occurrence`-th `marker` in a response, or,
    with `at_block_end`, just after the empty line that ends the block holding it."""

    marker: bytes
    occurrence: int = 1
    offset: int = 0
    at_block_end: bool = False

    def position(self, seen: bytes) -> int | None:
        start = -1
        for _ in range(self.occurrence):
            start = seen.find(self.marker, start + 1)
            if start < 0:
                return None
        if not self.at_block_end:
            return start + self.offset
        end = seen.find(b"\n\n", start)
        return None if end < 0 else end + 2


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; the first response in which `cut` is found is
    cut there (the client gets exactly the bytes before it, then the connection closes).
    It counts connections and requests (a client may send several on one connection)."""

    def __init__(self, upstream_port: int, cut: Cut | None = None) -> None:
        self._upstream_port = upstream_port
        self._cut = cut
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.requests = 0
        self.cut_made = asyncio.Event()

    def send_new_connections_to(self, upstream_port: int) -> None:
        """Forward connections made from now on to another port: a balancer whose instance
        died (the connections it had end with that instance)."""
        self._upstream_port = upstream_port

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # each connection's reads end, and so do their tasks
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_in, upstream = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            client.close()
            self._tasks.discard(task)
            return
        self._writers.update((client, upstream))
        requests = asyncio.create_task(self._forward_requests(client_in, upstream))
        try:
            with contextlib.suppress(OSError):
                await self._respond(upstream_in, client)
        finally:
            requests.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await requests
            for writer in (client, upstream):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                self._writers.discard(writer)
            self._tasks.discard(task)

    async def _forward_requests(
        self, client_in: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await client_in.read(65536):
                self.requests += len(_REQUEST_LINE.findall(chunk))
                upstream.write(chunk)
                await upstream.drain()

    async def _respond(
        self, upstream_in: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        seen = b""
        while chunk := await upstream_in.read(65536):
            if self._cut is None or self.cut_made.is_set():
                client.write(chunk)
                await client.drain()
                continue
            sent = len(seen)
            seen += chunk
            position = self._cut.position(seen)
            if position is None or position > len(seen):
                client.write(chunk)
                await client.drain()
                continue
            client.write(seen[sent:position])
            await client.drain()
            self.cut_made.set()
            return

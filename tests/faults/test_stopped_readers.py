"""Clients that stop reading, many at once, on the service as a process of its own: each costs
the process a bounded amount of memory however much its run goes on to say, each stream is
dropped (and counted in /metrics) once a write has waited `SEND_TIMEOUT_SECONDS`, the runs go
on and are stored whole, and a client that comes back resumes with `Last-Event-ID` and misses
nothing.

Each stopped reader follows a run that has already said 1 MB (so all of it is queued for the
reader the moment it joins), reads the response's head, and never reads again; then the runs go
on. Its socket is an Internet client's: 1460-byte segments (over loopback's own 64 KB ones the
server's kernel takes 2.8 MB of a stream before a write waits, 114 KB with these: measured
here) and a small receive buffer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.chat import MAX_FOLLOWERS_PER_USER
from app.settings import Settings
from app.web.auth import issue_token
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.faults.conftest import scale
from tests.faults.streams import Stream, read_stream
from tests.support import (
    PlainSql,
    User,
    eventually,
    process_memory,
    running,
    start_service,
    text_of,
)

SEND_TIMEOUT_SECONDS = 4
TOKEN_CHARS = 4000  # one text event of about 4 KB per token
HISTORY_TOKENS = 256  # said before the stopped readers join: 1 MB
LATER_TOKENS = 32  # said while they do not read: 128 KB more
INTERNET_MSS = 1460
# What one stopped reader may cost the process. Any open stream costs about 110 KB (`make
# bench`); one whose client stopped reading holds besides a batch in uvicorn's write buffer (which
# stops taking writes past 64 KB, so the batch that crossed that mark is in it too) and one batch
# waiting to be sent: a batch is at most `BATCH_BYTES`, 64 KB. About 300 KB. Measured: 84 to 227
# KB each in eight runs of `make faults` (200 readers), 129 to 273 KB in five of `make test`'s
# 40; 1.8 to 2.5 MB each before batches were bounded (the 1 MB it was behind, twice).
PER_STOPPED_READER_BYTES = 512 * 1024


@dataclass
class Gate:
    """Holds every run at one token until opened: the history is said, the rest is not yet."""

    runs: int
    at: int
    arrived: int = 0
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def before_token(self, index: int) -> None:
        if index == self.at:
            self.arrived += 1
            if self.arrived == self.runs:
                self.all_arrived.set()
            await self.opened.wait()


class StoppedReader:
    """A client that asks for a run's events, reads the response's head, and stops reading."""

    def __init__(self, sock: socket.socket, body_start: bytes) -> None:
        self.sock = sock
        self._body_start = body_start

    @classmethod
    async def follow(cls, port: int, user: User, run_id: str) -> StoppedReader:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connecting: the segment size is agreed on in the handshake.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, INTERNET_MSS)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(
                sock,
                (
                    f"GET {user.url(f'/runs/{run_id}/events')} HTTP/1.1\r\nHost: test\r\n"
                    f"Authorization: Bearer {user.token}\r\nAccept: text/event-stream\r\n"
                    f"Last-Event-ID: {run_id}:0\r\n\r\n"
                ).encode(),
            )
            received = b""
            while b"\r\n\r\n" not in received:
                more = await loop.sock_recv(sock, 1024)
                if not more:
                    raise AssertionError(f"closed before the head: {received!r}")
                received += more
        except BaseException:
            sock.close()
            raise
        head, _, body_start = received.partition(b"\r\n\r\n")
        reader = cls(sock, body_start)
        if not head.startswith(b"HTTP/1.1 200 "):
            reader.close()
            raise AssertionError(head)
        return reader

    def close(self) -> None:
        self.sock.close()

    async def read_to_the_end(self) -> list[dict[str, Any]]:
        """Everything the server sent before it closed the connection, as events."""
        loop = asyncio.get_running_loop()
        chunks = [self._body_start]
        while more := await loop.sock_recv(self.sock, 1 << 20):
            chunks.append(more)
        self.close()
        return _events(_unchunked(b"".join(chunks)))


async def _stopped_readers(
    port: int, users: list[User], run_ids: list[str], per_run: int, *, closing: contextlib.ExitStack
) -> list[StoppedReader]:
    """`per_run` stopped readers of each run, each closed when `closing` closes (all of them
    if one could not start)."""
    started = await asyncio.gather(
        *(
            StoppedReader.follow(port, user, run_id)
            for user, run_id in zip(users, run_ids, strict=True)
            for _ in range(per_run)
        ),
        return_exceptions=True,
    )
    readers = [reader for reader in started if isinstance(reader, StoppedReader)]
    for reader in readers:
        closing.callback(reader.close)
    failed = [error for error in started if isinstance(error, BaseException)]
    if failed:
        raise failed[0]
    return readers


def _unchunked(body: bytes) -> bytes:
    """An HTTP/1.1 chunked body, cut off anywhere, as the bytes its whole chunks carry."""
    out, at = [], 0
    while (end := body.find(b"\r\n", at)) != -1:
        size = int(body[at:end], 16)
        if size == 0 or end + 2 + size > len(body):
            break
        out.append(body[end + 2 : end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(out)


def _events(stream: bytes) -> list[dict[str, Any]]:
    """The events of a stream in the standard framing, up to the last whole one."""
    whole = stream[: stream.rfind(b"\n\n") + 2] if b"\n\n" in stream else b""
    return [
        json.loads(line[6:])
        for block in whole.split(b"\n\n")
        for line in block.split(b"\n")
        if line.startswith(b"data: ")
    ]


@contextlib.contextmanager
def _peak_rss_growth(pid: int) -> Iterator[list[int]]:
    """How far the process's resident set rose above what it was, at its highest while the
    block ran: the kernel's own high-water mark (VmHWM), reset at the start (clear_refs 5), so
    no peak falls between two samples."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = process_memory(pid)
    growth = [0]
    try:
        yield growth
    finally:
        growth[0] = process_memory(pid, "VmHWM") - before


@contextlib.contextmanager
def _killed_at_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


async def _streams_dropped(client: httpx.AsyncClient) -> float:
    """How many streams the service dropped for a client that stopped reading, as its
    /metrics says."""
    exposition = (await client.get("/metrics")).text
    return next(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "todo_chat_streams_dropped_total"
    )


async def _resume(user: User, run_id: str, after_seq: int) -> list[dict[str, Any]]:
    events = []
    headers = {**user.headers, "Last-Event-ID": f"{run_id}:{after_seq}"}
    async with user.client.stream(
        "GET", user.url(f"/runs/{run_id}/events"), headers=headers
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


@dataclass
class Outcome:
    """What one service process went through: its runs read to their end by their own
    clients, the events each stopped reader got before it was dropped and what it got when it
    resumed, and how much the process's memory grew from before the runs to its peak."""

    text: str
    run_ids: list[str]
    streams: list[Stream]
    stopped: list[list[dict[str, Any]]]
    resumed: list[list[dict[str, Any]]]
    rss_growth: int
    dropped_after: float


async def _runs_with_stopped_readers(
    settings: Settings, log: Path, *, runs: int, stopped_per_run: int
) -> Outcome:
    """`runs` runs, each followed by `stopped_per_run` clients that stop reading once the
    run has said its history, on a service process of their own."""
    text = "".join(
        f" {n:04}{'x' * (TOKEN_CHARS - 5)}" for n in range(HISTORY_TOKENS + LATER_TOKENS)
    )
    gate = Gate(runs, at=HISTORY_TOKENS)
    fake = FakeOpenAI(
        [Reply(text="Ready.")] + [Reply(text=text, before_token=gate.before_token)] * runs
    )
    assert settings.database_url is not None
    async with running(fake.app()) as provider:
        process, base_url = start_service(
            settings.database_url,
            log,
            AGENT_MODEL="fake-model",
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=f"{provider}/v1",
            SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT_SECONDS),
        )
        port = int(base_url.rsplit(":", 1)[1])
        with _killed_at_exit(process), contextlib.ExitStack() as closing:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                users = [
                    User(name, issue_token(settings, name), client)
                    for name in (f"stopped-{n}-{time.monotonic_ns()}" for n in range(runs))
                ]
                warm_up = await read_stream(users[0], "are you there?")
                assert warm_up.final["type"] == "done", warm_up.final
                with _peak_rss_growth(process.pid) as growth:
                    streams = [Stream() for _ in users]
                    reading = [
                        asyncio.create_task(read_stream(user, "say a lot", stream=stream))
                        for user, stream in zip(users, streams, strict=True)
                    ]
                    with anyio.fail_after(60):
                        await gate.all_arrived.wait()
                    run_ids = [stream.events[0]["run_id"] for stream in streams]
                    stopped = await _stopped_readers(
                        port, users, run_ids, stopped_per_run, closing=closing
                    )
                    joined = time.monotonic()
                    gate.opened.set()
                    with anyio.fail_after(120):
                        await asyncio.gather(*reading)

                    async def all_dropped() -> bool:
                        return await _streams_dropped(client) == len(stopped)

                    await eventually(all_dropped, within=60, what="every stopped stream dropped")
                    dropped_after = time.monotonic() - joined
                    # After the setting's time, not the default 30 s: the service says which.
                    said = await anyio.Path(log).read_text()
                    waited = f"stopped reading for {SEND_TIMEOUT_SECONDS} s"
                    assert said.count(waited) == len(stopped), "dropped after another time"
                got = await asyncio.gather(*(reader.read_to_the_end() for reader in stopped))
                resumed = await asyncio.gather(
                    *(
                        _resume(
                            users[n // stopped_per_run],
                            run_ids[n // stopped_per_run],
                            events[-1]["seq"] if events else 0,
                        )
                        for n, events in enumerate(got)
                    )
                )
    return Outcome(text, run_ids, streams, got, resumed, growth[0], dropped_after)


async def test_clients_that_stop_reading_cost_bounded_memory_and_are_dropped(
    fault_settings: Settings, private_db: PlainSql, tmp_path: Path
) -> None:
    """The same runs twice, each time on a process of its own: read by their own clients
    only, then followed by clients that stop reading as well. What the second process grew
    by beyond the first is what the stopped readers cost it."""
    runs = scale(10, 2)
    per_run = MAX_FOLLOWERS_PER_USER
    assert PER_STOPPED_READER_BYTES < HISTORY_TOKENS * TOKEN_CHARS, "the bound must mean something"
    alone = await _runs_with_stopped_readers(
        fault_settings, tmp_path / "alone.log", runs=runs, stopped_per_run=0
    )
    followed = await _runs_with_stopped_readers(
        fault_settings, tmp_path / "followed.log", runs=runs, stopped_per_run=per_run
    )

    stopped = len(followed.stopped)
    cost = followed.rss_growth - alone.rss_growth
    print(
        f"{stopped} stopped readers, each 1 MB behind, of {runs} runs: the process grew"
        f" {followed.rss_growth / 1e6:.1f} MB, against {alone.rss_growth / 1e6:.1f} MB for the"
        f" runs alone: {cost / stopped / 1e3:.0f} KB per stopped reader; all dropped"
        f" {followed.dropped_after:.1f} s after they joined (send timeout {SEND_TIMEOUT_SECONDS} s)"
    )
    for stream in alone.streams + followed.streams:
        assert stream.final["type"] == "done", stream.final
        assert text_of(stream.events) == followed.text
    for n, (events, rest) in enumerate(zip(followed.stopped, followed.resumed, strict=True)):
        whole = followed.streams[n // per_run].events
        assert events == whole[: len(events)], "a stopped reader got a prefix of the run"
        assert len(events) < len(whole), "it was dropped before the run's end"
        assert events + rest == whole, "and resuming gave it all the rest"
    stored = await private_db.rows(
        "SELECT m.content FROM runs r JOIN messages m ON m.id = r.assistant_message_id"
        " WHERE r.id = ANY(CAST(:ids AS uuid[]))",
        ids=followed.run_ids,
    )
    assert [row["content"] for row in stored] == [followed.text] * runs, "stored whole"
    assert cost < stopped * PER_STOPPED_READER_BYTES, (
        f"{stopped} stopped readers cost {cost / 1e6:.1f} MB, more than"
        f" {PER_STOPPED_READER_BYTES // 1024} KB each"
    )

"""The Redis Streams event log against real servers of our own: a single Redis and a
three-master cluster (tests/redis_servers.py). Everything the interface promises, and what this
backend adds: idempotent appends, one blocking read shared by the waiting followers, expiry,
and a Redis that restarts empty or cannot be reached."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from app.db.outage import is_outage
from app.events import Done, Error, LoggedEvent, Text, encode
from app.runs.live import batch_size
from app.runs.log.base import EventsGone, RunLogLost
from app.runs.log.redis_streams import BLOCK_MS, RedisStreamsLog, redis_streams_log, stream_key
from tests.redis_servers import RedisCluster, RedisServer, Servers
from tests.support import eventually

RETENTION_SECONDS = 3600.0


OpenLog = Callable[[], Awaitable[RedisStreamsLog]]


@pytest.fixture
async def logs(servers: Servers) -> AsyncIterator[OpenLog]:
    """Logs on `servers`, each as another instance would have it (a client and a blocking
    reader of its own), serving until the test ends."""
    async with AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []

        async def open_log() -> RedisStreamsLog:
            log = await stack.enter_async_context(
                redis_streams_log(
                    servers.url,
                    cluster=isinstance(servers, RedisCluster),
                    retention_seconds=RETENTION_SECONDS,
                )
            )
            tasks.append(asyncio.create_task(log.serve()))
            await asyncio.sleep(0)  # serve() has its task group
            return log

        yield open_log
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _nodes(servers: Servers) -> list[RedisServer]:
    return servers.nodes if isinstance(servers, RedisCluster) else [servers]


def _node_of(servers: Servers, run_id: str) -> RedisServer:
    return servers.node_of(stream_key(run_id)) if isinstance(servers, RedisCluster) else servers


def _blocked(servers: Servers) -> int:
    """Clients blocked in a command (our XREAD BLOCK), on all of the servers' nodes."""
    total = 0
    for node in _nodes(servers):
        for line in node.cli("INFO", "clients").splitlines():
            if line.startswith("blocked_clients:"):
                total += int(line.split(":")[1])
    return total


def _calls(servers: Servers, command: str) -> int:
    """How many times the servers have run `command` (INFO commandstats)."""
    total = 0
    for node in _nodes(servers):
        for line in node.cli("INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


def _texts(run_id: str, seqs: range, content: str = "token") -> list[tuple[str, LoggedEvent]]:
    return [(run_id, encode(Text(f"{content} {seq}"), seq)) for seq in seqs]


def _run() -> str:
    return str(uuid.uuid4())


def _seqs(events: list[LoggedEvent]) -> list[int]:
    return [event.seq for event in events]


async def test_a_batch_of_several_runs_is_read_back_in_order(logs: OpenLog) -> None:
    log = await logs()
    runs = [_run() for _ in range(12)]  # in a cluster, on every master
    await log.append([item for run in runs for item in _texts(run, range(1, 6))])
    for run in runs:
        events = await log.read(run, 0)
        assert _seqs(events) == [1, 2, 3, 4, 5]
        assert events == [event for _, event in _texts(run, range(1, 6))]
        assert _seqs(await log.read(run, 3)) == [4, 5]
        assert _seqs(await log.read(run, 1, limit=2)) == [2, 3]
        assert await log.read(run, 5) == []


async def test_pages_keep_within_the_budget_in_utf8_bytes(logs: OpenLog) -> None:
    log = await logs()
    run = _run()
    wide = "界é🙂" * 40  # 4 + 2 + 3... bytes a character: far more bytes than characters
    events = _texts(run, range(1, 21), wide)
    await log.append(events)
    logged = [event for _, event in events]
    size = len(logged[0].data.encode())
    budget = size * 3 + size // 2  # three and a half events' worth of bytes
    page = await log.read(run, 0, budget=budget)
    assert len(page) == batch_size(logged, budget) == 3
    assert sum(len(event.data.encode()) for event in page) <= budget
    # One event larger than the budget still comes, alone.
    assert _seqs(await log.read(run, 4, budget=10)) == [5]
    assert _seqs(await log.read(run, 0, limit=2, budget=budget)) == [1, 2]


async def test_a_retried_batch_neither_fails_nor_duplicates(logs: OpenLog) -> None:
    log = await logs()
    run, other = _run(), _run()
    first = _texts(run, range(1, 4))
    await log.append(first + _texts(other, range(1, 3)))
    await log.append(first + _texts(other, range(1, 3)))  # the reply to the first was lost
    await log.append(_texts(run, range(2, 7)))  # overlapping: 2 and 3 again, 4 to 6 new
    assert _seqs(await log.read(run, 0)) == [1, 2, 3, 4, 5, 6]
    assert _seqs(await log.read(other, 0)) == [1, 2]


async def test_a_read_waits_for_an_append_on_another_instance(
    logs: OpenLog, servers: Servers
) -> None:
    writer, follower = await logs(), await logs()
    run = _run()
    await writer.append(_texts(run, range(1, 3)))
    async with anyio.create_task_group() as group:
        got: list[LoggedEvent] = []

        async def follow() -> None:
            got.extend(await follower.read(run, 2, wait=30))

        group.start_soon(follow)
        await eventually(lambda: _async(_blocked(servers) >= 1), "the follower waits in XREAD")
        await writer.append(_texts(run, range(3, 5)))
    assert _seqs(got) == [3, 4]


async def test_followers_at_the_tip_share_one_blocking_read(
    logs: OpenLog, servers: Servers
) -> None:
    writer, follower = await logs(), await logs()
    runs = [_run() for _ in range(10)]
    await writer.append([item for run in runs for item in _texts(run, range(1, 2))])
    before = _blocked(servers)
    got: dict[str, list[int]] = {}
    got_after: dict[str, list[int]] = {}

    async def follow(run: str) -> None:
        got[run] = _seqs(await follower.read(run, 1, wait=30))

    async def follow_after(run: str, after: int) -> None:
        got_after[run] = []
        got_after[run] = _seqs(await follower.read(run, after, wait=30))

    async with anyio.create_task_group() as group:
        for run in runs:
            group.start_soon(follow, run)
        # One blocking read for all ten (in a cluster, one per slot: here, per run).
        readers = 1 if isinstance(servers, RedisServer) else len(runs)
        await eventually(
            lambda: _async(_blocked(servers) - before == readers), f"{readers} blocking read(s)"
        )
        assert _blocked(servers) - before == readers
        await writer.append([item for run in runs for item in _texts(run, range(2, 4))])
    assert got == {run: [2, 3] for run in runs}
    # A follower back at the tip finds its stream in the blocking read: no XRANGE first.
    ranges = _calls(servers, "xrange")
    async with anyio.create_task_group() as group:
        group.start_soon(follow_after, runs[0], 3)
        await eventually(lambda: _async(runs[0] in got_after), "the follower is back")
        await writer.append(_texts(runs[0], range(4, 5)))
    assert got_after[runs[0]] == [4]
    assert _calls(servers, "xrange") == ranges


async def test_a_follower_ahead_of_the_log_waits_for_what_follows_it(
    logs: OpenLog, servers: Servers
) -> None:
    """A client that had events 1 to 4 from the instance running the run, before they were
    logged, resumes on another instance, where another client waits after 2: one gets 3 and
    4, the other 5 and on, never 3 and 4 again."""
    writer, follower = await logs(), await logs()
    run = _run()
    await writer.append(_texts(run, range(1, 3)))
    got: dict[int, list[int]] = {}

    async def follow(after: int) -> None:
        got[after] = []
        got[after] = _seqs(await follower.read(run, after, wait=30))

    async with anyio.create_task_group() as group:
        group.start_soon(follow, 2)
        await eventually(lambda: _async(_blocked(servers) >= 1), "the first follower waits")
        group.start_soon(follow, 4)
        await eventually(lambda: _async(4 in got), "the second follower waits")
        await writer.append(_texts(run, range(3, 5)))
        await eventually(lambda: _async(bool(got[2])), "the first follower has 3 and 4")
        await writer.append(_texts(run, range(5, 7)))
    assert got == {2: [3, 4], 4: [5, 6]}


async def test_a_wait_with_nothing_appended_answers_nothing(logs: OpenLog) -> None:
    log = await logs()
    run = _run()
    await log.append(_texts(run, range(1, 3)))
    assert await log.read(run, 2, wait=0.05) == []
    assert await log.read(_run(), 0, wait=0.05) == []  # a run not logged yet: nothing, no error


async def test_the_final_event_and_the_expiry_after_it(logs: OpenLog, servers: Servers) -> None:
    log = await logs()
    run, failed = _run(), _run()
    await log.append(_texts(run, range(1, 3)) + _texts(failed, range(1, 2)))
    assert await log.final(run) is None
    done = encode(Done(1, 2, {"input_tokens": 3}), 3)
    error = encode(Error("interrupted", "stopped", retryable=True), 2)
    await log.append([(run, done), (failed, error)])
    assert await log.final(run) == done
    assert await log.final(failed) == error
    assert await log.final(_run()) is None
    for run_id in (run, failed):
        kept_ms = int(_node_of(servers, run_id).cli("PTTL", stream_key(run_id)))
        assert RETENTION_SECONDS * 1000 - 60_000 < kept_ms <= RETENTION_SECONDS * 1000
    assert await log.prune(older_than_seconds=0, limit=100) == 0


async def test_a_final_event_after_the_gap_it_declares_is_kept(logs: OpenLog) -> None:
    """The run of a gone instance, closed above what that instance could have shown: the
    final event says the stored answer ends at 2 (or before the stream's last event); any
    other gap is still refused."""
    log = await logs()
    run, ahead, refused = _run(), _run(), _run()
    await log.append(_texts(run, range(1, 3)) + _texts(ahead, range(1, 4)))
    declared = encode(Error("interrupted", "stopped", True, stored_through=2), 1003)
    await log.append([(run, declared), (ahead, declared)])
    assert _seqs(await log.read(run, 0)) == [1, 2, 1003]
    assert await log.read(run, 40) == [declared]
    assert await log.final(run) == declared
    assert _seqs(await log.read(ahead, 0)) == [1, 2, 3, 1003]
    await log.append(_texts(refused, range(1, 2)))
    undeclared = encode(Error("interrupted", "stopped", True), 1003)
    with pytest.raises(RunLogLost):
        await log.append([(refused, undeclared)])
    with pytest.raises(RunLogLost):
        await log.append([(refused, encode(Error("interrupted", "stopped", True, 5), 1003))])
    assert _seqs(await log.read(refused, 0)) == [1]


async def test_a_redis_restarted_empty_is_told_and_healed(logs: OpenLog, servers: Servers) -> None:
    owner, reader = await logs(), await logs()
    run, untouched = _run(), _run()
    everything = _texts(run, range(1, 6))
    await owner.append(everything[:3])
    _node_of(servers, run).restart_empty()

    # The owner's next batch: refused for the lost run, written for the others.
    with pytest.raises(RunLogLost) as lost:
        await owner.append(everything[3:4] + _texts(untouched, range(1, 2)))
    assert lost.value.held == {run: 0}
    assert _seqs(await reader.read(untouched, 0)) == [1]
    assert await reader.read(run, 0) == []  # nothing, and nothing claimed before it
    # A reader that had events 1 to 3 is told they are gone, not handed what follows.
    with pytest.raises(EventsGone) as gone:
        await reader.read(run, 3)
    assert (gone.value.run_id, gone.value.after_seq) == (run, 3)

    # The owner appends again from memory; a follower waiting after 3 goes on from 4.
    async with anyio.create_task_group() as group:
        got: list[LoggedEvent] = []

        async def follow() -> None:
            got.extend(await reader.read(run, 3, wait=30))

        group.start_soon(follow)
        await eventually(lambda: _async(_blocked(servers) >= 1), "the follower waits")
        await owner.append(everything[lost.value.held[run] : 4])
    assert _seqs(got) == [4]
    await owner.append(everything[4:])
    assert _seqs(await reader.read(run, 0)) == [1, 2, 3, 4, 5]


async def test_an_unreachable_redis_is_an_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        async with redis_streams_log(server.url, retention_seconds=60) as log:
            serving = asyncio.create_task(log.serve())
            run = _run()
            await log.append(_texts(run, range(1, 2)))
            waiting = asyncio.create_task(log.read(run, 1, wait=3600))
            await eventually(lambda: _async(_blocked(server) == 1), "the reader waits")
            server.stop()
            # The waiting read is told at once, not when its hour is up.
            with anyio.fail_after(BLOCK_MS / 1000 * 5), pytest.raises(ConnectionError) as cut:
                await waiting
            assert is_outage(cut.value) and log.is_outage(cut.value)
            # The record's database failing is not the log's outage (asyncpg lets OSErrors out).
            assert not log.is_outage(ConnectionRefusedError(111, "Connection refused"))
            for attempt in (
                log.append(_texts(run, range(2, 3))),
                log.read(run, 0),
                log.final(run),
                log.ping(),
            ):
                with pytest.raises(ConnectionError) as refused:
                    await attempt
                assert is_outage(refused.value) and log.is_outage(refused.value)
            server.start()  # empty: the owner's next append says so
            with pytest.raises(RunLogLost):
                await log.append(_texts(run, range(2, 3)))
            await log.ping()
            serving.cancel()
    finally:
        server.stop()


async def test_tls_with_a_self_signed_certificate_as_heroku_has_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, tls=True)
    server.start()
    try:
        async with redis_streams_log(server.url, retention_seconds=60) as log:
            run = _run()
            await log.append(_texts(run, range(1, 3)))
            assert _seqs(await log.read(run, 0)) == [1, 2]
        verified = f"{server.url}?ssl_cert_reqs=required"
        async with redis_streams_log(verified, retention_seconds=60) as log:
            with pytest.raises(Exception, match="certificate verify failed"):
                await log.ping()
    finally:
        server.stop()


async def _async(value: bool) -> bool:
    return value

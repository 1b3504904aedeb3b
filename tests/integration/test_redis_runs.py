"""The run engine on Redis when Redis fails: two instances (registry, writer, log of their own)
on servers of the tests' own (a single Redis and a three-master cluster), with the record in
memory. A Redis restarted empty mid-run is healed from the owner's memory, gapless; a run whose
log is lost with nobody left to heal it is told as a typed `events_missing` error; a Redis that
cannot be reached refuses a send and does not keep a run's end from being stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from app.domain import EventLogUnavailable, MessageStatus, NewMessage, Role, Run, RunStatus
from app.events import Done, LoggedEvent, Start, Text, decode, encode
from app.runs.ending import RunEnd
from app.runs.live import LiveRun
from app.runs.log.redis_streams import redis_streams_log, stream_key
from app.runs.log.writer import EventWriter
from app.runs.record.memory import MemoryRunRecord
from app.runs.registry import RunRegistry
from tests.redis_servers import RedisCluster, RedisServer, Servers, start_all_empty, stop_all
from tests.support import eventually


@asynccontextmanager
async def _instance(servers: Servers, record: MemoryRunRecord) -> AsyncIterator[RunRegistry]:
    """One instance's run engine, with a log on `servers` of its own, as `app.main` builds it."""
    cluster = isinstance(servers, RedisCluster)
    async with (
        redis_streams_log(servers.url, cluster=cluster, retention_seconds=3600) as log,
        anyio.create_task_group() as group,
    ):
        writer = EventWriter(log)
        group.start_soon(log.serve)
        group.start_soon(writer.write_forever)
        yield RunRegistry(log, writer, record, group, grace_seconds=5)
        group.cancel_scope.cancel()


@dataclass
class Turn:
    """A run that says `first`, waits for `more`, says `then`, waits for `go`, and ends."""

    registry: RunRegistry
    run: Run
    first: tuple[str, ...]
    then: tuple[str, ...]
    said: anyio.Event
    more: anyio.Event
    go: anyio.Event

    async def __call__(self, live: LiveRun) -> None:
        run, emit = self.run, self.registry.emit
        emit(live, encode(Start(run.conversation_id, run.user_message_id, run.id), live.next_seq))
        for text in self.first:
            emit(live, encode(Text(text), live.next_seq))
        self.said.set()
        await self.more.wait()
        for text in self.then:
            emit(live, encode(Text(text), live.next_seq))
        await self.go.wait()
        answer_id = run.user_message_id + 1
        content = "".join(self.first + self.then)
        answer = NewMessage(run.conversation_id, Role.ASSISTANT, content, MessageStatus.COMPLETE)
        final = encode(Done(run.conversation_id, answer_id, {}), live.next_seq)
        end = RunEnd(run.id, RunStatus.COMPLETE, answer, answer_id, final)
        await self.registry.finish(live, end)


def _turn(registry: RunRegistry, record: MemoryRunRecord) -> tuple[Turn, LiveRun]:
    run = record.start(str(uuid.uuid4()), "user", registry.instance_id)
    turn = Turn(
        registry,
        run,
        ("Hel", "lo"),
        (" wor", "ld"),
        anyio.Event(),
        anyio.Event(),
        anyio.Event(),
    )
    return turn, registry.start_run(run.id, turn)


def _nodes(servers: Servers) -> list[RedisServer]:
    return servers.nodes if isinstance(servers, RedisCluster) else [servers]


def _calls(node: RedisServer, command: str) -> int:
    """How many times the server has run `command` since it started (INFO commandstats)."""
    for line in node.cli("INFO", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def _node_of(servers: Servers, run_id: str) -> RedisServer:
    return servers.node_of(stream_key(run_id)) if isinstance(servers, RedisCluster) else servers


async def _until_logged(registry: RunRegistry, live: LiveRun, seq: int) -> None:
    """Until the owner's writer has told it the log holds the run up to `seq`."""
    with anyio.fail_after(30):
        while live.logged_seq < seq:  # noqa: ASYNC110 (the writer's state)
            await anyio.sleep(0.01)


def _checked(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


async def _collect(batches: AsyncIterator[list[LoggedEvent]], into: list[LoggedEvent]) -> None:
    async for batch in batches:
        into.extend(batch)


async def test_a_redis_restarted_empty_mid_run_is_healed_from_the_owners_memory(
    servers: Servers,
) -> None:
    """The owner's writer finds the stream gone and appends the run again from memory: a
    follower on another instance, waiting at the tip as Redis restarts, gets every event once,
    in order, and the final event; the stream holds the whole run again."""
    record = MemoryRunRecord()
    async with _instance(servers, record) as owner, _instance(servers, record) as other:
        turn, live = _turn(owner, record)
        await turn.said.wait()
        await _until_logged(owner, live, 3)
        followed: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, other.follow(turn.run, 0), followed)
            with anyio.fail_after(30):
                while len(followed) < 3:  # noqa: ASYNC110 (the follower's progress)
                    await anyio.sleep(0.01)
            _node_of(servers, turn.run.id).restart_empty()
            turn.more.set()
            with anyio.fail_after(30):  # healed while the run goes on, not by its end
                while len(followed) < 5:  # noqa: ASYNC110 (the follower's progress)
                    await anyio.sleep(0.01)
            turn.go.set()
        await owner.wait_idle()
        in_redis = await other._log.read(turn.run.id, 0)
    assert [event.seq for event in followed] == [1, 2, 3, 4, 5, 6]
    assert followed == live.events
    assert decode(followed[-1]).type == "done"
    assert in_redis == live.events


async def test_a_run_whose_log_is_lost_after_its_end_is_told_as_missing_events(
    servers: Servers,
) -> None:
    """Nobody holds the run any more to append it again: a follower from the start or from an
    id gets a typed `events_missing` error, never the stored final event after a gap."""
    record = MemoryRunRecord()
    async with _instance(servers, record) as owner, _instance(servers, record) as other:
        turn, live = _turn(owner, record)
        turn.more.set()
        turn.go.set()
        await owner.wait_idle()
        ended = record.run(turn.run.id)
        assert ended is not None and ended.status is RunStatus.COMPLETE
        _node_of(servers, turn.run.id).restart_empty()
        followed = {
            after: [event async for batch in other.follow(ended, after) for event in batch]
            for after in (0, 3)
        }
    for events in followed.values():
        (missing,) = events
        error = decode(missing)
        assert (error.type, getattr(error, "code", None)) == ("error", "events_missing")
        assert missing.seq == live.events[-1].seq - 1  # a reader back with it reads the final


async def test_a_replay_while_redis_is_down_waits_for_it_and_ends_with_an_event(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """An ended run replayed from the log while every Redis node is down: the follower's
    stream has begun, so it waits and reads on once Redis is back (here empty: it is told
    `events_missing`), never a cut stream."""
    record = MemoryRunRecord()
    async with _instance(servers, record) as owner, _instance(servers, record) as other:
        turn, _ = _turn(owner, record)
        turn.more.set()
        turn.go.set()
        await owner.wait_idle()
        ended = record.run(turn.run.id)
        assert ended is not None and ended.status is RunStatus.COMPLETE
        stop_all(servers)
        replayed: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, other.follow(ended, 0), replayed)
            await eventually(
                _checked(lambda: "log or record unreachable" in caplog.text),
                "the replay has met the outage",
            )
            start_all_empty(servers)
    (missing,) = replayed
    error = decode(missing)
    assert (error.type, getattr(error, "code", None)) == ("error", "events_missing")


async def test_an_unreachable_redis_refuses_sends_and_keeps_no_run_from_ending(
    tmp_path: Path,
) -> None:
    """Redis stopped: a send is refused (`EventLogUnavailable`, a 503); a run going on ends
    all the same, its end stored in the record and its final event given to its followers
    here, with every event it said. Redis back, empty: the owner appends the whole run again
    from memory."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        record = MemoryRunRecord()
        async with _instance(server, record) as owner:
            await owner.check_log()
            turn, live = _turn(owner, record)
            here: list[LoggedEvent] = []
            async with anyio.create_task_group() as group:
                group.start_soon(_collect, live.subscribe(0).batches(), here)
                await turn.said.wait()
                await _until_logged(owner, live, 3)
                server.stop()
                with pytest.raises(EventLogUnavailable):
                    await owner.check_log()
                turn.more.set()
                turn.go.set()
            stored = record.run(turn.run.id)
            server.start()  # empty: the owner appends the whole run again, from memory
            await owner.check_log()
            async with redis_streams_log(server.url, retention_seconds=60) as reader:
                with anyio.fail_after(30):
                    while await reader.read(turn.run.id, 0) != here:  # noqa: ASYNC110 (Redis)
                        await anyio.sleep(0.05)
    finally:
        server.stop()
    assert stored is not None and stored.status is RunStatus.COMPLETE
    assert [event.seq for event in here] == [1, 2, 3, 4, 5, 6]
    assert decode(here[-1]).type == "done"


async def test_a_follower_of_a_run_going_on_reads_again_until_its_owner_has_healed_it(
    servers: Servers,
) -> None:
    """A follower on another instance whose stream Redis lost (`EventsGone`) while the run goes
    on: it reads again, and goes on from where it was once the owner has appended the run
    again."""
    record = MemoryRunRecord()
    async with (
        redis_streams_log(
            servers.url, cluster=isinstance(servers, RedisCluster), retention_seconds=3600
        ) as owner_log,
        _instance(servers, record) as other,
    ):
        run = record.start(str(uuid.uuid4()), "user", "elsewhere")
        said = [encode(Start(run.conversation_id, run.user_message_id, run.id), 1)] + [
            encode(Text(text), seq) for seq, text in enumerate(("a", "b", "c", "d"), 2)
        ]
        await owner_log.append([(run.id, event) for event in said[:3]])
        followed: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, other.follow(run, 0), followed)
            with anyio.fail_after(30):
                while len(followed) < 3:  # noqa: ASYNC110 (the follower's progress)
                    await anyio.sleep(0.01)
            node = _node_of(servers, run.id)
            node.restart_empty()
            with anyio.fail_after(30):  # the follower has looked, and found the stream gone
                while _calls(node, "exists") < 1:  # noqa: ASYNC110 (the server's count)
                    await anyio.sleep(0.05)
            await owner_log.append([(run.id, event) for event in said])  # healed from memory
            answer = NewMessage(run.conversation_id, Role.ASSISTANT, "abcd", MessageStatus.COMPLETE)
            final = encode(Done(run.conversation_id, 9, {}), 6)
            await owner_log.append([(run.id, final)])
            await record.store_end(RunEnd(run.id, RunStatus.COMPLETE, answer, 9, final))
    assert followed == [*said, final]

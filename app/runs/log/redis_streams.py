"""The event log on Redis Streams, for a service past what one PostgreSQL takes.

PostgreSQL stays the system of record (conversations, messages, runs and their end); only the
events of runs live here, and only for `retention`. The one module that imports `redis`.

Each decision below is deliberate; docs/redis.md has the sources and the measurements.

- **One stream per run**, `todo-chat:{<run_id>}:events`: the hash tag puts each run's keys on
  one shard of a cluster, and spreads runs over all of them.
- **Entry ids are `<seq>-0`.** An event's id says its seq, so `Last-Event-ID: 41` reads on at
  `XRANGE key 42 +`, exactly; an id's first part is the one every tool shows and compares first
  (`0-<seq>` would read as the same instant for every event).
- **A batch is appended by one script** (in a cluster, one per slot, in one pipeline: a round
  trip per shard), so appending costs a command a batch, not one a run. The script writes
  only the events that follow on from each stream's last one, so a retried batch neither
  fails nor duplicates, and a stream never has a hole: it holds seq 1 to its last, or nothing.
  It sets each stream to expire `retention` after its last append, and a run's last append
  is its final event: the stream goes `retention` after the run ends, as the PostgreSQL
  log's rows do. `prune` has nothing to do.
- **Waiting**: one blocking reader per instance (`XREAD BLOCK` over every stream a read here
  is waiting on; in a cluster, one per slot, as a command may not span slots), which hands the
  entries it reads to the waiting reads, so a follower at the tip costs no read of its own. A
  reader per waiting follower would hold a connection each: a Heroku Key-Value Store plan
  allows 20 to 1,000 of them.
- **Redis restarted empty** (or a run's keys evicted): a run's stream is gone, or ends before
  a batch's first event. The script then writes nothing for that run, and `append` raises
  `RunLogLost` with what each such stream still holds, after writing the other runs' events.
  The instance running the run has every event in memory: it appends them again from there,
  and followers waiting on the run go on without a gap. A reader after seq N > 0 of a run
  whose stream is gone gets `EventsGone` once its wait is over: never an empty page that the
  run's final event (from the run record) would follow as if nothing were missing. The
  registry turns it into a typed error for an ended run, and reads again for a live one
  (its owner may be appending again).
- **Redis unreachable**: the client retries a dropped connection briefly, then every call
  raises the builtin `ConnectionError` (an `OSError`: `is_outage` says yes), so the writer
  keeps the events and retries, and a request gets 503 with Retry-After, as during a
  PostgreSQL restart. `ping` lets a send refuse up front rather than start a run whose events
  cannot reach the log.
- **TLS**: with `rediss://` the server's certificate is not verified unless the URL says
  `ssl_cert_reqs=required`: Heroku's Key-Value Store presents a self-signed certificate and
  documents `ssl_cert_reqs=None` for redis-py. The connection is encrypted either way.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import TaskGroup
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.crc import key_slot

from app.events import LoggedEvent
from app.runs.live import batch_size
from app.runs.log.base import READ_LIMIT, EventLog, RunEvents

logger = logging.getLogger(__name__)

BLOCK_MS = 2000
"""How long one blocking read lasts before the reader looks again at what it waits on."""
APPEND_ATTEMPTS = 3
POOL_SIZE = 50
"""Connections to Redis (to each node of a cluster) an instance holds at most."""
GATHER_SECONDS = 0.005
"""How long the blocking reader lets an append's batch land before it reads again."""
STICKY_SECONDS = 10.0
"""How long a stream stays in the blocking read after its last waiting read: a follower at the
tip comes back within that, and finds it there (no new blocking read for it)."""

# KEYS: runs' streams (in a cluster, of one slot). ARGV[1]: how many ms to keep each after
# this append; then for each stream in turn, its count of events n and n pairs of seq and data,
# in order. Appends those after the stream's last event that follow on from it; answers each
# stream's last seq afterwards.
APPEND_SCRIPT = """
local held = {}
local at = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  local top = redis.call('XREVRANGE', KEYS[k], '+', '-', 'COUNT', 1)
  local last = 0
  if top[1] then last = tonumber(string.match(top[1][1], '^%d+')) end
  for i = at + 1, at + 2 * n, 2 do
    local seq = tonumber(ARGV[i])
    if seq > last then
      if seq ~= last + 1 then break end
      redis.call('XADD', KEYS[k], ARGV[i] .. '-0', 'd', ARGV[i + 1])
      last = seq
    end
  end
  redis.call('PEXPIRE', KEYS[k], ARGV[1])
  held[k] = last
  at = at + 1 + 2 * n
end
return held
"""
_APPEND_SHA = hashlib.sha1(APPEND_SCRIPT.encode()).hexdigest()

# What means "Redis cannot be reached now", as opposed to "Redis refused this".
_OUTAGES = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.RedisClusterException,
    OSError,
)
_NOT_OUTAGES = (redis_errors.AuthenticationError, redis_errors.AuthorizationError)

Client = Redis | RedisCluster


class RunLogLost(Exception):
    """Some runs' streams lost events before this batch (Redis restarted empty, or evicted
    them): nothing of those runs was appended; the batch's other runs were. `held` maps each
    such run to the last seq its stream still holds (0: none). The instance running a run
    appends its events again from there; anyone else leaves the run's end to its record."""

    def __init__(self, held: Mapping[str, int]) -> None:
        super().__init__(f"the event log lost the earlier events of {len(held)} run(s)")
        self.held = dict(held)


class EventsGone(Exception):
    """The log no longer holds a run's events up to `after_seq`, which a reader had: they
    expired or were lost, or (for a moment) have not been appended yet or again."""

    def __init__(self, run_id: str, after_seq: int) -> None:
        super().__init__(f"run {run_id}: the event log holds no events up to {after_seq}")
        self.run_id = run_id
        self.after_seq = after_seq


def stream_key(run_id: str) -> str:
    return f"todo-chat:{{{run_id}}}:events"


def connect(url: str, *, cluster: bool = False) -> Client:
    """A client for `REDIS_URL` (`redis://` or `rediss://`), of a cluster if `cluster`."""
    options: dict[str, Any] = {
        # A connection cut while idle is redialled at once; a server that stays away is the
        # caller's to wait out (the writer's retries, a 503).
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=3),
    }
    parts = urlsplit(url)
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in parse_qs(parts.query):
        options["ssl_cert_reqs"] = None
    if cluster:
        return RedisCluster.from_url(url, max_connections=POOL_SIZE, **options)
    # A read or an append past POOL_SIZE at once waits for a connection (up to the socket
    # timeout) rather than failing: redis-py's default pool refuses past its maximum.
    pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=5, **options)
    return Redis.from_pool(pool)  # closed with the client


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _NOT_OUTAGES:
        raise
    except _OUTAGES as error:
        raise ConnectionError(f"the event log's Redis cannot be reached: {error}") from error


def _events(entries: Any) -> list[LoggedEvent]:
    """Our events, from the entries of an XRANGE or an XREAD (ids `<seq>-0`, the JSON in `d`)."""
    return [
        LoggedEvent(int(id_.split(b"-", 1)[0]), fields[b"d"].decode()) for id_, fields in entries
    ]


def _page(events: list[LoggedEvent], limit: int, budget: int | None) -> list[LoggedEvent]:
    """The first `limit` events, and of those as many as fit in `budget` bytes (at least one)."""
    events = events[:limit]
    return events if budget is None else events[: batch_size(events, budget)]


class RedisStreamsLog(EventLog):
    """Runs' events in Redis streams; see the module's docstring."""

    def __init__(self, client: Client, *, retention_seconds: float) -> None:
        self._client = client
        self._keep_ms = str(int(retention_seconds * 1000))
        self._cluster = isinstance(client, RedisCluster)
        self._readers: dict[int, _BlockingReader] = {}
        self._task_group: TaskGroup | None = None

    async def serve(self) -> None:
        """Runs the blocking readers that waiting reads need, until cancelled."""
        try:
            async with anyio.create_task_group() as self._task_group:
                await anyio.sleep_forever()
        finally:
            self._task_group = None

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        """Raises `ConnectionError` if Redis cannot be reached now."""
        with _translated():
            await self._client.ping()

    async def append(self, events: RunEvents) -> None:
        by_run: dict[str, list[LoggedEvent]] = {}
        for run_id, event in events:
            by_run.setdefault(run_id, []).append(event)
        groups: dict[int, list[str]] = {}
        for run_id in by_run:
            groups.setdefault(self._group(stream_key(run_id)), []).append(run_id)
        held = await self._append_scripts(list(groups.values()), by_run)
        lost = {
            run_id: last
            for run_id, last in held.items()
            if last < max(event.seq for event in by_run[run_id])
        }
        if lost:
            raise RunLogLost(lost)

    async def _append_scripts(
        self, groups: list[list[str]], by_run: dict[str, list[LoggedEvent]]
    ) -> dict[str, int]:
        """One script per group of runs (all of them, or in a cluster those of one slot), in
        one pipeline; the last seq each run's stream holds afterwards. The whole batch is sent
        again (appends are idempotent) after a server that did not know the script, or a
        connection that a restarted cluster node had closed."""
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            with _translated():
                pipeline = self._client.pipeline(transaction=False)
                for runs in groups:
                    arguments: list[str | int] = [self._keep_ms]
                    for run_id in runs:
                        run_events = sorted(by_run[run_id], key=lambda event: event.seq)
                        arguments.append(len(run_events))
                        for event in run_events:
                            arguments += (event.seq, event.data)
                    keys = [stream_key(run_id) for run_id in runs]
                    pipeline.evalsha(_APPEND_SHA, len(keys), *keys, *arguments)
                results = await pipeline.execute(raise_on_error=False)
            errors = [result for result in results if isinstance(result, Exception)]
            if not errors:
                return {
                    run_id: int(last)
                    for runs, lasts in zip(groups, results, strict=True)
                    for run_id, last in zip(runs, lasts, strict=True)
                }
            if attempt < APPEND_ATTEMPTS:
                if any(isinstance(error, redis_errors.NoScriptError) for error in errors):
                    with _translated():
                        await self._client.script_load(APPEND_SCRIPT)
                    continue
                if all(isinstance(error, _OUTAGES) for error in errors):
                    continue
            with _translated():
                raise errors[0]
        raise AssertionError("unreachable")

    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        key = stream_key(run_id)
        reader = self._readers.get(self._group(key)) if wait > 0 else None
        if reader is not None and reader.at_tip(key, after_seq):
            events = await reader.wait(key, after_seq, wait)
        else:
            with _translated():
                entries = await self._client.xrange(key, f"{after_seq + 1}-0", "+", count=limit)
            events = _events(entries)
            if not events and wait > 0:
                events = await self._reader(key).wait(key, after_seq, wait)
        return await self._found(run_id, after_seq, events, limit, budget)

    async def _found(
        self, run_id: str, after_seq: int, events: list[LoggedEvent], limit: int, budget: int | None
    ) -> list[LoggedEvent]:
        if events or after_seq == 0:
            return _page(events, limit, budget)
        with _translated():
            if not await self._client.exists(stream_key(run_id)):
                raise EventsGone(run_id, after_seq)
        return []

    async def final(self, run_id: str) -> LoggedEvent | None:
        with _translated():
            entries = await self._client.xrevrange(stream_key(run_id), "+", "-", count=1)
        last = _events(entries)
        return last[0] if last and last[0].terminal else None

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        return 0  # each stream expires by itself, `retention` after its run's final event

    def _group(self, key: str) -> int:
        """Which blocking reader reads `key`: the one, or in a cluster the one of its slot."""
        return key_slot(key.encode()) if self._cluster else 0

    def _reader(self, key: str) -> _BlockingReader:
        group = self._group(key)
        reader = self._readers.get(group)
        if reader is None:
            if self._task_group is None:
                raise RuntimeError("waiting for events needs RedisStreamsLog.serve() running")
            reader = self._readers[group] = _BlockingReader(self._client)
            self._task_group.start_soon(self._run_reader, group, reader)
        return reader

    async def _run_reader(self, group: int, reader: _BlockingReader) -> None:
        try:
            await reader.run()
        except Exception:
            # Its waiting reads have the error; the next read to wait starts another reader.
            logger.warning("the event log's blocking reader stopped", exc_info=True)
        finally:
            if self._readers.get(group) is reader:
                del self._readers[group]


class _BlockingReader:
    """One `XREAD BLOCK` at a time over every stream that reads here wait on (in a cluster,
    those of one slot), handing what it reads to the reads waiting for it; see the module's
    docstring. It ends when nothing has been waited on for `STICKY_SECONDS`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._after: dict[str, int] = {}  # what the blocking read reads after, by stream
        self._waited: dict[str, float] = {}  # when a read last waited on each stream
        self._waiting: dict[str, list[tuple[int, anyio.Event, list[Any]]]] = {}
        self._reading: frozenset[str] = frozenset()
        self._scope: anyio.CancelScope | None = None
        self._ended = False

    def at_tip(self, key: str, after_seq: int) -> bool:
        """Whether the blocking read holds `key` at `after_seq`: what comes next, it will
        hand over (no read of the stream needed first)."""
        return not self._ended and self._after.get(key) == after_seq

    async def wait(self, key: str, after_seq: int, seconds: float) -> list[LoggedEvent]:
        if self._ended:
            raise ConnectionError("the event log's blocking reader has stopped; read again")
        woken = anyio.Event()
        handed: list[Any] = []
        self._waiting.setdefault(key, []).append((after_seq, woken, handed))
        self._waited[key] = time.monotonic()
        known = self._after.get(key)
        if known is None or known > after_seq:
            self._after[key] = after_seq
        if key not in self._reading and self._scope is not None:
            self._scope.cancel()  # read again, with this stream too
        try:
            with anyio.move_on_after(seconds):
                await woken.wait()
        finally:
            waiting = self._waiting.get(key, [])
            waiting[:] = [item for item in waiting if item[1] is not woken]
            if not waiting:
                self._waiting.pop(key, None)
        if handed and isinstance(handed[0], BaseException):
            raise handed[0]
        return handed

    async def run(self) -> None:
        try:
            while self._forget_idle():
                after = dict(self._after)
                self._reading = frozenset(after)
                with anyio.CancelScope() as self._scope:
                    reply: list[Any] = []
                    reply = await self._read(after)
                    self._scope = None
                    for key, entries in reply:
                        self._hand_over(key.decode(), _events(entries))
                self._scope = None
                if reply:
                    # Redis answers after the first stream of an append's batch is written:
                    # reading again at once would take the batch one stream at a time.
                    await anyio.sleep(GATHER_SECONDS)
        except Exception as error:
            for waiting in self._waiting.values():
                for _, woken, handed in waiting:
                    handed.append(error)
                    woken.set()
            raise
        finally:
            self._ended = True

    async def _read(self, after: dict[str, int]) -> list[Any]:
        with _translated():
            streams: dict[Any, Any] = {key: f"{seq}-0" for key, seq in after.items()}
            reply = await self._client.xread(streams, count=READ_LIMIT, block=BLOCK_MS)
        return list(reply.items()) if isinstance(reply, dict) else list(reply or [])

    def _hand_over(self, key: str, events: list[LoggedEvent]) -> None:
        if not events:
            return
        self._after[key] = events[-1].seq
        for after_seq, woken, handed in self._waiting.get(key, []):
            if not woken.is_set() and (new := [event for event in events if event.seq > after_seq]):
                handed.extend(new)
                woken.set()
        if events[-1].terminal:  # the run has ended: nothing more will come
            self._after.pop(key, None)

    def _forget_idle(self) -> bool:
        """Drop the streams not waited on lately; whether any is left to read."""
        now = time.monotonic()
        for key in list(self._after):
            if key not in self._waiting and now - self._waited.get(key, 0.0) > STICKY_SECONDS:
                del self._after[key]
                self._waited.pop(key, None)
        return bool(self._after)


@asynccontextmanager
async def redis_streams_log(
    url: str, *, cluster: bool = False, retention_seconds: float
) -> AsyncIterator[RedisStreamsLog]:
    """A log on the Redis at `url`, closed on leaving."""
    log = RedisStreamsLog(connect(url, cluster=cluster), retention_seconds=retention_seconds)
    try:
        yield log
    finally:
        await log.close()

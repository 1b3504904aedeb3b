"""The event log on Redis Streams, for a service past what one PostgreSQL takes.

PostgreSQL stays the system of record; only runs' events live here, for `retention`. The one
module that imports `redis`. Each decision is deliberate (docs/redis.md: sources, figures):

- **One stream per run**, `todo-chat:{<run_id>}:events`: the hash tag keeps a run's keys on
  one shard of a cluster and spreads runs over all of them.
- **Entry ids are `<seq>-0`**: `Last-Event-ID: 41` reads on at `XRANGE key 42 +`, exactly; the
  first part is the one tools show and compare first (`0-<seq>` reads as one instant).
- **A batch is appended by one script** (per slot in a cluster, pipelined: a round trip per
  shard): a command a batch, not one a run. It writes only the events that follow on from
  each stream's last one (the next seq, or a final event declaring that the stored answer ends
  at or before it: `app.runs.log.base`), so a retried batch neither fails nor duplicates and a
  stream never has a hole but a declared one; it sets each stream to expire
  `retention` after its last append, a run's final event: `prune` has nothing to do.
- **Waiting**: one blocking reader per instance (`XREAD BLOCK` over every stream waited on;
  per slot in a cluster, as a command may not span slots) hands what it reads to the waiting
  reads: a follower at the tip sends no read of its own, and holds no connection (a Heroku
  Key-Value Store plan allows 20 to 1,000).
- **Redis restarted empty** (or keys evicted): the script writes nothing after a hole, and
  `append` raises `RunLogLost` (what each such stream still holds) once the batch's other runs
  are written; the instance running a run appends its events again from memory, and its
  followers go on without a gap. A read after seq N > 0 of a stream that is gone raises
  `EventsGone` once its wait is over: never an empty page that the final event from the run
  record would follow as if whole. The registry makes it a typed error for an ended run.
- **Redis unreachable**: after a brief retry every call raises `RedisUnreachable`, a
  `ConnectionError` (`is_outage`: yes, and for nothing else): the writer keeps its events
  and retries, a request gets 503, as for a PostgreSQL restart; a send may `ping` first
  rather than start a run the log cannot hold.
- **TLS**: `rediss://` does not verify the certificate unless the URL says
  `ssl_cert_reqs=required`: Heroku's Key-Value Store presents a self-signed one and documents
  `ssl_cert_reqs=None`. Encrypted either way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
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

from app.events import LoggedEvent, stored_through
from app.runs.live import batch_size
from app.runs.log.base import READ_LIMIT, EventLog, EventsGone, RunEvents, RunLogLost
from app.runs.log.redis_waiting import BlockingReader

logger = logging.getLogger(__name__)

BLOCK_MS = 2000
"""How long one blocking read lasts before the reader looks again at what it waits on."""
APPEND_ATTEMPTS = 3
POOL_SIZE = 50
"""Connections to Redis (to each node of a cluster) an instance holds at most."""

# KEYS: runs' streams (in a cluster, of one slot). ARGV[1]: how many ms to keep each after
# this append; then for each stream in turn, its count of events n and n triples of seq, the
# seq it must follow (seq - 1, or for a final event declaring a gap the last seq it declares
# stored) and data, in order. Appends those after the stream's last event that follow on from
# it; answers each stream's last seq afterwards.
APPEND_SCRIPT = """
local held = {}
local at = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  local top = redis.call('XREVRANGE', KEYS[k], '+', '-', 'COUNT', 1)
  local last = 0
  if top[1] then last = tonumber(string.match(top[1][1], '^%d+')) end
  for i = at + 1, at + 3 * n, 3 do
    local seq = tonumber(ARGV[i])
    if seq > last then
      if tonumber(ARGV[i + 1]) > last then break end
      redis.call('XADD', KEYS[k], ARGV[i] .. '-0', 'd', ARGV[i + 2])
      last = seq
    end
  end
  redis.call('PEXPIRE', KEYS[k], ARGV[1])
  held[k] = last
  at = at + 1 + 3 * n
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


class RedisUnreachable(ConnectionError):
    """Redis cannot be reached (after redis-py's brief retry): what every call of the log
    raises for an outage, whatever redis-py's own error was."""


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
        raise RedisUnreachable(f"the event log's Redis cannot be reached: {error}") from error


def _events(entries: Any) -> list[LoggedEvent]:
    """Our events, from the entries of an XRANGE or an XREAD (ids `<seq>-0`, the JSON in `d`)."""
    return [
        LoggedEvent(int(id_.split(b"-", 1)[0]), fields[b"d"].decode()) for id_, fields in entries
    ]


def _follows(event: LoggedEvent) -> int:
    """The seq the stream must end at (or past, for a declared gap) for `event` to follow."""
    declared = stored_through(event) if event.terminal else None
    return event.seq - 1 if declared is None else declared


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
        self._readers: dict[int, BlockingReader] = {}
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
        """Raises `RedisUnreachable` if Redis cannot be reached now."""
        with _translated():
            await self._client.ping()

    def is_outage(self, error: BaseException) -> bool:
        # Ours alone: a builtin ConnectionError may be the record's database (asyncpg lets
        # OSErrors through), which is no reason to take the log for away.
        return isinstance(error, RedisUnreachable)

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
                            arguments += (event.seq, _follows(event), event.data)
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

    def _reader(self, key: str) -> BlockingReader:
        group = self._group(key)
        reader = self._readers.get(group)
        if reader is None:
            if self._task_group is None:
                raise RuntimeError("waiting for events needs RedisStreamsLog.serve() running")
            reader = self._readers[group] = BlockingReader(self._xread)
            self._task_group.start_soon(self._run_reader, group, reader)
        return reader

    async def _xread(self, after: dict[str, int]) -> list[tuple[str, list[LoggedEvent]]]:
        """New entries of these streams after these seqs, waiting up to `BLOCK_MS` for some."""
        with _translated():
            streams: dict[Any, Any] = {key: f"{seq}-0" for key, seq in after.items()}
            reply = await self._client.xread(streams, count=READ_LIMIT, block=BLOCK_MS)
        pairs: Any = reply.items() if isinstance(reply, dict) else reply or []
        return [(key.decode(), _events(entries)) for key, entries in pairs]

    async def _run_reader(self, group: int, reader: BlockingReader) -> None:
        try:
            await reader.run()
        except Exception:
            # Its waiting reads have the error; the next read to wait starts another reader.
            logger.warning("the event log's blocking reader stopped", exc_info=True)
        finally:
            if self._readers.get(group) is reader:
                del self._readers[group]


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

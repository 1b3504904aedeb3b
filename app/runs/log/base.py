"""The event log: every run's numbered events, kept where any instance can read them.

The run that owns a run hands its events to the log in batches (`app.runs.log.writer`); a
follower on any instance reads them after the last `seq` it has, in pages that fit one write to
its client, and waits for more; a reader that comes back later (a resume, a replay of an
idempotent send) reads the same pages until retention ends. One interface, several backends,
picked by the composition root (`app.main`) and handed to the registry:

- `memory`: in this process. For the fast tests, and for a service of one process.
- `postgres`: the `run_events` table, woken by LISTEN/NOTIFY.
- `redis_streams`: a Redis stream per run (`REDIS_URL`), past what one PostgreSQL takes.

One test suite (tests/integration/test_event_logs.py) runs every behaviour below against every
backend.

**The end of a run.** A run's end (`RunEnd`: its status, its answer, its final event) is stored
in the system of record, PostgreSQL's `runs` row, by whoever ends the run first; the log then
holds the final event too. `end_run` does both, by default in three steps, each safe to repeat:

1. the run's events not yet logged are appended;
2. the end is stored (`store`), which answers with the final event as stored: this one, or the
   one another closer stored before;
3. that final event is appended (idempotent by seq).

A process that dies between 2 and 3 leaves a run ended whose final event is not in the log; a
reader then takes it from the record, and every event before it is in the log (step 1). A
backend that keeps its events in the record's own database (PostgreSQL) may do all three in one
statement instead of calling `store`.

**A final event may follow a gap it declares.** A run's events have seqs 1, 2, 3… with no gap,
but the run of an instance that died is closed (`app.runs.recovery`) with a final event numbered
above anything that instance could have shown its clients (`app.runs.live.UNLOGGED_WINDOW`),
which declares the last seq of the stored answer (`app.events.stored_through`); the seqs
between are never used. Every backend keeps such a final event as it keeps any other.
Readers check the order (`app.runs.reading`): any other gap is `EventsMissing`, which a
follower is told as a typed `error` event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar

from app.events import LoggedEvent
from app.runs.ending import RunEnd

RunEvents = Sequence[tuple[str, LoggedEvent]]
"""Events with the id of their run, in the order they are to be written."""

READ_LIMIT = 500
"""The most events one read returns, whatever their size."""


class EventsMissing(Exception):
    """A reader of a run's log found a gap no final event declares: after `after_seq` it had,
    the next event is `found` (or the run's final event is, and it says the stored answer
    holds more). The events between were lost; what the reader has is not the whole run.
    `end_gone`: `found` is the seq of the run's final event, which neither the log nor the
    record holds any more (its events were pruned after `RUN_RETENTION_HOURS`)."""

    def __init__(self, run_id: str, after_seq: int, found: int, *, end_gone: bool = False) -> None:
        where = "the run's end, no longer kept, is" if end_gone else "the event log holds"
        super().__init__(f"run {run_id}: after seq {after_seq} {where} seq {found}")
        self.run_id = run_id
        self.after_seq = after_seq
        self.found = found
        self.end_gone = end_gone


class RunLogLost(Exception):
    """Some runs' logs lost events before this append (their store restarted empty, or evicted
    them): nothing of those runs was appended, the append's other runs were. `held` maps each
    such run to the last seq its log still holds (0: none). The instance running a run
    appends its events again from there, out of memory (`app.runs.log.writer`); anyone else
    leaves the run's end to its record."""

    def __init__(self, held: Mapping[str, int]) -> None:
        super().__init__(f"the event log lost the earlier events of {len(held)} run(s)")
        self.held = dict(held)


class EventsGone(Exception):
    """The log no longer holds a run's events up to `after_seq`, which a reader had: they
    expired or were lost, or (for a moment) have not been appended yet or again. The
    registry reads again while the run goes on (its owner appends them again), and tells a
    reader of an ended run that events are missing."""

    def __init__(self, run_id: str, after_seq: int) -> None:
        super().__init__(f"run {run_id}: the event log holds no events up to {after_seq}")
        self.run_id = run_id
        self.after_seq = after_seq


class EventLog(ABC):
    """Where runs' events are kept; see the module's docstring."""

    in_the_record: ClassVar[bool] = False
    """The log lives in the record's own database: when one cannot be reached, neither can
    the other. Else (Redis), a run whose log cannot be reached at its end has its end stored
    in the record alone, and its last events appended once the log is back."""

    async def serve(self) -> None:  # noqa: B027 - a backend with nothing to run keeps this
        """What the backend runs for the instance's lifetime (listening for the appends of
        other instances), in the lifespan's task group. Returns at once by default."""

    @abstractmethod
    async def append(self, events: RunEvents) -> None:
        """Keep these events (of one run or of several) and wake each run's followers, here
        and on other instances. Idempotent by (run, seq): an event already kept stays as it
        is. Raises what the backend raises when it cannot be reached (`is_outage` tells)."""

    async def ping(self) -> None:  # noqa: B027 - a log in this process is always there
        """Raise what `append` would if the log cannot be reached now: a send asks before it
        starts a run (a log in the record's own database is checked by the send's own
        statements; the default does nothing)."""

    def is_outage(self, error: BaseException) -> bool:
        """Whether `error`, raised by this backend, says it cannot be reached right now (it is
        restarting, the network dropped): waited out and retried, where any other error is a
        refusal that retrying would not change. A backend in this process is never out."""
        return False

    @abstractmethod
    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        """The run's events after `after_seq`, in order: at most `limit`, and with a `budget`,
        as many as fit in that many bytes of UTF-8 JSON (`app.runs.live.batch_size`), at least
        one. If there are none yet, wait up to `wait` seconds for some (an append here or on
        another instance), then answer what there is: maybe nothing."""

    @abstractmethod
    async def final(self, run_id: str) -> LoggedEvent | None:
        """The run's final event (`done` or `error`), if the log holds it."""

    @abstractmethod
    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        """Forget the events of up to `limit` runs that ended longer ago than that; how many
        runs were forgotten. A backend whose entries expire by themselves answers 0."""

    async def end_run(
        self, end: RunEnd, unwritten: RunEvents, store: Callable[[], Awaitable[LoggedEvent]]
    ) -> LoggedEvent:
        """End the run: its `unwritten` events appended, its `end` stored by `store` (in the
        system of record; the first closer wins), then the final event as stored appended;
        answers that final event. See the module's docstring."""
        await self.append(unwritten)
        stored = await store()
        await self.append([(end.run_id, stored)])
        return stored

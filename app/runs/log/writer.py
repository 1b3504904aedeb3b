"""The batched writer of every run's events to the event log, whichever backend keeps it.

A run hands each event to its local followers at once and to this writer, which appends what
gathered in `BATCH_SECONDS` from every run as one `EventLog.append`, so that a stream of tokens
costs one write per batch, not one per token, and other instances (and later readers) can follow.
A run's last events are not left to it: the run's end takes them back (`take_unwritten`) and
hands them to `EventLog.end_run` with its final event.

A failed append is retried run by run: a run whose events the log refuses (its row was deleted
with its conversation) loses them, and holds up no other run; events that failed because the
log cannot be reached (`EventLog.is_outage`) go back in the queue, written once it is back.

After each append that succeeds, the writer tells who listens (`hear_logged`: the registry) the
highest seq it wrote of each run: a run shows its followers no event too far past what the log
holds (`app.runs.live.UNLOGGED_WINDOW`). And once it holds none of a run's events any more
(all appended, dropped or taken back), it tells `hear_released` (the registry, which lets go of
what it kept of an ended run to append again).

A log that lost a run's earlier events (`RunLogLost`: Redis restarted empty) appends none of
its later ones; the writer asks who keeps the runs in memory (`refill_from`: the registry) for
the run's events after what the log still holds, and appends them again, ahead of the rest: its
followers elsewhere go on without a gap. A run this instance no longer holds stays lost; its
readers are told events are missing (`app.runs.reading`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

import anyio

from app.events import LoggedEvent
from app.metrics import EVENT_LOG_BATCH, EVENT_LOG_WRITE
from app.runs.log.base import EventLog, RunEvents, RunLogLost

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.02
RETRY_SECONDS = 1.0

Queued = list[tuple[str, LoggedEvent]]
"""Events with the id of their run, in the order they are to be written."""

LoggedListener = Callable[[str, int], None]
"""Told a run's id and the highest seq of it an append has just written; it must not block."""

ReleasedListener = Callable[[str], None]
"""Told the id of a run none of whose events the writer holds any more; it must not block."""

Refill = Callable[[str, int, int], RunEvents]
"""Asked a run's id, the last seq its log still holds and the highest seq being appended: the
run's events between (from the one after the first to the second), or none if they are not
held here."""


class EventWriter:
    """Appends the runs' events to `log` in batches; see the module's docstring."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._pending: Queued = []
        self._writing: set[str] = set()
        self._wakeup = anyio.Event()
        self._written = anyio.Event()
        self._listeners: list[LoggedListener] = []
        self._released: list[ReleasedListener] = []
        self._refill: Refill = lambda _run, _held, _through: []

    def hear_logged(self, listener: LoggedListener) -> None:
        """Have `listener` told, after each append that succeeds, each run's highest seq in it."""
        self._listeners.append(listener)

    def hear_released(self, listener: ReleasedListener) -> None:
        """Have `listener` told each run whose events the writer has just stopped holding: after
        a write, the runs of it with none left to write (appended, or dropped: refused, or lost
        with nothing to append again); after `take_unwritten`, the run taken."""
        self._released.append(listener)

    def refill_from(self, refill: Refill) -> None:
        """Where to take a run's events again when the log has lost them."""
        self._refill = refill

    def add(self, run_id: str, event: LoggedEvent) -> None:
        self._pending.append((run_id, event))
        self._wakeup.set()

    async def take_unwritten(self, run_id: str) -> Queued:
        """Take back a finishing run's unwritten events, once none of its events is being
        written, so that its end writes them, in order, with its final event."""
        while run_id in self._writing:
            await self._written.wait()
        mine = [item for item in self._pending if item[0] == run_id]
        self._pending = [item for item in self._pending if item[0] != run_id]
        self._release({run_id})
        return mine

    def put_back(self, events: RunEvents) -> None:
        """Return events taken by `take_unwritten()` whose writing failed, ahead of the rest."""
        self._pending[:0] = events
        self._wakeup.set()

    async def write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            await anyio.sleep(BATCH_SECONDS)  # gather the tokens of every run into one write
            self._wakeup = anyio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._writing = {run_id for run_id, _ in batch}
            unreachable = False
            EVENT_LOG_BATCH.observe(len(batch))
            began = time.perf_counter()
            try:
                await self._log.append(batch)
            except RunLogLost as lost:
                self._append_again(batch, lost)
            except Exception:
                logger.exception("could not write %d run events; retrying run by run", len(batch))
                unreachable = await self._write_each_run(batch)
            else:
                EVENT_LOG_WRITE.observe(time.perf_counter() - began)
                self._tell_logged(batch)
            finally:
                written, self._writing = self._writing, set()
                self._written.set()
                self._written = anyio.Event()
                self._release(written)
            if unreachable:
                await anyio.sleep(RETRY_SECONDS)

    async def _write_each_run(self, batch: Queued) -> bool:
        """After a failed batch: append each run's events on their own. True if the log
        seemed unreachable."""
        by_run: dict[str, Queued] = defaultdict(list)
        for item in batch:
            by_run[item[0]].append(item)
        unreachable = False
        for run_id, events in by_run.items():
            try:
                await self._log.append(events)
            except RunLogLost as lost:
                self._append_again(events, lost)
            except Exception as error:
                if self._log.is_outage(error):  # they wait, and are written once it is back
                    unreachable = True
                    self.put_back(events)
                else:
                    logger.exception("dropping %d events of run %s", len(events), run_id)
            else:
                self._tell_logged(events)
        return unreachable

    def _append_again(self, batch: RunEvents, lost: RunLogLost) -> None:
        """The log took `batch` but for the runs it had lost events of: queue those runs'
        events again from what it still holds, out of memory, ahead of the rest."""
        self._tell_logged([item for item in batch if item[0] not in lost.held])
        again: Queued = []
        for run_id, held in lost.held.items():
            through = max(event.seq for item_run, event in batch if item_run == run_id)
            events = list(self._refill(run_id, held, through))
            if events and events[0][1].seq == held + 1:
                again += events
                logger.warning(
                    "run %s: the event log lost it past seq %d; appending again", run_id, held
                )
            else:
                logger.warning(
                    "run %s: the event log lost it past seq %d, which this instance no longer "
                    "holds: its readers will be told events are missing",
                    run_id,
                    held,
                )
        if again:
            self.put_back(again)

    def _release(self, run_ids: set[str]) -> None:
        """Tell `hear_released` which of these runs have no event left to write."""
        if self._released:
            for run_id in run_ids - {run_id for run_id, _ in self._pending}:
                for listener in self._released:
                    listener(run_id)

    def _tell_logged(self, events: RunEvents) -> None:
        highest: dict[str, int] = {}
        for run_id, event in events:
            highest[run_id] = max(highest.get(run_id, 0), event.seq)
        for listener in self._listeners:
            for run_id, seq in highest.items():
                listener(run_id, seq)

"""Reading a run from its log, as a follower on an instance that does not run it does.

A reader sees each seq after the one before, or a final event that declares where the stored
answer ends (`events.stored_through`); any other gap is `EventsMissing`, never passed off as a
whole run, and a follower is told so with a typed `error` event (`missing_event`) rather than a
stream cut short. A log that no longer holds a run's earlier events (`EventsGone`: Redis
restarted empty) is read again while the run goes on (its owner appends them again); for an
ended run it is a gap like any other. So is the rest of a run whose events and final event
are no longer kept (`RUN_RETENTION_HOURS` after its end): a reader short of its end is told
`EventsMissing`, numbered in place of that end; one that has had it gets nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from app.domain import Run, RunStatus
from app.events import MAX_SEQ, LoggedEvent, decode, encode, error_event, stored_through
from app.runs.live import BATCH_BYTES
from app.runs.log.base import EventLog, EventsGone, EventsMissing
from app.runs.record.base import RunRecord, RunState

POLL_SECONDS = 2.0
READ_BATCH = 500
TAIL_WAITS = 3
"""How many waits of `POLL_SECONDS` an ended run's reader gives the log to catch up with the
record's final event: an end stored while the log was unreachable is in the record first,
and its last events reach the log when its writer next gets through."""


async def read_log(
    log: EventLog, record: RunRecord, run: Run, after_seq: int
) -> AsyncIterator[list[LoggedEvent]]:
    """The run's events from the log, up to its final event. While it runs, each read
    waits up to `POLL_SECONDS` for an append; one that brings nothing asks the record
    whether the run has ended. Once it has, every event before its final one is in the
    log (the end-of-run contract, `app.runs.log.base`): the log is read to its end, and
    the final event comes from the record if the log does not hold it (after waiting, up to
    `TAIL_WAITS` times, for the log to catch up with it), and where neither holds it any
    more, a reader short of it gets `EventsMissing`. Every event read is checked to
    follow on from the one before (`_following_on`): past a gap nothing declares, the
    reader gets what came before it, then `EventsMissing`."""
    last = after_seq
    ended: RunState | None = None
    tail_waits = 0
    if run.status is not RunStatus.ACTIVE:
        ended = await record.state(run.id)
        if ended is None:
            return  # deleted with its conversation, and its log with it
    while True:
        try:
            events = await log.read(
                run.id,
                last,
                limit=READ_BATCH,
                budget=BATCH_BYTES,
                wait=POLL_SECONDS if ended is None or tail_waits else 0.0,
            )
        except EventsGone:
            # Lost past `last`: while the run goes on its owner appends them again (or
            # recovery ends it); once it has ended, only an end stored while the log was
            # away is still to come (its tail, appended again by its owner).
            if ended is None or tail_waits:
                await anyio.sleep(POLL_SECONDS)
            events = []
        if events:
            terminal = next((i for i, e in enumerate(events) if e.terminal), None)
            if terminal is not None:
                events = events[: terminal + 1]
            whole = _following_on(last, events)
            if whole:
                yield events[:whole]
                last = events[whole - 1].seq
                tail_waits = 0  # the log is catching up: wait for it again
            if whole < len(events):
                raise EventsMissing(run.id, last, events[whole].seq)
            if terminal is not None:
                return
            continue
        if ended is not None:
            if ended.final is None:
                # No longer kept, and the log was pruned with it: a reader short of the run's
                # end is told the rest is missing, never handed what it has as the whole run.
                if last < ended.last_seq:
                    raise EventsMissing(run.id, last, ended.last_seq, end_gone=True)
                return
            if ended.final.seq > last:
                if not _following_on(last, [ended.final]):
                    if tail_waits < TAIL_WAITS:
                        tail_waits += 1
                        continue
                    raise EventsMissing(run.id, last, ended.final.seq)
                yield [ended.final]
            return
        state = await record.state(run.id)
        if state is None:
            return
        if state.ended:
            ended = state  # read what the log holds of it, to its end, then the final


def missing_event(missing: EventsMissing) -> LoggedEvent:
    """What a follower is told at a gap: an `error` event numbered just below the event found
    after it (a reader that comes back with this seq reads on from that event), above
    everything it has; in place of the run's final event where that is gone too (a reader
    back with this seq has had the run's end: nothing more is kept to read on to)."""
    if missing.end_gone:
        return encode(error_event("events_missing"), missing.found)
    return encode(error_event("events_missing"), max(missing.found - 1, missing.after_seq + 1))


def is_missing_event(event: LoggedEvent) -> bool:
    """Whether this is the error a follower is told at a gap (`missing_event`)."""
    return event.type == "error" and getattr(decode(event), "code", None) == "events_missing"


def failed_event() -> LoggedEvent:
    """What a follower is told when its run could not be read, the log or the record refusing
    rather than away (a bug, an event it cannot decode): a typed `follow_failed` error numbered
    above any seq a run has (`MAX_SEQ`), so that it names none of the run's events and reaches
    every follower, and a client back with its id is past the run's end (a 204 once it has
    ended), never resumed where it did not stop."""
    return encode(error_event("follow_failed"), MAX_SEQ)


def _following_on(last: int, events: list[LoggedEvent]) -> int:
    """How many of these events, from the first, follow on from `last` and from each other:
    each the next seq, or a final event that declares the stored answer ends at or before the
    one before it (the seqs between are never used)."""
    for count, event in enumerate(events):
        if event.seq != last + 1:
            declared = stored_through(event) if event.terminal else None
            if declared is None or declared > last or event.seq <= last:
                return count
        last = event.seq
    return len(events)

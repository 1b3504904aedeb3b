"""The runs' event log in PostgreSQL (`run_events`): append-only, read in order of `seq`.

Only the PostgreSQL event log (`app.runs.log.postgres`) uses it; the rest of the service reaches
a run's events through the log's interface, whichever backend keeps them. Each statement is its
own transaction, on asyncpg itself (`app.db.driver`): every turn appends and ends here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.db.driver import Query
from app.db.repositories.runs import END_RUN, end_values
from app.domain import NewMessage, RunStatus
from app.events import LoggedEvent

EVENTS_CHANNEL = "todo_chat_runs"
"""Where an append is announced to every instance: `run_id:seq`, the run's last event in it."""

# A page of a run's log: at most `limit_key` events, and of those as many as fit in
# `budget_key` bytes of JSON (at least one; no budget, no such bound). The running sum goes row
# by row in `seq` order and the scan stops at the limit; `octet_length` reads a stored value's
# size without unpacking it.
_EVENTS_AFTER = Query("""
SELECT seq, data FROM (
    SELECT seq, data,
        sum(octet_length(data)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS upto,
        row_number() OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS n
    FROM run_events
    WHERE run_id = CAST(:run_key AS uuid) AND seq > CAST(:seq_key AS integer)
    ORDER BY seq
    LIMIT CAST(:limit_key AS integer)
) AS page
WHERE n = 1 OR CAST(:budget_key AS bigint) IS NULL OR upto <= CAST(:budget_key AS bigint)
ORDER BY seq
""")

# Any number of events, of any runs, and one notification per run, in one statement (arrays,
# not one VALUES row per event: the same prepared statement whatever the count), hence one
# round trip; a data-modifying WITH always runs to completion. An event already logged (a
# retried batch whose first commit went through, or the end an orphan-closing instance wrote)
# is kept as it is.
_APPEND_EVENTS_AND_NOTIFY = Query("""
WITH appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT * FROM unnest(
        CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
    )
    ON CONFLICT DO NOTHING
)
SELECT pg_notify(:channel, m) FROM unnest(CAST(:messages AS text[])) m
""")

# A run's end (`runs.END_RUN`), its last events and their notification, in one statement; no
# event and no notification if the run had already ended.
_END_RUN_AND_APPEND = Query(f"""
WITH {END_RUN}, appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT events.* FROM unnest(
        CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
    ) AS events
    WHERE EXISTS (SELECT FROM finished)
    ON CONFLICT DO NOTHING
)
SELECT pg_notify(:channel, CAST(:notification AS text)) FROM finished
""")

# A run's final event in the log: the first `done` or `error` (encode() writes `type` first).
_FINAL_EVENT = Query("""
SELECT seq, data FROM run_events
WHERE run_id = :run_key AND (data LIKE '{"type":"done"%' OR data LIKE '{"type":"error"%')
ORDER BY seq LIMIT 1
""")

# The events of up to `limit` runs that ended longer ago than that (by the database's clock);
# how many runs.
_PRUNE = Query("""
WITH expired AS (
    SELECT r.id FROM runs r
    WHERE r.status <> 'active' AND r.finished_at < now() - make_interval(secs => :older_than)
        AND EXISTS (SELECT FROM run_events e WHERE e.run_id = r.id)
    LIMIT :limit
), deleted AS (
    DELETE FROM run_events WHERE run_id IN (SELECT id FROM expired) RETURNING run_id
)
SELECT count(DISTINCT run_id) FROM deleted
""")


class RunEventRepository:
    """The runs' event log: append-only, read in order of `seq`. On an asyncpg connection
    (`Database.driver`)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def append_and_notify(
        self, events: Sequence[tuple[str, LoggedEvent]], *messages: str
    ) -> None:
        """Append the events, and send each message on `EVENTS_CHANNEL`."""
        values = {**event_arrays(events), "messages": list(messages), "channel": EVENTS_CHANNEL}
        await _APPEND_EVENTS_AND_NOTIFY.execute(self._connection, values)

    async def end_run_and_append(
        self,
        run_id: str,
        status: RunStatus,
        answer: NewMessage,
        answer_id: int,
        events: Sequence[tuple[str, LoggedEvent]],
        notification: str,
    ) -> bool:
        """End an active run with its answer and its last `events` (the final event last),
        and send `notification`; False, and nothing stored, if it had already ended."""
        values = {
            **end_values(run_id, status, answer, answer_id, events[-1][1]),
            **event_arrays(events),
            "notification": notification,
            "channel": EVENTS_CHANNEL,
        }
        return await _END_RUN_AND_APPEND.fetchrow(self._connection, values) is not None

    async def after(
        self, run_id: str, seq: int, *, limit: int, budget: int | None = None
    ) -> list[LoggedEvent]:
        """The events after `seq`, in order: at most `limit`, and with a `budget`, at most
        that many bytes of JSON (at least one event)."""
        keys = {
            "run_key": uuid.UUID(run_id),
            "seq_key": seq,
            "limit_key": limit,
            "budget_key": budget,
        }
        rows = await _EVENTS_AFTER.fetch(self._connection, keys)
        return [LoggedEvent(number, data) for number, data in rows]

    async def final(self, run_id: str) -> LoggedEvent | None:
        """The run's final event, if the log holds one."""
        row = await _FINAL_EVENT.fetchrow(self._connection, {"run_key": uuid.UUID(run_id)})
        return None if row is None else LoggedEvent(row["seq"], row["data"])

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        """Delete the events of up to `limit` runs that ended longer ago than that; how many
        runs."""
        keys = {"older_than": older_than_seconds, "limit": limit}
        return int(await _PRUNE.fetchval(self._connection, keys))


def event_arrays(events: Sequence[tuple[str, LoggedEvent]]) -> dict[str, list[Any]]:
    keys: dict[str, uuid.UUID] = {}
    return {
        "run_keys": [keys.get(run) or keys.setdefault(run, uuid.UUID(run)) for run, _ in events],
        "seq_values": [event.seq for _, event in events],
        "data_values": [event.data for _, event in events],
    }

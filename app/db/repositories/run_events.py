"""The runs' event log in PostgreSQL (`run_events`): append-only, read in order of `seq`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    delete,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import RunEventRow, RunRow
from app.domain import (
    RunStatus,
)
from app.events import LoggedEvent

NOTIFY_CHANNEL = "todo_chat_runs"

# One statement for any number of events (arrays, not one VALUES row per event: the same
# prepared statement whatever the count). An event already logged (a retried batch whose first
# commit went through, or the end an orphan-closing instance wrote) is kept as it is.
_APPEND_EVENTS = text("""
INSERT INTO run_events (run_id, seq, data)
SELECT * FROM unnest(
    CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
)
ON CONFLICT DO NOTHING
""")

# A page of a run's log: at most `limit_key` events, and of those as many as fit in
# `budget_key` bytes of JSON (at least one; no budget, no such bound). The running sum goes row
# by row in `seq` order and the scan stops at the limit; `octet_length` reads a stored value's
# size without unpacking it.
_EVENTS_AFTER = text("""
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

# One statement for any number of notifications: one per run in an event-log batch. The
# channel comes as a parameter (`NOTIFY_CHANNEL`), here and below.
_NOTIFY = text("SELECT pg_notify(:channel, m) FROM unnest(CAST(:messages AS text[])) m")

# Both in one statement, hence one round trip; a data-modifying WITH always runs to completion.
_APPEND_EVENTS_AND_NOTIFY = text("""
WITH appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT * FROM unnest(
        CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
    )
    ON CONFLICT DO NOTHING
)
SELECT pg_notify(:channel, m) FROM unnest(CAST(:messages AS text[])) m
""")

# A run's final event in the log: the first `done` or `error` (encode() writes `type` first).
_FINAL_EVENT = text("""
SELECT seq, data FROM run_events
WHERE run_id = :run_key AND (data LIKE '{"type":"done"%' OR data LIKE '{"type":"error"%')
ORDER BY seq LIMIT 1
""")


class RunEventRepository:
    """The runs' event log: append-only, read in order of `seq`."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def append(self, events: Sequence[tuple[str, LoggedEvent]]) -> None:
        if events:
            await self._connection.execute(_APPEND_EVENTS, event_arrays(events))

    async def append_and_notify(
        self, events: Sequence[tuple[str, LoggedEvent]], *messages: str
    ) -> None:
        """`append()` and `notify()` in one statement."""
        values = {**event_arrays(events), "messages": list(messages), "channel": NOTIFY_CHANNEL}
        await self._connection.execute(_APPEND_EVENTS_AND_NOTIFY, values)

    async def after(
        self, run_id: str, seq: int, *, limit: int = 1000, budget: int | None = None
    ) -> list[LoggedEvent]:
        """The events after `seq`, in order: at most `limit`, and with a `budget`, at most
        that many bytes of JSON (at least one event)."""
        keys = {
            "run_key": uuid.UUID(run_id),
            "seq_key": seq,
            "limit_key": limit,
            "budget_key": budget,
        }
        rows = await self._connection.execute(_EVENTS_AFTER, keys)
        return [LoggedEvent(number, data) for number, data in rows]

    async def final(self, run_id: str) -> LoggedEvent | None:
        """The run's final event, if the log holds one."""
        row = (await self._connection.execute(_FINAL_EVENT, {"run_key": uuid.UUID(run_id)})).first()
        return None if row is None else LoggedEvent(row.seq, row.data)

    async def notify(self, *messages: str) -> None:
        """Tell every instance listening; delivered when the transaction commits."""
        if messages:
            values = {"messages": list(messages), "channel": NOTIFY_CHANNEL}
            await self._connection.execute(_NOTIFY, values)

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        """Delete the events of up to `limit` runs finished longer ago than that."""
        expired = (
            select(RunRow.id)
            .where(
                RunRow.status != RunStatus.ACTIVE.value,
                RunRow.finished_at < datetime.now(UTC) - timedelta(seconds=older_than_seconds),
                select(literal_column("1")).where(RunEventRow.run_id == RunRow.id).exists(),
            )
            .limit(limit)
        )
        statement = delete(RunEventRow).where(RunEventRow.run_id.in_(expired))
        result = await self._connection.execute(statement)
        return int(result.rowcount or 0)


def event_arrays(events: Sequence[tuple[str, LoggedEvent]]) -> dict[str, list[Any]]:
    keys: dict[str, uuid.UUID] = {}
    return {
        "run_keys": [keys.get(run) or keys.setdefault(run, uuid.UUID(run)) for run, _ in events],
        "seq_values": [event.seq for _, event in events],
        "data_values": [event.data for _, event in events],
    }

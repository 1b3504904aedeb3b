"""The one way a run ends: its status, its answer and its last events stored in one statement.

The run itself uses it when it finishes (`RunRegistry.finish`), and recovery when it closes a run
that could not (`Recovery`). Whoever ends a run, the final event its followers get is the one the
log holds: a second attempt (the reply to the first was lost, or the first was cut by a timeout
after it committed) or a second closer finds the run ended already and takes the final event
stored then. A run has exactly one final event.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.db.gate import Priority
from app.db.uow import Database
from app.domain import NewMessage, RunStatus
from app.events import LoggedEvent, encode, interrupted
from app.runs.event_log import RunEvents


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ends: its status, its answer (with the id reserved for it), its final event."""

    run_id: str
    status: RunStatus
    answer: NewMessage
    answer_id: int
    final: LoggedEvent


async def store_end(database: Database, end: RunEnd, unwritten: RunEvents) -> LoggedEvent:
    """Store the run's end with its `unwritten` events, if it has not ended yet; the run's final
    event as the log holds it afterwards. Raises what the database raises."""
    async with database.single_statement(Priority.END) as uow:
        ended = await uow.runs.end(
            end.run_id,
            end.status,
            end.answer,
            end.answer_id,
            [*unwritten, (end.run_id, end.final)],
            notification=f"{end.run_id}:{end.final.seq}",
        )
        if ended:
            return end.final
        stored = await uow.run_events.final(end.run_id)
    # Ended before, and its log pruned since: what a reader of the log would be told.
    return stored if stored is not None else encode(interrupted(retryable=False), end.final.seq)

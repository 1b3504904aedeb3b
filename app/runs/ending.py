"""How a run ends: its status, its answer, and its one final event.

The run itself ends this way when it finishes (`RunRegistry.finish`), and recovery when it closes
a run that could not (`Recovery`). Whoever ends a run, its followers get the final event stored
first: a second attempt (the reply to the first was lost, or a timeout cut it after it
committed) or a second closer finds the run ended already and takes that event. A run has
exactly one final event. Where the end is stored, and how the event log holds it, is the
end-of-run contract of `app.runs.log.base`.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain import NewMessage, RunStatus
from app.events import LoggedEvent


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ends: its status, its answer (with the id reserved for it), its final event."""

    run_id: str
    status: RunStatus
    answer: NewMessage
    answer_id: int
    final: LoggedEvent

"""The system of record, as the run engine needs it: how each run stands, its end, its cancels,
and the instances' heartbeats.

The record is where a run's outcome is decided: its status and its final event are stored there
once, by whoever ends the run first, and the answer with them. The event log
(`app.runs.log.base`) holds the run's events for its followers, and may live elsewhere; the
record is PostgreSQL's `runs` and `instances` for the service (`postgres`), and a
process's own memory for the engine's unit tests (`memory`).

**Cancels go through the record**, not the log: a cancel asked on one instance is stored with
the run (so that recovery finds it if the announcement is lost) and announced to every
instance, whose registry stops the run if it owns it. So cancels work whatever keeps the log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain import Run, RunStatus
from app.events import LoggedEvent
from app.runs.ending import RunEnd

CancelHandler = Callable[[str], None]
"""Told the id of a run someone asked to stop, on any instance; it must not block."""


@dataclass(frozen=True, slots=True)
class RunState:
    """How a run stands for a reader of its log: its status and, once it has ended, its final
    event, while its events are kept (`final_kept_seconds`), and that event's seq for as long
    as the run is kept: a reader that has not reached it once the event and the log are gone
    is told that events are missing (`app.runs.reading`)."""

    status: RunStatus
    final: LoggedEvent | None
    last_seq: int = 0
    """The seq of the run's final event once it has ended (0 while it runs)."""

    @property
    def ended(self) -> bool:
        return self.status is not RunStatus.ACTIVE


class RunRecord(ABC):
    """See the module's docstring. Every method may raise what its store raises when it cannot
    be reached (`is_outage` tells)."""

    # Runs

    @abstractmethod
    async def state(self, run_id: str) -> RunState | None:
        """How the run stands; None if there is no such run (its conversation was deleted)."""

    @abstractmethod
    async def store_end(self, end: RunEnd) -> LoggedEvent:
        """Store the run's end, if it has not ended yet; the run's final event as stored:
        `end.final`, or the one stored by whoever ended it first."""

    @abstractmethod
    async def request_cancel(self, run_id: str) -> None:
        """Ask the run to stop, wherever it runs: stored, and told to every instance's
        `hear_cancels` handler. Nothing if it has ended."""

    @abstractmethod
    def hear_cancels(self, handler: CancelHandler) -> None:
        """Have `handler` told of each cancel asked, on any instance (before serving)."""

    @abstractmethod
    async def cancels_requested(self, run_ids: Sequence[str]) -> list[str]:
        """Which of these active runs have been asked to stop (for announcements missed)."""

    @abstractmethod
    async def active_runs_of(self, instance: str) -> list[Run]:
        """The runs an instance started that have not ended."""

    @abstractmethod
    async def reserve_answer_id(self) -> int:
        """An id for an answer stored later (an orphaned run's)."""

    # Instances

    @abstractmethod
    async def beat(self, instance: str) -> None:
        """The instance is alive now."""

    @abstractmethod
    async def forget(self, instance: str) -> None:
        """The instance is leaving: its runs may be closed at once."""

    @abstractmethod
    async def gone_with_active_runs(self, *, silent_seconds: float) -> list[str]:
        """Instances with runs still active whose heartbeat stopped `silent_seconds` ago or
        more (one that never beat counts from its oldest active run's start)."""

    @abstractmethod
    async def forget_gone(self, *, silent_seconds: float) -> None:
        """Forget instances silent that long that have no active run left."""

    def is_outage(self, error: BaseException) -> bool:
        """Whether `error`, raised here, says the record cannot be reached right now (to be
        waited out and retried) rather than that it refused. A record in memory never is."""
        return False

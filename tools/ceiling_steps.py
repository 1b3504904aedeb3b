"""A step of `tools.log_ceiling` (N runs followed for a few seconds: what was made, read, how
late, at what CPU), whether it kept pace, and what a run's steps say side by side."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from app.runs.log.writer import BATCH_SECONDS

WINDOW = BATCH_SECONDS
"""The writer's batching window: a batch keeps within it when appended within it."""
KEPT_SHARE = 0.97
LAG_BOUND = 0.25


@dataclass
class Step:
    runs: int
    made: int = 0
    read: int = 0
    lags: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_here: float = 0.0
    """CPU seconds this process spent in the step."""
    cpu_server: float | None = None
    """CPU seconds the log's server spent in the step (None: not readable here)."""

    @property
    def events_per_second(self) -> float:
        """What its runs made a second (all read, when the step kept pace)."""
        return self.made / self.seconds

    @property
    def p99_lag(self) -> float:
        return statistics.quantiles(self.lags, n=100)[98] if len(self.lags) > 1 else float("inf")

    @property
    def kept_pace(self) -> bool:
        within_window = bool(self.writes) and statistics.median(self.writes) <= WINDOW
        return within_window and self.read >= KEPT_SHARE * self.made and self.p99_lag <= LAG_BOUND

    def cpu_ms_per_thousand(self) -> tuple[float, float | None]:
        """CPU ms a thousand events took: this process's, and the server's."""
        per = 1000 * 1000 / max(self.made, 1)
        server = None if self.cpu_server is None else self.cpu_server * per
        return self.cpu_here * per, server

    def line(self, backend: str) -> str:
        writes = statistics.quantiles(self.writes, n=100)[98] if len(self.writes) > 1 else 0.0
        return (
            f"{backend:>14} {self.runs:>6} runs: {self.events_per_second:>9,.0f} events/s read, "
            f"p99 lag {self.p99_lag * 1000:>7.1f} ms, p99 append {writes * 1000:>6.1f} ms, "
            f"CPU/1k events {_cpu_text(self)}, "
            f"{'kept pace' if self.kept_pace else 'fell behind'}"
        )

    def summary(self) -> dict[str, Any]:
        here, server = self.cpu_ms_per_thousand()
        return {
            "runs": self.runs,
            "events_per_second": round(self.events_per_second),
            "p99_lag_ms": round(self.p99_lag * 1000, 1),
            "kept_pace": self.kept_pace,
            "cpu_ms_per_1000_events_here": round(here, 2),
            "cpu_ms_per_1000_events_server": None if server is None else round(server, 2),
        }


def _cpu_text(step: Step) -> str:
    here, server = step.cpu_ms_per_thousand()
    return f"{here:.1f} ms here + " + ("?" if server is None else f"{server:.1f} ms server")


def best(steps: list[Step]) -> Step | None:
    kept = [step for step in steps if step.kept_pace]
    return max(kept, key=lambda step: step.events_per_second) if kept else None


def ratios(results: dict[str, Step | None]) -> dict[str, float]:
    """Each other backend's ceiling over PostgreSQL's, in this run."""
    base = results.get("postgres")
    return {
        name: round(step.events_per_second / base.events_per_second, 2)
        for name, step in results.items()
        if name != "postgres" and base is not None and step is not None
    }


def cpu_over_postgres(steps: dict[str, list[Step]]) -> dict[int, float]:
    """At each number of runs both backends kept pace with, PostgreSQL's CPU per event (this
    process and its server) over Redis's: a comparison that a machine whose other load comes
    and goes moves less than the ceilings, measured minutes apart."""

    def total(step: Step) -> float | None:
        here, server = step.cpu_ms_per_thousand()
        return None if server is None else here + server

    redis = {step.runs: total(step) for step in steps.get("redis", []) if step.kept_pace}
    found: dict[int, float] = {}
    for step in steps.get("postgres", []):
        postgres, other = total(step), redis.get(step.runs)
        if step.kept_pace and postgres is not None and other:
            found[step.runs] = round(postgres / other, 2)
    return dict(sorted(found.items()))


def print_ceilings(results: dict[str, Step | None]) -> None:
    print("\nthe event log's ceiling: events a second one instance appends and its followers")
    print("read, 97 % of them with a p99 lag within 250 ms; CPU per 1,000 events at that step")
    print(f"  {'':>14} {'events/s':>10} {'runs':>6} {'p99 lag':>9} {'CPU here':>10} {'server':>10}")
    for name, step in results.items():
        if step is None:
            print(f"  {name:>14} {'none kept pace':>10}")
            continue
        here, server = step.cpu_ms_per_thousand()
        server_text = "?" if server is None else f"{server:.1f} ms"
        print(
            f"  {name:>14} {step.events_per_second:>10,.0f} {step.runs:>6} "
            f"{step.p99_lag * 1000:>6.1f} ms {here:>7.1f} ms {server_text:>10}"
        )
    for name, ratio in ratios(results).items():
        print(f"  {name} / postgres: {ratio:.1f}x")

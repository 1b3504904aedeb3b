"""The service's Prometheus metrics, defined once: the one module that uses prometheus-client.

What an operator of a streaming agent watches: time to first token and between tokens, runs by
outcome, what is open now (runs, streams, the database queue), tokens, tool calls, the event
log's batches, resumes, followers told events are missing, refusals, and HTTP requests by route
template. No label holds a user id, a run id or anything a client chooses freely: every label
has a few known values.

**Several workers.** Under `uvicorn --workers N` (the Procfile: `WEB_CONCURRENCY`) each worker
is its own process, and a scrape reaches one of them. prometheus-client's multiprocess mode has
each process write its values to files in one directory, and `/metrics` sums them (live gauges
of live processes only: `livesum`). It must be chosen before the first metric exists, by the
environment variable `PROMETHEUS_MULTIPROC_DIR`, so this module decides it when it is imported,
before it imports prometheus-client (hence the late import below; do not move it up):
- a process that uvicorn's supervisor spawned (`multiprocessing.parent_process()`) uses a
  directory of that supervisor's own, named by its pid and start time, so that each start of
  the service begins with an empty one; the directories of supervisors no longer running are
  removed, and so are the live-gauge files of workers that died (uvicorn starts another);
- `PROMETHEUS_MULTIPROC_DIR` set by the operator (gunicorn and the like) is used as it is;
- a single process (`make run`, the tests) keeps its values in memory.

**Cost.** The calls one tool-using turn makes here (a run's clock, its events, a tool result,
its end, tokens, its HTTP request, an event-log batch) are a fraction of a percent of the turn's
CPU (docs/performance.md, "What the code's choices rest on").
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from app.domain import Usage
from app.events import LoggedEvent
from app.processes import is_alive

_ROOT = Path(tempfile.gettempdir()) / "todo-chat-metrics"


def _started(pid: int) -> str:
    """When a process started (clock ticks since boot), to tell it from a later one that got
    the same pid; "" where /proc is missing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _worker_directory() -> Path | None:
    """The directory shared by this worker and its siblings; None outside a supervisor."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    mine = _ROOT / f"{parent.pid}-{_started(parent.pid)}"
    _ROOT.mkdir(exist_ok=True)
    for directory in _ROOT.iterdir():
        pid, _, started = directory.name.partition("-")
        if directory != mine and not (
            pid.isdigit() and is_alive(int(pid)) and _started(int(pid)) == started
        ):
            shutil.rmtree(directory, ignore_errors=True)  # a supervisor that has stopped
    mine.mkdir(exist_ok=True)
    return mine


_DIRECTORY = (
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    else _worker_directory()
)
if _DIRECTORY is not None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_DIRECTORY)

# After the choice above: prometheus-client reads it when it is imported.
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = _DIRECTORY is not None

# Seconds, from a token's few milliseconds to a slow model's minute.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DURATION = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

TIME_TO_FIRST_TOKEN = Histogram(
    "todo_chat_time_to_first_token_seconds",
    "From a run's start (its message stored) to its first text event.",
    buckets=_LATENCY,
)
INTER_TOKEN = Histogram(
    "todo_chat_inter_token_seconds",
    "Between two text events of a run.",
    buckets=_LATENCY,
)
RUN_DURATION = Histogram(
    "todo_chat_run_duration_seconds",
    "From a run's start to its final event, by outcome.",
    ["outcome"],
    buckets=_DURATION,
)
RUNS = Counter(
    "todo_chat_runs",
    "Runs ended by this process, by outcome (complete, cancelled, error) and error code.",
    ["outcome", "code"],
)
RUNS_IN_PROGRESS = Gauge(
    "todo_chat_runs_in_progress",
    "Runs this process is answering now.",
    multiprocess_mode="livesum",
)
STREAMS_OPEN = Gauge(
    "todo_chat_streams_open",
    "Event streams being sent now, in either protocol (ours, the AI SDK's): local (the turn the "
    "request started), followed (a resume, a join, a run's or a conversation's events).",
    ["source"],
    multiprocess_mode="livesum",
)
STREAMS_DROPPED = Counter(
    "todo_chat_streams_dropped",
    "Streams closed because their client took no write for SEND_TIMEOUT_SECONDS (a frozen "
    "tab, a stalled proxy); their runs went on.",
)
TOKENS = Counter(
    "todo_chat_tokens",
    "Model tokens of ended runs, as the model reported them.",
    ["direction"],
)
TOOL_CALLS = Counter(
    "todo_chat_tool_calls",
    "Tool results, by tool and outcome (ok, or the error the tool answered).",
    ["tool", "outcome"],
)
DB_WAIT = Histogram(
    "todo_chat_db_wait_seconds",
    "Time spent waiting for a database connection, by priority (only waits that queued).",
    ["priority"],
    buckets=_LATENCY,
)
DB_QUEUE = Gauge(
    "todo_chat_db_queue",
    "Work waiting for a database connection now, by priority.",
    ["priority"],
    multiprocess_mode="livesum",
)
EVENT_LOG_BATCH = Histogram(
    "todo_chat_event_log_batch_events",
    "Events written by one statement of the event log.",
    buckets=_BATCH,
)
EVENT_LOG_WRITE = Histogram(
    "todo_chat_event_log_write_seconds",
    "How long one event-log statement took.",
    buckets=_LATENCY,
)
RESUMES = Counter(
    "todo_chat_resumes",
    "Streams that resumed a run from an event id (Last-Event-ID or last_event_id); a 204 to a "
    "client that has the run's end is not one.",
)
EVENTS_MISSING = Counter(
    "todo_chat_events_missing",
    "Follower streams told that part of their run is missing (the typed events_missing error): "
    "events the event log lost (Redis restarted empty, or evicted them), or a run read past "
    "RUN_RETENTION_HOURS, its events and final event pruned.",
)
REFUSALS = Counter(
    "todo_chat_refusals",
    "Requests refused for a conflict or a limit (409, 429; 408, 431, 503 by the HTTP protocol).",
    ["status", "code"],
)
HTTP_REQUESTS = Counter(
    "todo_chat_http_requests",
    "HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "todo_chat_http_response_start_seconds",
    "From a request to the start of its response, by method and route template: for a "
    "stream, until it opens (its duration stays out of this histogram).",
    ["method", "route"],
    buckets=_LATENCY,
)

TOOL_OK = "ok"


class RunTiming:
    """One run's clock: its first token, the time between tokens, how it ended."""

    __slots__ = ("_last_text", "_started")

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._last_text: float | None = None
        RUNS_IN_PROGRESS.inc()

    def saw(self, event: LoggedEvent) -> None:
        kind = event.type
        if kind == "text":
            now = time.perf_counter()
            if self._last_text is None:
                TIME_TO_FIRST_TOKEN.observe(now - self._started)
            else:
                INTER_TOKEN.observe(now - self._last_text)
            self._last_text = now
        elif kind == "tool_result":
            result = json.loads(event.data)
            output = result.get("output")
            error = output.get("error") if isinstance(output, dict) else None
            TOOL_CALLS.labels(result["name"], error if isinstance(error, str) else TOOL_OK).inc()

    def ended(self, final: LoggedEvent) -> None:
        payload = json.loads(final.data)
        if payload["type"] == "done":
            outcome, code = payload.get("status", "complete"), ""
        else:
            outcome, code = "error", payload.get("code", "")
        RUNS.labels(outcome, code).inc()
        RUN_DURATION.labels(outcome).observe(time.perf_counter() - self._started)
        RUNS_IN_PROGRESS.dec()


def count_tokens(usage: Usage | None) -> None:
    if usage is not None:
        TOKENS.labels("input").inc(usage.input_tokens)
        TOKENS.labels("output").inc(usage.output_tokens)


def streams_open(source: str) -> Gauge:
    """The count of streams being sent under `source` (`STREAMS_OPEN`): up as one begins, down
    as it ends."""
    return STREAMS_OPEN.labels(source)


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, summed over the workers; its content type."""
    if not MULTIPROCESS:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """This worker's live gauges leave the sum (its counters stay: they are totals)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _forget_dead_workers() -> None:
    """Live gauges of workers that died without `process_exiting` (uvicorn replaced them)."""
    if _DIRECTORY is None:
        return
    for path in _DIRECTORY.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not is_alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(_DIRECTORY))  # type: ignore[no-untyped-call]


_forget_dead_workers()

"""Where the time to `start` goes under load: each phase of a streamed turn's start, from the
request reaching the application to its first write, per request, with 30 paced clients (the
bench's b30) on the service as `make bench` runs it.

    python -m tools.start_phases [--clients 30] [--turns 300]

The service runs with `instrument()` installed (`BENCH_PHASES`): it wraps, in its own process,
the calls each phase ends with (the token's check, the body's read, each of the begin
transaction's round trips, the run's start, the start event, the response's head and its first
body write) and records when each returned, in the request's context, which the run's task
inherits. The phases are the differences, by percentile over every request measured; the
client's own time to `start` is printed beside them (it also holds the connection's set-up and
the server's HTTP parsing, before the application is called).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support import free_port
from tools.load import drive, percentile
from tools.scenarios import SCENARIOS, Scenario
from tools.servers import Process, measuring_database, server_environment, wait_listening

_marks: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "start_marks", default=None
)


def _mark(name: str) -> None:
    marks = _marks.get()
    # The run's task inherits the request's record: what it does after the first write (its
    # tool calls) is not the start's.
    if marks is not None and name not in marks and "first write" not in marks:
        marks[name] = time.perf_counter()


def _after(owner: Any, attribute: str, name: str | Callable[[Any, tuple[Any, ...]], str]) -> None:
    """Wrap `owner.attribute` (a coroutine function) to mark `name` when it returns."""
    wrapped = getattr(owner, attribute)

    async def marking(*args: Any, **kwargs: Any) -> Any:
        result = await wrapped(*args, **kwargs)
        _mark(name if isinstance(name, str) else name(result, args))
        return result

    setattr(owner, attribute, marking)


def instrument(path: str) -> Callable[[Any], Any]:
    """Install the marks in this process; return the ASGI wrapper that opens and closes each
    request's record. At SIGUSR2 the records so far are written to `path` (JSON)."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.chat import ChatService
    from app.db.uow import UnitOfWork
    from app.runs.registry import RunRegistry
    from app.web.auth import TokenVerifier
    from app.web.routes import runs

    records: list[dict[str, float]] = []
    statements = contextvars.ContextVar("statements", default=0)

    _after(TokenVerifier, "verify", "auth")
    _after(runs, "read_body", "body")
    _after(ChatService, "_begin", "begun")

    enter = UnitOfWork.__aenter__

    async def entered(self: UnitOfWork) -> UnitOfWork:
        result = await enter(self)
        _mark("connection")
        return result

    UnitOfWork.__aenter__ = entered  # type: ignore[method-assign]

    def counted(kind: str) -> Callable[[Any, tuple[Any, ...]], str]:
        def name(result: Any, args: tuple[Any, ...]) -> str:
            marks = _marks.get()
            if marks is None or "begun" in marks:
                return "after the begin"  # the run's own statements, once it has begun
            number = statements.get() + 1
            statements.set(number)
            return f"{kind} {number}"

        return name

    _after(AsyncConnection, "execute", counted("statement"))
    _after(AsyncConnection, "commit", counted("commit"))

    start_run = RunRegistry.start_run

    def started(self: RunRegistry, *args: Any) -> Any:
        live = start_run(self, *args)
        _mark("run started")
        return live

    RunRegistry.start_run = started  # type: ignore[method-assign,assignment]
    emit = RunRegistry.emit

    def emitted(self: RunRegistry, live: Any, event: Any) -> None:
        emit(self, live, event)
        if event.seq == 1:
            _mark("start event")

    RunRegistry.emit = emitted  # type: ignore[method-assign]

    def dump(signum: int, frame: object) -> None:
        Path(f"{path}.tmp").write_text(json.dumps(records))
        Path(f"{path}.tmp").rename(path)

    signal.signal(signal.SIGUSR2, dump)

    def wrap(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def timed(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or not scope["path"].endswith("/chat/stream"):
                await app(scope, receive, send)
                return
            marks = {"called": time.perf_counter()}
            _marks.set(marks)
            statements.set(0)

            async def marked(message: Any) -> None:
                if message["type"] == "http.response.start":
                    _mark("head")
                await send(message)
                if message["type"] == "http.response.body" and "first write" not in marks:
                    _mark("first write")
                    records.append(marks)

            await app(scope, receive, marked)

        return timed

    return wrap


def report(records: list[dict[str, float]]) -> None:
    """Each phase (from the mark before it to its own), by percentile, in ms."""
    phases: dict[str, list[float]] = {}
    for marks in records:
        ordered = sorted(marks.items(), key=lambda item: item[1])
        for (_, before), (name, at) in itertools.pairwise(ordered):
            phases.setdefault(name, []).append((at - before) * 1000)
        phases.setdefault("total (in the application)", []).append(
            (ordered[-1][1] - ordered[0][1]) * 1000
        )
    print(f"{len(records)} streamed turns; each phase ends with its mark, in ms:")
    print(f"  {'phase':34} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8} {'count':>6}")
    for name, values in phases.items():
        cells = [percentile(values, q) or 0.0 for q in (0.5, 0.9, 0.99)]
        mean = sum(values) / len(values)
        print(
            f"  {name:34} {cells[0]:8.2f} {cells[1]:8.2f} {cells[2]:8.2f} {mean:8.2f}"
            f" {len(values):6}"
        )


async def _records(service: Process, path: Path) -> list[dict[str, float]]:
    """The records the service has so far (it writes them at SIGUSR2)."""
    os.kill(service.popen.pid, signal.SIGUSR2)
    while not await asyncio.to_thread(path.exists):  # noqa: ASYNC110 (another process writes it)
        await asyncio.sleep(0.1)
    records: list[dict[str, float]] = json.loads(await asyncio.to_thread(path.read_text))
    await asyncio.to_thread(path.unlink)
    return records


async def measure(database_url: str, scenario: Scenario) -> None:
    path = Path(f"/tmp/start-phases-{os.getpid()}.json")
    env = server_environment(
        database_url, DB_POOL_SIZE=str(scenario.pool_size), BENCH_PHASES=str(path)
    )
    port = free_port()
    args = ["service", str(port), str(scenario.delay_ms), str(scenario.tokens)]
    service = Process(args, env)
    try:
        await wait_listening(port, service)
        warm = Scenario(**{**scenario.__dict__, "turns": min(50, scenario.turns)})
        await drive(warm, port, service, None)
        skip = len(await _records(service, path))
        result = await drive(scenario, port, service, database_url)
        records = (await _records(service, path))[skip:]
    finally:
        service.stop()
    report(records)
    print(
        f"  the client's time to start: p50 / p99 {result['start_p50_ms']} /"
        f" {result['start_p99_ms']} ms ({result['errors']} errors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="b30")
    parser.add_argument("--turns", type=int, default=0, help="default: the scenario's")
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    if args.turns:
        scenario = Scenario(**{**scenario.__dict__, "turns": args.turns})
    asyncio.run(measure(measuring_database("phases"), scenario))


if __name__ == "__main__":
    main()

"""The event log's ceiling on this machine: how many events a second one instance appends while
its followers read them, for the PostgreSQL log and the Redis Streams log, side by side.

One process plays one instance. `runs` runs each make one text event every 20 ms (50 tokens a
second, a fast model); the writer gathers what came in each 20 ms, from every run, into one
append (the registry's batching); one follower per run reads its run through the log's own
`read`, waking as the followers of another instance's run do (PostgreSQL: LISTEN/NOTIFY, then
a page of `run_events`; Redis: the log's shared blocking read). A step keeps pace when its
batches keep within their window (the median append takes at most the 20 ms the writer
gathers for), its followers get at least 97 % of what was made while it lasted, and the p99
lag, from an event's making to its follower having it (after the step's first half second,
when all its runs start at once), stays within 250 ms; a step that does
not is taken once more (`--tries`), the better try counting. The number of runs doubles until
a step does not keep pace, then one step halfway between; the ceiling is the highest events a
second of a step that kept pace. Each step also reports the CPU a thousand events took: this
process's (making, appending, following) and the server's (Redis: its own counters;
PostgreSQL: the backends of the measuring database, read from /proc; the WAL writer and
checkpointer are not in it), and where both backends kept pace at the same step, the ratio of
their CPU per event.

    python -m tools.log_ceiling [--seconds 4] [--cluster] [--backend postgres --backend redis]
        [--output bench-log-ceiling.json]

PostgreSQL is DATABASE_URL or an embedded server (as `make bench` has it); Redis is a server of
the tool's own on a free port (tests/redis_servers.py). Figures are of this machine at this
moment: compare the backends within one run (the ratio), not with another day's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import text

from app.db.gate import Priority
from app.db.notifications import Listener
from app.db.uow import Database
from app.events import LoggedEvent
from app.runs.live import BATCH_BYTES
from app.runs.log.postgres import PostgresEventLog
from app.runs.log.redis_streams import redis_streams_log
from tests.redis_servers import RedisCluster, redis_cluster, redis_server
from tools.ceiling_steps import WINDOW, Step, best, cpu_over_postgres, print_ceilings, ratios
from tools.server_cpu import BACKENDS_QUERY, BackendsCpu, redis_cpu_seconds
from tools.servers import measuring_database

SETTLE_SECONDS = 0.5
READ_LIMIT = 500
WAIT = 2.0

Append = Callable[[list[tuple[str, LoggedEvent]]], Awaitable[None]]
Read = Callable[[str, int], Awaitable[list[LoggedEvent]]]


Prepare = Callable[[list[str]], Awaitable[None]]
ServerCpu = Callable[[], Awaitable[float | None]]
"""The CPU seconds the log's server has spent so far (None: not readable from here)."""


async def _nothing_to_prepare(runs: list[str]) -> None:
    return None


async def _unknown_cpu() -> float | None:
    return None


async def one_step(
    runs: int,
    seconds: float,
    append: Append,
    read: Read,
    prepare: Prepare = _nothing_to_prepare,
    server_cpu: ServerCpu = _unknown_cpu,
) -> Step:
    """`runs` runs making events for `seconds`, appended in 20 ms batches, each followed."""
    step = Step(runs, seconds=seconds)
    run_ids = [str(uuid.uuid4()) for _ in range(runs)]
    await prepare(run_ids)
    cpu_before, server_before = time.process_time(), await server_cpu()
    made_at: dict[int, float] = {}  # every run makes its seq n in the same window
    pending: list[tuple[str, LoggedEvent]] = []
    done = anyio.Event()

    async def make() -> None:
        seq, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            seq += 1
            made_at[seq] = time.perf_counter()
            event = LoggedEvent(seq, f'{{"type":"text","content":" token{seq % 97}","seq":{seq}}}')
            pending.extend((run, event) for run in run_ids)
            step.made += runs
            await anyio.sleep(max(0.0, began + seq * WINDOW - time.perf_counter()))
        done.set()

    async def write() -> None:
        nonlocal pending
        while not (done.is_set() and not pending):
            await anyio.sleep(WINDOW)
            batch, pending = pending, []
            if batch:
                began = time.perf_counter()
                await append(batch)
                step.writes.append(time.perf_counter() - began)

    # Every run of a step starts in the same instant, as no service's runs do: each follower's
    # first read, and (Redis) a redial of the shared blocking read for each new stream, all at
    # once. The lag is of what follows, the steady state a ceiling is about.
    settled = int(SETTLE_SECONDS / WINDOW)

    async def follow(run: str) -> None:
        last = 0
        while not done.is_set() or last < len(made_at):
            events = await read(run, last)
            now = time.perf_counter()
            for event in events:
                if event.seq > settled:
                    step.lags.append(now - made_at[event.seq])
            step.read += len(events)
            if events:
                last = events[-1].seq

    with anyio.move_on_after(seconds + 10):  # a step that fell far behind ends all the same
        async with anyio.create_task_group() as group:
            for run in run_ids:
                group.start_soon(follow, run)
            group.start_soon(make)
            group.start_soon(write)
    step.cpu_here = time.process_time() - cpu_before
    server_after = await server_cpu()
    if server_before is not None and server_after is not None:
        step.cpu_server = server_after - server_before
    return step


@dataclass(frozen=True)
class Plan:
    """How the runs are raised: steps of `seconds`, from `start` runs, doubled up to
    `max_runs`, each taken up to `tries` times."""

    seconds: float = 4.0
    start: int = 10
    tries: int = 2
    max_runs: int = 20_000


async def ceiling(
    backend: str,
    plan: Plan,
    append: Append,
    read: Read,
    prepare: Prepare = _nothing_to_prepare,
    server_cpu: ServerCpu = _unknown_cpu,
) -> list[Step]:
    step_of = partial(one_step, append=append, read=read, prepare=prepare, server_cpu=server_cpu)
    seconds, tries, max_runs = plan.seconds, plan.tries, plan.max_runs
    await step_of(plan.start, 1.0)  # warm up: connections, caches, the script

    async def measure(runs: int) -> Step:
        """A step taken up to `tries` times until it keeps pace: the machine's other load
        only ever slows a step, so the better try is the nearer to what the log does."""
        tried: list[Step] = []
        for _ in range(tries):
            tried.append(await step_of(runs, seconds))
            print(tried[-1].line(backend), flush=True)
            if tried[-1].kept_pace:
                break
        return min(tried, key=lambda step: (not step.kept_pace, step.p99_lag))

    steps: list[Step] = []
    runs = plan.start
    while True:
        step = await measure(runs)
        steps.append(step)
        if not step.kept_pace or runs * 2 > max_runs:
            break
        runs *= 2
    if len(steps) > 1 and not steps[-1].kept_pace:
        runs = (steps[-2].runs + steps[-1].runs) // 2
        steps.append(await measure(runs))
    return steps


async def postgres(database_url: str, plan: Plan) -> list[Step]:
    """The PostgreSQL log as the service builds it: one LISTEN connection, the log's reads."""
    database = Database(database_url, pool_size=20)
    listener = Listener(database.engine)
    log = PostgresEventLog(database, listener)

    async def prepare(runs: list[str]) -> None:
        await _make_runs(database, runs)

    async def read(run: str, after: int) -> list[LoggedEvent]:
        return await log.read(run, after, budget=BATCH_BYTES, wait=WAIT)

    backends = BackendsCpu()

    async def server_cpu() -> float | None:
        async with database.engine.connect() as connection:
            rows = await connection.execute(text(BACKENDS_QUERY))
            return backends.observe(row[0] for row in rows)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(listener.listen_forever)
            await listener.ready.wait()
            await server_cpu()  # what the backends did before is not the log's
            steps = await ceiling("postgres", plan, log.append, read, prepare, server_cpu)
            group.cancel_scope.cancel()
        return steps
    finally:
        await database.dispose()


async def _make_runs(database: Database, runs: list[str]) -> None:
    """The rows `run_events` refers to: a conversation and an active run for each run."""
    async with database.unit_of_work(Priority.END) as uow:
        connection: Any = uow.connection
        await connection.execute(
            text("""
            WITH made AS (
                INSERT INTO conversations (user_id, title)
                SELECT 'log-ceiling', r FROM unnest(CAST(:runs AS text[])) r RETURNING id, title
            )
            INSERT INTO runs (id, user_id, conversation_id, instance_id, user_message_id)
            SELECT CAST(title AS uuid), 'log-ceiling', id, 'log-ceiling', 0 FROM made
            """),
            {"runs": runs},
        )
        await uow.commit()


async def redis(cluster: bool, plan: Plan) -> list[Step]:
    with redis_cluster() if cluster else redis_server() as servers:

        async def server_cpu() -> float | None:
            nodes = servers.nodes if isinstance(servers, RedisCluster) else [servers]
            return redis_cpu_seconds(nodes)

        async with AsyncExitStack() as stack:
            log = await stack.enter_async_context(
                redis_streams_log(servers.url, cluster=cluster, retention_seconds=600)
            )
            async with anyio.create_task_group() as group:
                group.start_soon(log.serve)

                async def read(run: str, after: int) -> list[LoggedEvent]:
                    return await log.read(run, after, budget=BATCH_BYTES, wait=WAIT)

                name = "redis cluster" if cluster else "redis"
                steps = await ceiling(name, plan, log.append, read, server_cpu=server_cpu)
                group.cancel_scope.cancel()
            return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each step lasts")
    parser.add_argument("--start", type=int, default=10, help="runs in the first step")
    parser.add_argument("--tries", type=int, default=2, help="times a step is taken at most")
    parser.add_argument("--max-runs", type=int, default=20_000, help="runs a step has at most")
    parser.add_argument("--backend", action="append", choices=["postgres", "redis"])
    parser.add_argument("--cluster", action="store_true", help="a three-master cluster too")
    parser.add_argument("--output", help="write the ceilings and every step as JSON here")
    args = parser.parse_args()
    backends = args.backend or ["postgres", "redis"]
    plan = Plan(args.seconds, args.start, args.tries, args.max_runs)
    steps: dict[str, list[Step]] = {}
    if "postgres" in backends:
        database_url = measuring_database("log-ceiling")
        steps["postgres"] = asyncio.run(postgres(database_url, plan))
    if "redis" in backends:
        steps["redis"] = asyncio.run(redis(False, plan))
        if args.cluster:
            steps["redis cluster"] = asyncio.run(redis(True, plan))
    results = {name: best(tried) for name, tried in steps.items()}
    print_ceilings(results)
    cpu_ratios = cpu_over_postgres(steps)
    for runs, ratio in cpu_ratios.items():
        print(f"  {runs} runs, both kept pace: PostgreSQL took {ratio:.1f}x Redis's CPU an event")
    if args.output:
        report = {
            "ceilings": {n: None if s is None else s.summary() for n, s in results.items()},
            "ratio_over_postgres": ratios(results),
            "postgres_cpu_over_redis_at_the_same_step": cpu_ratios,
            "steps": {name: [step.summary() for step in tried] for name, tried in steps.items()},
        }
        Path(args.output).write_text(json.dumps(report, indent=2))
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()

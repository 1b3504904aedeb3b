"""What each open stream holds in the service: tracemalloc and the collector's object counts,
at idle and with N paced streams open, compared (not timed, so it holds on a busy machine).

    python -m tools.stream_memory [--streams 200] [--top 25] [--frames 20]

The service runs as in `make bench` (uvicorn, uvloop, httptools, the stamping offline model,
a real PostgreSQL), with tracemalloc on from its start; the streams are the bench's (c) turns
(`add bench item N`, one tool call, a paced reply), scaled down. It prints the allocations
alive with the streams open and not at idle, per open stream, grouped by where they were made,
the object types that grew, and RSS over idle per stream (tracemalloc's own memory included,
so read RSS from `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import pickle
import random
import signal
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import uvloop

from app.agent import TodoAgent
from app.events import Text
from app.settings import Settings
from app.web.auth import issue_token
from tests.support import free_port
from tools.bench_server import StampingModel
from tools.load import Streams, one_turn
from tools.sdk_floor import MAX_TURNS, MemoryTasks, _turns
from tools.servers import SECRET, Process, measuring_database, server_environment, wait_listening

# After every stream (run) had its first text: a token or two more, then the snapshot.
SETTLE_S = 1.5


async def _snapshot(
    process: Process, path: str, number: int
) -> tuple[tracemalloc.Snapshot, Counter[str]]:
    os.kill(process.popen.pid, signal.SIGUSR1)
    target = Path(f"{path}.{number}")
    while not await asyncio.to_thread(target.exists):  # noqa: ASYNC110 (another process writes it)
        await asyncio.sleep(0.2)
    snapshot, types = pickle.loads(await asyncio.to_thread(target.read_bytes))
    return snapshot, types


async def measure(database_url: str, streams_wanted: int, top: int, frames: int) -> None:
    directory = tempfile.mkdtemp(prefix="stream-memory-")
    path = f"{directory}/snap"
    env = server_environment(
        database_url,
        DB_POOL_SIZE="10",
        BENCH_TRACEMALLOC=path,
        BENCH_TRACEMALLOC_FRAMES=str(frames),
    )
    port = free_port()
    # Paced slowly enough that every stream is open when the snapshot is taken.
    service = Process(["service", str(port), "1000", "60"], env)
    try:
        await wait_listening(port, service)
        settings = Settings(jwt_secret=SECRET)
        users = [f"memory-{n}-{random.getrandbits(32)}" for n in range(streams_wanted)]
        tokens = {user: issue_token(settings, user) for user in users}
        # Warm up: every code path once, so that what is built once is in the idle snapshot.
        warm = Streams()
        await asyncio.gather(*(one_turn(port, u, tokens[u], "add warm", warm) for u in users[:5]))
        idle, idle_types = await _snapshot(service, path, 0)
        idle_rss = service.rss()

        streams = Streams()

        failures: Counter[str] = Counter()

        async def client(user: str) -> None:
            await asyncio.sleep(random.uniform(0, 10.0))
            turn = await one_turn(port, user, tokens[user], "add bench item 1", streams)
            if not turn.ok:
                failures[turn.failure] += 1

        clients = asyncio.gather(*(client(user) for user in users))
        # Every stream past its tool call and a token or two into its reply, as the SDK alone
        # is measured (`measure_sdk`): a stream open is not yet a run past its set-up.
        while streams.texting < streams_wanted:
            await asyncio.sleep(0.1)
            if clients.done():
                raise RuntimeError(f"streams ended before all had text: {failures}")
        await asyncio.sleep(SETTLE_S)
        open_now = streams.open
        busy_rss = service.rss()
        busy, busy_types = await _snapshot(service, path, 1)
        report(idle, busy, idle_types, busy_types, open_now, top)
        print(
            f"\nRSS over idle: {(busy_rss - idle_rss) / open_now / 1024:.1f} KB per open stream"
            " (tracemalloc's own bookkeeping included)"
        )
        await clients
    finally:
        service.stop()


def report(
    idle: tracemalloc.Snapshot,
    busy: tracemalloc.Snapshot,
    idle_types: Counter[str],
    busy_types: Counter[str],
    streams: int,
    top: int,
) -> None:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    idle, busy = idle.filter_traces(ignore), busy.filter_traces(ignore)
    total = sum(s.size_diff for s in busy.compare_to(idle, "filename"))
    print(f"{streams} streams open: {total / streams / 1024:.1f} KB traced per open stream\n")
    print("by file (bytes per stream, allocations per stream):")
    for stat in busy.compare_to(idle, "filename")[:top]:
        name = stat.traceback[0].filename.split("site-packages/")[-1]
        print(f"  {stat.size_diff / streams:9.0f} B {stat.count_diff / streams:7.1f}  {name}")
    print("\nby line:")
    for stat in busy.compare_to(idle, "lineno")[:top]:
        frame = stat.traceback[0]
        name = frame.filename.split("site-packages/")[-1]
        where = f"{name}:{frame.lineno}"
        print(f"  {stat.size_diff / streams:9.0f} B {stat.count_diff / streams:7.1f}  {where}")
    print("\nby traceback (the deepest frames of ours or a library's, most recent last):")
    for stat in busy.compare_to(idle, "traceback")[:top]:
        print(f"  {stat.size_diff / streams:9.0f} B {stat.count_diff / streams:7.1f}")
        for frame in list(stat.traceback)[-6:]:
            name = frame.filename.split("site-packages/")[-1].split("/work/main/")[-1]
            print(f"        {name}:{frame.lineno}")
    print("\nby component (the most recent frame naming one):")
    components: Counter[str] = Counter()
    for stat in busy.compare_to(idle, "traceback"):
        components[_component(stat.traceback)] += stat.size_diff
    for name, size in components.most_common():
        print(f"  {size / streams / 1024:7.1f} KB  {name}")
    print("\nthe Agents SDK's and the model's part, by the innermost line of theirs:")
    print_lines(busy.compare_to(idle, "traceback"), streams, top)
    print("\nobjects per stream, by type (the collector's):")
    grown = Counter({k: busy_types[k] - idle_types.get(k, 0) for k in busy_types})
    for name, count in grown.most_common(top):
        print(f"  {count / streams:7.2f}  {name}")


_COMPONENTS = (
    ("sse_starlette", "sse-starlette (its task group per response)"),
    ("agents/", "the Agents SDK"),
    ("app/agent/offline", "the offline model"),
    ("tools/bench_server", "the offline model"),
    ("app/runs/", "app/runs (live run, registry, event log)"),
    ("app/chat.py", "app/chat.py (events' JSON, transcript)"),
    ("app/web/streaming.py", "app/web/streaming.py"),
    ("app/events.py", "app/events.py (the events' JSON, kept for resuming)"),
    ("app/", "app, elsewhere"),
    ("starlette/", "Starlette (middleware, routing)"),
    ("uvicorn/", "uvicorn (httptools protocol, the request's task)"),
    ("asyncpg/", "asyncpg"),
    ("sqlalchemy/", "SQLAlchemy"),
)


def print_lines(stats: list[tracemalloc.StatisticDiff], runs: int, top: int) -> None:
    """The SDK's and the model's allocations (by `_component`), each under the innermost line
    of the SDK or the model that made it: what holds the memory, in the SDK's own source."""
    lines: Counter[str] = Counter()
    for stat in stats:
        component = _component(stat.traceback)
        if component not in ("the Agents SDK", "the offline model"):
            continue
        for frame in reversed(list(stat.traceback)):
            if any(marker in frame.filename for marker in _SDK_MARKERS):
                name = frame.filename.split("site-packages/")[-1].split("/app/")[-1]
                lines[f"{name}:{frame.lineno}"] += stat.size_diff
                break
    for where, size in lines.most_common(top):
        print(f"  {size / runs:9.0f} B  {where}")


_SDK_MARKERS = ("agents/", "app/agent/offline", "tools/bench_server")


def _component(traceback: tracemalloc.Traceback) -> str:
    for frame in reversed(list(traceback)):
        for marker, name in _COMPONENTS:
            if marker in frame.filename:
                return name
    return "other"


async def measure_sdk(runs: int, top: int, frames: int) -> None:
    """The Agents SDK alone (the floor's runs: no HTTP, no database), `runs` paced runs open,
    snapshotted at the same point of their turn as the service's streams (`measure`)."""
    model = StampingModel(delay_ms=1000, tokens=60)
    await _turns(5, model, 5)  # warm up
    gc.collect()
    tracemalloc.start(frames)
    idle = tracemalloc.take_snapshot()
    agent = TodoAgent(model, max_turns=MAX_TURNS)
    texting = 0
    all_texting = asyncio.Event()

    async def run(number: int) -> None:
        nonlocal texting
        seen = False
        async for event in agent.answer((), f"add bench item {number}", MemoryTasks()).events():
            if isinstance(event, Text) and not seen:
                seen = True
                texting += 1
                if texting == runs:
                    all_texting.set()

    work = asyncio.gather(*(run(number) for number in range(runs)))
    # Under tracemalloc, 200 runs started together take many seconds of CPU to set up: a
    # fixed wait caught every run before its first model call.
    await all_texting.wait()
    await asyncio.sleep(SETTLE_S)
    gc.collect()
    busy = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = busy.filter_traces(ignore).compare_to(idle.filter_traces(ignore), "traceback")
    total = sum(stat.size_diff for stat in stats)
    print(
        f"the Agents SDK alone, {runs} paced runs open: {total / runs / 1024:.1f} KB traced per run"
    )
    components: Counter[str] = Counter()
    for stat in stats:
        components[_component(stat.traceback)] += stat.size_diff
    for name, size in components.most_common():
        print(f"  {size / runs / 1024:7.1f} KB  {name}")
    print("\nthe Agents SDK's and the model's part, by the innermost line of theirs:")
    print_lines(stats, runs, top)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--sdk", action="store_true", help="the Agents SDK alone, in-process")
    args = parser.parse_args()
    if args.sdk:
        uvloop.run(measure_sdk(args.streams, args.top, args.frames))
        return
    database_url = measuring_database("memory")
    asyncio.run(measure(database_url, args.streams, args.top, args.frames))


if __name__ == "__main__":
    main()

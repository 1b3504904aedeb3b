"""Where CPU per tool-using turn goes, `--concurrency` clients at once (as `make bench`'s a32:
no model delay): user and system CPU per turn and the garbage collector's CPU per turn, for the
service and the bare sse-starlette (each under uvicorn in a process of its own, as the bench
runs them) and for the Agents SDK alone (in a process of its own), with the service's
collector settings (`app.main`: start-up frozen, a young generation of
`YOUNG_GENERATION_THRESHOLD`), as the bench's limit runs it, and with Python's defaults.

    python -m tools.cpu_split [--turns 600] [--concurrency 32]
    python -m tools.cpu_split --against DIR [--other-first] [--turns 720]

CPU time, not instructions (`tools.instructions`): it moves with the machine's load; compare
the rows of one run. `--against` compares this checkout's service with another checkout's (DIR,
say the code before a change, with its own .venv or this one's packages): both run at once, and
are driven in turn, `BATCH` turns each, whose order alternates, each one's CPU counted over its
own batches only, so that both see the same moments of the machine's load. The server started
first has read up to a tenth higher in a run of one checkout against itself: run both orders
(`--other-first`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from tests.support import free_port
from tools.bench_server import StampingModel
from tools.load import one_turn
from tools.sdk_floor import _turns as sdk_turns
from tools.sdk_floor import collector
from tools.servers import (
    CLOCK_TICKS,
    SECRET,
    Process,
    measuring_database,
    server_environment,
    wait_listening,
)


def user_system(process: Process) -> tuple[float, float]:
    fields = Path(f"/proc/{process.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


async def drive(port: int, turns: int, concurrency: int) -> None:
    settings = Settings(jwt_secret=SECRET)
    users = [f"split-{n}-{time.time_ns()}" for n in range(concurrency)]
    tokens = {user: issue_token(settings, user) for user in users}
    numbers = iter(range(turns))

    async def client(user: str) -> None:
        await asyncio.sleep(random.uniform(0, 1.0))
        for number in numbers:
            turn = await one_turn(port, user, tokens[user], f"add bench item {number}")
            assert turn.ok, turn.failure

    await asyncio.gather(*(client(user) for user in users))


async def _collections(process: Process, path: str) -> dict[str, Any]:
    target = Path(f"{path}.{process.popen.pid}")
    await asyncio.to_thread(target.unlink, missing_ok=True)
    os.kill(process.popen.pid, signal.SIGUSR2)
    while not await asyncio.to_thread(target.exists):  # noqa: ASYNC110 (another process writes it)
        await asyncio.sleep(0.05)
    result: dict[str, Any] = json.loads(await asyncio.to_thread(target.read_text))
    return result


async def server(kind: str, database_url: str, turns: int, concurrency: int) -> dict[str, Any]:
    """A server (`service` or `reference`) under `concurrency` clients, after a warm-up."""
    path = f"{tempfile.mkdtemp(prefix='cpu-split-')}/gc"
    env = server_environment(database_url, DB_POOL_SIZE="10", BENCH_GC_TIMES=path)
    port = free_port()
    process = Process([kind, str(port), "0", "0"], env)
    try:
        await wait_listening(port, process)
        await drive(port, 50, concurrency)
        before, (user, system) = await _collections(process, path), user_system(process)
        await drive(port, turns, concurrency)
        after, (user_after, system_after) = await _collections(process, path), user_system(process)
    finally:
        process.stop()
    return _row(
        user_after - user,
        system_after - system,
        sum(after["cpu"]) - sum(before["cpu"]),
        [b - a for a, b in zip(before["count"], after["count"], strict=True)],
        turns,
    )


BATCH = 60


async def against(
    other: Path, database_url: str, turns: int, concurrency: int, *, other_first: bool
) -> dict[str, Any]:
    """This checkout's service and `other`'s, driven in turn (see the module's docstring)."""
    roots = {"this": PROJECT_ROOT, "other": other}
    names = ["other", "this"] if other_first else ["this", "other"]
    ports = {name: free_port() for name in names}
    env = server_environment(database_url, DB_POOL_SIZE="10")
    processes: dict[str, Process] = {}
    try:
        for name in names:
            arguments = ["service", str(ports[name]), "0", "0"]
            processes[name] = Process(arguments, env, root=roots[name])
        for name in names:
            await wait_listening(ports[name], processes[name])
            await drive(ports[name], 50, concurrency)
        used = dict.fromkeys(names, (0.0, 0.0))
        for batch in range(max(1, turns // BATCH)):
            for name in names if batch % 2 == 0 else names[::-1]:
                user, system = user_system(processes[name])
                await drive(ports[name], BATCH, concurrency)
                user_after, system_after = user_system(processes[name])
                before = used[name]
                used[name] = (before[0] + user_after - user, before[1] + system_after - system)
    finally:
        for process in processes.values():
            process.stop()
    done = max(1, turns // BATCH) * BATCH
    rows = {name: _row(*used[name], 0.0, [0, 0, 0], done) for name in names}
    for row in rows.values():
        del row["collector_ms"], row["collections"]
    return {**rows, "this_over_other": round(rows["this"]["cpu_ms"] / rows["other"]["cpu_ms"], 3)}


def sdk_alone(turns: int, concurrency: int, *, service_collector: bool) -> dict[str, Any]:
    """The bench's limit's SDK part (`tools.sdk_floor`), in this process."""
    model = StampingModel(delay_ms=0, tokens=0)
    uvloop.run(sdk_turns(50, model, min(concurrency, 50)))
    cpu, count, began = 0.0, [0, 0, 0], 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal cpu, began
        if phase == "start":
            began = time.thread_time()
            return
        cpu += time.thread_time() - began
        count[info["generation"]] += 1

    gc.collect()
    with collector(default=not service_collector):
        gc.callbacks.append(timed)
        try:
            before = os.times()
            uvloop.run(sdk_turns(turns, model, concurrency))
            after = os.times()
        finally:
            gc.callbacks.remove(timed)
    return _row(after.user - before.user, after.system - before.system, cpu, count, turns)


def _row(
    user: float, system: float, collector: float, count: list[int], turns: int
) -> dict[str, Any]:
    return {
        "user_ms": round(user / turns * 1000, 2),
        "system_ms": round(system / turns * 1000, 2),
        "cpu_ms": round((user + system) / turns * 1000, 2),
        "collector_ms": round(collector / turns * 1000, 2),
        "collections": count,
    }


def _sdk_apart(args: argparse.Namespace, collector: str) -> dict[str, Any]:
    """`sdk_alone` in a process of its own: what one run left in the heap moved the next."""
    command = [sys.executable, "-m", "tools.cpu_split", f"--sdk-child={collector}"]
    command += [f"--turns={args.turns}", f"--concurrency={args.concurrency}"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--against", type=Path, help="another checkout, its service beside ours")
    parser.add_argument("--other-first", action="store_true", help="start the other's first")
    parser.add_argument("--sdk-child", choices=("default", "service"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_child:
        wanted = args.sdk_child == "service"
        print(json.dumps(sdk_alone(args.turns, args.concurrency, service_collector=wanted)))
        return
    database_url = measuring_database("cpu-split")
    if args.against:
        compared = asyncio.run(
            against(
                args.against.resolve(),
                database_url,
                args.turns,
                args.concurrency,
                other_first=args.other_first,
            )
        )
        print(f"CPU per tool-using turn, {args.concurrency} at once, in turn with {args.against}:")
        print(f"  {json.dumps(compared)}")
        return
    rows = {
        "service": asyncio.run(server("service", database_url, args.turns, args.concurrency)),
        "bare sse-starlette": asyncio.run(
            server("reference", database_url, args.turns, args.concurrency)
        ),
        "the SDK alone, default collector": _sdk_apart(args, "default"),
        "the SDK alone, the service's collector": _sdk_apart(args, "service"),
    }
    print(f"CPU per tool-using turn, {args.concurrency} at once ({args.turns} turns each):")
    for name, row in rows.items():
        print(f"  {name}: {json.dumps(row)}")


if __name__ == "__main__":
    main()

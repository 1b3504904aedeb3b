"""Where CPU per tool-using turn goes, `--concurrency` clients at once (as `make bench`'s a32:
no model delay): user and system CPU per turn and the garbage collector's CPU per turn, for the
service and the bare sse-starlette (each under uvicorn in a process of its own, as the bench
runs them) and for the Agents SDK alone (in this process), with Python's default collector
settings, as the bench's limit runs it, and with the service's (`app.main`: start-up frozen,
a young generation of `YOUNG_GENERATION_THRESHOLD`).

    python -m tools.cpu_split [--turns 600] [--concurrency 32]

CPU time, not instructions (`tools.instructions`): it moves with the machine's load; compare
the rows of one run.
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
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import uvloop

from app.main import garbage_collection_for_serving
from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from tests.support import free_port
from tools.bench_server import StampingModel
from tools.load import one_turn
from tools.sdk_floor import _turns as sdk_turns
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
    with garbage_collection_for_serving() if service_collector else nullcontext():
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
    parser.add_argument("--sdk-child", choices=("default", "service"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_child:
        wanted = args.sdk_child == "service"
        print(json.dumps(sdk_alone(args.turns, args.concurrency, service_collector=wanted)))
        return
    database_url = measuring_database("cpu-split")
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

"""The Agents SDK floor: the benchmark's turns run by the SDK alone, in a bare loop, with no
HTTP and no database (the tools keep tasks in memory). The agent and the model are the very
ones the benchmarked service runs: `TodoAgent` (its instructions, tools and settings) and the
benchmark's stamping offline model.

Under the service's own collector settings (`app.main.garbage_collection_for_serving`) unless
told otherwise (`--default-collector`): the limit is the stack with nothing of ours, and a
collector setting is not work of ours but the interpreter's configuration, which makes the SDK's
own objects cheaper alone as in the service. Under Python's defaults the floor spends about a
third of its CPU in full collections of its whole heap, and the ratio would credit the service
with that setting rather than with less work (docs/performance.md, "Which collector the limit
runs").

- `measure()`: the tool-using turn, one at a time, for CPU per turn (scenario d);
- `measure_paced()`: the paced turns of a scenario, as many at once as it has clients, each
  client's first turn at a random moment of the scenario's `spread_s` (as `tools.load` drives
  the service), for CPU per turn, the share of a core they need, and memory per run in progress
  (peak RSS over the baseline, divided by the most runs in progress at once, as the service's
  is divided by the most streams open at once).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import uvloop
from agents import Model

from app.agent import TodoAgent
from app.domain import Task, TaskChanges, TaskFilter
from app.main import garbage_collection_for_serving
from app.settings import PROJECT_ROOT
from tests.support import process_memory
from tools.bench_server import StampingModel

MAX_TURNS = 10


class MemoryTasks:
    def __init__(self) -> None:
        self._tasks: dict[int, Task] = {}

    async def add(self, title: str, description: str | None = None) -> Task:
        now = datetime.now(UTC)
        task = Task(len(self._tasks) + 1, "floor", title, description, False, now, now)
        self._tasks[task.id] = task
        return task

    async def list(
        self, status: TaskFilter = TaskFilter.ALL, *, limit: int = 1000, after_id: int = 0
    ) -> list[Task]:
        return [task for task in self._tasks.values() if task.id > after_id][:limit]

    async def update(self, task_id: int, changes: TaskChanges) -> Task:
        return self._tasks[task_id]

    async def delete(self, task_id: int) -> Task:
        return self._tasks.pop(task_id)


class InProgress:
    """How many runs are in progress at once, and the most there were."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


async def _turns(
    count: int,
    model: Model,
    concurrency: int = 1,
    *,
    spread_s: float = 0.0,
    runs: InProgress | None = None,
) -> None:
    agent = TodoAgent(model, max_turns=MAX_TURNS)
    numbers = iter(range(count))
    runs = runs or InProgress()

    async def client() -> None:
        if spread_s:
            await asyncio.sleep(random.uniform(0, spread_s))
        tasks = MemoryTasks()
        for number in numbers:
            runs.now += 1
            runs.peak = max(runs.peak, runs.now)
            try:
                async for _ in agent.answer((), f"add bench item {number}", tasks).events():
                    pass
            finally:
                runs.now -= 1

    await asyncio.gather(*(client() for _ in range(concurrency)))


def collector(*, default: bool = False) -> AbstractContextManager[None]:
    """The floor's collector: the service's settings, entered before the warm-up as the service
    enters them before it serves; Python's own with `default`."""
    return nullcontext() if default else garbage_collection_for_serving()


def measure(count: int) -> dict[str, Any]:
    """Tool-using turns with no model delay, one at a time, as in scenario (a)."""
    model = StampingModel(delay_ms=0, tokens=0)
    with collector():
        uvloop.run(_turns(10, model))  # warm up
        began = time.process_time()
        uvloop.run(_turns(count, model))
        cpu = time.process_time() - began
    return {"turns": count, "cpu_ms_per_turn": round(cpu / count * 1000, 2)}


def measure_paced(
    model: Model,
    *,
    concurrency: int,
    turns: int,
    spread_s: float = 0.0,
    default_collector: bool = False,
) -> dict[str, Any]:
    """`turns` paced turns, `concurrency` at a time, under uvloop as the service runs, the
    clients arriving over `spread_s`, under the service's collector settings unless
    `default_collector`."""
    with collector(default=default_collector):
        return _measure_paced(model, concurrency=concurrency, turns=turns, spread_s=spread_s) | {
            "collector": "default" if default_collector else "service"
        }


def _measure_paced(
    model: Model, *, concurrency: int, turns: int, spread_s: float
) -> dict[str, Any]:
    # Warmed up as the bench warms the service up (50 turns): a warm-up of `concurrency` runs
    # at once left their memory in the baseline, and gave 5.6 KB per run for 2,000 at once
    # where tracemalloc counts 44 KB (tools/stream_memory.py --sdk).
    warm = min(concurrency, 50)
    uvloop.run(_turns(warm, model, warm))
    gc.collect()
    baseline = process_memory("self")
    peak = baseline
    runs = InProgress()

    async def sampled() -> None:
        nonlocal peak
        work = asyncio.ensure_future(
            _turns(turns, model, concurrency, spread_s=spread_s, runs=runs)
        )
        while not work.done():
            peak = max(peak, process_memory("self"))
            await asyncio.sleep(0.05)
        await work

    cpu_before, wall_before = time.process_time(), time.perf_counter()
    uvloop.run(sampled())
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    return {
        "turns": turns,
        "concurrency": concurrency,
        "spread_s": spread_s,
        "cpu_ms_per_turn": round(cpu / turns * 1000, 2),
        "cpu_share": round(cpu / wall, 2),
        "runs_in_progress_max": runs.peak,
        "rss_per_run_kb": round((peak - baseline) / max(runs.peak, 1) / 1024, 1),
    }


def measure_paced_apart(
    *,
    delay_ms: int,
    tokens: int,
    concurrency: int,
    turns: int,
    spread_s: float = 0.0,
    default_collector: bool = False,
) -> dict[str, Any]:
    """`measure_paced` in a process of its own: in the load generator's process, the runs
    reuse (or not) the heap its clients freed, so RSS per run depended on what ran before."""
    args = [f"--delay-ms={delay_ms}", f"--tokens={tokens}", f"--concurrency={concurrency}"]
    args += [f"--spread-s={spread_s}"] + (["--default-collector"] if default_collector else [])
    done = subprocess.run(
        [sys.executable, "-m", "tools.sdk_floor", *args, f"--turns={turns}"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--turns", type=int, required=True)
    parser.add_argument(
        "--spread-s", type=float, default=0.0, help="clients arrive over this many seconds"
    )
    parser.add_argument(
        "--default-collector",
        action="store_true",
        help="Python's default collector settings, not the service's (app.main)",
    )
    args = parser.parse_args()
    model = StampingModel(delay_ms=args.delay_ms, tokens=args.tokens)
    floor = measure_paced(
        model,
        concurrency=args.concurrency,
        turns=args.turns,
        spread_s=args.spread_s,
        default_collector=args.default_collector,
    )
    print(json.dumps(floor))


if __name__ == "__main__":
    main()

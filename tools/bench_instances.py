"""Two instances on one PostgreSQL, without and with Redis: how many runs stream at once at the
model's pace while the p99 gap between two tokens at every client stays under 50 ms.

    python -m tools.bench_instances [--backend postgres --backend redis] [--output FILE]

Two service processes (`tools.bench_server`: the offline model, each text token stamped with
the wall-clock time it was made, paced `--delay-ms` apart: 20 ms is 50 tokens a second) share
one PostgreSQL (DATABASE_URL, or an embedded one of the tool's own). The clients are split
across both: client i sends its turns to instance i mod 2 and reads the run's own stream
there (from the run's memory), and, for `--followed` of the runs, a second client follows the
run on the other instance (GET /runs/{id}/events: through the event log, the case it exists
for). The gap between tokens (inter-token latency) is from a client having one token to having
the next: 20 ms when the stream keeps the model's pace, longer when a token is held up. Beside
it, each token's lag, from its making to a client having it. A follower's tokens count from the
moment its stream opened (what it catches up on is not live). A step of N clients keeps pace
when every turn and every follower ends with `done`, every follower has every token, and the
p99 gap over all clients is under `--gap-ms`. A step that does not is taken once more
(`--tries`): other processes' load only adds delay, so the better try counts, for both
configurations alike. N doubles from `--start` until a step does not keep pace, then two
steps of bisection; the figure is the largest N that kept pace.

With `redis`, the instances get REDIS_URL of a redis-server of the tool's own on a free port
(tests/redis_servers.py); the tool checks that the service did write its streams there. Each
step also reports the instances' CPU per thousand tokens and PostgreSQL's commits and row
writes a second (pg_stat_database), the figures docs/redis.md's capacity sketch is built on.
Figures are of this machine at this moment: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from app.settings import Settings
from app.web.auth import issue_token
from tests.redis_servers import RedisServer, redis_server
from tests.support import free_port
from tools.load import percentile
from tools.server_cpu import BACKENDS_QUERY, BackendsCpu, redis_cpu_seconds
from tools.servers import SECRET, Process, measuring_database, wait_listening
from tools.stream_client import Stream, turn


@dataclass(frozen=True)
class Config:
    delay_ms: int = 20
    tokens: int = 150
    turns: int = 2
    followed: float = 1.0
    gap_ms: float = 50.0
    start: int = 8
    max_runs: int = 1024
    bisections: int = 2
    tries: int = 2
    pool_size: int = 10

    @property
    def run_seconds(self) -> float:
        return self.delay_ms * self.tokens / 1000


class Counters:
    """What a step cost: the instances' CPU, Redis's, PostgreSQL's (the measuring database's
    backends) and its commits and row writes, and this process's CPU."""

    def __init__(self, instances: list[Process], redis: RedisServer | None, database: str):
        self.instances, self.redis = instances, redis
        self.database = database.replace("postgresql+asyncpg", "postgresql")
        self.backends = BackendsCpu()

    async def read(self) -> dict[str, float]:
        connection = await asyncpg.connect(self.database)
        try:
            row = await connection.fetchrow(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows"
                " FROM pg_stat_database WHERE datname = current_database()"
            )
            pg_cpu = self.backends.observe(r["pid"] for r in await connection.fetch(BACKENDS_QUERY))
        finally:
            await connection.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "wall": time.perf_counter(),
            "instances_cpu": sum(instance.cpu_seconds() for instance in self.instances),
            "client_cpu": usage.ru_utime + usage.ru_stime,
            "pg_commits": float(row["xact_commit"]),
            "pg_rows": float(row["rows"]),
            "pg_cpu": -1.0 if pg_cpu is None else pg_cpu,
            "redis_cpu": 0.0 if self.redis is None else redis_cpu_seconds([self.redis]),
        }


async def one_step(
    runs: int, config: Config, ports: tuple[int, int], counters: Counters
) -> dict[str, Any]:
    """`runs` clients, each sending `config.turns` turns back to back, their first turns
    spread over one run's length, as users arrive."""
    stamp = time.time_ns()
    users = [f"instances-{runs}-{n}-{stamp}" for n in range(runs)]
    settings = Settings(jwt_secret=SECRET)
    results: list[tuple[Stream, Stream | None]] = []
    open_now = peak = 0

    async def client(n: int, user: str) -> None:
        nonlocal open_now, peak
        token = issue_token(settings, user)
        pair = (ports[n % 2], ports[(n + 1) % 2])
        await asyncio.sleep(random.uniform(0, config.run_seconds))
        for number in range(config.turns):
            followed = (n * config.turns + number) % 100 < config.followed * 100
            open_now += 1
            peak = max(peak, open_now)
            try:
                results.append(await turn(pair, user, token, f"add item {number}", followed))
            finally:
                open_now -= 1

    before = await counters.read()
    await asyncio.gather(*(client(n, user) for n, user in enumerate(users)))
    after = await counters.read()
    spent = {key: after[key] - before[key] for key in after}
    own = [pair[0] for pair in results]
    others = [pair[1] for pair in results if pair[1] is not None]
    lags = [lag for stream in own + others for lag in stream.lags]
    gaps = [gap for stream in own + others for gap in stream.gaps]
    failures = [s.failure for s in own + others if not s.ok]
    short = sum(1 for (a, b) in results if b is not None and b.ok and b.tokens < a.tokens)
    made = sum(stream.tokens for stream in own)
    gap = percentile(gaps, 0.99)
    return {
        "runs": runs,
        "open_at_once_max": peak,
        "turns": len(own),
        "followed": len(others),
        "failures": len(failures),
        "failure_kinds": sorted(set(failures)),
        "followers_missing_tokens": short,
        "lag_p50_ms": _ms(percentile(lags, 0.5)),
        "lag_p99_ms": _ms(percentile(lags, 0.99)),
        "own_lag_p99_ms": _ms(percentile([x for s in own for x in s.lags], 0.99)),
        "follower_lag_p99_ms": _ms(percentile([x for s in others for x in s.lags], 0.99)),
        "gap_p99_ms": _ms(gap),
        "own_gap_p99_ms": _ms(percentile([x for s in own for x in s.gaps], 0.99)),
        "follower_gap_p99_ms": _ms(percentile([x for s in others for x in s.gaps], 0.99)),
        "kept_pace": not failures and not short and gap is not None and gap * 1000 < config.gap_ms,
        "tokens_made": made,
        "instances_cpu_ms_per_1000_tokens": round(spent["instances_cpu"] / max(made, 1) * 1e6, 1),
        "instances_cpu_share": round(spent["instances_cpu"] / spent["wall"], 2),
        "redis_cpu_share": round(spent["redis_cpu"] / spent["wall"], 3),
        "client_cpu_share": round(spent["client_cpu"] / spent["wall"], 2),
        "pg_commits_per_s": round(spent["pg_commits"] / spent["wall"], 1),
        "pg_rows_per_s": round(spent["pg_rows"] / spent["wall"], 1),
        "seconds": round(spent["wall"], 1),
        # Per token made, the figures a capacity sketch scales by streams x tokens a second.
        "redis_cpu_ms_per_1000_tokens": round(spent["redis_cpu"] / max(made, 1) * 1e6, 1),
        "pg_cpu_ms_per_1000_tokens": None
        if before["pg_cpu"] < 0 or after["pg_cpu"] < 0
        else round(spent["pg_cpu"] / max(made, 1) * 1e6, 1),
        "pg_commits_per_1000_tokens": round(spent["pg_commits"] / max(made, 1) * 1000, 1),
        "pg_rows_per_1000_tokens": round(spent["pg_rows"] / max(made, 1) * 1000, 1),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def line(backend: str, step: dict[str, Any]) -> str:
    return (
        f"{backend:>9} {step['runs']:>5} runs ({step['open_at_once_max']} open at once): "
        f"p99 gap {step['gap_p99_ms']} ms (own {step['own_gap_p99_ms']}, follower "
        f"{step['follower_gap_p99_ms']}), p99 lag {step['lag_p99_ms']} ms (own "
        f"{step['own_lag_p99_ms']}, follower {step['follower_lag_p99_ms']}), "
        f"{step['failures']} failed {step['failure_kinds'] or ''}, instances "
        f"{step['instances_cpu_ms_per_1000_tokens']} ms CPU/1k tokens (PostgreSQL "
        f"{step['pg_cpu_ms_per_1000_tokens']}, Redis {step['redis_cpu_ms_per_1000_tokens']}), "
        "PostgreSQL "
        f"{step['pg_commits_per_s']:,.0f} commits/s {step['pg_rows_per_s']:,.0f} rows/s: "
        f"{'kept pace' if step['kept_pace'] else 'fell behind'}"
    )


class Ramp:
    """Which step to measure next: N doubles from `start` until a step falls behind, then
    `bisections` steps halve the interval between the last that kept pace and the first that
    fell behind."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.kept, self.behind = 0, 0
        self.bisected = 0
        self.next: int | None = config.start

    def record(self, runs: int, kept_pace: bool) -> None:
        if kept_pace:
            self.kept = max(self.kept, runs)
        else:
            self.behind = runs if not self.behind else min(self.behind, runs)
        if not self.behind:
            doubled = runs * 2
            self.next = doubled if doubled <= self.config.max_runs else None
            return
        middle = (self.kept + self.behind) // 2
        if self.bisected >= self.config.bisections or middle in (self.kept, self.behind):
            self.next = None
        else:
            self.bisected += 1
            self.next = middle


@contextmanager
def instances(
    config: Config, database_url: str, redis_url: str | None
) -> Iterator[list[tuple[Process, int]]]:
    """Two service processes on free ports, with their ports."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "APP_ENV": "test",
        "DB_POOL_SIZE": str(config.pool_size),
    }
    for name in ("EVENT_LOG", "REDIS_URL", "REDIS_CLUSTER"):
        env.pop(name, None)
    if redis_url is None:
        env["EVENT_LOG"] = "postgres"
    else:
        env["REDIS_URL"] = redis_url  # the Redis log, as a deployment with the add-on has it
    started: list[tuple[Process, int]] = []
    try:
        for _ in range(2):
            port = free_port()
            arguments = ["service", str(port), str(config.delay_ms), str(config.tokens)]
            started.append((Process(arguments, env), port))
        yield started
    finally:
        for process, _ in started:
            process.stop()


async def best_of(tries: int, runs: int, config: Config, pair: Pair) -> dict[str, Any]:
    """A step taken up to `tries` times until it keeps pace; the try with the smallest p99 gap.
    Another process's load only ever adds delay, so the best try is the nearest to what the
    service does on its own; both configurations get the same number of tries."""
    taken: list[dict[str, Any]] = []
    for number in range(tries):
        step = await one_step(runs, config, pair.ports, pair.counters)
        step["try"] = number + 1
        print(line(pair.backend, step), flush=True)
        taken.append(step)
        if step["kept_pace"]:
            break
    return min(taken, key=lambda step: (not step["kept_pace"], step["gap_p99_ms"] or 1e9))


@dataclass
class Pair:
    """Two instances of one configuration, their clients' steps, and what decides the next."""

    backend: str
    ports: tuple[int, int]
    counters: Counters
    ramp: Ramp
    steps: list[dict[str, Any]] = field(default_factory=list)


async def measure(
    backends: list[str], config: Config, database_url: str, redis: RedisServer | None
) -> dict[str, Any]:
    """Both configurations' instances started at once, and their steps taken in turn, so that
    the machine's load from one minute to the next falls on both alike."""
    with ExitStack() as stack:
        pairs = []
        for backend in backends:
            server = redis if backend == "redis" else None
            started = stack.enter_context(
                instances(config, database_url, None if server is None else server.url)
            )
            for process, port in started:
                await wait_listening(port, process)
            counters = Counters([process for process, _ in started], server, database_url)
            pairs.append(Pair(backend, (started[0][1], started[1][1]), counters, Ramp(config)))
        warm_up = Config(**{**config.__dict__, "turns": 1})
        for pair in pairs:
            await one_step(2, warm_up, pair.ports, pair.counters)
        while any(pair.ramp.next for pair in pairs):
            for pair in pairs:
                runs = pair.ramp.next
                if runs:
                    step = await best_of(config.tries, runs, config, pair)
                    pair.steps.append(step)
                    pair.ramp.record(runs, bool(step["kept_pace"]))
    results: dict[str, Any] = {}
    for pair in pairs:
        results[pair.backend] = {"most_runs_kept_pace": pair.ramp.kept, "steps": pair.steps}
    if redis is not None and "redis" in results:
        # Without the wiring the service would ignore REDIS_URL: a figure of PostgreSQL.
        results["redis"]["streams_in_redis"] = int(redis.cli("DBSIZE") or 0)
        results["redis"]["used_redis"] = results["redis"]["streams_in_redis"] > 0
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", action="append", choices=["postgres", "redis"])
    parser.add_argument("--output", help="write every step as JSON here")
    defaults = Config()
    for name, value in defaults.__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    config = Config(**{name: getattr(args, name) for name in defaults.__dict__})
    database_url = measuring_database("instances")
    backends = args.backend or ["postgres", "redis"]
    results: dict[str, Any] = {"config": config.__dict__}
    with redis_server() if "redis" in backends else nullcontext() as redis:
        results.update(uvloop.run(measure(backends, config, database_url, redis)))
    print_summary(results, config)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"written to {args.output}")


def print_summary(results: dict[str, Any], config: Config) -> None:
    """Print both figures and their ratio, and what 1,000 streams cost (added to `results`)."""
    print(
        f"\ntwo instances on one PostgreSQL: the most runs at {1000 // config.delay_ms} tokens/s "
        f"streaming at once, the p99 gap between tokens at every client under {config.gap_ms:g} ms"
    )
    for backend in ("postgres", "redis"):
        if backend in results:
            result = results[backend]
            note = "" if result.get("used_redis", True) else " (the service did not use Redis)"
            print(f"  {backend:>9}: {result['most_runs_kept_pace']} runs{note}")
    if results.get("postgres", {}).get("most_runs_kept_pace") and "redis" in results:
        ratio = results["redis"]["most_runs_kept_pace"] / results["postgres"]["most_runs_kept_pace"]
        print(f"  redis / postgres: {ratio:.2f}x")
    per_second = 1000 / config.delay_ms * 1000  # tokens a second of 1,000 streams
    print(
        "what 1,000 streams at that pace cost (from the per-token figures of the largest step"
        " that kept pace, else the smallest):"
    )
    for backend in ("postgres", "redis"):
        if backend not in results or not results[backend]["steps"]:
            continue
        step = operating_point(results[backend]["steps"])
        results[backend]["per_1000_streams"] = cost = {
            "at_runs": step["runs"],
            "instance_cores": round(step["instances_cpu_ms_per_1000_tokens"] * per_second / 1e6, 1),
            "redis_cores": round(step["redis_cpu_ms_per_1000_tokens"] * per_second / 1e6, 2),
            "pg_cores": None
            if step["pg_cpu_ms_per_1000_tokens"] is None
            else round(step["pg_cpu_ms_per_1000_tokens"] * per_second / 1e6, 2),
            "pg_commits_per_s": round(step["pg_commits_per_1000_tokens"] * per_second / 1000),
            "pg_rows_per_s": round(step["pg_rows_per_1000_tokens"] * per_second / 1000),
        }
        print(
            f"  {backend:>9} (at {cost['at_runs']} runs): {cost['instance_cores']} cores of "
            f"instances, {cost['redis_cores']} of Redis, {cost['pg_cores']} of PostgreSQL's "
            f"backends, {cost['pg_commits_per_s']:,} transactions and {cost['pg_rows_per_s']:,} "
            "rows written a second"
        )


def operating_point(steps: list[dict[str, Any]]) -> dict[str, Any]:
    kept = [step for step in steps if step["kept_pace"]]
    if kept:
        return max(kept, key=lambda step: int(step["runs"]))
    return min(steps, key=lambda step: int(step["runs"]))


if __name__ == "__main__":
    main()

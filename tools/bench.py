"""The benchmark: `make bench` (or `python -m tools.bench [--quick] [--scenario NAME]`).

Starts todo-chat and a bare sse-starlette reference beside it (see `bench_server`), drives both
with the same cheap load generator (asyncio sockets, its own CPU reported), and prints a table
and writes `bench-results.json`. Server CPU comes from the server process's own counters
(/proc), not from wall time; PostgreSQL's CPU is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from app.db.embedded import start_embedded_postgres
from app.db.migrations import upgrade
from app.settings import PROJECT_ROOT, Settings, normalize_database_url
from app.web.auth import issue_token
from tests.support import free_port, process_memory
from tools.sdk_floor import measure as measure_sdk_floor
from tools.sdk_floor import measure_paced_apart

SECRET = "bench-secret-" + "b" * 40
INSTRUCTIONS_AT_ONCE = 16
"""Tool-using turns at once when the bench counts their instructions (`tools.instructions`)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Scenario:
    name: str
    description: str
    concurrency: int
    turns: int
    delay_ms: int
    tokens: int
    pool_size: int = 10
    reference: bool = True
    # Clients start their first turn at random times spread over this many seconds, as users
    # do; all starting in the same millisecond would measure a burst, not a steady load.
    spread_s: float = 0.0
    # uvicorn workers for the service (the reference always has one).
    workers: int = 1

    @property
    def paced_seconds(self) -> float:
        """How long a paced reply lasts when the server adds nothing: its tokens' delays."""
        return self.delay_ms * self.tokens / 1000


SCENARIOS = [
    Scenario("a32", "tool-using turns, no model delay, 32 clients", 32, 1000, 0, 0),
    Scenario("a100", "tool-using turns, no model delay, 100 clients", 100, 1000, 0, 0),
    Scenario("b100", "paced model (20 ms, 60 tokens), 100 clients", 100, 300, 20, 60, spread_s=1.2),
    # The paced model where one worker is far from saturated: the latency targets' case.
    Scenario("b30", "paced model (20 ms, 60 tokens), 30 clients", 30, 150, 20, 60, spread_s=1.2),
    # One dyno's two cores: the same as b100, the service on two workers sharing one database.
    Scenario(
        "b100w2",
        "paced model (20 ms, 60 tokens), 100 clients, two workers",
        100,
        300,
        20,
        60,
        reference=False,
        spread_s=1.2,
        workers=2,
    ),
    # 2,000 streams open at the same moment: each about 40 s (35 tokens, 1.2 s apart), the
    # clients arriving over 20 s, so about 100 new turns a second at first, which the machine
    # can hold (2,000 streams of 10 s meant 200 a second, 2.4 cores for the SDK alone).
    Scenario(
        "c2000",
        "2,000 streams open at once, each 35 tokens 1.2 s apart, arriving over 20 s, pool of 10",
        2000,
        2000,
        1200,
        35,
        spread_s=20.0,
    ),
]


@dataclass
class Turn:
    ok: bool = False
    failure: str = ""
    start: float | None = None
    first_text: float | None = None
    last_text: float | None = None
    lags: list[float] = field(default_factory=list)


class Streams:
    """How many streams are open at once: from the response's head to the stream's end; and
    how many have had their first text (past the tool call: the turn's largest state)."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.texting = 0

    def opened(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        self.open -= 1


async def one_turn(
    port: int, user: str, token: str, message: str, streams: Streams | None = None
) -> Turn:
    """POST one chat turn over a raw socket and read its stream: the cheapest client there is."""
    turn = Turn()
    body = json.dumps({"message": message}).encode()
    request = (
        f"POST /api/{user}/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    began = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        turn.failure = "connect"
        return turn
    turn.failure = "cut"
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            turn.failure = head[9:12].decode()
            return turn
        if streams is not None:
            streams.opened()
        try:
            await _read_stream(reader, turn, began, streams)
        finally:
            if streams is not None:
                streams.closed()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return turn
    finally:
        writer.close()
    return turn


async def _read_stream(
    reader: asyncio.StreamReader, turn: Turn, began: float, streams: Streams | None
) -> None:
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        now = time.perf_counter()
        wall = time.time()
        buffer += chunk
        while b"\n\n" in buffer:
            block, _, buffer = buffer.partition(b"\n\n")
            start = block.find(b'data: {"type":"')
            if start < 0:
                continue
            kind = block[start + 15 : block.index(b'"', start + 15)]
            if kind == b"text":
                stamp = block[block.index(b'"content":" ') + 12 :].split(b'"', 1)[0]
                turn.lags.append(wall - float(stamp))
                if turn.first_text is None and streams is not None:
                    streams.texting += 1
                turn.first_text = turn.first_text or now - began
                turn.last_text = now - began
            elif kind == b"start":
                turn.start = now - began
            elif kind == b"done":
                turn.ok, turn.failure = True, ""
            elif kind == b"error":
                code = block[block.find(b'"code":"') + 8 :].split(b'"', 1)[0]
                turn.failure = "error:" + code.decode()
                return


class Process:
    """A server process, and what its /proc says."""

    def __init__(self, args: list[str], env: dict[str, str], *, workers: int = 1) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tools.bench_server", *args, str(workers)],
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,  # its workers stop with it
        )
        self.workers = workers
        self.peak_rss = 0

    def cpu_seconds(self) -> float:
        """The server's CPU: its own and its workers' (uvicorn's workers are its children)."""
        ticks = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS

    def rss(self) -> int:
        total = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):  # a worker that has just exited
                total += process_memory(pid)
        return total

    def _pids(self) -> list[int]:
        pids, index = [self.popen.pid], 0
        while index < len(pids):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                children = Path(f"/proc/{pids[index]}/task/{pids[index]}/children").read_text()
                pids.extend(int(child) for child in children.split())
            index += 1
        return pids

    def _spawned_workers(self) -> int:
        """uvicorn's workers among the children (beside multiprocessing's resource tracker)."""
        count = 0
        for pid in self._pids()[1:]:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                count += b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        return count

    async def wait_workers_idle(self) -> None:
        """Several workers: wait until every one has started and gone idle, so that none's
        start-up falls into what is measured (uvicorn listens before its workers exist)."""
        if self.workers == 1:
            return
        before = -1.0
        for _ in range(240):
            await asyncio.sleep(0.25)
            cpu = self.cpu_seconds()
            if self._spawned_workers() == self.workers and cpu - before < 0.01:
                return
            before = cpu
        raise RuntimeError(f"the server's {self.workers} workers did not all start")

    def stop(self) -> None:
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


async def wait_listening(port: int, process: Process) -> None:
    # Up to 2 minutes: on a loaded machine importing the service alone has taken 9 s.
    for _ in range(1200):
        if process.popen.poll() is not None:
            raise RuntimeError("a benchmark server exited during start-up")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("a benchmark server did not start")


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def drive(
    scenario: Scenario, port: int, process: Process, database_url: str | None
) -> dict[str, Any]:
    users = [f"bench-{scenario.name}-{n}-{time.time_ns()}" for n in range(scenario.concurrency)]
    settings = Settings(jwt_secret=SECRET)
    tokens = {user: issue_token(settings, user) for user in users}
    queue = iter(range(scenario.turns))
    turns: list[Turn] = []
    sampling = True
    connections_in_use = 0

    streams = Streams()

    async def worker(user: str) -> None:
        await asyncio.sleep(random.uniform(0, scenario.spread_s))
        for number in queue:
            message = f"add bench item {number}"
            turns.append(await one_turn(port, user, tokens[user], message, streams))

    # How many streams were open when RSS peaked (reported beside RSS per open stream).
    open_at_peak_rss = 0

    async def sample() -> None:
        nonlocal connections_in_use, open_at_peak_rss
        observer = None
        if database_url is not None:
            observer = await asyncpg.connect(
                database_url.replace("postgresql+asyncpg", "postgresql")
            )
        try:
            while sampling:
                rss = process.rss()
                if rss > process.peak_rss:
                    process.peak_rss, open_at_peak_rss = rss, streams.open
                if observer is not None:
                    in_use = await observer.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state <> 'idle' AND pid <> pg_backend_pid()"
                    )
                    connections_in_use = max(connections_in_use, in_use)
                await asyncio.sleep(0.05)
        finally:
            if observer is not None:
                await observer.close()

    baseline_rss = process.rss()
    process.peak_rss = baseline_rss
    sampler = asyncio.create_task(sample())
    cpu_before, client_before = process.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    await asyncio.gather(*(worker(user) for user in users))
    wall = time.perf_counter() - began
    cpu_after, client_after = process.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    sampling = False
    await sampler

    done = [turn for turn in turns if turn.ok]
    starts = [t.start for t in done if t.start is not None]
    firsts = [t.first_text for t in done if t.first_text is not None]
    lags = [lag for t in done for lag in t.lags]
    ratios = [t.last_text / t.first_text for t in done if t.first_text and t.last_text]
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    ms = 1000.0
    failures = Counter(turn.failure for turn in turns if not turn.ok)
    return {
        "turns": len(turns),
        "open_streams_max": streams.peak,
        "errors": len(turns) - len(done),
        "error_kinds": dict(failures),
        "turns_per_s": round(len(done) / wall, 1),
        "server_cpu_ms_per_turn": round((cpu_after - cpu_before) / max(len(done), 1) * ms, 2),
        "server_cpu_share": round((cpu_after - cpu_before) / wall, 2),
        "client_cpu_share": round(client_cpu / wall, 2),
        "start_p50_ms": _ms(percentile(starts, 0.5)),
        "start_p99_ms": _ms(percentile(starts, 0.99)),
        "first_text_p50_ms": _ms(percentile(firsts, 0.5)),
        "first_text_p99_ms": _ms(percentile(firsts, 0.99)),
        "text_lag_p50_ms": _ms(percentile(lags, 0.5)),
        "text_lag_p99_ms": _ms(percentile(lags, 0.99)),
        "last_over_first_text": round(statistics.median(ratios), 1) if ratios else None,
        "peak_rss_mb": round(process.peak_rss / 2**20, 1),
        "rss_per_stream_kb": round(
            (process.peak_rss - baseline_rss) / scenario.concurrency / 1024, 1
        ),
        "open_streams_at_peak_rss": open_at_peak_rss,
        # Divided by the streams open at once at most, not by those open at the RSS's peak
        # sample: the heap does not shrink as streams end, so its peak often comes later,
        # with fewer open (c2000: 240 to 1,470 of 2,000), which overstated it 2 to 8 times.
        "rss_per_open_stream_kb": round(
            (process.peak_rss - baseline_rss) / max(streams.peak, 1) / 1024, 1
        ),
        "db_connections_in_use_max": connections_in_use if database_url else None,
        "cores_to_keep_pace": cores_to_keep_pace(
            (cpu_after - cpu_before) / max(len(done), 1), scenario
        ),
    }


def cores_to_keep_pace(cpu_seconds_per_turn: float, scenario: Scenario) -> float | None:
    """The CPU that every client's reply streaming at the model's own pace would take: what a
    paced scenario needs of a machine, whatever share of it one process got."""
    if not scenario.paced_seconds:
        return None
    return round(cpu_seconds_per_turn * scenario.concurrency / scenario.paced_seconds, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def run_scenario(
    scenario: Scenario, database_url: str, base_port: int, profile: str | None = None
) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "APP_ENV": "test",
        "DB_POOL_SIZE": str(scenario.pool_size),
        "MAX_ACTIVE_RUNS_PER_USER": "5",
    }
    args = [str(scenario.delay_ms), str(scenario.tokens)]
    results: dict[str, Any] = {"scenario": scenario.description}
    # --port 0 (the default): ports the system says are free, so that a test (or a second
    # bench) never collides with whatever else listens on a fixed one.
    port = base_port or free_port()
    reference_port = base_port + 1 if base_port else free_port()
    service = Process(["service", str(port), *args], env, workers=scenario.workers)
    reference = (
        Process(["reference", str(reference_port), *args], env) if scenario.reference else None
    )
    try:
        await wait_listening(port, service)
        await service.wait_workers_idle()
        if reference is not None:
            await wait_listening(reference_port, reference)
        await drive(
            Scenario(**{**scenario.__dict__, "turns": min(50, scenario.turns)}),
            port,
            service,
            None,
        )
        spy = None if profile is None else start_profiler(service, profile)
        try:
            results["service"] = await drive(scenario, port, service, database_url)
        finally:
            if spy is not None:
                stop_profiler(spy)
        if reference is not None:
            results["reference"] = await drive(scenario, reference_port, reference, None)
    finally:
        service.stop()
        if reference is not None:
            reference.stop()
    return results


def start_profiler(service: Process, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the service (and its workers) from outside, without pausing it, while
    the scenario is measured (`make profile`): a flame graph written to `output`."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            *("record", "--pid", str(service.popen.pid), "--subprocesses", "--nonblocking"),
            *("--rate", "250", "--format", "flamegraph", "--output", output),
        ]
    )


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
    spy.wait(60)


def run_all(
    chosen: list[Scenario],
    database_url: str,
    port: int,
    *,
    quick: bool,
    profile: str | None = None,
    instruction_turns: int = 0,
) -> dict[str, Any]:
    results: dict[str, Any] = {"scenarios": {}}
    if instruction_turns:
        # What a busy machine does not move: a regression in CPU per turn shows here first.
        from tools.instructions import measure as measure_instructions

        results["instructions"] = measure_instructions(
            database_url, turns=instruction_turns, concurrency=INSTRUCTIONS_AT_ONCE
        )
    for scenario in chosen:
        results["scenarios"][scenario.name] = asyncio.run(
            run_scenario(scenario, database_url, port, profile)
        )
        # The SDK alone on the same turns, as many at once: what no server can beat.
        floor = measure_paced_apart(
            delay_ms=scenario.delay_ms,
            tokens=scenario.tokens,
            concurrency=scenario.concurrency,
            turns=scenario.turns,
        )
        results["scenarios"][scenario.name]["sdk_floor"] = floor
        service = results["scenarios"][scenario.name]["service"]
        reference = results["scenarios"][scenario.name].get("reference")
        if reference:
            # CPU per turn over the limit on this stack at the same concurrency: the SDK alone
            # plus the bare sse-starlette, both measured in this run.
            limit = floor["cpu_ms_per_turn"] + reference["server_cpu_ms_per_turn"]
            service["cpu_over_limit"] = round(service["server_cpu_ms_per_turn"] / limit, 2)
        if scenario.delay_ms:
            floor["cores_to_keep_pace"] = cores_to_keep_pace(
                floor["cpu_ms_per_turn"] / 1000, scenario
            )
            # What the service needs to keep pace, over what the SDK alone and a bare
            # sse-starlette need together (docs/performance.md has each round's target).
            if reference and service["cores_to_keep_pace"] and floor["cores_to_keep_pace"]:
                parts = floor["cores_to_keep_pace"] + reference["cores_to_keep_pace"]
                service["pace_over_sdk_and_bare"] = round(service["cores_to_keep_pace"] / parts, 2)
    results["sdk_floor"] = measure_sdk_floor(50 if quick else 500)
    floor = results["sdk_floor"]["cpu_ms_per_turn"]
    for result in results["scenarios"].values():
        service = result.get("service")
        if service and floor:
            # A ratio within one run: the machine's pace varies from run to run.
            service["cpu_over_sdk_floor"] = round(service["server_cpu_ms_per_turn"] / floor, 2)
    return results


def combine(runs: list[Any], worst: bool = False) -> Any:
    """Several runs' results as one: the median of every figure, except errors (the worst)."""
    present = [run for run in runs if run is not None]
    if not present:
        return None
    if isinstance(present[0], dict):
        keys = dict.fromkeys(key for run in present for key in run)
        return {
            key: combine(
                [run.get(key) for run in present], worst or key in ("errors", "error_kinds")
            )
            for key in keys
        }
    if isinstance(present[0], int | float) and not isinstance(present[0], bool):
        return max(present) if worst else round(statistics.median(present), 2)
    return present[0]


def print_table(results: dict[str, Any]) -> None:
    rows = [
        ("turns/s", "turns_per_s"),
        ("errors", "errors"),
        ("errors by kind", "error_kinds"),
        ("open streams at once, max", "open_streams_max"),
        ("server CPU ms/turn", "server_cpu_ms_per_turn"),
        ("start p50 / p99 ms", ("start_p50_ms", "start_p99_ms")),
        ("first text p50 / p99 ms", ("first_text_p50_ms", "first_text_p99_ms")),
        ("text lag p50 / p99 ms", ("text_lag_p50_ms", "text_lag_p99_ms")),
        ("last / first text", "last_over_first_text"),
        ("peak RSS MB", "peak_rss_mb"),
        ("RSS per client KB", "rss_per_stream_kb"),
        ("RSS per open stream KB", "rss_per_open_stream_kb"),
        ("streams open at peak RSS", "open_streams_at_peak_rss"),
        ("DB connections max", "db_connections_in_use_max"),
        ("cores to keep pace", "cores_to_keep_pace"),
        ("  over SDK + bare SSE", "pace_over_sdk_and_bare"),
        ("CPU over the SDK floor", "cpu_over_sdk_floor"),
        ("CPU over SDK + bare SSE", "cpu_over_limit"),
        ("load generator CPU share", "client_cpu_share"),
    ]
    for name, result in results["scenarios"].items():
        print(f"\n{name}: {result['scenario']}")
        print(f"  {'':28} {'todo-chat':>18} {'reference':>18}")
        for label, key in rows:
            cells = []
            for side in ("service", "reference"):
                data = result.get(side)
                if data is None:
                    cells.append("-")
                elif isinstance(key, tuple):
                    cells.append(" / ".join(str(data.get(k, "-")) for k in key))
                else:
                    cells.append(str(data.get(key, "-")))
            print(f"  {label:28} {cells[0]:>18} {cells[1]:>18}")
        floor = result.get("sdk_floor")
        if floor:
            pace = floor.get("cores_to_keep_pace")
            print(
                f"  the Agents SDK alone on these turns ({floor['concurrency']} at once):"
                f" {floor['cpu_ms_per_turn']} ms CPU per turn, {floor['cpu_share']} of a core,"
                f" {floor['rss_per_run_kb']} KB RSS per run"
                + (f"; {pace} cores to keep every run at the model's pace" if pace else "")
            )
    floor = results.get("sdk_floor")
    if floor:
        print(f"\nAgents SDK floor (the same tool-using turn, no HTTP, no database): {floor}")
    if results.get("instructions"):
        from tools.instructions import describe

        print(f"\n{describe(results['instructions'])}")


def measuring_database(name: str) -> str:
    """The migrated database a measurement runs on: DATABASE_URL or TEST_DATABASE_URL when
    set, else an embedded PostgreSQL of its own, deleted when the measurement ends."""
    configured = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if configured:
        database_url = normalize_database_url(configured)
    else:
        directory = Path(tempfile.mkdtemp(prefix=f"todo-chat-{name}-"))
        directory.chmod(0o755)
        embedded = start_embedded_postgres(directory / "pg", cleanup="delete")
        database_url = normalize_database_url(embedded)
    asyncio.run(upgrade(database_url))
    return database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scenario", action="append", help="a32, a100, b100, b30, b100w2, c2000 (default all)"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds of each: a smoke test")
    parser.add_argument(
        "--runs", type=int, default=1, help="run everything this many times; report medians"
    )
    parser.add_argument("--output", default="bench-results.json")
    parser.add_argument(
        "--profile", help="write a py-spy flame graph (SVG) of the service under each scenario"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="the service's port, the reference's the next (0: free)"
    )
    parser.add_argument(
        "--instruction-turns",
        type=int,
        help=f"tool-using turns counted under callgrind, {INSTRUCTIONS_AT_ONCE} at once (default:"
        " 48 when every scenario runs, else none; 0: none)",
    )
    args = parser.parse_args()

    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if args.quick:
        chosen = [
            Scenario(
                **{
                    **s.__dict__,
                    "concurrency": min(s.concurrency, 8),
                    "turns": 16,
                    "delay_ms": min(s.delay_ms, 5),
                    "tokens": min(s.tokens, 10),
                    "spread_s": min(s.spread_s, 0.2),
                }
            )
            for s in chosen
        ]
    database_url = measuring_database("bench")

    instruction_turns = args.instruction_turns
    if instruction_turns is None:
        instruction_turns = 0 if args.quick or args.scenario else 48
    runs = [
        run_all(
            chosen,
            database_url,
            args.port,
            quick=args.quick,
            profile=args.profile,
            instruction_turns=instruction_turns,
        )
        for _ in range(args.runs)
    ]
    results = combine(runs)
    results["runs"] = runs
    print_table(results)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

"""The benchmark: `make bench` (or `python -m tools.bench [--quick] [--scenario NAME]`).

Starts todo-chat and a bare sse-starlette reference beside it (see `bench_server`), drives both
with the same cheap load generator (asyncio sockets, its own CPU reported), and prints a table
and writes `bench-results.json`. Server CPU comes from the server process's own counters
(/proc), not from wall time; PostgreSQL's CPU is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from tests.support import free_port
from tools.load import drive
from tools.scenarios import SCENARIOS, Scenario, cores_to_keep_pace
from tools.sdk_floor import measure as measure_sdk_floor
from tools.sdk_floor import measure_paced_apart
from tools.servers import (
    Process,
    measuring_database,
    server_environment,
    start_profiler,
    stop_profiler,
    wait_listening,
)

INSTRUCTIONS_AT_ONCE = 16
"""Tool-using turns at once when the bench counts their instructions (`tools.instructions`)."""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def run_scenario(
    scenario: Scenario, database_url: str, base_port: int, profile: str | None = None
) -> dict[str, Any]:
    env = server_environment(database_url, DB_POOL_SIZE=str(scenario.pool_size))
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
        # The SDK alone on the same turns, as many at once, arriving as the clients do: what
        # no server can beat.
        floor = measure_paced_apart(
            delay_ms=scenario.delay_ms,
            tokens=scenario.tokens,
            concurrency=scenario.concurrency,
            turns=scenario.turns,
            spread_s=scenario.spread_s,
        )
        results["scenarios"][scenario.name]["sdk_floor"] = floor
        service = results["scenarios"][scenario.name]["service"]
        reference = results["scenarios"][scenario.name].get("reference")
        if reference:
            # CPU per turn over the limit on this stack at the same concurrency: the SDK alone
            # plus the bare sse-starlette, both measured in this run.
            limit = floor["cpu_ms_per_turn"] + reference["server_cpu_ms_per_turn"]
            service["cpu_over_limit"] = round(service["server_cpu_ms_per_turn"] / limit, 2)
            # And RSS per open stream over theirs: the bare stream's per open stream plus the
            # SDK's per run in progress, each divided by the most there were at once.
            memory = floor["rss_per_run_kb"] + reference["rss_per_open_stream_kb"]
            if memory > 0:
                service["rss_over_limit"] = round(service["rss_per_open_stream_kb"] / memory, 2)
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
        ("  RSS over SDK + bare SSE", "rss_over_limit"),
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
                f" {floor['rss_per_run_kb']} KB RSS per run in progress"
                f" ({floor.get('runs_in_progress_max', '-')} at most at once)"
                + (f"; {pace} cores to keep every run at the model's pace" if pace else "")
            )
    floor = results.get("sdk_floor")
    if floor:
        print(f"\nAgents SDK floor (the same tool-using turn, no HTTP, no database): {floor}")
    if results.get("instructions"):
        from tools.instructions import describe

        print(f"\n{describe(results['instructions'])}")


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

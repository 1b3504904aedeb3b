"""CPU per tool-using turn as instructions (valgrind's callgrind), which a busy machine does not
change: the service (as `make bench` runs it: uvicorn, uvloop, httptools, a real PostgreSQL,
whose own instructions are not counted) against its limit on this stack, the Agents SDK alone
on the same turn (the floor of `make bench`'s scenario d, under the service's collector
settings as every floor is: `tools.sdk_floor`) plus a bare sse-starlette streaming the
same events (the bench's reference), each `--concurrency` turns at once.

    python -m tools.instructions [--turns 40] [--concurrency 1]

Each process runs under callgrind with instrumentation off until it has warmed up; then the
turns are counted and the count divided by them. Slow (valgrind runs Python ~50 times slower):
a few minutes. `make bench` runs it at 16 at once (`measure`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from tests.support import free_port
from tools.load import one_turn
from tools.servers import SECRET, measuring_database, server_environment

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no"]


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _instructions(directory: Path, name: str) -> int:
    """The instructions counted while instrumentation was on: the largest `totals:` among the
    process's dumps (the one asked for, and the empty one at exit)."""
    counts = [
        int(found.group(1))
        for output in directory.glob(f"{name}*")
        if (found := re.search(r"^totals: (\d+)", output.read_text(errors="replace"), re.M))
    ]
    if not counts:
        raise RuntimeError(f"no callgrind count for {name} in {directory}")
    return max(counts)


async def _turns(port: int, users: list[str], tokens: dict[str, str], count: int, tag: str) -> None:
    """`count` turns, as many at once as there are users, each user one turn after another."""
    numbers = iter(range(count))

    async def client(user: str) -> None:
        for number in numbers:
            turn = await one_turn(port, user, tokens[user], f"add {tag} item {number}")
            assert turn.ok, turn.failure

    await asyncio.gather(*(client(user) for user in users))


async def _server(
    kind: str, database_url: str, turns: int, concurrency: int, directory: Path
) -> int:
    """Instructions per turn of a server (`service` or the bare `reference`) under callgrind."""
    port = free_port()
    env = server_environment(database_url)
    out = directory / f"{kind}.out"
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
        [
            *VALGRIND,
            f"--callgrind-out-file={out}",
            *(sys.executable, "-m", "tools.bench_server", kind, str(port), "0", "0"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
    )
    try:
        for _ in range(1200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.5)
        settings = Settings(jwt_secret=SECRET)
        users = [f"instructions-{os.getpid()}-{port}-{n}" for n in range(concurrency)]
        tokens = {user: issue_token(settings, user) for user in users}
        await _turns(port, users, tokens, max(10, concurrency), "warm")  # warm up
        await asyncio.to_thread(_control, server.pid, "--instr=on")
        await _turns(port, users, tokens, turns, "bench")
        await asyncio.to_thread(_control, server.pid, "--instr=off")
        await asyncio.to_thread(_control, server.pid, "--dump")
    finally:
        server.terminate()
        server.wait(120)
    return await asyncio.to_thread(_instructions, directory, f"{kind}.out") // turns


def _floor(turns: int, concurrency: int, directory: Path) -> int:
    out = directory / "floor.out"
    subprocess.run(
        [
            *VALGRIND,
            f"--callgrind-out-file={out}",
            *(sys.executable, "-m", "tools.instructions", "--floor-child"),
            *("--turns", str(turns), "--concurrency", str(concurrency)),
        ],
        cwd=PROJECT_ROOT,
        check=True,
    )
    return _instructions(directory, "floor.out") // turns


def _floor_child(turns: int, concurrency: int) -> None:
    """In the process callgrind runs: the floor's turns, counted after a warm-up."""
    import uvloop

    from tools.bench_server import StampingModel
    from tools.sdk_floor import _turns as sdk_turns
    from tools.sdk_floor import collector

    model = StampingModel(delay_ms=0, tokens=0)
    # Under Python's default collector a full collection of the whole heap, one every hundred
    # turns or so, fell inside the counted turns or not: 23.3 or 25.5 M a turn.
    with collector():
        uvloop.run(sdk_turns(max(10, concurrency), model, concurrency))
        _control(os.getpid(), "--instr=on")
        uvloop.run(sdk_turns(turns, model, concurrency))
        _control(os.getpid(), "--instr=off")
    _control(os.getpid(), "--dump")


def measure(database_url: str, *, turns: int, concurrency: int) -> dict[str, Any]:
    """Instructions per tool-using turn, `concurrency` at once: the service, the SDK alone, the
    bare sse-starlette, and the service over the limit (the SDK alone + the bare stream)."""
    directory = Path(tempfile.mkdtemp(prefix="instructions-"))
    floor = _floor(turns, concurrency, directory)
    bare = asyncio.run(_server("reference", database_url, turns, concurrency, directory))
    service = asyncio.run(_server("service", database_url, turns, concurrency, directory))
    return {
        "turns": turns,
        "concurrency": concurrency,
        "service": service,
        "sdk_alone": floor,
        "bare_sse": bare,
        "limit": floor + bare,
        "over_limit": round(service / (floor + bare), 3),
        "over_sdk_alone": round(service / floor, 3),
    }


def describe(result: dict[str, Any]) -> str:
    millions = {key: f"{result[key] / 1e6:.2f} M" for key in ("service", "sdk_alone", "bare_sse")}
    return (
        f"instructions per tool-using turn, {result['concurrency']} at once"
        f" ({result['turns']} turns each): the service {millions['service']}, its limit"
        f" {result['limit'] / 1e6:.2f} M (the SDK alone {millions['sdk_alone']} + a bare"
        f" sse-starlette {millions['bare_sse']}): {result['over_limit']:.2f} x the limit,"
        f" {result['over_sdk_alone']:.2f} x the SDK alone"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        _floor_child(args.turns, args.concurrency)
        return
    database_url = measuring_database("instructions")
    print(describe(measure(database_url, turns=args.turns, concurrency=args.concurrency)))


if __name__ == "__main__":
    main()

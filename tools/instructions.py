"""CPU per tool-using turn as instructions (valgrind's callgrind), which a busy machine does not
change: the service (as `make bench` runs it: uvicorn, uvloop, httptools, a real PostgreSQL,
whose own instructions are not counted) against the Agents SDK alone on the same turn (the
floor of `make bench`'s scenario d), one turn at a time.

    python -m tools.instructions [--turns 40]

Each process runs under callgrind with instrumentation off until it has warmed up; then the
turns are counted and the count divided by them. Slow (valgrind runs Python ~50 times slower):
a few minutes.
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

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from tests.support import free_port
from tools.bench import SECRET, measuring_database, one_turn

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


async def _service(database_url: str, turns: int, directory: Path) -> int:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "APP_ENV": "test",
        "MAX_ACTIVE_RUNS_PER_USER": "5",
    }
    out = directory / "service.out"
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
        [
            *VALGRIND,
            f"--callgrind-out-file={out}",
            *(sys.executable, "-m", "tools.bench_server", "service", str(port), "0", "0"),
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
        user = f"instructions-{os.getpid()}-{port}"
        token = issue_token(Settings(jwt_secret=SECRET), user)
        for number in range(10):  # warm up
            assert (await one_turn(port, user, token, f"add warm item {number}")).ok
        await asyncio.to_thread(_control, server.pid, "--instr=on")
        for number in range(turns):
            assert (await one_turn(port, user, token, f"add bench item {number}")).ok
        await asyncio.to_thread(_control, server.pid, "--instr=off")
        await asyncio.to_thread(_control, server.pid, "--dump")
    finally:
        server.terminate()
        server.wait(120)
    return await asyncio.to_thread(_instructions, directory, "service.out") // turns


def _floor(turns: int, directory: Path) -> int:
    out = directory / "floor.out"
    subprocess.run(
        [
            *VALGRIND,
            f"--callgrind-out-file={out}",
            *(
                sys.executable,
                "-m",
                "tools.instructions",
                "--floor-child",
                "--turns",
                str(turns),
            ),
        ],
        cwd=PROJECT_ROOT,
        check=True,
    )
    return _instructions(directory, "floor.out") // turns


def _floor_child(turns: int) -> None:
    """In the process callgrind runs: the floor's turns, counted after a warm-up."""
    import uvloop

    from tools.bench_server import StampingModel
    from tools.sdk_floor import _turns

    model = StampingModel(delay_ms=0, tokens=0)
    uvloop.run(_turns(10, model))
    _control(os.getpid(), "--instr=on")
    uvloop.run(_turns(turns, model))
    _control(os.getpid(), "--instr=off")
    _control(os.getpid(), "--dump")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        _floor_child(args.turns)
        return
    database_url = measuring_database("instructions")
    directory = Path(tempfile.mkdtemp(prefix="instructions-"))
    floor = _floor(args.turns, directory)
    service = asyncio.run(_service(database_url, args.turns, directory))
    print(f"instructions per tool-using turn: the service {service:,}, the SDK alone {floor:,}:")
    print(f"{service / floor:.2f} x the floor ({args.turns} turns each, one at a time)")


if __name__ == "__main__":
    main()

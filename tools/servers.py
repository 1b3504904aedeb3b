"""What the benchmarks start and read: the server under measurement as a process of its own
(its CPU and memory from /proc, its workers too), a wait for it to listen, a profiler beside
it, and the migrated database a measurement runs on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from app.db.embedded import start_embedded_postgres
from app.db.migrations import upgrade
from app.settings import PROJECT_ROOT, normalize_database_url
from tests.support import process_memory

SECRET = "bench-secret-" + "b" * 40


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Process:
    """A server process, and what its /proc says."""

    def __init__(
        self, args: list[str], env: dict[str, str], *, workers: int = 1, root: Path = PROJECT_ROOT
    ) -> None:
        """`root`: the checkout whose code it runs (another one: the code before a change)."""
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tools.bench_server", *args, str(workers)],
            cwd=root,
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


def server_environment(database_url: str, **settings: str) -> dict[str, str]:
    """The environment a measured server starts with: this one's, its database, the bench's
    secret, and room for a client's few turns at once; `settings` add to it."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "APP_ENV": "test",
        "MAX_ACTIVE_RUNS_PER_USER": "5",
        **settings,
    }

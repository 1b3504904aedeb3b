"""What a benchmark's servers spent of CPU, read from the servers' side (this machine only): a
Redis server's own counters, and a PostgreSQL database's backends from /proc. PostgreSQL's
background processes (WAL writer, checkpointer) are not in it: they serve every database."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tests.redis_servers import RedisServer

BACKENDS_QUERY = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid()"
)
"""The backends of the database a connection is on, but the asking connection's own."""


def process_cpu_seconds(pid: int) -> float | None:
    """A process's CPU (user + system) from /proc: None if it is gone or not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(servers: Iterable[RedisServer]) -> float:
    """The servers' CPU so far, by their own counters (INFO cpu: every thread's)."""
    total = 0.0
    for server in servers:
        for line in server.cli("INFO", "cpu").splitlines():
            if line.startswith(("used_cpu_sys:", "used_cpu_user:")):
                total += float(line.split(":")[1])
    return total


class BackendsCpu:
    """The CPU a database's backends spent since the first look: each backend's CPU since it
    was first seen. One that starts between two looks counts whole (it is the step's); one
    that ends between two looks is lost (rare with a pool's connections kept)."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}
        self._spent = 0.0
        self._primed = False

    def observe(self, pids: Iterable[int]) -> float | None:
        """The CPU spent so far, given the backends now (`BACKENDS_QUERY`); None when none of
        them can be read (PostgreSQL on another machine, or in a container of its own)."""
        for pid in pids:
            cpu = process_cpu_seconds(pid)
            if cpu is not None:
                self._spent += cpu - self._seen.get(pid, 0.0 if self._primed else cpu)
                self._seen[pid] = cpu
        self._primed = True
        return self._spent if self._seen else None

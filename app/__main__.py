"""Command line: `python -m app serve | migrate | token USER`.

With no DATABASE_URL, `serve` and `migrate` start the embedded PostgreSQL under .data/, and
stop it when they end, however they end: Ctrl-C (SIGINT), `kill` (SIGTERM), or the terminal
closing (SIGHUP). uvicorn shuts down gracefully on SIGINT and SIGTERM and then re-raises the
signal, which for SIGTERM would end the process on the spot, skipping every clean-up; SIGHUP it
does not handle at all. So `serve` handles all three itself (`_StopSignals`): while uvicorn
runs, SIGHUP asks it to shut down as the other two do; afterwards each of them unwinds the
stack (the embedded PostgreSQL stops on the way out), and only then does the process end by
that signal, as it would have.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from app import logs
from app.settings import DATA_DIR, ConfigError, Settings

if TYPE_CHECKING:
    import uvicorn

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopped(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _StopSignals:
    """Installed for the whole command. While `server` runs, a stop signal that reaches these
    handlers (SIGHUP; SIGINT and SIGTERM go to uvicorn's own) shuts it down gracefully; outside
    it, the first one raises `_Stopped`, and later ones are ignored so that clean-up finishes."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self.server is not None:
            self.server.handle_exit(signum, frame)
        elif first:
            raise _Stopped(signum)

    @contextmanager
    def installed(self) -> Iterator[_StopSignals]:
        previous = {signum: signal.signal(signum, self) for signum in _STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def serve(self, server: uvicorn.Server) -> None:
        self.server = server
        try:
            server.run()
        finally:
            self.server = None
        if self.received is not None:
            raise _Stopped(self.received)


@contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    if settings.database_url is not None:
        yield settings
        return
    from app.db.embedded import embedded_postgres

    with embedded_postgres(DATA_DIR / "postgres") as url:
        print(f"Using the embedded PostgreSQL in {DATA_DIR / 'postgres'}", file=sys.stderr)
        yield settings.with_database(url)


def _migrate(settings: Settings) -> None:
    from app.db.migrations import upgrade

    assert settings.database_url is not None
    asyncio.run(upgrade(settings.database_url))


def serve(settings: Settings, host: str) -> int:
    import uvicorn

    from app.http_protocol import protocol_for
    from app.main import create_app

    with _StopSignals().installed() as stop_signals, _database(settings) as settings:
        _migrate(settings)
        model = "the offline model" if settings.uses_offline_model else settings.agent_model
        print(f"todo-chat on http://{host}:{settings.port} with {model}", file=sys.stderr)
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=settings.port,
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            http=protocol_for(settings),
            access_log=False,  # app.access logs requests, without query strings
        )
        server = uvicorn.Server(config)
        stop_signals.serve(server)
        return 0 if server.started else 3  # 3: uvicorn's exit code for a failed start-up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="run the service")
    serve_command.add_argument("--host", default="127.0.0.1")
    commands.add_parser("migrate", help="apply the database migrations")
    token_command = commands.add_parser("token", help="print a token for a user")
    token_command.add_argument("user")
    token_command.add_argument("--ttl", type=int, default=24 * 3600, help="seconds it is valid")
    args = parser.parse_args(argv)

    logs.configure("text")
    for chatty in ("embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format)
        if args.command == "serve":
            return serve(settings, args.host)
        elif args.command == "migrate":
            with _StopSignals().installed(), _database(settings) as settings:
                _migrate(settings)
        else:
            from app.web.auth import issue_token

            print(issue_token(settings, args.user, ttl_seconds=args.ttl))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except _Stopped as stopped:
        # Everything is cleaned up: now end by the signal, as its default action would have.
        signal.signal(stopped.signum, signal.SIG_DFL)
        signal.raise_signal(stopped.signum)
    return 0


if __name__ == "__main__":
    sys.exit(main())

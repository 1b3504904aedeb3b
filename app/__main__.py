"""Command line: `python -m app serve | migrate | token USER`.

With no DATABASE_URL, `serve` and `migrate` start the embedded PostgreSQL under .data/.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.settings import DATA_DIR, ConfigError, Settings


def _with_database(settings: Settings) -> Settings:
    if settings.database_url is not None:
        return settings
    from app.db.embedded import start_embedded_postgres

    url = start_embedded_postgres(DATA_DIR / "postgres", cleanup="stop")
    print(f"Using the embedded PostgreSQL in {DATA_DIR / 'postgres'}", file=sys.stderr)
    return settings.with_database(url)


def _migrate(settings: Settings) -> None:
    from app.db.migrations import upgrade

    assert settings.database_url is not None
    asyncio.run(upgrade(settings.database_url))


def serve(settings: Settings, host: str) -> None:
    import uvicorn

    from app.main import create_app

    settings = _with_database(settings)
    _migrate(settings)
    model = "the offline model" if settings.uses_offline_model else settings.agent_model
    print(f"todo-chat on http://{host}:{settings.port} with {model}", file=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 15,
        access_log=False,  # app.access logs requests, without query strings
    )


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

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            serve(settings, args.host)
        elif args.command == "migrate":
            _migrate(_with_database(settings))
        else:
            from app.auth import issue_token

            print(issue_token(settings, args.user, ttl_seconds=args.ttl))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One statement on asyncpg itself, on a connection of the engine's pool, taken at the gate.

For the statements each turn makes outside a transaction (its tools', its events' appends,
its end): SQLAlchemy's connection, execution context and result cost several times what the
statement costs asyncpg (docs/performance.md, "CPU per turn by layer"), for no work of theirs
on a statement that is written as SQL and maps its own rows. Transactions, and the statements
that are not on every turn, stay on `UnitOfWork`.

A statement run here is its own transaction (asyncpg's autocommit, as `single_statement`), and
asyncpg's errors reach the caller as they are (`app.db.outage` knows them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from app.db.gate import ConnectionGate, Priority
from app.db.outage import is_outage

# SQLAlchemy's own rule for a bound name in `text()`: not after a colon (a cast, `::`), a word
# character or a backslash, and not before a colon or a word character (else `:name::type`
# would be read as a shorter name); and `\:` is a colon (`sqlalchemy.sql.compiler`).
_NAME = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])")
_ESCAPED = re.compile(r"\\(:\w*)(?![:\w])")


class Query:
    """SQL written with `:name` parameters, as `text()` takes it, sent with asyncpg's `$n`;
    a name used twice is one parameter."""

    __slots__ = ("_names", "sql")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(found: re.Match[str]) -> str:
            if found[1] not in names:
                names.append(found[1])
            return f"${names.index(found[1]) + 1}"

        self.sql = _ESCAPED.sub(r"\1", _NAME.sub(number, sql))
        self._names = tuple(names)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self._names]

    # On an asyncpg connection (`Driver`), with the values of the names:
    async def fetch(self, connection: Any, values: Mapping[str, Any]) -> list[Any]:
        rows: list[Any] = await connection.fetch(self.sql, *self.arguments(values))
        return rows

    async def fetchrow(self, connection: Any, values: Mapping[str, Any]) -> Any:
        """The first row, or None. Read whole, not with asyncpg's `fetchrow` (a limit of one
        row): the server then answers a data-modifying statement as completed, not with its
        portal suspended, as it did under SQLAlchemy."""
        rows = await self.fetch(connection, values)
        return rows[0] if rows else None

    async def fetchval(self, connection: Any, values: Mapping[str, Any]) -> Any:
        row = await self.fetchrow(connection, values)
        return None if row is None else row[0]

    async def execute(self, connection: Any, values: Mapping[str, Any]) -> None:
        await connection.execute(self.sql, *self.arguments(values))


class Driver:
    """A pooled connection's asyncpg connection for statements of their own:
    `async with database.driver(priority) as connection: await connection.fetch(...)`."""

    def __init__(self, engine: AsyncEngine, gate: ConnectionGate, priority: Priority) -> None:
        self._engine = engine
        self._gate = gate
        self._priority = priority

    async def __aenter__(self) -> Any:
        self._pooled: PoolProxiedConnection = await self._gate.connect(
            self._priority, self._engine.raw_connection
        )
        self._connection: Any = self._pooled.driver_connection
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is not None and _in_doubt(self._connection, exc):
                if isinstance(exc, Exception) and self._connection.is_closed():
                    # The database went away (SQLAlchemy's disconnect): the sessions pooled
                    # before it are gone too, and are replaced at their next checkout rather
                    # than each failing a statement, as SQLAlchemy does for its own.
                    self._engine.pool._invalidate(self._pooled, exc)
                else:
                    self._pooled.invalidate(exc)
            self._pooled.close()
        finally:
            self._gate.release()


def _in_doubt(connection: Any, error: BaseException) -> bool:
    """Whether a connection may not be used again after `error` (as SQLAlchemy judges its
    own): the database went away, the client lost track of the protocol (a message of a
    terminated session read as the answer to the next statement), or a statement was
    interrupted (a cancel)."""
    if not isinstance(error, Exception):
        return True
    return is_outage(error) or bool(connection.is_closed())

"""Whether an error means the database cannot be reached right now (it is restarting, the
network dropped, the server is gone) rather than that it refused what was asked.

The first kind is waited out and retried, and a request that meets it gets 503 with
`Retry-After`; the second is a bug or bad data, and retrying it changes nothing. A PostgreSQL
restart surfaces as several classes, raised by asyncpg and wrapped by SQLAlchemy in
`DBAPIError`s: "the database system is shutting down" (`CannotConnectNowError`), "terminating
connection due to administrator command" (`AdminShutdownError`), "connection is closed"
(`InterfaceError`), a refused or reset socket (`OSError`); each is recognised here, through the
chain of causes, so that no caller has to know them.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_OUTAGES = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, admin shutdown, crash
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # The protocol out of step: what a session the server ended looks like to a statement
    # begun after its FATAL message was read and before its hang-up was (asyncpg itself, on
    # `Database.driver`; SQLAlchemy judged that connection closed, a disconnect).
    asyncpg.InternalClientError,
)


def is_outage(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGES):
            return True
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            orig = current.orig
            current = orig if isinstance(orig, BaseException) else current.__cause__
        else:
            current = current.__cause__ or current.__context__
    return False

"""One connection of the instance's own, outside the pool: it LISTENs for run notifications
from every instance, and holds an advisory lock that says this instance is alive."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.repositories import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0


def _lock_key(instance_id: str) -> str:
    return f"todo_chat_instance:{instance_id}"


class Listener:
    def __init__(self, engine: AsyncEngine, instance_id: str, on_message: Callable[[str], None]):
        _, self._connect_args = engine.dialect.create_connect_args(engine.url)
        self._instance_id = instance_id
        self._on_message = on_message
        self._connection: Any = None
        self._lock = anyio.Lock()
        self.ready = anyio.Event()

    async def run(self) -> None:
        """Stay connected, listening and holding the liveness lock, until cancelled."""
        while True:
            lost = anyio.Event()
            try:
                await self._connect(lost)
            except (OSError, asyncpg.PostgresError):
                logger.warning("run notifications: cannot connect, retrying", exc_info=True)
            else:
                await lost.wait()
                logger.warning("run notifications: connection lost, reconnecting")
            finally:
                await self._close()
            await anyio.sleep(RECONNECT_SECONDS)

    async def _connect(self, lost: anyio.Event) -> None:
        connection = await asyncpg.connect(**self._connect_args)
        self._connection = connection
        await connection.execute(
            "SELECT pg_advisory_lock(hashtext($1))", _lock_key(self._instance_id)
        )
        await connection.add_listener(NOTIFY_CHANNEL, self._notified)
        connection.add_termination_listener(lambda _: lost.set())
        self.ready.set()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            self._on_message(payload)
        except Exception:
            logger.exception("run notifications: handler failed")

    async def is_alive(self, instance_id: str) -> bool:
        """Whether another instance still holds its lock; one that died holds none."""
        async with self._lock:
            connection = self._connection
            if connection is None:
                return True  # cannot tell: assume alive
            key = _lock_key(instance_id)
            taken = await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key)
            if taken:
                await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
            return not taken

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.ready = anyio.Event()
        if connection is not None and not connection.is_closed():
            with anyio.move_on_after(2, shield=True):
                await connection.close()

"""One connection of the instance's own, outside the pool: it LISTENs for run notifications
from every instance.

It says nothing of whether this instance is alive: it did once, by holding an advisory lock, and
a cut of this one connection for a few seconds made another instance close this instance's runs
while they were streaming. Liveness is the heartbeat written through the pool (see
`app.runs.recovery`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.repositories.run_events import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
HEALTH_SECONDS = 5.0


class Listener:
    def __init__(self, engine: AsyncEngine, on_message: Callable[[str], None]):
        _, self._connect_args = engine.dialect.create_connect_args(engine.url)
        self._on_message = on_message
        self._connection: Any = None
        self.ready = anyio.Event()

    async def listen_forever(self) -> None:
        """Stay connected and listening, until cancelled."""
        while True:
            try:
                await self._serve()
            except Exception:
                # Whatever went wrong (the server restarted, the network dropped, a bad
                # argument), never let it reach the task group that runs every chat turn.
                logger.warning("run notifications: connection lost, reconnecting", exc_info=True)
            finally:
                await self._close()
            await anyio.sleep(RECONNECT_SECONDS)

    async def _serve(self) -> None:
        lost = anyio.Event()
        connection = await asyncpg.connect(**self._connect_args)
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(NOTIFY_CHANNEL, self._notified)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self.ready.set()
        while not lost.is_set():
            with anyio.move_on_after(HEALTH_SECONDS):
                await lost.wait()
            if not lost.is_set():
                # A half-open connection answers nothing: find out, and reconnect.
                with anyio.fail_after(HEALTH_SECONDS):
                    await connection.execute("SELECT 1")

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            self._on_message(payload)
        except Exception:
            logger.exception("run notifications: handler failed")

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.ready = anyio.Event()
        if connection is not None and not connection.is_closed():
            with anyio.move_on_after(2, shield=True):
                await connection.close()

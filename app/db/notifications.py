"""One connection of the instance's own, outside the pool: it LISTENs, on every channel some part
of the service asked for (`on`), for the notifications of every instance.

One connection serves them all (the event log's wake-ups, the record's cancels): a LISTEN holds
its connection for the instance's lifetime, and PostgreSQL counts connections dearly.

It says nothing of whether this instance is alive: it did once, by holding an advisory lock, and
a cut of this one connection for a few seconds made another instance close this instance's runs
while they were streaming. Liveness is the heartbeat written through the pool (see
`app.runs.recovery`). Notifications sent while it reconnects are lost: each listener has a
slower way to find out what they said (a follower's log read after a timeout, recovery's check
of cancels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
HEALTH_SECONDS = 5.0

Handler = Callable[[str], None]
"""Called with a notification's payload, on the event loop; it must not block."""


class Listener:
    def __init__(self, engine: AsyncEngine) -> None:
        _, self._connect_args = engine.dialect.create_connect_args(engine.url)
        self._handlers: dict[str, Handler] = {}
        self._connection: Any = None
        self._started = False
        self.ready = anyio.Event()

    def on(self, channel: str, handler: Handler) -> None:
        """Hand the notifications of `channel` to `handler`; before `listen_forever` starts."""
        if self._started:
            raise RuntimeError(f"listening already: {channel} would be heard only after a cut")
        if channel in self._handlers:
            raise ValueError(f"{channel} has a handler already")
        self._handlers[channel] = handler

    async def listen_forever(self) -> None:
        """Stay connected and listening, until cancelled."""
        self._started = True
        while True:
            try:
                await self._serve()
            except Exception:
                # Whatever went wrong (the server restarted, the network dropped, a bad
                # argument), never let it reach the task group that runs every chat turn.
                logger.warning("notifications: connection lost, reconnecting", exc_info=True)
            finally:
                await self._close()
            await anyio.sleep(RECONNECT_SECONDS)

    async def _serve(self) -> None:
        lost = anyio.Event()
        connection = await asyncpg.connect(**self._connect_args)
        try:
            connection.add_termination_listener(lambda _: lost.set())
            for channel in self._handlers:
                await connection.add_listener(channel, self._notified)
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
            self._handlers[channel](payload)
        except Exception:
            logger.exception("notifications on %s: handler failed", channel)

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.ready = anyio.Event()
        if connection is not None and not connection.is_closed():
            with anyio.move_on_after(2, shield=True):
                await connection.close()

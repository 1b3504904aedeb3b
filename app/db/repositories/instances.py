"""Instances: each instance's heartbeat, by which the others tell it is alive."""

from __future__ import annotations

from sqlalchemy import (
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

_BEAT = text("""
INSERT INTO instances (id) VALUES (:instance)
ON CONFLICT (id) DO UPDATE SET beat_at = now()
""")

_GONE_INSTANCES = text("""
SELECT r.instance_id FROM runs r LEFT JOIN instances i ON i.id = r.instance_id
WHERE r.status = 'active'
GROUP BY r.instance_id
HAVING coalesce(max(i.beat_at), min(r.created_at)) < now() - make_interval(secs => :silent)
""")

_FORGET_INSTANCE = text("DELETE FROM instances WHERE id = :instance")

_PRUNE_INSTANCES = text("""
DELETE FROM instances i
WHERE i.beat_at < now() - make_interval(secs => :silent)
    AND NOT EXISTS (SELECT FROM runs r WHERE r.instance_id = i.id AND r.status = 'active')
""")


class InstanceRepository:
    """The instances' heartbeats. An instance is gone once its heartbeat is older than the
    limit, by the database's clock (the instances' own clocks never compare)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def beat(self, instance: str) -> None:
        await self._connection.execute(_BEAT, {"instance": instance})

    async def gone_with_active_runs(self, *, silent_seconds: float) -> list[str]:
        """Instances with runs still active whose heartbeat stopped `silent_seconds` ago or
        more (one that never beat counts from its oldest active run's start)."""
        keys = {"silent": silent_seconds}
        return list((await self._connection.execute(_GONE_INSTANCES, keys)).scalars())

    async def forget(self, instance: str) -> None:
        await self._connection.execute(_FORGET_INSTANCE, {"instance": instance})

    async def prune(self, *, silent_seconds: float) -> None:
        """Forget instances silent that long that have no active run left."""
        await self._connection.execute(_PRUNE_INSTANCES, {"silent": silent_seconds})

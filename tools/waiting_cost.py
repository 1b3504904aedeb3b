"""What followers waiting at the tip of Redis streams cost: through the log's one shared
blocking read, then as one blocking XREAD each (the design the log does not use). Clients,
blocked clients and memory on the Redis side, and this process's memory (docs/redis.md,
"Waiting").

    python -m tools.waiting_cost [FOLLOWERS]
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from functools import partial

import anyio
from redis.asyncio import Redis

from app.events import LoggedEvent
from app.runs.log.redis_streams import redis_streams_log, stream_key
from tests.redis_servers import redis_server
from tests.support import eventually, process_memory


async def waiting_cost(followers: int) -> None:
    """What `followers` reads waiting at the tip cost: through the log's one shared blocking
    read, then as one blocking XREAD each (the design the log does not use)."""
    with redis_server() as server:

        def figure(section: str, name: str) -> int:
            for line in server.cli("INFO", section).splitlines():
                if line.startswith(f"{name}:"):
                    return int(line.split(":")[1])
            raise LookupError(name)

        def report(how: str, memory: int, rss: int) -> None:
            print(
                f"{how:>22}: {figure('clients', 'connected_clients')} clients, "
                f"{figure('clients', 'blocked_clients')} blocked, Redis memory "
                f"+{(figure('memory', 'used_memory') - memory) // 1024:,} KB, this process "
                f"+{(process_memory('self') - rss) // 1024:,} KB",
                flush=True,
            )

        async def blocked_at_least(count: int) -> bool:
            return figure("clients", "blocked_clients") >= count

        runs = [str(uuid.uuid4()) for _ in range(followers)]
        first = LoggedEvent(1, '{"type":"text","content":"x","seq":1}')
        async with redis_streams_log(server.url, retention_seconds=600) as log:
            await log.append([(run, first) for run in runs])
            memory, rss = figure("memory", "used_memory"), process_memory("self")
            async with anyio.create_task_group() as group:
                group.start_soon(log.serve)
                for run in runs:
                    group.start_soon(partial(log.read, run, 1, wait=30))
                await eventually(lambda: blocked_at_least(1), "the shared read blocks")
                await anyio.sleep(1)  # every read has come to wait
                report("one shared read", memory, rss)
                group.cancel_scope.cancel()
        memory, rss = figure("memory", "used_memory"), process_memory("self")
        client = Redis.from_url(server.url, max_connections=followers + 10)

        async def wait_alone(run: str) -> None:
            await client.xread({stream_key(run): "1-0"}, block=30_000)

        async with anyio.create_task_group() as group:
            for run in runs:
                group.start_soon(wait_alone, run)
            await eventually(lambda: blocked_at_least(followers), "every follower blocks")
            report("one read per follower", memory, rss)
            group.cancel_scope.cancel()
        await client.aclose()


def main() -> None:
    asyncio.run(waiting_cost(int(sys.argv[1]) if len(sys.argv) > 1 else 500))


if __name__ == "__main__":
    main()

"""The load generator the benchmarks share: one chat turn over a raw socket and its stream
read as it arrives (the cheapest client there is, so that the client's own cost stays out of
what is measured), the streams open at once, and percentiles of what the turns saw."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.settings import Settings
from app.web.auth import issue_token
from tools.scenarios import Scenario, cores_to_keep_pace
from tools.servers import SECRET, Process


@dataclass
class Turn:
    ok: bool = False
    failure: str = ""
    start: float | None = None
    first_text: float | None = None
    last_text: float | None = None
    lags: list[float] = field(default_factory=list)


class Streams:
    """How many streams are open at once: from the response's head to the stream's end; and
    how many have had their first text (past the tool call: the turn's largest state)."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.texting = 0

    def opened(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        self.open -= 1


async def one_turn(
    port: int, user: str, token: str, message: str, streams: Streams | None = None
) -> Turn:
    """POST one chat turn over a raw socket and read its stream: the cheapest client there is."""
    turn = Turn()
    body = json.dumps({"message": message}).encode()
    request = (
        f"POST /api/{user}/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    began = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        turn.failure = "connect"
        return turn
    turn.failure = "cut"
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            turn.failure = head[9:12].decode()
            return turn
        if streams is not None:
            streams.opened()
        try:
            await _read_stream(reader, turn, began, streams)
        finally:
            if streams is not None:
                streams.closed()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return turn
    finally:
        writer.close()
    return turn


async def _read_stream(
    reader: asyncio.StreamReader, turn: Turn, began: float, streams: Streams | None
) -> None:
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        now = time.perf_counter()
        wall = time.time()
        buffer += chunk
        while b"\n\n" in buffer:
            block, _, buffer = buffer.partition(b"\n\n")
            start = block.find(b'data: {"type":"')
            if start < 0:
                continue
            kind = block[start + 15 : block.index(b'"', start + 15)]
            if kind == b"text":
                stamp = block[block.index(b'"content":" ') + 12 :].split(b'"', 1)[0]
                turn.lags.append(wall - float(stamp))
                if turn.first_text is None and streams is not None:
                    streams.texting += 1
                turn.first_text = turn.first_text or now - began
                turn.last_text = now - began
            elif kind == b"start":
                turn.start = now - began
            elif kind == b"done":
                turn.ok, turn.failure = True, ""
            elif kind == b"error":
                code = block[block.find(b'"code":"') + 8 :].split(b'"', 1)[0]
                turn.failure = "error:" + code.decode()
                return


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def drive(
    scenario: Scenario, port: int, process: Process, database_url: str | None
) -> dict[str, Any]:
    users = [f"bench-{scenario.name}-{n}-{time.time_ns()}" for n in range(scenario.concurrency)]
    settings = Settings(jwt_secret=SECRET)
    tokens = {user: issue_token(settings, user) for user in users}
    queue = iter(range(scenario.turns))
    turns: list[Turn] = []
    sampling = True
    connections_in_use = 0

    streams = Streams()

    async def worker(user: str) -> None:
        await asyncio.sleep(random.uniform(0, scenario.spread_s))
        for number in queue:
            message = f"add bench item {number}"
            turns.append(await one_turn(port, user, tokens[user], message, streams))

    # How many streams were open when RSS peaked (reported beside RSS per open stream).
    open_at_peak_rss = 0

    async def sample() -> None:
        nonlocal connections_in_use, open_at_peak_rss
        observer = None
        if database_url is not None:
            observer = await asyncpg.connect(
                database_url.replace("postgresql+asyncpg", "postgresql")
            )
        try:
            while sampling:
                rss = process.rss()
                if rss > process.peak_rss:
                    process.peak_rss, open_at_peak_rss = rss, streams.open
                if observer is not None:
                    in_use = await observer.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state <> 'idle' AND pid <> pg_backend_pid()"
                    )
                    connections_in_use = max(connections_in_use, in_use)
                await asyncio.sleep(0.05)
        finally:
            if observer is not None:
                await observer.close()

    baseline_rss = process.rss()
    process.peak_rss = baseline_rss
    sampler = asyncio.create_task(sample())
    cpu_before, client_before = process.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    await asyncio.gather(*(worker(user) for user in users))
    wall = time.perf_counter() - began
    cpu_after, client_after = process.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    sampling = False
    await sampler

    done = [turn for turn in turns if turn.ok]
    starts = [t.start for t in done if t.start is not None]
    firsts = [t.first_text for t in done if t.first_text is not None]
    lags = [lag for t in done for lag in t.lags]
    ratios = [t.last_text / t.first_text for t in done if t.first_text and t.last_text]
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    ms = 1000.0
    failures = Counter(turn.failure for turn in turns if not turn.ok)
    return {
        "turns": len(turns),
        "open_streams_max": streams.peak,
        "errors": len(turns) - len(done),
        "error_kinds": dict(failures),
        "turns_per_s": round(len(done) / wall, 1),
        "server_cpu_ms_per_turn": round((cpu_after - cpu_before) / max(len(done), 1) * ms, 2),
        "server_cpu_share": round((cpu_after - cpu_before) / wall, 2),
        "client_cpu_share": round(client_cpu / wall, 2),
        "start_p50_ms": _ms(percentile(starts, 0.5)),
        "start_p99_ms": _ms(percentile(starts, 0.99)),
        "first_text_p50_ms": _ms(percentile(firsts, 0.5)),
        "first_text_p99_ms": _ms(percentile(firsts, 0.99)),
        "text_lag_p50_ms": _ms(percentile(lags, 0.5)),
        "text_lag_p99_ms": _ms(percentile(lags, 0.99)),
        "last_over_first_text": round(statistics.median(ratios), 1) if ratios else None,
        "peak_rss_mb": round(process.peak_rss / 2**20, 1),
        "rss_per_stream_kb": round(
            (process.peak_rss - baseline_rss) / scenario.concurrency / 1024, 1
        ),
        "open_streams_at_peak_rss": open_at_peak_rss,
        # Divided by the streams open at once at most, not by those open at the RSS's peak
        # sample: the heap does not shrink as streams end, so its peak often comes later,
        # with fewer open (c2000: 240 to 1,470 of 2,000), which overstated it 2 to 8 times.
        "rss_per_open_stream_kb": round(
            (process.peak_rss - baseline_rss) / max(streams.peak, 1) / 1024, 1
        ),
        "db_connections_in_use_max": connections_in_use if database_url else None,
        "cores_to_keep_pace": cores_to_keep_pace(
            (cpu_after - cpu_before) / max(len(done), 1), scenario
        ),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)

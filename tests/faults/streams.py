"""A chat stream read as a client reads it, for the fault scenarios: the response's status,
every event, and a signal once the answer has begun."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support import User


@dataclass
class Stream:
    status: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    cut: bool = False

    @property
    def final(self) -> dict[str, Any]:
        return self.events[-1]


async def read_stream(user: User, message: str, *, stream: Stream | None = None) -> Stream:
    stream = stream or Stream()
    try:
        async with user.client.stream(
            "POST", user.url("/chat/stream"), json={"message": message}, headers=user.headers
        ) as response:
            stream.status = response.status_code
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    stream.events.append(json.loads(line[6:]))
                    if stream.events[-1]["type"] == "text":
                        stream.answering.set()
    except (httpx.RemoteProtocolError, httpx.ReadError):
        stream.cut = True
    stream.answering.set()
    return stream

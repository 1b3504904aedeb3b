"""The two servers the benchmark drives, each in a process of its own under uvicorn (uvloop,
httptools, one worker):

- `service`: todo-chat itself, on a real PostgreSQL, with the offline model stamping each text
  token with the wall-clock time it was produced (the model is the edge we may fake);
- `reference`: a bare sse-starlette app that emits the same events, framed the same way, with
  the same pacing and stamps, and no auth, database or agent.

    python -m tools.bench_server service|reference PORT DELAY_MS TOKENS [WORKERS]
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import signal
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from agents.items import TResponseStreamEvent
from openai.types.responses import ResponseTextDeltaEvent
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.agent.offline import OfflineModel
from app.main import create_app
from app.settings import Settings


def stamp() -> str:
    return f" {time.time():.6f}"


class StampingModel(OfflineModel):
    """The offline model, whose reply is `tokens` tokens (its own count when 0), each one the
    time it was produced, paced `delay_ms` apart."""

    def __init__(self, *, delay_ms: int, tokens: int) -> None:
        super().__init__()
        self._delay = delay_ms / 1000
        self._tokens = tokens

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        replied = False
        async for event in super().stream_response(*args, **kwargs):
            if not isinstance(event, ResponseTextDeltaEvent):
                yield event
                continue
            if self._tokens and replied:
                continue
            replied = True
            for _ in range(self._tokens or 1):
                if self._delay:
                    await asyncio.sleep(self._delay)
                yield event.model_copy(update={"delta": stamp()})


def reference_app(delay_ms: int, tokens: int) -> Starlette:
    delay = delay_ms / 1000

    async def stream(request: Request) -> Response:
        await request.body()
        run_id = "00000000-0000-0000-0000-000000000000"

        def frame(seq: int, payload: dict[str, Any]) -> bytes:
            data = json.dumps({**payload, "seq": seq}, separators=(",", ":"))
            return f"id: {run_id}:{seq}\n\ndata: {data}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            seq = 0

            def next_seq() -> int:
                nonlocal seq
                seq += 1
                return seq

            yield frame(
                next_seq(),
                {"type": "start", "conversation_id": 1, "message_id": 1, "run_id": run_id},
            )
            yield frame(
                next_seq(), {"type": "thinking", "message": 'Adding "Bench item" to the list.'}
            )
            call = {"call_id": "call_1", "name": "add_task"}
            yield frame(
                next_seq(), {"type": "tool_call", **call, "arguments": {"title": "Bench item"}}
            )
            task = {"id": 1, "title": "Bench item", "description": None, "completed": False}
            yield frame(next_seq(), {"type": "tool_result", **call, "output": {"task": task}})
            for _ in range(tokens or 9):
                if delay:
                    await asyncio.sleep(delay)
                yield frame(next_seq(), {"type": "text", "content": stamp()})
            usage = {"requests": 2, "input_tokens": 50, "output_tokens": 12, "total_tokens": 62}
            yield frame(
                next_seq(),
                {
                    "type": "done",
                    "conversation_id": 1,
                    "message_id": 2,
                    "usage": usage,
                    "status": "complete",
                },
            )

        return EventSourceResponse(events(), sep="\n", ping=15)

    return Starlette(routes=[Route("/api/{user_id}/chat/stream", stream, methods=["POST"])])


def service_app() -> Starlette:
    """The service as each of several workers builds it (uvicorn imports it by name)."""
    delay_ms, tokens = int(os.environ["BENCH_DELAY_MS"]), int(os.environ["BENCH_TOKENS"])
    return create_app(Settings.from_env(), model=StampingModel(delay_ms=delay_ms, tokens=tokens))


def _trace_memory(path: str) -> None:
    """`tools.stream_memory`: trace allocations from the start; at each SIGUSR1 write a
    snapshot, and how many objects of each type the collector sees, to `path`.N."""
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "20")))
    taken = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal taken
        gc.collect()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        snapshot = tracemalloc.take_snapshot()
        Path(f"{path}.{taken}.tmp").write_bytes(pickle.dumps((snapshot, types)))
        Path(f"{path}.{taken}.tmp").rename(f"{path}.{taken}")
        taken += 1

    signal.signal(signal.SIGUSR1, dump)


def _time_collections(path: str) -> None:
    """`tools.cpu_split`: the collector's CPU time and collections by generation; at each
    SIGUSR2 written to `path`.PID as JSON."""
    cpu = [0.0, 0.0, 0.0]
    count = [0, 0, 0]
    began = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal began
        if phase == "start":
            began = time.thread_time()
            return
        cpu[info["generation"]] += time.thread_time() - began
        count[info["generation"]] += 1

    def dump(signum: int, frame: object) -> None:
        target = Path(f"{path}.{os.getpid()}")
        target.with_suffix(".tmp").write_text(json.dumps({"cpu": cpu, "count": count}))
        target.with_suffix(".tmp").rename(target)

    gc.callbacks.append(timed)
    signal.signal(signal.SIGUSR2, dump)


def main() -> None:
    if os.environ.get("BENCH_TRACEMALLOC"):
        _trace_memory(os.environ["BENCH_TRACEMALLOC"])
    if os.environ.get("BENCH_GC_TIMES"):
        _time_collections(os.environ["BENCH_GC_TIMES"])
    if os.environ.get("BENCH_CPU_SAMPLES"):
        from tools.cpu_layers import sample_cpu

        sample_cpu(os.environ["BENCH_CPU_SAMPLES"])
    kind, port, delay_ms, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    app: Starlette | str
    if kind == "service":
        os.environ.update(BENCH_DELAY_MS=str(delay_ms), BENCH_TOKENS=str(tokens))
        # Several workers each build it; one builds it here.
        app = "tools.bench_server:service_app" if workers > 1 else service_app()
        if os.environ.get("BENCH_PHASES") and not isinstance(app, str):
            from tools.start_phases import instrument

            app = instrument(os.environ["BENCH_PHASES"])(app)
    else:
        app = reference_app(delay_ms, tokens)
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

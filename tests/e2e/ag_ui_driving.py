"""Driving `@ag-ui/client` (tests/clients/ag_ui_client.mjs) against the live service: the
config of a client run, all runs of one Node process at once, or one whose events the test
watches as they arrive."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

from tests.support import CLIENTS, LiveServer, User, node_with_clients, run_node

Result = dict[str, Any]
CLIENT_LINES = ["1.0.0", "0.0.59"]


def user_message(text: str) -> dict[str, Any]:
    return {"id": f"m-{uuid.uuid4().hex[:12]}", "role": "user", "content": text}


def new_thread() -> str:
    return f"thread-{uuid.uuid4().hex[:10]}"


def base_url(live: LiveServer) -> str:
    return str(live.client.base_url).rstrip("/")


def agent_run(
    live: LiveServer | str,
    user: User,
    thread: str,
    messages: list[dict[str, Any]],
    client: str = "1.0.0",
    **more: Any,
) -> dict[str, Any]:
    """One run of an `HttpAgent` (a resuming one with `resumeUrl`) against `live`'s service
    (or the base URL given, as a proxy's), with `user`'s token."""
    base = live if isinstance(live, str) else base_url(live)
    return {
        "client": client,
        "url": f"{base}/api/{user.id}/ag-ui",
        "threadId": thread,
        "messages": messages,
        "headers": user.headers,
        **more,
    }


def resume_url(base: str, user: User, thread: str) -> str:
    return f"{base}/api/{user.id}/ag-ui/{thread}/stream"


async def run_agents(*runs: dict[str, Any]) -> list[Result]:
    """The runs, one after the other in one Node process; what each client saw."""
    result = await run_node("ag_ui_client.mjs", json.dumps({"runs": list(runs)}))
    seen: list[Result] = result["runs"]
    return seen


class WatchedAgent:
    """One client run whose events the test sees as they arrive (the script writes each
    event's type to stderr as its subscriber gets it)."""

    def __init__(self, run: dict[str, Any]) -> None:
        self._run = run
        self._process: asyncio.subprocess.Process | None = None
        self.arrived: Counter[str] = Counter()
        self._stderr: list[bytes] = []

    async def __aenter__(self) -> WatchedAgent:
        self._process = await asyncio.create_subprocess_exec(
            node_with_clients(),
            str(CLIENTS / "ag_ui_client.mjs"),
            json.dumps({"runs": [self._run]}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def until(self, event_type: str, count: int = 1) -> None:
        """Return once the client has received `count` events of `event_type` (60 s bounds a
        wait that would otherwise never end: a stream held back until the run's end)."""
        assert self._process is not None and self._process.stderr is not None
        async with asyncio.timeout(60):
            while self.arrived[event_type] < count:
                line = await self._process.stderr.readline()
                assert line, f"the client ended with {dict(self.arrived)}: {self._stderr}"
                self._stderr.append(line)
                if line.startswith(b"event "):
                    self.arrived[line[6:].strip().decode()] += 1

    async def result(self) -> Result:
        assert self._process is not None
        stdout, stderr = await asyncio.wait_for(self._process.communicate(), timeout=90)
        assert self._process.returncode == 0, (stdout, self._stderr, stderr)
        seen: Result = json.loads(stdout)["runs"][0]
        return seen


def clean(seen: Result) -> None:
    """No failure, no rejection, nothing written to console.warn or console.error (so no
    `[ag-ui]` warning of any kind)."""
    assert (seen["failed"], seen["threw"], seen["warnings"]) == ([], None, []), seen


def stored_task_state(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The tasks as `GET /tasks` gives them, as the AG-UI state holds them."""
    fields = ("id", "title", "description", "completed")
    return {"tasks": [{name: task[name] for name in fields} for task in tasks]}

"""The runs' own tasks: each a plain asyncio task under a cancel scope of its own, cancelled
when the task group the registry was handed is, and waited for by it, as the group's own
children would be (`start_soon`).

Not `start_soon` itself: for as long as a run lasts, anyio keeps beside its task a handle with a
cancel scope and an Event of its own (an asyncio.Event and its preallocated deque), about 3 KB
of every open stream (docs/performance.md); a cancel scope alone is a fifth of that. The scope
keeps what the group's cancellation means to a run: delivered again until the run ends, and
held off by the shielded scopes it enters (its end being stored, `RunRegistry.finish`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup


class RunTasks:
    def __init__(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self._running: dict[asyncio.Task[None], anyio.CancelScope] = {}
        self._watching = False
        self._cancelling = False

    def start(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work()` in a task of its own, in the caller's context (as `start_soon`)."""
        if not self._watching:
            self._watching = True
            self._task_group.start_soon(self._cancel_with_the_group)
        scope = anyio.CancelScope()
        if self._cancelling:
            scope.cancel()  # begun as the group was being cancelled: stopped at once
        task = asyncio.get_running_loop().create_task(_within(scope, work))
        self._running[task] = scope
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        del self._running[task]
        if not task.cancelled() and task.exception() is not None:
            # `work` handles its own failures; one that escapes is a bug, as in the group.
            asyncio.get_running_loop().call_exception_handler(
                {"message": "a run's task failed", "exception": task.exception(), "task": task}
            )

    async def _cancel_with_the_group(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self._cancelling = True
            with anyio.CancelScope(shield=True):
                while self._running:
                    for scope in self._running.values():
                        scope.cancel()
                    await asyncio.wait(list(self._running))
            self._watching = False  # a run begun from now on is watched anew


async def _within(scope: anyio.CancelScope, work: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await work()

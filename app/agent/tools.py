"""The todo tools the model may call. Each acts on the `TaskBook` of the turn's verified user,
taken from the run context: no tool has a user parameter, so no prompt can choose the user."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from agents import FunctionTool, ModelBehaviorError, RunContextWrapper, function_tool

from app.domain import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    Task,
    TaskBook,
    TaskChanges,
    TaskFilter,
    TaskNotFound,
    task_title,
)

logger = logging.getLogger(__name__)

MAX_LISTED_TASKS = 100


@dataclass(frozen=True, slots=True)
class TurnContext:
    tasks: TaskBook


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
    }


def _result(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def _error(code: str, message: str) -> str:
    return _result(error=code, message=message)


def _not_found(task_id: int) -> str:
    return _result(error="not_found", task_id=task_id, message=f"There is no task #{task_id}.")


def _tool_failed(context: RunContextWrapper[Any], error: Exception) -> str:
    """What the model is told when a tool call fails: a short, safe reason. Details: the log."""
    if isinstance(error, ModelBehaviorError):
        logger.warning("a tool was called with invalid arguments: %s", error)
        return _error(
            "invalid_arguments",
            "The arguments do not fit this tool's parameters. Nothing was changed.",
        )
    logger.error("a tool call failed", exc_info=error)
    return _error("tool_failed", "The task list failed on our side. Nothing was changed.")


def _title_error() -> str:
    return _error("invalid_title", f"A title needs 1 to {MAX_TITLE_CHARS} characters.")


def _description_error() -> str:
    return _error(
        "invalid_description", f"A description has at most {MAX_DESCRIPTION_CHARS} characters."
    )


@function_tool(failure_error_function=_tool_failed)
async def add_task(
    context: RunContextWrapper[TurnContext], title: str, description: str | None = None
) -> str:
    """Add a task to the user's todo list.

    Args:
        title: A short title, such as "Buy milk".
        description: Optional details about the task.
    """
    clean = task_title(title)
    if clean is None:
        return _title_error()
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        return _description_error()
    task = await context.context.tasks.add(clean, description or None)
    return _result(task=task_json(task))


@function_tool(failure_error_function=_tool_failed)
async def list_tasks(
    context: RunContextWrapper[TurnContext],
    status: Literal["pending", "completed", "all"] = "all",
) -> str:
    """List the user's tasks with their ids.

    Args:
        status: Which tasks: "pending" (not done yet), "completed", or "all".
    """
    tasks = await context.context.tasks.list(TaskFilter(status), limit=MAX_LISTED_TASKS + 1)
    if len(tasks) > MAX_LISTED_TASKS:
        # What the model reads goes into its context, and costs tokens: a bounded list.
        shown = [task_json(task) for task in tasks[:MAX_LISTED_TASKS]]
        note = f"Only the first {MAX_LISTED_TASKS} are listed; the user has more."
        return _result(status=status, tasks=shown, truncated=True, note=note)
    return _result(status=status, tasks=[task_json(task) for task in tasks])


@function_tool(failure_error_function=_tool_failed)
async def complete_task(context: RunContextWrapper[TurnContext], task_id: int) -> str:
    """Mark one of the user's tasks as done.

    Args:
        task_id: The task's id, as list_tasks shows it.
    """
    try:
        task = await context.context.tasks.update(task_id, TaskChanges(completed=True))
    except TaskNotFound:
        return _not_found(task_id)
    return _result(task=task_json(task))


@function_tool(failure_error_function=_tool_failed)
async def update_task(
    context: RunContextWrapper[TurnContext],
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    completed: bool | None = None,
) -> str:
    """Change a task's title or description, or mark it done or not done.

    Args:
        task_id: The task's id, as list_tasks shows it.
        title: The new title, or null to keep it.
        description: The new description, or null to keep it.
        completed: true for done, false for not done, null to keep it.
    """
    clean = None
    if title is not None and (clean := task_title(title)) is None:
        return _title_error()
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        return _description_error()
    changes = TaskChanges(title=clean, description=description, completed=completed)
    if changes.is_empty():
        return _error("nothing_to_change", "Give a new title, description or completed state.")
    try:
        task = await context.context.tasks.update(task_id, changes)
    except TaskNotFound:
        return _not_found(task_id)
    return _result(task=task_json(task))


@function_tool(failure_error_function=_tool_failed)
async def delete_task(context: RunContextWrapper[TurnContext], task_id: int) -> str:
    """Delete one of the user's tasks for good.

    Args:
        task_id: The task's id, as list_tasks shows it.
    """
    try:
        task = await context.context.tasks.delete(task_id)
    except TaskNotFound:
        return _not_found(task_id)
    return _result(deleted=task_json(task))


TODO_TOOLS: list[FunctionTool] = [add_task, list_tasks, complete_task, update_task, delete_task]

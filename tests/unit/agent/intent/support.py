"""Tasks and results as the tools answer them, for the intent tests."""

from __future__ import annotations

from typing import Any

from app.agent.intent import Step, ToolResult


def task(id: int, title: str, completed: bool = False) -> dict[str, Any]:
    return {"id": id, "title": title, "completed": completed, "description": None}


def listing(*tasks: dict[str, Any]) -> ToolResult:
    return ToolResult("list_tasks", {"status": "all", "tasks": list(tasks)})


def added(id: int, title: str) -> ToolResult:
    return ToolResult("add_task", {"task": task(id, title)})


def completed(id: int, title: str) -> ToolResult:
    return ToolResult("complete_task", {"task": task(id, title, completed=True)})


def planned(step: Step) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, call.arguments) for call in step.calls]

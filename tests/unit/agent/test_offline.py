"""The offline model reading the conversation the SDK hands it (no I/O)."""

from __future__ import annotations

import json
from typing import Any

from app.agent.offline import _plan


def _call(call_id: str, title: str) -> dict[str, Any]:
    arguments = json.dumps({"title": title})
    return {"type": "function_call", "call_id": call_id, "name": "add_task", "arguments": arguments}


def _output(call_id: str, task_id: int, title: str) -> dict[str, Any]:
    task = {"id": task_id, "title": title, "description": None, "completed": False}
    return {
        "type": "function_call_output",
        "call_id": call_id,
        "output": json.dumps({"task": task}),
    }


def test_parallel_calls_are_answered_with_one_reply_whatever_order_their_outputs_come_in() -> None:
    """Outputs are paired with their calls by id: the reply names the tasks in the order
    they were asked for, even when the outputs come back in another."""
    items: list[Any] = [
        {"role": "user", "content": "add milk and eggs"},
        _call("call_1", "Milk"),
        _call("call_2", "Eggs"),
        _output("call_2", 8, "Eggs"),
        _output("call_1", 7, "Milk"),
    ]
    step = _plan(items)
    assert step.calls == ()
    assert step.reply == 'Added "Milk" (#7) and "Eggs" (#8) to your list.'

"""What the words after a command name."""

from __future__ import annotations

from app.agent.intent import Intent
from app.agent.intent.references import is_pronoun, renaming, targeting


def test_references() -> None:
    assert targeting("complete", "task 3 and 5") == Intent("complete", task_ids=(3, 5))
    assert targeting("delete", "it") == Intent("delete", refers_back=True)
    assert is_pronoun("paid it") and not is_pronoun("paid the bill")
    assert targeting("complete", "all the pending ones") == Intent(
        "complete", every=True, status="pending"
    )
    refused = targeting("delete", "everything")
    assert refused.action == "say" and "clear completed tasks" in (refused.reply or "")


def test_renaming() -> None:
    assert renaming("task 3", "done") == Intent("complete", task_ids=(3,))
    assert renaming("task 3", "Friday") is not None
    assert renaming("task 3", "Friday").action == "say"  # type: ignore[union-attr]
    assert renaming("it", "call dad") == Intent("rename", new_title="Call dad", refers_back=True)

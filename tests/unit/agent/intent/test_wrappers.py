"""What is said around a request."""

from __future__ import annotations

import pytest

from app.agent.intent.wrappers import is_pleasantry, strip_openers, strip_wrappers


def test_openers_are_stripped_and_their_kinds_kept() -> None:
    assert strip_openers("hi! thanks a bunch, add milk") == ("add milk", {"greet", "thank"})
    assert strip_openers("ok so") == ("", {"ack"})


@pytest.mark.parametrize(
    ("said", "inside"),
    [
        ("could you please be a dear and add milk", "add milk"),
        ("would you mind adding milk to my list", "add milk to my list"),
        ("I was wondering if you could add milk", "add milk"),
        ("if it's not too much trouble, please add milk", "add milk"),
        ("when you get a chance, add milk", "add milk"),
        ("sorry to bother you, but could you add milk", "add milk"),
        ("would you be so kind as to remove task 6", "remove task 6"),
        ("may I ask you to add milk", "add milk"),
        ("if you could add 'milk' that would be great", "add 'milk'"),
        ("add milk - thanks a million", "add milk"),
        ("add milk, please", "add milk"),
        ("be a star and tick off the laundry for me", "tick off the laundry"),
    ],
)
def test_wrappers_leave_the_request_as_typed(said: str, inside: str) -> None:
    assert strip_wrappers(said) == inside


def test_pleasantries() -> None:
    assert is_pleasantry("I hope you're well")
    assert is_pleasantry("hope your day is going well")
    assert not is_pleasantry("add hope to the list")

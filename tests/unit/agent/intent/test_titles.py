"""The titles an add request names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.agent.intent import understand
from app.agent.intent.titles import strip_list_suffix, titles


def test_titles() -> None:
    assert titles("milk, eggs and bread") == ("Milk", "Eggs", "Bread")
    assert titles("'call mom', 'pay rent' and also 'book dentist'") == (
        "Call mom",
        "Pay rent",
        "Book dentist",
    )
    assert titles("1. call the bank 2. pay rent") == ("Call the bank", "Pay rent")
    assert titles("water the plants and also to take out the trash") == (
        "Water the plants",
        "Take out the trash",
    )
    assert titles("item 1 and item 2") == ("Item 1", "Item 2")
    assert titles("call mom and dad") == ("Call mom and dad",)
    assert strip_list_suffix("milk to my list") == "milk"


_NOUNS = ["item", "step", "part", "chapter", "phase", "level", "room", "task", "entry"]
_NUMBERS = st.integers(0, 999).map(str) | st.sampled_from(["one", "two", "three", "twelve"])


@given(st.sampled_from(_NOUNS), st.lists(_NUMBERS, min_size=2, max_size=4, unique=True))
def test_numbered_things_are_titles_whole(noun: str, numbers: list[str]) -> None:
    """ "item 1 and item 2" adds "Item 1" and "Item 2" (not "1" and "Item 2"), and so does
    "item 1 and 2" or "items 1 and 2": the name said once holds for each number."""
    expected = tuple(f"{noun.capitalize()} {number}" for number in numbers)
    each = [f"{noun} {number}" for number in numbers]
    for said in (
        ", ".join(each[:-1]) + " and " + each[-1],
        f"{noun} " + ", ".join(numbers[:-1]) + " and " + numbers[-1],
        f"{noun}s " + ", ".join(numbers[:-1]) + " and " + numbers[-1],
    ):
        assert titles(said) == expected
        # And so in a whole message: an add, whatever tasks those numbers might name.
        (intent,) = understand(f"add {said}").actions
        assert (intent.action, intent.titles) == ("add", expected), said

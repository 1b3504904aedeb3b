"""The titles an add request names."""

from __future__ import annotations

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

"""A message into its actions: sentences and clauses, wrappers, slips, "it"."""

from __future__ import annotations

import pytest

from app.agent.intent import Intent, Request, understand


def _actions(message: str) -> tuple[Intent, ...]:
    return understand(message).actions


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("add buy milk", Intent("add", titles=("Buy milk",))),
        ("Add 'Call the bank' to my todo list.", Intent("add", titles=("Call the bank",))),
        ("please add a task to water the plants", Intent("add", titles=("Water the plants",))),
        ("Remind me to book flights to Lisbon", Intent("add", titles=("Book flights to Lisbon",))),
        ("I need to renew my passport", Intent("add", titles=("Renew my passport",))),
        ("list my tasks", Intent("list", status="all")),
        ("What's left?", Intent("list", status="pending")),
        ("show completed tasks", Intent("list", status="completed")),
        ("complete task 3", Intent("complete", task_ids=(3,))),
        ("done with buy milk", Intent("complete", words="buy milk")),
        ("I finished the laundry", Intent("complete", words="the laundry")),
        ("mark 5 as not done", Intent("reopen", task_ids=(5,))),
        ("remove buy milk from my list", Intent("delete", words="buy milk")),
        (
            "rename task 3 to Buy oat milk",
            Intent("rename", task_ids=(3,), new_title="Buy oat milk"),
        ),
        ("hello", Intent("greet")),
        ("thanks!", Intent("thank")),
        ("what is the capital of France?", Intent("help")),
        ("add", Intent("help")),
    ],
)
def test_one_request_is_one_action(message: str, intent: Intent) -> None:
    assert understand(message) == Request.of(intent)


def test_a_new_request_after_and_is_a_second_action() -> None:
    assert _actions("add buy stamps and mark call mom as done") == (
        Intent("add", titles=("Buy stamps",)),
        Intent("complete", words="call mom"),
    )
    assert _actions("delete task 14, then add fix the signup bug") == (
        Intent("delete", task_ids=(14,)),
        Intent("add", titles=("Fix the signup bug",)),
    )
    # Sentences too, and a request that reads as nothing stays with the one before it.
    assert _actions("called mom. add buy flowers") == (
        Intent("complete", words="called mom"),
        Intent("add", titles=("Buy flowers",)),
    )
    assert _actions("add milk and show tickets") == (
        Intent("add", titles=("Milk", "Show tickets")),
    )


def test_one_verb_with_two_objects_stays_one_task() -> None:
    assert _actions("add call mom and dad") == (Intent("add", titles=("Call mom and dad",)),)
    assert _actions("remind me to call mom and pay rent") == (
        Intent("add", titles=("Call mom", "Pay rent")),
    )
    assert _actions("add mac and cheese") == (Intent("add", titles=("Mac and cheese",)),)


def test_a_question_searches_and_never_adds() -> None:
    assert _actions("do I have anything about mom?") == (Intent("search", words="mom"),)
    assert _actions("did I already add milk?") == (Intent("search", words="milk"),)
    assert _actions("have I called mom yet?") == (Intent("search", words="called mom"),)
    # About the list as a whole: a listing.
    assert _actions("did I finish anything today?") == (Intent("list", status="completed"),)


def test_wordy_wrappers_leave_the_request() -> None:
    message = "Hey! Could you please be a dear and add 'renew car insurance' to my list? Thanks!"
    assert _actions(message) == (Intent("add", titles=("Renew car insurance",)),)
    assert _actions("Would you mind marking the plants as done? Thank you kindly.") == (
        Intent("complete", words="the plants"),
    )


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("ad buy stamps", "add buy stamps"),
        ("delte task 3", "delete task 3"),
        ("mrak task 5 as done", "mark task 5 as done"),
        ("remmber to call the plumber", "remember to call the plumber"),
        ("shwo my tasks", "show my tasks"),
    ],
)
def test_a_one_letter_slip_in_the_command_word_is_read_as_the_word(typed: str, meant: str) -> None:
    assert understand(typed) == understand(meant)


@pytest.mark.parametrize("message", ["odd socks", "park the car", "how do I add a task?"])
def test_a_real_word_is_not_a_slip(message: str) -> None:
    assert understand(message).actions[0].action in ("help", "add")
    assert understand(message).actions[0].action == "help"


def test_it_is_the_task_named_in_the_same_message() -> None:
    assert _actions("never mind about calling mom, remove it") == (
        Intent("delete", words="calling mom"),
    )
    assert _actions("the dentist appointment, mark it as not done") == (
        Intent("reopen", words="the dentist appointment"),
    )
    assert _actions("call mom, that's done") == (Intent("complete", words="call mom"),)
    assert _actions("about task 31 - I renewed it") == (Intent("complete", task_ids=(31,)),)
    assert _actions("add buy milk and mark it as done") == (
        Intent("add", titles=("Buy milk",)),
        Intent("complete", added=0),
    )
    # With nothing named before it, "it" is asked about.
    [asked] = _actions("remove it")
    assert asked.action == "say" and "Which task" in (asked.reply or "")


def test_task_n_should_be_renames_it() -> None:
    assert _actions("task 12 should be call mom on sunday") == (
        Intent("rename", task_ids=(12,), new_title="Call mom on sunday"),
    )
    assert _actions("Task 1 should be buy oat milk instead") == (
        Intent("rename", task_ids=(1,), new_title="Buy oat milk"),
    )


def test_add_item_1_and_item_2_keeps_the_nouns() -> None:
    assert _actions("add item 1 and item 2") == (Intent("add", titles=("Item 1", "Item 2")),)
    assert _actions("add task: fix the bike") == (Intent("add", titles=("Fix the bike",)),)

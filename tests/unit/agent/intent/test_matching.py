"""Finding tasks by the user's words."""

from __future__ import annotations

from app.agent.intent.matching import match_tasks, names_words, scored_matches, stem
from tests.unit.agent.intent.support import task


def test_a_word_and_its_forms_share_a_stem() -> None:
    assert stem("water") == stem("watered") == stem("watering")
    assert stem("paid") == stem("pay")
    assert stem("slides") == stem("slide")


def test_matching_prefers_the_best_and_reports_ambiguity() -> None:
    tasks = [task(1, "Buy milk"), task(2, "Buy bread"), task(3, "Call mom")]
    assert match_tasks("milk", tasks, "complete") == [tasks[0]]
    assert match_tasks("the milk", tasks, "delete") == [tasks[0]]
    assert match_tasks("CALL MOM", tasks, "delete") == [tasks[2]]
    assert match_tasks("buy", tasks, "delete") == [tasks[0], tasks[1]]
    assert match_tasks("walk the dog", tasks, "delete") == []


def test_completing_prefers_the_task_not_yet_done() -> None:
    tasks = [task(1, "Buy milk", completed=True), task(2, "Buy milk")]
    assert match_tasks("milk", tasks, "complete") == [tasks[1]]
    assert match_tasks("milk", tasks, "reopen") == [tasks[0]]


def test_the_title_itself_scores_whole_and_half_a_match_is_the_least() -> None:
    tasks = [task(1, "Buy milk"), task(2, "Call the bank")]
    assert scored_matches("buy milk", tasks, "delete") == (1.0, [tasks[0]])
    assert scored_matches("call the vet", tasks, "delete") == (0.5, [tasks[1]])
    assert scored_matches("call the vet today", tasks, "delete")[1] == []


def test_only_words_that_can_name_a_task_count() -> None:
    assert not names_words("it is the one")
    assert names_words("the dentist")

"""Finding tasks by the user's words: a crude common form of each word (a stem), and the
tasks whose titles share the most of them."""

from __future__ import annotations

import re
from typing import Any

from app.agent.intent.vocabulary import IRREGULAR_PAST, STOP_WORDS

Task = dict[str, Any]

_WORD = re.compile(r"[a-z0-9']+")


def stem(word: str) -> str:
    """The same for "water", "watered" and "watering", "paid" and "pay"."""
    word = IRREGULAR_PAST.get(word.removesuffix("'s").strip("'"), word.removesuffix("'s"))
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith(("ied", "ies")):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def stems(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    return {stem(word) for word in words if word.strip("'") not in STOP_WORDS} - {""}


def names_words(text: str) -> bool:
    """Whether the text has a word that could name a task (stops at the first)."""
    return any(word.strip("'") not in STOP_WORDS for word in _WORD.findall(text.lower()))


def match_tasks(words: str, tasks: list[Task], action: str) -> list[Task]:
    """The tasks whose titles best match `words`; more than one when it is ambiguous."""
    return scored_matches(words, tasks, action)[1]


def scored_matches(words: str, tasks: list[Task], action: str) -> tuple[float, list[Task]]:
    """The best share of the words' stems a title has (1.0 for the title itself), and the
    tasks that have it; none below one half."""
    wanted = words.strip(" \"'").lower()
    exact = [task for task in tasks if str(task["title"]).lower() == wanted]
    if exact:
        return 1.0, exact
    named = stems(words)
    if not named:
        return 0.0, []
    scored = [(len(named & stems(str(task["title"]))) / len(named), task) for task in tasks]
    best = max((score for score, _ in scored), default=0.0)
    if best < 0.5:
        return best, []
    matches = [task for score, task in scored if score == best]
    if len(matches) > 1 and action in ("complete", "reopen"):
        # "done with milk" means the milk task that is not done yet, and the other way round.
        wanted_state = action == "reopen"
        narrowed = [task for task in matches if bool(task["completed"]) == wanted_state]
        matches = narrowed or matches
    return best, matches

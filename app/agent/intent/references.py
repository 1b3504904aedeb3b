"""What the words after a command name: task numbers, "it", every task of a kind, or words to
find a task by; and the action on them, or the question to ask instead."""

from __future__ import annotations

import re

from app.agent.intent.actions import Action, Intent, Status
from app.agent.intent.matching import names_words
from app.agent.intent.replies import which_task
from app.agent.intent.titles import capitalized, clean_part, strip_list_suffix
from app.agent.intent.vocabulary import (
    DONE_STATE,
    NOT_DONE_STATE,
    NUMBERS,
    PRONOUN_REF,
    VERB_AND_PRONOUN,
)

_EVERY_COMPLETED = re.compile(
    r"^(?:(?:all|every)\s+)?(?:of\s+)?(?:the\s+|my\s+)?(?:completed|done|finished|ticked off"
    r"|checked off|crossed off)(?:\s+(?:tasks?|ones|items|todos|things))?$"
    r"|^(?:all|everything|every task|all (?:my |the )?tasks)\s+(?:that's|that is|that are"
    r"|which are|i've|i have|we've)\s+(?:already\s+)?(?:done|completed|finished)$"
)
_EVERY_PENDING = re.compile(
    r"^(?:(?:all|every)\s+)?(?:of\s+)?(?:the\s+|my\s+)?(?:pending|open|unfinished|remaining"
    r"|outstanding)(?:\s+(?:tasks?|ones|items|todos|things))?$"
)
_EVERYTHING = re.compile(
    r"^(?:everything|all|all of (?:it|them)|all (?:of )?(?:my |the )?(?:tasks|todos|items)"
    r"|every task|the whole (?:list|thing)|my whole list|my (?:[\w-]+ )?list|the (?:[\w-]+ )?list"
    r"|the lot)$"
)
_TIME_ONLY = re.compile(
    r"^(?:(?:next|this|on|at|by|until|till|for)\s+)*(?:today|tonight|tomorrow|later|now|soon"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day|week|weekend|month|year|morning|afternoon"
    r"|evening|noon|midnight|\d{1,2}(?:[:.]\d\d)?\s*(?:am|pm)?|the (?:weekend|morning|evening))$"
)
_NOT_SCHEDULED = (
    "I can't schedule tasks, only rename them. To put the day in the title, say it in full, "
    'like "rename task 3 to dentist on Friday".'
)


def is_pronoun(reference: str) -> bool:
    lower = reference.strip(" \"',:").lower()
    return bool(PRONOUN_REF.match(lower) or VERB_AND_PRONOUN.match(lower))


def names_something(reference: str) -> bool:
    """False for "I'm" in "I'm tired": no number, no pronoun, no word that could name a task."""
    lower = reference.strip().lower()
    return bool(NUMBERS.match(lower) or is_pronoun(lower) or every(lower) or names_words(lower))


def targeting(action: Action, reference: str) -> Intent:
    """The tasks a reference names: numbers, words, every task of a kind; "it" refers back to
    a task named elsewhere in the message (`refers_back`), or is asked about."""
    reference = strip_list_suffix(reference).strip(" \"',:")
    lower = reference.lower()
    if not lower:
        return Intent("say", reply=which_task(action))
    if is_pronoun(lower):
        return Intent(action, refers_back=True)
    kind = every(lower)
    if kind is not None:
        return _every_intent(action, kind)
    if NUMBERS.match(lower):
        return Intent(action, task_ids=tuple(int(n) for n in re.findall(r"\d+", lower)))
    return Intent(action, words=reference)


def renaming(reference: str, new: str) -> Intent | None:
    if re.fullmatch(r"(?:i|we|you|he|she|they)", reference.strip().lower()):
        return None
    new_title = clean_part(strip_list_suffix(new))
    if re.fullmatch(DONE_STATE, new_title.lower()):
        return targeting("complete", reference)  # "change task 3 to done"
    if re.fullmatch(NOT_DONE_STATE, new_title.lower()):
        return targeting("reopen", reference)
    if not new_title:
        return None
    if _TIME_ONLY.match(new_title.lower()):  # "move the dentist to Friday": not a new title
        return Intent("say", reply=_NOT_SCHEDULED)
    intent = targeting("rename", reference)
    if intent.action != "rename":
        return intent
    if len(intent.task_ids) > 1:
        return Intent("say", reply="I rename one task at a time: which one?")
    return Intent(
        "rename",
        task_ids=intent.task_ids,
        words=intent.words,
        new_title=capitalized(new_title),
        refers_back=intent.refers_back,
    )


def adding(titles: tuple[str, ...], prefix: str = "") -> Intent | None:
    if not titles:
        return None
    if len(titles) == 1 and PRONOUN_REF.match(titles[0].lower()):
        return Intent("say", reply='What should I add? For example: "add buy milk".')
    if prefix:
        titles = tuple(prefix + title[:1].lower() + title[1:] for title in titles)
    return Intent("add", titles=titles)


def every(reference: str) -> Status | None:
    if _EVERY_COMPLETED.match(reference):
        return "completed"
    if _EVERY_PENDING.match(reference):
        return "pending"
    return "all" if _EVERYTHING.match(reference) else None


def _every_intent(action: Action, kind: Status) -> Intent:
    if action == "delete" and kind != "completed":
        return Intent(
            "say",
            reply="To keep your list safe I don't delete everything at once: name a task, "
            'like "delete task 3", or say "clear completed tasks".',
        )
    if action == "rename":
        return Intent("say", reply=which_task(action))
    default: Status = "completed" if action in ("delete", "reopen") else "pending"
    return Intent(action, every=True, status=default if kind == "all" else kind)

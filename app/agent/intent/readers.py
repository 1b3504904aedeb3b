"""Reading one clause: a list of readers, each the phrasings of one kind of request, tried in
order; the first that recognises the clause says what it asks for."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from app.agent.intent import phrasings, replies
from app.agent.intent.actions import Action, Intent, Status
from app.agent.intent.matching import stems
from app.agent.intent.references import (
    adding,
    is_pronoun,
    names_something,
    renaming,
    targeting,
)
from app.agent.intent.replies import LEFT_AS_IS, which_task
from app.agent.intent.titles import titles
from app.agent.intent.vocabulary import (
    COMPLETION_VERBS,
    DONE_STATE,
    IRREGULAR_PAST,
    NOT_DONE_PAST,
    NOT_PAST,
    NOT_TODO_START,
    NUMBERS,
    TODO_VERBS,
)


@dataclass(frozen=True, slots=True)
class Clause:
    """A clause as typed (for titles) and in lower case (for matching), the same length;
    `asks_assistant` when it asked the assistant itself to do something ("can you …"),
    `question` when it ended with a question mark."""

    text: str
    lower: str
    asks_assistant: bool = False
    question: bool = False

    @classmethod
    def of(cls, text: str, *, asks_assistant: bool = False, question: bool = False) -> Clause:
        lower = text.lower()
        return cls(text if len(text) == len(lower) else lower, lower, asks_assistant, question)

    def span(self, match: re.Match[str], group: str) -> str:
        return self.text[match.start(group) : match.end(group)]


Reader = Callable[[Clause], Intent | None]


def read(clause: Clause) -> tuple[Intent, Reader] | None:
    """What the clause asks for, and the reader that recognised it; None when none did."""
    for reader in READERS:
        intent = reader(clause)
        if intent is not None:
            return intent, reader
    return None


Phrasing = str | tuple[str, str | tuple[str, ...]]
_TAIL = 64  # the longest ending a phrasing's `ending` describes, and then some


def _compiled(phrasing: Phrasing) -> tuple[re.Pattern[str], Callable[[str], bool]]:
    """A phrasing's pattern, and the cheap test a clause must pass before it is tried."""
    if isinstance(phrasing, str):
        return re.compile(phrasing), lambda lower: True
    pattern, ending = phrasing
    if isinstance(ending, tuple):
        words = ending
        return re.compile(pattern), lambda lower: any(word in lower for word in words)
    tail = re.compile(ending)
    return re.compile(
        pattern
    ), lambda lower: tail.search(lower, max(0, len(lower) - _TAIL)) is not None


def _rules(action: Action, phrasings_: tuple[Phrasing, ...]) -> Reader:
    compiled = tuple(_compiled(phrasing) for phrasing in phrasings_)

    def reader(clause: Clause) -> Intent | None:
        for pattern, may_match in compiled:
            if not may_match(clause.lower):
                continue
            match = pattern.match(clause.lower)
            if match is not None:
                intent = _intent_of(action, clause, match)
                if intent is not None:
                    return intent
        return None

    return reader


def _intent_of(action: Action, clause: Clause, match: re.Match[str]) -> Intent | None:
    groups = match.groupdict()
    if action == "add":
        if groups.get("item"):
            return adding(titles(clause.span(match, "item")), prefix="Buy ")
        return adding(titles(clause.span(match, "title")))
    reference = clause.span(match, "ref")
    if not names_something(reference):
        return None
    state = groups.get("state")
    if state in NOT_DONE_PAST:
        return None  # "the milk is needed"
    if state and not re.fullmatch(DONE_STATE, state) and not is_pronoun(reference):
        reference += " " + state  # "the plants are watered": the plants, watered
    if action == "rename":
        return renaming(reference, clause.span(match, "new"))
    return targeting(action, reference)


_HELP_QUESTION = re.compile(phrasings.HELP_QUESTION)
_DISMISSAL = re.compile(phrasings.DISMISSAL)
_LIST_QUESTION = re.compile(phrasings.LIST_QUESTION)
_LIST_TOPIC = re.compile(phrasings.LIST_TOPIC)
_LIST_MENTION = re.compile(phrasings.LIST_MENTION)
_STATUS_CUES = tuple(
    (cast(Status, status), re.compile(cue)) for status, cue in phrasings.STATUS_CUES
)


def _help(clause: Clause) -> Intent | None:
    return Intent("help") if _HELP_QUESTION.match(clause.lower) else None


def _dismissal(clause: Clause) -> Intent | None:
    return Intent("say", reply=LEFT_AS_IS) if _DISMISSAL.match(clause.lower) else None


# A request to see the list is short; a long clause is never read as one (it would cost a
# search for every listing word through all of it).
_LISTING_CHARS = 300


def _list_question(clause: Clause) -> Intent | None:
    if len(clause.lower) > _LISTING_CHARS:
        return None
    if _LIST_QUESTION.match(clause.lower) and _LIST_TOPIC.search(clause.lower):
        return Intent("list", status=list_status(clause.lower))
    return None


def list_mention(clause: Clause) -> Intent | None:
    if len(clause.lower) <= _LISTING_CHARS and _LIST_MENTION.search(clause.lower):
        return Intent("list", status=list_status(clause.lower))
    return None


def list_status(lower: str) -> Status:
    lower = re.sub(r"\bto[- ]?do list\b", "list", lower)
    for status, cue in _STATUS_CUES:
        if cue.search(lower):
            return status
    return "all"


_SEARCH = tuple(_compiled(phrasing) for phrasing in phrasings.SEARCH)
# What a question says besides the task it asks about: "have I finished the slides yet?"
_QUESTION_NOISE = re.compile(
    r"\b(?:finish(?:ed)?|complet(?:e|ed)|done|do|did|get|got|yet|already|still|anymore|any more"
    r"|so far|today|tonight|tomorrow|this week|this weekend|anything|something|everything"
    r"|nothing|thing|stuff)\b"
)


def _search(clause: Clause) -> Intent | None:
    """A question about what the list holds ("do I have anything about mom?"): a search,
    never a task to add."""
    for pattern, may_match in _SEARCH:
        match = pattern.match(clause.lower) if may_match(clause.lower) else None
        if match is None:
            continue
        words = clause.span(match, "words")
        if match.groupdict().get("state"):
            words += " " + match["state"]
        words = " ".join(_QUESTION_NOISE.sub(" ", words).split()).strip(" ,")
        if stems(words) and not NUMBERS.match(words.lower()):
            return Intent("search", words=words)
        return None  # "did I finish anything today?": about the list as a whole
    return None


_reopen = _rules("reopen", phrasings.REOPEN)
_reopen_state = _rules("reopen", phrasings.REOPEN_STATE)
_rename = _rules("rename", phrasings.RENAME)
_add = _rules("add", phrasings.ADD)
_complete = _rules("complete", phrasings.COMPLETE)
_complete_state = _rules("complete", phrasings.COMPLETE_STATE)
_delete = _rules("delete", phrasings.DELETE)

_PAST_REPORT = re.compile(phrasings.PAST_REPORT)


def _past_report(clause: Clause) -> Intent | None:
    """ "I bought the milk", "called mom": a task reported done, in the past tense."""
    match = _PAST_REPORT.match(clause.lower)
    if match is None or not is_past(match["verb"]):
        return None
    if IRREGULAR_PAST.get(match["verb"]) == match["verb"] and not match["subject"]:
        return None  # "put the bins out" is a task, "I put the bins out" a report
    rest = clause.span(match, "rest")
    if match["verb"] in COMPLETION_VERBS:
        return targeting("complete", re.sub(r"^(?:with|off|up|out)\s+", "", rest, flags=re.I))
    if NUMBERS.match(rest.lower()) or is_pronoun(rest):
        return targeting("complete", rest)
    return targeting("complete", clause.span(match, "verb") + " " + rest)


def is_past(verb: str) -> bool:
    if verb in NOT_DONE_PAST or verb in NOT_PAST:
        return False
    return verb in IRREGULAR_PAST or re.fullmatch(r"[a-z]{3,}ed", verb) is not None


_ASKS = re.compile(r"^(?:do|does|did|is|are|can|could|would|should)\s+(?:i|we|you|u)\b")


def bare_task(clause: Clause) -> Intent | None:
    """ "buy eggs": a task title on its own is a task to add; a question never is."""
    first = clause.lower.split()[0]
    if first not in TODO_VERBS or first in NOT_TODO_START or clause.question:
        return None
    if _ASKS.match(clause.lower):
        return None
    if clause.asks_assistant:  # "can you order pizza for me?": not something it can do
        return Intent("say", reply=replies.cannot_do(clause.text))
    return adding(titles(clause.text))


_MISSING_NEW_TITLE = re.compile(phrasings.MISSING_NEW_TITLE)
_DONE_WITHOUT_TASK = re.compile(phrasings.DONE_WITHOUT_TASK)


def _incomplete_request(clause: Clause) -> Intent | None:
    if missing := _MISSING_NEW_TITLE.match(clause.lower):
        return Intent(
            "say",
            reply=f'What should "{missing.group(1)}" say instead? For example: '
            '"rename task 3 to buy oat milk".',
        )
    if _DONE_WITHOUT_TASK.match(clause.lower):
        return Intent("say", reply=which_task("complete"))
    return None


_YES_NO_QUESTION = re.compile(phrasings.YES_NO_QUESTION)


def _statement(reader: Reader) -> Reader:
    """A reader of reports ("the milk is bought"), which a question asking one is not."""

    def statement(clause: Clause) -> Intent | None:
        return None if _YES_NO_QUESTION.match(clause.lower) else reader(clause)

    return statement


READERS: tuple[Reader, ...] = (
    _help,
    _dismissal,
    _search,
    _list_question,
    _reopen,
    _rename,
    _add,
    _complete,
    _delete,
    _statement(_reopen_state),
    _statement(_complete_state),
    _statement(_past_report),
    bare_task,
    _incomplete_request,
    list_mention,
)

# Readers of a clause that may be no more than a task's name ("call mom, that's done", "the
# milk task: delete it"): when "it" follows, the clause named the task it means.
NAMING_READERS: tuple[Reader, ...] = (bare_task, list_mention)

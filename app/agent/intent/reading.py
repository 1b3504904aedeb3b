"""Reading a message into its actions: sentences, then clauses where a new request starts
("add milk and mark the laundry done"), each read by the readers; a command word with a
one-letter slip is read as the word meant; "it" is the task named elsewhere in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from app.agent.intent.actions import CHANGES, Intent, Request
from app.agent.intent.readers import NAMING_READERS, Clause, Reader, read
from app.agent.intent.references import targeting
from app.agent.intent.replies import ACKNOWLEDGED, which_task
from app.agent.intent.vocabulary import (
    COMMAND_WORDS,
    IRREGULAR_PAST,
    NEAR_COMMAND_WORDS,
    STOP_WORDS,
    TODO_VERBS,
)
from app.agent.intent.wrappers import (
    ASKS_ASSISTANT,
    is_pleasantry,
    strip_openers,
    strip_wrappers,
)

_QUOTES = (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'))
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_EMOTICON_END = re.compile(r"(?:[:;]-?[)(dDpP]|<3)$")
# A sentence ends at . ! ? or an ellipsis, before a space; not after a number ("1. milk")
# or a title ("Dr. Lee"). (Only the first mark of a run starts a match: linear on "....".)
_SENTENCE_END = re.compile(r"(?<![.!?\u2026])[.!?\u2026]++\s+")
_NOT_AN_END = re.compile(r"(?:\d|\b(?:dr|mr|mrs|ms|st|no|vs|etc|e\.g|i\.e))$", re.I)
# Where a clause may end inside a sentence; it does only where a new request starts.
_BOUNDARY = re.compile(
    r"\s*[,;:]\s*(?:and\s+(?:also\s+|then\s+)?|then\s+|also\s+)?"
    r"|\s+(?:and\s+(?:also\s+|then\s+)?|then\s+|after\s+you(?:'ve|\s+have)?\s+"
    r"|once\s+you(?:'ve|\s+have)?\s+)"
    r"|\s+[-\u2013\u2014]+\s+|\s*\u2014\s*"
)
_PAST = "|".join(sorted(IRREGULAR_PAST, key=len, reverse=True))
_REQUEST_START = re.compile(
    # Tried at every boundary, so bounded: "then then then …" must not be read to its end each time.
    r"(?:(?:please|pls|kindly|can you|could you|would you|will you|also|then|just|now)\s+){0,4}"
    r"(?:(?:add|mark|tick|check\s+off|cross|complete|delete|remove|erase|get\s+rid\s+of|rename"
    r"|reopen|uncheck|untick|unmark|show|list|remind\s+me|don't\s+forget"
    r"|put\s+[^,;.]{1,60}?\s+(?:on|onto|back)|take\s+[^,;.]{1,60}?\s+off)\b"
    r"|(?:i|we)(?:'ve|\s+have|\s+had)?\s+(?:just\s+|already\s+|finally\s+|also\s+){0,3}"
    rf"(?:[a-z]{{3,}}ed|{_PAST}|didn't|did\s+not|haven't|have\s+not|never)\b"
    r"|(?:it|that|this|they)(?:'s|'re|\s+is|\s+are|\s+was|\s+were|\s+has\s+been)\s)"
)
# A boundary where a new request starts: one pattern, so that a sentence of many boundaries
# and no request ("— — — …") is scanned by the regular expression engine, not word by word.
_SPLIT = re.compile(f"(?>{_BOUNDARY.pattern})(?={_REQUEST_START.pattern})")
_TOPIC_LEAD = re.compile(
    r"^(?:(?:about|regarding|re|as for|as to|concerning|oh|so|and|never ?mind(?: about)?)\s+)+",
    re.I,
)
# At most this many clauses in a message, sentences included: what is left is read as one.
_MAX_CLAUSES = 8


@dataclass(frozen=True, slots=True)
class _Reading:
    text: str  # the clause, without its wrappers
    intent: Intent | None
    reader: Reader | None = None


def understand(message: str) -> Request:
    sentences = _sentences(message)
    readings: list[_Reading] = []
    openers: set[str] = set()
    for sentence, question in sentences:
        text, kinds = strip_openers(sentence)
        openers |= kinds
        text = strip_wrappers(text)
        if text and not is_pleasantry(text):
            readings.extend(_clauses(text, question, _MAX_CLAUSES - len(readings)))
    actions = _resolved(readings)
    if actions:
        return Request(actions)
    return Request.of(_without_request(openers, any(r.text for r in readings)))


def _sentences(message: str) -> list[tuple[str, bool]]:
    for curly, straight in _QUOTES:  # (str.replace: str.translate is slower by far)
        message = message.replace(curly, straight)
    lines = [_BULLET.sub("", line).strip() for line in message.splitlines()]
    joined = ""
    for line in filter(None, lines):
        joined += line if not joined else (" " if joined.endswith(":") else ", ") + line
    text = " ".join(joined.split())
    sentences: list[tuple[str, bool]] = []
    start = 0
    for end in _SENTENCE_END.finditer(text):
        if len(sentences) + 1 >= _MAX_CLAUSES:
            break  # the rest is read as one sentence
        if text[end.start()] != "." or not _NOT_AN_END.search(
            text, max(start, end.start() - 4), end.start()
        ):
            sentences.append(_sentence(text[start : end.end()]))
            start = end.end()
    sentences.append(_sentence(text[start:]))
    return [sentence for sentence in sentences if sentence[0]]


def _sentence(text: str) -> tuple[str, bool]:
    """Without the punctuation and smileys that end it, in linear time (one regex for all of
    it backtracked exponentially on "....x"); and whether it asked."""
    question = False
    while True:
        question = question or text.rstrip().endswith("?")
        text = text.rstrip(" .!?\u2026")
        emoticon = _EMOTICON_END.search(text[-3:])
        if emoticon is None:
            return text, question
        text = text[: len(text) - 3 + emoticon.start()]


def _clauses(sentence: str, question: bool, most: int) -> list[_Reading]:
    """The sentence's clauses, split where a new request starts; a part that reads as no
    request stays with the clause before it."""
    spans: list[tuple[int, int]] = []
    start = 0
    lower = sentence.lower()
    for boundary in _SPLIT.finditer(lower):
        if len(spans) + 1 >= most:
            break  # the rest is one clause
        if boundary.start() > start:
            spans.append((start, boundary.start()))
            start = boundary.end()
    spans.append((start, len(sentence)))
    readings = [_read(sentence[begin:end], question) for begin, end in spans]
    # Each part that reads as nothing joins the part before it, and each joined clause is read
    # once more: linear, however many parts there are.
    kept: list[tuple[int, int, bool]] = []  # begin, end, joined
    for (begin, end), reading in zip(spans, readings, strict=True):
        if reading.intent is None and kept:
            kept[-1] = (kept[-1][0], end, True)
        else:
            kept.append((begin, end, False))
    by_begin = {begin: reading for (begin, _), reading in zip(spans, readings, strict=True)}
    return [
        _read(sentence[begin:end], question) if joined else by_begin[begin]
        for begin, end, joined in kept
    ]


def _read(text: str, question: bool) -> _Reading:
    text = strip_wrappers(strip_openers(text)[0])
    if not text:
        return _Reading(text, None)
    lower = text.lower()
    asks = ASKS_ASSISTANT.match(lower) is not None or lower.endswith(" for me")
    clause = Clause.of(text, asks_assistant=asks, question=question)
    # A slip in the command word may leave words other readers take ("delte task 3" mentions
    # a task): the word meant decides, when it reads as a request.
    found = None
    if meant := _corrected(text):
        found = read(replace(clause, text=meant, lower=meant.lower()))
    found = found or read(clause)
    if found is None:
        return _Reading(text, None)
    return _Reading(text, *found)


def _corrected(text: str) -> str | None:
    """The clause with its first word read as the one command word it is a slip of ("delte
    task 3"), when it is no word of its own."""
    first, _, rest = text.partition(" ")
    word = first.lower()
    if not rest or word in NEAR_COMMAND_WORDS or word in STOP_WORDS or word in TODO_VERBS:
        return None
    meant = _SLIPS.get(word, ())
    return f"{meant[0]} {rest}" if len(meant) == 1 else None


def _slips(word: str) -> set[str]:
    """Every way to type `word` with one letter left out, added, changed, or two swapped."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {left + right[1:] for left, right in splits if right}
        | {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
        | {left + c + right[1:] for left, right in splits if right for c in letters}
        | {left + c + right for left, right in splits for c in letters}
    ) - {word}


_SLIPS: dict[str, tuple[str, ...]] = {}
for _command in COMMAND_WORDS:
    for _slip in _slips(_command):
        _SLIPS[_slip] = (*_SLIPS.get(_slip, ()), _command)


def _resolved(readings: list[_Reading]) -> tuple[Intent, ...]:
    """The actions, each once; "it" is the task named just before it: by a clause that is only
    a name ("the dentist appointment, mark it as not done"), by the action before it, or by
    the task the message adds ("add buy milk and mark it as done")."""
    actions: list[Intent] = []
    topic: str | None = None
    previous: _Reading | None = None
    for reading in readings:
        intent = reading.intent
        if intent is None:
            topic, previous = _TOPIC_LEAD.sub("", reading.text), reading
            continue
        if intent.refers_back:
            intent = _referred(intent, topic, previous, actions)
        topic, previous = None, reading
        if intent not in actions:
            actions.append(intent)
    return tuple(actions)


def _referred(
    intent: Intent, topic: str | None, previous: _Reading | None, actions: list[Intent]
) -> Intent:
    if (
        previous is not None
        and previous.reader in NAMING_READERS
        and actions[-1:] == [previous.intent]
    ):
        topic = _TOPIC_LEAD.sub("", previous.text)  # "call mom, that's done": a task's name
        actions.pop()
    if topic:
        named = targeting(intent.action, topic)
        same = named.action == intent.action
        return replace(named, new_title=intent.new_title) if same else named
    earlier = actions[-1] if actions else None
    if earlier is not None and earlier.action == "add":
        added = sum(len(action.titles) for action in actions if action.action == "add")
        return replace(intent, refers_back=False, added=added - 1)
    if earlier is not None and earlier.action in CHANGES and (earlier.words or earlier.task_ids):
        return replace(intent, refers_back=False, words=earlier.words, task_ids=earlier.task_ids)
    return Intent("say", reply=which_task(intent.action))


def _without_request(openers: set[str], said_something: bool) -> Intent:
    if said_something:
        return Intent("help")
    if "thank" in openers:
        return Intent("thank")
    if "greet" in openers:
        return Intent("greet")
    if "ack" in openers:
        return Intent("say", reply=ACKNOWLEDGED)
    return Intent("help")

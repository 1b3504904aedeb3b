"""The titles an add request names: one, or several when the parts are clearly separate tasks
("milk, eggs and bread", "call mom and pay rent"), but one for "call mom and dad"."""

from __future__ import annotations

import re

from app.agent.intent.vocabulary import (
    LIST_SUFFIX,
    ONE_THING,
    PREPOSITIONS,
    TASK_SEPARATOR,
    TODO_VERBS,
)

# A number as a title's last word ("item 1", "step two", "part #3").
_NUMBER = r"(?:#?\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_TITLE_LEAD = re.compile(
    # "add task: x", "add a task to x", but not "add item 1" nor "add item one": a noun before a
    # number is the title; nor "add items 1 and 2" (not "s 1").
    r"^(?:(?:(?:a|an|another|one more)\s+)?(?:new\s+)?(?:task|todo|to-do|reminder|item|entry)"
    rf"\b(?!\s*{_NUMBER}\b)(?:\s+(?:to|called|named|titled|saying|that says|for)\b|\s*:)?\s*"
    r"|to[- ]?do\s*:\s*"
    r"|(?:to|on|onto)\s+(?:my|the)\s+(?:[\w-]+\s+){0,2}?list\s*:?\s*"
    r"|(?:these|the following|following|this)\s*:\s*|:\s*)",
    re.I,
)
_QUOTED = re.compile(r"([\"'])(.+?)\1")
_ONLY_SEPARATORS = re.compile(r"(?:\s|,|;|&|\band\b|\balso\b|\bthen\b)*")
# "1. call the bank 2. pay rent": a numbered list written on one line.
_NUMBERED = re.compile(r"(?:^|\s+)\d{1,2}[.)]\s+")
# "and also to take out the trash": the words (and quotes) before a part's title, all at once.
_PART_LEAD = re.compile(r"(?:(?:to|also|and|then)\s+[\s\"']*)+", re.I)


def titles(span: str) -> tuple[str, ...]:
    span = _clean_title_span(span)
    quoted = [title for _, title in _QUOTED.findall(span)]
    if len(quoted) > 1 and _ONLY_SEPARATORS.fullmatch(_QUOTED.sub("", span)):
        return tuple(capitalized(title.strip()) for title in quoted)
    if span[:1] in "\"'" and span[-1:] == span[:1]:
        return (capitalized(span[1:-1]),) if span[1:-1].strip() else ()
    if span.startswith("1") and len(numbered := _NUMBERED.split(span)) > 2:
        return tuple(capitalized(part) for part in map(clean_part, numbered) if part)
    parts = [part for part in map(clean_part, _split(span)) if part]
    if len(parts) > 1 and _separate_tasks(parts):
        return tuple(capitalized(part) for part in _numbered_alike(parts))
    whole = clean_part(span)
    return (capitalized(whole),) if whole else ()


_NUMBERED_THING = re.compile(rf"(?P<head>.*\S)\s+{_NUMBER}", re.I)
_BARE_NUMBER = re.compile(_NUMBER, re.I)


def _numbered_alike(parts: list[str]) -> list[str]:
    """ "item 1 and 2", "steps 1, 2 and 3": each bare number is a thing of the same name as the
    numbered part before it ("Item 2", "Step 3"), said once in the singular when plural."""
    first = _NUMBERED_THING.fullmatch(parts[0])
    if first is None or not all(_BARE_NUMBER.fullmatch(part) for part in parts[1:]):
        return parts
    head = first["head"]
    if head.endswith("s") and not head.endswith("ss"):
        head = head[:-1]
    number = parts[0][first.end("head") :].strip()
    return [f"{head} {number}", *(f"{head} {part}" for part in parts[1:])]


def _split(span: str) -> list[str]:
    """The parts between separators, a thing named with "and" ("mac and cheese") kept whole."""
    if " and " not in span.lower():
        return TASK_SEPARATOR.split(span)
    kept = ONE_THING.sub(lambda thing: thing[0].replace(" and ", "\x00"), span)
    return [part.replace("\x00", " and ") for part in TASK_SEPARATOR.split(kept)]


def clean_part(part: str) -> str:
    part = part.strip(" \"'.,;:-")
    if lead := _PART_LEAD.match(part):
        part = part[lead.end() :].strip(" \"'")
    return part


def capitalized(title: str) -> str:
    return title[:1].upper() + title[1:]


def strip_list_suffix(text: str) -> str:
    """Without "… to my list" at the end (said twice at most: "on the list on my phone")."""
    for _ in range(2):
        # A suffix is under 80 characters: searching only the tail keeps this linear.
        match = LIST_SUFFIX.search(text, max(0, len(text) - 80))
        if match is None:
            break
        text = text[: match.start()]
    return text.strip()


def _clean_title_span(span: str) -> str:
    span = strip_list_suffix(span.strip())
    lead = _TITLE_LEAD.match(span)
    return strip_list_suffix(span[lead.end() :]) if lead and lead.end() < len(span) else span


def _separate_tasks(parts: list[str]) -> bool:
    verbs = [part.split()[0].lower() in TODO_VERBS for part in parts]
    if all(verbs):
        return True
    short_things = all(
        len(part.split()) <= 3 and not PREPOSITIONS & set(part.lower().split()) for part in parts
    )
    return not any(verbs) and short_things

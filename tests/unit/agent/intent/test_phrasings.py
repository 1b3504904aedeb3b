"""The phrasings: each compiles, and a phrasing's `ending` never rules out a clause its
pattern matches (the ending is only a cheap test before the pattern is tried)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.agent.intent import phrasings
from app.agent.intent.readers import _TAIL
from tests.unit.agent.test_offline_corpus import load_corpus

Ending = str | tuple[str, ...]


def _phrasings() -> list[tuple[re.Pattern[str], Ending | None]]:
    found: list[tuple[re.Pattern[str], Ending | None]] = []
    for name in dir(phrasings):
        value = getattr(phrasings, name)
        if name.isupper() and isinstance(value, tuple) and name != "STATUS_CUES":
            for phrasing in value:
                if isinstance(phrasing, tuple):
                    found.append((re.compile(phrasing[0]), phrasing[1]))
                else:
                    found.append((re.compile(phrasing), None))
    return found


PHRASINGS = _phrasings()


def _ending_allows(ending: Ending, lower: str) -> bool:
    if isinstance(ending, tuple):
        return any(word in lower for word in ending)
    return re.compile(ending).search(lower, max(0, len(lower) - _TAIL)) is not None


def _assert_endings_allow(lower: str) -> None:
    for pattern, ending in PHRASINGS:
        if ending is not None and pattern.match(lower):
            assert _ending_allows(ending, lower), (pattern.pattern, lower)


def test_the_phrasings_compile_and_some_have_endings() -> None:
    assert len(PHRASINGS) > 50
    assert sum(ending is not None for _, ending in PHRASINGS) >= 8


def test_an_ending_allows_every_corpus_message_its_pattern_matches() -> None:
    for case in load_corpus():
        _assert_endings_allow(" ".join(case.message.lower().rstrip(" .!?").split()))


_WORDS = st.sampled_from(
    [
        "the",
        "milk",
        "task",
        "3",
        "is",
        "are",
        "was",
        "has",
        "been",
        "isn't",
        "not",
        "really",
        "actually",
        "done",
        "finished",
        "watered",
        "paid",
        "bought",
        "booked",
        "sorted",
        "yet",
        "after",
        "all",
        "can",
        "come",
        "off",
        "go",
        "be",
        "removed",
        "from",
        "my",
        "shopping",
        "list",
        "should",
        "must",
        "needs",
        "to",
        "say",
        "read",
        "be",
        "called",
        "buy",
        "call",
        "it",
        "that",
        "mark",
        "as",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, min_size=1, max_size=40).map(" ".join))
def test_an_ending_allows_every_clause_its_pattern_matches(clause: str) -> None:
    _assert_endings_allow(clause)

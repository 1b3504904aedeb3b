"""The patterns /openapi.json gives for what a client sends say what the service checks:
Schemathesis takes a value that fits them for one the service must accept, and one that does
not for one it must refuse. (`fullmatch`: JSON Schema's `$` is the end of the value.)"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from app.events import MAX_SEQ
from app.protocols.native import parse_event_id
from app.web.openapi.operation import at_most

SEQ = at_most(MAX_SEQ)


def _read(raw: str) -> bool:
    try:
        parse_event_id(raw)
    except ValueError:
        return False
    return True


@given(
    st.text(max_size=12).filter(lambda value: ":" not in value)
    | st.integers(0, 10**11).map(str)
    | st.integers(0, 10**11).map(lambda n: str(n).zfill(10))
    | st.from_regex(SEQ, fullmatch=True)
)
def test_the_documented_seq_is_what_an_event_id_may_end_with(seq: str) -> None:
    assert (re.fullmatch(SEQ, seq) is not None) == _read(seq)


@given(st.integers(1, 10**12))
def test_at_most_takes_exactly_the_numbers_up_to_its_limit(limit: int) -> None:
    pattern = at_most(limit)
    for number in (0, limit - 1, limit, limit + 1, 10 ** len(str(limit)) - 1):
        assert (re.fullmatch(pattern, str(number)) is not None) == (number <= limit), number

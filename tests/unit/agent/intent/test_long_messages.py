"""Any message up to 4,000 characters (the service's limit) is read, and answered with a
well-formed step; how long that takes is `make bench-intent`'s to measure, not a test's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.agent.intent import MAX_CALLS_PER_RESPONSE, Request, next_step, understand

# Words and marks the phrasings are made of, so that the readers' patterns get far into them.
_WORDS = (
    "add mark delete remove rename task tasks 1 12 # it that the milk mom done not is are was"
    " i we did have do should be to and , ; : - . ! ? ' \" please could you thanks hi as off"
    " list show my all every completed pending about anything remind me buy call paid watered"
    " never mind then also item"
)
_PIECES = st.sampled_from([*_WORDS.split(), " ", "...", " - ", ", and ", "\n- "])


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=1000).map(" ".join).map(lambda text: text[:4000]))
def test_any_message_is_read_and_answered(message: str) -> None:
    request = understand(message)
    assert isinstance(request, Request) and request.actions
    step = next_step(request, [])
    assert bool(step.calls) != (step.reply is not None)
    assert len(step.calls) <= MAX_CALLS_PER_RESPONSE
    for action in request.actions:
        assert all(title.strip() for title in action.titles)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=4000))
def test_any_text_is_read(message: str) -> None:
    assert understand(message).actions

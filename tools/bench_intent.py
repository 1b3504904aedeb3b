"""How fast the offline model reads a message: `make bench-intent`.

    python -m tools.bench_intent [--rounds 30]

Prints the corpus's pass rate (tests/unit/agent/offline_corpus.toml), the time `understand()`
takes per message of it (the median of `--rounds` rounds over the whole corpus, with
`next_step()`'s first step), and the worst of the long messages: hand-made ones that would make
a backtracking pattern blow up, each of the vocabulary's words and marks repeated to 4,000
characters (the service's limit), and random mixes of them. Each long message is timed five
times and its median kept; the worst median is the figure the offline model must keep under
5 ms. Times are this process's CPU time (`time.process_time`): on a machine shared with other
work, wall-clock time measures the others too.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Iterator

from app.agent.intent import next_step, understand
from tests.unit.agent.test_offline_corpus import load_corpus, report

MAX_CHARS = 4000
LONG_MESSAGES = (
    "." * 3990 + "x",
    "add milk" + " to my list" * 360,
    "mark " + "as " * 1320 + "x",
    "the milk " + "is " * 1320 + "x",
    "add " + " and".join(["milk"] * 790),
    "complete" + " 1" * 1990 + " x",
    "ok" + " :)" * 1320 + "x",
    "please " * 570,
    "add milk, " * 400,
    "call mom, that's done, " * 170,
    "add milk and mark " * 220,
    "hi! " * 1000,
    "never mind about it, " * 190,
    "i paid " * 570,
    "x - " * 1000,
    "add " + "'a' " * 1000,
)
_WORDS = (
    "add mark delete remove rename task tasks 1 12 # it that the milk mom done not is are was"
    " i we did have do should be to and , ; : - . ! ? ' \" please could you thanks hi as off"
    " list show my all every completed pending about anything remind me buy call paid watered"
    " never mind then also item would mind adding be a dear favour wondering if it's too much"
    " trouble isn't yet after all can come off by mistake :) ... \u2014 \u2192 1. 2)"
)
_PIECES = _WORDS.split()


def long_messages(seed: int = 27, mixes: int = 200) -> Iterator[str]:
    yield from (message[:MAX_CHARS] for message in LONG_MESSAGES)
    for piece in _PIECES:  # each piece on its own, and after a command word
        yield ((piece + " ") * MAX_CHARS)[:MAX_CHARS]
        yield ("add " + (piece + " ") * MAX_CHARS)[:MAX_CHARS]
    chance = random.Random(seed)
    for _ in range(mixes):
        words: list[str] = []
        while sum(map(len, words)) + len(words) < MAX_CHARS:
            words.append(chance.choice(_PIECES))
        yield " ".join(words)[:MAX_CHARS]


def microseconds_per_message(messages: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        for message in messages:
            next_step(understand(message), [])
        times.append((time.process_time() - started) / len(messages))
    return statistics.median(times) * 1e6


def slowest_long_message() -> tuple[float, str]:
    slowest = (0.0, "")
    for message in long_messages():
        times = []
        for _ in range(5):
            started = time.process_time()
            next_step(understand(message), [])
            times.append(time.process_time() - started)
        slowest = max(slowest, (statistics.median(times) * 1e3, message))
    return slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    corpus = load_corpus()
    report(corpus)
    messages = [case.message for case in corpus]
    print(f"understand() and the first step: {microseconds_per_message(messages, rounds):.1f} µs")
    count = sum(1 for _ in long_messages())
    milliseconds, message = slowest_long_message()
    print(
        f"slowest of {count} messages of up to {MAX_CHARS} characters: {milliseconds:.2f} ms"
        f" (median of 5), {message[:40]!r}…"
    )


if __name__ == "__main__":
    main()

"""The benchmark's scenarios: how many clients, how many turns, how the model is paced, and
what keeping every client at that pace costs in cores."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Scenario:
    name: str
    description: str
    concurrency: int
    turns: int
    delay_ms: int
    tokens: int
    pool_size: int = 10
    reference: bool = True
    # Clients start their first turn at random times spread over this many seconds, as users
    # do; all starting in the same millisecond would measure a burst, not a steady load.
    spread_s: float = 0.0
    # uvicorn workers for the service (the reference always has one).
    workers: int = 1

    @property
    def paced_seconds(self) -> float:
        """How long a paced reply lasts when the server adds nothing: its tokens' delays."""
        return self.delay_ms * self.tokens / 1000


SCENARIOS = [
    Scenario("a32", "tool-using turns, no model delay, 32 clients", 32, 1000, 0, 0),
    Scenario("a100", "tool-using turns, no model delay, 100 clients", 100, 1000, 0, 0),
    Scenario("b100", "paced model (20 ms, 60 tokens), 100 clients", 100, 300, 20, 60, spread_s=1.2),
    # The paced model where one worker is far from saturated: the latency targets' case.
    Scenario("b30", "paced model (20 ms, 60 tokens), 30 clients", 30, 150, 20, 60, spread_s=1.2),
    # One dyno's two cores: the same as b100, the service on two workers sharing one database.
    Scenario(
        "b100w2",
        "paced model (20 ms, 60 tokens), 100 clients, two workers",
        100,
        300,
        20,
        60,
        reference=False,
        spread_s=1.2,
        workers=2,
    ),
    # 2,000 streams open at the same moment: each about 40 s (35 tokens, 1.2 s apart), the
    # clients arriving over 20 s, so about 100 new turns a second at first, which the machine
    # can hold (2,000 streams of 10 s meant 200 a second, 2.4 cores for the SDK alone).
    Scenario(
        "c2000",
        "2,000 streams open at once, each 35 tokens 1.2 s apart, arriving over 20 s, pool of 10",
        2000,
        2000,
        1200,
        35,
        spread_s=20.0,
    ),
]


def cores_to_keep_pace(cpu_seconds_per_turn: float, scenario: Scenario) -> float | None:
    """The CPU that every client's reply streaming at the model's own pace would take: what a
    paced scenario needs of a machine, whatever share of it one process got."""
    if not scenario.paced_seconds:
        return None
    return round(cpu_seconds_per_turn * scenario.concurrency / scenario.paced_seconds, 2)

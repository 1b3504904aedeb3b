"""`tools.cpu_split --against`: two checkouts' services driven in turn (one batch each here)."""

from __future__ import annotations

import json

from app.settings import PROJECT_ROOT
from tests.tools import run_tool


def test_two_checkouts_are_driven_in_turn_and_each_ones_cpu_counted(database_url: str) -> None:
    against = ["--against", str(PROJECT_ROOT), "--other-first"]
    printed = run_tool(
        "tools.cpu_split",
        *against,
        "--turns",
        "60",
        "--concurrency",
        "4",
        database_url=database_url,
    )
    compared = json.loads(printed.splitlines()[-1])
    assert list(compared) == ["other", "this", "this_over_other"]  # the other started first
    assert compared["this"]["cpu_ms"] > 0 and compared["other"]["cpu_ms"] > 0
    assert compared["this_over_other"] == round(
        compared["this"]["cpu_ms"] / compared["other"]["cpu_ms"], 3
    )

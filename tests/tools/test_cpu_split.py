"""`tools.cpu_split --against`: two checkouts' services driven in turn (one batch each here)."""

from __future__ import annotations

import json
import subprocess
import sys

from app.settings import PROJECT_ROOT
from tests.support import environment


def test_two_checkouts_are_driven_in_turn_and_each_ones_cpu_counted(database_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "tools.cpu_split", "--against", str(PROJECT_ROOT), "--other-first"),
            *("--turns", "60", "--concurrency", "4"),
        ],
        cwd=PROJECT_ROOT,
        env=environment(DATABASE_URL=database_url),
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    compared = json.loads(result.stdout.decode().splitlines()[-1])
    assert list(compared) == ["other", "this", "this_over_other"]  # the other started first
    assert compared["this"]["cpu_ms"] > 0 and compared["other"]["cpu_ms"] > 0
    assert compared["this_over_other"] == round(
        compared["this"]["cpu_ms"] / compared["other"]["cpu_ms"], 3
    )

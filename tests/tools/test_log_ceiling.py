"""The event log's ceiling runs (one tiny step of each backend): `make bench` runs it whole."""

from __future__ import annotations

import json
from pathlib import Path

from tests.redis_servers import redis_binaries
from tests.tools import run_tool


def test_the_ceiling_of_each_log_is_measured_side_by_side(
    database_url: str, tmp_path: Path
) -> None:
    redis_binaries()  # skips where redis-server is missing (fails in CI)
    output = tmp_path / "ceiling.json"
    tiny = ["--seconds", "0.5", "--start", "2", "--max-runs", "2", "--tries", "1"]
    printed = run_tool(
        "tools.log_ceiling", *tiny, "--output", str(output), database_url=database_url
    )
    report = json.loads(output.read_text())
    for backend in ("postgres", "redis"):
        [step] = report["steps"][backend]
        assert step["runs"] == 2 and step["events_per_second"] > 0
        assert step["cpu_ms_per_1000_events_here"] > 0
    # The server's CPU, read from its side: Redis's own counters (PostgreSQL's backends are
    # read from /proc, where it runs on this machine).
    assert report["steps"]["redis"][0]["cpu_ms_per_1000_events_server"] > 0
    assert set(report["ceilings"]) == {"postgres", "redis"}
    assert "the event log's ceiling" in printed

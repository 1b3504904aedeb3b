"""The two-instance benchmark runs (one tiny step of each configuration): `make bench` runs it
at full size."""

from __future__ import annotations

import json
from pathlib import Path

from tests.redis_servers import redis_binaries
from tests.tools import run_tool


def test_two_instances_stream_and_follow_with_and_without_redis(
    database_url: str, tmp_path: Path
) -> None:
    redis_binaries()  # skips where redis-server is missing (fails in CI)
    output = tmp_path / "instances.json"
    tiny = ["--start", "1", "--max-runs", "1", "--tokens", "5", "--turns", "2", "--tries", "1"]
    printed = run_tool(
        "tools.bench_instances", *tiny, "--output", str(output), database_url=database_url
    )
    report = json.loads(output.read_text())
    for backend in ("postgres", "redis"):
        steps = report[backend]["steps"]
        assert [step["runs"] for step in steps] == [1]
        step = steps[0]
        # Both turns streamed whole, each followed to its end on the other instance.
        assert step["turns"] == 2 and step["followed"] == 2
        assert step["failures"] == 0 and step["followers_missing_tokens"] == 0
        assert step["tokens_made"] == 10
        assert step["gap_p99_ms"] is not None and step["follower_lag_p99_ms"] is not None
        assert step["pg_commits_per_s"] > 0
    assert report["redis"]["used_redis"]  # REDIS_URL set: the runs' events went to Redis
    assert "two instances on one PostgreSQL" in printed

"""The benchmark script runs (a few seconds of it): `make bench` is not part of the tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tools import run_tool


def test_the_benchmark_runs_and_reports(database_url: str, tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    # No --port: the bench takes ports the system says are free.
    scenarios = ["--scenario", "a32", "--scenario", "b100w2"]
    printed = run_tool(
        "tools.bench", "--quick", *scenarios, "--output", str(output), database_url=database_url
    )
    report = json.loads(output.read_text())
    a32 = report["scenarios"]["a32"]
    for side in ("service", "reference"):
        assert a32[side]["turns"] == 16 and a32[side]["errors"] == 0
        assert a32[side]["server_cpu_ms_per_turn"] > 0
    assert a32["service"]["start_p50_ms"] > 0 and a32["service"]["text_lag_p99_ms"] is not None
    assert report["sdk_floor"]["cpu_ms_per_turn"] > 0
    # The limit at the same concurrency: the SDK alone and the bare stream, in this run.
    assert a32["sdk_floor"]["concurrency"] == 8 and a32["sdk_floor"]["cpu_ms_per_turn"] > 0
    assert a32["service"]["cpu_over_limit"] > 0
    # Its memory is divided by the runs in progress at once, counted: all 8 clients' first.
    assert a32["sdk_floor"]["runs_in_progress_max"] == 8
    two_workers = report["scenarios"]["b100w2"]["service"]
    assert two_workers["turns"] == 16 and two_workers["errors"] == 0
    # The server's figures cover its workers, not just uvicorn's parent process.
    assert two_workers["peak_rss_mb"] > 1.5 * a32["service"]["peak_rss_mb"]
    assert "server CPU ms/turn" in printed

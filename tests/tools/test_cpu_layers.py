"""The CPU-by-layer tool runs (a few turns of it) and accounts for what it sampled."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tools import run_tool


def test_the_service_cpu_is_split_by_layer_and_its_round_trips_counted(
    database_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "layers.json"
    few = ["--turns", "40", "--concurrency", "4", "--round-trip-turns", "8"]
    run_tool("tools.cpu_layers", *few, "--output", str(output), database_url=database_url)
    report = json.loads(output.read_text())
    profile = report["profile"]
    assert profile["samples"] > 0 and profile["cpu_ms_per_turn"] > 0
    # Every sample lands in one layer: the shares add up to the CPU per turn.
    for table in ("innermost", "outermost_ours"):
        assert abs(sum(profile[table].values()) - profile["cpu_ms_per_turn"]) < 0.05
    assert "agents" in profile["innermost"]
    # A tool-using turn begins (BEGIN, the user's lock, the start, COMMIT), adds its task and
    # ends in one statement each: at least six round trips, each named by its statement.
    trips = report["round_trips"]
    assert trips["per_turn"] >= 6
    assert trips["by_statement"]["COMMIT;"] >= 1
    assert any(s.startswith("INSERT INTO tasks") for s in trips["by_statement"])

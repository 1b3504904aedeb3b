"""`make mutate`: mutmut over the modules where a silent break costs most (`[tool.mutmut]` in
pyproject.toml: auth, the SSE framing, a live run, the event log, the events, the tools, the
domain), each mutant against the fast tests that reach it, then a count by module and the
survivors. What each survivor means is in docs/mutation-report.md.

Every run starts afresh (mutants/ is removed first): mutmut's cache keeps results across runs,
which hides a test that changed. One PostgreSQL serves the whole run (the tool tests use it):
TEST_DATABASE_URL when set, else an embedded one, started here once rather than in each of the
hundreds of processes mutmut forks. mutmut 3 copies app/, tests/ and migrations/ into mutants/
and runs pytest there; that works with this layout as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from app.db.embedded import start_embedded_postgres
from app.settings import PROJECT_ROOT, normalize_database_url

MUTMUT = Path(sys.executable).parent / "mutmut"
_RESULT = re.compile(r"^\s*(?P<module>[\w.]+?)\.(?:x_|xǁ)\S*: (?P<status>.+)$")


def _database() -> str:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured
    directory = Path(tempfile.mkdtemp(prefix="todo-chat-mutate-"))
    directory.chmod(0o755)
    return normalize_database_url(start_embedded_postgres(directory / "pg", cleanup="delete"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    env = {**os.environ, "TEST_DATABASE_URL": _database()}
    shutil.rmtree(PROJECT_ROOT / "mutants", ignore_errors=True)
    log = Path(tempfile.mkstemp(prefix="mutmut-", suffix=".log")[1])
    started = time.monotonic()
    with log.open("wb") as output:
        run = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(args.children)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    elapsed = time.monotonic() - started
    if run.returncode != 0:
        print(log.read_text(errors="replace")[-3000:])
        print(f"mutmut failed ({run.returncode}); its output: {log}")
        return run.returncode

    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter[tuple[str, str]] = Counter()
    survivors: list[str] = []
    for line in listing.splitlines():
        match = _RESULT.match(line)
        if match is None:
            continue
        counts[match["module"], match["status"]] += 1
        if match["status"] == "survived":
            survivors.append(line.strip().rsplit(":", 1)[0])
    statuses = sorted({status for _, status in counts})
    print(f"{'module':24}" + "".join(f"{status:>10}" for status in statuses))
    for module in sorted({module for module, _ in counts}):
        cells = "".join(f"{counts[module, status]:>10}" for status in statuses)
        print(f"{module:24}{cells}")
    total = Counter(status for (_, status), n in counts.items() for _ in range(n))
    print(f"{'all':24}" + "".join(f"{total[status]:>10}" for status in statuses))
    print(f"\n{len(survivors)} survivors (`.venv/bin/mutmut show NAME` shows one's change):")
    for name in survivors:
        print(f"  {name}")
    print(f"\n{elapsed:.0f} s with {args.children} processes; mutmut's own output: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

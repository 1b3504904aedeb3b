"""The instruments in tools/ still run: each test runs one as `make bench` would, for a few
turns, in a process of its own, and reads what it reported."""

from __future__ import annotations

import subprocess
import sys

from app.settings import PROJECT_ROOT
from tests.support import environment


def run_tool(module: str, *args: str, database_url: str) -> str:
    """`python -m module args…` against this database; its standard output, once it has
    exited 0 (else the test fails with the end of its standard error)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=environment(DATABASE_URL=database_url),
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result.stdout.decode()

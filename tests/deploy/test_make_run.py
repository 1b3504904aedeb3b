"""`make run` leaves nothing running when it stops: after SIGTERM (`kill`), SIGHUP (its terminal
closed) and SIGINT (Ctrl-C), one after the other in one checkout, no PostgreSQL process is left.

Before, SIGTERM and SIGHUP ended the service before its clean-up, and the dead process stayed
on the embedded server's list of users, so no later run, however it ended, was ever the last to
leave. SIGKILL allows no clean-up at all; the run after it still stops the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy.checkout import copy_of_the_project, postgres_processes
from tests.support import environment, free_port, wait_until_ready

VENV = Path(sys.executable).parent.parent


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    checkout = copy_of_the_project(tmp_path / "checkout")
    yield checkout
    _stop_leftover_server(checkout / ".data" / "postgres")


@contextmanager
def _make_run(checkout: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`make run` in `checkout`, ready to serve, as started from a terminal (its own group)."""
    port = free_port()
    with (checkout / "make-run.log").open("ab") as output:
        make = subprocess.Popen(
            ["make", "run", f"VENV={VENV}"],
            cwd=checkout,
            env=environment(PORT=str(port)),
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}/ready", make)
        assert ready.status_code == 200, ready.text
        yield make
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()


def _left(checkout: Path, after: str) -> list[str]:
    data_dir = checkout / ".data" / "postgres"
    left = postgres_processes(data_dir)
    if left or (data_dir / "postmaster.pid").exists():
        log = (checkout / "make-run.log").read_text()[-3000:]
        return [f"after {after}: {left}", log]
    return []


def test_make_run_stops_its_postgresql_on_sigterm(checkout: Path) -> None:
    """The smoke version, in `make test`: the signal whose clean-up was skipped."""
    with _make_run(checkout) as make:
        make.send_signal(signal.SIGTERM)
        make.wait(timeout=60)
    assert _left(checkout, "SIGTERM") == []


@pytest.mark.deploy
def test_make_run_stops_its_postgresql_on_sigterm_sighup_and_sigint(checkout: Path) -> None:
    data_dir = checkout / ".data" / "postgres"
    for stop in ("SIGTERM", "SIGHUP", "SIGINT"):
        with _make_run(checkout) as make:
            assert postgres_processes(data_dir), "make run did not use its embedded PostgreSQL"
            if stop == "SIGTERM":
                make.send_signal(signal.SIGTERM)  # `kill <make>`: make passes it on
            else:  # a terminal signals its whole foreground group: closed, or Ctrl-C
                os.killpg(make.pid, signal.SIGHUP if stop == "SIGHUP" else signal.SIGINT)
            make.wait(timeout=60)
        assert _left(checkout, stop) == []
    assert (data_dir / "PG_VERSION").exists()  # the data stays


@pytest.mark.deploy
def test_the_run_after_a_killed_one_stops_the_server(checkout: Path) -> None:
    data_dir = checkout / ".data" / "postgres"
    with _make_run(checkout) as make:
        os.killpg(make.pid, signal.SIGKILL)  # no clean-up can run
        make.wait(timeout=60)
    assert postgres_processes(data_dir), "the server outlives a killed run"
    with _make_run(checkout) as make:
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)
    assert _left(checkout, "SIGKILL, then SIGINT") == []


def _stop_leftover_server(data_dir: Path) -> None:
    """A failed test must not leave its server running: stop it by the pid it recorded."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    if postgres_processes(data_dir):
        os.kill(pid, signal.SIGTERM)  # PostgreSQL's smart shutdown
        deadline = time.monotonic() + 30
        while postgres_processes(data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)

"""Whether a process is alive, as the embedded server's list of users and the metrics' worker
directories ask it: a zombie is not."""

from __future__ import annotations

import os
import subprocess
import sys

from app.processes import is_alive


def test_a_running_process_is_alive_and_a_reaped_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert is_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not is_alive(child.pid)


def test_a_zombie_is_not_alive() -> None:
    """Killed and not yet reaped by its parent (here, this test)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    try:
        # Wait for the kill without reaping: waitid with WNOWAIT leaves it a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert os.path.exists(f"/proc/{child.pid}")
        assert not is_alive(child.pid)
    finally:
        child.wait()


def test_this_process_is_alive() -> None:
    assert is_alive(os.getpid())

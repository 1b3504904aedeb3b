"""Other processes, as the operating system sees them."""

from __future__ import annotations

import os
from pathlib import Path


def is_alive(pid: int) -> bool:
    """Whether a process with this pid is running. A zombie is not: a process killed with its
    parent (`kill -9` of `make run`'s group) stays one until init reaps it, which can take a
    while in a container, and still answers signal 0."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, and belongs to another user
    return _state(pid) not in ("Z", "X")


def _state(pid: int) -> str:
    """The process's state letter in /proc (`R`, `S`, `Z`…); "" where /proc is missing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""

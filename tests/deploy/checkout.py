"""A copy of the project as `git push` would send it, for tests that need a checkout of their
own: its own `.data/` for `make run`, or a build directory for the buildpack's steps."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.settings import PROJECT_ROOT


def copy_of_the_project(destination: Path) -> Path:
    """The files git knows here (tracked, and new ones not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if not source.is_file():
            continue  # deleted in the work tree, not yet in git
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def postgres_processes(data_dir: Path) -> list[str]:
    """The command lines of the PostgreSQL servers whose data directory is `data_dir`."""
    found = []
    marker = str(data_dir.resolve()).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if marker in command and b"postgres" in command and entry.name != str(os.getpid()):
            found.append(command.replace(b"\0", b" ").decode(errors="replace"))
    return found

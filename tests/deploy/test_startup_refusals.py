"""Start-up refusals, as the processes a deploy runs print them: one line that says what to set,
and no start. A deploy that forgets APP_ENV is production all the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import PROJECT_ROOT
from tests.deploy.test_heroku import procfile
from tests.support import environment, free_port

STRONG = "strong-8d1e5c0a9b7f4e2d6c3a1b0f9e8d7c6b5a4f3e2d"
PRODUCTION_BECAUSE = (
    " (DATABASE_URL is set and APP_ENV is not, so this is production; "
    "APP_ENV=development runs a development server)"
)


def test_the_release_phase_refuses_a_weak_secret_when_app_env_is_forgotten() -> None:
    env = environment(DATABASE_URL="postgres://u:p@127.0.0.1:9/db", JWT_SECRET="changeme")
    release = subprocess.run(
        ["bash", "-c", procfile("release")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert release.returncode != 0
    assert release.stderr.decode().strip().splitlines()[-1] == (
        "configuration error: JWT_SECRET must be a random string of at least 32 characters and "
        "128 bits of estimated entropy (openssl rand -hex 32) in production" + PRODUCTION_BECAUSE
    )


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {
                "DATABASE_URL": "postgres://u:p@127.0.0.1:9/db",
                "JWT_SECRET": STRONG,
                "CORS_ORIGINS": "*",
            },
            "configuration error: CORS_ORIGINS=* lets any website call the API in production: "
            "list the origins of your web app instead, e.g. CORS_ORIGINS=https://app.example"
            + PRODUCTION_BECAUSE,
        ),
        (
            {"JWT_JWKS_URL": "https://id.example/api/auth/jwks", "JWT_ALGORITHM": "EdDSA"},
            "configuration error: JWT_ALGORITHM=EdDSA is not supported (python-jose has no "
            "EdDSA): configure the identity provider to sign with ES256 or RS256 and set "
            "JWT_ALGORITHM to match",
        ),
    ],
    ids=["open-cors", "eddsa"],
)
def test_the_service_refuses_to_start(settings: dict[str, str], line: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=PROJECT_ROOT,
        env=environment(**settings),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [line]


def test_a_bad_configuration_stops_start_up_with_one_line() -> None:
    env = environment(APP_ENV="production", DATABASE_URL="postgres://h/db", JWT_SECRET="short")
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        "configuration error: JWT_SECRET must be a random string of at least 32 characters and "
        "128 bits of estimated entropy (openssl rand -hex 32) in production"
    ]


def test_a_memory_event_log_is_refused_by_the_procfiles_several_workers() -> None:
    """Each worker would keep runs' events to itself: a worker refuses to start, and uvicorn's
    supervisor stops instead of starting it again."""
    env = environment(
        APP_ENV="test",
        DATABASE_URL="postgres://u:p@127.0.0.1:9/db",  # create_app does not connect
        JWT_SECRET=STRONG,
        EVENT_LOG="memory",
        WEB_CONCURRENCY="2",
        PORT=str(free_port()),
    )
    result = subprocess.run(
        ["bash", "-c", procfile("web")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    said = result.stderr.decode()
    refusal = (
        "ConfigError: EVENT_LOG=memory keeps runs' events in one process, and this is a worker "
        "of several (uvicorn --workers or --reload): use EVENT_LOG=postgres"
    )
    assert refusal in said, said[-2000:]
    assert "failed to start, stopping the parent process" in said, said[-2000:]

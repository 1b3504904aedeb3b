"""Configuration is read and validated once, and a bad one is one clear line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app import settings as settings_module
from app.settings import ConfigError, Settings, normalize_database_url

STRONG = "s" * 40


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Development secrets go to a temporary .data/, not the checkout's."""
    monkeypatch.setattr(settings_module, "DATA_DIR", tmp_path / ".data")
    return tmp_path / ".data"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db.example:5432/app", "postgresql+asyncpg://u:p@db.example:5432/app"),
        ("postgresql://u:p@h/app", "postgresql+asyncpg://u:p@h/app"),
        ("postgresql+asyncpg://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgres://u:p@h/app?sslmode=require", "postgresql+asyncpg://u:p@h/app?ssl=require"),
        (
            "postgresql://postgres:@/db?host=/tmp/pg",
            "postgresql+asyncpg://postgres:@/db?host=%2Ftmp%2Fpg",
        ),
    ],
)
def test_database_urls_are_normalized_for_asyncpg(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


def test_defaults_are_the_embedded_development_setup() -> None:
    settings = Settings.from_env({"JWT_SECRET": STRONG})
    assert settings.app_env == "development"
    assert settings.database_url is None
    assert settings.agent_model == "offline" and settings.uses_offline_model
    assert (settings.port, settings.max_message_chars, settings.db_pool_size) == (8000, 4000, 5)
    assert settings.cors_origins == ("*",)
    assert settings.api_docs and settings.log_format == "text" and settings.metrics_token is None
    production = Settings.from_env(
        {
            "APP_ENV": "production",
            "DATABASE_URL": "postgres://h/db",
            "JWT_SECRET": STRONG,
            "METRICS_TOKEN": "m",
        }
    )
    assert production.cors_origins == ()
    assert not production.api_docs


def test_an_openai_key_selects_an_openai_model() -> None:
    settings = Settings.from_env({"JWT_SECRET": STRONG, "OPENAI_API_KEY": "sk-test"})
    assert not settings.uses_offline_model
    named = Settings.from_env(
        {
            "JWT_SECRET": STRONG,
            "OPENAI_API_KEY": "k",
            "AGENT_MODEL": "qwen3",
            "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        }
    )
    assert (named.agent_model, named.openai_base_url) == ("qwen3", "http://127.0.0.1:1/v1")


def test_the_api_follows_the_base_url_unless_chosen() -> None:
    openai = Settings.from_env({"JWT_SECRET": STRONG, "OPENAI_API_KEY": "k"})
    local = Settings.from_env(
        {"JWT_SECRET": STRONG, "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    )
    chosen = Settings.from_env(
        {
            "JWT_SECRET": STRONG,
            "OPENAI_API_KEY": "k",
            "OPENAI_BASE_URL": "http://h/v1",
            "AGENT_API": "responses",
            "MODEL_TIMEOUT_SECONDS": "5",
            "MODEL_MAX_RETRIES": "0",
            "AGENT_TRACING": "on",
        }
    )
    assert (openai.agent_api, local.agent_api, chosen.agent_api) == (
        "responses",
        "chat_completions",
        "responses",
    )
    assert (chosen.model_timeout_seconds, chosen.model_max_retries, chosen.agent_tracing) == (
        5,
        0,
        True,
    )
    assert (openai.model_timeout_seconds, openai.model_max_retries, openai.agent_tracing) == (
        60,
        2,
        False,
    )


# Fixed in code, not read from the environment.
NOT_FROM_THE_ENVIRONMENT = {"max_body_bytes", "sse_ping_seconds"}


def test_every_setting_is_read() -> None:
    """Each variable set to a value other than its default: a setting that is not read from
    the environment keeps its default, and the last assertion names it. Two environments,
    because a shared secret and an identity provider's keys exclude each other."""
    provider = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u:p@h/app",
            "JWT_JWKS_URL": "https://id.example/.well-known/jwks.json",
            "JWT_ALGORITHM": "ES256",
            "JWT_USER_CLAIM": "user_id",
            "METRICS_TOKEN": "p",
        }
    )
    assert (provider.jwt_jwks_url, provider.jwt_user_claim, provider.jwt_algorithm) == (
        "https://id.example/.well-known/jwks.json",
        "user_id",
        "ES256",
    )
    settings = Settings.from_env(
        {
            "APP_ENV": "production",
            "DATABASE_URL": "postgres://u:p@h/app",
            "PORT": "5000",
            "JWT_SECRET": STRONG,
            "JWT_ALGORITHM": "HS512",
            "JWT_PUBLIC_KEY": "unused with HS512",
            "JWT_AUDIENCE": "todo",
            "JWT_ISSUER": "https://issuer",
            "AGENT_MODEL": "gpt-test",
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "AGENT_API": "chat_completions",
            "MODEL_TIMEOUT_SECONDS": "7",
            "MODEL_MAX_RETRIES": "5",
            "AGENT_TRACING": "on",
            "OFFLINE_TOKEN_DELAY_MS": "20",
            "DB_POOL_SIZE": "3",
            "DB_POOL_TIMEOUT_SECONDS": "9",
            "MAX_MESSAGE_CHARS": "100",
            "HISTORY_MESSAGES": "6",
            "AGENT_MAX_TURNS": "4",
            "MAX_ACTIVE_RUNS_PER_USER": "8",
            "RUN_RETENTION_HOURS": "2",
            "EVENT_LOG": "memory",
            "SHUTDOWN_GRACE_SECONDS": "3",
            "SEND_TIMEOUT_SECONDS": "4",
            "CORS_ORIGINS": "https://app.example/, http://localhost:3000",
            "METRICS_TOKEN": "metrics-token",
            "API_DOCS": "on",
            "LOG_FORMAT": "json",
            "REDIS_URL": "rediss://:p@redis.example:6380",
            "REDIS_CLUSTER": "1",
        }
    )
    assert (settings.redis_url, settings.redis_cluster) == ("rediss://:p@redis.example:6380", True)
    assert settings.api_docs and not provider.api_docs  # off in production unless said
    assert settings.cors_origins == ("https://app.example", "http://localhost:3000")
    assert (settings.port, settings.jwt_audience, settings.jwt_issuer) == (
        5000,
        "todo",
        "https://issuer",
    )
    assert (settings.max_active_runs, settings.db_pool_timeout_seconds) == (8, 9)
    assert (settings.run_retention_hours, settings.shutdown_grace_seconds) == (2, 3)
    assert settings.send_timeout_seconds == 4
    defaults = Settings()
    unread = {
        field.name
        for field in dataclasses.fields(Settings)
        if getattr(settings, field.name) == getattr(defaults, field.name)
        and getattr(provider, field.name) == getattr(defaults, field.name)
    }
    assert unread == NOT_FROM_THE_ENVIRONMENT


@pytest.mark.parametrize(
    ("environ", "log"),
    [
        ({}, "postgres"),
        ({"REDIS_URL": "redis://h"}, "redis"),
        ({"REDIS_URL": "rediss://h", "REDIS_CLUSTER": "1"}, "redis"),
        ({"REDIS_URL": "redis://h", "EVENT_LOG": "postgres"}, "postgres"),
        ({"REDIS_URL": "redis://h", "EVENT_LOG": "memory"}, "memory"),
        ({"REDIS_URL": "redis://h", "EVENT_LOG": "redis"}, "redis"),
    ],
)
def test_redis_url_alone_moves_the_event_log_unless_event_log_says_otherwise(
    environ: dict[str, str], log: str
) -> None:
    """Heroku's add-on sets REDIS_URL and nothing else: that is the switch; EVENT_LOG said
    outright wins (a Redis kept for something else leaves the log where it was)."""
    assert Settings.from_env(environ).event_log == log


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"APP_ENV": "production", "DATABASE_URL": "postgres://h/db"}, "JWT_SECRET is required"),
        (
            {"APP_ENV": "production", "DATABASE_URL": "postgres://h/db", "JWT_SECRET": "short"},
            "at least 32",
        ),
        ({"APP_ENV": "production", "JWT_SECRET": STRONG}, "DATABASE_URL is required"),
        (
            {"APP_ENV": "production", "JWT_SECRET": STRONG, "DATABASE_URL": "postgres://h/db"},
            "^METRICS_TOKEN is required in production",
        ),
        ({"API_DOCS": "yes"}, "API_DOCS must be one of"),
        ({"LOG_FORMAT": "logfmt"}, "LOG_FORMAT must be one of"),
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"PORT": "70000"}, "PORT must be at least 1 and at most 65535"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE must be at least 1"),
        ({"DATABASE_URL": "mysql://h/db"}, "DATABASE_URL must start with"),
        ({"AGENT_MODEL": "gpt-4.1"}, "needs OPENAI_API_KEY"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PUBLIC_KEY .* or JWT_JWKS_URL is required"),
        (
            {"JWT_ALGORITHM": "EdDSA", "JWT_JWKS_URL": "https://id.example/jwks"},
            "^JWT_ALGORITHM=EdDSA is not supported .*sign with ES256 or RS256",
        ),
        ({"JWT_ALGORITHM": "Ed25519"}, "sign with ES256 or RS256 and set JWT_ALGORITHM"),
        (
            {"JWT_JWKS_URL": "https://id.example/jwks", "JWT_ALGORITHM": "HS256"},
            "JWT_JWKS_URL needs JWT_ALGORITHM=RS256 or ES256",
        ),
        ({"JWT_JWKS_URL": "http://id.example/jwks"}, "must be an https:// URL"),
        ({"JWT_JWKS_URL": "id.example/jwks"}, "must be an https:// URL"),
        (
            {"JWT_JWKS_URL": "https://id.example/jwks", "JWT_PUBLIC_KEY": "pem"},
            "JWT_JWKS_URL or JWT_PUBLIC_KEY, not both",
        ),
        (
            {"APP_ENV": "production", "DATABASE_URL": "postgres://h/db", "CORS_ORIGINS": "*"},
            "JWT_SECRET is required",
        ),
        (
            {
                "APP_ENV": "production",
                "DATABASE_URL": "postgres://h/db",
                "JWT_SECRET": STRONG,
                "METRICS_TOKEN": "m",
                "CORS_ORIGINS": "https://app.example,*",
            },
            r"^CORS_ORIGINS=\* lets any website call the API in production: list the origins",
        ),
        ({"SHUTDOWN_GRACE_SECONDS": "12"}, "at most 11"),
        ({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM must be one of"),
        ({"CORS_ORIGINS": "app.example"}, "CORS_ORIGINS must list origins"),
        ({"AGENT_API": "completions"}, "AGENT_API must be one of"),
        ({"AGENT_TRACING": "yes"}, "AGENT_TRACING must be one of"),
        ({"REDIS_URL": "redis.example:6379"}, "REDIS_URL must be a redis:// or rediss://"),
        ({"REDIS_URL": "http://redis.example"}, "REDIS_URL must be a redis:// or rediss://"),
        ({"REDIS_URL": "redis://"}, "REDIS_URL must be .* with a host"),
        ({"REDIS_CLUSTER": "1"}, "REDIS_CLUSTER=1 needs REDIS_URL"),
        ({"REDIS_CLUSTER": "yes", "REDIS_URL": "redis://h"}, "REDIS_CLUSTER must be one of 0, 1"),
        ({"EVENT_LOG": "redis-streams"}, "EVENT_LOG must be one of postgres, memory, redis"),
        ({"EVENT_LOG": "redis"}, "EVENT_LOG=redis needs REDIS_URL"),
    ],
)
def test_bad_configuration_is_one_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        Settings.from_env(environ)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DATABASE_URL": "postgres://h/db"}, "JWT_SECRET is required"),
        ({"DATABASE_URL": "postgres://h/db", "JWT_SECRET": "changeme"}, "at least 32"),
        (
            {
                "DATABASE_URL": "postgres://h/db",
                "JWT_SECRET": STRONG,
                "METRICS_TOKEN": "m",
                "CORS_ORIGINS": "*",
            },
            r"CORS_ORIGINS=\*",
        ),
        ({"DATABASE_URL": "postgres://h/db", "JWT_SECRET": STRONG}, "METRICS_TOKEN is required"),
    ],
)
def test_a_database_without_app_env_is_production(environ: dict[str, str], message: str) -> None:
    """A deploy that forgets APP_ENV: refused, and told why it is production and what to set."""
    with pytest.raises(ConfigError, match=message) as raised:
        Settings.from_env(environ)
    assert str(raised.value).endswith(
        "(DATABASE_URL is set and APP_ENV is not, so this is production; "
        "APP_ENV=development runs a development server)"
    )
    development = Settings.from_env({**environ, "APP_ENV": "development"})
    assert development.app_env == "development" and development.jwt_secret


def test_production_with_good_settings_starts() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://h/db",
            "JWT_SECRET": STRONG,
            "METRICS_TOKEN": "m",
            "CORS_ORIGINS": "https://a.b",
        }
    )
    assert (settings.app_env, settings.cors_origins) == ("production", ("https://a.b",))
    provider = Settings.from_env(
        {
            "DATABASE_URL": "postgres://h/db",
            "JWT_JWKS_URL": "http://127.0.0.1:9/jwks",
            "METRICS_TOKEN": "m",
        }
    )
    assert (provider.jwt_algorithm, provider.jwt_secret, provider.cors_origins) == (
        "RS256",
        None,
        (),
    )


def test_an_error_that_is_not_about_production_gets_no_production_hint() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {
                "DATABASE_URL": "postgres://h/db",
                "JWT_SECRET": STRONG,
                "METRICS_TOKEN": "m",
                "AGENT_MODEL": "gpt-4.1",
            }
        )
    assert str(raised.value).startswith("AGENT_MODEL=gpt-4.1 needs OPENAI_API_KEY")
    assert "APP_ENV" not in str(raised.value)


def test_development_makes_and_keeps_a_secret(_data_dir: Path) -> None:
    first = Settings.from_env({})
    second = Settings.from_env({})
    assert first.jwt_secret and len(first.jwt_secret) >= 32
    assert first.jwt_secret == second.jwt_secret == (_data_dir / "jwt_secret").read_text()
    assert (_data_dir / "jwt_secret").stat().st_mode & 0o077 == 0

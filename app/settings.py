"""Configuration, read from the environment and validated once at start-up.

Safe by default: with a DATABASE_URL and no APP_ENV the service is in production (a deploy that
forgets APP_ENV gets no weak secret, no CORS `*` and no development routes); development is
`make run` with no DATABASE_URL, or APP_ENV=development said outright.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"

AppEnv = Literal["development", "test", "production"]
EventLogName = Literal["postgres", "memory", "redis"]
# Where runs' events are kept (`app.runs.log`), the default first (`redis` when REDIS_URL is
# set: the URL alone is the switch). `memory` serves one process; `redis` needs REDIS_URL.
EVENT_LOGS: tuple[EventLogName, ...] = ("postgres", "memory", "redis")

OFFLINE_MODEL = "offline"
DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_PUBLIC_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
# Algorithms identity providers offer that python-jose cannot verify (Better Auth's default).
_UNSUPPORTED_ALGORITHMS = ("EdDSA", "Ed25519", "Ed448")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_MIN_SECRET_LENGTH = 32
_PLACEHOLDER_SECRETS = frozenset({"secret", "changeme", "change-me", "your-secret-key", "dev"})
# The shutdown budget, in one place; everything that waits at shutdown derives from it.
# Platforms send SIGTERM, then SIGKILL 30 s later (Heroku; Kubernetes' default too). After
# SIGTERM the runs go on for SHUTDOWN_GRACE_SECONDS; then each is stopped and its end stored,
# which takes at most FINISH_TIMEOUT_SECONDS (its statement, retried while the database is
# unreachable); then its streams send the final event, FINAL_EVENT_SECONDS. uvicorn gives the
# streams that long, rounded up (`graceful_shutdown_seconds`: the Procfile's
# --timeout-graceful-shutdown is that value at the largest grace), and LIFESPAN_EXIT_SECONDS stay
# for the lifespan's own shutdown. tests/deploy/test_heroku.py checks the Procfile against it.
PLATFORM_STOP_SECONDS = 30
FINISH_TIMEOUT_SECONDS = 12.0
FINAL_EVENT_SECONDS = 2.0
LIFESPAN_EXIT_SECONDS = 4
MAX_SHUTDOWN_GRACE_SECONDS = int(
    PLATFORM_STOP_SECONDS - LIFESPAN_EXIT_SECONDS - 1 - FINISH_TIMEOUT_SECONDS - FINAL_EVENT_SECONDS
)  # 11


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line meant for the operator."""


@dataclass(frozen=True, slots=True)
class Settings:
    app_env: AppEnv = "development"
    database_url: str | None = None
    port: int = 8000
    jwt_secret: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_jwks_url: str | None = None
    jwt_user_claim: str = "sub"
    agent_model: str = OFFLINE_MODEL
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    agent_api: Literal["responses", "chat_completions"] = "responses"
    model_timeout_seconds: float = 60.0
    model_max_retries: int = 2
    agent_tracing: bool = False
    offline_token_delay_ms: int = 0
    db_pool_size: int = 5
    db_pool_timeout_seconds: int = 30
    max_message_chars: int = 4000
    max_body_bytes: int = 64 * 1024
    history_messages: int = 20
    agent_max_turns: int = 10
    max_active_runs: int = 3
    run_retention_hours: int = 24
    event_log: EventLogName = EVENT_LOGS[0]
    cors_origins: tuple[str, ...] = ()
    sse_ping_seconds: float = 15.0
    # A stream whose client has not taken one write for this long is dropped (`app.web.streaming`).
    send_timeout_seconds: float = 30.0
    shutdown_grace_seconds: float = 10.0
    # GET /metrics answers only a bearer of this token; required in production.
    metrics_token: str | None = None
    # GET /docs: on outside production unless API_DOCS=off; off in production unless on.
    api_docs: bool = True
    log_format: Literal["text", "json"] = "text"
    # The run event log on Redis Streams instead of PostgreSQL (app/runs/log/redis_streams.py).
    redis_url: str | None = None
    redis_cluster: bool = False

    @property
    def uses_offline_model(self) -> bool:
        return self.agent_model == OFFLINE_MODEL

    @property
    def jwt_key(self) -> str:
        """The key that verifies tokens: the shared secret, or the public key."""
        key = (
            self.jwt_public_key if self.jwt_algorithm in _PUBLIC_KEY_ALGORITHMS else self.jwt_secret
        )
        return key or ""

    @property
    def stream_close_seconds(self) -> float:
        """How long a stream stays open after SIGTERM, for its run's final event."""
        return self.shutdown_grace_seconds + FINISH_TIMEOUT_SECONDS + FINAL_EVENT_SECONDS

    @property
    def graceful_shutdown_seconds(self) -> int:
        """uvicorn's --timeout-graceful-shutdown: every stream has closed by then."""
        return math.ceil(self.stream_close_seconds) + 1

    def with_database(self, url: str) -> Settings:
        return replace(self, database_url=normalize_database_url(url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        database_url = _text(env, "DATABASE_URL")
        app_env = _choice(
            env,
            "APP_ENV",
            ("development", "test", "production"),
            "production" if database_url else "development",
        )
        api_key = _text(env, "OPENAI_API_KEY")
        jwks_url = _jwks_url(env)
        if _text(env, "JWT_ALGORITHM") in _UNSUPPORTED_ALGORITHMS:
            raise ConfigError(
                f"JWT_ALGORITHM={_text(env, 'JWT_ALGORITHM')} is not supported (python-jose has "
                "no EdDSA): configure the identity provider to sign with ES256 or RS256 and set "
                "JWT_ALGORITHM to match"
            )
        algorithm = _choice(
            env,
            "JWT_ALGORITHM",
            _HMAC_ALGORITHMS + _PUBLIC_KEY_ALGORITHMS,
            "RS256" if jwks_url else "HS256",
        )
        base_url = _text(env, "OPENAI_BASE_URL")
        settings = cls(
            app_env=app_env,  # type: ignore[arg-type]
            database_url=normalize_database_url(database_url) if database_url else None,
            port=_integer(env, "PORT", 8000, minimum=1, maximum=65535),
            jwt_secret=_text(env, "JWT_SECRET"),
            jwt_algorithm=algorithm,
            jwt_public_key=_text(env, "JWT_PUBLIC_KEY"),
            jwt_audience=_text(env, "JWT_AUDIENCE"),
            jwt_issuer=_text(env, "JWT_ISSUER"),
            jwt_jwks_url=jwks_url,
            jwt_user_claim=_text(env, "JWT_USER_CLAIM") or "sub",
            agent_model=_text(env, "AGENT_MODEL")
            or (DEFAULT_OPENAI_MODEL if api_key else OFFLINE_MODEL),
            openai_api_key=api_key,
            openai_base_url=base_url,
            agent_api=_choice(  # type: ignore[arg-type]
                env,
                "AGENT_API",
                ("responses", "chat_completions"),
                "chat_completions" if base_url else "responses",
            ),
            model_timeout_seconds=_integer(
                env, "MODEL_TIMEOUT_SECONDS", 60, minimum=1, maximum=600
            ),
            model_max_retries=_integer(env, "MODEL_MAX_RETRIES", 2, maximum=10),
            agent_tracing=_choice(env, "AGENT_TRACING", ("on", "off"), "off") == "on",
            offline_token_delay_ms=_integer(env, "OFFLINE_TOKEN_DELAY_MS", 0, maximum=10_000),
            db_pool_size=_integer(env, "DB_POOL_SIZE", 5, minimum=1, maximum=100),
            db_pool_timeout_seconds=_integer(
                env, "DB_POOL_TIMEOUT_SECONDS", 30, minimum=1, maximum=300
            ),
            max_message_chars=_integer(env, "MAX_MESSAGE_CHARS", 4000, minimum=1),
            history_messages=_integer(env, "HISTORY_MESSAGES", 20, minimum=0, maximum=500),
            agent_max_turns=_integer(env, "AGENT_MAX_TURNS", 10, minimum=1, maximum=100),
            max_active_runs=_integer(env, "MAX_ACTIVE_RUNS_PER_USER", 3, minimum=1, maximum=1000),
            run_retention_hours=_integer(env, "RUN_RETENTION_HOURS", 24, minimum=1),
            event_log=_choice(  # type: ignore[arg-type]
                env, "EVENT_LOG", EVENT_LOGS, "redis" if _text(env, "REDIS_URL") else EVENT_LOGS[0]
            ),
            send_timeout_seconds=_integer(env, "SEND_TIMEOUT_SECONDS", 30, minimum=1, maximum=300),
            shutdown_grace_seconds=_integer(
                env, "SHUTDOWN_GRACE_SECONDS", 10, maximum=MAX_SHUTDOWN_GRACE_SECONDS
            ),
            cors_origins=_origins(env, default="" if app_env == "production" else "*"),
            metrics_token=_text(env, "METRICS_TOKEN"),
            api_docs=_choice(
                env, "API_DOCS", ("on", "off"), "off" if app_env == "production" else "on"
            )
            == "on",
            log_format=_choice(env, "LOG_FORMAT", ("text", "json"), "text"),  # type: ignore[arg-type]
            redis_url=_redis_url(env),
            redis_cluster=_choice(env, "REDIS_CLUSTER", ("0", "1"), "0") == "1",
        )
        if (
            settings.jwt_secret is None
            and algorithm in _HMAC_ALGORITHMS
            and app_env != "production"
        ):
            settings = replace(settings, jwt_secret=development_jwt_secret())
        try:
            settings.validate()
        except ConfigError as error:
            # An error that development would not raise gets the reason it is production.
            development = replace(
                settings,
                app_env="development",
                jwt_secret=settings.jwt_secret or "development secret made under .data/",
            )
            if _text(env, "APP_ENV") is None and _valid(development):
                raise ConfigError(
                    f"{error} (DATABASE_URL is set and APP_ENV is not, so this is production; "
                    "APP_ENV=development runs a development server)"
                ) from None
            raise
        return settings

    def validate(self) -> None:
        production = self.app_env == "production"
        if self.jwt_jwks_url is not None:
            if self.jwt_algorithm not in _PUBLIC_KEY_ALGORITHMS:
                raise ConfigError(
                    f"JWT_JWKS_URL needs JWT_ALGORITHM=RS256 or ES256 (the algorithm the identity "
                    f"provider signs with), not {self.jwt_algorithm}"
                )
            if self.jwt_public_key:
                raise ConfigError("set JWT_JWKS_URL or JWT_PUBLIC_KEY, not both")
        elif self.jwt_algorithm in _HMAC_ALGORITHMS:
            secret = self.jwt_secret
            if not secret:
                raise ConfigError(
                    f"JWT_SECRET is required with JWT_ALGORITHM={self.jwt_algorithm} (a random "
                    f"string of at least {_MIN_SECRET_LENGTH} characters), or JWT_JWKS_URL for "
                    "an identity provider's tokens"
                )
            weak = len(secret) < _MIN_SECRET_LENGTH or secret.lower() in _PLACEHOLDER_SECRETS
            if weak and production:
                raise ConfigError(
                    f"JWT_SECRET must be a random string of at least {_MIN_SECRET_LENGTH} "
                    "characters in production"
                )
        elif not self.jwt_public_key:
            raise ConfigError(
                f"JWT_PUBLIC_KEY (a PEM public key) or JWT_JWKS_URL is required with "
                f"JWT_ALGORITHM={self.jwt_algorithm}"
            )
        if production and "*" in self.cors_origins:
            raise ConfigError(
                "CORS_ORIGINS=* lets any website call the API in production: list the origins "
                "of your web app instead, e.g. CORS_ORIGINS=https://app.example"
            )
        if production and not self.database_url:
            raise ConfigError("DATABASE_URL is required in production")
        if production and not self.metrics_token:
            raise ConfigError(
                "METRICS_TOKEN is required in production: GET /metrics answers only "
                "`Authorization: Bearer $METRICS_TOKEN` (openssl rand -hex 32)"
            )
        if self.event_log == "redis" and not self.redis_url:
            raise ConfigError("EVENT_LOG=redis needs REDIS_URL (redis:// or rediss://)")
        if self.redis_cluster and not self.redis_url:
            raise ConfigError(
                "REDIS_CLUSTER=1 needs REDIS_URL (the URL of any node of the cluster)"
            )
        if not self.uses_offline_model and not self.openai_api_key:
            raise ConfigError(
                f"AGENT_MODEL={self.agent_model} needs OPENAI_API_KEY "
                "(any non-empty value for a local OpenAI-compatible server)"
            )


def normalize_database_url(url: str) -> str:
    """Accept Heroku-style URLs and return one for SQLAlchemy's asyncpg dialect.

    `postgres://` and `postgresql://` become `postgresql+asyncpg://`; libpq's `sslmode`
    becomes asyncpg's `ssl`, which takes the same values.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ConfigError(
            "DATABASE_URL must start with postgres://, postgresql:// or postgresql+asyncpg://"
        )
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg", query=urlencode(query)))


def development_jwt_secret() -> str:
    """A random secret made once and kept under .data/, so tokens survive restarts."""
    path = DATA_DIR / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def _valid(settings: Settings) -> bool:
    try:
        settings.validate()
    except ConfigError:
        return False
    return True


def _jwks_url(env: Mapping[str, str]) -> str | None:
    url = _text(env, "JWT_JWKS_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    # Keys fetched in the clear could be swapped on the way: only a local provider may use http.
    if not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
    ):
        raise ConfigError(
            f"JWT_JWKS_URL must be an https:// URL (http:// only for localhost), not {url!r}"
        )
    return url


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = _text(env, "REDIS_URL")
    if url is not None and not (
        urlsplit(url).scheme in ("redis", "rediss") and urlsplit(url).hostname
    ):
        raise ConfigError(
            "REDIS_URL must be a redis:// or rediss:// (TLS) URL with a host, "
            "e.g. rediss://:password@host:6380"
        )
    return url


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _origins(env: Mapping[str, str], *, default: str) -> tuple[str, ...]:
    raw = env.get("CORS_ORIGINS", default)
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"CORS_ORIGINS must list origins such as https://app.example, not {origin!r}"
            )
    return origins


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = _text(env, name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _integer(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ConfigError(f"{name} must be at least {minimum}{upper}, not {value}")
    return value

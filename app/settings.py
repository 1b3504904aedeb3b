"""Configuration, read from the environment and validated once at start-up.

Safe by default: with a DATABASE_URL and no APP_ENV the service is in production (a deploy that
forgets APP_ENV gets no weak secret, no CORS `*` and no development routes); development is
`make run` with no DATABASE_URL, or APP_ENV=development said outright.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.secrets_and_origins import MIN_SECRET_LENGTH, SECRET_FLOOR, is_origin, weak_secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"

AppEnv = Literal["development", "test", "production"]
AgentApi = Literal["responses", "chat_completions"]
LogFormat = Literal["text", "json"]
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
class _Env:
    """How a setting is read from the environment: its variable, and what it may hold."""

    name: str
    minimum: int = 0  # a number's bounds
    maximum: int | None = None
    choices: tuple[str, ...] = ()  # the words it may be
    switch: tuple[str, str] | None = None  # the two words it may be, `on` meaning yes
    on: str = "on"
    read: Callable[[str], Any] | None = None  # reads and checks a text of its own kind
    blank_is_a_value: bool = False  # set to "" is not the same as unset


def _env(name: str, default: Any, **how: Any) -> Any:
    """A setting's one declaration: its default (for the dataclass and for `from_env` alike)
    and how it is read. A default that follows from other settings is in `from_env`."""
    return field(default=default, metadata={"env": _Env(name, **how)})


@dataclass(frozen=True, slots=True)
class Settings:
    # production when DATABASE_URL is set (`from_env`)
    app_env: AppEnv = _env("APP_ENV", "development", choices=get_args(AppEnv))
    database_url: str | None = _env("DATABASE_URL", None, read=lambda v: normalize_database_url(v))
    port: int = _env("PORT", 8000, minimum=1, maximum=65535)
    jwt_secret: str | None = _env("JWT_SECRET", None)
    # RS256 with JWT_JWKS_URL (`from_env`)
    jwt_algorithm: str = _env(
        "JWT_ALGORITHM", "HS256", choices=_HMAC_ALGORITHMS + _PUBLIC_KEY_ALGORITHMS
    )
    jwt_public_key: str | None = _env("JWT_PUBLIC_KEY", None)
    jwt_audience: str | None = _env("JWT_AUDIENCE", None)
    jwt_issuer: str | None = _env("JWT_ISSUER", None)
    jwt_jwks_url: str | None = _env("JWT_JWKS_URL", None, read=lambda v: _jwks_url(v))
    jwt_user_claim: str = _env("JWT_USER_CLAIM", "sub")
    # DEFAULT_OPENAI_MODEL with OPENAI_API_KEY (`from_env`)
    agent_model: str = _env("AGENT_MODEL", OFFLINE_MODEL)
    openai_api_key: str | None = _env("OPENAI_API_KEY", None)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", None)
    # chat_completions with OPENAI_BASE_URL (`from_env`)
    agent_api: AgentApi = _env("AGENT_API", "responses", choices=get_args(AgentApi))
    model_timeout_seconds: float = _env("MODEL_TIMEOUT_SECONDS", 60.0, minimum=1, maximum=600)
    model_max_retries: int = _env("MODEL_MAX_RETRIES", 2, maximum=10)
    agent_tracing: bool = _env("AGENT_TRACING", False, switch=("on", "off"))
    offline_token_delay_ms: int = _env("OFFLINE_TOKEN_DELAY_MS", 0, maximum=10_000)
    db_pool_size: int = _env("DB_POOL_SIZE", 5, minimum=1, maximum=100)
    db_pool_timeout_seconds: int = _env("DB_POOL_TIMEOUT_SECONDS", 30, minimum=1, maximum=300)
    max_message_chars: int = _env("MAX_MESSAGE_CHARS", 4000, minimum=1)
    max_body_bytes: int = 64 * 1024
    history_messages: int = _env("HISTORY_MESSAGES", 20, maximum=500)
    agent_max_turns: int = _env("AGENT_MAX_TURNS", 10, minimum=1, maximum=100)
    max_active_runs: int = _env("MAX_ACTIVE_RUNS_PER_USER", 3, minimum=1, maximum=1000)
    run_retention_hours: int = _env("RUN_RETENTION_HOURS", 24, minimum=1)
    event_log: EventLogName = _env("EVENT_LOG", EVENT_LOGS[0], choices=EVENT_LOGS)
    # `*` outside production (`from_env`)
    cors_origins: tuple[str, ...] = _env(
        "CORS_ORIGINS", (), read=lambda v: _origins(v), blank_is_a_value=True
    )
    sse_ping_seconds: float = 15.0
    # A stream whose client has not taken one write for this long is dropped (`app.web.streaming`).
    send_timeout_seconds: float = _env("SEND_TIMEOUT_SECONDS", 30.0, minimum=1, maximum=300)
    shutdown_grace_seconds: float = _env(
        "SHUTDOWN_GRACE_SECONDS", 10.0, maximum=MAX_SHUTDOWN_GRACE_SECONDS
    )
    # GET /metrics answers only a bearer of this token; required in production.
    metrics_token: str | None = _env("METRICS_TOKEN", None)
    # GET /docs: off in production unless API_DOCS=on (`from_env`).
    api_docs: bool = _env("API_DOCS", True, switch=("on", "off"))
    log_format: LogFormat = _env("LOG_FORMAT", "text", choices=get_args(LogFormat))
    # What one request may take of a connection before it is answered by the HTTP protocol
    # itself (`app.http_protocol`): 408 for a head or a body that does not arrive in time, 431
    # for a head too large, 503 past the connections one process serves at once.
    request_head_timeout_seconds: float = _env(
        "REQUEST_HEAD_TIMEOUT_SECONDS", 10.0, minimum=1, maximum=300
    )
    request_body_timeout_seconds: float = _env(
        "REQUEST_BODY_TIMEOUT_SECONDS", 10.0, minimum=1, maximum=300
    )
    max_header_bytes: int = _env("MAX_HEADER_BYTES", 32 * 1024, minimum=1024, maximum=1024**2)
    max_connections: int = _env("MAX_CONNECTIONS", 4000, minimum=1)
    # The run event log on Redis Streams instead of PostgreSQL (app/runs/log/redis_streams.py).
    redis_url: str | None = _env("REDIS_URL", None, read=lambda v: _redis_url(v))
    redis_cluster: bool = _env("REDIS_CLUSTER", False, switch=("0", "1"), on="1")

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
        if _text(env, "JWT_ALGORITHM") in _UNSUPPORTED_ALGORITHMS:
            raise ConfigError(
                f"JWT_ALGORITHM={_text(env, 'JWT_ALGORITHM')} is not supported (python-jose has "
                "no EdDSA): configure the identity provider to sign with ES256 or RS256 and set "
                "JWT_ALGORITHM to match"
            )
        # The defaults that follow from other settings; every other default is its field's.
        follows: dict[str, Any] = {}
        if _text(env, "DATABASE_URL"):
            follows["app_env"] = "production"
        if _text(env, "JWT_JWKS_URL"):
            follows["jwt_algorithm"] = "RS256"
        if _text(env, "OPENAI_API_KEY"):
            follows["agent_model"] = DEFAULT_OPENAI_MODEL
        if _text(env, "OPENAI_BASE_URL"):
            follows["agent_api"] = "chat_completions"
        if _text(env, "REDIS_URL"):
            follows["event_log"] = "redis"
        declared = {item.name: item for item in fields(cls) if "env" in item.metadata}
        app_env = _read(env, declared["app_env"], follows)
        if app_env == "production":
            follows["api_docs"] = False
        else:
            follows["cors_origins"] = ("*",)
        settings = cls(**{name: _read(env, item, follows) for name, item in declared.items()})
        algorithm = settings.jwt_algorithm
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
                    f"string of at least {MIN_SECRET_LENGTH} characters), or JWT_JWKS_URL for "
                    "an identity provider's tokens"
                )
            if production and weak_secret(secret):
                raise ConfigError(f"JWT_SECRET must be {SECRET_FLOOR} in production")
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
        if production and self.metrics_token and weak_secret(self.metrics_token):
            raise ConfigError(f"METRICS_TOKEN must be {SECRET_FLOOR} in production")
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


def _jwks_url(url: str) -> str:
    parts = urlsplit(url)
    # Keys fetched in the clear could be swapped on the way: only a local provider may use http.
    if not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
    ):
        raise ConfigError(
            f"JWT_JWKS_URL must be an https:// URL (http:// only for localhost), not {url!r}"
        )
    return url


def _redis_url(url: str) -> str:
    if not (urlsplit(url).scheme in ("redis", "rediss") and urlsplit(url).hostname):
        raise ConfigError(
            "REDIS_URL must be a redis:// or rediss:// (TLS) URL with a host, "
            "e.g. rediss://:password@host:6380"
        )
    return url


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not is_origin(origin):
            raise ConfigError(
                "CORS_ORIGINS must list origins, scheme://host[:port] such as "
                f"https://app.example, not {origin!r}"
            )
    # Browsers send origins in lower case, and CORS compares them as strings.
    return tuple(origin.lower() for origin in origins)


def _read(env: Mapping[str, str], declared: Field[Any], follows: Mapping[str, Any]) -> Any:
    """One setting from the environment, or its default when unset."""
    how: _Env = declared.metadata["env"]
    default = follows.get(declared.name, declared.default)
    raw = env.get(how.name)
    text = _text(env, how.name)
    if how.read is not None:
        if text is not None:
            return how.read(text)
        return how.read("") if how.blank_is_a_value and raw is not None else default
    if how.choices:
        return _choice(env, how.name, how.choices, default)
    if how.switch is not None:
        off = next(word for word in how.switch if word != how.on)
        return _choice(env, how.name, how.switch, how.on if default else off) == how.on
    if isinstance(default, int | float) and not isinstance(default, bool):
        return _number(env, how.name, default, minimum=how.minimum, maximum=how.maximum)
    return text or default


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = _text(env, name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> float:
    """A whole number from the environment (also for a setting kept as a float), or `default`."""
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

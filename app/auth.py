"""Bearer-token authentication with JSON Web Tokens: the one module that uses python-jose."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from jose import ExpiredSignatureError, JWTError, jwt
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response, not_authenticated
from app.settings import ConfigError, Settings

_LEEWAY_SECONDS = 10
_QUERY_TOKEN_PATH = re.compile(r"^/api/[^/]+/(?:runs/[^/]+/events|conversations/[^/]+/stream)$")


class TokenUser(BaseUser):
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.user_id

    @property
    def identity(self) -> str:
        return self.user_id


class InvalidToken(AuthenticationError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    key: str
    algorithm: str
    audience: str | None
    issuer: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            settings.jwt_key, settings.jwt_algorithm, settings.jwt_audience, settings.jwt_issuer
        )

    def user_id(self, token: str) -> str:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    "require_sub": True,
                    "verify_aud": self.audience is not None,
                    "leeway": _LEEWAY_SECONDS,
                },
            )
        except ExpiredSignatureError:
            raise InvalidToken("token_expired", "The token has expired.") from None
        except JWTError:
            raise InvalidToken("invalid_token", "The token is not valid.") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("invalid_token", "The token names no user.")
        return subject


class BearerTokenBackend(AuthenticationBackend):
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if header is None:
            # A browser's EventSource cannot send headers: on the two GET streams alone (a
            # run's events, a conversation's run), the token may come as ?access_token=
            # (query strings are never logged).
            token = conn.query_params.get("access_token")
            if (
                token
                and conn.scope.get("method") == "GET"
                and _QUERY_TOKEN_PATH.search(conn.url.path)
            ):
                return AuthCredentials(["authenticated"]), TokenUser(self._verifier.user_id(token))
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken(
                "invalid_token", "Send the token as 'Authorization: Bearer <token>'."
            )
        return AuthCredentials(["authenticated"]), TokenUser(self._verifier.user_id(token.strip()))


def issue_token(settings: Settings, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A token for `user_id`, signed with the shared secret (for development and tests)."""
    if settings.jwt_secret is None or not settings.jwt_algorithm.startswith("HS"):
        raise ConfigError("tokens can only be issued with an HS* JWT_ALGORITHM and a JWT_SECRET")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


class RequireUser:
    """Pure ASGI middleware for /api/{user_id}: 401 without a verified token, 403 when the
    token's user is not the path's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            response: Response = not_authenticated(
                HTTPConnection(scope), "not_authenticated", "Send a Bearer token."
            )
        elif scope["path_params"].get("user_id") != user.identity:
            response = error_response(403, "forbidden", "The token is for another user.")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def authentication_failed(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    if isinstance(exc, InvalidToken):
        return not_authenticated(conn, exc.code, exc.message)
    return not_authenticated(conn, "invalid_token", "The token is not valid.")

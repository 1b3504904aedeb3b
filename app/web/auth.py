"""Bearer-token authentication with JSON Web Tokens: the one module that uses python-jose.

Tokens are verified with a shared secret (HS*), one PEM public key, or an identity provider's
key set (JWT_JWKS_URL, app/jwks.py). With a key set, the key is the one the token's `kid`
names, and it must fit the one configured algorithm: an RSA key for RS*, an EC key on the
algorithm's curve for ES*, its own `alg` (if it says one) that algorithm. The token's header
chooses nothing else: a token whose `alg` is not the configured one (`none`, HS256 "signed"
with the public key, ES256 against an RSA key) is refused before any key is looked at, and a
`jku`, `x5u` or `jwk` in the header is never read. When the keys cannot be fetched, the answer
is 503 `auth_unavailable`, never 401 (the token may be good) nor 500.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jose import ExpiredSignatureError, JWTError, jwk, jwt
from jose.backends.base import Key
from jose.exceptions import JWKError
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import ConfigError, Settings
from app.web.errors import error_response, not_authenticated
from app.web.jwks import Jwk, KeySet, KeysUnavailable

logger = logging.getLogger(__name__)

_LEEWAY_SECONDS = 10
# Tokens verified with the configured secret or key, kept with their user until they expire:
# a client sends the same token with every request, and python-jose's decode costs a hundred
# times a lookup (docs/performance.md). Bounded; the oldest entry goes first.
VERIFIED_TOKENS_KEPT = 4096
_QUERY_TOKEN_PATH = re.compile(r"^/api/[^/]+/(?:runs/[^/]+/events|conversations/[^/]+/stream)$")
# The key type (and curve) each public-key algorithm verifies with.
_KEY_TYPES = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}


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


class AuthUnavailable(AuthenticationError):
    """The identity provider's keys are needed and cannot be fetched."""


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    key: str
    algorithm: str
    audience: str | None
    issuer: str | None
    user_claim: str = "sub"
    key_set: KeySet | None = None
    clock: Callable[[], float] = time.time
    # token -> (its user, the time past which it is refused: exp + leeway).
    _verified: dict[str, tuple[str, float]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            settings.jwt_key,
            settings.jwt_algorithm,
            settings.jwt_audience,
            settings.jwt_issuer,
            settings.jwt_user_claim,
            KeySet(settings.jwt_jwks_url) if settings.jwt_jwks_url else None,
        )

    def user_id(self, token: str) -> str:
        """The user of a token signed with the configured secret or public key; a token
        verified before is not decoded again until its `exp` (and the leeway) has passed."""
        known = self._verified.get(token)
        if known is not None:
            user_id, refused_after = known
            if self.clock() <= refused_after:
                return user_id
            del self._verified[token]
            raise InvalidToken("token_expired", "The token has expired.")
        user_id, expires = self._user_id(token, self.key)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (user_id, expires + _LEEWAY_SECONDS)
        return user_id

    async def verify(self, token: str) -> str:
        """The user of a token; with a key set, its key is fetched when needed."""
        if self.key_set is None:
            return self.user_id(token)
        return self._user_id(token, await self._provider_key(token))[0]

    async def _provider_key(self, token: str) -> Key:
        assert self.key_set is not None
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise InvalidToken("invalid_token", "The token is not valid.") from None
        kid = header.get("kid")
        if header.get("alg") != self.algorithm or not isinstance(kid, str | None):
            raise InvalidToken("invalid_token", "The token is not valid.")
        try:
            data = await self.key_set.key(kid)
        except KeysUnavailable:
            raise AuthUnavailable("the identity provider's keys cannot be fetched") from None
        if data is None or not _fits(data, self.algorithm):
            raise InvalidToken("invalid_token", "The token is not valid.")
        try:
            return jwk.construct(dict(data), self.algorithm)
        except JWKError:
            logger.warning("key %r of %s cannot be read", kid, self.key_set.url)
            raise InvalidToken("invalid_token", "The token is not valid.") from None

    def _user_id(self, token: str, key: str | Key) -> tuple[str, float]:
        """The token's user and its `exp`, once its signature and claims are checked."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    # python-jose would refuse a numeric `sub` (and requiring it turns that
                    # check back on): the user claim, required, is checked by `user_of` alone,
                    # by the same rule whichever claim it is.
                    "verify_sub": False,
                    "verify_aud": self.audience is not None,
                    # python-jose checks `aud` only when the token has one: require it.
                    "require_aud": self.audience is not None,
                    "leeway": _LEEWAY_SECONDS,
                },
            )
        except ExpiredSignatureError:
            raise InvalidToken("token_expired", "The token has expired.") from None
        except JWTError:
            raise InvalidToken("invalid_token", "The token is not valid.") from None
        return user_of(claims.get(self.user_claim), self.user_claim), float(claims["exp"])


def user_of(value: Any, claim: str) -> str:
    """The user id a token's user claim holds: a non-empty string as it is, or a whole number
    as its decimal digits (identity providers that number their users, up to any size); any
    other type is refused, saying so. The page reads the claim by the same rule (`userOf` in
    static/api.js), so that it never signs in a user whose every call would be refused."""
    if isinstance(value, str) and value:
        return value
    # bool is an int in Python, never an id; a float (1.0, 1e3) is refused as the page does.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or value == "":
        raise InvalidToken("invalid_token", "The token names no user.")
    raise InvalidToken(
        "invalid_token",
        f'The token\'s "{claim}" claim must be a user id: a string or a whole number.',
    )


def _fits(key: Jwk, algorithm: str) -> bool:
    key_type, curve = _KEY_TYPES[algorithm]
    return (
        key.get("kty") == key_type
        and (curve is None or key.get("crv") == curve)
        and key.get("alg", algorithm) == algorithm
    )


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
                return AuthCredentials(["authenticated"]), TokenUser(
                    await self._verifier.verify(token)
                )
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken(
                "invalid_token", "Send the token as 'Authorization: Bearer <token>'."
            )
        return AuthCredentials(["authenticated"]), TokenUser(
            await self._verifier.verify(token.strip())
        )


def issue_token(settings: Settings, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A token for `user_id`, signed with the shared secret (for development and tests)."""
    if settings.jwt_secret is None or not settings.jwt_algorithm.startswith("HS"):
        raise ConfigError("tokens can only be issued with an HS* JWT_ALGORITHM and a JWT_SECRET")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    claims[settings.jwt_user_claim] = user_id
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


class RequireUser:
    """Pure ASGI middleware for /api/{user_id}: 401 without a verified token (503 when it
    cannot be checked), 403 when the token's user is not the path's.

    One layer that checks the token and holds nothing while the request goes on, rather than
    Starlette's AuthenticationMiddleware and a check after it: each layer's frame lives as long
    as the response streams, and that one kept the connection, the credentials and the user in
    the scope too (docs/performance.md)."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self._backend = BearerTokenBackend(verifier)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = await self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    async def _refusal(self, scope: Scope) -> Response | None:
        conn = HTTPConnection(scope)
        try:
            credentials = await self._backend.authenticate(conn)
        except AuthenticationError as error:
            return authentication_failed(conn, error)
        if credentials is None:
            return not_authenticated(conn, "not_authenticated", "Send a Bearer token.")
        if scope["path_params"].get("user_id") != credentials[1].identity:
            return error_response(403, "forbidden", "The token is for another user.")
        return None


def authentication_failed(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    if isinstance(exc, AuthUnavailable):
        return error_response(
            503,
            "auth_unavailable",
            "The service cannot reach the identity provider to check the token. "
            "Please try again shortly.",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, InvalidToken):
        return not_authenticated(conn, exc.code, exc.message)
    return not_authenticated(conn, "invalid_token", "The token is not valid.")

"""Tokens `make token` issues carry the user where the service is configured to look."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from jose import jwt as jose_jwt

from app.settings import ConfigError, Settings
from app.web.auth import InvalidToken, TokenVerifier, issue_token

SECRET = "s" * 40


@pytest.mark.parametrize("claim", ["sub", "id"])
def test_an_issued_token_names_its_user_in_the_user_claim(claim: str) -> None:
    settings = Settings(jwt_secret=SECRET, jwt_user_claim=claim)
    assert TokenVerifier.from_settings(settings).user_id(issue_token(settings, "alice")) == "alice"


def test_a_token_without_the_user_claim_names_no_user() -> None:
    token = issue_token(Settings(jwt_secret=SECRET), "alice")
    verifier = TokenVerifier.from_settings(Settings(jwt_secret=SECRET, jwt_user_claim="id"))
    with pytest.raises(InvalidToken, match="names no user"):
        verifier.user_id(token)


# What a shared-secret token must be, with tokens made here by python-jose itself (cases make
# mutate found no fast test for: the expiry required, one algorithm, the leeway, the audience
# and issuer, the user claim's type, the key set's wiring).

INVALID = ("invalid_token", "The token is not valid.")


def _token(claims: dict[str, Any], *, algorithm: str = "HS256", secret: str = SECRET) -> str:
    return jose_jwt.encode(claims, secret, algorithm=algorithm)


def _verifier(**settings: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwt_secret=SECRET, **settings))


def _refusal(verifier: TokenVerifier, token: str) -> tuple[str, str]:
    with pytest.raises(InvalidToken) as refused:
        verifier.user_id(token)
    return refused.value.code, refused.value.message


def test_a_token_needs_an_expiry_the_configured_algorithm_and_the_secret() -> None:
    verifier, later = _verifier(), int(time.time()) + 600
    assert verifier.user_id(_token({"sub": "alice", "exp": later})) == "alice"
    assert _refusal(verifier, _token({"sub": "alice"})) == INVALID  # no exp
    assert _refusal(verifier, _token({"sub": "alice", "exp": later}, algorithm="HS512")) == INVALID
    assert _refusal(verifier, _token({"sub": "alice", "exp": later}, secret="t" * 40)) == INVALID
    assert _refusal(verifier, "not.a.token") == INVALID


def test_an_expired_token_has_its_own_code_after_ten_seconds_of_leeway() -> None:
    verifier, now = _verifier(), int(time.time())
    # Two seconds late is within the leeway (the margin is the other eight: a clock that
    # steps past it fails this, a slow machine does not).
    assert verifier.user_id(_token({"sub": "alice", "exp": now - 2})) == "alice"
    expired = ("token_expired", "The token has expired.")
    assert _refusal(verifier, _token({"sub": "alice", "exp": now - 60})) == expired


def test_the_user_is_a_non_empty_string_in_the_configured_claim() -> None:
    later = int(time.time()) + 600
    no_user = ("invalid_token", "The token names no user.")
    assert _refusal(_verifier(), _token({"sub": "", "exp": later})) == no_user
    assert _refusal(_verifier(), _token({"exp": later})) == no_user  # sub required
    by_id = _verifier(jwt_user_claim="id")
    assert by_id.user_id(_token({"id": "alice", "exp": later})) == "alice"  # no sub needed


# Any JSON value a user claim might hold: the rule below is the page's too (static/api.js).
_claim_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**53 - 2, max_value=2**70)  # past what a JS number keeps exactly
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(), inner, max_size=2),
    max_leaves=3,
)


@examples(max_examples=200)
@given(st.sampled_from(["sub", "id"]), _claim_values)
def test_the_user_claim_holds_a_string_or_a_whole_number_and_nothing_else(
    claim: str, value: Any
) -> None:
    """A non-empty string is the id as it is, a whole number (any size, `sub` too) is its
    decimal digits; anything else is refused with a message naming the claim, never 500."""
    token = _token({claim: value, "sub": "x", "exp": int(time.time()) + 600} | {claim: value})
    verifier = _verifier(jwt_user_claim=claim)
    if isinstance(value, str) and value:
        assert verifier.user_id(token) == value
    elif isinstance(value, int) and not isinstance(value, bool):
        assert verifier.user_id(token) == str(value)
    elif value is None or value == "":
        assert _refusal(verifier, token) == ("invalid_token", "The token names no user.")
    else:
        assert _refusal(verifier, token) == (
            "invalid_token",
            f'The token\'s "{claim}" claim must be a user id: a string or a whole number.',
        )


def test_audience_and_issuer_are_required_when_configured_and_issued_tokens_carry_them() -> None:
    settings = Settings(jwt_secret=SECRET, jwt_audience="todo", jwt_issuer="https://id.test")
    verifier, later = TokenVerifier.from_settings(settings), int(time.time()) + 600
    good = {"sub": "alice", "exp": later, "aud": "todo", "iss": "https://id.test"}
    assert verifier.user_id(_token(good)) == "alice"
    assert verifier.user_id(issue_token(settings, "alice")) == "alice"
    for wrong in ({"aud": "other"}, {"iss": "https://other.test"}):
        assert _refusal(verifier, _token({**good, **wrong})) == INVALID
    for missing in ("aud", "iss"):
        assert _refusal(verifier, _token({k: v for k, v in good.items() if k != missing})) == (
            INVALID
        )
    # Without an audience configured, a token that names one is not refused for it.
    assert _verifier().user_id(_token({"sub": "alice", "exp": later, "aud": "x"})) == "alice"


def test_tokens_are_issued_only_with_a_shared_secret() -> None:
    for settings in (Settings(), Settings(jwt_secret=SECRET, jwt_algorithm="RS256")):
        with pytest.raises(ConfigError, match="HS"):
            issue_token(settings, "alice")
    claims = jose_jwt.get_unverified_claims(issue_token(Settings(jwt_secret=SECRET), "alice"))
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 24 * 3600


async def test_a_jwks_url_gives_a_key_set_of_that_url_and_none_gives_none() -> None:
    url = "https://id.test/.well-known/jwks.json"
    with_keys = _verifier(jwt_algorithm="RS256", jwt_jwks_url=url)
    assert with_keys.key_set is not None and with_keys.key_set.url == url
    assert _verifier().key_set is None
    assert await _verifier().verify(issue_token(Settings(jwt_secret=SECRET), "alice")) == "alice"


def test_a_token_is_issued_with_the_configured_hs_algorithm() -> None:
    settings = Settings(jwt_secret=SECRET, jwt_algorithm="HS512")
    token = issue_token(settings, "alice")
    assert jose_jwt.get_unverified_header(token)["alg"] == "HS512"
    assert TokenVerifier.from_settings(settings).user_id(token) == "alice"

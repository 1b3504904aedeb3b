"""Tokens `make token` issues carry the user where the service is configured to look."""

from __future__ import annotations

import pytest

from app.auth import InvalidToken, TokenVerifier, issue_token
from app.settings import Settings

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

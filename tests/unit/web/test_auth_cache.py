"""Verified tokens are kept, with their user, until they expire (python-jose's decode
was ~0.2 ms of every request's CPU), and no longer; the cache is bounded."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jose import jwt as jose_jwt

import app.web.auth
from app.settings import Settings
from app.web.auth import InvalidToken, TokenVerifier

SECRET = "s" * 40


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _verifier(clock: Clock) -> TokenVerifier:
    verifier = TokenVerifier.from_settings(Settings(jwt_secret=SECRET))
    return TokenVerifier(
        verifier.key, verifier.algorithm, verifier.audience, verifier.issuer, clock=clock
    )


def _token(user: str, exp: float) -> str:
    return jose_jwt.encode({"sub": user, "exp": int(exp)}, SECRET, algorithm="HS256")


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    real = jose_jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jose_jwt, "decode", counting)
    return decoded


def test_a_token_seen_again_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _count_decodes(monkeypatch)
    clock = Clock()
    verifier = _verifier(clock)
    alice, bob = _token("alice", clock.now + 600), _token("bob", clock.now + 600)
    assert [verifier.user_id(alice), verifier.user_id(bob), verifier.user_id(alice)] == [
        "alice",
        "bob",
        "alice",
    ]
    assert decoded == [alice, bob]


def test_a_kept_token_is_refused_once_its_exp_and_the_leeway_have_passed() -> None:
    clock = Clock()
    verifier = _verifier(clock)
    token = _token("alice", clock.now + 60)
    assert verifier.user_id(token) == "alice"
    clock.now += 60 + 9  # within the ten seconds of leeway the decode gives
    assert verifier.user_id(token) == "alice"
    clock.now += 2
    with pytest.raises(InvalidToken) as refused:
        verifier.user_id(token)
    assert refused.value.code == "token_expired"


def test_refused_tokens_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _count_decodes(monkeypatch)
    verifier = _verifier(Clock())
    forged = jose_jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, "t" * 40)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.user_id(forged)
    assert decoded == [forged, forged]


def test_the_cache_is_bounded_and_lets_the_oldest_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.web.auth, "VERIFIED_TOKENS_KEPT", 3)
    decoded = _count_decodes(monkeypatch)
    clock = Clock()
    verifier = _verifier(clock)
    tokens = [_token(f"user-{n}", clock.now + 600) for n in range(4)]
    for token in tokens:
        verifier.user_id(token)
    verifier.user_id(tokens[3])
    verifier.user_id(tokens[0])  # let go when the fourth came: decoded again
    assert decoded == [*tokens, tokens[0]]
    assert len(verifier._verified) == 3

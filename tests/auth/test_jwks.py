"""Tokens from an identity provider, verified against its JWKS, served over real HTTP by a
provider of the test's own. Time is a clock the test turns: the cool-down and the age of the
key set pass without waiting."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from app.web.auth import AuthUnavailable, InvalidToken, TokenVerifier
from app.web.jwks import COOL_DOWN_SECONDS, MAX_AGE_SECONDS, RETRY_FIRST_SECONDS, KeySet
from tests.auth.provider import IdentityProvider, SigningKey

RSA_A = SigningKey.rsa("rsa-a")
RSA_B = SigningKey.rsa("rsa-b")
EC_A = SigningKey.ec("ec-a")
STRANGER = SigningKey.rsa("made-up")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def turn(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def provider() -> AsyncIterator[IdentityProvider]:
    async with IdentityProvider() as provider:
        provider.publish(RSA_A, EC_A)
        await provider.start()
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(
    provider: IdentityProvider, clock: Clock, algorithm: str = "RS256", **options: Any
) -> TokenVerifier:
    return TokenVerifier(
        key="",
        algorithm=algorithm,
        audience=options.pop("audience", None),
        issuer=options.pop("issuer", None),
        user_claim=options.pop("user_claim", "sub"),
        key_set=KeySet(provider.url, clock=clock, **options),
    )


# What a client is told with each code (make mutate found the wording untested here).
MESSAGES = {
    "invalid_token": {"The token is not valid.", "The token names no user."},
    "token_expired": {"The token has expired."},
}


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        await verifier.verify(token)
    assert raised.value.message in MESSAGES.get(raised.value.code, ()), raised.value.message
    return raised.value.code


async def test_rs256_and_es256_tokens_verify_with_the_key_their_kid_names(
    provider: IdentityProvider, clock: Clock
) -> None:
    rs256 = verifier(provider, clock, "RS256")
    es256 = verifier(provider, clock, "ES256")
    assert await rs256.verify(RSA_A.token("alice")) == "alice"
    assert await es256.verify(EC_A.token("bob")) == "bob"
    assert provider.fetches == 2  # one set per verifier, kept
    assert await rs256.verify(RSA_A.token("carol")) == "carol"
    assert provider.fetches == 2


async def test_the_user_claim_is_configurable(provider: IdentityProvider, clock: Clock) -> None:
    by_id = verifier(provider, clock, user_claim="user_id")
    token = RSA_A.token("opaque-subject", claims={"user_id": "alice"})
    assert await by_id.verify(token) == "alice"
    assert await verifier(provider, clock).verify(token) == "opaque-subject"
    assert await refused(by_id, RSA_A.token("alice")) == "invalid_token"  # no user_id claim


async def test_audience_and_issuer_are_checked(provider: IdentityProvider, clock: Clock) -> None:
    checked = verifier(provider, clock, audience="todo-api", issuer="https://id.example/")
    good = {"aud": "todo-api", "iss": "https://id.example/"}
    assert await checked.verify(RSA_A.token(claims=good)) == "alice"
    for wrong in ({**good, "aud": "other"}, {**good, "iss": "https://evil.example/"}):
        assert await refused(checked, RSA_A.token(claims=wrong)) == "invalid_token"


async def test_a_key_rotated_in_is_fetched_and_one_rotated_out_stops_verifying(
    provider: IdentityProvider, clock: Clock
) -> None:
    rs256 = verifier(provider, clock)
    assert await rs256.verify(RSA_A.token()) == "alice"
    assert provider.fetches == 1

    clock.turn(COOL_DOWN_SECONDS)
    provider.publish(RSA_A, RSA_B)  # a new kid appears
    assert await rs256.verify(RSA_B.token()) == "alice"  # unknown kid: fetched at once
    assert provider.fetches == 2

    provider.publish(RSA_B)  # the old one is removed
    assert await rs256.verify(RSA_A.token()) == "alice"  # kept until the set is old
    clock.turn(MAX_AGE_SECONDS)
    assert await refused(rs256, RSA_A.token()) == "invalid_token"
    assert provider.fetches == 3
    assert await rs256.verify(RSA_B.token()) == "alice"
    assert provider.fetches == 3


async def test_unknown_kids_fetch_at_most_once_per_cool_down(
    provider: IdentityProvider, clock: Clock
) -> None:
    rs256 = verifier(provider, clock)
    assert await rs256.verify(RSA_A.token()) == "alice"
    clock.turn(COOL_DOWN_SECONDS)
    stranger = SigningKey.rsa("made-up")
    for _ in range(5):
        assert await refused(rs256, stranger.token()) == "invalid_token"
    assert provider.fetches == 2  # the first made-up kid fetched; the next four did not

    provider.publish(RSA_A, RSA_B)
    assert await refused(rs256, RSA_B.token()) == "invalid_token"  # still cooling down
    clock.turn(COOL_DOWN_SECONDS)
    assert await rs256.verify(RSA_B.token()) == "alice"
    assert provider.fetches == 3


async def test_requests_waiting_for_a_fetch_share_it(
    provider: IdentityProvider, clock: Clock
) -> None:
    rs256 = verifier(provider, clock)
    users = [f"user-{n}" for n in range(20)]
    verified = await asyncio.gather(*(rs256.verify(RSA_A.token(user)) for user in users))
    assert verified == users
    assert provider.fetches == 1


async def test_the_provider_down_at_start(clock: Clock) -> None:
    async with IdentityProvider() as provider:
        provider.publish(RSA_A)
        rs256 = verifier(provider, clock)
        for _ in range(2):
            with pytest.raises(AuthUnavailable):
                await rs256.verify(RSA_A.token())
        await provider.start()
        with pytest.raises(AuthUnavailable):  # tried a moment ago: not again yet
            await rs256.verify(RSA_A.token())
        clock.turn(RETRY_FIRST_SECONDS)  # a short outage at start-up ends within seconds
        assert await rs256.verify(RSA_A.token()) == "alice"
        assert provider.fetches == 1


async def test_a_provider_failing_since_start_is_fetched_from_at_most_once_per_back_off(
    clock: Clock,
) -> None:
    async with IdentityProvider() as provider:
        provider.publish(RSA_A)
        provider.broken = True  # up, answering 503: each fetch is counted
        await provider.start()
        rs256 = verifier(provider, clock)
        tokens = [RSA_A.token(), SigningKey.rsa("made-up").token(), RSA_A.token(kid=None)]

        async def thirty_requests() -> None:
            for token in tokens * 10:
                with pytest.raises(AuthUnavailable):
                    await rs256.verify(token)

        await thirty_requests()
        assert provider.fetches == 1
        for fetches, back_off in enumerate((1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0), start=2):
            clock.turn(back_off - 0.01)
            await thirty_requests()  # not yet
            assert provider.fetches == fetches - 1
            clock.turn(0.01)
            await thirty_requests()  # one fetch, the others wait again
            assert provider.fetches == fetches
        provider.broken = False
        clock.turn(COOL_DOWN_SECONDS)
        assert await rs256.verify(RSA_A.token()) == "alice"
        assert provider.fetches == 9


async def test_the_provider_down_mid_run(provider: IdentityProvider, clock: Clock) -> None:
    rs256 = verifier(provider, clock)
    assert await rs256.verify(RSA_A.token()) == "alice"
    await provider.stop()

    assert await rs256.verify(RSA_A.token()) == "alice"  # a known key needs no fetch
    clock.turn(COOL_DOWN_SECONDS)
    with pytest.raises(AuthUnavailable):  # a new kid cannot be checked: 503, not 401
        await rs256.verify(RSA_B.token())
    with pytest.raises(AuthUnavailable):  # nor within the cool-down after that failure
        await rs256.verify(RSA_B.token())
    clock.turn(MAX_AGE_SECONDS)
    assert await rs256.verify(RSA_A.token()) == "alice"  # an old set beats no set

    provider.publish(RSA_A, RSA_B)
    await provider.start()
    with pytest.raises(AuthUnavailable):  # that refresh failed a moment ago: cooling down
        await rs256.verify(RSA_B.token())
    clock.turn(COOL_DOWN_SECONDS)
    assert await rs256.verify(RSA_B.token()) == "alice"
    assert provider.fetches == 2


async def test_a_provider_that_never_answers_is_given_up_on() -> None:
    held: list[asyncio.StreamWriter] = []
    accepted = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing
        accepted.set()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        rs256 = TokenVerifier(
            "", "RS256", None, None, key_set=KeySet(f"http://127.0.0.1:{port}/jwks", timeout=0.2)
        )
        with pytest.raises(AuthUnavailable):
            await rs256.verify(RSA_A.token())
        # It did connect (on a busy machine the server may see it only after the give-up).
        await asyncio.wait_for(accepted.wait(), 30)
        assert len(held) == 1
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_an_answer_that_is_not_a_key_set_is_unavailable(clock: Clock) -> None:
    async with IdentityProvider() as provider:
        await provider.start()
        provider.keys = "nope"  # type: ignore[assignment]
        with pytest.raises(AuthUnavailable, match=r"^the identity provider's keys cannot be"):
            await verifier(provider, clock).verify(RSA_A.token())


async def test_a_token_that_is_not_a_jwt_is_refused_before_any_key_is_fetched(
    provider: IdentityProvider, clock: Clock
) -> None:
    for token in ("not-a-token", "a.b.c", "e30.e30."):
        assert await refused(verifier(provider, clock), token) == "invalid_token", token
    assert provider.fetches == 0


async def test_a_token_signed_by_a_key_not_in_the_set_is_refused(
    provider: IdentityProvider, clock: Clock
) -> None:
    rs256 = verifier(provider, clock)
    impostor = SigningKey.rsa(RSA_A.kid)  # the set's kid, another key
    assert await refused(rs256, impostor.token()) == "invalid_token"

    stranger = SigningKey.rsa("stranger")
    assert await refused(rs256, stranger.token()) == "invalid_token"

    # The stranger's key offered in the header itself, or at an address of its own: never read.
    async with IdentityProvider() as elsewhere:
        elsewhere.publish(stranger)
        await elsewhere.start()
        offered = stranger.token(jku=elsewhere.url, jwk=stranger.jwk())
        clock.turn(COOL_DOWN_SECONDS)
        assert await refused(rs256, offered) == "invalid_token"
        assert elsewhere.fetches == 0


def _forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    def part(data: dict[str, Any]) -> str:
        encoded = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")
        return encoded.decode()

    signing_input = f"{part(header)}.{part(claims)}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_algorithm_confusion_is_refused(provider: IdentityProvider, clock: Clock) -> None:
    rs256 = verifier(provider, clock, "RS256")
    es256 = verifier(provider, clock, "ES256")
    claims = {"sub": "alice", "exp": int(time.time()) + 300}
    rsa_jwk = json.dumps(RSA_A.jwk()).encode()
    attempts = {
        "HS256 keyed with the public key": _forged(
            {"alg": "HS256", "kid": RSA_A.kid}, claims, RSA_A.public_pem.encode()
        ),
        "HS256 keyed with the published JWK": _forged(
            {"alg": "HS256", "kid": RSA_A.kid}, claims, rsa_jwk
        ),
        "none": _forged({"alg": "none", "kid": RSA_A.kid}, claims, None),
        "ES256 signed, RS256 expected": EC_A.token(),
        "RS256 header naming the EC key": SigningKey(
            EC_A.kid, "RS256", RSA_A.private_pem, RSA_A.public_pem
        ).token(),
    }
    for name, token in attempts.items():
        assert await refused(rs256, token) == "invalid_token", name
    assert await refused(es256, RSA_A.token()) == "invalid_token"
    none = _forged({"alg": "none", "kid": EC_A.kid}, claims, None)
    assert await refused(es256, none) == "invalid_token"


async def test_a_key_must_fit_the_algorithm(provider: IdentityProvider, clock: Clock) -> None:
    p384 = SigningKey.ec("p384", "ES256", ec.SECP384R1())
    rs512 = SigningKey.rsa("rs512")
    provider.keys = [
        p384.jwk(alg="ES256"),  # the wrong curve for ES256
        rs512.jwk(alg="RS512"),  # an RSA key its provider keeps for RS512
        RSA_A.jwk(use="enc"),  # not a signing key
    ]
    es256 = verifier(provider, clock, "ES256")
    rs256 = verifier(provider, clock, "RS256")
    assert await refused(es256, p384.token()) == "invalid_token"
    as_rs256 = SigningKey(rs512.kid, "RS256", rs512.private_pem, "").token()
    assert await refused(rs256, as_rs256) == "invalid_token"
    assert await refused(rs256, RSA_A.token()) == "invalid_token"


async def test_a_key_that_names_no_algorithm_serves_the_configured_one(
    provider: IdentityProvider, clock: Clock
) -> None:
    """`alg` is optional in a JWK (RFC 7517 §4.4), and some providers leave it out: such a
    key verifies tokens of the algorithm the service is configured with, if its type fits."""
    provider.keys = [
        {name: value for name, value in key.jwk().items() if name != "alg"} for key in (RSA_A, EC_A)
    ]
    assert all("alg" not in key for key in provider.keys)
    assert await verifier(provider, clock, "RS256").verify(RSA_A.token()) == "alice"
    assert await verifier(provider, clock, "ES256").verify(EC_A.token()) == "alice"
    # An ES256 token naming the RSA key is refused (by `_fits`, or else by the signature).
    posing = EC_A.token(kid=RSA_A.kid)
    assert await refused(verifier(provider, clock, "ES256"), posing) == "invalid_token"


async def test_a_token_without_kid_uses_a_set_of_one(
    provider: IdentityProvider, clock: Clock
) -> None:
    provider.publish(RSA_A)
    unnamed = RSA_A.token(kid=None)
    assert "kid" not in json.loads(base64.urlsafe_b64decode(unnamed.split(".")[0] + "=="))
    assert await verifier(provider, clock).verify(unnamed) == "alice"
    provider.publish(RSA_A, RSA_B)
    assert await refused(verifier(provider, clock), unnamed) == "invalid_token"


async def test_the_jwks_is_fetched_over_real_http(provider: IdentityProvider) -> None:
    """The provider is a real server: what the tests above fetched is what a client gets."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(provider.url)
    assert answer.json() == {"keys": [RSA_A.jwk(), EC_A.jwk()]}


STEPS = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 2.0, COOL_DOWN_SECONDS, MAX_AGE_SECONDS]),
        st.sampled_from(["known", "rotated", "made-up", "no kid"]),
        st.booleans(),  # the provider failing at that moment
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(steps=STEPS)
async def test_fetches_are_spaced_whatever_the_requests_and_the_providers_state(
    steps: list[tuple[float, str, bool]],
) -> None:
    """Any requests, any tokens, the provider failing and recovering in any order: two fetches
    are never closer than RETRY_FIRST on the clock."""
    clock = Clock()
    tokens = {
        "known": RSA_A.token(),
        "rotated": RSA_B.token(),
        "made-up": STRANGER.token(),
        "no kid": RSA_A.token(kid=None),
    }
    fetched_at: list[float] = []
    async with IdentityProvider() as provider:
        provider.publish(RSA_A)
        await provider.start()
        rs256 = verifier(provider, clock)
        for advance, token, failing in steps:
            provider.broken = failing
            if not failing and len(fetched_at) % 2:
                provider.publish(RSA_A, RSA_B)  # a rotation, now and then
            clock.turn(advance)
            fetches = provider.fetches
            with contextlib.suppress(InvalidToken, AuthUnavailable):
                await rs256.verify(tokens[token])
            assert provider.fetches - fetches <= 1
            if provider.fetches > fetches:
                fetched_at.append(clock.now)
    gaps = [later - earlier for earlier, later in itertools.pairwise(fetched_at)]
    assert all(gap >= RETRY_FIRST_SECONDS for gap in gaps), (fetched_at, steps)

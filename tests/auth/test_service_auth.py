"""The service over real HTTP with JWT_JWKS_URL: it starts while the identity provider is down,
answers 503 `auth_unavailable` meanwhile (never 500), and serves once the provider is up (within
the back-off between fetches, a second after the first failure)."""

from __future__ import annotations

import httpx

from app.main import create_app
from app.settings import Settings
from tests.auth.provider import IdentityProvider, SigningKey
from tests.conftest import with_settings
from tests.support import eventually, serve

EC_KEY = SigningKey.ec("provider-es256")


def _answer(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_the_service_starts_while_the_provider_is_down(settings: Settings) -> None:
    async with IdentityProvider() as provider:
        provider.publish(EC_KEY)
        configured = with_settings(
            settings,
            jwt_secret=None,
            jwt_jwks_url=provider.url,
            jwt_algorithm="ES256",
            jwt_user_claim="user_id",
        )
        async with serve(create_app(configured), configured) as live:
            token = EC_KEY.token("provider-subject", claims={"user_id": "dora"})
            headers = {"Authorization": f"Bearer {token}"}
            assert (await live.client.get("/health")).status_code == 200

            down = await live.client.get("/api/dora/tasks", headers=headers)
            _answer(down, 503, "auth_unavailable")
            assert down.headers["retry-after"] == "5"
            assert "identity provider" in down.json()["error"]["message"]

            await provider.start()

            async def up() -> bool:
                answer = await live.client.get("/api/dora/tasks", headers=headers)
                assert answer.status_code in (200, 503), answer.text
                return answer.status_code == 200

            await eventually(up, "the service verifies tokens once the provider is up")
            assert provider.fetches == 1  # the requests meanwhile did not fetch
            _answer(await live.client.get("/api/someone/tasks", headers=headers), 403, "forbidden")

            stranger = SigningKey.ec("stranger").token(claims={"user_id": "dora"})
            refused = await live.client.get(
                "/api/dora/tasks", headers={"Authorization": f"Bearer {stranger}"}
            )
            _answer(refused, 401, "invalid_token")
            assert refused.headers["www-authenticate"] == "Bearer"

            await provider.stop()  # down mid-run: the key already fetched still verifies
            again = await live.client.get("/api/dora/tasks", headers=headers)
            assert again.status_code == 200, again.text

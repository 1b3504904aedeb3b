"""The page's routes over HTTP: the page and its files, and the development sign-in endpoint
that must not exist anywhere but in development."""

from __future__ import annotations

import re

import pytest

from app.main import create_app
from app.settings import Settings
from app.web.routes.page import STATIC, TEMPLATE
from tests.conftest import with_settings
from tests.support import serve


async def test_the_page_and_its_files_come_from_this_service_alone(settings: Settings) -> None:
    async with serve(create_app(settings), settings) as live:
        page = await live.client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<meta name="todo-chat-sign-in" content="host">' in page.text
        for path in sorted(STATIC.iterdir()):
            if path == TEMPLATE:
                continue
            served = await live.client.get(f"/static/{path.name}")
            assert served.status_code == 200, path.name
            assert served.text == path.read_text()
            # No CDN, no other origin: every URL a file names is a path on this service.
            assert not re.search(r"https?://|//cdn", served.text), path.name


async def test_only_the_root_serves_the_page(settings: Settings) -> None:
    """The template served raw has no CSP and unfilled placeholders, and the page it draws
    forgets the user's remembered token: under /static it is a 404, however it is spelled."""
    async with serve(create_app(settings), settings) as live:
        spellings = ["index.html", "./index.html", "app.css/../index.html", "%69ndex.html"]
        for spelling in spellings:
            raw = f"/static/{spelling}"
            # Sent as written: httpx would resolve the dot segments itself.
            response = await live.client.get(
                live.client.base_url.join(raw), extensions={"target": raw.encode()}
            )
            assert response.status_code == 404, spelling
            assert response.json()["error"]["code"] == "not_found"
            assert "{{" not in response.text
        assert "{{" not in (await live.client.get("/")).text


@pytest.mark.parametrize("app_env", ["test", "production"])
async def test_the_development_token_endpoint_is_absent_outside_development(
    settings: Settings, app_env: str
) -> None:
    configured = with_settings(settings, app_env=app_env)
    async with serve(create_app(configured), configured) as live:
        response = await live.client.post("/dev/token", json={"user_id": "mallory"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert 'content="host"' in (await live.client.get("/")).text


async def test_in_development_a_name_gets_a_token_for_that_user(settings: Settings) -> None:
    configured = with_settings(settings, app_env="development")
    async with serve(create_app(configured), configured) as live:
        assert 'content="development"' in (await live.client.get("/")).text
        response = await live.client.post("/dev/token", json={"user_id": "ada.l-1"})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        token = response.json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await live.client.get("/api/ada.l-1/tasks", headers=headers)).status_code == 200
        assert (await live.client.get("/api/ada/tasks", headers=headers)).status_code == 403
        bad: object
        for bad in ({"user_id": ""}, {"user_id": "a/b"}, {"user_id": "x" * 65}, {}, []):
            refused = await live.client.post("/dev/token", json=bad)
            assert refused.status_code == 422, bad
        not_json = await live.client.post("/dev/token", content=b"ada")
        assert not_json.status_code == 422

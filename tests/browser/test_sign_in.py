"""Signing in on the page: a name in development, a token from the host application elsewhere;
the token kept for the tab alone unless the user asks, and never in a URL (the `start_site`
fixture checks every request of every test for that)."""

from __future__ import annotations

import time
import uuid

from jose import jwt
from playwright.async_api import Frame, Page, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.browser.conftest import SiteFactory
from tests.support import running

# The host application's page: the chat in an iframe, signed in once it says it is ready.
HOST_PAGE = """<!doctype html>
<link rel="icon" href="data:,">
<script>
  addEventListener("message", (event) => {
    if (event.origin !== "%(chat)s" || event.data.type !== "todo-chat:ready") return;
    event.source.postMessage({type: "todo-chat:token", token: "%(token)s"}, "%(chat)s");
  });
</script>
<iframe id="chat" title="Chat" src="%(chat)s/" width="1200" height="700"></iframe>
"""


async def storage(page: Page | Frame) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = await page.evaluate(
        "() => ({local: Object.keys(localStorage), session: Object.keys(sessionStorage)})"
    )
    return keys


async def test_the_host_application_signs_the_user_in(start_site: SiteFactory) -> None:
    host_page: dict[str, str] = {}
    host_app = Starlette(routes=[Route("/", lambda _: HTMLResponse(host_page["html"]))])
    # The host on a port of its own (another origin), on loopback as the service is: Chromium
    # refuses a page from a public address that frames a loopback one.
    async with running(host_app) as host:
        # Tokens from an identity provider whose user id is not `sub` (the seed's own: `id`).
        site = await start_site(app_env="production", cors_origins=(host,), jwt_user_claim="id")
        alone = await site.page()
        await alone.goto(site.url)
        await expect(alone.get_by_text("Waiting for the application")).to_be_visible()
        await expect(alone.get_by_label("Your name")).to_be_hidden()

        user_id = f"host-{uuid.uuid4().hex[:8]}"
        claims = {"sub": "provider|8e1f", "id": user_id, "exp": int(time.time()) + 3600}
        token = jwt.encode(claims, site.settings.jwt_secret or "", algorithm="HS256")
        chat = site.url.rstrip("/")
        host_page["html"] = HOST_PAGE % {"chat": chat, "token": token}
        page = await site.page()
        await page.goto(f"{host}/")
        frame = page.frame_locator("#chat")
        await expect(frame.locator("#user-name")).to_have_text(user_id)
        await frame.get_by_label("Message", exact=True).fill("add buy milk")
        await frame.get_by_label("Message", exact=True).press("Enter")
        await expect(frame.locator("#tasks .title")).to_have_text(["Buy milk"])
        chat_frame = next(f for f in page.frames if f.url.startswith(chat))
        kept = await storage(chat_frame)
        assert kept["local"] == [] and "todo-chat.token" in kept["session"]


async def test_the_token_lasts_as_long_as_the_tab_unless_the_user_asks(
    start_site: SiteFactory,
) -> None:
    site = await start_site()
    page = await site.page()
    await page.goto(site.url)
    name = f"tab-{uuid.uuid4().hex[:8]}"
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your name").press("Enter")
    await expect(page.locator("#user-name")).to_have_text(name)
    assert await storage(page) == {"local": [], "session": ["todo-chat.token"]}
    await page.reload()
    await expect(page.locator("#user-name")).to_have_text(name)

    other_tab = await site.page()
    await other_tab.goto(site.url)
    await expect(other_tab.get_by_label("Your name")).to_be_visible()
    await other_tab.get_by_label("Your name").fill(name)
    await other_tab.get_by_label("Remember me on this device").check()
    await other_tab.get_by_role("button", name="Sign in").click()
    await expect(other_tab.locator("#user-name")).to_have_text(name)
    assert (await storage(other_tab))["local"] == ["todo-chat.token"]

    third_tab = await site.page()
    await third_tab.goto(site.url)
    await expect(third_tab.locator("#user-name")).to_have_text(name)
    await third_tab.get_by_role("button", name="Sign out").click()
    await expect(third_tab.get_by_label("Your name")).to_be_visible()
    assert await storage(third_tab) == {"local": [], "session": []}
